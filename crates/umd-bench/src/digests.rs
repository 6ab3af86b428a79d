//! Digest-list rows: RPM headers verified per second beside `rpmkeys --checksig`,
//! lookup latency, and the cost of opening (verifying) a list.
//!
//! * `rpm-build-vs-checksig` — `umd digests build` over 40 signed packages (a
//!   whole process: keyring, two handlers, 40 descriptions, 40 signature
//!   verifications, payload digests, list signed and written) beside
//!   `rpmkeys --checksig` over the same 40 files in one process, with the same
//!   keys imported. One operation = 40 headers.
//! * `rpm-warm-vs-checksig` — the same 40 headers through a warm
//!   [`umd_rpm::package::PackageVerifier`] in this process (what a daemon pays),
//!   beside the same `rpmkeys` process.
//! * `digest-lookup` — one [`umd_digest_list::DigestList::lookup`] in a list of
//!   one million SHA-256 digests (prefix index, interpolation search), beside a
//!   `HashSet<[u8; 32]>` lookup of the same digest (an in-memory index someone
//!   would have to build first).
//! * `digest-open` — [`umd_digest_list::DigestList::open`] of that list (Ed25519
//!   verification over every byte, then the structure check), beside one
//!   SHA-256 pass over the same bytes (the least any integrity check costs).
//!
//! The packages are built with `scripts/rpm-corpus` (Debian's rpm tools) into
//! the cargo target directory's `tmp`, once (reused by later runs of the same
//! build): 40 RSA-3072-signed packages of 20 files each.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use umd_digest_list::{Builder, Digest, DigestList, HashAlgo, Mark, SigningKey};

use crate::pin::Pin;
use crate::{BenchError, BoxedWorkload, Workload};

/// Packages per operation of the rpm rows.
pub const PACKAGES: usize = 40;
/// Digests in the lookup and open rows' list.
pub const LIST_DIGESTS: usize = 1_000_000;
/// Packages those digests are spread over.
pub const LIST_PACKAGES: usize = 10_000;

struct Corpus {
    dir: PathBuf,
    rpms: Vec<PathBuf>,
    rpmkeys_db: PathBuf,
}

/// Where the corpus is kept between runs: in the `tmp` directory of the
/// cargo target directory this binary was built in (the ancestor holding
/// cargo's `CACHEDIR.TAG`), so checkouts and worktrees built side by side
/// never share one (they did in a fixed `/tmp` path). A binary outside any
/// target directory builds one of its own, named after its process.
fn corpus_dir() -> PathBuf {
    let name = format!("umd-bench-rpm-corpus-{PACKAGES}");
    let exe = std::env::current_exe().ok();
    let target =
        exe.as_deref().and_then(|e| e.ancestors().skip(1).find(|d| d.join("CACHEDIR.TAG").is_file()));
    match target {
        Some(t) => t.join("tmp").join(name),
        None => std::env::temp_dir().join(format!("{name}-{}", std::process::id())),
    }
}

fn corpus() -> Result<&'static Corpus, BenchError> {
    static C: OnceLock<Result<Corpus, String>> = OnceLock::new();
    let c = C.get_or_init(|| {
        // One corpus for every run (building it takes ~15 s): reused when a
        // previous run finished it (the marker is written last).
        let dir = corpus_dir();
        let marker = dir.join("complete");
        if !marker.exists() {
            let _ = std::fs::remove_dir_all(&dir);
            let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/rpm-corpus");
            let out = Command::new(&script)
                .arg(&dir)
                .arg(PACKAGES.to_string())
                .stdin(Stdio::null())
                .output()
                .map_err(|e| format!("running {}: {e}", script.display()))?;
            if !out.status.success() {
                return Err(format!("rpm-corpus: {}", String::from_utf8_lossy(&out.stderr)));
            }
        }
        let rpms = (1..=PACKAGES).map(|i| dir.join(format!("rpms/bench-{i}.rpm"))).collect();
        let rpmkeys_db = dir.join("rpmkeys-db");
        let _ = std::fs::remove_dir_all(&rpmkeys_db);
        std::fs::create_dir_all(&rpmkeys_db).map_err(|e| e.to_string())?;
        for k in ["rsa.asc", "ed.asc"] {
            let ok = Command::new("rpmkeys")
                .arg("--dbpath")
                .arg(&rpmkeys_db)
                .args(["--define", "_db_backend sqlite", "--import"])
                .arg(dir.join("keys").join(k))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .map_err(|e| format!("rpmkeys --import: {e}"))?;
            if !ok.success() {
                return Err("rpmkeys --import failed".into());
            }
        }
        std::fs::write(&marker, b"").map_err(|e| e.to_string())?;
        Ok(Corpus { dir, rpms, rpmkeys_db })
    });
    c.as_ref().map_err(|e| BenchError::BadReply { what: "building the RPM corpus", detail: e.clone() })
}

fn run_ok(what: &'static str, cmd: &mut Command) -> Result<(), BenchError> {
    let out = cmd.stdin(Stdio::null()).stderr(Stdio::null()).output().map_err(BenchError::io(what))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(BenchError::BadReply { what, detail: format!("exited with {}", out.status) })
    }
}

enum Side {
    Build { umd: PathBuf },
    Warm { v: Box<umd_rpm::package::PackageVerifier>, files: Vec<Vec<u8>> },
    Checksig,
}

struct Headers {
    c: &'static Corpus,
    side: Side,
}

impl Headers {
    fn once(&mut self) -> Result<(), BenchError> {
        let c = self.c;
        match &self.side {
            Side::Build { umd } => run_ok(
                "umd digests build",
                Command::new(umd)
                    .args(["digests", "build", "--keyring"])
                    .arg(c.dir.join("keys/keyring.asc"))
                    .arg("--output")
                    .arg(c.dir.join("bench.list"))
                    .arg("--signing-key")
                    .arg(c.dir.join("bench.key"))
                    .arg("--rpm")
                    .args(&c.rpms)
                    .stdout(Stdio::null()),
            ),
            Side::Warm { v, files } => {
                for f in files {
                    let r = v
                        .package(f)
                        .map_err(|e| BenchError::BadReply { what: "verifying", detail: e.to_string() })?;
                    if let Some(why) = r.rejection() {
                        return Err(BenchError::BadReply { what: "verifying", detail: why.to_string() });
                    }
                }
                Ok(())
            }
            Side::Checksig => run_ok(
                "rpmkeys --checksig",
                Command::new("rpmkeys")
                    .arg("--dbpath")
                    .arg(&c.rpmkeys_db)
                    .args(["--define", "_db_backend sqlite", "--checksig"])
                    .args(&c.rpms)
                    .stdout(Stdio::null()),
            ),
        }
    }

    fn boxed(
        side: impl FnOnce(&'static Corpus) -> Result<Side, BenchError>,
    ) -> Result<BoxedWorkload, BenchError> {
        let c = corpus()?;
        let mut me = Headers { c, side: side(c)? };
        me.once()?; // it must succeed before it is timed
        Ok(Box::new(me))
    }
}

impl Workload for Headers {
    fn run(&mut self, iters: u64) -> Result<Duration, BenchError> {
        let start = Instant::now();
        for _ in 0..iters {
            self.once()?;
        }
        Ok(start.elapsed())
    }
}

/// `umd digests build` over the packages (a process).
pub fn umd_build(_pin: Pin) -> Result<BoxedWorkload, BenchError> {
    Headers::boxed(|_| Ok(Side::Build { umd: crate::verify::umd_binary()? }))
}

/// A warm `PackageVerifier` over the packages (in process).
pub fn umd_warm(_pin: Pin) -> Result<BoxedWorkload, BenchError> {
    Headers::boxed(|c| {
        let keyring =
            std::fs::read(c.dir.join("keys/keyring.asc")).map_err(BenchError::io("reading the keyring"))?;
        let v = umd_rpm::package::PackageVerifier::new(&[keyring])
            .map_err(|e| BenchError::BadReply { what: "loading the keyring", detail: e.to_string() })?;
        let files =
            c.rpms.iter().map(std::fs::read).collect::<Result<_, _>>().map_err(BenchError::io("reading"))?;
        Ok(Side::Warm { v: Box::new(v), files })
    })
}

/// `rpmkeys --checksig` over the packages (a process).
pub fn rpmkeys_checksig(_pin: Pin) -> Result<BoxedWorkload, BenchError> {
    Headers::boxed(|_| Ok(Side::Checksig))
}

/// A deterministic list of `LIST_DIGESTS` digests and the digests themselves.
pub fn big_list() -> (Vec<u8>, SigningKey, Vec<[u8; 32]>) {
    let key = SigningKey::from_bytes(&[9; 32]);
    let mut b = Builder::new();
    let mut digests = Vec::with_capacity(LIST_DIGESTS);
    for p in 0..LIST_PACKAGES {
        b.add_package(&format!("package-{p}-1.0-1.x86_64"), Mark::Verified);
    }
    for i in 0..LIST_DIGESTS {
        let d = Digest::of(HashAlgo::Sha256, &(i as u64).to_le_bytes());
        let _ = b.add_digest(&d, (i % LIST_PACKAGES) as u32);
        let mut a = [0u8; 32];
        a.copy_from_slice(d.as_bytes());
        digests.push(a);
    }
    (b.finish(0, 1, &key), key, digests)
}

fn shared_list() -> &'static (Vec<u8>, SigningKey, Vec<[u8; 32]>) {
    static L: OnceLock<(Vec<u8>, SigningKey, Vec<[u8; 32]>)> = OnceLock::new();
    L.get_or_init(big_list)
}

enum Lookup {
    List(DigestList, usize),
    Set(HashSet<[u8; 32]>, usize),
}

impl Workload for Lookup {
    fn run(&mut self, iters: u64) -> Result<Duration, BenchError> {
        let digests = &shared_list().2;
        let start = Instant::now();
        let mut found = 0usize;
        match self {
            Lookup::List(l, next) => {
                for _ in 0..iters {
                    // A stride through the digests: every lookup a different one.
                    *next = (*next + 7919) % digests.len();
                    let d = Digest::new(HashAlgo::Sha256, &digests[*next]);
                    found += d.map_or(0, |d| l.lookup(&d).count());
                }
            }
            Lookup::Set(s, next) => {
                for _ in 0..iters {
                    *next = (*next + 7919) % digests.len();
                    found += usize::from(s.contains(&digests[*next]));
                }
            }
        }
        let t = start.elapsed();
        if found as u64 != iters {
            return Err(BenchError::BadReply { what: "lookup", detail: format!("{found} of {iters} found") });
        }
        Ok(t)
    }
}

/// Lookups in the one-million-digest list.
pub fn list_lookup(_pin: Pin) -> Result<BoxedWorkload, BenchError> {
    let (bytes, key, _) = shared_list();
    let l = DigestList::open(bytes.clone(), &key.verifying_key())
        .map_err(|e| BenchError::BadReply { what: "opening the list", detail: e.to_string() })?;
    Ok(Box::new(Lookup::List(l, 0)))
}

/// Lookups in a `HashSet` of the same digests.
pub fn hashset_lookup(_pin: Pin) -> Result<BoxedWorkload, BenchError> {
    Ok(Box::new(Lookup::Set(shared_list().2.iter().copied().collect(), 0)))
}

struct Open {
    verify: bool,
}

impl Workload for Open {
    fn run(&mut self, iters: u64) -> Result<Duration, BenchError> {
        let (bytes, key, _) = shared_list();
        let mut total = Duration::ZERO;
        for _ in 0..iters {
            let copy = bytes.clone(); // a fresh buffer, as read from a file; not timed
            let start = Instant::now();
            if self.verify {
                let l = DigestList::open(copy, &key.verifying_key())
                    .map_err(|e| BenchError::BadReply { what: "opening", detail: e.to_string() })?;
                std::hint::black_box(l.len());
            } else {
                std::hint::black_box(Digest::of(HashAlgo::Sha256, &copy));
            }
            total += start.elapsed();
        }
        Ok(total)
    }
}

/// Opening (verifying) the one-million-digest list.
pub fn list_open(_pin: Pin) -> Result<BoxedWorkload, BenchError> {
    Ok(Box::new(Open { verify: true }))
}

/// One SHA-256 pass over the same bytes.
pub fn sha256_pass(_pin: Pin) -> Result<BoxedWorkload, BenchError> {
    Ok(Box::new(Open { verify: false }))
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_million_sha256_digests_take_36_bytes_each_plus_the_package_table() {
        let (bytes, _, _) = super::big_list();
        let names: usize = (0..super::LIST_PACKAGES).map(|p| format!("package-{p}-1.0-1.x86_64").len()).sum();
        let expect = 64 + 24 + 36 * super::LIST_DIGESTS + 16 * super::LIST_PACKAGES + names + 104;
        assert!(bytes.len().abs_diff(expect) < 16, "{} vs {expect}", bytes.len());
    }
}
