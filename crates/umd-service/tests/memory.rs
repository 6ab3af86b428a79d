//! The service's decoding of a client's request, measured: what decoding a
//! request allocates is charged while it is decoded, to the request's bound
//! (three times its body and 16 MiB) and to the service's request memory
//! budget, so the heap the service takes for a request stays within four
//! times its body and 16 MiB. Before, one 8 MB request of eight million
//! empty keyrings took the service from 6 MB to 575 MB.
//!
//! A dedicated test binary (its own process) with a counting global
//! allocator (`umd_wire::counting`), the service running in-process.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use umd_service::proto::{self, ErrorKind, Kind, Response, HEADER_LEN};
use umd_service::server::{Listen, ServeOptions, Server};
use umd_wire::counting::{figure, live, measure, serial, Counting};

#[global_allocator]
static ALLOC: Counting = Counting;

struct Running {
    socket: PathBuf,
    dir: PathBuf,
    handle: umd_service::server::ServerHandle,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.handle.shut_down();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn start(name: &str, config: &str) -> Running {
    let dir = std::env::temp_dir().join(format!("umd-memory-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let config_path = dir.join("umd.toml");
    std::fs::write(&config_path, config).unwrap();
    let socket = dir.join("umd.sock");
    let server = Server::new(&ServeOptions {
        listen: Listen::Path(socket.clone()),
        config_path,
        config_required: true,
    })
    .unwrap();
    let handle = server.handle();
    let thread = std::thread::spawn(move || server.run(false).unwrap());
    let deadline = Instant::now() + Duration::from_secs(10);
    while UnixStream::connect(&socket).is_err() {
        assert!(Instant::now() < deadline, "the service did not start");
        std::thread::sleep(Duration::from_millis(10));
    }
    Running { socket, dir, handle, thread: Some(thread) }
}

/// Sends one raw request frame and reads the response.
fn exchange(socket: &PathBuf, body: &[u8]) -> Response {
    let mut s = UnixStream::connect(socket).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    s.write_all(&proto::Header::bytes(Kind::Request, body.len() as u32)).unwrap();
    s.write_all(body).unwrap();
    let mut header = [0u8; HEADER_LEN];
    s.read_exact(&mut header).unwrap();
    let h = proto::Header::parse(&header, Kind::Response, proto::MAX_RESPONSE).unwrap();
    let mut b = vec![0u8; h.len];
    s.read_exact(&mut b).unwrap();
    proto::decode(&b).unwrap()
}

/// A `Verify` request body of `n` empty keyrings and nothing else.
fn empty_keyrings(n: usize) -> Vec<u8> {
    let mut body = vec![1u8]; // Request::Verify
    let mut len = n;
    loop {
        let b = (len & 0x7f) as u8;
        len >>= 7;
        if len == 0 {
            body.push(b);
            break;
        }
        body.push(b | 0x80);
    }
    body.extend(std::iter::repeat_n(0u8, n));
    body.extend_from_slice(&[0, 0, 1]); // no signature, no data, required 1
    body
}

#[test]
fn service_request_decoding_is_charged_while_decoding_and_stays_within_the_figure() {
    let _serial = serial();
    let svc = start(
        "keyrings",
        "[drivers.pgp]\neveryone = true\n[limits]\nmax_request_bytes = 8388608\n\
         request_memory_bytes = 67108864\nrequest_memory_per_uid = 67108864\n",
    );
    let body = empty_keyrings(8_000_000);
    let given = body.len();
    let (r, peak) = measure(|| exchange(&svc.socket, &body));
    // The client's own copy of the body is not the service's: it was made
    // before the measure. What the test's client reads back is a few bytes.
    let bound = figure(given);
    eprintln!(
        "memory: service, eight million empty keyrings in {given} B: peak {peak} B ({:.2} MiB), bound {:.2} MiB, {r:?}",
        peak as f64 / (1 << 20) as f64,
        bound as f64 / (1 << 20) as f64
    );
    match &r {
        Response::Error(e) => {
            assert_eq!(e.kind, ErrorKind::TooLarge, "{e:?}");
            assert!(e.message.contains("decoded"), "{e:?}");
        }
        other => panic!("accepted: {other:?}"),
    }
    assert!(peak <= bound, "{peak} bytes for a {given}-byte request (bound {bound})");
}

#[test]
fn decoding_beyond_the_memory_budget_is_busy_not_allocated() {
    let _serial = serial();
    // A budget smaller than what the request decodes into (but large enough
    // for its body): refused as busy while decoding.
    let svc = start(
        "budget",
        "[drivers.pgp]\neveryone = true\n[limits]\nmax_request_bytes = 2097152\n\
         request_memory_bytes = 4194304\nrequest_memory_per_uid = 3145728\n",
    );
    let body = empty_keyrings(100_000); // 100 KB; 2.4 MB decoded
    let (r, peak) = measure(|| exchange(&svc.socket, &body));
    eprintln!("memory: service, 100,000 empty keyrings over a 3 MiB budget: peak {peak} B, {r:?}");
    match &r {
        Response::Error(e) => assert_eq!(e.kind, ErrorKind::Busy, "{e:?}"),
        other => panic!("accepted: {other:?}"),
    }
    assert!(peak <= 3 << 20, "{peak} bytes");
    // An honest request still passes after it (the budget was given back).
    let ok = umd_service::proto::encode(
        Kind::Request,
        &proto::Request::Verify(proto::VerifyRequest {
            keyrings: vec![],
            signature: b"not a signature".to_vec(),
            data: Some(b"data".to_vec()),
            required: 1,
        }),
    )
    .unwrap();
    let r = exchange(&svc.socket, &ok[HEADER_LEN..]);
    assert!(matches!(r, Response::Verify(_)), "{r:?}");
}

/// The certificates committed for the fuzz targets (`fuzz/streams/pgp`):
/// Debian's archive keys, gpg-made v4 and Sequoia-made v6 ones.
fn committed_certs() -> Vec<Vec<u8>> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/streams/pgp");
    let mut names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().is_some_and(|n| n.to_string_lossy().contains("-cert")))
        .collect();
    names.sort();
    names.iter().map(|p| std::fs::read(p).unwrap()).collect()
}

/// What the service keeps between requests: keyrings held under their handle
/// (and the checked-keyring cache beside them) cost at most four times their
/// bytes, as a reply costs at most four times the input. Measured as the live
/// heap the service keeps after eight distinct keyrings were sent (the most a
/// uid may hold), against what it kept after one: the driver's own start is
/// not counted.
#[test]
fn keyrings_held_by_handle_keep_at_most_four_times_their_bytes() {
    let _serial = serial();
    let svc = start("held", "[drivers.pgp]\neveryone = true\n");
    let certs = committed_certs();
    assert_eq!(certs.len(), 8, "the committed certificates changed");
    let mut client = umd_service::client::Client::connect(&svc.socket).unwrap();
    // Not a signature: the reply is "cannot verify", after the keyring was
    // checked and held.
    let mut send = |keyrings: Vec<Vec<u8>>| {
        let k = umd_service::client::Keyrings::new(keyrings);
        let r = client.verify_keyrings(&k, b"not a signature", Some(b"data"), 1, false).unwrap();
        assert_eq!(r.status, proto::VerifyStatus::CannotVerify, "{r:?}");
    };
    // One keyring first: the handler's start and the service's first
    // allocations are not what keyrings cost.
    send(vec![certs[0].clone()]);
    let before = live();
    // Eight keyrings of all eight certificates, each in another order: the
    // first keyring is let go (from the handles and the cache) when the
    // eighth comes.
    let mut held = 0;
    let (_, peak) = measure(|| {
        for i in 0..certs.len() {
            let ring: Vec<u8> = (0..certs.len()).flat_map(|j| certs[(i + j) % certs.len()].clone()).collect();
            held += ring.len();
            send(vec![ring]);
        }
    });
    let kept = live() - before;
    eprintln!(
        "memory: service, 8 keyrings held ({held} B): kept {kept} B ({:.2}x their bytes), peak {peak} B",
        kept as f64 / held as f64
    );
    assert!(kept <= 4 * held as isize, "{kept} bytes kept for {held} bytes of keyrings");
    assert!(peak <= figure(held), "{peak} bytes at the peak for {held} bytes of keyrings");
}
