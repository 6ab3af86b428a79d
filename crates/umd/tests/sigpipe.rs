//! A host that leaves SIGPIPE at its default action (C programs do) must not be
//! killed when it writes to a handler that died: the driver ignores SIGPIPE.

mod common;

use std::time::Duration;

use common::*;

fn sigpipe_disposition() -> libc::sighandler_t {
    // SAFETY: querying a disposition only.
    unsafe {
        let mut old: libc::sigaction = std::mem::zeroed();
        assert_eq!(libc::sigaction(libc::SIGPIPE, std::ptr::null(), &mut old), 0);
        old.sa_sigaction
    }
}

#[test]
fn a_dead_handler_does_not_kill_a_host_that_kept_sigpipe_default() {
    // SAFETY: resetting SIGPIPE to its default action, as a C host would have it.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    assert_eq!(sigpipe_disposition(), libc::SIG_DFL);
    // The handler serves post_start, then closes its stdin but stays alive: the
    // manager's next write meets a pipe with no reader. With SIGPIPE at its
    // default, that write would kill this process.
    let (driver, _) = hostile_driver("sigpipe", &["deaf-after", "1"], Duration::from_secs(5));
    assert_eq!(sigpipe_disposition(), libc::SIG_IGN, "building a driver ignores SIGPIPE");
    match driver.send_recv(&1024u32.to_le_bytes()) {
        Err(umd::Error::Channel { source, .. }) => {
            assert!(source.to_string().contains("Broken pipe"), "{source}")
        }
        other => panic!("expected a broken pipe, got {other:?}"),
    }
    assert_eq!(driver.stats().handler_failures, 1);
}
