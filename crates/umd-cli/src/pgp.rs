//! `umd verify` and `umd pgp keys`: OpenPGP through the sandboxed `pgp` driver.

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Args, Subcommand};
use serde_json::json;
use umd_pgp::cert::{Cert, KeyInfo};
use umd_pgp::cleartext;
use umd_pgp::driver::PgpDriver;
use umd_pgp::policy::Policy;
use umd_pgp::verifier::{Outcome, Verifier};
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

fn read(path: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))
}

fn load(keyrings: &[PathBuf], driver: PgpDriver) -> Result<Verifier, String> {
    let data = keyrings.iter().map(|p| read(p)).collect::<Result<Vec<_>, _>>()?;
    Verifier::with_driver(driver, &data, Policy::new()).map_err(|e| format!("loading the keyring: {e}"))
}

/// The data file of a detached signature: the path without its suffix.
pub(crate) fn data_path(sig: &Path) -> Option<PathBuf> {
    let s = sig.to_str()?;
    [".sig", ".asc", ".gpg"].iter().find_map(|suf| s.strip_suffix(suf)).map(PathBuf::from)
}

fn user_of(verifier: &Verifier, cert: &umd_pgp::crypto::Fingerprint) -> String {
    verifier
        .certificate(cert)
        .and_then(|c| c.user_ids.iter().find(|u| u.validity.is_ok()))
        .map(|u| String::from_utf8_lossy(&u.value).into_owned())
        .unwrap_or_else(|| "(no valid user ID)".into())
}

fn verify_one(verifier: &Verifier, sig: &Path, data: Option<&Path>) -> Result<Outcome, String> {
    let sig_bytes = read(sig)?;
    match data {
        Some(d) => verifier.verify_detached(&sig_bytes, &read(d)?).map_err(|e| e.to_string()),
        None if cleartext::is_cleartext(&sig_bytes) => {
            verifier.verify_cleartext(&sig_bytes).map_err(|e| e.to_string())
        }
        None => match data_path(sig) {
            Some(d) => verifier.verify_detached(&sig_bytes, &read(&d)?).map_err(|e| e.to_string()),
            None => Err(format!(
                "{}: not a cleartext document, and no DATA given (nor a .sig/.asc/.gpg suffix to find it)",
                sig.display()
            )),
        },
    }
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
) -> serde_json::Value {
    match outcome {
        Err(e) => json!({"file": file.display().to_string(), "status": "cannot verify", "error": e}),
        Ok(o) => {
            let sigs: Vec<_> = o
                .reports
                .iter()
                .map(|r| match &r.verdict {
                    Verdict::Good { cert, key } => json!({"verdict": "good", "cert": cert.to_string(),
                        "key": key.to_string(), "user_id": user_of(verifier, cert)}),
                    Verdict::Bad { key, reason } => {
                        json!({"verdict": "bad", "key": key.to_string(), "reason": reason})
                    }
                    Verdict::UnknownKey { issuer } => json!({"verdict": "unknown key", "issuer": issuer}),
                    Verdict::NotApplicable(why) => json!({"verdict": "ignored", "reason": why}),
                })
                .collect();
            json!({"file": file.display().to_string(), "status": status_word(o.status(required)), "signatures": sigs})
        }
    }
}

fn report_text(verifier: &Verifier, file: &Path, outcome: &Result<Outcome, String>, required: usize) {
    match outcome {
        Err(e) => println!("{}: cannot verify: {e}", file.display()),
        Ok(o) => {
            println!("{}: {}", file.display(), status_word(o.status(required)));
            for r in &o.reports {
                match &r.verdict {
                    Verdict::Good { cert, key } => {
                        println!("  good signature by {} (key {key})", user_of(verifier, cert))
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
            let o = verify_one(&verifier, f, None);
            let code = o.as_ref().map_or(EXIT_ERROR, |o| exit_of(o.status(args.signatures)));
            worst = worst.max(code);
            if args.json {
                println!("{}", report_json(&verifier, f, &o, args.signatures));
            } else {
                report_text(&verifier, f, &o, args.signatures);
            }
        }
        return worst;
    }
    if args.files.len() > 2 {
        eprintln!("umd: verify: give SIGNATURE [DATA], or --each with many files");
        return EXIT_ERROR;
    }
    let sig = &args.files[0];
    let o = verify_one(&verifier, sig, args.files.get(1).map(PathBuf::as_path));
    if args.json {
        println!("{}", report_json(&verifier, sig, &o, args.signatures));
    } else {
        report_text(&verifier, sig, &o, args.signatures);
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
        "fingerprint": k.fingerprint.to_string(),
        "key_id": k.key_id().to_string(),
        "version": k.key.version,
        "algorithm": match &k.kind { Ok(kind) => kind.to_string(), Err(e) => format!("unsupported ({e})") },
        "created": k.key.created,
        "expires_after": k.expires_after,
        "can_sign": k.can_sign(),
        "valid": k.validity.is_ok(),
        "invalid_because": k.validity.as_ref().err().map(|e| e.to_string()),
    })
}

fn cert_json(c: &Cert) -> serde_json::Value {
    json!({
        "primary": key_json(&c.primary),
        "user_ids": c.user_ids.iter().map(|u| json!({
            "value": String::from_utf8_lossy(&u.value),
            "valid": u.validity.is_ok(),
            "invalid_because": u.validity.as_ref().err().map(|e| e.to_string()),
        })).collect::<Vec<_>>(),
        "subkeys": c.subkeys.iter().map(key_json).collect::<Vec<_>>(),
    })
}

fn key_line(k: &KeyInfo) -> String {
    let alg = match &k.kind {
        Ok(kind) => kind.to_string(),
        Err(_) => format!("algorithm {}", k.key.algo),
    };
    let validity = match &k.validity {
        Ok(()) if k.can_sign() => "valid, signs".to_string(),
        Ok(()) => "valid".to_string(),
        Err(e) => format!("not valid: {e}"),
    };
    format!("{} v{} {alg}, created {} — {validity}", k.fingerprint, k.key.version, k.key.created)
}

/// `umd pgp keys`.
pub fn keys(files: &[PathBuf], json_out: bool) -> u8 {
    let mut code = EXIT_OK;
    for f in files {
        let result = read(f)
            .and_then(|d| Verifier::new(&[d], Policy::new()).map_err(|e| format!("{}: {e}", f.display())))
            .and_then(|v| {
                let certs = v.certificates().map_err(|e| format!("{}: {e}", f.display()))?;
                Ok(certs.into_iter().cloned().collect::<Vec<Cert>>())
            });
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
                        println!("  pub {}", key_line(&c.primary));
                        for u in &c.user_ids {
                            let mark = if u.validity.is_ok() { "" } else { " (not valid)" };
                            println!("      uid {}{mark}", String::from_utf8_lossy(&u.value));
                        }
                        for s in &c.subkeys {
                            println!("      sub {}", key_line(s));
                        }
                    }
                }
            }
        }
    }
    code
}
