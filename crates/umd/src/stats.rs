//! Per-driver counters and a latency histogram, updated without locks.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Sub-buckets per power of two: bucket bounds are within 1/8 (12.5 %) of the value.
const SUB: u32 = 8;
const SUB_BITS: u32 = 3;
/// Enough buckets for durations up to 2^40 ns (~18 minutes); larger values land in
/// the last bucket.
const BUCKETS: usize = (41 * SUB) as usize;

/// A lock-free log-linear histogram of durations in nanoseconds.
pub struct Histogram {
    buckets: Box<[AtomicU64]>,
    count: AtomicU64,
    sum_ns: AtomicU64,
    max_ns: AtomicU64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            buckets: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect(),
            count: AtomicU64::new(0),
            sum_ns: AtomicU64::new(0),
            max_ns: AtomicU64::new(0),
        }
    }
}

fn bucket_of(ns: u64) -> usize {
    if ns < u64::from(SUB) {
        return ns as usize;
    }
    let log = 63 - ns.leading_zeros(); // >= SUB_BITS
    let sub = (ns >> (log - SUB_BITS)) & u64::from(SUB - 1);
    let i = ((log - SUB_BITS + 1) * SUB) as usize + sub as usize;
    i.min(BUCKETS - 1)
}

/// Upper bound (inclusive) of a bucket's values.
fn bucket_high(i: usize) -> u64 {
    let i = i as u64;
    let sub = u64::from(SUB);
    if i < sub {
        return i;
    }
    let log = i / sub - 1 + u64::from(SUB_BITS);
    let s = i % sub;
    ((sub + s + 1) << (log - u64::from(SUB_BITS))) - 1
}

impl Histogram {
    /// Records one duration.
    pub fn record(&self, d: Duration) {
        let ns = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        self.buckets[bucket_of(ns)].fetch_add(1, Relaxed);
        self.count.fetch_add(1, Relaxed);
        self.sum_ns.fetch_add(ns, Relaxed);
        self.max_ns.fetch_max(ns, Relaxed);
    }

    /// A consistent-enough copy for reporting.
    pub fn snapshot(&self) -> LatencySummary {
        let counts: Vec<u64> = self.buckets.iter().map(|b| b.load(Relaxed)).collect();
        let total: u64 = counts.iter().sum();
        let pct = |p: f64| -> u64 {
            if total == 0 {
                return 0;
            }
            let rank = ((p / 100.0) * total as f64).ceil().max(1.0) as u64;
            let mut seen = 0;
            for (i, c) in counts.iter().enumerate() {
                seen += c;
                if seen >= rank {
                    return bucket_high(i);
                }
            }
            bucket_high(BUCKETS - 1)
        };
        let max = self.max_ns.load(Relaxed);
        let count = self.count.load(Relaxed);
        LatencySummary {
            count,
            mean_ns: self.sum_ns.load(Relaxed).checked_div(count).unwrap_or(0),
            p50_ns: pct(50.0).min(max),
            p90_ns: pct(90.0).min(max),
            p99_ns: pct(99.0).min(max),
            max_ns: max,
        }
    }
}

/// Latency percentiles (upper bucket bounds, at most 12.5 % above the true value).
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct LatencySummary {
    /// Number of recorded calls.
    pub count: u64,
    /// Mean in nanoseconds.
    pub mean_ns: u64,
    /// Median in nanoseconds.
    pub p50_ns: u64,
    /// 90th percentile in nanoseconds.
    pub p90_ns: u64,
    /// 99th percentile in nanoseconds.
    pub p99_ns: u64,
    /// Largest in nanoseconds.
    pub max_ns: u64,
}

/// Live counters of one driver.
#[derive(Default)]
pub(crate) struct Counters {
    pub requests: AtomicU64,
    pub failures: AtomicU64,
    pub loads: AtomicU64,
    pub unloads: AtomicU64,
    pub starts: AtomicU64,
    pub restarts: AtomicU64,
    pub deadline_kills: AtomicU64,
    pub handler_failures: AtomicU64,
    pub post_start_failures: AtomicU64,
    pub violations: AtomicU64,
    pub retries: AtomicU64,
    pub kills: AtomicU64,
    pub latency: Histogram,
}

impl Counters {
    pub fn snapshot(&self) -> Stats {
        Stats {
            requests: self.requests.load(Relaxed),
            failures: self.failures.load(Relaxed),
            loads: self.loads.load(Relaxed),
            unloads: self.unloads.load(Relaxed),
            starts: self.starts.load(Relaxed),
            restarts: self.restarts.load(Relaxed),
            deadline_kills: self.deadline_kills.load(Relaxed),
            handler_failures: self.handler_failures.load(Relaxed),
            post_start_failures: self.post_start_failures.load(Relaxed),
            violations: self.violations.load(Relaxed),
            retries: self.retries.load(Relaxed),
            kills: self.kills.load(Relaxed),
            latency: self.latency.snapshot(),
        }
    }
}

/// A snapshot of a driver's counters, covering every handler of its pool. The
/// service sends it to its clients as it is (`umd ctl stats`).
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Stats {
    /// Calls made (`send_recv`/`call`), successful or not.
    pub requests: u64,
    /// Calls that returned an error.
    pub failures: u64,
    /// Times a handler program was loaded (explicitly or on demand via the provider).
    pub loads: u64,
    /// Times the driver was unloaded.
    pub unloads: u64,
    /// Handler processes started (each ran `post_start`).
    pub starts: u64,
    /// Starts that replaced a handler which died or was shut down.
    pub restarts: u64,
    /// Handlers killed because a request passed its deadline.
    pub deadline_kills: u64,
    /// Handlers shut down after a channel error, a rejected reply or a death.
    pub handler_failures: u64,
    /// Started handlers that failed their start (handshake, confinement check,
    /// `post_start`).
    pub post_start_failures: u64,
    /// Handlers killed for a seccomp violation.
    pub violations: u64,
    /// Requests sent a second time, to a fresh handler, because their handler
    /// died under them (idempotent drivers only).
    pub retries: u64,
    /// Handlers killed through [`Driver::kill_handlers`](crate::Driver::kill_handlers).
    pub kills: u64,
    /// Latency of successful calls, end to end (including on-demand loads).
    pub latency: LatencySummary,
}

/// Nanoseconds for people: `850 ns`, `34.7 µs`, `1.25 ms`, `2.50 s`.
fn human_ns(ns: u64) -> String {
    match ns {
        0..=999 => format!("{ns} ns"),
        1_000..=999_999 => format!("{:.1} µs", ns as f64 / 1e3),
        1_000_000..=999_999_999 => format!("{:.2} ms", ns as f64 / 1e6),
        _ => format!("{:.2} s", ns as f64 / 1e9),
    }
}

impl fmt::Display for LatencySummary {
    /// `p50 34.7 µs, p90 40.1 µs, p99 112.0 µs, max 1.20 ms over 500 calls`, or
    /// `no calls`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.count == 0 {
            return f.write_str("no calls");
        }
        write!(
            f,
            "p50 {}, p90 {}, p99 {}, max {} over {} call{}",
            human_ns(self.p50_ns),
            human_ns(self.p90_ns),
            human_ns(self.p99_ns),
            human_ns(self.max_ns),
            self.count,
            if self.count == 1 { "" } else { "s" }
        )
    }
}

impl fmt::Display for Stats {
    /// One line for a log or a terminal, every counter named:
    ///
    /// ```
    /// let s = umd::Stats { requests: 3, failures: 1, retries: 1, starts: 2, restarts: 1, loads: 1, ..Default::default() };
    /// assert_eq!(
    ///     s.to_string(),
    ///     "3 requests (1 failed, 1 retried), 1 load, 0 unloads, 2 handlers started (1 restart), \
    ///      0 handler failures, 0 deadline kills, 0 failed starts, 0 seccomp violations, 0 killed on request; \
    ///      latency: no calls"
    /// );
    /// ```
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n =
            |count: u64, one: &str, many: &str| format!("{count} {}", if count == 1 { one } else { many });
        write!(
            f,
            "{} ({} failed, {} retried), {}, {}, {} ({}), {}, {}, {}, {}, {} killed on request; latency: {}",
            n(self.requests, "request", "requests"),
            self.failures,
            self.retries,
            n(self.loads, "load", "loads"),
            n(self.unloads, "unload", "unloads"),
            n(self.starts, "handler started", "handlers started"),
            n(self.restarts, "restart", "restarts"),
            n(self.handler_failures, "handler failure", "handler failures"),
            n(self.deadline_kills, "deadline kill", "deadline kills"),
            n(self.post_start_failures, "failed start", "failed starts"),
            n(self.violations, "seccomp violation", "seccomp violations"),
            self.kills,
            self.latency
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_bounds_cover_their_values() {
        for ns in (0..100_000u64).chain([1 << 20, (1 << 30) + 12345, u64::from(u32::MAX)]) {
            let b = bucket_of(ns);
            assert!(bucket_high(b) >= ns, "ns {ns} bucket {b} high {}", bucket_high(b));
            if b > 0 {
                assert!(bucket_high(b - 1) < ns, "ns {ns} should not fit bucket {}", b - 1);
            }
        }
    }

    #[test]
    fn stats_display_names_every_counter_and_the_latency() {
        let h = Histogram::default();
        h.record(Duration::from_micros(40));
        h.record(Duration::from_millis(2));
        let s = Stats {
            requests: 2,
            loads: 1,
            starts: 1,
            violations: 1,
            kills: 2,
            latency: h.snapshot(),
            ..Default::default()
        };
        let text = s.to_string();
        assert!(
            text.starts_with(
                "2 requests (0 failed, 0 retried), 1 load, 0 unloads, 1 handler started (0 restarts)"
            ),
            "{text}"
        );
        assert!(text.contains("1 seccomp violation, 2 killed on request"), "{text}");
        assert!(text.ends_with("max 2.00 ms over 2 calls"), "{text}");
        // Percentiles are bucket bounds (at most 12.5 % above the value).
        assert!(text.contains("latency: p50 41.0 µs, p90 2.00 ms"), "{text}");
    }

    #[test]
    fn percentiles_are_within_an_eighth() {
        let h = Histogram::default();
        for us in 1..=1000u64 {
            h.record(Duration::from_micros(us));
        }
        let s = h.snapshot();
        assert_eq!(s.count, 1000);
        assert!(s.p50_ns >= 500_000 && s.p50_ns <= 500_000 * 9 / 8, "{s:?}");
        assert!(s.p99_ns >= 990_000 && s.p99_ns <= 1_000_000, "{s:?}");
        assert_eq!(s.max_ns, 1_000_000);
    }
}
