//! Malformed headers: the manager never panics, the honest handler and the
//! manager never disagree about bytes, and a handler that fails on hostile
//! input costs that input only.

mod common;

use common::{db_headers, rpm, verifier};
use proptest::prelude::*;
use umd_rpm::check::{check, CheckError};
use umd_rpm_wire::{Command, Description};
use umd_wire::decode::Budget;

fn hello() -> Vec<u8> {
    rpm("hello-rsa.rpm")
}

/// Describes in-process with the handler's parser, then checks: an honest
/// description is either accepted or refused for what the bytes are, never
/// as a disagreement with them.
fn agree(command: Command, input: &[u8]) -> Result<(), TestCaseError> {
    if let Ok(d) = umd_rpm_handler::describe(command, input) {
        let mut budget = Budget::new(umd_rpm_wire::max_memory(input.len()));
        if let Err(e @ CheckError::Mismatch { .. }) = check(command, input, d, &mut budget) {
            return Err(TestCaseError::fail(format!("honest description refused: {e}")));
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn mutated_package_headers_are_described_and_checked_without_panic(
        flips in proptest::collection::vec((0usize..4096, any::<u8>()), 1..8),
        cut in 0usize..8000,
    ) {
        let mut b = hello();
        let hdr_end = b.len().min(4096);
        for (at, x) in flips {
            b[at % hdr_end] ^= x;
        }
        b.truncate(cut.max(1).min(b.len()));
        agree(Command::Package, &b)?;
    }

    #[test]
    fn mutated_database_headers_are_described_and_checked_without_panic(
        which in 0usize..4,
        flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8),
    ) {
        let headers = db_headers();
        let mut b = headers[which % headers.len()].1.clone();
        let n = b.len();
        for (at, x) in flips {
            b[at % n] ^= x;
        }
        agree(Command::DbHeader, &b)?;
    }

    #[test]
    fn arbitrary_descriptions_never_panic_the_check(
        flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..6),
    ) {
        // The honest description, its encoding mutated: any description a
        // broken or hostile handler could send for real bytes.
        let b = hello();
        let d = umd_rpm_handler::describe(Command::Package, &b).unwrap();
        let mut enc = d.encode().unwrap();
        let n = enc.len();
        for (at, x) in flips {
            enc[at % n] ^= x;
        }
        if let Ok(d) = Description::decode(&enc, b.len()) {
            let mut budget = Budget::new(umd_rpm_wire::max_memory(b.len()));
            let _ = check(Command::Package, &b, d, &mut budget);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// Through the sandboxed handler: hostile bytes are an error or a verdict,
    /// and the driver keeps serving.
    #[test]
    fn malformed_packages_through_the_sandboxed_handler_are_contained(
        flips in proptest::collection::vec((0usize..4096, any::<u8>()), 1..16),
    ) {
        let v = shared();
        let mut b = hello();
        let n = b.len().min(4096);
        for (at, x) in flips {
            b[at % n] ^= x;
        }
        let _ = v.package(&b);
        prop_assert!(v.package(&hello()).unwrap().rejection().is_none());
    }
}

fn shared() -> &'static umd_rpm::package::PackageVerifier {
    static V: std::sync::OnceLock<umd_rpm::package::PackageVerifier> = std::sync::OnceLock::new();
    V.get_or_init(verifier)
}
