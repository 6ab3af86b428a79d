//! Benchmarks of umd, each against a baseline measured in the same run.
//!
//! A figure for umd alone says little on a VM whose timings drift from minute to
//! minute. Every row here therefore pairs **our** workload (through [`umd::Driver`])
//! with a **baseline** that does the same job without umd — the
//! [plain manager](plain): a memfd, `fork` + `execveat`, blocking pipes, `read` and
//! `write` — and reports the ratio of the two, measured in alternating rounds of
//! the same run.
//!
//! | row | ours | baseline | target |
//! |---|---|---|---|
//! | `echo64-pinned`, `echo64-unpinned` | 64-byte framed request/reply to the echo handler ([`echo`]) | the echo handler in `raw 64` mode on blocking pipes | ≤ 1.5× the time |
//! | `sample128k-pinned`, `sample128k-unpinned` | [`umd_sample::SampleDriver::request`]: 4 bytes out, 128 KiB back, verified ([`bulk`]) | the same handler on default-size blocking pipes, same check | ≥ 0.8× the throughput |
//! | `payload16m` | a 16 MiB payload as a sealed memfd, including filling it ([`payload`]) | the same payload copied inline through the same channel | (ratio reported) |
//! | `cold-start` | load + spawn + `post_start` + first reply, then unload ([`cold`]) | memfd + `fork`/`execveat` + first reply + kill | ≤ 1.1× the time |
//! | `selftest` | [`umd_sample::selftest`]: 500 requests, 10 loads ([`selftest`]) | the plain manager running the same offsets, respawning every 50 | ≤ 1.5× the time |
//! | `verify-vs-sqv`, `verify-vs-gpgv` | `umd verify` of Debian's bookworm `InRelease`, a whole process ([`verify`]) | `sqv` (the same content as text + detached signature), `gpgv` | ≤ 0.8× sqv's time; gpgv reported |
//! | `verify-each` | `umd verify --each` over 40 files, one warm handler | `sqv` run 40 times | ≥ 2× the throughput |
//! | `rpm-build-vs-checksig` | `umd digests build` over 40 signed packages, a whole process ([`digests`]) | `rpmkeys --checksig` over the same 40 files, one process | ≤ 1× the time (headers/s = 40 / time) |
//! | `rpm-warm-vs-checksig` | the same 40 headers through a warm `PackageVerifier` in process | the same `rpmkeys` process | (ratio reported) |
//! | `digest-lookup` | one lookup in a signed list of 1 million SHA-256 digests (prefix index, interpolation search) | `HashSet<[u8; 32]>::contains` | (ratio reported) |
//! | `digest-open` | opening that list: Ed25519 verification and structure check | one SHA-256 pass over the same bytes | (ratio reported) |
//! | `guard-exec-cached`, `guard-exec-usercache`, `guard-exec-uncached` | fork + exec + wait of a 129-byte static program on a tmpfs guarded by `umd guard --enforce` ([`guard`]), verdict cached in the kernel, in user space, or not at all | the same on an unguarded tmpfs, interleaved op by op in the same batches | cached: at most 20 µs added; others reported |
//! | `guard-open-perm`, `guard-open-perm-uncached` | open + close of a listed file with `--open-perm` | the same with no guard | (reported) |
//! | `cold-unconfined`, `cold-ns-*` | cold start with no sandbox, or with namespaces on top of the default sandbox | as `cold-start` | (ratio reported: what each layer costs) |
//! | `serve-sample`, `serve-verify` | one client through a `umd serve` child: sample requests, or verifications with the keyring named by its handle ([`service`]) | the same driver in process, same pool | ≥ 0.8× (sample), ≥ 0.9× (verify) the throughput |
//!
//! `cold-start` and `selftest` run with the default (strict) sandbox; the baseline
//! is always unconfined, so their ratios include what confinement costs.
//!
//! Rows ending in `-pinned` run the caller and the handler on one CPU ([`pin`]):
//! on this kind of VM a cross-CPU wake-up (60–70 µs) dwarfs a same-CPU round trip
//! (~3 µs), so only pinned figures show what the code costs; unpinned ones show
//! what a caller will see without tuning.
//!
//! [`ROWS`] lists the rows; [`run::run_row`] measures one (medians over rounds);
//! `umd bench` prints them and `cargo bench -p umd-bench` runs them under criterion.
//!
//! ```no_run
//! use umd_bench::{run, ROWS};
//!
//! let cfg = run::RunConfig { rounds: 3, quick: true, cpu: umd_bench::pin::default_cpu().unwrap() };
//! let row = ROWS.iter().find(|r| r.name == "echo64-pinned").unwrap();
//! let result = run::run_row(row, &cfg, &mut |_| {}).unwrap();
//! println!("{:.2}x", result.ratio);
//! ```
#![deny(missing_docs)]
#![deny(unsafe_op_in_unsafe_fn)]

use std::io;
use std::time::Duration;

use serde::Serialize;

pub mod bulk;
pub mod cold;
pub mod digests;
pub mod echo;
pub mod guard;
pub mod payload;
pub mod pin;
pub mod plain;
pub mod run;
pub mod selftest;
pub mod service;
pub mod verify;

use pin::Pin;

/// One side of a row, set up and ready to be timed.
///
/// Setting up (building a driver, starting a long-lived handler, warming it) happens
/// when the workload is created; [`run`](Workload::run) times only the operations.
pub trait Workload {
    /// Runs `iters` operations and returns the wall-clock time they took
    /// ([`std::time::Instant`]). Every operation checks its reply.
    fn run(&mut self, iters: u64) -> Result<Duration, BenchError>;
}

/// A boxed workload, as row constructors return it.
pub type BoxedWorkload = Box<dyn Workload>;

/// Why a benchmark could not run.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// A system call or spawn of the plain manager failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The error.
        source: io::Error,
    },
    /// A umd driver call failed.
    #[error("{what}: {source}")]
    Driver {
        /// What was being done.
        what: &'static str,
        /// The error.
        source: umd::Error,
    },
    /// A reply was wrong: the measured figure would be meaningless.
    #[error("{what}: wrong reply: {detail}")]
    BadReply {
        /// What was being done.
        what: &'static str,
        /// What is wrong with it.
        detail: String,
    },
    /// The self-test reported failed requests.
    #[error("self-test: {failed} of {requests} requests failed (first: {first})")]
    Selftest {
        /// Requests sent.
        requests: usize,
        /// Requests that failed.
        failed: usize,
        /// The first failure.
        first: String,
    },
    /// A row's side failed; names the row.
    #[error("row {row} ({side}): {source}")]
    InRow {
        /// Row name.
        row: &'static str,
        /// `ours` or `baseline`.
        side: &'static str,
        /// What failed.
        source: Box<BenchError>,
    },
}

impl BenchError {
    pub(crate) fn io(what: &'static str) -> impl FnOnce(io::Error) -> BenchError {
        move |source| BenchError::Io { what, source }
    }

    pub(crate) fn driver(what: &'static str) -> impl FnOnce(umd::Error) -> BenchError {
        move |source| BenchError::Driver { what, source }
    }
}

/// What a row promises, from the issue that asked for it.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
#[serde(tag = "kind", content = "value", rename_all = "snake_case")]
pub enum Target {
    /// Our time per operation is at most this many times the baseline's.
    MaxTimeRatio(f64),
    /// Our throughput is at least this fraction of the baseline's.
    MinThroughputRatio(f64),
    /// Our time per operation exceeds the baseline's by at most this many
    /// seconds (an added cost, e.g. the guard's per-exec overhead), judged on
    /// the median of the per-round differences ([`run::RowResult::added_s`]).
    MaxAddedSeconds(f64),
    /// The ratio is reported; no target.
    Report,
}

impl Target {
    /// The row's ratio from the two median times per operation: time ratio
    /// (ours / baseline) for time targets, throughput ratio (baseline / ours
    /// time) for throughput targets.
    pub fn ratio(self, ours_s: f64, baseline_s: f64) -> f64 {
        match self {
            Target::MinThroughputRatio(_) => baseline_s / ours_s,
            Target::MaxTimeRatio(_) | Target::MaxAddedSeconds(_) | Target::Report => ours_s / baseline_s,
        }
    }

    /// What [`ratio`](Target::ratio) compares: `"time"` or `"throughput"`.
    pub fn ratio_of(self) -> &'static str {
        match self {
            Target::MinThroughputRatio(_) => "throughput",
            Target::MaxTimeRatio(_) | Target::MaxAddedSeconds(_) | Target::Report => "time",
        }
    }

    /// Whether `ratio` meets the target (`None` when there is none).
    pub fn met(self, ratio: f64) -> Option<bool> {
        match self {
            Target::MaxTimeRatio(max) => Some(ratio <= max),
            Target::MinThroughputRatio(min) => Some(ratio >= min),
            Target::MaxAddedSeconds(_) | Target::Report => None,
        }
    }
}

/// A benchmark row: what it measures, how often, and how to build both sides.
pub struct RowSpec {
    /// Name used by `--only` and in JSON (`echo64-pinned`).
    pub name: &'static str,
    /// One line for people.
    pub title: &'static str,
    /// What "ours" is.
    pub ours: &'static str,
    /// What the baseline is.
    pub baseline: &'static str,
    /// Whether both processes run on one CPU.
    pub pinned: bool,
    /// Payload bytes moved per operation, to report throughput (if meaningful).
    pub bytes_per_op: Option<u64>,
    /// The target.
    pub target: Target,
    /// Operations per round and side.
    pub iters: u64,
    /// Operations per round and side with `--quick`.
    pub quick_iters: u64,
    /// Builds our side.
    pub make_ours: fn(Pin) -> Result<BoxedWorkload, BenchError>,
    /// Builds the baseline side.
    pub make_baseline: fn(Pin) -> Result<BoxedWorkload, BenchError>,
}

impl RowSpec {
    /// The pinning this row asks for, given the CPU chosen for pinned rows.
    pub fn pin(&self, cpu: usize) -> Pin {
        if self.pinned {
            Pin::Cpu(cpu)
        } else {
            Pin::Unpinned
        }
    }
}

impl std::fmt::Debug for RowSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RowSpec").field("name", &self.name).finish_non_exhaustive()
    }
}

/// A cold-start row that differs from `cold-start` only in our side's policy: it
/// reports what a sandbox layer costs (no target).
const fn cold_variant(
    name: &'static str,
    title: &'static str,
    ours: &'static str,
    make_ours: fn(Pin) -> Result<BoxedWorkload, BenchError>,
) -> RowSpec {
    RowSpec {
        name,
        title,
        ours,
        baseline: "memfd + fork/execveat + 1 request + kill",
        pinned: false,
        bytes_per_op: None,
        target: Target::Report,
        iters: 60,
        quick_iters: 20,
        make_ours,
        make_baseline: cold::PlainCold::boxed,
    }
}

/// Every row, in the order `umd bench` prints them.
pub static ROWS: &[RowSpec] = &[
    RowSpec {
        name: "echo64-pinned",
        title: "64 B request/reply, one CPU",
        ours: "Driver::call, framed, echo handler",
        baseline: "raw 64 B write/read on blocking pipes",
        pinned: true,
        bytes_per_op: None,
        target: Target::MaxTimeRatio(1.5),
        iters: 20_000,
        quick_iters: 5_000,
        make_ours: echo::DriverEcho::boxed,
        make_baseline: echo::PlainEcho::boxed,
    },
    RowSpec {
        name: "echo64-unpinned",
        title: "64 B request/reply, unpinned",
        ours: "Driver::call, framed, echo handler",
        baseline: "raw 64 B write/read on blocking pipes",
        pinned: false,
        bytes_per_op: None,
        target: Target::MaxTimeRatio(1.5),
        iters: 3_000,
        quick_iters: 1_000,
        make_ours: echo::DriverEcho::boxed,
        make_baseline: echo::PlainEcho::boxed,
    },
    RowSpec {
        name: "sample128k-pinned",
        title: "128 KiB sample reply, one CPU",
        ours: "SampleDriver::request (raw mode, checked)",
        baseline: "4 B write, 128 KiB read, default pipes, same check",
        pinned: true,
        bytes_per_op: Some(umd_sample::REPLY_LEN as u64),
        target: Target::MinThroughputRatio(0.8),
        iters: 3_000,
        quick_iters: 800,
        make_ours: bulk::DriverSample::boxed,
        make_baseline: bulk::PlainSample::boxed,
    },
    RowSpec {
        name: "sample128k-unpinned",
        title: "128 KiB sample reply, unpinned",
        ours: "SampleDriver::request (raw mode, checked)",
        baseline: "4 B write, 128 KiB read, default pipes, same check",
        pinned: false,
        bytes_per_op: Some(umd_sample::REPLY_LEN as u64),
        target: Target::MinThroughputRatio(0.8),
        iters: 2_000,
        quick_iters: 500,
        make_ours: bulk::DriverSample::boxed,
        make_baseline: bulk::PlainSample::boxed,
    },
    RowSpec {
        name: "payload16m",
        title: "16 MiB payload, memfd vs inline",
        ours: "Request::Memfd (SealedMemfd::build + send), sum handler",
        baseline: "Request::Bytes, same socket channel, sum handler",
        pinned: false,
        bytes_per_op: Some(payload::PAYLOAD_LEN as u64),
        target: Target::Report,
        iters: 12,
        quick_iters: 4,
        make_ours: payload::MemfdPayload::boxed,
        make_baseline: payload::InlinePayload::boxed,
    },
    RowSpec {
        name: "cold-start",
        title: "cold start to first reply",
        ours: "request on an unloaded SampleDriver, then unload",
        baseline: "memfd + fork/execveat + 1 request + kill",
        pinned: false,
        bytes_per_op: None,
        target: Target::MaxTimeRatio(1.1),
        iters: 60,
        quick_iters: 20,
        make_ours: cold::DriverCold::boxed,
        make_baseline: cold::PlainCold::boxed,
    },
    cold_variant(
        "cold-unconfined",
        "cold start, no sandbox",
        "as cold-start, Policy::unconfined()",
        cold::DriverCold::boxed_unconfined,
    ),
    cold_variant(
        "cold-ns-user-ipc-uts",
        "cold start, + user/IPC/UTS namespaces",
        "as cold-start, + user, IPC and UTS namespaces",
        cold::DriverCold::boxed_user_ipc_uts,
    ),
    cold_variant(
        "cold-ns-user-mount",
        "cold start, + user/mount namespaces",
        "as cold-start, + user and mount namespaces",
        cold::DriverCold::boxed_user_mount,
    ),
    cold_variant(
        "cold-ns-pid-mount-ipc",
        "cold start, + PID/mount/IPC namespaces",
        "as cold-start, + PID, mount and IPC namespaces",
        cold::DriverCold::boxed_pid_mount_ipc,
    ),
    cold_variant(
        "cold-ns-user-net",
        "cold start, + user/network namespaces",
        "as cold-start, + user and network namespaces",
        cold::DriverCold::boxed_user_net,
    ),
    RowSpec {
        name: "verify-vs-sqv",
        title: "umd verify InRelease vs sqv",
        ours: "umd verify --keyring K InRelease (a process)",
        baseline: "sqv --keyring K Release.gpg Release (same content, detached)",
        pinned: false,
        bytes_per_op: None,
        target: Target::MaxTimeRatio(0.8),
        iters: 30,
        quick_iters: 10,
        make_ours: verify::umd_single,
        make_baseline: verify::sqv_single,
    },
    RowSpec {
        name: "verify-vs-gpgv",
        title: "umd verify InRelease vs gpgv",
        ours: "umd verify --keyring K InRelease (a process)",
        baseline: "gpgv --keyring K InRelease",
        pinned: false,
        bytes_per_op: None,
        target: Target::Report,
        iters: 30,
        quick_iters: 10,
        make_ours: verify::umd_single,
        make_baseline: verify::gpgv_single,
    },
    RowSpec {
        name: "verify-each",
        title: "40 files: umd verify --each vs looping sqv",
        ours: "umd verify --each over 40 InRelease files (one process, one handler)",
        baseline: "sqv once per file (40 processes)",
        pinned: false,
        bytes_per_op: None,
        target: Target::MinThroughputRatio(2.0),
        iters: 3,
        quick_iters: 1,
        make_ours: verify::umd_each,
        make_baseline: verify::sqv_loop,
    },
    RowSpec {
        name: "rpm-build-vs-checksig",
        title: "40 RPM headers: umd digests build vs rpmkeys --checksig",
        ours: "umd digests build --keyring K --rpm 40 files (a process)",
        baseline: "rpmkeys --checksig 40 files (a process)",
        pinned: false,
        bytes_per_op: None,
        target: Target::MaxTimeRatio(1.0),
        iters: 5,
        quick_iters: 2,
        make_ours: digests::umd_build,
        make_baseline: digests::rpmkeys_checksig,
    },
    RowSpec {
        name: "rpm-warm-vs-checksig",
        title: "40 RPM headers: warm PackageVerifier vs rpmkeys --checksig",
        ours: "PackageVerifier::package x 40, warm handlers (in process)",
        baseline: "rpmkeys --checksig 40 files (a process)",
        pinned: false,
        bytes_per_op: None,
        target: Target::Report,
        iters: 5,
        quick_iters: 2,
        make_ours: digests::umd_warm,
        make_baseline: digests::rpmkeys_checksig,
    },
    RowSpec {
        name: "digest-lookup",
        title: "lookup in 1M SHA-256 digests",
        ours: "DigestList::lookup (prefix index + interpolation search in the signed list)",
        baseline: "HashSet<[u8; 32]>::contains",
        pinned: false,
        bytes_per_op: None,
        target: Target::Report,
        iters: 200_000,
        quick_iters: 50_000,
        make_ours: digests::list_lookup,
        make_baseline: digests::hashset_lookup,
    },
    RowSpec {
        name: "digest-open",
        title: "open a list of 1M digests (36 MB)",
        ours: "DigestList::open: Ed25519 over SHA-256 of every byte, structure check, prefix index",
        baseline: "one SHA-256 pass over the same bytes",
        pinned: false,
        bytes_per_op: None,
        target: Target::Report,
        iters: 5,
        quick_iters: 2,
        make_ours: digests::list_open,
        make_baseline: digests::sha256_pass,
    },
    RowSpec {
        name: "guard-exec-cached",
        title: "exec of a tiny static binary, guard with kernel-cached verdict",
        ours: "fork+exec+wait under umd guard --enforce --cache kernel (listed, warm)",
        baseline: "the same on an unguarded tmpfs, interleaved",
        pinned: false,
        bytes_per_op: None,
        target: Target::MaxAddedSeconds(20e-6),
        iters: 2_000,
        quick_iters: 500,
        make_ours: guard::exec_kernel_cache,
        make_baseline: guard::exec_kernel_cache_plain,
    },
    RowSpec {
        name: "guard-exec-cached-pinned",
        title: "exec, kernel-cached verdict, one CPU",
        ours: "as guard-exec-cached; helper, guard and programs on one CPU",
        baseline: "the same on an unguarded tmpfs, interleaved",
        pinned: true,
        bytes_per_op: None,
        target: Target::MaxAddedSeconds(20e-6),
        iters: 2_000,
        quick_iters: 500,
        make_ours: guard::exec_kernel_cache,
        make_baseline: guard::exec_kernel_cache_plain,
    },
    RowSpec {
        name: "guard-exec-usercache-pinned",
        title: "exec, user-space cached verdict, one CPU",
        ours: "as guard-exec-usercache; helper, guard and programs on one CPU",
        baseline: "the same on an unguarded tmpfs, interleaved",
        pinned: true,
        bytes_per_op: None,
        target: Target::Report,
        iters: 2_000,
        quick_iters: 500,
        make_ours: guard::exec_user_cache,
        make_baseline: guard::exec_user_cache_plain,
    },
    RowSpec {
        name: "guard-exec-usercache",
        title: "exec of a tiny static binary, guard with user-space cached verdict",
        ours: "fork+exec+wait under umd guard --enforce --cache user (listed, warm)",
        baseline: "the same on an unguarded tmpfs, interleaved",
        pinned: false,
        bytes_per_op: None,
        target: Target::Report,
        iters: 2_000,
        quick_iters: 500,
        make_ours: guard::exec_user_cache,
        make_baseline: guard::exec_user_cache_plain,
    },
    RowSpec {
        name: "guard-exec-uncached",
        title: "exec of a tiny static binary, guard hashing every time",
        ours: "fork+exec+wait under umd guard --enforce --cache off (listed)",
        baseline: "the same on an unguarded tmpfs, interleaved",
        pinned: false,
        bytes_per_op: None,
        target: Target::Report,
        iters: 2_000,
        quick_iters: 500,
        make_ours: guard::exec_no_cache,
        make_baseline: guard::exec_no_cache_plain,
    },
    RowSpec {
        name: "guard-open-perm",
        title: "open+close of a listed file, guard with --open-perm (cached)",
        ours: "open+close under umd guard --enforce --open-perm --cache kernel",
        baseline: "the same on an unguarded tmpfs, interleaved",
        pinned: false,
        bytes_per_op: None,
        target: Target::Report,
        iters: 20_000,
        quick_iters: 5_000,
        make_ours: guard::open_perm_kernel_cache,
        make_baseline: guard::open_perm_kernel_cache_plain,
    },
    RowSpec {
        name: "guard-open-perm-uncached",
        title: "open+close of a listed file, guard with --open-perm, hashing every time",
        ours: "open+close under umd guard --enforce --open-perm --cache off",
        baseline: "the same on an unguarded tmpfs, interleaved",
        pinned: false,
        bytes_per_op: None,
        target: Target::Report,
        iters: 5_000,
        quick_iters: 1_000,
        make_ours: guard::open_perm_no_cache,
        make_baseline: guard::open_perm_no_cache_plain,
    },
    RowSpec {
        name: "serve-sample",
        title: "umd serve sample, 1 client, vs in-process",
        ours: "Client::sample through a umd serve child (pool of 2), reply checked by the service",
        baseline: "SampleDriver::request in this process (pool of 2)",
        pinned: false,
        bytes_per_op: None,
        target: Target::MinThroughputRatio(0.8),
        iters: 2_000,
        quick_iters: 500,
        make_ours: service::ServedSample::boxed,
        make_baseline: service::LocalSample::boxed,
    },
    RowSpec {
        name: "serve-verify",
        title: "umd serve verify InRelease, 1 client, vs in-process",
        ours: "Client::verify_keyrings through a umd serve child (keyring by handle, pool of 2)",
        baseline: "Verifier::verify_cleartext in this process (keyring checked once, pool of 2)",
        pinned: false,
        bytes_per_op: None,
        target: Target::MinThroughputRatio(0.9),
        iters: 100,
        quick_iters: 30,
        make_ours: service::ServedVerify::boxed,
        make_baseline: service::LocalVerify::boxed,
    },
    RowSpec {
        name: "selftest",
        title: "self-test, 500 requests, 10 loads",
        ours: "umd_sample::selftest (defaults)",
        baseline: "plain manager, respawn every 50",
        pinned: false,
        bytes_per_op: None,
        target: Target::MaxTimeRatio(1.5),
        iters: 3,
        quick_iters: 1,
        make_ours: selftest::DriverSelftest::boxed,
        make_baseline: selftest::PlainSelftest::boxed,
    },
];

/// The rows whose name equals `pattern` or starts with it (`echo64` selects both
/// echo rows, `echo64-pinned` one).
pub fn select_rows(pattern: &str) -> impl Iterator<Item = &'static RowSpec> + '_ {
    ROWS.iter().filter(move |r| r.name == pattern || r.name.starts_with(pattern))
}
