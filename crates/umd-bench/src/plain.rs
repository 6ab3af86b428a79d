//! The **plain manager**: what a program would do in a few lines without umd, and
//! the baseline every row is measured against.
//!
//! It does the minimum that still runs the *same* handler program the same way:
//!
//! * the blob goes into a memfd (`memfd_create(2)` + `write(2)`; no seals, no ELF
//!   check),
//! * a child is started with `fork` + `execveat(2)` on that memfd (through
//!   [`std::process::Command`] and `pre_exec`, the same mechanism umd's loader uses,
//!   so spawn costs compare like for like), with an empty environment,
//! * fd 0 and fd 1 are plain **blocking** pipes of the default size, stderr goes to
//!   `/dev/null`,
//! * a request is one `write(2)` loop, a reply one `read(2)` loop for a size known in
//!   advance: no frame header, no `poll(2)`, no deadline, no check that the child
//!   wrote nothing extra, no lock, no statistics, no `post_start`.
//!
//! Everything umd adds on top of this is what the rows measure.

use std::ffi::CString;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

use rustix::fs::MemfdFlags;

/// A handler program in an (unsealed) memfd.
///
/// ```
/// use umd_bench::plain::{PlainChild, PlainProgram};
///
/// let program = PlainProgram::new(umd_blobs::ECHO_HANDLER).unwrap();
/// let mut child = PlainChild::spawn(&program, &["raw", "4"]).unwrap();
/// let mut reply = [0u8; 4];
/// child.exchange(b"ping", &mut reply).unwrap();
/// assert_eq!(&reply, b"ping");
/// child.kill().unwrap();
/// ```
pub struct PlainProgram {
    memfd: OwnedFd,
}

impl PlainProgram {
    /// Copies `blob` into a new memfd (close-on-exec: `execveat` needs no path).
    pub fn new(blob: &[u8]) -> io::Result<PlainProgram> {
        let memfd = rustix::fs::memfd_create(c"plain-handler", MemfdFlags::CLOEXEC)?;
        let mut file = std::fs::File::from(memfd);
        file.write_all(blob)?;
        Ok(PlainProgram { memfd: file.into() })
    }
}

/// Pointers for `execveat`, built before `fork`: the child of a multi-threaded
/// process must not allocate between `fork` and `exec`.
struct Argv {
    _storage: Vec<CString>,
    argv: Vec<*const libc::c_char>,
    envp: [*const libc::c_char; 1],
}

// SAFETY: the pointers point into `_storage`, which the same value owns and never
// changes; the forked child only reads them.
unsafe impl Send for Argv {}
// SAFETY: as above, shared access is read-only.
unsafe impl Sync for Argv {}

impl Argv {
    fn new(args: &[&str]) -> io::Result<Argv> {
        let storage = std::iter::once("plain-handler")
            .chain(args.iter().copied())
            .map(|a| CString::new(a).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput)))
            .collect::<io::Result<Vec<_>>>()?;
        let mut argv: Vec<_> = storage.iter().map(|s| s.as_ptr()).collect();
        argv.push(std::ptr::null());
        Ok(Argv { _storage: storage, argv, envp: [std::ptr::null()] })
    }

    /// `execveat(memfd, "", argv, envp, AT_EMPTY_PATH)`: returns only on failure.
    /// Async-signal-safe: one system call, no allocation.
    fn execveat(&self, memfd: i32) -> io::Error {
        // SAFETY: `argv` and `envp` are NULL-terminated arrays of C strings owned
        // by `self`, alive for this call; `memfd` is open in the child
        // (close-on-exec closes it only once the exec succeeds).
        unsafe {
            libc::syscall(
                libc::SYS_execveat,
                memfd,
                c"".as_ptr(),
                self.argv.as_ptr(),
                self.envp.as_ptr(),
                libc::AT_EMPTY_PATH,
            );
        }
        io::Error::last_os_error()
    }
}

/// A running child on blocking pipes. Dropping it kills and reaps it.
pub struct PlainChild {
    child: Child,
    stdin: ChildStdin,
    stdout: ChildStdout,
}

impl PlainChild {
    /// Starts `program` with `args` after argv\[0\]: `fork` + `execveat(memfd, "",
    /// AT_EMPTY_PATH)`.
    pub fn spawn(program: &PlainProgram, args: &[&str]) -> io::Result<PlainChild> {
        let argv = Argv::new(args)?;
        let memfd = program.memfd.as_fd().as_raw_fd();
        let mut cmd = Command::new("plain-handler");
        cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::null());
        // SAFETY: the closure runs in the forked child and only makes one system
        // call on memory prepared before the fork (no allocation, no lock).
        unsafe {
            cmd.pre_exec(move || Err(argv.execveat(memfd)));
        }
        let mut child = cmd.spawn()?;
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            let _ = child.kill();
            let _ = child.wait();
            return Err(io::Error::other("spawned child has no stdin/stdout pipe"));
        };
        Ok(PlainChild { child, stdin, stdout })
    }

    /// The child's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Writes `request`, then reads exactly `reply.len()` bytes (blocking).
    pub fn exchange(&mut self, request: &[u8], reply: &mut [u8]) -> io::Result<()> {
        self.stdin.write_all(request)?;
        self.stdout.read_exact(reply)
    }

    /// SIGKILLs the child and reaps it.
    pub fn kill(mut self) -> io::Result<()> {
        self.child.kill()?;
        self.child.wait()?;
        Ok(())
    }
}

impl Drop for PlainChild {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
