//! The `pgp` driver, manager side: OpenPGP signatures and certificates verified by
//! the trusted process, from packets a sandboxed handler describes.
//!
//! The handler (`handlers/pgp`) parses; this crate depends on no OpenPGP parser
//! and checks everything it uses:
//!
//! * [`armor`], [`cleartext`] — framing the manager does itself (bounded, line
//!   oriented): base64 + CRC-24, the cleartext framework and its canonical text;
//! * [`packet`] — the handler's description must tile the stream, its headers must
//!   be the bytes' headers, and each used packet must re-encode to its bytes;
//!   what passes is a [`packet::CheckedKey`] or [`packet::CheckedSig`], the only
//!   keys and signatures the modules below take (the `umd_pgp_wire` types stay
//!   in `packet` and the driver);
//! * [`crypto`] — fingerprints, signature hashing, RSA / ECDSA / EdDSA verification
//!   with RustCrypto;
//! * [`policy`] — what is accepted, strict by default, each rejection named;
//! * [`cert`] — certificates whose self-signatures, bindings, back-signatures and
//!   revocations the manager verified, validated at a reference time
//!   ([`cert::ValidCert`]);
//! * [`verify`], [`verifier`] — document signatures against a keyring;
//! * [`driver`] — the `pgp` driver and its one request, *describe*;
//! * [`gpgv`] — the same verdicts as gpgv's status lines, for apt;
//! * [`sniff`] — a first look at a file a user gave as a signature or keyring,
//!   so that text, an empty file or swapped arguments get a message, not a
//!   parser's complaint.
#![deny(missing_docs)]

pub mod armor;
pub mod cert;
pub mod cleartext;
pub mod crypto;
pub mod driver;
pub mod gpgv;
pub mod packet;
pub mod policy;
pub mod sniff;
pub mod verifier;
pub mod verify;
