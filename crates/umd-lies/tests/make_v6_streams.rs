//! Makes the v6 inputs of `fuzz/streams/pgp` with Sequoia (gpg 2.2 cannot):
//! run by `fuzz/streams/make`, ignored otherwise.

use umd_testkeys::CipherSuite;

#[test]
#[ignore = "writes fuzz/streams/pgp/v6-*.pgp; run by fuzz/streams/make"]
fn make_v6_streams() {
    let out = std::path::PathBuf::from(std::env::var("UMD_STREAMS_OUT").expect("UMD_STREAMS_OUT"));
    for (name, suite) in [("cv25519", CipherSuite::Cv25519), ("p256", CipherSuite::P256)] {
        let v6 = umd_testkeys::v6(suite, &format!("v6 {name} <v6@umd.invalid>"), true);
        let sig = umd_testkeys::sign(&v6.signer, b"signed by a v6 key\n", None);
        std::fs::write(out.join(format!("v6-{name}-cert.pgp")), &v6.keyring).unwrap();
        std::fs::write(out.join(format!("v6-{name}-detached.pgp")), sig).unwrap();
    }
}
