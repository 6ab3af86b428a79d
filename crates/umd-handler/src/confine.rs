//! Start-up confinement of a handler built on this runtime: step 16 of the
//! confinement order, which is described in one place, the `umd` crate's
//! `confine` module (`crates/umd/src/confine/mod.rs`).
//!
//! Steps 1–15 have run before this code: the manager prepared the policy, and the
//! child set up by the loader reset its signals, kept only fds 0–2, changed its
//! identity and namespaces, took its resource limits, parent-death signal,
//! no-new-privileges and Landlock, then exec'd this program. What is left is the
//! seccomp allow-list, installed here in the same order as the loader installs it
//! for other handlers (no-new-privileges, then the filter): after the runtime's
//! own start-up and before the first request is read, so start-up calls need not
//! be on the list, with a SIGSYS reporter first, so that a violation is reported
//! with the call's name. The manager then reads the result back from `/proc`
//! (step 17) before it sends a request. See `umd_wire::handshake` for the
//! exchange with the manager.

use std::time::Instant;

use umd_seccomp::Flavor;
use umd_wire::chan::{self, Endpoint, Payload, Received};
use umd_wire::handshake::{Config, ARGV0_PREFIX, MAX_CONFIG, VIOLATION_PREFIX};
use umd_wire::{Kind, Limits};

/// Runs the handshake if the manager asked for one (through `argv[0]`).
pub(crate) fn startup(ep: Endpoint<'_>) -> Result<(), String> {
    let managed =
        std::env::args_os().next().is_some_and(|a| a.as_encoded_bytes().starts_with(ARGV0_PREFIX.as_bytes()));
    if !managed {
        // Started by hand (a benchmark baseline, a debugging session): no handshake.
        return Ok(());
    }
    let limits = Limits { max_inline: MAX_CONFIG as u32, max_memfd: 0 };
    let mut buf = Vec::new();
    let config = match chan::recv_frame(ep, &limits, &mut buf, None) {
        Ok(Received::Inline { kind: Kind::Config, len }) => {
            Config::decode(&buf[..len]).ok_or("malformed config frame from the manager")?
        }
        Ok(other) => return Err(format!("expected a config frame, got {other:?}")),
        Err(e) => return Err(format!("reading the config frame: {e}")),
    };
    if config.seccomp {
        let filters = match prebuilt(&config) {
            Some(f) => vec![f],
            None => {
                let extra: Vec<&str> = config.extra_syscalls.iter().map(String::as_str).collect();
                umd_seccomp::build(Flavor::Runtime { memfd_replies: config.memfd_replies }, &extra)
                    .map_err(|e| e.to_string())?
            }
        };
        install_reporter()?;
        rustix::thread::set_no_new_privs(true).map_err(|e| format!("no_new_privs: {e}"))?;
        for f in &filters {
            umd_seccomp::install(f)
                .map_err(|errno| format!("installing the seccomp filter: errno {errno}"))?;
        }
    }
    let _ = Instant::now(); // keep the vDSO clock mapped and resolved before the filter matters
    chan::send_frame(ep, Kind::Ready, Payload::Inline(&[]), &Limits::default(), None)
        .map_err(|e| format!("sending ready: {e}"))
}

/// The filter built by `build.rs` for this config, if there is one (no widening).
fn prebuilt(config: &Config) -> Option<umd_seccomp::BpfProgram> {
    if !config.extra_syscalls.is_empty() {
        return None;
    }
    #[cfg(umd_prebuilt_filters)]
    {
        let bytes: &[u8] = if config.memfd_replies {
            include_bytes!(concat!(env!("OUT_DIR"), "/runtime-memfd.bpf"))
        } else {
            include_bytes!(concat!(env!("OUT_DIR"), "/runtime.bpf"))
        };
        let filter = bytes
            .chunks_exact(8)
            .map(|c| umd_seccomp::sock_filter {
                code: u16::from_ne_bytes([c[0], c[1]]),
                jt: c[2],
                jf: c[3],
                k: u32::from_ne_bytes([c[4], c[5], c[6], c[7]]),
            })
            .collect();
        Some(filter)
    }
    #[cfg(not(umd_prebuilt_filters))]
    None
}

fn install_reporter() -> Result<(), String> {
    // SAFETY: a zeroed sigaction is a valid "no flags, empty mask" value; the
    // handler below only makes async-signal-safe system calls.
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = on_sigsys as *const () as usize;
        sa.sa_flags = libc::SA_SIGINFO;
        if libc::sigaction(libc::SIGSYS, &sa, std::ptr::null_mut()) != 0 {
            return Err(format!("installing the SIGSYS reporter: {}", std::io::Error::last_os_error()));
        }
    }
    Ok(())
}

/// Not a system call on any architecture: making it while SIGSYS is blocked (inside
/// this handler) makes the kernel deliver SIGSYS with its default action — death.
const NOT_A_SYSCALL: libc::c_long = 0x3fff;

extern "C" fn on_sigsys(_sig: libc::c_int, info: *mut libc::siginfo_t, _ctx: *mut libc::c_void) {
    // siginfo for SIGSYS: signo, errno, code (3 x i32, padded to 16 bytes), then
    // call_addr (pointer), syscall (i32), arch (u32).
    let nr = if info.is_null() {
        -1
    } else {
        // SAFETY: the kernel passes a valid siginfo_t; the SIGSYS layout is fixed ABI.
        unsafe { std::ptr::read_unaligned((info as *const u8).add(16 + size_of::<usize>()) as *const i32) }
    };
    let mut line = [0u8; 64];
    let mut n = 0;
    for &b in VIOLATION_PREFIX {
        line[n] = b;
        n += 1;
    }
    let mut digits = [0u8; 12];
    let mut d = 0;
    let mut v = nr.unsigned_abs();
    if nr < 0 {
        line[n] = b'-';
        n += 1;
    }
    loop {
        digits[d] = b'0' + (v % 10) as u8;
        d += 1;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    while d > 0 {
        d -= 1;
        line[n] = digits[d];
        n += 1;
    }
    line[n] = b'\n';
    n += 1;
    // SAFETY: write(2) and syscall(2) are async-signal-safe; `line` is on our stack.
    unsafe {
        libc::write(2, line.as_ptr().cast(), n);
        libc::syscall(NOT_A_SYSCALL);
        libc::_exit(128 + libc::SIGSYS);
    }
}
