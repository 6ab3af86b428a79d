//! Whatever bytes a client sends, decoding never panics, and every message
//! survives a round trip.

use proptest::prelude::*;
use umd_service::proto::{self, CtlRequest, DriverName, Header, Kind, Request, VerifyRequest, HEADER_LEN};

fn request() -> impl Strategy<Value = Request> {
    prop_oneof![
        any::<u32>().prop_map(|offset| Request::Sample { offset }),
        (
            prop::collection::vec(prop::collection::vec(any::<u8>(), 0..64), 0..3),
            prop::collection::vec(any::<u8>(), 0..64),
            prop::option::of(prop::collection::vec(any::<u8>(), 0..64)),
            any::<u32>()
        )
            .prop_map(|(keyrings, signature, data, required)| Request::Verify(VerifyRequest {
                keyrings,
                signature,
                data,
                required
            })),
        Just(Request::Ctl(CtlRequest::Status)),
        Just(Request::Ctl(CtlRequest::Stats)),
        Just(Request::Ctl(CtlRequest::Load(DriverName::Pgp))),
        Just(Request::Ctl(CtlRequest::Unload(DriverName::Sample))),
    ]
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        let _ = proto::decode::<Request>(&bytes);
        let _ = proto::decode::<proto::Response>(&bytes);
        if bytes.len() >= HEADER_LEN {
            let _ = Header::parse(bytes[..HEADER_LEN].try_into().unwrap(), Kind::Request, 1 << 20);
        }
    }

    #[test]
    fn requests_round_trip(r in request()) {
        let f = proto::encode(Kind::Request, &r).unwrap();
        let h = Header::parse(f[..HEADER_LEN].try_into().unwrap(), Kind::Request, 1 << 20).unwrap();
        prop_assert_eq!(h.len, f.len() - HEADER_LEN);
        prop_assert_eq!(proto::decode::<Request>(&f[HEADER_LEN..]).unwrap(), r);
    }

    #[test]
    fn truncated_bodies_are_errors(r in request(), cut in 1usize..64) {
        let f = proto::encode(Kind::Request, &r).unwrap();
        let body = &f[HEADER_LEN..];
        if cut <= body.len() {
            prop_assert!(proto::decode::<Request>(&body[..body.len() - cut]).is_err());
        }
    }
}
