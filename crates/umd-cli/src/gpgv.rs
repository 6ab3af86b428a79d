//! `umd gpgv`, and `umd` run as `gpgv` or `umd-gpgv`: a drop-in for GnuPG's
//! gpgv, the verifier apt runs on every repository signature.
//!
//! This module is the command line around [`umd_pgp::gpgv`]: gpgv's options
//! (parsed as GnuPG's argparse does: unique prefixes of long options,
//! clustered short options, options end at the first file), its keyring
//! lookup (`--homedir`, names without a slash in it, `trustedkeys.kbx` then
//! `trustedkeys.gpg` by default), its status lines on `--status-fd`, its log on
//! stderr, `--logger-fd` or `--log-file`, and its exit statuses. The packets
//! are described by the sandboxed `pgp` handler and every verdict is umd's.

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::{Read, Write};
use std::mem::ManuallyDrop;
use std::os::fd::{BorrowedFd, FromRawFd, RawFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use umd_pgp::driver::PgpDriver;
use umd_pgp::gpgv::{self, Exit, Input, Line, Options};
use umd_pgp::policy::Policy;
use umd_pgp::verifier::Verifier;

use crate::{EXIT_ERROR, EXIT_OK};

/// How an option takes its argument.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Arg {
    None,
    Str,
    Int,
}

/// One option, as gpgv declares it (its argparse table).
struct Opt {
    long: &'static str,
    short: Option<u8>,
    arg: Arg,
    /// gpgv's option id (its `--dump-option-table` second column).
    id: u32,
    /// `--help` text; `None` for options gpgv does not list there.
    help: Option<(&'static str, &'static str)>,
}

/// gpgv 2.4's options, in its order (`--dump-options` lists them so), then
/// the ones every GnuPG program has.
const OPTIONS: &[Opt] = &[
    Opt { long: "verbose", short: Some(b'v'), arg: Arg::None, id: 118, help: Some(("", "verbose")) },
    Opt {
        long: "quiet",
        short: Some(b'q'),
        arg: Arg::None,
        id: 113,
        help: Some(("", "be somewhat more quiet")),
    },
    Opt {
        long: "keyring",
        short: None,
        arg: Arg::Str,
        id: 501,
        help: Some(("FILE", "take the keys from the keyring FILE")),
    },
    Opt {
        long: "output",
        short: Some(b'o'),
        arg: Arg::Str,
        id: 111,
        help: Some(("FILE", "write output to FILE")),
    },
    Opt {
        long: "ignore-time-conflict",
        short: None,
        arg: Arg::None,
        id: 502,
        help: Some(("", "accepted; changes nothing (umd's policy decides about times)")),
    },
    Opt {
        long: "status-fd",
        short: None,
        arg: Arg::Int,
        id: 503,
        help: Some(("FD", "write status info to this FD")),
    },
    Opt { long: "logger-fd", short: None, arg: Arg::Int, id: 504, help: None },
    Opt { long: "log-file", short: None, arg: Arg::Str, id: 505, help: None },
    Opt { long: "homedir", short: None, arg: Arg::Str, id: 506, help: None },
    Opt {
        long: "weak-digest",
        short: None,
        arg: Arg::Str,
        id: 507,
        help: Some(("ALGO", "reject signatures made with ALGO")),
    },
    Opt { long: "enable-special-filenames", short: None, arg: Arg::None, id: 508, help: None },
    Opt { long: "debug", short: None, arg: Arg::Str, id: 509, help: None },
    Opt { long: "assert-pubkey-algo", short: None, arg: Arg::Str, id: 510, help: None },
    Opt { long: "help", short: Some(b'h'), arg: Arg::None, id: 32768, help: None },
    Opt { long: "version", short: None, arg: Arg::None, id: 32769, help: None },
    Opt { long: "warranty", short: None, arg: Arg::None, id: 32770, help: None },
    Opt { long: "dump-option-table", short: None, arg: Arg::None, id: 32772, help: None },
    Opt { long: "dump-options", short: None, arg: Arg::None, id: 32771, help: None },
];

/// gpgv's debug flags (accepted, and without effect here).
const DEBUG_FLAGS: &[(u32, &str)] = &[
    (1, "packet"),
    (2, "mpi"),
    (4, "crypto"),
    (8, "filter"),
    (16, "iobuf"),
    (32, "memory"),
    (64, "cache"),
    (128, "memstat"),
    (256, "trust"),
    (512, "hashing"),
    (1024, "ipc"),
    (4096, "clock"),
    (8192, "lookup"),
    (16384, "extprog"),
];

/// The parsed command line.
#[derive(Default)]
struct Settings {
    verbose: u32,
    quiet: bool,
    keyrings: Vec<OsString>,
    output: Option<OsString>,
    status_fd: Option<RawFd>,
    logger_fd: Option<RawFd>,
    log_file: Option<OsString>,
    homedir: Option<OsString>,
    weak_digests: Vec<String>,
    special_filenames: bool,
    debug: Vec<String>,
    assert_pubkey_algo: Vec<String>,
    files: Vec<OsString>,
}

/// What the command line asks for.
enum Action {
    Verify(Box<Settings>),
    /// Print this on stdout and exit 0 (`--help`, `--version`, …).
    Print(String),
}

fn find_long(name: &str) -> Result<&'static Opt, String> {
    if let Some(o) = OPTIONS.iter().find(|o| o.long == name) {
        return Ok(o);
    }
    let mut hits = OPTIONS.iter().filter(|o| o.long.starts_with(name));
    match (hits.next(), hits.next()) {
        (Some(o), None) if !name.is_empty() => Ok(o),
        (Some(_), Some(_)) => Err(format!("option \"--{name}\" is ambiguous")),
        _ => Err(format!("invalid option \"--{name}\"")),
    }
}

fn int_arg(o: &Opt, v: &OsStr) -> Result<RawFd, String> {
    v.to_str()
        .and_then(|s| s.parse::<RawFd>().ok())
        .filter(|&n| n >= 0)
        .ok_or_else(|| format!("invalid argument for option \"--{}\": {}", o.long, v.to_string_lossy()))
}

/// Applies one option to the settings, or returns what to print instead.
fn apply(s: &mut Settings, o: &Opt, v: Option<OsString>) -> Result<Option<String>, String> {
    let text = |v: &Option<OsString>| v.clone().unwrap_or_default();
    match o.long {
        "verbose" => s.verbose += 1,
        "quiet" => s.quiet = true,
        "keyring" => s.keyrings.push(text(&v)),
        "output" => s.output = v,
        "ignore-time-conflict" => {}
        "status-fd" => s.status_fd = Some(int_arg(o, &text(&v))?),
        "logger-fd" => s.logger_fd = Some(int_arg(o, &text(&v))?),
        "log-file" => s.log_file = v,
        "homedir" => s.homedir = v,
        "weak-digest" => s.weak_digests.push(text(&v).to_string_lossy().into_owned()),
        "enable-special-filenames" => s.special_filenames = true,
        "debug" => s.debug.push(text(&v).to_string_lossy().into_owned()),
        "assert-pubkey-algo" => s.assert_pubkey_algo.push(text(&v).to_string_lossy().into_owned()),
        "help" => return Ok(Some(help())),
        "version" => return Ok(Some(version())),
        "warranty" => return Ok(Some(WARRANTY.into())),
        "dump-options" => return Ok(Some(OPTIONS.iter().map(|o| format!("--{}\n", o.long)).collect())),
        "dump-option-table" => return Ok(Some(option_table())),
        _ => unreachable!("every option in OPTIONS is handled"),
    }
    Ok(None)
}

/// Parses gpgv's command line (without the program name).
fn parse(args: &[OsString]) -> Result<Action, String> {
    let mut s = Settings::default();
    let mut i = 0;
    while i < args.len() {
        let a = args[i].as_bytes();
        i += 1;
        if a == b"--" {
            break;
        }
        if let Some(long) = a.strip_prefix(b"--") {
            let (name, inline) = match long.iter().position(|&b| b == b'=') {
                Some(eq) => (&long[..eq], Some(OsStr::from_bytes(&long[eq + 1..]).to_os_string())),
                None => (long, None),
            };
            let name = String::from_utf8_lossy(name);
            let o = find_long(&name)?;
            let v = match (o.arg, inline) {
                (Arg::None, Some(_)) => {
                    return Err(format!("option \"--{}\" does not expect an argument", o.long))
                }
                (Arg::None, None) => None,
                (_, Some(v)) => Some(v),
                (_, None) => {
                    let v =
                        args.get(i).ok_or_else(|| format!("missing argument for option \"--{}\"", o.long))?;
                    i += 1;
                    Some(v.clone())
                }
            };
            if let Some(text) = apply(&mut s, o, v)? {
                return Ok(Action::Print(text));
            }
        } else if a.len() > 1 && a[0] == b'-' {
            let mut j = 1;
            while j < a.len() {
                let c = a[j];
                j += 1;
                let o = OPTIONS
                    .iter()
                    .find(|o| o.short == Some(c))
                    .ok_or_else(|| format!("invalid option \"-{}\"", c as char))?;
                let v = if o.arg == Arg::None {
                    None
                } else if j < a.len() {
                    let v = OsStr::from_bytes(&a[j..]).to_os_string();
                    j = a.len();
                    Some(v)
                } else {
                    let v = args
                        .get(i)
                        .ok_or_else(|| format!("missing argument for option \"-{}\"", c as char))?;
                    i += 1;
                    Some(v.clone())
                };
                if let Some(text) = apply(&mut s, o, v)? {
                    return Ok(Action::Print(text));
                }
            }
        } else {
            // The first file ends the options, as in gpgv.
            i -= 1;
            break;
        }
    }
    s.files = args[i..].to_vec();
    Ok(Action::Verify(Box::new(s)))
}

fn help() -> String {
    let mut out = String::from(
        "Usage: gpgv [options] SIGNATURE [DATA...]   (umd gpgv [options] ...)\n\
         Check signatures against known trusted keys, with umd: the OpenPGP packets are\n\
         parsed by a sandboxed handler and verified by umd's policy; status lines and exit\n\
         statuses are gpgv's, so apt and scripts written for gpgv read them unchanged.\n\n\
         SIGNATURE is a detached signature (binary or armored; its DATA files are hashed\n\
         in order), or a cleartext-signed document alone (e.g. InRelease). With one\n\
         detached signature and no DATA, the data is the file without .sig/.sign/.asc.\n\n\
         Options:\n",
    );
    for o in OPTIONS {
        let Some((arg, text)) = o.help else { continue };
        let short = o.short.map_or("    ".to_string(), |c| format!("-{}, ", c as char));
        let long = if arg.is_empty() { format!("--{}", o.long) } else { format!("--{} {arg}", o.long) };
        out += &format!(" {short}{long:<28} {text}\n");
    }
    out += "     --assert-pubkey-algo SPEC    with gpgv 2.4's meaning: good signatures by keys\n\
            \x20                                 outside SPEC (e.g. \">=rsa2048,ed25519\") fail\n\
            \x20    --homedir DIR                keyrings named without a slash are read there\n\
            \x20    --logger-fd FD, --log-file F where messages go (default stderr)\n\
            \x20    --enable-special-filenames   \"-&N\" names file descriptor N\n\
            \x20    --debug FLAGS                accepted (no effect)\n\
            \x20    --dump-options               list the options, one per line\n\n\
            Exit status: 0 every signature good, 1 a bad one (also: an expired or revoked key,\n\
            where gpgv says 0), 2 a signature that could not be checked, or another error.\n\
            Where umd is stricter than gpgv: see README.md, \"umd as apt's gpgv\".\n";
    out
}

fn version() -> String {
    format!(
        "gpgv (umd) {}\numd's drop-in for gpgv (GnuPG) 2.2/2.4: same options, status lines and exit\n\
         statuses; the packets are parsed in a sandboxed handler, the verdicts are umd's.\n",
        env!("CARGO_PKG_VERSION")
    )
}

const WARRANTY: &str = "umd is free software. There is NO WARRANTY, to the extent permitted by law.\n";

fn option_table() -> String {
    OPTIONS
        .iter()
        .map(|o| {
            let flags = match o.arg {
                Arg::None => 0,
                Arg::Int => 1,
                Arg::Str => 2,
            };
            let help = match o.help {
                Some(("", t)) => t.to_string(),
                Some((a, t)) => format!("|{a}|{t}"),
                None => "@".into(),
            };
            format!("{}:{}:{flags}:{help}:\n", o.long, o.id)
        })
        .collect()
}

// ---------------------------------------------------------------------------
// Where messages and status lines go.

/// An inherited file descriptor, written to and never closed.
struct Fd(ManuallyDrop<File>);

impl Fd {
    /// Borrows descriptor `fd` after checking that it is open.
    fn inherited(fd: RawFd) -> std::io::Result<Fd> {
        // SAFETY: `fd` is only borrowed for the fcntl call, which fails with
        // EBADF if it is not an open descriptor; nothing is closed.
        rustix::io::fcntl_getfd(unsafe { BorrowedFd::borrow_raw(fd) })?;
        // SAFETY: the descriptor is open (checked above), and wrapping the
        // File in ManuallyDrop means it is never closed here: the caller
        // (e.g. apt) owns it.
        Ok(Fd(ManuallyDrop::new(unsafe { File::from_raw_fd(fd) })))
    }
}

impl Write for Fd {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        (&*self.0).write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        (&*self.0).flush()
    }
}

/// gpgv's log: stderr, `--logger-fd` or `--log-file`, each line prefixed with
/// the program's name.
struct Log {
    prog: String,
    sink: Box<dyn Write>,
    quiet: bool,
}

impl Log {
    fn line(&mut self, text: &str) {
        let _ = writeln!(self.sink, "{}: {text}", self.prog);
    }

    fn info(&mut self, text: &str) {
        if !self.quiet {
            self.line(text);
        }
    }
}

fn open_log(prog: &str, s: &Settings) -> Result<Log, String> {
    let sink: Box<dyn Write> = if let Some(fd) = s.logger_fd {
        Box::new(Fd::inherited(fd).map_err(|e| format!("Fatal: logger-fd is invalid: {e}"))?)
    } else if let Some(f) = &s.log_file {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(f)
            .map_err(|e| format!("can't open log file '{}': {e}", f.to_string_lossy()))?;
        Box::new(file)
    } else {
        Box::new(std::io::stderr())
    };
    Ok(Log { prog: prog.to_string(), sink, quiet: s.quiet })
}

// ---------------------------------------------------------------------------
// Keyrings and files.

/// gpg's home directory: `--homedir`, `$GNUPGHOME`, `~/.gnupg`.
fn homedir(s: &Settings) -> PathBuf {
    if let Some(h) = &s.homedir {
        return PathBuf::from(h);
    }
    if let Some(h) = std::env::var_os("GNUPGHOME").filter(|h| !h.is_empty()) {
        return PathBuf::from(h);
    }
    let home = std::env::var_os("HOME").unwrap_or_else(|| "/".into());
    Path::new(&home).join(".gnupg")
}

/// Where gpgv looks for keyring `name` (its `keydb_add_resource`): a
/// `gnupg-ring:` or `gnupg-kbx:` prefix is dropped; an absolute name is used
/// as is; a name with a slash is relative to the working directory (`~/` is
/// the home directory); a bare name is in the home directory.
fn keyring_path(name: &OsStr, home: &Path) -> Result<PathBuf, String> {
    let mut b = name.as_bytes();
    for prefix in [&b"gnupg-ring:"[..], b"gnupg-kbx:"] {
        if b.len() > prefix.len() && b.starts_with(prefix) {
            b = &b[prefix.len()..];
        }
    }
    if b.contains(&b':') {
        return Err(format!("invalid key resource URL '{}'", name.to_string_lossy()));
    }
    let p = OsStr::from_bytes(b);
    Ok(if b.starts_with(b"/") {
        PathBuf::from(p)
    } else if let Some(rest) = b.strip_prefix(b"~/") {
        Path::new(&std::env::var_os("HOME").unwrap_or_else(|| "/".into())).join(OsStr::from_bytes(rest))
    } else if b.contains(&b'/') {
        PathBuf::from(p)
    } else {
        home.join(p)
    })
}

/// gpg-error code of a failed keyring (`ERROR add_keyblock_resource`): source
/// GPG, a system error for ENOENT and EACCES, else a general error.
fn keyring_error_code(e: &std::io::Error) -> u32 {
    const SOURCE_GPG: u32 = 2 << 24;
    const SYSTEM: u32 = 0x8000;
    match e.kind() {
        std::io::ErrorKind::NotFound => SOURCE_GPG | SYSTEM | 81,
        std::io::ErrorKind::PermissionDenied => SOURCE_GPG | SYSTEM | 1,
        _ => SOURCE_GPG | 1,
    }
}

/// A GnuPG keybox file (`pubring.kbx`): its first blob is the header blob
/// with the magic `KBXf`.
fn is_keybox(bytes: &[u8]) -> bool {
    bytes.len() >= 12 && bytes[4] == 1 && &bytes[8..12] == b"KBXf"
}

/// Largest keyring, signature or data file read (the OpenPGP code refuses
/// more than 64 MiB of armor or cleartext anyway).
const MAX_FILE: u64 = 256 << 20;

fn read_all(mut r: impl Read, name: &str) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    r.by_ref().take(MAX_FILE + 1).read_to_end(&mut out).map_err(|e| format!("can't read '{name}': {e}"))?;
    if out.len() as u64 > MAX_FILE {
        return Err(format!("'{name}' is larger than {MAX_FILE} bytes"));
    }
    Ok(out)
}

/// Reads an input file: `-` is stdin, `-&N` descriptor N with
/// `--enable-special-filenames`.
fn read_input(name: &OsStr, special: bool) -> Result<Vec<u8>, String> {
    let b = name.as_bytes();
    let shown = name.to_string_lossy();
    if b == b"-" {
        return read_all(std::io::stdin().lock(), "[stdin]");
    }
    if let Some(fd) = b.strip_prefix(b"-&").filter(|_| special) {
        let fd = std::str::from_utf8(fd)
            .ok()
            .and_then(|s| s.parse::<RawFd>().ok())
            .ok_or_else(|| format!("can't open '{shown}': not a file descriptor"))?;
        let f = Fd::inherited(fd).map_err(|e| format!("can't open '{shown}': {e}"))?;
        return read_all(&*f.0, &shown);
    }
    let f = File::open(name).map_err(|e| format!("can't open '{shown}': {e}"))?;
    read_all(f, &shown)
}

/// gpg's `get_matching_datafile`: the signature's name without `.sig`,
/// `.sign` or `.asc`, if that file exists.
fn matching_datafile(sig: &OsStr) -> Option<OsString> {
    let b = sig.as_bytes();
    [&b".sig"[..], b".sign", b".asc"]
        .iter()
        .find_map(|s| b.strip_suffix(*s).filter(|d| !d.is_empty()))
        .map(|d| OsString::from_vec(d.to_vec()))
        .filter(|d| Path::new(d).exists())
}

// ---------------------------------------------------------------------------
// The run.

/// How long the handler may take over one request.
const HANDLER_TIMEOUT: Duration = Duration::from_secs(10);

/// Runs gpgv with `args` (after the program name). `prog` names the program in
/// messages. Returns the exit status.
pub fn run(prog: &str, args: &[OsString]) -> u8 {
    let settings = match parse(args) {
        Ok(Action::Verify(s)) => s,
        Ok(Action::Print(text)) => {
            print!("{text}");
            return EXIT_OK;
        }
        Err(e) => {
            eprintln!("{prog}: {e}");
            return EXIT_ERROR;
        }
    };
    let mut log = match open_log(prog, &settings) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("{prog}: {e}");
            return EXIT_ERROR;
        }
    };
    let mut status = match settings.status_fd.map(Fd::inherited).transpose() {
        Ok(s) => s,
        Err(e) => {
            log.line(&format!("Fatal: status-fd is invalid: {e}"));
            return EXIT_ERROR;
        }
    };
    let driver = PgpDriver::new(HANDLER_TIMEOUT);
    let (exit, lines) = std::thread::scope(|scope| {
        // The handler starts on the other CPU while this thread reads the
        // keyrings and the files; a failure to start shows again at the first
        // request and is reported there.
        scope.spawn(|| driver.start());
        check(&settings, driver.clone(), &mut log)
    });
    if let Some(fd) = status.as_mut() {
        let bytes: Vec<u8> = lines.iter().flat_map(Line::encode).collect();
        // A reader that went away (EPIPE) changes nothing about the verdict.
        let _ = fd.write_all(&bytes).and_then(|()| fd.flush());
    }
    exit as u8
}

/// umd's policy, without the hashes given as `--weak-digest`: like gpgv,
/// they are then refused for every signature, certificates' own included.
fn policy(weak_digests: &[u8]) -> Policy {
    let mut p = Policy::new();
    p.hashes.retain(|h| !weak_digests.contains(&h.id()));
    if weak_digests.contains(&2) {
        p.sha1_self_signatures_before = None;
    }
    p
}

/// Everything after the options: returns the exit status and the status
/// lines to write.
fn check(s: &Settings, driver: PgpDriver, log: &mut Log) -> (Exit, Vec<Line>) {
    let mut lines = Vec::new();
    let mut errors = false;
    let mut weak_digests = Vec::new();
    for w in &s.weak_digests {
        match gpgv::digest_id(w) {
            Some(id) => weak_digests.push(id),
            None => {
                log.line(&format!("unknown weak digest '{w}'"));
                errors = true;
            }
        }
    }
    for d in s.debug.iter().flat_map(|d| d.split([',', ' '])).filter(|d| !d.is_empty()) {
        let known = d == "none"
            || d == "all"
            || d.parse::<u32>().is_ok()
            || d.strip_prefix("0x").is_some_and(|h| u32::from_str_radix(h, 16).is_ok())
            || DEBUG_FLAGS.iter().any(|(_, n)| n.eq_ignore_ascii_case(d));
        if !known {
            log.line(&format!("unknown debug flag '{d}' ignored"));
        }
    }
    if errors {
        return (Exit::Error, lines);
    }

    // Keyrings: gpgv goes on without one it cannot read, and exits 2 at the end.
    let home = homedir(s);
    let names: Vec<(OsString, bool)> = if s.keyrings.is_empty() {
        let kbx = home.join("trustedkeys.kbx");
        let gpg = home.join("trustedkeys.gpg");
        vec![(if !kbx.exists() && gpg.exists() { gpg } else { kbx }.into_os_string(), true)]
    } else {
        s.keyrings.iter().map(|k| (k.clone(), false)).collect()
    };
    let mut keyrings = Vec::new();
    for (name, default) in &names {
        let path = match keyring_path(name, &home) {
            Ok(p) => p,
            Err(e) => {
                log.line(&e);
                lines.push(Line::Error { location: "add_keyblock_resource", code: (2 << 24) | 1 });
                errors = true;
                continue;
            }
        };
        let shown = path.display().to_string();
        match std::fs::File::open(&path).and_then(|f| {
            let mut v = Vec::new();
            f.take(MAX_FILE).read_to_end(&mut v).map(|_| v)
        }) {
            Ok(bytes) if is_keybox(&bytes) => {
                log.line(&format!(
                    "keyblock resource '{shown}': a GnuPG keybox; umd reads OpenPGP keyrings (binary or \
                     armored): export the keys with 'gpg --export'"
                ));
                lines.push(Line::Error { location: "add_keyblock_resource", code: (2 << 24) | 1 });
                errors = true;
            }
            Ok(bytes) => keyrings.push(bytes),
            Err(e) => {
                if *default {
                    log.line(&format!("keyblock resource '{shown}': {e}"));
                } else {
                    log.line(&format!("keyblock resource '{}': {e}", name.to_string_lossy()));
                }
                // gpgv reports its missing default keyring as a general error.
                let code = if *default { (2 << 24) | 1 } else { keyring_error_code(&e) };
                lines.push(Line::Error { location: "add_keyblock_resource", code });
                errors = true;
            }
        }
    }
    let verifier = match Verifier::with_driver(driver, &keyrings, policy(&weak_digests)) {
        Ok(v) => v,
        Err(e) => {
            log.line(&format!("keyring: {e}"));
            return (Exit::Error, lines);
        }
    };

    // The signature and its data.
    let sig_name = s.files.first().cloned().unwrap_or_else(|| OsString::from("-"));
    let signature = match read_input(&sig_name, s.special_filenames) {
        Ok(b) => b,
        Err(e) => {
            log.line(&e);
            log.line(&format!("verify signatures failed: {e}"));
            return (Exit::Error, lines);
        }
    };
    let cleartext = umd_pgp::cleartext::is_cleartext(&signature);
    let data_names: Vec<OsString> = match (&s.files[..], cleartext) {
        ([_, rest @ ..], _) if !rest.is_empty() => rest.to_vec(),
        ([only], false) => match matching_datafile(only) {
            Some(d) => vec![d],
            None => {
                log.line("no signed data");
                log.line("can't hash datafile: No data");
                return (Exit::Error, lines);
            }
        },
        _ => Vec::new(),
    };
    if cleartext && !data_names.is_empty() {
        log.line("not a detached signature");
        return (Exit::Error, lines);
    }
    let mut data = Vec::new();
    for d in &data_names {
        match read_input(d, s.special_filenames) {
            Ok(b) => data.extend_from_slice(&b),
            Err(e) => {
                log.line(&format!("can't open signed data '{}'", d.to_string_lossy()));
                log.line(&format!("can't hash datafile: {e}"));
                return (Exit::Error, lines);
            }
        }
    }
    if !cleartext && data_names.is_empty() {
        log.line("no signed data");
        log.line("can't hash datafile: No data");
        return (Exit::Error, lines);
    }

    let options = Options {
        assert_pubkey_algo: (!s.assert_pubkey_algo.is_empty()).then(|| s.assert_pubkey_algo.join(",")),
        output: cleartext && s.output.is_some(),
    };
    let input = if cleartext {
        Input::Cleartext(&signature)
    } else {
        Input::Detached { signature: &signature, data: &data }
    };
    // The reference time: the clock, read once for the whole run (every
    // signature, certificate and status line is judged at the same instant).
    let report = verifier.gpgv(input, &options, SystemTime::now());
    for m in &report.messages {
        let informational = m.starts_with("Signature made") || m.starts_with("      ");
        if informational {
            log.info(m);
        } else {
            log.line(m);
        }
    }
    if s.verbose > 0 {
        for r in &report.reports {
            log.line(&format!(
                "umd verdict on the signature at offset {}: {}",
                r.offset,
                verbose_verdict(&r.verdict)
            ));
        }
    }
    lines.extend(report.lines);
    let mut exit = report.exit;
    if let (Some(out), Some(text)) = (&s.output, &report.text) {
        if let Err(e) = write_output(out, text, s.special_filenames) {
            log.line(&e);
            exit = exit.max(Exit::Error);
        }
    }
    if errors {
        exit = exit.max(Exit::Error);
    }
    (exit, lines)
}

/// Writes a verified cleartext document's text: `-` is stdout.
fn write_output(out: &OsStr, text: &[u8], special: bool) -> Result<(), String> {
    let shown = out.to_string_lossy();
    let b = out.as_bytes();
    if b == b"-" {
        let mut o = std::io::stdout().lock();
        return o.write_all(text).and_then(|()| o.flush()).map_err(|e| format!("writing to stdout: {e}"));
    }
    if let Some(fd) = b.strip_prefix(b"-&").filter(|_| special) {
        let fd = std::str::from_utf8(fd).ok().and_then(|s| s.parse::<RawFd>().ok());
        let mut f = fd.map(Fd::inherited).transpose().map_err(|e| format!("can't create '{shown}': {e}"))?;
        let f = f.as_mut().ok_or_else(|| format!("can't create '{shown}': not a file descriptor"))?;
        return f.write_all(text).map_err(|e| format!("writing '{shown}': {e}"));
    }
    let mut f = File::create(out).map_err(|e| format!("can't create '{shown}': {e}"))?;
    f.write_all(text).and_then(|()| f.sync_all()).map_err(|e| format!("writing '{shown}': {e}"))
}

/// The program name for messages: `gpgv` or `umd-gpgv` when run under that
/// name, else `umd gpgv`.
pub fn program_name(argv0: &OsStr) -> Option<&'static str> {
    match Path::new(argv0).file_name()?.as_bytes() {
        b"gpgv" => Some("gpgv"),
        b"umd-gpgv" => Some("umd-gpgv"),
        _ => None,
    }
}

// ---------------------------------------------------------------------------
// umd install-gpgv

/// Options of `umd install-gpgv`.
#[derive(clap::Args)]
pub struct InstallArgs {
    /// Directory to create the link in.
    #[arg(long, value_name = "DIR", default_value = "/usr/local/bin")]
    dir: PathBuf,
    /// Name of the link: umd-gpgv (the default; apt then needs
    /// APT::Key::GPGVCommand), or gpgv (found first on PATH where DIR comes
    /// before /usr/bin).
    #[arg(long, value_name = "NAME", default_value = "umd-gpgv", value_parser = ["umd-gpgv", "gpgv"])]
    name: String,
    /// The umd binary the link points to (default: this one).
    #[arg(long, value_name = "PATH")]
    target: Option<PathBuf>,
}

/// `umd install-gpgv`: a symbolic link named `umd-gpgv` (or `gpgv`) to the
/// umd binary. Never replaces an existing file.
pub fn install(a: &InstallArgs) -> u8 {
    let target = match a.target.clone().map_or_else(std::env::current_exe, Ok).and_then(std::fs::canonicalize)
    {
        Ok(t) => t,
        Err(e) => {
            eprintln!("umd install-gpgv: finding the umd binary: {e}");
            return EXIT_ERROR;
        }
    };
    let link = a.dir.join(&a.name);
    if let Ok(m) = std::fs::symlink_metadata(&link) {
        let what = if m.file_type().is_symlink() { "a symbolic link" } else { "a file" };
        eprintln!(
            "umd install-gpgv: {} exists ({what}); not replacing it (remove it first if it should go)",
            link.display()
        );
        return EXIT_ERROR;
    }
    if let Err(e) = std::os::unix::fs::symlink(&target, &link) {
        eprintln!("umd install-gpgv: creating {}: {e}", link.display());
        return EXIT_ERROR;
    }
    println!("created {} -> {}", link.display(), target.display());
    if a.name == "umd-gpgv" {
        println!(
            "to make apt use it:  echo 'APT::Key::GPGVCommand \"{}\";' > /etc/apt/apt.conf.d/80umd-gpgv",
            link.display()
        );
        println!("and back:            rm /etc/apt/apt.conf.d/80umd-gpgv");
    }
    EXIT_OK
}

/// A verdict as `-v` prints it: the reason of a bad signature as its text
/// (quoted), as it was printed when the reason was a string.
fn verbose_verdict(v: &umd_pgp::verify::Verdict) -> String {
    match v {
        umd_pgp::verify::Verdict::Bad { key, reason } => {
            format!("Bad {{ key: {key:?}, reason: {:?} }}", reason.to_string())
        }
        other => format!("{other:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<OsString> {
        a.iter().map(OsString::from).collect()
    }

    fn settings(a: &[&str]) -> Settings {
        match parse(&args(a)) {
            Ok(Action::Verify(s)) => *s,
            Ok(Action::Print(p)) => panic!("printed {p}"),
            Err(e) => panic!("{e}"),
        }
    }

    #[test]
    fn options_parse_as_gnupgs_argparse_does() {
        let s = settings(&[
            "--homedir",
            "/h",
            "--keyring",
            "a",
            "--keyring=b",
            "--ignore-time-conflict",
            "--status-fd",
            "3",
            "-vq",
            "-oout",
            "--stat",
            "4",
            "sig",
            "--keyring",
            "data",
        ]);
        assert_eq!(s.keyrings, args(&["a", "b"]));
        assert_eq!((s.status_fd, s.verbose, s.quiet), (Some(4), 1, true));
        assert_eq!(s.output, Some("out".into()));
        assert_eq!(s.homedir, Some("/h".into()));
        // Options end at the first file.
        assert_eq!(s.files, args(&["sig", "--keyring", "data"]));
        assert_eq!(settings(&["--", "--keyring"]).files, args(&["--keyring"]));
        assert_eq!(settings(&["-", "x"]).files, args(&["-", "x"]));
        let s = settings(&["--assert-pubkey-algo=>=rsa2048", "--assert-pubkey-algo", "ed25519"]);
        assert_eq!(s.assert_pubkey_algo, [">=rsa2048", "ed25519"]);
    }

    #[test]
    fn unknown_ambiguous_and_malformed_options_are_refused() {
        for (a, want) in [
            (&["--bogus"][..], "invalid option \"--bogus\""),
            (&["--ver"], "ambiguous"),
            (&["--dump-o"], "ambiguous"),
            (&["-x"], "invalid option \"-x\""),
            (&["--keyring"], "missing argument"),
            (&["--status-fd", "x"], "invalid argument"),
            (&["--quiet=1"], "does not expect an argument"),
        ] {
            match parse(&args(a)) {
                Err(e) => assert!(e.contains(want), "{a:?}: {e}"),
                Ok(_) => panic!("{a:?} accepted"),
            }
        }
    }

    #[test]
    fn dump_options_lists_one_option_per_line_as_gpgv_does() {
        let Ok(Action::Print(p)) = parse(&args(&["--dump-options"])) else { panic!() };
        let lines: Vec<&str> = p.lines().collect();
        assert_eq!(lines[..3], ["--verbose", "--quiet", "--keyring"]);
        assert!(lines.contains(&"--assert-pubkey-algo"));
        assert!(lines.iter().all(|l| l.starts_with("--") && !l.contains(' ')));
        let Ok(Action::Print(t)) = parse(&args(&["--dump-option-table"])) else { panic!() };
        assert!(t.starts_with("verbose:118:0:verbose:\n"));
        assert!(t.contains("keyring:501:2:|FILE|take the keys from the keyring FILE:\n"));
    }

    #[test]
    fn keyrings_are_found_where_gpgv_looks() {
        let home = Path::new("/home/u/.gnupg");
        let p = |n: &str| keyring_path(OsStr::new(n), home);
        assert_eq!(p("trusted.gpg").unwrap(), Path::new("/home/u/.gnupg/trusted.gpg"));
        assert_eq!(p("./k.gpg").unwrap(), Path::new("./k.gpg"));
        assert_eq!(p("/etc/k.gpg").unwrap(), Path::new("/etc/k.gpg"));
        assert_eq!(p("gnupg-ring:/etc/k.gpg").unwrap(), Path::new("/etc/k.gpg"));
        assert!(p("http://x").is_err());
    }

    #[test]
    fn the_data_file_is_the_signature_without_its_suffix() {
        let dir = std::env::temp_dir().join(format!("umd-gpgv-unit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let data = dir.join("Release");
        std::fs::write(&data, "x").unwrap();
        let sig = dir.join("Release.sig");
        assert_eq!(matching_datafile(sig.as_os_str()), Some(data.clone().into_os_string()));
        assert_eq!(matching_datafile(dir.join("Release.gpg").as_os_str()), None);
        assert_eq!(matching_datafile(dir.join("Other.asc").as_os_str()), None);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_program_name_comes_from_argv0() {
        assert_eq!(program_name(OsStr::new("/usr/local/bin/umd-gpgv")), Some("umd-gpgv"));
        assert_eq!(program_name(OsStr::new("gpgv")), Some("gpgv"));
        assert_eq!(program_name(OsStr::new("/usr/bin/umd")), None);
    }
}
