//! The guard's counters: bumped by every thread, read as one [`Stats`].
//!
//! Trusted bookkeeping. The public [`Stats`] and the atomic counters behind it
//! are generated from one list, so a counter added to one cannot be forgotten
//! in the other.

use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;

/// Declares [`Stats`] (the counters, then the list's sequence number) and
/// `Counters` (one atomic per counter) from one list of fields.
macro_rules! counters {
    ($($(#[doc = $doc:literal])+ $name:ident,)+) => {
        /// Counters (since start).
        #[derive(Clone, Copy, Debug, Default, Serialize)]
        pub struct Stats {
            $($(#[doc = $doc])+ pub $name: u64,)+
            /// Sequence number of the list in use.
            pub list_sequence: u64,
        }

        /// The live counters, one atomic each (relaxed: they order nothing).
        #[derive(Default)]
        pub(crate) struct Counters {
            $(pub(crate) $name: AtomicU64,)+
        }

        impl Counters {
            /// A copy of every counter, with the sequence number of the list in use.
            pub(crate) fn snapshot(&self, list_sequence: u64) -> Stats {
                Stats { $($name: self.$name.load(Ordering::Relaxed),)+ list_sequence }
            }
        }
    };
}

counters! {
    /// Permission events read.
    events,
    /// Events answered allow (any reason).
    allowed,
    /// Events answered deny (any reason).
    denied,
    /// Unlisted files allowed because of audit mode.
    audited,
    /// Events of this process or an excluded pid, allowed at once.
    excluded,
    /// Events answered by the watchdog.
    timeouts,
    /// Events answered by the reader because the deciders' queue was full.
    overloads,
    /// Decisions that came after the watchdog had answered (discarded).
    late,
    /// User-space cache hits.
    cache_hits,
    /// Ignore marks placed (kernel cache).
    ignore_marks,
    /// Invalidations by write-close events.
    invalidations,
    /// Lists swapped in after the first.
    reloads,
    /// Lists refused on reload.
    reload_refusals,
}

/// Adds one to a counter.
pub(crate) fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_snapshot_carries_every_counter_in_the_order_of_the_json() {
        let c = Counters::default();
        bump(&c.events);
        bump(&c.events);
        bump(&c.reload_refusals);
        let s = c.snapshot(7);
        assert_eq!((s.events, s.reload_refusals, s.list_sequence, s.denied), (2, 1, 7, 0));
        // Scripts read `umd guard --json`'s final line: its field order is part of the output.
        let json = serde_json::to_string(&s).unwrap();
        let keys: Vec<&str> = json.split('"').skip(1).step_by(2).collect();
        assert_eq!(
            keys,
            [
                "events",
                "allowed",
                "denied",
                "audited",
                "excluded",
                "timeouts",
                "overloads",
                "late",
                "cache_hits",
                "ignore_marks",
                "invalidations",
                "reloads",
                "reload_refusals",
                "list_sequence"
            ]
        );
    }
}
