//! Makes the v6 inputs of `fuzz/streams/pgp` with Sequoia (gpg 2.2 cannot):
//! run by `fuzz/streams/make`, ignored otherwise.

use sequoia_openpgp as openpgp;

use openpgp::cert::prelude::*;
use openpgp::policy::StandardPolicy;
use openpgp::serialize::stream::{Message, Signer};
use openpgp::serialize::MarshalInto;

#[test]
#[ignore = "writes fuzz/streams/pgp/v6-*.pgp; run by fuzz/streams/make"]
fn make_v6_streams() {
    let out = std::path::PathBuf::from(std::env::var("UMD_STREAMS_OUT").expect("UMD_STREAMS_OUT"));
    let p = StandardPolicy::new();
    for (name, suite) in [("cv25519", CipherSuite::Cv25519), ("p256", CipherSuite::P256)] {
        let (cert, _) = CertBuilder::new()
            .set_profile(openpgp::Profile::RFC9580)
            .unwrap()
            .set_cipher_suite(suite)
            .add_userid(format!("v6 {name} <v6@umd.invalid>"))
            .add_signing_subkey()
            .add_transport_encryption_subkey()
            .generate()
            .unwrap();
        let keypair = cert
            .keys()
            .with_policy(&p, None)
            .supported()
            .for_signing()
            .secret()
            .next()
            .unwrap()
            .key()
            .clone()
            .into_keypair()
            .unwrap();
        let mut sig = Vec::new();
        let m = Message::new(&mut sig);
        let mut s = Signer::new(m, keypair).unwrap().detached().build().unwrap();
        std::io::Write::write_all(&mut s, b"signed by a v6 key\n").unwrap();
        s.finalize().unwrap();
        std::fs::write(out.join(format!("v6-{name}-cert.pgp")), cert.to_vec().unwrap()).unwrap();
        std::fs::write(out.join(format!("v6-{name}-detached.pgp")), sig).unwrap();
    }
}
