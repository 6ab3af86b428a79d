//! `umd verify` and `umd pgp keys`: OpenPGP through the sandboxed `pgp` driver.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use clap::{Args, Subcommand};
use serde_json::json;
use umd_pgp::cert::{KeyInfo, ValidCert};
use umd_pgp::cleartext;
use umd_pgp::driver::PgpDriver;
use umd_pgp::policy::{utc, Policy};
use umd_pgp::sniff::{self, InputError};
use umd_pgp::verifier::{Outcome, Verifier, VerifyError};
use umd_pgp::verify::{Status, Verdict};

use crate::{EXIT_ERROR, EXIT_OK, EXIT_VERDICT};

/// Options of `umd verify`.
#[derive(Args)]
pub struct VerifyArgs {
    /// A keyring (binary or armored); repeat for several.
    #[arg(long = "keyring", value_name = "FILE", required = true)]
    pub(crate) keyrings: Vec<PathBuf>,
    /// Good signatures from keyring keys needed for success.
    #[arg(long, default_value_t = 1, value_name = "N")]
    pub(crate) signatures: usize,
    /// Write the verified text of a cleartext document here (only if verified).
    #[arg(long, value_name = "FILE")]
    pub(crate) output: Option<PathBuf>,
    /// Verify many files with one warm handler: each is a cleartext document or a
    /// detached signature of the same path without `.sig`/`.asc`/`.gpg`.
    #[arg(long, conflicts_with_all = ["output"])]
    pub(crate) each: bool,
    /// Print JSON (one record per file) instead of text.
    #[arg(long)]
    pub(crate) json: bool,
    /// With --each: the files. Otherwise: SIGNATURE [DATA] — a detached signature
    /// (binary or armored) and its data, or a cleartext-signed document alone.
    #[arg(value_name = "FILE", required = true)]
    pub(crate) files: Vec<PathBuf>,
}

/// `umd pgp ...`.
#[derive(Subcommand)]
pub enum PgpCommand {
    /// List certificates: keys, fingerprints, algorithms, user IDs, validity.
    Keys {
        /// Keyring or certificate files (binary or armored).
        #[arg(value_name = "FILE", required = true)]
        files: Vec<PathBuf>,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

/// Reads the keyrings named on the command line and gives each a first look
/// (`sniff`): an error names the keyring by its path.
pub(crate) fn read_keyrings(paths: &[PathBuf]) -> Result<Vec<Vec<u8>>, String> {
    paths
        .iter()
        .map(|p| {
            let bytes = std::fs::read(p).map_err(|e| format!("keyring {}: {e}", p.display()))?;
            sniff::check_keyring(&bytes).map_err(|e| format!("keyring {}: {e}", p.display()))?;
            Ok(bytes)
        })
        .collect()
}

/// A verifier error about one of the keyrings, named by its path (the library
/// knows them by position, and an armor error by nothing at all).
fn keyring_error(paths: &[PathBuf], data: &[Vec<u8>], e: VerifyError) -> String {
    let name = |i: usize| paths.get(i).map_or_else(|| format!("#{}", i + 1), |p| p.display().to_string());
    match e {
        VerifyError::Framing { index, source } => format!("keyring {}: {source}", name(index)),
        VerifyError::Keyring { index, source } => format!("keyring {}: {source}", name(index)),
        VerifyError::Armor(a) => match data.iter().position(|k| umd_pgp::armor::binary(k).is_err()) {
            Some(i) => format!("keyring {}: armor: {a}", name(i)),
            None => format!("loading the keyrings: armor: {a}"),
        },
        other => format!("loading the keyrings: {other}"),
    }
}

fn load(keyrings: &[PathBuf], driver: PgpDriver) -> Result<Verifier, String> {
    let data = read_keyrings(keyrings)?;
    Verifier::with_driver(driver, &data, Policy::new()).map_err(|e| keyring_error(keyrings, &data, e))
}

/// Loads each keyring's framing here, as the service will (no handler is
/// started: the manager reads the framing itself), so that a broken keyring is
/// named by its path before its bytes are sent: the service knows keyrings
/// only by position.
pub(crate) fn check_keyrings_framing(paths: &[PathBuf], data: &[Vec<u8>]) -> Result<(), String> {
    for (p, k) in paths.iter().zip(data) {
        let one = std::slice::from_ref(k);
        Verifier::new(one, Policy::new()).map_err(|e| keyring_error(std::slice::from_ref(p), one, e))?;
    }
    Ok(())
}

/// One verification's input: the signature (or cleartext document) and the
/// signed data of a detached signature.
pub(crate) struct Inputs {
    pub signature: Vec<u8>,
    pub data: Option<Vec<u8>>,
}

/// What to do when SIGNATURE is not an OpenPGP signature.
const SIGNATURE_HINT: &str =
    "give a detached signature (binary or armored) and its DATA, or a cleartext-signed document";

/// Reads SIGNATURE and DATA (or the data file a `.sig`/`.asc`/`.gpg` name
/// points at) and gives them a first look: an input that cannot be what it is
/// given as is refused here, with what it looks like and what to give instead,
/// before any handler is asked. Errors are for the verdict line
/// `SIGNATURE: cannot verify: ...`, which names the file.
pub(crate) fn read_inputs(sig: &Path, data: Option<&Path>) -> Result<Inputs, String> {
    let signature = std::fs::read(sig).map_err(|e| format!("cannot read it: {e}"))?;
    let mut data_bytes = match data {
        Some(d) => Some(std::fs::read(d).map_err(|e| format!("cannot read DATA {}: {e}", d.display()))?),
        None => None,
    };
    sniff::check_signature(&signature, data_bytes.as_deref()).map_err(|e| match e {
        InputError::NotOpenPgp { .. } => format!("{e}; {SIGNATURE_HINT}"),
        _ => e.to_string(),
    })?;
    if data_bytes.is_none() && !cleartext::is_cleartext(&signature) {
        let Some(d) = data_path(sig) else {
            return Err("a detached signature needs its DATA: give the signed file after it \
                        (or name the signature FILE.sig, FILE.asc or FILE.gpg beside FILE)"
                .into());
        };
        let bytes = std::fs::read(&d).map_err(|e| {
            format!(
                "cannot read {}, the data its name points at: {e}; give the signed file as DATA",
                d.display()
            )
        })?;
        data_bytes = Some(bytes);
    }
    Ok(Inputs { signature, data: data_bytes })
}

/// The verdict for the verdict line: `verified`, `bad`, `too few good
/// signatures (N good signatures, M required)`, or `cannot verify: ...`.
pub(crate) fn verdict_words(
    status: Status,
    good: usize,
    bad: bool,
    others: usize,
    required: usize,
) -> String {
    let plural = |n: usize, what: &str| format!("{n} {what}{}", if n == 1 { "" } else { "s" });
    match status {
        Status::Verified => "verified".into(),
        Status::Bad if bad => "bad".into(),
        Status::Bad => {
            format!("too few good signatures ({}, {required} required)", plural(good, "good signature"))
        }
        Status::CannotVerify if others == 0 => "cannot verify: no signature in it".into(),
        Status::CannotVerify => format!(
            "cannot verify: no good signature by a key in the keyring ({} by other keys or not usable)",
            plural(others, "signature")
        ),
    }
}

fn outcome_words(o: &Outcome, required: usize) -> String {
    let good = o.reports.iter().filter(|r| matches!(r.verdict, Verdict::Good { .. })).count();
    let bad = o.reports.iter().any(|r| matches!(r.verdict, Verdict::Bad { .. }));
    verdict_words(o.status(required), good, bad, o.reports.len() - good, required)
}

/// The data file of a detached signature: the path without its suffix.
pub(crate) fn data_path(sig: &Path) -> Option<PathBuf> {
    let s = sig.to_str()?;
    [".sig", ".asc", ".gpg"].iter().find_map(|suf| s.strip_suffix(suf)).map(PathBuf::from)
}

fn user_of(verifier: &Verifier, cert: &umd_pgp::crypto::Fingerprint, at: SystemTime) -> String {
    verifier
        .certificate(cert, at)
        .and_then(|c| c.valid_user_ids().next().map(|u| String::from_utf8_lossy(u).into_owned()))
        .unwrap_or_else(|| "(no valid user ID)".into())
}

/// Verifies one file at the reference time `at` (the clock when it is checked).
fn verify_one(
    verifier: &Verifier,
    sig: &Path,
    data: Option<&Path>,
    at: SystemTime,
) -> Result<Outcome, String> {
    let inputs = read_inputs(sig, data)?;
    match &inputs.data {
        Some(d) => verifier.verify_detached(&inputs.signature, d, at),
        None => verifier.verify_cleartext(&inputs.signature, at),
    }
    .map_err(|e| e.to_string())
}

fn exit_of(status: Status) -> u8 {
    match status {
        Status::Verified => EXIT_OK,
        Status::Bad => EXIT_VERDICT,
        Status::CannotVerify => EXIT_ERROR,
    }
}

fn status_word(status: Status) -> &'static str {
    match status {
        Status::Verified => "verified",
        Status::Bad => "bad",
        Status::CannotVerify => "cannot verify",
    }
}

fn report_json(
    verifier: &Verifier,
    file: &Path,
    outcome: &Result<Outcome, String>,
    required: usize,
    at: SystemTime,
) -> serde_json::Value {
    match outcome {
        Err(e) => json!({"file": file.display().to_string(), "status": "cannot verify", "error": e}),
        Ok(o) => {
            let sigs: Vec<_> = o
                .reports
                .iter()
                .map(|r| match &r.verdict {
                    Verdict::Good { cert, key } => json!({"verdict": "good", "cert": cert.to_string(),
                        "key": key.to_string(), "user_id": user_of(verifier, cert, at)}),
                    Verdict::Bad { key, reason } => {
                        json!({"verdict": "bad", "key": key.to_string(), "reason": reason.to_string()})
                    }
                    Verdict::UnknownKey { issuer } => json!({"verdict": "unknown key", "issuer": issuer}),
                    Verdict::NotApplicable(why) => json!({"verdict": "ignored", "reason": why}),
                })
                .collect();
            let good = o.reports.iter().filter(|r| matches!(r.verdict, Verdict::Good { .. })).count();
            json!({"file": file.display().to_string(), "status": status_word(o.status(required)),
                "verdict": outcome_words(o, required), "good": good, "required": required, "signatures": sigs})
        }
    }
}

fn report_text(
    verifier: &Verifier,
    file: &Path,
    outcome: &Result<Outcome, String>,
    required: usize,
    at: SystemTime,
) {
    match outcome {
        Err(e) => println!("{}: cannot verify: {e}", file.display()),
        Ok(o) => {
            println!("{}: {}", file.display(), outcome_words(o, required));
            for r in &o.reports {
                match &r.verdict {
                    Verdict::Good { cert, key } => {
                        println!("  good signature by {} (key {key})", user_of(verifier, cert, at))
                    }
                    Verdict::Bad { key, reason } => println!("  BAD signature by key {key}: {reason}"),
                    Verdict::UnknownKey { issuer } => {
                        println!("  signature by a key not in the keyring ({issuer}): ignored")
                    }
                    Verdict::NotApplicable(why) => println!("  ignored: {why}"),
                }
            }
        }
    }
}

/// How long the handler may take over one request.
const HANDLER_TIMEOUT: Duration = Duration::from_secs(10);

/// `umd verify`.
pub fn verify(args: &VerifyArgs) -> u8 {
    let driver = PgpDriver::new(HANDLER_TIMEOUT);
    std::thread::scope(|scope| {
        // The handler starts (sealed memfd, confined spawn, probe) on this, the
        // main thread — which starts it directly, without a hop to the loader's
        // spawner thread — while another thread reads the keyrings and the input
        // and frames them, then waits for the handler at its first request. A
        // failure to start shows again, and is reported, at that request.
        let verifying = scope.spawn(|| verify_with(args, driver.clone()));
        let _ = driver.start();
        verifying.join().unwrap_or_else(|p| std::panic::resume_unwind(p))
    })
}

fn verify_with(args: &VerifyArgs, driver: PgpDriver) -> u8 {
    let verifier = match load(&args.keyrings, driver) {
        Ok(v) => v,
        Err(e) => {
            eprintln!("umd: verify: {e}");
            return EXIT_ERROR;
        }
    };
    if args.each {
        let mut worst = EXIT_OK;
        for f in &args.files {
            let at = SystemTime::now();
            let o = verify_one(&verifier, f, None, at);
            let code = o.as_ref().map_or(EXIT_ERROR, |o| exit_of(o.status(args.signatures)));
            worst = worst.max(code);
            if args.json {
                println!("{}", report_json(&verifier, f, &o, args.signatures, at));
            } else {
                report_text(&verifier, f, &o, args.signatures, at);
            }
        }
        return worst;
    }
    if args.files.len() > 2 {
        eprintln!("umd: verify: give SIGNATURE [DATA], or --each with many files");
        return EXIT_ERROR;
    }
    let sig = &args.files[0];
    let at = SystemTime::now();
    let o = verify_one(&verifier, sig, args.files.get(1).map(PathBuf::as_path), at);
    if args.json {
        println!("{}", report_json(&verifier, sig, &o, args.signatures, at));
    } else {
        report_text(&verifier, sig, &o, args.signatures, at);
    }
    let code = o.as_ref().map_or(EXIT_ERROR, |o| exit_of(o.status(args.signatures)));
    if code == EXIT_OK {
        if let (Some(out), Ok(Outcome { text: Some(text), .. })) = (&args.output, &o) {
            if let Err(e) = std::fs::write(out, text) {
                eprintln!("umd: verify: writing {}: {e}", out.display());
                return EXIT_ERROR;
            }
        }
    }
    code
}

fn key_json(k: &KeyInfo) -> serde_json::Value {
    json!({
        "fingerprint": k.fingerprint().to_string(),
        "key_id": k.key_id().to_string(),
        "version": k.version(),
        "algorithm": match k.kind() { Ok(kind) => kind.to_string(), Err(e) => format!("unsupported ({e})") },
        "created": k.created(),
        "expires_after": k.expires_after(),
        "can_sign": k.can_sign(),
        "valid": k.valid().is_ok(),
        "invalid_because": k.valid().err().map(|e| e.to_string()),
    })
}

fn cert_json(c: &ValidCert) -> serde_json::Value {
    json!({
        "primary": key_json(c.primary()),
        "user_ids": c.user_ids().iter().map(|u| json!({
            "value": String::from_utf8_lossy(u.value()),
            "valid": u.valid().is_ok(),
            "invalid_because": u.valid().err().map(|e| e.to_string()),
        })).collect::<Vec<_>>(),
        "subkeys": c.subkeys().iter().map(key_json).collect::<Vec<_>>(),
    })
}

fn key_line(k: &KeyInfo) -> String {
    let alg = match k.kind() {
        Ok(kind) => kind.to_string(),
        Err(_) => format!("algorithm {}", k.algo()),
    };
    let validity = match k.valid() {
        Ok(v) if v.can_sign() => "valid, signs".to_string(),
        Ok(_) => "valid".to_string(),
        Err(e) => format!("not valid: {e}"),
    };
    let created = k.created();
    let expiry = match k.expires_after().filter(|&e| e != 0) {
        Some(e) => format!(", expires {}", utc(u64::from(created) + u64::from(e))),
        None => String::new(),
    };
    format!(
        "{} v{} {alg}, created {}{expiry} — {validity}",
        k.fingerprint(),
        k.version(),
        utc(u64::from(created))
    )
}

/// `umd pgp keys`.
pub fn keys(files: &[PathBuf], json_out: bool) -> u8 {
    let mut code = EXIT_OK;
    for f in files {
        let result = read_keyrings(std::slice::from_ref(f))
            .and_then(|d| {
                Verifier::new(&d, Policy::new()).map_err(|e| keyring_error(std::slice::from_ref(f), &d, e))
            })
            .and_then(|v| v.certificates(SystemTime::now()).map_err(|e| format!("{}: {e}", f.display())));
        match result {
            Err(e) => {
                eprintln!("umd: pgp keys: {e}");
                code = EXIT_ERROR;
            }
            Ok(certs) => {
                if json_out {
                    let certs: Vec<_> = certs.iter().map(cert_json).collect();
                    println!("{}", json!({"file": f.display().to_string(), "certificates": certs}));
                } else {
                    println!("{}: {} certificates", f.display(), certs.len());
                    for c in &certs {
                        println!("  pub {}", key_line(c.primary()));
                        for u in c.user_ids() {
                            let mark = if u.valid().is_ok() { "" } else { " (not valid)" };
                            println!("      uid {}{mark}", String::from_utf8_lossy(u.value()));
                        }
                        for s in c.subkeys() {
                            println!("      sub {}", key_line(s));
                        }
                    }
                }
            }
        }
    }
    code
}
