//! `umd digests build|lookup|show`: reference lists of file digests from signed
//! RPM headers (package files or the rpm database), signed with Ed25519.

use std::fs::OpenOptions;
use std::io::{IsTerminal, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use clap::{Args, Subcommand};
use serde_json::json;
use umd_digest_list::{DigestList, ListError, Mark, SigningKey, VerifyingKey};
use umd_hash::Hex;
use umd_rpm::list::{Event, FapolicydTrust, Options, Source, Verdict};
use umd_rpm::package::PackageVerifier;

use crate::{EXIT_ERROR, EXIT_OK, EXIT_VERDICT};

/// Default signing key of `build`; its public half is [`public_path`] of it.
pub const DEFAULT_SIGNING_KEY: &str = "/etc/umd/digests.key";

/// `umd digests ...`.
#[derive(Subcommand)]
pub enum DigestsCommand {
    /// Build a signed digest list from RPM packages or the rpm database. Each
    /// header's signature is verified against the keyring over the signed bytes;
    /// only verified packages are listed unless --include-unverified.
    /// Exit 0: every package listed as verified; 1: some rejected or unreadable
    /// (the list is still written, without them); 2: error (nothing written).
    Build(BuildArgs),
    /// Is each file's content in the list, and from which package? Exit 0 every
    /// file listed, 1 any not, 2 error (e.g. a list whose signature fails).
    Lookup(LookupArgs),
    /// Print a list's header, algorithms and packages (after checking its signature).
    Show(ShowArgs),
}

/// Options of `umd digests build`.
#[derive(Args)]
pub struct BuildArgs {
    /// OpenPGP keyring (binary or armored) of the keys trusted to sign packages.
    #[arg(long = "keyring", value_name = "FILE", required = true)]
    keyrings: Vec<PathBuf>,
    /// Package files, or directories of them (*.rpm).
    #[arg(long, value_name = "PATH", num_args = 1.., required_unless_present = "rpmdb", conflicts_with = "rpmdb")]
    rpm: Vec<PathBuf>,
    /// An rpm database (directory holding rpmdb.sqlite, or the file); without
    /// PATH, the one rpm itself uses (`rpm --eval %{_dbpath}`, else /var/lib/rpm).
    #[arg(long, value_name = "PATH", num_args = 0..=1)]
    rpmdb: Option<Option<PathBuf>>,
    /// Where to write the list (atomically replaced).
    #[arg(long, value_name = "LIST")]
    output: PathBuf,
    /// Ed25519 signing key; created (mode 0600) if missing, with its public
    /// half beside it (X.key → X.pub, else X + .pub).
    #[arg(long, value_name = "FILE", default_value = DEFAULT_SIGNING_KEY)]
    signing_key: PathBuf,
    /// Sequence number (default: the existing list's, if it verifies with this
    /// key, plus one; else 1). Must be above the existing list's.
    #[arg(long, value_name = "N")]
    sequence: Option<u64>,
    /// Also list unsigned, unknown-key, badly signed and payload-mismatched
    /// packages, each marked as such.
    #[arg(long)]
    include_unverified: bool,
    /// Print JSON (one record per package and a summary) instead of text.
    #[arg(long)]
    json: bool,
    /// Packages verified at once (default: one per CPU).
    #[arg(long, value_name = "N")]
    jobs: Option<usize>,
    /// Also write fapolicyd's trust file (`trust = file`): `PATH SIZE SHA256`
    /// for each regular file of the verified packages, from their signed
    /// headers. Files of unverified packages, with MD5/SHA-1 (or other
    /// non-SHA-256) digests, without a size, or whose path fapolicyd cannot
    /// read back are left out and counted.
    #[arg(long, value_name = "FILE")]
    fapolicyd_trust: Option<PathBuf>,
}

/// Options of `umd digests lookup`.
#[derive(Args)]
pub struct LookupArgs {
    /// The list.
    #[arg(value_name = "LIST")]
    list: PathBuf,
    /// Files whose content to look up.
    #[arg(value_name = "FILE", required = true)]
    files: Vec<PathBuf>,
    /// Public key the list must be signed with.
    #[arg(long, value_name = "FILE", default_value = "/etc/umd/digests.pub")]
    verify_key: PathBuf,
    /// Count entries of packages listed only as marked (unverified) as listed.
    #[arg(long)]
    accept_unverified: bool,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

/// Options of `umd digests show`.
#[derive(Args)]
pub struct ShowArgs {
    /// The list.
    #[arg(value_name = "LIST")]
    list: PathBuf,
    /// Public key the list must be signed with.
    #[arg(long, value_name = "FILE", default_value = "/etc/umd/digests.pub")]
    verify_key: PathBuf,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

/// Runs a `digests` command.
pub fn run(cmd: &DigestsCommand) -> u8 {
    let r = match cmd {
        DigestsCommand::Build(a) => build(a),
        DigestsCommand::Lookup(a) => lookup(a),
        DigestsCommand::Show(a) => show(a),
    };
    r.unwrap_or_else(|e| {
        eprintln!("umd digests: {e}");
        EXIT_ERROR
    })
}

/// The public half's path: `X.key` → `X.pub`, else `X.pub` appended.
pub fn public_path(secret: &Path) -> PathBuf {
    if secret.extension().is_some_and(|e| e == "key") {
        secret.with_extension("pub")
    } else {
        let mut s = secret.as_os_str().to_owned();
        s.push(".pub");
        PathBuf::from(s)
    }
}

fn read_key32(path: &Path, what: &str) -> Result<[u8; 32], String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{what} {}: {e}", path.display()))?;
    let b = umd_hash::unhex(text.trim().as_bytes()).filter(|b| b.len() == 32);
    b.and_then(|b| b.try_into().ok())
        .ok_or_else(|| format!("{what} {}: not 64 hex digits (an Ed25519 key)", path.display()))
}

/// Reads the verifying key (64 hex digits).
fn verifying_key(path: &Path) -> Result<VerifyingKey, String> {
    let k = read_key32(path, "verify key")?;
    VerifyingKey::from_bytes(&k)
        .map_err(|_| format!("verify key {}: not a valid Ed25519 key", path.display()))
}

/// Loads the signing key, or creates it (0600; directory 0700 if created) with
/// its public half beside it.
fn signing_key(path: &Path) -> Result<(SigningKey, bool), String> {
    if path.exists() {
        return Ok((SigningKey::from_bytes(&read_key32(path, "signing key")?), false));
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty() && !d.exists()) {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| format!("creating {}: {e}", dir.display()))?;
    }
    let mut seed = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut seed))
        .map_err(|e| format!("reading /dev/urandom: {e}"))?;
    let key = SigningKey::from_bytes(&seed);
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| format!("creating signing key {}: {e}", path.display()))?;
    writeln!(f, "{}", Hex(&seed))
        .and_then(|_| f.sync_all())
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let public = public_path(path);
    std::fs::write(&public, format!("{}\n", Hex(key.verifying_key().as_bytes())))
        .map_err(|e| format!("writing {}: {e}", public.display()))?;
    Ok((key, true))
}

fn rpm_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>, String> {
    let mut out = Vec::new();
    for p in paths {
        if p.is_dir() {
            let mut v: Vec<PathBuf> = std::fs::read_dir(p)
                .map_err(|e| format!("{}: {e}", p.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|e| e == "rpm") && p.is_file())
                .collect();
            v.sort();
            out.extend(v);
        } else {
            out.push(p.clone());
        }
    }
    Ok(out)
}

/// The fapolicyd part of the summary.
fn fapolicyd_summary(t: &FapolicydTrust, path: &Path) -> serde_json::Value {
    json!({"file": path.display().to_string(), "files": t.file.len(), "left_out": {
        "unverified": t.unverified, "weak_digests": t.weak_digests, "not_sha256": t.not_sha256,
        "no_size": t.no_size, "unrepresentable": t.unrepresentable,
        "conflicting": t.file.conflicting()}})
}

fn build(a: &BuildArgs) -> Result<u8, String> {
    let keyrings = a
        .keyrings
        .iter()
        .map(|p| std::fs::read(p).map_err(|e| format!("keyring {}: {e}", p.display())))
        .collect::<Result<Vec<_>, _>>()?;
    let jobs =
        a.jobs.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get())).clamp(1, 16);
    let verifier =
        PackageVerifier::with_workers(&keyrings, jobs).map_err(|e| format!("loading the keyring: {e}"))?;
    std::thread::scope(|scope| {
        // Both handlers start (sealed memfds, confined spawns, probes) while
        // another thread reads the signing key and lists or reads the inputs: the
        // rpm handler, needed first, on this (main) thread, which starts it
        // without a hop to the loader's spawner thread, the pgp handler on a
        // third. A failure to start shows again, and is reported, at the first
        // request.
        let building = scope.spawn(|| build_with(a, &verifier, jobs));
        scope.spawn(|| verifier.pgp_verifier().driver().start());
        let _ = verifier.rpm_driver().driver().ensure_loaded();
        building.join().unwrap_or_else(|p| std::panic::resume_unwind(p))
    })
}

fn build_with(a: &BuildArgs, verifier: &PackageVerifier, jobs: usize) -> Result<u8, String> {
    let (key, created) = signing_key(&a.signing_key)?;
    if created && !a.json {
        eprintln!(
            "created signing key {} (public half: {})",
            a.signing_key.display(),
            public_path(&a.signing_key).display()
        );
    }

    let sources: Vec<Source> = match &a.rpmdb {
        // The database is opened by the sandboxed rpm handler, not here.
        Some(db) => verifier
            .db_headers(&db.clone().unwrap_or_else(umd_rpm::db::default_dbpath))
            .map_err(|e| e.to_string())?,
        None => rpm_files(&a.rpm)?.into_iter().map(Source::File).collect(),
    };

    let bar = if !a.json && std::io::stderr().is_terminal() {
        let b = indicatif::ProgressBar::new(sources.len() as u64);
        b.set_style(
            indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} headers {elapsed} {msg}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        b
    } else {
        indicatif::ProgressBar::hidden()
    };
    let options =
        Options { include_unverified: a.include_unverified, jobs, fapolicyd: a.fapolicyd_trust.is_some() };
    let built = umd_rpm::list::build(verifier, &sources, &options, |event| match event {
        Event::Verified => bar.inc(1),
        Event::Verdict(v) if !a.json => bar.suspend(|| println!("{}", line(v))),
        Event::Verdict(_) => {}
    })
    .map_err(|e| e.to_string())?;
    bar.finish_and_clear();

    // Sequence numbers only go up: a reader refuses a list older than its own.
    let previous = std::fs::read(&a.output)
        .ok()
        .and_then(|b| DigestList::open(b, &key.verifying_key()).ok())
        .map(|l| l.sequence());
    let sequence = match (a.sequence, previous) {
        (Some(s), Some(p)) if s <= p => {
            return Err(format!(
                "{}: --sequence {s} is not above the existing list's {p} (readers would refuse it)",
                a.output.display()
            ))
        }
        (Some(s), _) => s,
        (None, p) => p.map_or(1, |p| p.saturating_add(1)),
    };
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let (listed, marked, rejected, errors, digests) =
        (built.listed(), built.marked(), built.rejected(), built.errors(), built.digests());
    let bytes = built.list.finish(now, sequence, &key);
    write_atomic(&a.output, &bytes)?;
    let trust = a.fapolicyd_trust.as_ref().zip(built.fapolicyd.as_ref());
    if let Some((path, t)) = trust {
        write_atomic(path, &t.file.render())?;
    }

    let mut summary = json!({"packages": sources.len(), "listed": listed, "listed_marked": marked,
        "rejected": rejected, "errors": errors, "digests": digests,
        "list": a.output.display().to_string(), "bytes": bytes.len(), "sequence": sequence, "created": now,
        "signer": Hex(key.verifying_key().as_bytes()).to_string()});
    if let Some((path, t)) = trust {
        summary["fapolicyd"] = fapolicyd_summary(t, path);
    }
    if a.json {
        let records: Vec<_> = built.verdicts.iter().map(record).collect();
        println!("{}", json!({"packages": records, "summary": summary}));
    } else {
        println!(
            "{} headers: {} listed, {} listed marked unverified, {} rejected, {} errors; {} digests; \
             wrote {} ({} bytes, sequence {sequence})",
            sources.len(),
            listed,
            marked,
            rejected,
            errors,
            digests,
            a.output.display(),
            bytes.len()
        );
        if let Some((path, t)) = trust {
            println!(
                "fapolicyd trust file {}: {} files; left out: {} of unverified packages, {} with MD5/SHA-1 \
                 digests, {} with other than SHA-256 digests, {} without a size, {} with a path fapolicyd \
                 cannot read, {} listed by two packages with other contents",
                path.display(),
                t.file.len(),
                t.unverified,
                t.weak_digests,
                t.not_sha256,
                t.no_size,
                t.unrepresentable,
                t.file.conflicting()
            );
        }
    }
    let incomplete = trust.map_or(0, |(_, t)| t.incomplete());
    Ok(if rejected + errors + marked + incomplete == 0 { EXIT_OK } else { EXIT_VERDICT })
}

/// A package's verdict line.
fn line(v: &Verdict) -> String {
    let label = &v.source;
    let j = match &v.outcome {
        Ok(j) => j,
        Err(e) => return format!("{label}: error: {e}"),
    };
    match &j.rejection {
        None => format!("{label}: {} listed, {} digests ({})", j.identity, j.digests, j.file_algo),
        Some(why) => format!("{label}: {} {}: {why}", j.identity, j.listing.name()),
    }
}

/// A package's JSON record.
fn record(v: &Verdict) -> serde_json::Value {
    let label = &v.source;
    let j = match &v.outcome {
        Ok(j) => j,
        Err(e) => return json!({"source": label, "verdict": "error", "error": e.to_string()}),
    };
    let reason = j.rejection.as_ref().map(|r| r.to_string());
    json!({"source": label, "package": j.identity.to_string(), "identity": j.identity,
        "verdict": j.listing.name(), "reason": reason, "rejection": j.rejection, "trust": j.trust,
        "payload": j.payload, "file_algo": j.file_algo.to_string(), "digests": j.digests})
}

fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), String> {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = path.file_name().ok_or_else(|| format!("{}: not a file name", path.display()))?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(format!(".tmp{}", std::process::id()));
    let tmp = dir.join(tmp_name);
    let write = || -> std::io::Result<()> {
        let mut f = OpenOptions::new().write(true).create(true).truncate(true).mode(0o644).open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    };
    write().map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        format!("writing {}: {e}", path.display())
    })
}

fn open_list(list: &Path, key: &Path) -> Result<DigestList, String> {
    let key = verifying_key(key)?;
    let bytes = std::fs::read(list).map_err(|e| format!("{}: {e}", list.display()))?;
    DigestList::open(bytes, &key).map_err(|e: ListError| format!("{}: {e}", list.display()))
}

fn lookup(a: &LookupArgs) -> Result<u8, String> {
    let list = open_list(&a.list, &a.verify_key)?;
    let mut all = true;
    let mut records = Vec::new();
    for f in &a.files {
        let algos: Vec<_> = list.algorithms().iter().map(|(a, _)| *a).collect();
        let digests = std::fs::File::open(f)
            .and_then(|file| umd_hash::hash_reader(&algos, std::io::BufReader::new(file)))
            .map_err(|e| format!("{}: {e}", f.display()))?;
        let mut hits = Vec::new();
        for d in &digests {
            hits.extend(list.lookup(d).map(|p| (d.algo(), p.name.to_owned(), p.mark)));
        }
        let listed = hits.iter().any(|h| h.2 == Mark::Verified || a.accept_unverified);
        all &= listed;
        if a.json {
            let hs: Vec<_> = hits
                .iter()
                .map(|(algo, name, mark)| json!({"algo": algo.name(), "package": name, "mark": mark.name()}))
                .collect();
            records.push(json!({"file": f.display().to_string(), "listed": listed, "entries": hs}));
        } else if hits.is_empty() {
            println!("{}: not listed", f.display());
        } else {
            let which: Vec<String> = hits
                .iter()
                .map(|(algo, name, mark)| match mark {
                    Mark::Verified => format!("{name} ({})", algo.name()),
                    m => format!("{name} ({}, marked {})", algo.name(), m.name()),
                })
                .collect();
            let word = if listed { "listed" } else { "not listed (only in unverified packages)" };
            println!("{}: {word}: {}", f.display(), which.join(", "));
        }
    }
    if a.json {
        println!("{}", json!({"files": records, "all_listed": all}));
    }
    Ok(if all { EXIT_OK } else { EXIT_VERDICT })
}

/// Seconds since the epoch as RFC 3339 UTC, as every time in umd's messages.
fn utc(secs: u64) -> String {
    umd_pgp::policy::utc(secs).to_string()
}

fn show(a: &ShowArgs) -> Result<u8, String> {
    let list = open_list(&a.list, &a.verify_key)?;
    let algos: Vec<_> = list.algorithms();
    if a.json {
        let pk: Vec<_> = list
            .packages()
            .map(|p| json!({"package": p.name, "mark": p.mark.name(), "digests": p.digests}))
            .collect();
        let al: Vec<_> = algos.iter().map(|(a, n)| json!({"algo": a.name(), "digests": n})).collect();
        println!(
            "{}",
            json!({"version": umd_digest_list::VERSION, "created": list.created(), "sequence": list.sequence(),
                "bytes": list.size(), "digests": list.len(), "algorithms": al, "packages": pk})
        );
    } else {
        println!("digest list {} (format version {})", a.list.display(), umd_digest_list::VERSION);
        println!("signature: good ({})", a.verify_key.display());
        println!("created:   {}", utc(list.created()));
        println!("sequence:  {}", list.sequence());
        println!("size:      {} bytes, {} digests", list.size(), list.len());
        for (algo, n) in &algos {
            println!("  {}: {n} digests", algo.name());
        }
        println!("packages:  {}", list.packages().count());
        for p in list.packages() {
            let mark = if p.mark == Mark::Verified { String::new() } else { format!(" [{}]", p.mark.name()) };
            println!("  {}: {} digests{mark}", p.name, p.digests);
        }
    }
    Ok(EXIT_OK)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_utc() {
        assert_eq!(utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(utc(1_700_000_000), "2023-11-14T22:13:20Z");
    }

    #[test]
    fn the_public_half_sits_beside_the_key() {
        assert_eq!(public_path(Path::new("/etc/umd/digests.key")), Path::new("/etc/umd/digests.pub"));
        assert_eq!(public_path(Path::new("k")), Path::new("k.pub"));
    }
}
