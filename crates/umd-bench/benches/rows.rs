//! The `umd bench` rows under criterion: one group per row, `ours` and `baseline`
//! in each, so criterion's statistics and history can compare runs over time.
//!
//! ```text
//! cargo bench -p umd-bench                   # every row
//! cargo bench -p umd-bench -- echo64-pinned  # one row (criterion's filter)
//! ```
//!
//! Each side is built once per row (under the row's pinning) and timed with
//! `iter_custom`, so criterion measures only the operations, exactly as
//! `umd bench` does.

use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use umd_bench::pin::{default_cpu, PinGuard};
use umd_bench::{BoxedWorkload, RowSpec, ROWS};

fn bench_row(c: &mut Criterion, spec: &'static RowSpec, cpu: usize) {
    let pin = spec.pin(cpu);
    let _guard = PinGuard::new(pin).expect("pinning the benchmark thread");
    let mut group = c.benchmark_group(spec.name);
    if let Some(b) = spec.bytes_per_op {
        group.throughput(Throughput::Bytes(b));
    }
    // Slow rows (a cold start, a whole self-test) get criterion's minimum of 10
    // samples and a longer window; fast ones keep the defaults.
    if spec.iters < 100 {
        group.sample_size(10).measurement_time(Duration::from_secs(10)).warm_up_time(Duration::from_secs(1));
    }
    let sides = [("ours", spec.make_ours), ("baseline", spec.make_baseline)];
    for (side, make) in sides {
        // Built on first use: criterion skips the closure for filtered-out rows.
        let mut workload: Option<BoxedWorkload> = None;
        group.bench_function(side, |b| {
            let w = workload.get_or_insert_with(|| {
                make(pin).unwrap_or_else(|e| panic!("{}: setting up {side}: {e}", spec.name))
            });
            b.iter_custom(|iters| w.run(iters).unwrap_or_else(|e| panic!("{}: {side}: {e}", spec.name)))
        });
        // Dropping it here stops its handler before the other side starts.
        drop(workload);
    }
    group.finish();
}

fn rows(c: &mut Criterion) {
    let cpu = default_cpu().expect("reading the CPU affinity");
    for spec in ROWS {
        bench_row(c, spec, cpu);
    }
}

criterion_group!(benches, rows);
criterion_main!(benches);
