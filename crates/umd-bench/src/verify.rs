//! OpenPGP rows: `umd verify` as a user runs it, beside `sqv` and `gpgv`.
//!
//! * **Ours** — the `umd` binary as a process: `umd verify --keyring K InRelease`
//!   (process start, keyring loading, handler start, description, checks and
//!   verification all included), or `umd verify --each` over many files with one
//!   warm handler.
//! * **Baselines** — `sqv --keyring K SIG DATA` (sqv 1.1 cannot read cleartext, so
//!   it gets the same content split into its signed text and a detached
//!   signature, as the issue prescribes) and `gpgv --keyring K InRelease`.
//!
//! The data is Debian's archive keyring and bookworm `InRelease` (151 KB, three
//! signatures), committed as fixtures, written to a temporary directory once.
//! Why it is fair: every side is a whole process verifying the same signatures
//! over the same bytes against the same keyring, and must succeed (exit 0).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::pin::Pin;
use crate::{BenchError, BoxedWorkload, Workload};

/// Debian's archive keyring (fixture).
pub const KEYRING: &[u8] = include_bytes!("../../umd-pgp/tests/fixtures/debian-archive-keyring.gpg");
/// bookworm's `InRelease` (fixture): 151 KB, three signatures.
pub const INRELEASE: &[u8] = include_bytes!("../../umd-pgp/tests/fixtures/bookworm_InRelease");

/// Files of the `--each` rows.
pub const EACH_FILES: usize = 40;

/// The fixtures on disk, in a directory removed on drop.
pub struct Fixtures {
    dir: PathBuf,
    /// The keyring.
    pub keyring: PathBuf,
    /// `InRelease` copies (`EACH_FILES` of them; the first is the single-file one).
    pub inrelease: Vec<PathBuf>,
    /// For sqv: detached signature and signed text of each copy.
    pub detached: Vec<(PathBuf, PathBuf)>,
}

impl Fixtures {
    /// Writes the fixtures.
    pub fn new() -> Result<Fixtures, BenchError> {
        let io = BenchError::io;
        let dir = std::env::temp_dir().join(format!("umd-bench-verify-{}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(io("creating the fixture directory"))?;
        let keyring = dir.join("keyring.gpg");
        std::fs::write(&keyring, KEYRING).map_err(io("writing the keyring"))?;
        let split = umd_pgp::cleartext::split(INRELEASE).map_err(|e| BenchError::BadReply {
            what: "splitting the InRelease fixture",
            detail: e.to_string(),
        })?;
        let mut inrelease = Vec::new();
        let mut detached = Vec::new();
        for i in 0..EACH_FILES {
            let p = dir.join(format!("{i}_InRelease"));
            std::fs::write(&p, INRELEASE).map_err(io("writing InRelease"))?;
            inrelease.push(p);
            // The signed text as the signature covers it (canonical, no final
            // line ending) and the signature block, for sqv.
            let data = dir.join(format!("{i}_Release"));
            let sig = dir.join(format!("{i}_Release.gpg"));
            std::fs::write(&data, &split.signed).map_err(io("writing the signed text"))?;
            std::fs::write(&sig, &split.signatures).map_err(io("writing the detached signature"))?;
            detached.push((sig, data));
        }
        Ok(Fixtures { dir, keyring, inrelease, detached })
    }
}

impl Drop for Fixtures {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn tool(name: &'static str) -> Result<PathBuf, BenchError> {
    let found = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|d| d.join(name))
        .find(|p| p.is_file());
    found.ok_or(BenchError::Io {
        what: name,
        source: std::io::Error::new(
            std::io::ErrorKind::NotFound,
            format!("{name} not found (apt-get install {name})"),
        ),
    })
}

fn run_ok(what: &'static str, cmd: &mut Command) -> Result<(), BenchError> {
    let status = cmd.stdout(Stdio::null()).stderr(Stdio::null()).status().map_err(BenchError::io(what))?;
    if status.success() {
        Ok(())
    } else {
        Err(BenchError::BadReply { what, detail: format!("exited with {status}") })
    }
}

/// The `umd` binary: this process, or beside the criterion bench executable.
pub fn umd_binary() -> Result<PathBuf, BenchError> {
    // `umd bench` runs inside the umd binary; criterion benches find it beside
    // their own executable's directory (target/<profile>/).
    let exe = std::env::current_exe().map_err(BenchError::io("finding the umd binary"))?;
    if exe.file_name().is_some_and(|n| n == "umd") {
        return Ok(exe);
    }
    let up = exe.parent().and_then(Path::parent).map(|d| d.join("umd"));
    up.filter(|p| p.is_file()).ok_or(BenchError::Io {
        what: "finding the umd binary",
        source: std::io::Error::new(
            std::io::ErrorKind::NotFound,
            "build it first: cargo build --release -p umd-cli",
        ),
    })
}

/// One side of a row: a command run `iters` times (or once per `iters` for the
/// `--each` rows, which cover `EACH_FILES` files per operation).
pub struct Process {
    fixtures: Fixtures,
    kind: Kind,
    program: PathBuf,
}

#[derive(Clone, Copy)]
enum Kind {
    UmdSingle,
    SqvSingle,
    GpgvSingle,
    UmdEach,
    SqvLoop,
}

impl Process {
    fn new(kind: Kind) -> Result<Process, BenchError> {
        let program = match kind {
            Kind::UmdSingle | Kind::UmdEach => umd_binary()?,
            Kind::SqvSingle | Kind::SqvLoop => tool("sqv")?,
            Kind::GpgvSingle => tool("gpgv")?,
        };
        let mut me = Process { fixtures: Fixtures::new()?, kind, program };
        me.run(1)?; // it must succeed before it is timed
        Ok(me)
    }

    fn once(&self) -> Result<(), BenchError> {
        let f = &self.fixtures;
        let k = &f.keyring;
        match self.kind {
            Kind::UmdSingle => run_ok(
                "umd verify",
                Command::new(&self.program).arg("verify").arg("--keyring").arg(k).arg(&f.inrelease[0]),
            ),
            Kind::SqvSingle => {
                let (sig, data) = &f.detached[0];
                run_ok("sqv", Command::new(&self.program).arg("--keyring").arg(k).arg(sig).arg(data))
            }
            Kind::GpgvSingle => {
                run_ok("gpgv", Command::new(&self.program).arg("--keyring").arg(k).arg(&f.inrelease[0]))
            }
            Kind::UmdEach => run_ok(
                "umd verify --each",
                Command::new(&self.program)
                    .arg("verify")
                    .arg("--keyring")
                    .arg(k)
                    .arg("--each")
                    .args(&f.inrelease),
            ),
            Kind::SqvLoop => f.detached.iter().try_for_each(|(sig, data)| {
                run_ok("sqv", Command::new(&self.program).arg("--keyring").arg(k).arg(sig).arg(data))
            }),
        }
    }
}

impl Workload for Process {
    fn run(&mut self, iters: u64) -> Result<Duration, BenchError> {
        let start = Instant::now();
        for _ in 0..iters {
            self.once()?;
        }
        Ok(start.elapsed())
    }
}

macro_rules! side {
    ($name:ident, $kind:ident) => {
        /// Builds this side of a row.
        pub fn $name(_pin: Pin) -> Result<BoxedWorkload, BenchError> {
            Ok(Box::new(Process::new(Kind::$kind)?))
        }
    };
}

side!(umd_single, UmdSingle);
side!(sqv_single, SqvSingle);
side!(gpgv_single, GpgvSingle);
side!(umd_each, UmdEach);
side!(sqv_loop, SqvLoop);
