//! Measuring a row: rounds, alternation, medians.
//!
//! Both sides of a row are built once (under the row's pinning), warmed, then
//! timed in `rounds` rounds of the same number of operations. The order alternates
//! (ours first in even rounds, the baseline first in odd ones) so a slow phase of
//! the VM hits both sides alike. Each side's figure is the **median** of its
//! per-round times per operation; the ratio is computed from the two medians.

use std::time::Duration;

use serde::Serialize;

use crate::pin::{Pin, PinGuard};
use crate::{BenchError, BoxedWorkload, RowSpec, Target};

/// How to run rows.
#[derive(Clone, Debug)]
pub struct RunConfig {
    /// Rounds per row (at least 1).
    pub rounds: usize,
    /// Use each row's `quick_iters`.
    pub quick: bool,
    /// The CPU for pinned rows.
    pub cpu: usize,
}

/// One side's measurements.
#[derive(Clone, Debug, Serialize)]
pub struct SideResult {
    /// What was measured.
    pub what: &'static str,
    /// Median seconds per operation.
    pub median_s: f64,
    /// Fastest round, seconds per operation.
    pub min_s: f64,
    /// Slowest round, seconds per operation.
    pub max_s: f64,
    /// Median throughput in MiB/s, for rows that move a payload.
    pub mib_per_s: Option<f64>,
    /// Seconds per operation of every round, in order.
    pub rounds_s: Vec<f64>,
}

/// A measured row.
#[derive(Clone, Debug, Serialize)]
pub struct RowResult {
    /// Row name.
    pub name: &'static str,
    /// Row title.
    pub title: &'static str,
    /// Pinning used.
    pub pin: Pin,
    /// Operations per round and side.
    pub iters: u64,
    /// Our side.
    pub ours: SideResult,
    /// The baseline.
    pub baseline: SideResult,
    /// Time ratio (ours / baseline) or, for throughput targets, throughput ratio.
    pub ratio: f64,
    /// What `ratio` compares: `"time"` or `"throughput"`.
    pub ratio_of: &'static str,
    /// The target.
    pub target: Target,
    /// Median over rounds of (ours - baseline) seconds per operation.
    pub added_s: f64,
    /// Whether the target is met (`None`: no target).
    pub met: Option<bool>,
}

/// Progress of a row, for a progress bar.
#[derive(Clone, Copy, Debug)]
pub enum Event {
    /// Both sides are being built and warmed.
    Setup,
    /// Round `n` (1-based) of `of` finished.
    Round {
        /// Rounds done.
        n: usize,
        /// Rounds in all.
        of: usize,
    },
}

fn in_row(row: &'static str, side: &'static str) -> impl Fn(BenchError) -> BenchError {
    move |e| BenchError::InRow { row, side, source: Box::new(e) }
}

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let n = s.len();
    match n {
        0 => f64::NAN,
        _ if n % 2 == 1 => s[n / 2],
        _ => (s[n / 2 - 1] + s[n / 2]) / 2.0,
    }
}

fn side_result(what: &'static str, rounds_s: Vec<f64>, bytes_per_op: Option<u64>) -> SideResult {
    let median_s = median(&rounds_s);
    SideResult {
        what,
        median_s,
        min_s: rounds_s.iter().copied().fold(f64::INFINITY, f64::min),
        max_s: rounds_s.iter().copied().fold(0.0, f64::max),
        mib_per_s: bytes_per_op.map(|b| b as f64 / median_s / (1024.0 * 1024.0)),
        rounds_s,
    }
}

fn per_op(d: Duration, iters: u64) -> f64 {
    d.as_secs_f64() / iters as f64
}

/// Measures one row. `progress` is told about setup and each finished round.
pub fn run_row(
    spec: &'static RowSpec,
    cfg: &RunConfig,
    progress: &mut dyn FnMut(Event),
) -> Result<RowResult, BenchError> {
    let pin = spec.pin(cfg.cpu);
    let rounds = cfg.rounds.max(1);
    let iters = if cfg.quick { spec.quick_iters } else { spec.iters }.max(1);
    // Children started from now on inherit the pinning of this thread.
    let _guard = PinGuard::new(pin).map_err(|source| BenchError::InRow {
        row: spec.name,
        side: "setup",
        source: Box::new(BenchError::Io { what: "pinning the benchmark thread", source }),
    })?;
    progress(Event::Setup);
    let mut ours: BoxedWorkload = (spec.make_ours)(pin).map_err(in_row(spec.name, "ours"))?;
    let mut base: BoxedWorkload = (spec.make_baseline)(pin).map_err(in_row(spec.name, "baseline"))?;
    // Warm both sides beyond their constructors' single operation.
    let warm = (iters / 10).max(1);
    ours.run(warm).map_err(in_row(spec.name, "ours"))?;
    base.run(warm).map_err(in_row(spec.name, "baseline"))?;

    let mut ours_s = Vec::with_capacity(rounds);
    let mut base_s = Vec::with_capacity(rounds);
    for r in 0..rounds {
        let run_ours = |w: &mut BoxedWorkload| w.run(iters).map_err(in_row(spec.name, "ours"));
        let run_base = |w: &mut BoxedWorkload| w.run(iters).map_err(in_row(spec.name, "baseline"));
        if r % 2 == 0 {
            ours_s.push(per_op(run_ours(&mut ours)?, iters));
            base_s.push(per_op(run_base(&mut base)?, iters));
        } else {
            base_s.push(per_op(run_base(&mut base)?, iters));
            ours_s.push(per_op(run_ours(&mut ours)?, iters));
        }
        progress(Event::Round { n: r + 1, of: rounds });
    }
    // Tear both sides down (killing their handlers) before the pinning is undone.
    drop(ours);
    drop(base);

    let ours = side_result(spec.ours, ours_s, spec.bytes_per_op);
    let baseline = side_result(spec.baseline, base_s, spec.bytes_per_op);
    let ratio = spec.target.ratio(ours.median_s, baseline.median_s);
    // Paired per round (the sides alternate within a round): the median of the
    // per-round differences is what an added-time target is judged on.
    let diffs: Vec<f64> = ours.rounds_s.iter().zip(&baseline.rounds_s).map(|(o, b)| o - b).collect();
    let added_s = median(&diffs);
    let met = match spec.target {
        Target::MaxAddedSeconds(max) => Some(added_s <= max),
        t => t.met(ratio),
    };
    Ok(RowResult {
        name: spec.name,
        title: spec.title,
        pin,
        iters,
        ours,
        baseline,
        ratio,
        ratio_of: spec.target.ratio_of(),
        target: spec.target,
        added_s,
        met,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), 2.5);
        assert!(median(&[]).is_nan());
    }

    #[test]
    fn throughput_targets_invert_the_time_ratio() {
        let t = Target::MinThroughputRatio(0.8);
        assert_eq!(t.ratio(2.0, 1.0), 0.5);
        assert_eq!(t.met(0.5), Some(false));
        let t = Target::MaxTimeRatio(1.5);
        assert_eq!(t.ratio(1.2, 1.0), 1.2);
        assert_eq!(t.met(1.2), Some(true));
        assert_eq!(Target::Report.met(9.0), None);
    }
}
