//! A handler that behaves as a compromised one would, for the sandbox tests.
//!
//! Framed mode, built on `umd-handler` (so it confines itself like any real
//! handler). The request names an attack; the handler tries it and replies with
//! what happened: `denied: <error>` when the kernel refused, `ALLOWED: <detail>`
//! when the attack worked (a sandbox failure the tests look for). Calls off the
//! seccomp allow-list never return: the handler dies of SIGSYS. A request of
//! `ping` is answered `pong` (the `post_start` check). Never shipped.
//!
//! Some attacks take an argument after a space, so a test can aim them at
//! something it controls: a path (`read-file PATH`, `write-file PATH`,
//! `create-file PATH`, `list-dir PATH`, `connect-unix PATH`), the manager's pid
//! (`ptrace-parent PID`, `read-parent-memory PID ADDR`, `kill-parent PID`: without
//! it the handler asks `getppid`, itself off the list), a port (`connect-tcp
//! PORT`, on 127.0.0.1), an abstract socket name (`connect-abstract NAME`) or a
//! size (`flood-stderr MIB`, default 1024).
//!
//! Started with the argument `pretend-confined`, the handler answers the start-up
//! handshake without confining itself (a lying handler), then answers every
//! request with `pong`: the manager's `/proc` check must refuse it.

use std::ffi::CString;
use std::process::ExitCode;

fn errno() -> std::io::Error {
    std::io::Error::last_os_error()
}

/// Turns a libc return value into the reply.
fn verdict(r: i64, detail: &str) -> String {
    if r < 0 {
        format!("denied: {}", errno())
    } else {
        format!("ALLOWED: {detail} (returned {r})")
    }
}

fn attack(request: &str) -> String {
    let (name, arg) = match request.split_once(' ') {
        Some((name, arg)) => (name, Some(arg)),
        None => (request, None),
    };
    let path = |default: &str| CString::new(arg.unwrap_or(default)).unwrap_or_default();
    // SAFETY (whole function): plain system calls on valid, NUL-terminated strings
    // and stack buffers; the point is to see the kernel refuse them.
    unsafe {
        // The manager's pid: given by the test, or asked (getppid is itself off the
        // allow-list, so the question alone is a violation).
        let ppid = || arg.and_then(|a| a.split(' ').next()?.parse().ok()).unwrap_or_else(|| libc::getppid());
        match name {
            "ping" => "pong".into(),
            "ppid" => format!("ppid {}", libc::getppid()),
            "read-file" => {
                let p = path("/etc/passwd");
                let fd = libc::open(p.as_ptr(), libc::O_RDONLY);
                if fd < 0 {
                    return verdict(-1, "");
                }
                let mut buf = [0u8; 64];
                let n = libc::read(fd, buf.as_mut_ptr().cast(), buf.len()).max(0) as usize;
                format!("ALLOWED: read {n} bytes: {}", String::from_utf8_lossy(&buf[..n]))
            }
            "write-file" => {
                let p = path("/tmp/umd-malicious-write");
                let fd = libc::open(p.as_ptr(), libc::O_WRONLY | libc::O_APPEND);
                if fd < 0 {
                    return verdict(-1, "");
                }
                let n = libc::write(fd, b"owned\n".as_ptr().cast(), 6);
                format!("ALLOWED: opened a file for writing and wrote {n} bytes")
            }
            "create-file" => {
                let p = path("/tmp/umd-malicious-created");
                verdict(
                    libc::open(p.as_ptr(), libc::O_WRONLY | libc::O_CREAT, 0o644).into(),
                    "created a file",
                )
            }
            "list-dir" => {
                let p = path("/");
                verdict(
                    libc::open(p.as_ptr(), libc::O_RDONLY | libc::O_DIRECTORY).into(),
                    "opened a directory for listing",
                )
            }
            "socket" => {
                verdict(libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0).into(), "created a TCP socket")
            }
            "connect-unix" => {
                let s = libc::socket(libc::AF_UNIX, libc::SOCK_STREAM, 0);
                if s < 0 {
                    return verdict(-1, "");
                }
                let mut addr: libc::sockaddr_un = std::mem::zeroed();
                addr.sun_family = libc::AF_UNIX as u16;
                let p = path("/run/umd-test.sock");
                let p = p.as_bytes();
                let room = addr.sun_path.len() - 1; // keep the terminating NUL
                for (d, s) in addr.sun_path[..room].iter_mut().zip(p) {
                    *d = *s as libc::c_char;
                }
                let len = std::mem::size_of::<libc::sockaddr_un>() as u32;
                verdict(libc::connect(s, (&addr as *const libc::sockaddr_un).cast(), len).into(), "connected")
            }
            "connect-tcp" => {
                let s = libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0);
                if s < 0 {
                    return verdict(-1, "");
                }
                let port: u16 = arg.and_then(|a| a.parse().ok()).unwrap_or(22);
                let addr = libc::sockaddr_in {
                    sin_family: libc::AF_INET as libc::sa_family_t,
                    sin_port: port.to_be(),
                    sin_addr: libc::in_addr { s_addr: u32::from_be_bytes([127, 0, 0, 1]).to_be() },
                    sin_zero: [0; 8],
                };
                let len = std::mem::size_of::<libc::sockaddr_in>() as u32;
                verdict(
                    libc::connect(s, (&addr as *const libc::sockaddr_in).cast(), len).into(),
                    "connected to a TCP port on 127.0.0.1",
                )
            }
            "connect-abstract" => {
                let s = libc::socket(libc::AF_UNIX, libc::SOCK_STREAM, 0);
                if s < 0 {
                    return verdict(-1, "");
                }
                let mut addr: libc::sockaddr_un = std::mem::zeroed();
                addr.sun_family = libc::AF_UNIX as u16;
                // An abstract name: a NUL, then the name (not NUL-terminated).
                let name = arg.unwrap_or("umd-test").as_bytes();
                let name = &name[..name.len().min(addr.sun_path.len() - 1)];
                for (d, s) in addr.sun_path[1..].iter_mut().zip(name) {
                    *d = *s as libc::c_char;
                }
                let len = (std::mem::size_of::<libc::sa_family_t>() + 1 + name.len()) as u32;
                verdict(
                    libc::connect(s, (&addr as *const libc::sockaddr_un).cast(), len).into(),
                    "connected to an abstract Unix socket",
                )
            }
            "execve" => {
                let sh = CString::new("/bin/sh").unwrap_or_default();
                let argv = [sh.as_ptr(), std::ptr::null()];
                let envp = [std::ptr::null()];
                verdict(libc::execve(sh.as_ptr(), argv.as_ptr(), envp.as_ptr()).into(), "executed /bin/sh")
            }
            "ptrace-parent" => verdict(
                libc::ptrace(libc::PTRACE_ATTACH, ppid(), std::ptr::null_mut::<libc::c_void>(), 0),
                "attached to the manager",
            ),
            "read-parent-memory" => {
                // `read-parent-memory PID ADDR` (hex): a test names an address that
                // is mapped, so only a permission check can make this fail.
                let addr = arg
                    .and_then(|a| a.split(' ').nth(1))
                    .and_then(|a| usize::from_str_radix(a.trim_start_matches("0x"), 16).ok())
                    .unwrap_or(0x400000);
                let mut buf = [0u8; 16];
                let local = libc::iovec { iov_base: buf.as_mut_ptr().cast(), iov_len: 16 };
                let remote = libc::iovec { iov_base: addr as *mut libc::c_void, iov_len: 16 };
                let n = libc::process_vm_readv(ppid(), &local, 1, &remote, 1, 0);
                if n < 0 {
                    return verdict(-1, "");
                }
                format!("ALLOWED: read the manager's memory: {}", String::from_utf8_lossy(&buf[..n as usize]))
            }
            "kill-parent" => verdict(libc::kill(ppid(), libc::SIGKILL).into(), "sent SIGKILL to the manager"),
            "setuid" => verdict(libc::setuid(0).into(), "became root"),
            "mount" => {
                let t = CString::new("tmpfs").unwrap_or_default();
                let d = CString::new("/tmp").unwrap_or_default();
                verdict(
                    libc::mount(t.as_ptr(), d.as_ptr(), t.as_ptr(), 0, std::ptr::null()).into(),
                    "mounted a tmpfs",
                )
            }
            "unshare" => verdict(libc::unshare(libc::CLONE_NEWUSER).into(), "made a user namespace"),
            "fork-bomb" => {
                let mut made = 0;
                for _ in 0..10_000 {
                    let pid = libc::fork();
                    if pid == 0 {
                        loop {
                            libc::pause();
                        }
                    }
                    if pid < 0 {
                        break;
                    }
                    made += 1;
                }
                if made == 0 {
                    verdict(-1, "")
                } else {
                    format!("ALLOWED: forked {made} processes")
                }
            }
            "exhaust-memory" => {
                // 64 GiB, touched page by page: only a limit can stop it.
                let len = 64usize << 30;
                let p = libc::mmap(
                    std::ptr::null_mut(),
                    len,
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                    -1,
                    0,
                );
                if p == libc::MAP_FAILED {
                    return verdict(-1, "");
                }
                let b = p as *mut u8;
                for i in (0..len).step_by(4096) {
                    b.add(i).write_volatile(1);
                }
                "ALLOWED: touched 64 GiB".into()
            }
            "exhaust-memory-gradually" => {
                // 16 MiB at a time, each touched, until the kernel says no: only a
                // limit on the address space stops this before the machine's memory.
                const CHUNK: usize = 16 << 20;
                let mut chunks = Vec::with_capacity(4096);
                let mut failure = None;
                while chunks.len() < 4096 {
                    let p = libc::mmap(
                        std::ptr::null_mut(),
                        CHUNK,
                        libc::PROT_READ | libc::PROT_WRITE,
                        libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                        -1,
                        0,
                    );
                    if p == libc::MAP_FAILED {
                        failure = Some(errno());
                        break;
                    }
                    let b = p as *mut u8;
                    for i in (0..CHUNK).step_by(4096) {
                        b.add(i).write_volatile(1);
                    }
                    chunks.push(p);
                }
                let mib = chunks.len() * (CHUNK >> 20);
                for p in chunks {
                    libc::munmap(p, CHUNK);
                }
                match failure {
                    Some(e) => format!("denied: {e} after {mib} MiB"),
                    None => format!("ALLOWED: touched {mib} MiB"),
                }
            }
            "spin" => loop {
                std::hint::spin_loop();
            },
            "flood-stderr" => {
                let line = [b'x'; 4096];
                let mib: usize = arg.and_then(|a| a.parse().ok()).unwrap_or(1024);
                let mut sent = 0usize;
                while sent < mib << 20 {
                    let n = libc::write(2, line.as_ptr().cast(), line.len());
                    if n <= 0 {
                        return format!("denied: stderr write failed after {sent} bytes: {}", errno());
                    }
                    sent += n as usize;
                }
                format!("flooded: wrote {sent} bytes to stderr")
            }
            "mprotect-exec" => {
                let page = [0u8; 8192];
                let addr = ((page.as_ptr() as usize + 4095) & !4095) as *mut libc::c_void;
                verdict(
                    libc::mprotect(addr, 4096, libc::PROT_READ | libc::PROT_EXEC).into(),
                    "made memory executable",
                )
            }
            other => format!("unknown attack {other:?}"),
        }
    }
}

/// A lying handler: answers the start-up handshake as if it had confined itself,
/// then says `pong` to everything.
fn pretend_confined() -> ExitCode {
    use std::os::fd::AsFd;
    use umd_handler::wire::chan::{self, Endpoint, Payload};
    use umd_handler::wire::{Kind, Limits};
    let (stdin, stdout) = (std::io::stdin(), std::io::stdout());
    let ep = Endpoint { rx: stdin.as_fd(), tx: stdout.as_fd(), socket: false };
    let limits = Limits::default();
    let mut buf = Vec::new();
    // The config frame, ignored; then "ready", with no filter installed.
    if chan::recv_frame(ep, &limits, &mut buf, None).is_err()
        || chan::send_frame(ep, Kind::Ready, Payload::Inline(&[]), &limits, None).is_err()
    {
        return ExitCode::from(2);
    }
    while chan::recv_frame(ep, &limits, &mut buf, None).is_ok() {
        if chan::send_frame(ep, Kind::Reply, Payload::Inline(b"pong"), &limits, None).is_err() {
            break;
        }
    }
    ExitCode::SUCCESS
}

fn main() -> ExitCode {
    if std::env::args().nth(1).as_deref() == Some("pretend-confined") {
        return pretend_confined();
    }
    let mut linger = false;
    let code = umd_handler::serve_framed(|req, out| {
        let name = String::from_utf8_lossy(req);
        if name == "linger" {
            // Reply, then keep the channel open and ignore end of input.
            linger = true;
            out.extend_from_slice(b"lingering");
            return Ok(());
        }
        if name == "reply-then-scribble" {
            // A reply, then bytes outside any reply.
            out.extend_from_slice(b"scribbled");
            // An empty reply frame's header, out of turn.
            let junk: [u8; 8] = [b'U', b'M', 1, 2, 0, 0, 0, 0];
            // SAFETY: writing a stack buffer to fd 1.
            unsafe {
                libc::write(1, junk.as_ptr().cast(), junk.len());
            }
            return Ok(());
        }
        out.extend_from_slice(attack(&name).as_bytes());
        Ok(())
    });
    if linger {
        loop {
            // SAFETY: pause(2) just waits for a signal (SIGKILL from the manager).
            unsafe { libc::pause() };
        }
    }
    code
}
