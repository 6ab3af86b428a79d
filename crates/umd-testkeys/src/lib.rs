//! v6 OpenPGP certificates and signatures made with Sequoia, for tests only:
//! gpg 2.2 cannot make them, and the manager's own crates hold no OpenPGP
//! implementation to make them with. One maker for the manager's tests
//! (`umd-pgp`), the handler's (`handlers/pgp`) and the committed fuzz inputs
//! (`umd-lies`); a dev-dependency only, so no shipped crate links it and the
//! handler gains no dependency on the manager.
//!
//! ```
//! let v6 = umd_testkeys::v6(umd_testkeys::CipherSuite::Cv25519, "doc <doc@example.org>", false);
//! let sig = umd_testkeys::sign(&v6.signer, b"data", Some(vec![7; 32]));
//! assert_eq!(sig[0], 0xc2); // a signature packet, new format
//! assert!(!v6.keyring.is_empty());
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]

use sequoia_openpgp as openpgp;

use openpgp::cert::prelude::*;
use openpgp::crypto::KeyPair;
use openpgp::packet::signature::SignatureBuilder;
use openpgp::policy::StandardPolicy;
use openpgp::serialize::MarshalInto;
use openpgp::types::SignatureType;

pub use openpgp::cert::CipherSuite;

/// A v6 certificate (RFC 9580 profile): a primary key that certifies, a
/// signing subkey, and optionally a transport encryption subkey.
pub struct V6 {
    /// The certificate, as a keyring holds it.
    pub keyring: Vec<u8>,
    /// The signing subkey's key pair.
    pub signer: KeyPair,
    cert: openpgp::Cert,
}

impl V6 {
    /// The primary key's key pair (certification only: a document signature
    /// by it is one by a key not marked for signing).
    pub fn primary(&self) -> KeyPair {
        primary_keypair(&self.cert)
    }
}

/// The key pair of `cert`'s primary key (it must hold its secret).
pub fn primary_keypair(cert: &openpgp::Cert) -> KeyPair {
    let key = cert.primary_key().key().clone();
    key.parts_into_secret().and_then(|k| k.into_keypair()).expect("the primary key's secret")
}

/// The key pair of `cert`'s first signing key valid now under Sequoia's
/// standard policy (it must hold its secret).
pub fn signing_keypair(cert: &openpgp::Cert) -> KeyPair {
    cert.keys()
        .with_policy(&StandardPolicy::new(), None)
        .supported()
        .for_signing()
        .secret()
        .next()
        .expect("a signing key")
        .key()
        .clone()
        .into_keypair()
        .expect("the signing key's secret")
}

/// Makes a v6 certificate in `suite` with the user ID `uid`, and an
/// encryption subkey if `encryption_subkey`.
pub fn v6(suite: CipherSuite, uid: &str, encryption_subkey: bool) -> V6 {
    let mut builder = CertBuilder::new()
        .set_profile(openpgp::Profile::RFC9580)
        .expect("the RFC 9580 profile")
        .set_cipher_suite(suite)
        .add_userid(uid)
        .add_signing_subkey();
    if encryption_subkey {
        builder = builder.add_transport_encryption_subkey();
    }
    let (cert, _) =
        builder.generate().unwrap_or_else(|e| panic!("generating a v6 certificate for {uid}: {e}"));
    let signer = signing_keypair(&cert);
    V6 { keyring: cert.to_vec().expect("a serializable certificate"), signer, cert }
}

/// A detached binary signature (type 0x00) over `data` by `key`, as a
/// signature packet; with `salt` (a v6 signature's, as long as its hash
/// wants), or a random one.
pub fn sign(key: &KeyPair, data: &[u8], salt: Option<Vec<u8>>) -> Vec<u8> {
    let mut key = key.clone();
    let mut builder = SignatureBuilder::new(SignatureType::Binary);
    if let Some(salt) = salt {
        builder = builder.set_prefix_salt(salt).0;
    }
    let sig = builder.sign_message(&mut key, data).expect("signing");
    openpgp::Packet::from(sig).to_vec().expect("a serializable signature")
}
