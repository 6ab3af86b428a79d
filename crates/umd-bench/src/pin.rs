//! CPU pinning for the rows measured "both processes on one CPU".
//!
//! On this kind of VM a wake-up that crosses CPUs costs 60–70 µs while a whole
//! same-CPU pipe round trip costs ~3 µs, so an unpinned request/reply figure mostly
//! measures where the scheduler happened to put the two processes. Pinning the
//! caller's thread *and* the peer process to one CPU measures the code instead.
//!
//! A child inherits the affinity of the thread that forked it (`sched_setaffinity(2)`:
//! "A child created via fork(2) inherits its parent's CPU affinity mask"), so a
//! handler started while a [`PinGuard`] is held is pinned too; the workloads also
//! pin each peer explicitly by pid ([`Pin::apply_to_pid`]) so they do not depend on
//! who forked it.

use std::io;

use rustix::process::Pid;
use rustix::thread::{sched_getaffinity, sched_setaffinity, CpuSet};
use serde::Serialize;

/// Where a workload's processes may run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Pin {
    /// Wherever the scheduler puts them (the inherited affinity).
    Unpinned,
    /// The caller's thread and every peer process on this one CPU.
    Cpu(usize),
}

impl Pin {
    /// Pins process (or thread) `pid` as this says; does nothing when unpinned.
    ///
    /// Wraps `sched_setaffinity(2)` on another task.
    pub fn apply_to_pid(self, pid: u32) -> io::Result<()> {
        let Pin::Cpu(cpu) = self else { return Ok(()) };
        let pid = i32::try_from(pid).ok().and_then(Pid::from_raw).ok_or_else(|| {
            io::Error::new(io::ErrorKind::InvalidInput, format!("{pid} is not a valid process id"))
        })?;
        sched_setaffinity(Some(pid), &one_cpu(cpu))?;
        Ok(())
    }

    /// Short label for tables: `pinned` or `unpinned`.
    pub fn label(self) -> &'static str {
        match self {
            Pin::Unpinned => "unpinned",
            Pin::Cpu(_) => "pinned",
        }
    }
}

fn one_cpu(cpu: usize) -> CpuSet {
    let mut set = CpuSet::new();
    set.set(cpu);
    set
}

/// The first CPU the calling thread may run on: the default CPU for pinned rows.
pub fn default_cpu() -> io::Result<usize> {
    let set = sched_getaffinity(None)?;
    (0..CpuSet::MAX_CPU)
        .find(|&c| set.is_set(c))
        .ok_or_else(|| io::Error::other("the calling thread may run on no CPU"))
}

/// Pins the calling thread while it lives, and restores its previous affinity
/// when dropped.
///
/// ```
/// use umd_bench::pin::{default_cpu, Pin, PinGuard};
///
/// let cpu = default_cpu().unwrap();
/// let guard = PinGuard::new(Pin::Cpu(cpu)).unwrap();
/// assert_eq!(rustix::thread::sched_getcpu(), cpu);
/// drop(guard);
/// ```
pub struct PinGuard {
    previous: Option<CpuSet>,
}

impl PinGuard {
    /// Applies `pin` to the calling thread; [`Pin::Unpinned`] changes nothing.
    ///
    /// Wraps `sched_getaffinity(2)` and `sched_setaffinity(2)` on the calling thread.
    pub fn new(pin: Pin) -> io::Result<PinGuard> {
        let Pin::Cpu(cpu) = pin else { return Ok(PinGuard { previous: None }) };
        let previous = sched_getaffinity(None)?;
        sched_setaffinity(None, &one_cpu(cpu))?;
        // The mask takes effect at the next scheduling point; yield so the thread
        // is already on its CPU when the measurement starts.
        std::thread::yield_now();
        Ok(PinGuard { previous: Some(previous) })
    }
}

impl Drop for PinGuard {
    fn drop(&mut self) {
        if let Some(set) = &self.previous {
            // Failing to restore only leaves the thread pinned: later rows would
            // then be measured pinned, which their labels would misreport, so say so.
            if let Err(e) = sched_setaffinity(None, set) {
                eprintln!("umd-bench: cannot restore the thread's CPU affinity: {e}");
            }
        }
    }
}
