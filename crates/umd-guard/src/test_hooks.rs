//! Test hooks: code that exists only with the `test-hooks` feature.
//!
//! The watchdog's tests need a decider that hangs, and no honest file makes
//! one hang on demand. So with the feature, [`GuardConfig::test_hang_on`](crate::GuardConfig)
//! names files whose decider waits until the guard stops. A production build
//! has neither the field nor the code.
//!
//! Who turns it on: the `umd` command's crate lists `umd-guard` with this
//! feature among its *dev*-dependencies, and Cargo enables a dev-dependency's
//! features for every build of a `cargo test` run — so the `umd` binary the
//! tests run has the hidden `umd guard --test-hang-on NAME`, and the one
//! `cargo build` makes does not. [`if_test_hooks!`](crate::if_test_hooks)
//! lets that crate declare the option exactly when the field exists.

/// Keeps the first group of items when `umd-guard` is built with its
/// `test-hooks` feature, the second otherwise (a dependent cannot test another
/// crate's features with `cfg`).
///
/// ```
/// umd_guard::if_test_hooks! {{
///     fn hooks() -> bool { true }
/// } else {
///     fn hooks() -> bool { false }
/// }}
/// println!("test hooks: {}", hooks());
/// ```
#[cfg(feature = "test-hooks")]
#[macro_export]
macro_rules! if_test_hooks {
    ({ $($with:item)* } else { $($without:item)* }) => { $($with)* };
}

/// Keeps the first group of items when `umd-guard` is built with its
/// `test-hooks` feature, the second otherwise (a dependent cannot test another
/// crate's features with `cfg`).
///
/// ```
/// umd_guard::if_test_hooks! {{
///     fn hooks() -> bool { true }
/// } else {
///     fn hooks() -> bool { false }
/// }}
/// println!("test hooks: {}", hooks());
/// ```
#[cfg(not(feature = "test-hooks"))]
#[macro_export]
macro_rules! if_test_hooks {
    ({ $($with:item)* } else { $($without:item)* }) => { $($without)* };
}

/// Makes the calling decider wait until the guard stops if the file at `path`
/// is named as [`GuardConfig::test_hang_on`](crate::GuardConfig) says.
#[cfg(feature = "test-hooks")]
pub(crate) fn hang_if_named(s: &crate::guard::Shared, path: &str) {
    use std::sync::atomic::Ordering;
    let Some(name) = &s.hang_on else { return };
    if std::path::Path::new(path).file_name() == Some(name.as_os_str()) {
        tracing::warn!(target: crate::LOG, path = %path, "umd guard: test hook: decider hangs");
        while !s.stop.load(Ordering::SeqCst) {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }
}
