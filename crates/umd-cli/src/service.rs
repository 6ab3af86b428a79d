//! The service side of the CLI: `umd serve`, `umd ctl`, `umd install-units`, and
//! `umd sample ...` / `umd verify ...` sent to a running service when a socket
//! is named (`--socket PATH` or `UMD_SOCKET`).
//!
//! A named socket with no service behind it is an error (exit 2), never a silent
//! fallback to an in-process manager.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Args, Subcommand};
use serde_json::json;
use umd_service::client::{Client, ClientError, Keyrings};
use umd_service::config::DEFAULT_CONFIG;
use umd_service::proto::{DriverName, ErrorKind, SigVerdict, VerifyReply, VerifyStatus};
use umd_service::server::{Listen, ServeOptions, Server, DEFAULT_SOCKET};

use crate::pgp::VerifyArgs;
use crate::{EXIT_ERROR, EXIT_OK, EXIT_VERDICT};

/// The environment variable naming the service's socket.
pub const SOCKET_ENV: &str = "UMD_SOCKET";

/// The socket to use: `--socket`, else `UMD_SOCKET` (if not empty).
pub fn named_socket(flag: &Option<PathBuf>) -> Option<PathBuf> {
    flag.clone().or_else(|| std::env::var_os(SOCKET_ENV).filter(|v| !v.is_empty()).map(PathBuf::from))
}

/// `umd serve`.
#[derive(Args)]
pub struct ServeArgs {
    /// Configuration file (who may call which driver, limits, pool sizes).
    /// Without it, /etc/umd/umd.toml if it exists, else root only.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(flatten)]
    guard: crate::guard::ServeGuardArgs,
}

/// `umd ctl ...`: control a running service (root and the admin group).
#[derive(Subcommand)]
pub enum CtlCommand {
    /// Service and driver state: pid, uptime, connections, handlers.
    Status {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Load a driver now (start a handler and run its start check).
    Load {
        /// `sample` or `pgp`.
        #[arg(value_name = "DRIVER")]
        driver: String,
    },
    /// Unload a driver: kill and reap its handlers; the next request loads it.
    Unload {
        /// `sample` or `pgp`.
        #[arg(value_name = "DRIVER")]
        driver: String,
    },
    /// Counters of the service and of every driver.
    Stats {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// `umd install-units`.
#[derive(Args)]
pub struct InstallArgs {
    /// Where the unit files go.
    #[arg(long, default_value = "/etc/systemd/system", value_name = "DIR")]
    unit_dir: PathBuf,
    /// The `umd` binary the service runs (default: this one).
    #[arg(long, value_name = "PATH")]
    bin: Option<PathBuf>,
    /// The configuration file the service reads; an example is written there if
    /// none exists.
    #[arg(long, default_value = DEFAULT_CONFIG, value_name = "FILE")]
    config: PathBuf,
}

fn connect(socket: &Path) -> Result<Client, u8> {
    Client::connect(socket).map_err(|e| {
        eprintln!("umd: {e}");
        EXIT_ERROR
    })
}

/// Exit status and message for a failed request.
fn failed(what: &str, e: &ClientError) -> u8 {
    eprintln!("umd: {what}: {e}");
    match e {
        ClientError::Service(s) if s.kind == ErrorKind::Verdict => EXIT_VERDICT,
        _ => EXIT_ERROR,
    }
}

/// `umd serve`.
pub fn serve(socket: Option<PathBuf>, args: &ServeArgs) -> u8 {
    let activated = match umd_service::activation::take_listener() {
        Ok(fd) => fd,
        Err(e) => {
            eprintln!("umd: serve: {e}");
            return EXIT_ERROR;
        }
    };
    let listen = match activated {
        Some(fd) => {
            if socket.is_some() {
                tracing::warn!("socket activation: the passed socket is used, --socket/UMD_SOCKET ignored");
            }
            Listen::Activated(Arc::new(fd))
        }
        None => Listen::Path(socket.unwrap_or_else(|| PathBuf::from(DEFAULT_SOCKET))),
    };
    let opts = ServeOptions {
        listen,
        config_required: args.config.is_some(),
        config_path: args.config.clone().unwrap_or_else(|| PathBuf::from(DEFAULT_CONFIG)),
    };
    let server = match Server::new(&opts) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("umd: serve: {e}");
            return EXIT_ERROR;
        }
    };
    let guard = match crate::guard::ServiceGuard::start(&args.guard) {
        Ok(g) => g,
        Err(e) => {
            eprintln!("umd: serve: {e}");
            return EXIT_ERROR;
        }
    };
    if let Some(g) = &guard {
        server.on_reload(g.reloader());
    }
    let served = server.run(true);
    if let Some(g) = guard {
        g.stop();
    }
    match served {
        Ok(()) => EXIT_OK,
        Err(e) => {
            eprintln!("umd: serve: {e}");
            EXIT_ERROR
        }
    }
}

/// `umd install-units`.
pub fn install_units(args: &InstallArgs) -> u8 {
    let bin = match args.bin.clone().map(Ok).unwrap_or_else(std::env::current_exe) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("umd: install-units: cannot find this executable ({e}); give --bin");
            return EXIT_ERROR;
        }
    };
    match umd_service::units::install(&args.unit_dir, &bin, &args.config) {
        Ok(done) => {
            for p in &done.written {
                println!("wrote {}", p.display());
            }
            for p in &done.kept {
                println!("kept {} (exists)", p.display());
            }
            println!("next: systemctl daemon-reload && systemctl enable --now umd.socket");
            EXIT_OK
        }
        Err(e) => {
            eprintln!("umd: install-units: {e}");
            EXIT_ERROR
        }
    }
}

fn driver_arg(s: &str) -> Result<DriverName, u8> {
    DriverName::parse(s).ok_or_else(|| {
        let all: Vec<_> = DriverName::ALL.iter().map(|d| d.as_str()).collect();
        eprintln!("umd: ctl: unknown driver {s:?} (drivers: {})", all.join(", "));
        EXIT_ERROR
    })
}

fn ms(ns: u64) -> String {
    format!("{:.3} ms", ns as f64 / 1e6)
}

/// `umd ctl ...` against `socket` (default: the default socket).
pub fn ctl(socket: Option<PathBuf>, cmd: &CtlCommand) -> u8 {
    let socket = socket.unwrap_or_else(|| PathBuf::from(DEFAULT_SOCKET));
    let mut c = match connect(&socket) {
        Ok(c) => c,
        Err(code) => return code,
    };
    match cmd {
        CtlCommand::Status { json } => {
            match c.status() {
                Ok(s) => {
                    if *json {
                        let drivers: Vec<_> = s
                        .drivers
                        .iter()
                        .map(|d| json!({"driver": d.driver.as_str(), "loaded": d.loaded, "handlers": d.handlers,
                            "idle": d.idle, "pool_size": d.pool_size}))
                        .collect();
                        println!(
                            "{}",
                            json!({"version": s.version, "pid": s.pid, "uptime_s": s.uptime_s, "connections": s.connections,
                            "config_generation": s.config_generation, "drivers": drivers})
                        );
                    } else {
                        println!(
                            "umd service {} (pid {}), up {} s, {} connections, configuration generation {}",
                            s.version, s.pid, s.uptime_s, s.connections, s.config_generation
                        );
                        for d in &s.drivers {
                            let state = if d.loaded { "loaded" } else { "not loaded" };
                            println!(
                                "  {:<7} {state:<10} handlers {:?} (idle {}, pool {})",
                                d.driver.as_str(),
                                d.handlers,
                                d.idle,
                                d.pool_size
                            );
                        }
                    }
                    EXIT_OK
                }
                Err(e) => failed("ctl status", &e),
            }
        }
        CtlCommand::Load { driver } => {
            let d = match driver_arg(driver) {
                Ok(d) => d,
                Err(code) => return code,
            };
            match c.load(d) {
                Ok(true) => {
                    println!("{d}: already loaded");
                    EXIT_OK
                }
                Ok(false) => {
                    println!("{d}: loaded");
                    EXIT_OK
                }
                Err(e) => failed(&format!("ctl load {d}"), &e),
            }
        }
        CtlCommand::Unload { driver } => {
            let d = match driver_arg(driver) {
                Ok(d) => d,
                Err(code) => return code,
            };
            match c.unload(d) {
                Ok(true) => {
                    println!("{d}: unloaded");
                    EXIT_OK
                }
                Ok(false) => {
                    println!("{d}: was not loaded");
                    EXIT_OK
                }
                Err(e) => failed(&format!("ctl unload {d}"), &e),
            }
        }
        CtlCommand::Stats { json } => match c.stats() {
            Ok(s) => {
                if *json {
                    match serde_json::to_string_pretty(&stats_json(&s)) {
                        Ok(t) => println!("{t}"),
                        Err(e) => {
                            eprintln!("umd: ctl stats: {e}");
                            return EXIT_ERROR;
                        }
                    }
                } else {
                    println!(
                        "connections accepted {} refused {}; requests {} denied {} busy {} bad frames {} timeouts {}; reloads {} ({} rejected)",
                        s.accepted, s.refused, s.requests, s.denied, s.busy, s.bad_frames, s.timeouts, s.reloads, s.reload_errors
                    );
                    for d in &s.drivers {
                        let t = &d.stats;
                        println!(
                            "  {:<7} requests {} failures {} loads {} unloads {} starts {} restarts {} deadline kills {} p50 {} p99 {} \
                             (retries {} failed starts {} handler failures {} violations {} kills {})",
                            d.driver, t.requests, t.failures, t.loads, t.unloads, t.starts, t.restarts, t.deadline_kills,
                            ms(t.latency.p50_ns), ms(t.latency.p99_ns), t.retries, t.post_start_failures,
                            t.handler_failures, t.violations, t.kills
                        );
                    }
                }
                EXIT_OK
            }
            Err(e) => failed("ctl stats", &e),
        },
    }
}

fn stats_json(s: &umd_service::proto::ServiceStats) -> serde_json::Value {
    let drivers: Vec<_> = s
        .drivers
        .iter()
        .map(|d| {
            let t = &d.stats;
            json!({"driver": d.driver, "requests": t.requests, "failures": t.failures, "loads": t.loads,
                "unloads": t.unloads, "starts": t.starts, "restarts": t.restarts, "deadline_kills": t.deadline_kills,
                "handler_failures": t.handler_failures, "violations": t.violations,
                "post_start_failures": t.post_start_failures, "retries": t.retries, "kills": t.kills,
                "latency": {"p50_ns": t.latency.p50_ns, "p99_ns": t.latency.p99_ns, "max_ns": t.latency.max_ns,
                    "p90_ns": t.latency.p90_ns, "mean_ns": t.latency.mean_ns, "count": t.latency.count}})
        })
        .collect();
    json!({"accepted": s.accepted, "refused": s.refused, "requests": s.requests, "denied": s.denied,
        "busy": s.busy, "bad_frames": s.bad_frames, "timeouts": s.timeouts, "reloads": s.reloads,
        "reload_errors": s.reload_errors, "drivers": drivers})
}

/// Options of `umd sample` that only an in-process manager can honour.
pub struct InProcessOnly {
    /// `--handler` given.
    pub handler: bool,
    /// `--sandbox off` given.
    pub sandbox_off: bool,
    /// `--allow-syscall` given.
    pub widened: bool,
}

fn refuse_in_process_options(o: &InProcessOnly) -> Result<(), u8> {
    let bad = [(o.handler, "--handler"), (o.sandbox_off, "--sandbox off"), (o.widened, "--allow-syscall")];
    if let Some((_, name)) = bad.iter().find(|(on, _)| *on) {
        eprintln!("umd: {name} cannot be used with a service (its configuration decides); drop --socket/UMD_SOCKET to run in-process");
        return Err(EXIT_ERROR);
    }
    Ok(())
}

/// `umd sample request` through the service.
pub fn sample_request(socket: &Path, offset: u64, json_out: bool, opts: &InProcessOnly) -> u8 {
    if let Err(code) = refuse_in_process_options(opts) {
        return code;
    }
    // Checked here too, before anything is sent.
    let offset = match umd_sample::Offset::new(offset) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("umd: sample request: {e}");
            return EXIT_ERROR;
        }
    };
    let mut c = match connect(socket) {
        Ok(c) => c,
        Err(code) => return code,
    };
    match c.sample(offset.get() as u32) {
        Ok(latency_ns) => {
            if json_out {
                println!(
                    "{}",
                    json!({"driver": "sample", "offset": offset.get(), "verdict": "ok", "latency_ns": latency_ns,
                        "service": socket.display().to_string()})
                );
            } else {
                println!("sample: {offset}: ok (exactly byte {} of 131072 set)", offset.get());
            }
            EXIT_OK
        }
        Err(e) => {
            if json_out {
                println!(
                    "{}",
                    json!({"driver": "sample", "offset": offset.get(), "verdict": "error", "error": e.to_string()})
                );
            }
            failed("sample request", &e)
        }
    }
}

/// `umd sample selftest` through the service: requests at the kernel self-test's
/// offsets, `umd ctl unload sample` every `unload_every`.
pub fn sample_selftest(
    socket: &Path,
    cfg: &umd_sample::SelftestConfig,
    json_out: bool,
    opts: &InProcessOnly,
) -> u8 {
    if let Err(code) = refuse_in_process_options(opts) {
        return code;
    }
    let mut c = match connect(socket) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let started = Instant::now();
    let mut lat = Vec::with_capacity(cfg.iterations);
    let mut failures = Vec::new();
    let mut unloads = 0;
    for (i, offset) in umd_sample::selftest_offsets(cfg.seed, cfg.iterations).into_iter().enumerate() {
        if i > 0 && cfg.unload_every > 0 && i % cfg.unload_every == 0 {
            if let Err(e) = c.unload(DriverName::Sample) {
                return failed("sample selftest: ctl unload sample", &e);
            }
            unloads += 1;
        }
        let t = Instant::now();
        match c.sample(offset.get() as u32) {
            Ok(_) => lat.push(t.elapsed()),
            Err(e @ (ClientError::Connect { .. } | ClientError::Io(_) | ClientError::Closed)) => {
                return failed("sample selftest", &e);
            }
            Err(e) => failures.push((i, offset.get(), e.to_string())),
        }
    }
    lat.sort();
    let pct = |p: f64| {
        lat.get(((lat.len() as f64 * p) as usize).min(lat.len().saturating_sub(1)))
            .copied()
            .unwrap_or_default()
    };
    let passed = lat.len();
    let ok = passed == cfg.iterations;
    if json_out {
        println!(
            "{}",
            json!({"requests": cfg.iterations, "passed": passed, "failed": cfg.iterations - passed, "unloads": unloads,
                "seed": cfg.seed, "unload_every": cfg.unload_every, "elapsed_s": started.elapsed().as_secs_f64(),
                "latency": {"p50_ns": pct(0.5).as_nanos() as u64, "p99_ns": pct(0.99).as_nanos() as u64},
                "service": socket.display().to_string(),
                "failures": failures.iter().take(10).map(|(i, o, e)| json!({"index": i, "offset": o, "error": e})).collect::<Vec<_>>()})
        );
    } else {
        println!(
            "sample selftest (service {}): {} requests, {} passed, {} failed",
            socket.display(),
            cfg.iterations,
            passed,
            cfg.iterations - passed
        );
        println!("  unloads {unloads} (unload every {}, seed {})", cfg.unload_every, cfg.seed);
        println!(
            "  latency p50 {:?}  p99 {:?}  total {:.1} ms",
            pct(0.5),
            pct(0.99),
            started.elapsed().as_secs_f64() * 1e3
        );
        for (i, o, e) in failures.iter().take(10) {
            println!("  request {i} (offset {o}): {e}");
        }
        println!("{}", if ok { "PASS" } else { "FAIL" });
    }
    if ok {
        EXIT_OK
    } else {
        EXIT_VERDICT
    }
}

fn read(path: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))
}

fn status_word(s: VerifyStatus) -> &'static str {
    match s {
        VerifyStatus::Verified => "verified",
        VerifyStatus::Bad => "bad",
        VerifyStatus::CannotVerify => "cannot verify",
    }
}

fn exit_of(s: VerifyStatus) -> u8 {
    match s {
        VerifyStatus::Verified => EXIT_OK,
        VerifyStatus::Bad => EXIT_VERDICT,
        VerifyStatus::CannotVerify => EXIT_ERROR,
    }
}

/// The verdict words of a reply (see [`crate::pgp::verdict_words`]).
fn reply_words(v: &VerifyReply, required: usize) -> String {
    let status = match v.status {
        VerifyStatus::Verified => umd_pgp::verify::Status::Verified,
        VerifyStatus::Bad => umd_pgp::verify::Status::Bad,
        VerifyStatus::CannotVerify => umd_pgp::verify::Status::CannotVerify,
    };
    let good = v.signatures.iter().filter(|s| matches!(s, SigVerdict::Good { .. })).count();
    let bad = v.signatures.iter().any(|s| matches!(s, SigVerdict::Bad { .. }));
    crate::pgp::verdict_words(status, good, bad, v.signatures.len() - good, required)
}

fn report(file: &Path, r: &Result<VerifyReply, String>, json_out: bool, required: usize) {
    let name = file.display().to_string();
    match r {
        Err(e) if json_out => println!("{}", json!({"file": name, "status": "cannot verify", "error": e})),
        Err(e) => println!("{name}: cannot verify: {e}"),
        Ok(v) if json_out => {
            let sigs: Vec<_> = v
                .signatures
                .iter()
                .map(|s| match s {
                    SigVerdict::Good { cert, key, user_id } => {
                        json!({"verdict": "good", "cert": cert, "key": key, "user_id": user_id})
                    }
                    SigVerdict::Bad { key, reason } => {
                        json!({"verdict": "bad", "key": key, "reason": reason})
                    }
                    SigVerdict::UnknownKey { issuer } => json!({"verdict": "unknown key", "issuer": issuer}),
                    SigVerdict::Ignored { reason } => json!({"verdict": "ignored", "reason": reason}),
                })
                .collect();
            let good = v.signatures.iter().filter(|s| matches!(s, SigVerdict::Good { .. })).count();
            let mut o = json!({"file": name, "status": status_word(v.status), "verdict": reply_words(v, required),
                "good": good, "required": required, "signatures": sigs});
            if let Some(e) = &v.error {
                o["error"] = json!(e);
            }
            println!("{o}");
        }
        Ok(v) => {
            match &v.error {
                Some(e) => println!("{name}: cannot verify: {e}"),
                None => println!("{name}: {}", reply_words(v, required)),
            }
            for s in &v.signatures {
                match s {
                    SigVerdict::Good { key, user_id, .. } => {
                        println!("  good signature by {user_id} (key {key})")
                    }
                    SigVerdict::Bad { key, reason } => println!("  BAD signature by key {key}: {reason}"),
                    SigVerdict::UnknownKey { issuer } => {
                        println!("  signature by a key not in the keyring ({issuer}): ignored")
                    }
                    SigVerdict::Ignored { reason } => println!("  ignored: {reason}"),
                }
            }
        }
    }
}

/// One file: read it (and its data) here, send the bytes: the service never
/// opens a path a client names.
fn verify_one(
    c: &mut Client,
    keyrings: &Keyrings,
    required: usize,
    sig: &Path,
    data: Option<&Path>,
    want_text: bool,
) -> Result<Result<VerifyReply, String>, ClientError> {
    let (signature, data) = match crate::pgp::read_inputs(sig, data) {
        Ok(i) => (i.signature, i.data),
        Err(e) => return Ok(Err(e)),
    };
    // The keyrings travel once; later requests (and later runs, by the same
    // user) name them by their handle.
    let required = u32::try_from(required).unwrap_or(u32::MAX);
    match c.verify_keyrings(keyrings, &signature, data.as_deref(), required, want_text) {
        Ok(v) => Ok(Ok(v)),
        Err(ClientError::Service(e)) if e.kind == ErrorKind::BadRequest || e.kind == ErrorKind::TooLarge => {
            Ok(Err(e.message))
        }
        Err(e) => Err(e),
    }
}

/// `umd verify` through the service.
pub fn verify(socket: &Path, args: &VerifyArgs) -> u8 {
    let keyrings = match crate::pgp::read_keyrings(&args.keyrings)
        .and_then(|k| crate::pgp::check_keyrings_framing(&args.keyrings, &k).map(|()| k))
    {
        Ok(k) => Keyrings::new(k),
        Err(e) => {
            eprintln!("umd: verify: {e}");
            return EXIT_ERROR;
        }
    };
    if !args.each && args.files.len() > 2 {
        eprintln!("umd: verify: give SIGNATURE [DATA], or --each with many files");
        return EXIT_ERROR;
    }
    let mut c = match connect(socket) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let jobs: Vec<(&Path, Option<&Path>)> = if args.each {
        args.files.iter().map(|f| (f.as_path(), None)).collect()
    } else {
        vec![(args.files[0].as_path(), args.files.get(1).map(PathBuf::as_path))]
    };
    let mut worst = EXIT_OK;
    for (sig, data) in jobs {
        let want_text = args.output.is_some() && !args.each;
        let r = match verify_one(&mut c, &keyrings, args.signatures, sig, data, want_text) {
            Ok(r) => r,
            Err(e) => return failed("verify", &e),
        };
        report(sig, &r, args.json, args.signatures);
        let code = r.as_ref().map_or(EXIT_ERROR, |v| exit_of(v.status));
        worst = worst.max(code);
        if code == EXIT_OK && !args.each {
            if let (Some(out), Ok(VerifyReply { text: Some(text), .. })) = (&args.output, &r) {
                if let Err(e) = std::fs::write(out, text) {
                    eprintln!("umd: verify: writing {}: {e}", out.display());
                    return EXIT_ERROR;
                }
            }
        }
    }
    worst
}

/// `umd bench-service`.
#[derive(Args)]
pub struct BenchServiceArgs {
    /// Client counts to measure (comma-separated).
    #[arg(long, value_delimiter = ',', default_values_t = [1usize, 4, 16], value_name = "N,...")]
    clients: Vec<usize>,
    /// Sample requests per client per round.
    #[arg(long, default_value_t = 2000, value_name = "N")]
    requests: usize,
    /// Rounds per row (the median round is reported).
    #[arg(long, default_value_t = 3, value_name = "N")]
    rounds: usize,
    /// Handlers per driver, in-process and in the service alike.
    #[arg(long, default_value_t = 2, value_name = "N")]
    pool_size: usize,
    /// Also measure verifications of DOCUMENT (cleartext-signed) against KEYRING:
    /// in-process with the keyring checked once, through the service with the
    /// keyring sent once and named by its handle afterwards (the document is
    /// sent, described and verified every time).
    #[arg(long, num_args = 2, value_names = ["KEYRING", "DOCUMENT"])]
    verify: Option<Vec<PathBuf>>,
    /// Verifications per client per round.
    #[arg(long, default_value_t = 100, value_name = "N")]
    verify_requests: usize,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

/// One measured round.
#[derive(Clone, Copy, Debug)]
struct Round {
    per_s: f64,
    p50: Duration,
    p99: Duration,
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted
        .get(((sorted.len() as f64 * p) as usize).min(sorted.len().saturating_sub(1)))
        .copied()
        .unwrap_or_default()
}

/// Runs `clients` threads of `requests` calls each; `call(client, i)` makes one.
fn measure<C: Send>(
    clients: Vec<C>,
    requests: usize,
    call: impl Fn(&mut C, usize) -> Result<(), String> + Sync,
) -> Result<Round, String> {
    let started = Instant::now();
    let results: Vec<Result<Vec<Duration>, String>> = std::thread::scope(|s| {
        let handles: Vec<_> = clients
            .into_iter()
            .map(|mut c| {
                let call = &call;
                s.spawn(move || {
                    let mut lat = Vec::with_capacity(requests);
                    for i in 0..requests {
                        let t = Instant::now();
                        call(&mut c, i)?;
                        lat.push(t.elapsed());
                    }
                    Ok(lat)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap_or_else(|_| Err("a client panicked".into()))).collect()
    });
    let elapsed = started.elapsed();
    let mut all = Vec::new();
    for r in results {
        all.extend(r?);
    }
    all.sort();
    Ok(Round {
        per_s: all.len() as f64 / elapsed.as_secs_f64(),
        p50: percentile(&all, 0.5),
        p99: percentile(&all, 0.99),
    })
}

fn median_round(mut rounds: Vec<Round>) -> Round {
    rounds.sort_by(|a, b| a.per_s.total_cmp(&b.per_s));
    rounds[rounds.len() / 2]
}

fn offset_for(i: usize) -> u32 {
    ((i * 7919) % 128 * 1024) as u32
}

/// `umd bench-service`: sample requests through the socket vs the same driver
/// in-process, for each client count.
pub fn bench(args: &BenchServiceArgs) -> u8 {
    match bench_inner(args) {
        Ok(()) => EXIT_OK,
        Err(e) => {
            eprintln!("umd: bench-service: {e}");
            EXIT_ERROR
        }
    }
}

/// A `umd serve` child on a private socket, stopped on drop.
struct Child {
    child: std::process::Child,
    dir: PathBuf,
}

impl Drop for Child {
    fn drop(&mut self) {
        terminate(self.child.id() as i32);
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// SIGTERM to our own child.
fn terminate(pid: i32) {
    if let Some(p) = rustix::process::Pid::from_raw(pid) {
        let _ = rustix::process::kill_process(p, rustix::process::Signal::TERM);
    }
}

fn start_service(pool_size: usize) -> Result<(Child, PathBuf), String> {
    let dir = std::env::temp_dir().join(format!("umd-bench-service-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let socket = dir.join("umd.sock");
    let config = dir.join("umd.toml");
    let text = format!(
        "[drivers.sample]\neveryone = true\npool_size = {pool_size}\n[drivers.pgp]\neveryone = true\n\
         [limits]\nmax_in_flight_per_uid = 64\nmax_connections_per_uid = 128\n"
    );
    std::fs::write(&config, text).map_err(|e| format!("{}: {e}", config.display()))?;
    let exe = std::env::current_exe().map_err(|e| format!("finding this executable: {e}"))?;
    let child = std::process::Command::new(exe)
        .arg("--socket")
        .arg(&socket)
        .arg("serve")
        .arg("--config")
        .arg(&config)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .spawn()
        .map_err(|e| format!("starting umd serve: {e}"))?;
    let child = Child { child, dir };
    let deadline = Instant::now() + Duration::from_secs(20);
    while Client::connect(&socket).is_err() {
        if Instant::now() > deadline {
            return Err("umd serve did not start".into());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok((child, socket))
}

fn bench_inner(args: &BenchServiceArgs) -> Result<(), String> {
    if args.rounds == 0 || args.requests == 0 || args.verify_requests == 0 || args.clients.contains(&0) {
        return Err(
            "--rounds, --requests, --verify-requests and every --clients count must be at least 1".into()
        );
    }
    let sample = umd_sample::SampleDriver::new(
        umd_sample::HandlerSource::Embedded,
        umd_sample::SampleOptions { pool_size: args.pool_size, ..Default::default() },
    );
    let (_service, socket) = start_service(args.pool_size)?;
    let connect = |n: usize| {
        (0..n).map(|_| Client::connect(&socket).map_err(|e| e.to_string())).collect::<Result<Vec<_>, _>>()
    };
    let mut rows = Vec::new();
    for &n in &args.clients {
        let mut local = Vec::new();
        let mut remote = Vec::new();
        for _ in 0..args.rounds {
            // Warm: both pools started before timing.
            let call = |_: &mut (), i: usize| {
                let o = umd_sample::Offset::new(u64::from(offset_for(i))).map_err(|e| e.to_string())?;
                sample.request(o).map_err(|e| e.to_string())
            };
            measure(vec![(); args.pool_size], 4, call)?;
            local.push(measure(vec![(); n], args.requests, call)?);
            let call =
                |c: &mut Client, i: usize| c.sample(offset_for(i)).map(|_| ()).map_err(|e| e.to_string());
            measure(connect(n)?, 4, call)?;
            remote.push(measure(connect(n)?, args.requests, call)?);
        }
        rows.push(("sample", n, median_round(local), median_round(remote)));
    }
    if let Some(files) = &args.verify {
        let keyring = read(&files[0])?;
        let document = read(&files[1])?;
        let verifier = umd_pgp::verifier::Verifier::with_driver(
            umd_pgp::driver::PgpDriver::with_pool_size(Duration::from_secs(10), args.pool_size),
            std::slice::from_ref(&keyring),
            umd_pgp::policy::Policy::new(),
        )
        .map_err(|e| format!("{}: {e}", files[0].display()))?;
        let local_call =
            |_: &mut (), _: usize| match verifier.verify_cleartext(&document, std::time::SystemTime::now()) {
                Ok(o) if o.status(1) == umd_pgp::verify::Status::Verified => Ok(()),
                Ok(_) => Err(format!("{}: not verified", files[1].display())),
                Err(e) => Err(e.to_string()),
            };
        let keyrings = Keyrings::new(vec![keyring.clone()]);
        let remote_call = |c: &mut Client, _: usize| {
            // The keyring by its handle (sent on a connection's first request
            // when the service does not hold it); the verdict, not the text back.
            match c.verify_keyrings(&keyrings, &document, None, 1, false) {
                Ok(v) if v.status == VerifyStatus::Verified => Ok(()),
                Ok(v) => Err(format!("{}: {:?} {:?}", files[1].display(), v.status, v.error)),
                Err(e) => Err(e.to_string()),
            }
        };
        for &n in &args.clients {
            let mut local = Vec::new();
            let mut remote = Vec::new();
            for _ in 0..args.rounds {
                measure(vec![(); args.pool_size], 2, local_call)?;
                local.push(measure(vec![(); n], args.verify_requests, local_call)?);
                measure(connect(n)?, 2, remote_call)?;
                remote.push(measure(connect(n)?, args.verify_requests, remote_call)?);
            }
            rows.push(("verify", n, median_round(local), median_round(remote)));
        }
        verifier.driver().driver().unload();
    }
    sample.driver().unload();
    if args.json {
        let v: Vec<_> = rows
            .iter()
            .map(|(driver, n, l, r)| {
                json!({"driver": driver, "clients": n, "in_process": {"per_s": l.per_s, "p50_ns": l.p50.as_nanos() as u64, "p99_ns": l.p99.as_nanos() as u64},
                    "service": {"per_s": r.per_s, "p50_ns": r.p50.as_nanos() as u64, "p99_ns": r.p99.as_nanos() as u64},
                    "throughput_ratio": r.per_s / l.per_s})
            })
            .collect();
        println!(
            "{}",
            json!({"requests_per_client": args.requests, "rounds": args.rounds, "pool_size": args.pool_size, "rows": v})
        );
    } else {
        println!(
            "pool of {} handlers per driver; {} sample requests / {} verifications per client; median of {} rounds",
            args.pool_size, args.requests, args.verify_requests, args.rounds
        );
        println!("| driver | clients | in-process req/s | p50 | p99 | service req/s | p50 | p99 | service/in-process throughput |");
        println!("|---|---|---|---|---|---|---|---|---|");
        for (driver, n, l, r) in &rows {
            println!(
                "| {driver} | {n} | {:.0} | {:.1} µs | {:.1} µs | {:.0} | {:.1} µs | {:.1} µs | {:.2}x |",
                l.per_s,
                l.p50.as_secs_f64() * 1e6,
                l.p99.as_secs_f64() * 1e6,
                r.per_s,
                r.p50.as_secs_f64() * 1e6,
                r.p99.as_secs_f64() * 1e6,
                r.per_s / l.per_s
            );
        }
    }
    Ok(())
}
