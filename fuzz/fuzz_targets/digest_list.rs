//! Opening a digest list whose signature verifies (the fuzzer's bytes, signed
//! here): parsing, package access and lookups must never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use umd_digest_list::{signed_message, DigestList, SigningKey, ALGO_SHA256, TRAILER_MAGIC};

fuzz_target!(|data: &[u8]| {
    use ed25519_dalek::Signer;
    let key = SigningKey::from_bytes(&[5; 32]);
    let mut bytes = data.to_vec();
    let sig = key.sign(&signed_message(&bytes));
    bytes.extend_from_slice(&TRAILER_MAGIC);
    bytes.extend_from_slice(key.verifying_key().as_bytes());
    bytes.extend_from_slice(&sig.to_bytes());
    if let Ok(l) = DigestList::open(bytes, &key.verifying_key()) {
        for p in l.packages() {
            let _ = p.name.len();
        }
        let probe = data.get(..32).unwrap_or(&[0; 32]);
        let _ = l.lookup(ALGO_SHA256, probe).count();
    }
});
