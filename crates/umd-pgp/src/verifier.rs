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

use std::time::Duration;

use crate::armor::{self, ArmorError};
use crate::cert::{self, Cert, CertError};
use crate::cleartext::{self, CleartextError};
use crate::driver::{DescribeError, PgpDriver};
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
pub struct Verifier {
    driver: PgpDriver,
    keyring: Vec<Cert>,
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
        let mut keyring = Vec::new();
        for (index, k) in keyrings.iter().enumerate() {
            let stream = armor::binary(k)?;
            let packets = driver.describe(&stream)?;
            keyring.extend(
                cert::certificates(&packets, &policy)
                    .map_err(|source| VerifyError::Keyring { index, source })?,
            );
        }
        Ok(Verifier { driver, keyring, policy })
    }

    /// The certificates of the keyring.
    pub fn certificates(&self) -> &[Cert] {
        &self.keyring
    }

    /// The driver (stats, unload).
    pub fn driver(&self) -> &PgpDriver {
        &self.driver
    }

    /// Verifies a detached signature (binary or armored) over `data`.
    pub fn verify_detached(&self, signature: &[u8], data: &[u8]) -> Result<Outcome, VerifyError> {
        let stream = armor::binary(signature)?;
        let packets = self.driver.describe(&stream)?;
        let reports = verify::verify(&self.keyring, &packets, Data::Detached(data), &self.policy);
        Ok(Outcome { reports, text: None })
    }

    /// Verifies a cleartext-signed document.
    pub fn verify_cleartext(&self, document: &[u8]) -> Result<Outcome, VerifyError> {
        let c = cleartext::split(document)?;
        let packets = self.driver.describe(&c.signatures)?;
        let reports = verify::verify(&self.keyring, &packets, Data::Canonical(&c.signed), &self.policy);
        Ok(Outcome { reports, text: Some(c.text) })
    }
}
