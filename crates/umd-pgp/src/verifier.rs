//! The library API: a keyring loaded once, many verifications, one warm handler.
//!
//! ```no_run
//! use umd_pgp::verifier::Verifier;
//! use umd_pgp::verify::Status;
//!
//! let keyring = std::fs::read("/usr/share/keyrings/debian-archive-keyring.gpg").unwrap();
//! let v = Verifier::new(&[keyring], Default::default()).unwrap();
//! let doc = std::fs::read("/var/lib/apt/lists/deb.debian.org_debian_dists_bookworm_InRelease").unwrap();
//! let outcome = v.verify_cleartext(&doc).unwrap();
//! assert_eq!(outcome.status(1), Status::Verified);
//! ```

use std::sync::OnceLock;
use std::time::Duration;

use crate::armor::{self, ArmorError};
use crate::cert::{self, Cert, CertError, RawCert};
use crate::cleartext::{self, CleartextError};
use crate::crypto::Fingerprint;
use crate::driver::{DescribeError, PgpDriver};
use crate::packet::{Checked, CheckedBody};
use crate::policy::issuer_hints;
use crate::policy::Policy;
use crate::verify::{self, Data, SigReport, Status};

/// Why a verification could not be made (the "cannot verify" exit status).
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// Armor could not be removed.
    #[error("armor: {0}")]
    Armor(#[from] ArmorError),
    /// Not a well-formed cleartext document.
    #[error("cleartext document: {0}")]
    Cleartext(#[from] CleartextError),
    /// The handler could not describe the packets, or lied about them.
    #[error("{0}")]
    Describe(#[from] DescribeError),
    /// A keyring holds a broken certificate structure.
    #[error("keyring {index}: {source}")]
    Keyring {
        /// Which keyring (0-based, in the order given).
        index: usize,
        /// Why.
        source: CertError,
    },
}

/// The outcome for one document.
#[derive(Clone, Debug)]
pub struct Outcome {
    /// One report per signature packet.
    pub reports: Vec<SigReport>,
    /// For a cleartext document: its text, to be written out once verified.
    pub text: Option<Vec<u8>>,
}

impl Outcome {
    /// The verdict with `required` good signatures.
    pub fn status(&self, required: usize) -> Status {
        verify::status(&self.reports, required)
    }
}

/// A loaded keyring with its driver.
///
/// The keyring is described and checked once; each certificate's
/// self-signatures are verified the first time a signature names one of its
/// keys (or when all certificates are asked for), then remembered: verifying one
/// file against a distribution keyring costs the signer's certificate, not the
/// whole keyring.
pub struct Verifier {
    driver: PgpDriver,
    raw: Vec<RawCert>,
    /// Fingerprints of each certificate's keys, primary first.
    fingerprints: Vec<Vec<Fingerprint>>,
    validated: Vec<OnceLock<Cert>>,
    policy: Policy,
}

impl Verifier {
    /// Describes and checks each keyring (binary or armored) once.
    pub fn new(keyrings: &[Vec<u8>], policy: Policy) -> Result<Verifier, VerifyError> {
        Verifier::with_driver(PgpDriver::new(Duration::from_secs(10)), keyrings, policy)
    }

    /// As [`Verifier::new`], with a given driver.
    pub fn with_driver(
        driver: PgpDriver,
        keyrings: &[Vec<u8>],
        policy: Policy,
    ) -> Result<Verifier, VerifyError> {
        let mut raw = Vec::new();
        let mut fingerprints = Vec::new();
        for (index, k) in keyrings.iter().enumerate() {
            let stream = armor::binary(k)?;
            let packets = driver.describe(&stream)?;
            for r in cert::split(&packets).map_err(|source| VerifyError::Keyring { index, source })? {
                fingerprints.push(r.fingerprints().map_err(|source| VerifyError::Keyring { index, source })?);
                raw.push(r);
            }
        }
        let validated = raw.iter().map(|_| OnceLock::new()).collect();
        Ok(Verifier { driver, raw, fingerprints, validated, policy })
    }

    fn cert(&self, i: usize) -> Result<&Cert, VerifyError> {
        if let Some(c) = self.validated[i].get() {
            return Ok(c);
        }
        let c =
            self.raw[i].validate(&self.policy).map_err(|source| VerifyError::Keyring { index: i, source })?;
        Ok(self.validated[i].get_or_init(|| c))
    }

    /// Every certificate of the keyring, validated.
    pub fn certificates(&self) -> Result<Vec<&Cert>, VerifyError> {
        (0..self.raw.len()).map(|i| self.cert(i)).collect()
    }

    /// The certificate whose primary key has this fingerprint, validated.
    pub fn certificate(&self, primary: &Fingerprint) -> Option<&Cert> {
        let i = self.fingerprints.iter().position(|f| f.first() == Some(primary))?;
        self.cert(i).ok()
    }

    /// The validated certificates having a key that a signature in `packets`
    /// names (by issuer fingerprint or key ID).
    fn signers(&self, packets: &[Checked<'_>]) -> Vec<Cert> {
        let mut wanted = vec![false; self.raw.len()];
        for p in packets {
            let CheckedBody::Signature(sig) = &p.fields else { continue };
            let (ids, fprs) = issuer_hints(sig);
            for (i, keys) in self.fingerprints.iter().enumerate() {
                if keys.iter().any(|k| fprs.iter().any(|f| f.matches(k)) || ids.contains(&k.key_id())) {
                    wanted[i] = true;
                }
            }
        }
        (0..self.raw.len()).filter(|&i| wanted[i]).filter_map(|i| self.cert(i).ok().cloned()).collect()
    }

    /// The driver (stats, unload).
    pub fn driver(&self) -> &PgpDriver {
        &self.driver
    }

    /// Verifies a detached signature (binary or armored) over `data`.
    pub fn verify_detached(&self, signature: &[u8], data: &[u8]) -> Result<Outcome, VerifyError> {
        let stream = armor::binary(signature)?;
        let packets = self.driver.describe(&stream)?;
        let signers = self.signers(&packets);
        let reports = verify::verify(&signers, &packets, Data::Detached(data), &self.policy);
        Ok(Outcome { reports, text: None })
    }

    /// Verifies a cleartext-signed document.
    pub fn verify_cleartext(&self, document: &[u8]) -> Result<Outcome, VerifyError> {
        let c = cleartext::split(document)?;
        let packets = self.driver.describe(&c.signatures)?;
        let signers = self.signers(&packets);
        let reports = verify::verify(&signers, &packets, Data::Canonical(&c.signed), &self.policy);
        Ok(Outcome { reports, text: Some(c.text) })
    }
}
