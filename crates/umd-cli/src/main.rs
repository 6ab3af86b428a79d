//! `umd`: the command line of the umd user mode driver manager.
//!
//! Thin on purpose: argument parsing, output and exit statuses live here; every
//! decision lives in the library crates.

mod bench;
mod digests;
mod gpgv;
mod guard;
mod pgp;
mod service;

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use umd::{Policy, PolicySummary};
use umd_sample::{HandlerSource, Offset, SampleDriver, SampleOptions, SelftestConfig};

/// Exit status: success.
pub(crate) const EXIT_OK: u8 = 0;
/// Exit status: a negative verdict (a check failed).
pub(crate) const EXIT_VERDICT: u8 = 1;
/// Exit status: usage or system error.
pub(crate) const EXIT_ERROR: u8 = 2;

#[derive(Parser)]
#[command(
    name = "umd",
    version,
    about = "User mode drivers: run untrusted-input parsers in small, restartable handler processes",
    long_about = "umd runs parsers of untrusted data in handler processes started from sealed memfds, \
                  talks to them over their stdin/stdout, restarts them when they die and kills them \
                  when they hang. The trusted side (the manager) checks every answer.\n\n\
                  Exit status: 0 success, 1 a negative verdict (a check failed), 2 usage or system error.",
    after_help = "Examples:\n  umd sample request --offset 4096\n  umd sample selftest --json\n  umd bench --quick"
)]
struct Cli {
    /// Log level for diagnostics on stderr (error, warn, info, debug, trace).
    #[arg(long, global = true, default_value = "warn", value_name = "LEVEL")]
    log: String,
    /// Use the umd service at this socket (also UMD_SOCKET) for `sample`,
    /// `verify` and `ctl`; `serve` listens there. Without it, `sample` and
    /// `verify` run an in-process manager.
    #[arg(long, global = true, value_name = "PATH")]
    socket: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// The sample driver (the kernel patch set's acceptance test).
    #[command(subcommand)]
    Sample(SampleCommand),
    /// Verify OpenPGP signatures (detached or cleartext, e.g. InRelease) against
    /// keyrings; the packets are parsed in a sandboxed handler, checked and
    /// verified by this process. Exit 0 verified, 1 bad, 2 cannot verify.
    Verify(pgp::VerifyArgs),
    /// A drop-in for GnuPG's gpgv (what apt runs): gpgv's options, status lines
    /// (--status-fd) and exit statuses, umd's verdicts. Also what runs when the
    /// binary is called as `gpgv` or `umd-gpgv`. `umd gpgv --help` for its options.
    #[command(disable_help_flag = true, disable_version_flag = true)]
    Gpgv(GpgvArgs),
    /// Create a `umd-gpgv` (or `gpgv`) link to this binary, for apt's
    /// APT::Key::GPGVCommand; never replaces an existing file.
    InstallGpgv(gpgv::InstallArgs),
    /// OpenPGP certificates.
    #[command(subcommand)]
    Pgp(pgp::PgpCommand),
    /// Digest lists: verified file digests from signed RPM headers.
    #[command(subcommand)]
    Digests(digests::DigestsCommand),
    /// Exec control: allow or deny programs on chosen mounts by a signed digest
    /// list (fanotify). Runs until SIGTERM; SIGHUP reloads the list.
    Guard(guard::GuardArgs),
    /// The far side of the guard's benchmark rows (run by `umd bench`).
    #[command(hide = true)]
    GuardBenchHelper(guard::HelperArgs),
    /// Measure umd against baselines measured in the same run.
    Bench(bench::BenchArgs),
    /// Run the umd service: every driver behind a Unix socket (default
    /// /run/umd/umd.sock, or the socket systemd passes).
    Serve(service::ServeArgs),
    /// Control a running service (root and the configured admin group).
    #[command(subcommand)]
    Ctl(service::CtlCommand),
    /// Write the systemd units (umd.service, umd.socket) and an example
    /// configuration.
    InstallUnits(service::InstallArgs),
    /// Measure sample requests through the service's socket against the same
    /// driver in-process, for 1, 4 and 16 clients.
    BenchService(service::BenchServiceArgs),
}

/// `umd gpgv`: everything after it goes to gpgv's own option parser.
#[derive(Args)]
struct GpgvArgs {
    /// gpgv's options and files (see `umd gpgv --help`).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, value_name = "ARGS")]
    args: Vec<std::ffi::OsString>,
}

#[derive(Subcommand)]
enum SampleCommand {
    /// Send one offset; the handler replies 128 KiB with that byte set, which the
    /// manager verifies.
    Request {
        /// Byte offset to set, in 0..131072.
        #[arg(long, value_name = "N")]
        offset: u64,
        #[command(flatten)]
        common: SampleArgs,
    },
    /// The kernel self-test: requests at random offsets ((random % 128) * 1024),
    /// unloading the driver every N requests so it must be loaded again on demand.
    Selftest {
        /// Requests to send.
        #[arg(long, default_value_t = 500, value_name = "N")]
        iterations: usize,
        /// Unload the driver after every N requests (0 = never).
        #[arg(long, default_value_t = 50, value_name = "N")]
        unload_every: usize,
        /// Seed of the random offsets [default: 7695716 (0x756d64, "umd"): fixed, so
        /// runs are repeatable].
        #[arg(long, value_name = "S")]
        seed: Option<u64>,
        #[command(flatten)]
        common: SampleArgs,
    },
}

#[derive(Args)]
struct SampleArgs {
    /// Run this program (speaking the raw sample wire format) instead of the
    /// embedded handler. It must be an ELF executable.
    #[arg(long, value_name = "PATH")]
    handler: Option<PathBuf>,
    /// Deadline of each request, in milliseconds.
    #[arg(long, default_value_t = 5000, value_name = "MS")]
    timeout_ms: u64,
    /// Print a JSON object on stdout instead of text.
    #[arg(long)]
    json: bool,
    /// Handler confinement: `strict` (the default: unprivileged identity, resource
    /// limits, no-new-privileges, Landlock, seccomp allow-list) or `off` (the kernel
    /// design's unconfined handler; for comparisons only).
    #[arg(long, value_enum, default_value_t = SandboxMode::Strict, value_name = "MODE")]
    sandbox: SandboxMode,
    /// Add one system call to the handler's seccomp allow-list (repeatable). The
    /// widening is shown in the output.
    #[arg(long = "allow-syscall", value_name = "NAME")]
    allow_syscall: Vec<String>,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum SandboxMode {
    /// Every confinement layer on (see docs/design.md, "Threat model").
    Strict,
    /// No confinement at all.
    Off,
}

impl SampleArgs {
    fn in_process_only(&self) -> service::InProcessOnly {
        service::InProcessOnly {
            handler: self.handler.is_some(),
            sandbox_off: self.sandbox == SandboxMode::Off,
            widened: !self.allow_syscall.is_empty(),
        }
    }

    fn driver(&self) -> SampleDriver {
        let source = match &self.handler {
            Some(p) => HandlerSource::Path(p.clone()),
            None => HandlerSource::Embedded,
        };
        SampleDriver::new(
            source,
            SampleOptions {
                timeout: Duration::from_millis(self.timeout_ms),
                policy: self.policy(),
                ..Default::default()
            },
        )
    }

    fn policy(&self) -> Policy {
        let base = match self.sandbox {
            SandboxMode::Strict => Policy::default(),
            SandboxMode::Off => Policy::unconfined(),
        };
        self.allow_syscall.iter().fold(base, |p, name| p.allow_syscall(name))
    }
}

fn init_logging(level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .or_else(|_| tracing_subscriber::EnvFilter::try_new(level))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .init();
}

fn main() -> ExitCode {
    // `UMD_REQUIRE_SANDBOX=1`: a handler that would run without a sandbox layer
    // this kernel lacks is not started at all (README, "Prerequisites"). Every
    // driver of this process, the service's included, gets it through
    // `Policy::default()`; the library itself reads no environment variable.
    Policy::set_default_require_all(std::env::var_os("UMD_REQUIRE_SANDBOX").is_some_and(|v| v == "1"));
    // Run as `gpgv` or `umd-gpgv` (a link made by `umd install-gpgv`): gpgv's
    // command line, not umd's.
    let mut args = std::env::args_os();
    if let Some(prog) = args.next().as_deref().and_then(gpgv::program_name) {
        init_logging("warn");
        return ExitCode::from(gpgv::run(prog, &args.collect::<Vec<_>>()));
    }
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { EXIT_ERROR } else { EXIT_OK };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    init_logging(&cli.log);

    let socket = service::named_socket(&cli.socket);
    let explicit_socket = cli.socket.is_some();
    let code = match cli.command {
        Command::Pgp(_)
        | Command::Bench(_)
        | Command::InstallUnits(_)
        | Command::BenchService(_)
        | Command::Gpgv(_)
        | Command::InstallGpgv(_)
            if explicit_socket =>
        {
            eprintln!("umd: --socket: this command does not use the service (only sample, verify, ctl and serve do)");
            EXIT_ERROR
        }
        Command::Sample(SampleCommand::Request { offset, common }) => match &socket {
            Some(s) => service::sample_request(s, offset, common.json, &common.in_process_only()),
            None => sample_request(offset, &common),
        },
        Command::Sample(SampleCommand::Selftest { iterations, unload_every, seed, common }) => {
            let cfg = SelftestConfig {
                iterations,
                unload_every,
                seed: seed.unwrap_or(SelftestConfig::default().seed),
            };
            match &socket {
                Some(s) => service::sample_selftest(s, &cfg, common.json, &common.in_process_only()),
                None => sample_selftest(&cfg, &common),
            }
        }
        Command::Verify(args) => match &socket {
            Some(s) => service::verify(s, &args),
            None => pgp::verify(&args),
        },
        Command::Serve(args) => service::serve(socket, &args),
        Command::Ctl(cmd) => service::ctl(socket, &cmd),
        Command::InstallUnits(args) => service::install_units(&args),
        Command::BenchService(args) => service::bench(&args),
        Command::Pgp(pgp::PgpCommand::Keys { files, json }) => pgp::keys(&files, json),
        Command::Gpgv(GpgvArgs { args }) => gpgv::run("umd gpgv", &args),
        Command::InstallGpgv(args) => gpgv::install(&args),
        Command::Digests(cmd) => digests::run(&cmd),
        Command::Guard(args) => guard::run(&args),
        Command::GuardBenchHelper(args) => guard::bench_helper(&args),
        Command::Bench(args) => bench::run(&args),
    };
    ExitCode::from(code)
}

fn exit_for(e: &umd::Error) -> u8 {
    if e.is_verdict() {
        EXIT_VERDICT
    } else {
        EXIT_ERROR
    }
}

fn sample_request(offset: u64, args: &SampleArgs) -> u8 {
    // Checked before any handler runs.
    let offset = match Offset::new(offset) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("umd: sample request: {e}");
            return EXIT_ERROR;
        }
    };
    let sample = args.driver();
    let result = sample.request(offset);
    let stats = sample.driver().stats();
    sample.driver().unload();
    match result {
        Ok(()) => {
            if args.json {
                let v = serde_json::json!({"driver": "sample", "offset": offset.get(), "verdict": "ok",
                    "latency_ns": stats.latency.max_ns});
                println!("{v}");
            } else {
                println!("sample: {offset}: ok (exactly byte {} of 131072 set)", offset.get());
            }
            EXIT_OK
        }
        Err(e) => {
            if args.json {
                let v = serde_json::json!({"driver": "sample", "offset": offset.get(), "verdict": "error",
                    "error": e.to_string()});
                println!("{v}");
            }
            eprintln!("umd: {e}");
            exit_for(&e)
        }
    }
}

fn sample_selftest(cfg: &SelftestConfig, args: &SampleArgs) -> u8 {
    let sample = args.driver();
    let policy = match sample.policy_summary() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("umd: sample selftest: sandbox: {e}");
            return EXIT_ERROR;
        }
    };
    let bar = if !args.json && std::io::stderr().is_terminal() {
        indicatif::ProgressBar::new(cfg.iterations as u64).with_style(
            indicatif::ProgressStyle::with_template("{prefix} [{bar:40}] {pos}/{len} {per_sec}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        )
    } else {
        indicatif::ProgressBar::hidden()
    };
    bar.set_prefix("selftest");
    let report = umd_sample::selftest(&sample, cfg, |n| bar.set_position(n as u64));
    bar.finish_and_clear();
    sample.driver().unload();
    if args.json {
        let doc = serde_json::to_value(&report).and_then(|mut v| {
            if let Some(obj) = v.as_object_mut() {
                obj.insert("policy".into(), serde_json::to_value(&policy)?);
            }
            serde_json::to_string_pretty(&v)
        });
        match doc {
            Ok(s) => println!("{s}"),
            Err(e) => {
                eprintln!("umd: encoding the report: {e}");
                return EXIT_ERROR;
            }
        }
    } else {
        let l = &report.latency;
        println!(
            "sample selftest: {} requests, {} passed, {} failed",
            report.requests, report.passed, report.failed
        );
        println!(
            "  loads {}  unloads {}  starts {}  restarts {}  (unload every {}, seed {})",
            report.loads, report.unloads, report.starts, report.restarts, report.unload_every, report.seed
        );
        println!(
            "  latency p50 {}  p90 {}  p99 {}  max {}  total {:.1} ms",
            fmt_ns(l.p50_ns),
            fmt_ns(l.p90_ns),
            fmt_ns(l.p99_ns),
            fmt_ns(l.max_ns),
            report.elapsed_s * 1e3
        );
        println!("  sandbox: {}", describe_policy(&policy));
        if report.violations > 0 {
            println!("  seccomp violations: {}", report.violations);
        }
        for f in &report.failures {
            println!("  request {} (offset {}): {}", f.index, f.offset, f.error);
        }
        println!("{}", if report.ok() { "PASS" } else { "FAIL" });
    }
    if report.ok() {
        EXIT_OK
    } else {
        EXIT_VERDICT
    }
}

/// One line describing the confinement, for people.
fn describe_policy(s: &PolicySummary) -> String {
    let p = &s.policy;
    if !p.is_confined() {
        return "off (unconfined handlers)".into();
    }
    let mut parts = vec![format!("uid {} gid {}", s.handler_uid, s.handler_gid)];
    if let Some(l) = &p.limits {
        parts.push(format!(
            "limits as={}MiB nofile={} nproc={} cpu={}s fsize={} core={}",
            l.address_space >> 20,
            l.open_files,
            l.processes,
            l.cpu_seconds,
            l.file_size,
            l.core
        ));
    }
    parts.push("no-new-privs".into());
    if p.landlock {
        parts.push(format!("Landlock ABI {}", s.landlock_abi));
    }
    if p.seccomp {
        parts.push(format!(
            "seccomp ({} calls, installed by the {})",
            s.allowed_syscalls.len(),
            s.seccomp_installed_by
        ));
    }
    if !p.extra_syscalls.is_empty() {
        parts.push(format!("WIDENED by: {}", p.extra_syscalls.join(", ")));
    }
    let ns = &p.namespaces;
    let names: Vec<&str> = [
        (ns.user, "user"),
        (ns.mount, "mount"),
        (ns.network, "net"),
        (ns.ipc, "ipc"),
        (ns.uts, "uts"),
        (ns.pid, "pid"),
    ]
    .iter()
    .filter(|(on, _)| *on)
    .map(|(_, n)| *n)
    .collect();
    parts.push(if names.is_empty() {
        "namespaces: none".into()
    } else {
        format!("namespaces: {}", names.join("+"))
    });
    if let Some(cg) = &p.cgroup {
        parts.push(format!("cgroup pids.max={} memory={}MiB", cg.pids_max, cg.memory_bytes >> 20));
    }
    parts.join(", ")
}

/// Formats nanoseconds for people.
pub(crate) fn fmt_ns(ns: u64) -> String {
    match ns {
        0..=999 => format!("{ns} ns"),
        1_000..=999_999 => format!("{:.1} us", ns as f64 / 1e3),
        _ => format!("{:.2} ms", ns as f64 / 1e6),
    }
}
