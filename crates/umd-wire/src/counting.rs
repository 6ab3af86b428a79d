//! A counting global allocator, for the tests that hold the manager to its
//! memory figure: the heap it allocates from a handler's reply to the verdict
//! must stay within four times what the handler was given and 16 MiB.
//!
//! A test binary installs it as its `#[global_allocator]` (one per process:
//! run such tests in a binary of their own) and runs a scenario inside
//! [`measure`], which returns the peak of live heap bytes above what was live
//! when it started, every thread of the process counted (the threads a driver
//! starts to read a handler's stderr included). Scenarios must not run
//! concurrently: [`measure`] takes a process-wide lock.
//!
//! ```no_run
//! use umd_wire::counting::{measure, Counting};
//! #[global_allocator]
//! static ALLOC: Counting = Counting;
//! let (v, peak) = measure(|| vec![0u8; 1 << 20]);
//! assert!(peak >= 1 << 20);
//! # drop(v);
//! ```

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering::Relaxed};
use std::sync::{Mutex, MutexGuard};

/// The figure every driver is held to: `4 × given + 16 MiB`.
pub fn figure(given: usize) -> usize {
    given.saturating_mul(4).saturating_add(16 << 20)
}

/// Counts live heap bytes and their peak; allocates with [`System`].
pub struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);
static PEAK: AtomicIsize = AtomicIsize::new(0);
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());
static SERIAL: Mutex<()> = Mutex::new(());

/// Held for a whole test: the counter sees every thread's allocations, so a
/// test building its inputs (or generating a lie) beside another's
/// [`measure`] would be counted in that one's peak. Each test of a measuring
/// binary takes this first, and the binary's tests run one after another.
pub fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|p| p.into_inner())
}

fn grew(by: usize) {
    let now = LIVE.fetch_add(by as isize, Relaxed) + by as isize;
    PEAK.fetch_max(now, Relaxed);
}

// SAFETY: every call is forwarded to `System` with the caller's arguments
// unchanged; the counters are atomics and allocate nothing.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract is `System`'s.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as above.
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size() as isize, Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: as above.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            // Counted as the new block only: the allocator moves or extends
            // in place (large blocks by remapping, without a copy).
            if new_size >= layout.size() {
                grew(new_size - layout.size());
            } else {
                LIVE.fetch_sub((layout.size() - new_size) as isize, Relaxed);
            }
        }
        p
    }
}

/// Live heap bytes now, every thread counted: what a scenario keeps after it
/// returns is the difference of two readings (take [`serial`] first).
pub fn live() -> isize {
    LIVE.load(Relaxed)
}

/// Runs `f` alone (no other [`measure`] at the same time) and returns its
/// result and the peak of live heap bytes during it, above those live when it
/// started.
pub fn measure<T>(f: impl FnOnce() -> T) -> (T, usize) {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let base = LIVE.load(Relaxed);
    PEAK.store(base, Relaxed);
    let r = f();
    let peak = PEAK.load(Relaxed) - base;
    (r, peak.max(0) as usize)
}
