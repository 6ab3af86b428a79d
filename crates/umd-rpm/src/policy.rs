//! What the rpm driver accepts: one place for every decision a
//! [`PackageVerifier`](crate::package::PackageVerifier) makes about a checked
//! header, as Sequoia's `StandardPolicy` is for OpenPGP. The defaults are
//! strict; a caller can tighten them (or, knowingly, loosen them).
//!
//! ```
//! use umd_hash::{HashAlgo, HashId};
//! let mut p = umd_rpm::Policy::default();
//! assert_eq!(p.file_digest(HashId(8)), Some(HashAlgo::Sha256));
//! assert_eq!(p.file_digest(HashId::MD5), None);
//! p.file_digests.retain(|&a| a != HashAlgo::Sha256); // SHA-384 and -512 only
//! assert_eq!(p.file_digest(HashId(8)), None);
//! ```

use umd_hash::{HashAlgo, HashId};

/// The rpm driver's policy.
#[derive(Clone, Debug)]
pub struct Policy {
    /// The OpenPGP policy the header signatures are verified under: umd-pgp's
    /// strict default ([`umd_pgp::policy::Policy::new`]), the one `umd
    /// verify` uses.
    pub pgp: umd_pgp::policy::Policy,
    /// File digest algorithms whose digests may be listed: SHA2-256, -384 and
    /// -512. Not MD5 (rpm's default when a header names none, before rpm 4.6)
    /// nor SHA-1: collisions are practical for both, and a listed digest
    /// vouches for every content that has it. Digest lists carry only these
    /// three (`docs/digest-list.md`), so adding another makes listing its
    /// packages an error.
    pub file_digests: Vec<HashAlgo>,
    /// Payload digest algorithms checked: SHA2-256, -384 and -512 (the ones
    /// rpm 4.14+ writes). A payload digest of another algorithm is reported
    /// as [`Payload::Unsupported`](crate::package::Payload::Unsupported).
    pub payload_digests: Vec<HashAlgo>,
    /// Refuse a package without a payload digest this policy checks: `false`.
    /// Packages built before rpm 4.14 have none, and their file digests are
    /// still vouched for by the header signature; the payload check only
    /// makes sure the package file is the one that was signed whole.
    pub require_payload_digest: bool,
}

impl Default for Policy {
    /// The strict policy.
    fn default() -> Policy {
        Policy::new()
    }
}

impl Policy {
    /// The strict policy.
    pub fn new() -> Policy {
        let sha2 = vec![HashAlgo::Sha256, HashAlgo::Sha384, HashAlgo::Sha512];
        Policy {
            pgp: umd_pgp::policy::Policy::new(),
            file_digests: sha2.clone(),
            payload_digests: sha2,
            require_payload_digest: false,
        }
    }

    /// The algorithm of a header's file digest algorithm id, if its digests
    /// may be listed.
    pub fn file_digest(&self, id: HashId) -> Option<HashAlgo> {
        id.algo().filter(|a| self.file_digests.contains(a))
    }

    /// The algorithm of a header's payload digest algorithm id, if it is checked.
    pub fn payload_digest(&self, id: HashId) -> Option<HashAlgo> {
        id.algo().filter(|a| self.payload_digests.contains(a))
    }
}
