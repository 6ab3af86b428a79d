//! `umd digests build --fapolicyd-trust`, checked against fapolicyd itself
//! (Debian's fapolicyd 1.1.7), never on the machine's own mounts.
//!
//! The packages are `scripts/rpm-corpus`'s `exec/` set, installing under
//! `/srv/umd-exec`. Each test that runs fapolicyd's programs does so in a
//! private mount namespace (`unshare -m --propagation private`) with tmpfs
//! mounted over `/srv` and `/srv/umd-exec` (the install prefix, where the
//! packages are unpacked with rpm2cpio and cpio), `/etc/fapolicyd`,
//! `/var/lib/fapolicyd` and `/run` (where fapolicyd writes its pid file):
//! nothing it writes or marks is visible outside. fapolicyd watches only
//! tmpfs (`watch_fs = tmpfs`), so it judges only what the namespace runs from
//! a tmpfs — the test's programs.
//!
//! Needs root (fanotify, mounts), unshare, fapolicyd, rpm2cpio and cpio
//! (scripts/test installs them); skips loudly, or fails under
//! `UMD_REQUIRE_SANDBOX=1`.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use common::{text, umd};

fn corpus() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| common::rpm_corpus("rpm-corpus-fapolicyd"))
}

fn p(path: &Path) -> &str {
    path.to_str().expect("UTF-8 path")
}

/// A fresh directory for one test.
fn workdir(name: &str) -> PathBuf {
    common::workdir(corpus(), name)
}

/// `umd digests build` over `packages` with `--fapolicyd-trust`: the JSON
/// report, the exit status and the trust file.
fn build(dir: &Path, packages: &[PathBuf]) -> (serde_json::Value, Option<i32>, PathBuf) {
    let trust = dir.join("fapolicyd.trust");
    let (list, key) = (dir.join("list"), dir.join("keys/digests.key"));
    let keyring = corpus().join("keys/keyring.asc");
    let mut args = vec!["digests", "build", "--keyring", p(&keyring), "--output", p(&list)];
    args.extend(["--signing-key", p(&key), "--fapolicyd-trust", p(&trust), "--json", "--rpm"]);
    args.extend(packages.iter().map(|x| p(x)));
    let o = umd(&args);
    let (out, err) = text(&o);
    let v = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}\n{err}"));
    (v, o.status.code(), trust)
}

fn exec(name: &str) -> PathBuf {
    corpus().join("exec").join(format!("{name}.rpm"))
}

fn data_lines(trust: &Path) -> BTreeSet<String> {
    let t = std::fs::read_to_string(trust).unwrap();
    t.lines().filter(|l| !l.starts_with('#')).map(str::to_owned).collect()
}

/// Root, unshare and the programs, or a loud skip (a failure under
/// `UMD_REQUIRE_SANDBOX=1`).
fn ready(test: &str, programs: &[&str]) -> bool {
    let root = rustix::process::geteuid().is_root();
    if !common::ready_or_skip(root, test, "needs root (mounts in a private namespace, fanotify)") {
        return false;
    }
    let present = common::programs_present(programs);
    if !common::ready_or_skip(present.is_ok(), test, &present.err().unwrap_or_default()) {
        return false;
    }
    let unshare = Command::new("unshare").args(["-m", "true"]).status().is_ok_and(|s| s.success());
    common::ready_or_skip(unshare, test, "unshare -m does not work here")
}

/// Unpacks packages into `dir` (rpm2cpio | cpio), as rpm would install them.
fn unpack(dir: &Path, packages: &[PathBuf]) {
    std::fs::create_dir_all(dir).unwrap();
    for pkg in packages {
        let sh = format!("rpm2cpio '{}' | cpio -idm --quiet", p(pkg));
        let o = Command::new("sh").args(["-c", &sh]).current_dir(dir).output().unwrap();
        assert!(o.status.success(), "unpacking {}: {}", pkg.display(), String::from_utf8_lossy(&o.stderr));
    }
}

/// Runs `script` with `sh -eu` in a private mount namespace; returns its
/// stdout and stderr.
fn in_namespace(script: &str) -> (String, String, Option<i32>) {
    let o = Command::new("unshare")
        .args(["-m", "--propagation", "private", "sh", "-eu", "-c", script])
        .stdin(Stdio::null())
        .output()
        .expect("running unshare");
    let (out, err) = text(&o);
    (out, err, o.status.code())
}

#[test]
fn the_trust_file_lists_verified_sha256_files_and_counts_what_it_leaves_out() {
    let dir = workdir("counts");
    let all: Vec<PathBuf> =
        ["exec-rsa", "exec-ed", "exec-unsigned", "exec-other", "exec-md5", "exec-sha512"].map(exec).to_vec();
    let (v, code, trust) = build(&dir, &all);
    assert_eq!(code, Some(1), "some packages rejected, some files left out: exit 1\n{v:#}");
    let f = &v["summary"]["fapolicyd"];
    assert_eq!(f["files"], 5, "{v:#}");
    let left = &f["left_out"];
    // unsigned and other-key packages: 2 regular files each; MD5: 2; SHA-512: 2.
    assert_eq!(
        (&left["unverified"], &left["weak_digests"], &left["not_sha256"]),
        (&4.into(), &2.into(), &2.into())
    );
    assert_eq!(
        (&left["no_size"], &left["unrepresentable"], &left["conflicting"]),
        (&0.into(), &0.into(), &0.into())
    );

    let text = std::fs::read_to_string(&trust).unwrap();
    assert!(text.starts_with(umd_header()), "{text}");
    assert!(text.ends_with('\n'));
    let lines = data_lines(&trust);
    let paths: BTreeSet<&str> = lines.iter().map(|l| l.split(' ').next().unwrap()).collect();
    assert_eq!(
        paths,
        BTreeSet::from([
            "/srv/umd-exec/bin/exec-ed",
            "/srv/umd-exec/bin/exec-rsa",
            "/srv/umd-exec/share/exec-ed/data.txt",
            "/srv/umd-exec/share/exec-rsa/data.txt",
            "/srv/umd-exec/share/exec-rsa/with%20space%20100%25.txt",
        ])
    );
    for l in &lines {
        let f: Vec<&str> = l.split(' ').collect();
        assert_eq!(f.len(), 3, "{l}");
        assert!(f[1].parse::<u64>().is_ok(), "{l}");
        assert!(
            f[2].len() == 64 && f[2].bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()),
            "{l}"
        );
    }

    // Only verified SHA-256 packages: exit 0, nothing left out.
    let dir = workdir("verified-only");
    let (v, code, _) = build(&dir, &[exec("exec-rsa"), exec("exec-ed")]);
    assert_eq!(code, Some(0), "{v:#}");
    assert_eq!(v["summary"]["fapolicyd"]["files"], 5);
}

/// The header fapolicyd-cli writes, as umd writes it.
fn umd_header() -> &'static str {
    umd_digest_list::fapolicyd::HEADER
}

/// fapolicyd-cli --file add on the unpacked files of the verified packages
/// writes the same header and the same lines (as a set) as umd does from the
/// signed headers.
#[test]
fn the_trust_file_is_what_fapolicyd_cli_writes_for_the_same_files() {
    if !ready("fapolicyd-cli comparison", &["fapolicyd-cli", "rpm2cpio", "cpio", "unshare", "mount"]) {
        return;
    }
    let dir = workdir("cli");
    let verified = [exec("exec-rsa"), exec("exec-ed")];
    let (v, code, trust) = build(&dir, &verified);
    assert_eq!(code, Some(0), "{v:#}");
    let root = dir.join("unpacked");
    unpack(&root, &verified);
    let theirs = dir.join("theirs.trust");
    let script = format!(
        r#"mount -t tmpfs umd-fa-etc /etc/fapolicyd
mount -t tmpfs umd-fa-srv /srv
mkdir /srv/umd-exec
mount -t tmpfs umd-fa-exec /srv/umd-exec
cp -a '{root}/srv/umd-exec/.' /srv/umd-exec/
fapolicyd-cli --file add /srv/umd-exec
cp /etc/fapolicyd/fapolicyd.trust '{theirs}'
"#,
        root = p(&root),
        theirs = p(&theirs)
    );
    let (out, err, code) = in_namespace(&script);
    assert_eq!(code, Some(0), "{out}\n{err}");
    let (ours_text, theirs_text) =
        (std::fs::read_to_string(&trust).unwrap(), std::fs::read_to_string(&theirs).unwrap());
    let header =
        |t: &str| t.lines().take_while(|l| l.starts_with('#')).map(str::to_owned).collect::<Vec<_>>();
    assert_eq!(header(&ours_text), header(&theirs_text));
    assert_eq!(data_lines(&trust), data_lines(&theirs));
    assert_eq!(data_lines(&trust).len(), 5);
}

/// fapolicyd (`trust = file`, `integrity = sha256`, only umd's trust file,
/// rules that deny untrusted execution) lets the signed packages' programs
/// run and denies the unsigned one, the one signed by another key, those
/// left out for their digests, a program from no package, and a signed
/// program rewritten after it ran.
#[test]
fn fapolicyd_enforces_the_trust_file_of_verified_packages() {
    if !ready("fapolicyd enforcement", &["fapolicyd", "rpm2cpio", "cpio", "unshare", "mount"]) {
        return;
    }
    let dir = workdir("enforce");
    let names = ["exec-rsa", "exec-ed", "exec-unsigned", "exec-other", "exec-md5", "exec-sha512"];
    let all: Vec<PathBuf> = names.map(exec).to_vec();
    let (v, _, trust) = build(&dir, &all);
    assert_eq!(v["summary"]["fapolicyd"]["files"], 5, "{v:#}");
    let root = dir.join("unpacked");
    unpack(&root, &all);
    let log = dir.join("fapolicyd.log");
    let script = format!(
        r#"mount -t tmpfs umd-fa-run /run
mkdir -p /run/fapolicyd
mount -t tmpfs umd-fa-etc /etc/fapolicyd
mkdir /etc/fapolicyd/rules.d /etc/fapolicyd/trust.d
mount -t tmpfs umd-fa-db /var/lib/fapolicyd
mount -t tmpfs umd-fa-srv /srv
mkdir /srv/umd-exec
mount -t tmpfs umd-fa-exec /srv/umd-exec
cp -a '{root}/srv/umd-exec/.' /srv/umd-exec/
printf '#!/bin/sh\necho probe ran\n' > /srv/umd-exec/probe
chmod 755 /srv/umd-exec/probe
cp '{trust}' /etc/fapolicyd/fapolicyd.trust
cat > /etc/fapolicyd/fapolicyd.conf <<'CONF'
permissive = 0
nice_val = 14
q_size = 640
uid = root
gid = root
do_stat_report = 0
detailed_report = 0
db_max_size = 50
subj_cache_size = 1549
obj_cache_size = 8191
watch_fs = tmpfs
trust = file
integrity = sha256
syslog_format = rule,dec,perm,auid,pid,exe,:,path,ftype,trust
rpm_sha256_only = 0
allow_filesystem_mark = 0
CONF
cat > /etc/fapolicyd/compiled.rules <<'RULES'
allow perm=open all : all
allow perm=execute all : trust=1
deny_audit perm=execute all : all
RULES
fapolicyd --debug-deny > '{log}' 2>&1 &
FP=$!
echo "FAPOLICYD $FP"
# Ready when a program from no package is denied.
i=0
while /srv/umd-exec/probe > /dev/null 2>&1; do
  i=$((i + 1))
  if [ $i -gt 300 ]; then echo NOT-READY; kill $FP; wait $FP || true; exit 97; fi
  sleep 0.1
done
for p in {names}; do
  if /srv/umd-exec/bin/$p > /dev/null 2>&1; then echo "RAN $p"; else echo "DENIED $p $?"; fi
done
# A signed program, rewritten after it ran: same path, same size, other bytes.
sed 's/exec-ed ran/exec-ed RAN/' /srv/umd-exec/bin/exec-ed > /srv/umd-exec/bin/.new
chmod 755 /srv/umd-exec/bin/.new
mv /srv/umd-exec/bin/.new /srv/umd-exec/bin/exec-ed
if /srv/umd-exec/bin/exec-ed > /dev/null 2>&1; then echo "RAN rewritten"; else echo "DENIED rewritten $?"; fi
kill $FP
wait $FP || true
echo STOPPED
"#,
        root = p(&root),
        trust = p(&trust),
        log = p(&log),
        names = names.join(" "),
    );
    let (out, err, code) = in_namespace(&script);
    let log_text = std::fs::read_to_string(&log).unwrap_or_default();
    let dump = format!("stdout:\n{out}\nstderr:\n{err}\nfapolicyd:\n{log_text}");
    assert_eq!(code, Some(0), "{dump}");
    for ran in ["exec-rsa", "exec-ed"] {
        assert!(out.contains(&format!("RAN {ran}\n")), "{ran} should run\n{dump}");
    }
    for denied in ["exec-unsigned", "exec-other", "exec-md5", "exec-sha512", "rewritten"] {
        assert!(out.contains(&format!("DENIED {denied} 126\n")), "{denied} should be denied\n{dump}");
    }
    // fapolicyd's own account of the denials.
    for path in ["exec-unsigned", "exec-other", "exec-ed"] {
        let line = log_text.lines().find(|l| l.contains(&format!("path=/srv/umd-exec/bin/{path} ")));
        assert!(line.is_some_and(|l| l.contains("dec=deny_audit perm=execute")), "{path}\n{dump}");
    }
    assert!(out.contains("STOPPED"), "{dump}");
    // Nothing is left running: the daemon the test started is gone.
    let pid = out.lines().find_map(|l| l.strip_prefix("FAPOLICYD ")).expect("fapolicyd's pid");
    assert!(!Path::new(&format!("/proc/{pid}")).exists(), "fapolicyd ({pid}) is still running");
}
