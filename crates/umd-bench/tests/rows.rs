//! Every benchmark row can be built and run, and both sides check their replies:
//! a row that silently measured failures would be worse than no row.

use umd_bench::pin::{default_cpu, Pin, PinGuard};
use umd_bench::{run, select_rows, ROWS};

#[test]
fn every_row_runs_both_sides_and_checks_replies() {
    let cpu = default_cpu().unwrap();
    let root = rustix::process::geteuid().is_root();
    for spec in ROWS {
        // The exec-guard rows need root (fanotify, mounts in a namespace).
        if spec.name.starts_with("guard-") && !root {
            if std::env::var("UMD_REQUIRE_SANDBOX").as_deref() == Ok("1") {
                panic!("UMD_REQUIRE_SANDBOX=1 but not root: row {} cannot run", spec.name);
            }
            eprintln!("SKIPPED: row {}: needs root. UMD_REQUIRE_SANDBOX=1 makes this a failure.", spec.name);
            continue;
        }
        let pin = spec.pin(cpu);
        let _guard = PinGuard::new(pin).unwrap();
        for (side, make) in [("ours", spec.make_ours), ("baseline", spec.make_baseline)] {
            let mut w = make(pin).unwrap_or_else(|e| panic!("{}: {side}: {e}", spec.name));
            let d = w.run(2).unwrap_or_else(|e| panic!("{}: {side}: {e}", spec.name));
            assert!(!d.is_zero(), "{}: {side} took no time", spec.name);
        }
    }
}

#[test]
fn a_pinned_row_reports_medians_ratio_and_verdict() {
    let spec = ROWS.iter().find(|r| r.name == "echo64-pinned").unwrap();
    let cfg = run::RunConfig { rounds: 3, quick: true, cpu: default_cpu().unwrap() };
    let mut rounds = 0;
    let r = run::run_row(spec, &cfg, &mut |ev| {
        if let run::Event::Round { .. } = ev {
            rounds += 1
        }
    })
    .unwrap();
    assert_eq!(rounds, 3);
    assert_eq!(r.ours.rounds_s.len(), 3);
    assert!(matches!(r.pin, Pin::Cpu(_)));
    assert!(r.ours.min_s <= r.ours.median_s && r.ours.median_s <= r.ours.max_s);
    assert!((r.ratio - r.ours.median_s / r.baseline.median_s).abs() < 1e-9);
    assert!(r.met.is_some());
}

#[test]
fn row_prefixes_select_pinned_and_unpinned_variants() {
    let names: Vec<_> = select_rows("sample128k").map(|r| r.name).collect();
    assert_eq!(names, ["sample128k-pinned", "sample128k-unpinned"]);
    assert_eq!(select_rows("selftest").count(), 1);
}
