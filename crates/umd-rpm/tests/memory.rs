//! The `rpm` driver's memory figure, measured: whatever a handler answers,
//! honest or lying, the heap the manager allocates from the request to the
//! verdict stays within four times the bytes the handler was given and
//! 16 MiB.
//!
//! A dedicated test binary (its own process) with a counting global
//! allocator (`umd_wire::counting`); scenarios run one at a time. Run with
//! `--nocapture` to see the figures.

mod common;

use std::time::Duration;

use common::{keyring, rpm};
use umd_rpm::driver::RpmDriver;
use umd_rpm::package::PackageVerifier;
use umd_rpm_wire::{tag, ty};
use umd_wire::counting::{figure, measure, serial, Counting};

#[global_allocator]
static ALLOC: Counting = Counting;

fn liar(args: &[&str]) -> PackageVerifier {
    let d = RpmDriver::with_program(
        || umd::Program::runtime_blob("umd-rpm-liar-handler", umd_blobs::RPM_LIAR_HANDLER),
        args.iter().map(|a| a.to_string()).collect(),
        Duration::from_secs(3),
    );
    PackageVerifier::with_driver(d, &[keyring()]).unwrap()
}

fn honest() -> PackageVerifier {
    PackageVerifier::new(&[keyring()]).unwrap()
}

/// Judges a database header blob (the whole path: description, check, file
/// list, signature, report) and holds the peak to the figure.
#[track_caller]
fn db_header_within_the_figure(name: &str, v: &PackageVerifier, blob: &[u8]) -> (bool, usize) {
    warm(v);
    let given = blob.len() + 1;
    let (r, peak) = measure(|| v.db_header(blob).map(|r| r.files.len()));
    report(name, given, peak, &r)
}

/// Judges a package file, likewise.
#[track_caller]
fn package_within_the_figure(name: &str, v: &PackageVerifier, file: &[u8]) -> (bool, usize) {
    warm(v);
    let given = file.len().min(umd_rpm_wire::MAX_INPUT) + 1;
    let (r, peak) = measure(|| v.package(file).map(|r| r.files.len()));
    report(name, given, peak, &r)
}

/// Starts the handler before measuring (its start-up probe is measured on
/// its own, in `probe_lies_stay_within_the_figure`).
fn warm(v: &PackageVerifier) {
    let _ = v.rpm_driver().driver().ensure_loaded();
}

#[track_caller]
fn report<E: std::fmt::Display>(
    name: &str,
    given: usize,
    peak: usize,
    r: &Result<usize, E>,
) -> (bool, usize) {
    let bound = figure(given);
    eprintln!(
        "memory: rpm {name}: given {given} B, peak {peak} B ({:.2} MiB), bound {:.2} MiB, {}",
        peak as f64 / (1 << 20) as f64,
        bound as f64 / (1 << 20) as f64,
        match r {
            Ok(n) => format!("judged ({n} files)"),
            Err(e) => format!("refused: {}", e.to_string().chars().take(140).collect::<String>()),
        }
    );
    assert!(peak <= bound, "{name}: {peak} bytes for {given} given (bound {bound})");
    (r.is_ok(), peak)
}

/// A database header blob (no magic), all region: the given entries (tag,
/// type, count, data), laid out with their alignment, then the region trailer.
fn db_header(entries: &[(u32, u32, u32, Vec<u8>)]) -> Vec<u8> {
    let il = entries.len() as u32 + 1;
    let mut index = Vec::new();
    let mut data = Vec::new();
    let entry = |index: &mut Vec<u8>, t: u32, typ: u32, off: u32, count: u32| {
        for x in [t, typ, off, count] {
            index.extend_from_slice(&x.to_be_bytes());
        }
    };
    let mut rest = Vec::new();
    for (t, typ, count, bytes) in entries {
        let align = match *typ {
            ty::INT16 => 2,
            ty::INT32 => 4,
            _ => 1,
        };
        while data.len() % align != 0 {
            data.push(0);
        }
        entry(&mut rest, *t, *typ, data.len() as u32, *count);
        data.extend_from_slice(bytes);
    }
    let trailer_at = data.len() as u32;
    entry(&mut index, tag::HEADERIMMUTABLE, ty::BIN, trailer_at, 16);
    index.extend_from_slice(&rest);
    let mut trailer = Vec::new();
    entry(&mut trailer, tag::HEADERIMMUTABLE, ty::BIN, (-(il as i32 * 16)) as u32, 16);
    data.extend_from_slice(&trailer);
    let mut blob = Vec::new();
    blob.extend_from_slice(&il.to_be_bytes());
    blob.extend_from_slice(&(data.len() as u32).to_be_bytes());
    blob.extend_from_slice(&index);
    blob.extend_from_slice(&data);
    blob
}

fn strings(v: impl IntoIterator<Item = Vec<u8>>) -> (u32, Vec<u8>) {
    let mut n = 0;
    let mut out = Vec::new();
    for s in v {
        out.extend_from_slice(&s);
        out.push(0);
        n += 1;
    }
    (n, out)
}

/// rpm's tags for file times and owners (`rpmtag.h`): in every package,
/// not read by the manager.
const FILEMTIMES: u32 = 1034;
const FILEUSERNAME: u32 = 1039;
const FILEGROUPNAME: u32 = 1040;

/// An unsigned database header of `files` files in one directory of
/// `dir_len` bytes.
fn many_files(files: usize, dir_len: usize) -> Vec<u8> {
    let s = |t: u32, v: &[u8]| (t, ty::STRING, 1, [v, &[0]].concat());
    let (nb, base) = strings((0..files).map(|i| format!("f{i}").into_bytes()));
    let (nd, dirs) = strings([[vec![b'd'; dir_len - 1], vec![b'/']].concat()]);
    let (ng, digests) = strings((0..files).map(|_| vec![b'a'; 64]));
    let (nu, owners) = strings((0..files).map(|_| b"root".to_vec()));
    let int32 = |v: u32| (0..files).flat_map(|_| v.to_be_bytes()).collect::<Vec<u8>>();
    // The per-file tags rpm writes for every package (sizes, modes, times,
    // digests, flags, owners, directories, names); the manager reads some.
    db_header(&[
        s(tag::NAME, b"many"),
        s(tag::VERSION, b"1"),
        s(tag::RELEASE, b"1"),
        s(tag::ARCH, b"noarch"),
        (tag::FILESIZES, ty::INT32, files as u32, int32(1000)),
        (
            tag::FILEMODES,
            ty::INT16,
            files as u32,
            (0..files).flat_map(|_| 0o100644u16.to_be_bytes()).collect(),
        ),
        (FILEMTIMES, ty::INT32, files as u32, int32(1_700_000_000)),
        (tag::FILEDIGESTS, ty::STRING_ARRAY, ng, digests),
        (tag::FILEFLAGS, ty::INT32, files as u32, int32(0)),
        (FILEUSERNAME, ty::STRING_ARRAY, nu, owners.clone()),
        (FILEGROUPNAME, ty::STRING_ARRAY, nu, owners),
        (tag::DIRINDEXES, ty::INT32, files as u32, int32(0)),
        (tag::BASENAMES, ty::STRING_ARRAY, nb, base),
        (tag::DIRNAMES, ty::STRING_ARRAY, nd, dirs),
        (tag::FILEDIGESTALGO, ty::INT32, 1, 8u32.to_be_bytes().to_vec()),
    ])
}

#[test]
fn honest_descriptions_stay_within_the_figure_to_the_verdict() {
    let _serial = serial();
    let v = honest();
    for name in ["hello-rsa.rpm", "tools-ed.rpm", "empty-rsa.rpm", "unsigned.rpm"] {
        assert!(package_within_the_figure(&format!("honest {name}"), &v, &rpm(name)).0);
    }
    for (h, blob) in common::db_headers() {
        assert!(db_header_within_the_figure(&format!("honest database header {h}"), &v, &blob).0);
    }
    // 100,000 files with short paths: judged.
    let big = many_files(100_000, 20);
    assert!(db_header_within_the_figure("honest header of 100,000 files", &v, &big).0);
}

#[test]
fn rpm_bloat_a_file_list_outgrowing_its_header_is_refused_within_the_figure() {
    let _serial = serial();
    // 50,000 files in one directory of 4 KiB: a 4.3 MB header whose file
    // list would take 200 MB. Refused while the list is built.
    let v = honest();
    let big = many_files(50_000, 4096);
    let (judged, _) = db_header_within_the_figure("header of 50,000 files in a 4 KiB directory", &v, &big);
    assert!(!judged);
}

#[test]
fn wide_rpm_replies_stay_within_the_figure() {
    let _serial = serial();
    let big = many_files(100_000, 20);
    for lie in ["bloat-strings", "bloat-entries"] {
        let v = liar(&[lie]);
        assert!(
            !package_within_the_figure(&format!("{lie} liar, hello-rsa.rpm"), &v, &rpm("hello-rsa.rpm")).0
        );
        assert!(!db_header_within_the_figure(&format!("{lie} liar, 100,000 files"), &v, &big).0);
    }
}

#[test]
fn a_stalled_announced_rpm_frame_stays_within_the_figure() {
    let _serial = serial();
    let v = liar(&["stall-frame"]);
    let big = many_files(100_000, 20);
    let (judged, peak) = db_header_within_the_figure("stall-frame liar, 100,000 files", &v, &big);
    assert!(!judged);
    assert!(peak < 4 << 20, "{peak} bytes held for a stalled frame");
}

#[test]
fn rpm_probe_lies_stay_within_the_figure() {
    let _serial = serial();
    for lie in ["bloat-strings", "bloat-entries", "stall-frame"] {
        let v = liar(&[lie, "always"]);
        let (r, peak) = measure(|| v.rpm_driver().driver().ensure_loaded());
        eprintln!("memory: rpm {lie} liar at the probe: peak {peak} B, {r:?}");
        assert!(r.is_err(), "{lie}: the probe's lie was accepted");
        assert!(peak <= figure(umd_rpm::driver::PROBE.len() + 1), "{lie}: {peak} bytes");
    }
}

#[test]
fn the_rpmdb_through_the_handler_stays_within_the_figure() {
    let _serial = serial();
    let db = common::corpus().join("root/var/lib/rpm");
    let given = std::fs::metadata(db.join("rpmdb.sqlite")).unwrap().len() as usize + 1;
    for (name, v) in [("honest", honest()), ("many-blobs liar", liar(&["many-blobs"]))] {
        warm(&v);
        let (r, peak) = measure(|| v.db_headers(&db).map(|b| b.len()));
        report(&format!("rpmdb, {name}"), given, peak, &r);
    }
}
