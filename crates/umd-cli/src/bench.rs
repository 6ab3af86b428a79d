//! `umd bench`: runs the rows of [`umd_bench`] and prints our figure, the baseline
//! measured in the same run, their ratio and the target.
//!
//! The workloads and the reasoning behind each baseline live in the `umd-bench`
//! crate; this module only picks rows, shows progress and formats results.

use std::io::IsTerminal;

use clap::Args;
use umd_bench::run::{self, Event, RowResult, RunConfig};
use umd_bench::{RowSpec, Target, ROWS};

use crate::{EXIT_ERROR, EXIT_OK, EXIT_VERDICT};

/// Options of `umd bench`.
#[derive(Args)]
#[command(after_help = "Rows (select with --only; a prefix selects several, e.g. --only echo64):\n  \
    echo64-pinned, echo64-unpinned, sample128k-pinned, sample128k-unpinned,\n  \
    payload16m, cold-start, cold-unconfined, cold-ns-*, verify-vs-sqv, verify-vs-gpgv,\n  \
    verify-each, rpm-build-vs-checksig, rpm-warm-vs-checksig, digest-lookup, digest-open,\n  \
    guard-exec-cached, guard-exec-usercache, guard-exec-uncached, guard-open-perm (root),\n  \
    serve-sample, serve-verify, selftest\n\n\
    Ratios: 'time' is our time / the baseline's (lower is better); 'tput' is our\n\
    throughput / the baseline's (higher is better). Figures are medians over rounds;\n\
    '±' is half the spread between the fastest and slowest round.")]
pub struct BenchArgs {
    /// Fewer repetitions (a quick look, noisier): 3 rounds of fewer operations.
    #[arg(long)]
    pub quick: bool,
    /// Print JSON on stdout instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Rounds per row (default 7, or 3 with --quick).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub rounds: Option<u32>,
    /// Run only these rows (a name or a prefix; repeat or separate with commas).
    #[arg(long, value_name = "ROW", value_delimiter = ',')]
    pub only: Vec<String>,
    /// CPU to pin the "-pinned" rows to (default: the first one this process may use).
    #[arg(long, value_name = "N")]
    pub cpu: Option<usize>,
    /// List the rows and what each side measures, then exit.
    #[arg(long)]
    pub list: bool,
    /// Exit with status 1 if a row misses its target.
    #[arg(long)]
    pub check: bool,
}

pub fn run(args: &BenchArgs) -> u8 {
    if args.list {
        for r in ROWS {
            println!("{:<20} {}", r.name, r.title);
            println!("{:<20}   ours:     {}", "", r.ours);
            println!("{:<20}   baseline: {}", "", r.baseline);
            println!("{:<20}   target:   {}", "", target_text(r.target));
        }
        return EXIT_OK;
    }
    let rows = match selected_rows(&args.only) {
        Ok(r) => r,
        Err(unknown) => {
            eprintln!("umd bench: no row matches {unknown:?} (see umd bench --list)");
            return EXIT_ERROR;
        }
    };
    let cpu = match args.cpu {
        Some(c) => c,
        None => match umd_bench::pin::default_cpu() {
            Ok(c) => c,
            Err(e) => {
                eprintln!("umd bench: cannot read this process's CPU affinity: {e}");
                return EXIT_ERROR;
            }
        },
    };
    let rounds = args.rounds.map(|r| r as usize).unwrap_or(if args.quick { 3 } else { 7 });
    let cfg = RunConfig { rounds, quick: args.quick, cpu };

    let bar = if std::io::stderr().is_terminal() {
        indicatif::ProgressBar::new((rows.len() * rounds) as u64).with_style(
            indicatif::ProgressStyle::with_template("bench [{bar:30}] {pos}/{len} {msg}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        )
    } else {
        indicatif::ProgressBar::hidden()
    };
    let mut results = Vec::new();
    let mut failed = false;
    for spec in rows {
        let r = run::run_row(spec, &cfg, &mut |ev| match ev {
            Event::Setup => bar.set_message(format!("{}: setting up", spec.name)),
            Event::Round { n, of } => {
                bar.set_message(format!("{}: round {n}/{of}", spec.name));
                bar.inc(1);
            }
        });
        match r {
            Ok(r) => results.push(r),
            Err(e) => {
                bar.suspend(|| eprintln!("umd bench: {e}"));
                failed = true;
            }
        }
    }
    bar.finish_and_clear();

    if args.json {
        let doc = serde_json::json!({
            "rounds": rounds,
            "quick": args.quick,
            "pinned_cpu": cpu,
            "cpus": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
            "kernel": rustix::system::uname().release().to_string_lossy(),
            "rows": results,
        });
        match serde_json::to_string_pretty(&doc) {
            Ok(s) => println!("{s}"),
            Err(e) => {
                eprintln!("umd bench: encoding JSON: {e}");
                return EXIT_ERROR;
            }
        }
    } else {
        print_table(&results, &cfg);
    }

    if failed {
        EXIT_ERROR
    } else if args.check && results.iter().any(|r| r.met == Some(false)) {
        EXIT_VERDICT
    } else {
        EXIT_OK
    }
}

/// The rows named by `only` (all when empty), in table order, each once.
fn selected_rows(only: &[String]) -> Result<Vec<&'static RowSpec>, String> {
    if only.is_empty() {
        return Ok(ROWS.iter().collect());
    }
    let mut picked = vec![false; ROWS.len()];
    for pattern in only {
        let mut any = false;
        for r in umd_bench::select_rows(pattern) {
            if let Some(i) = ROWS.iter().position(|x| x.name == r.name) {
                picked[i] = true;
                any = true;
            }
        }
        if !any {
            return Err(pattern.clone());
        }
    }
    Ok(ROWS.iter().zip(picked).filter(|(_, p)| *p).map(|(r, _)| r).collect())
}

fn target_text(t: Target) -> String {
    match t {
        Target::MaxTimeRatio(m) => format!("<={m:.2}x"),
        Target::MinThroughputRatio(m) => format!(">={m:.2}x"),
        Target::MaxAddedSeconds(m) => format!("<=+{:.0}us", m * 1e6),
        Target::Report => "-".into(),
    }
}

/// Seconds for people.
fn fmt_s(s: f64) -> String {
    if s < 1e-3 {
        format!("{:.2} us", s * 1e6)
    } else if s < 1.0 {
        format!("{:.2} ms", s * 1e3)
    } else {
        format!("{s:.2} s")
    }
}

/// One cell: the median (throughput first for payload rows) and the spread.
fn cell(s: &run::SideResult) -> String {
    let spread = if s.median_s > 0.0 { (s.max_s - s.min_s) / 2.0 / s.median_s * 100.0 } else { 0.0 };
    match s.mib_per_s {
        Some(t) => format!("{t:.0} MiB/s ({}) ±{spread:.0}%", fmt_s(s.median_s)),
        None => format!("{} ±{spread:.0}%", fmt_s(s.median_s)),
    }
}

fn print_table(results: &[RowResult], cfg: &RunConfig) {
    println!(
        "umd bench: medians of {} rounds{}; pinned rows on CPU {}",
        cfg.rounds,
        if cfg.quick { " (quick)" } else { "" },
        cfg.cpu
    );
    println!();
    println!("{:<20} {:<30} {:<30} {:<11} target", "row", "ours", "baseline", "ratio");
    for r in results {
        let kind = if r.ratio_of == "throughput" { "tput" } else { "time" };
        let verdict = match r.met {
            Some(true) => "ok",
            Some(false) => "MISSED",
            None => "",
        };
        let line = format!(
            "{:<20} {:<30} {:<30} {:<11} {:<8} {}",
            r.name,
            cell(&r.ours),
            cell(&r.baseline),
            match r.target {
                Target::MaxAddedSeconds(_) => format!("+{:.1}us", r.added_s * 1e6),
                _ => format!("{:.2}x {kind}", r.ratio),
            },
            target_text(r.target),
            verdict
        );
        println!("{}", line.trim_end());
    }
    println!();
    for r in results {
        println!("{:<20} ours: {}; baseline: {}", r.name, r.ours.what, r.baseline.what);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_accepts_names_prefixes_and_rejects_unknown_rows() {
        let names = |v: Vec<&RowSpec>| v.iter().map(|r| r.name).collect::<Vec<_>>();
        assert_eq!(names(selected_rows(&["echo64".into()]).unwrap()), ["echo64-pinned", "echo64-unpinned"]);
        assert_eq!(
            names(selected_rows(&["selftest".into(), "echo64-pinned".into()]).unwrap()),
            ["echo64-pinned", "selftest"]
        );
        assert_eq!(selected_rows(&["nope".into()]).unwrap_err(), "nope");
        assert_eq!(selected_rows(&[]).unwrap().len(), ROWS.len());
    }
}
