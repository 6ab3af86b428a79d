//! The rpm driver's [`Policy`] (defaults as `umd digests build` has always
//! used them; a caller tightens them), and building a digest list as one
//! library call with a typed verdict per package.

mod common;

use std::time::Duration;

use common::{corpus, keyring, rpm, verifier};
use umd_digest_list::{DigestList, Mark, SigningKey};
use umd_hash::{HashAlgo, HashId};
use umd_rpm::driver::RpmDriver;
use umd_rpm::list::{self, Event, Listing, Options, Source};
use umd_rpm::package::{self, PackageVerifier, Payload, Rejection, Trust};
use umd_rpm::Policy;

fn under(policy: Policy) -> PackageVerifier {
    PackageVerifier::with_policy(RpmDriver::new(Duration::from_secs(10)), &[keyring()], policy).unwrap()
}

#[test]
fn a_tightened_policy_refuses_what_the_default_accepts() {
    assert_eq!(verifier().package(&rpm("hello-rsa.rpm")).unwrap().rejection(), None);

    let sha512_only = Policy { file_digests: vec![HashAlgo::Sha512], ..Policy::default() };
    let r = under(sha512_only).package(&rpm("hello-rsa.rpm")).unwrap();
    assert_eq!(r.rejection(), Some(Rejection::WeakFileDigests { algo: HashId(8) }));
    assert!(r.digests().is_empty());

    // hello-rsa is signed with RSA-3072, tools-ed with Ed25519.
    let mut rsa4096 = Policy::default();
    rsa4096.pgp.min_rsa_bits = 4096;
    let v = under(rsa4096);
    let r = v.package(&rpm("hello-rsa.rpm")).unwrap();
    assert!(matches!(r.trust, Trust::BadSignature { .. } | Trust::UnknownKey { .. }), "{:?}", r.trust);
    assert_eq!(v.package(&rpm("tools-ed.rpm")).unwrap().rejection(), None);

    let mut no_payload_check = Policy { payload_digests: Vec::new(), ..Policy::default() };
    let r = under(no_payload_check.clone()).package(&rpm("hello-rsa.rpm")).unwrap();
    assert!(matches!(r.payload, Payload::Unsupported { .. }), "{:?}", r.payload);
    assert_eq!(r.rejection(), None, "a payload digest is not required by default");
    no_payload_check.require_payload_digest = true;
    let r = under(no_payload_check).package(&rpm("hello-rsa.rpm")).unwrap();
    assert_eq!(r.rejection(), Some(Rejection::NoPayloadDigest));
}

fn listings(built: &list::Built) -> Vec<Option<Listing>> {
    built.verdicts.iter().map(|v| v.outcome.as_ref().ok().map(|j| j.listing)).collect()
}

#[test]
fn building_a_list_lists_the_verified_packages_and_says_why_not_the_others() {
    let v = verifier();
    let names = ["hello-rsa.rpm", "unsigned.rpm", "tampered-payload.rpm", "missing.rpm"];
    let sources: Vec<Source> = names.iter().map(|n| Source::File(corpus().join("rpms").join(n))).collect();
    let (mut verified, mut order) = (0, Vec::new());
    let options = Options { jobs: 3, ..Options::default() };
    let built = list::build(&v, &sources, &options, |e| match e {
        Event::Verified => verified += 1,
        Event::Verdict(v) => order.push(v.source.clone()),
    })
    .unwrap();
    assert_eq!(verified, 4);
    assert_eq!(order, sources.iter().map(Source::label).collect::<Vec<_>>(), "verdicts in input order");
    assert_eq!(
        listings(&built),
        [Some(Listing::Listed), Some(Listing::Rejected), Some(Listing::Rejected), None]
    );
    let judged = |i: usize| built.verdicts[i].outcome.as_ref().unwrap();
    assert_eq!(judged(1).rejection, Some(Rejection::Unsigned));
    assert_eq!(judged(2).rejection, Some(Rejection::PayloadMismatch));
    assert!(matches!(built.verdicts[3].outcome, Err(package::Error::Io(_))));
    assert_eq!((built.listed(), built.marked(), built.rejected(), built.errors()), (1, 0, 2, 1));
    assert_eq!(built.digests(), judged(0).digests);

    let key = SigningKey::from_bytes(&[7; 32]);
    let l = DigestList::open(built.list.finish(1, 1, &key), &key.verifying_key()).unwrap();
    let packages: Vec<_> = l.packages().map(|p| (p.name.to_owned(), p.mark)).collect();
    assert_eq!(packages, [(judged_name(&v, "hello-rsa.rpm"), Mark::Verified)]);
    let want = v.package(&rpm("hello-rsa.rpm")).unwrap().digests();
    assert!(!want.is_empty());
    for f in want {
        assert!(l.lookup(&f.digest).any(|p| p.mark == Mark::Verified), "{f:?}");
    }

    // Unverified packages too, marked; the unreadable one still not.
    let options = Options { include_unverified: true, ..Options::default() };
    let marked = list::build(&v, &sources, &options, |_| {}).unwrap();
    assert_eq!(
        listings(&marked),
        [
            Some(Listing::Listed),
            Some(Listing::ListedMarked(Mark::Unsigned)),
            Some(Listing::ListedMarked(Mark::PayloadMismatch)),
            None
        ]
    );
    assert_eq!((marked.listed(), marked.marked(), marked.rejected(), marked.errors()), (1, 2, 0, 1));
}

fn judged_name(v: &PackageVerifier, name: &str) -> String {
    v.package(&rpm(name)).unwrap().identity.to_string()
}
