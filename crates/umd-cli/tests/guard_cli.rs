//! `umd guard` end to end: a real fanotify guard in a private mount namespace.
//!
//! Each test writes a shell script and runs it under `unshare -m --propagation
//! private`: the script mounts a tmpfs for the test, installs the test programs
//! there, starts `umd guard` on that mount only, runs the workload and stops the
//! guard. The machine's root filesystem is never marked, and because the guard
//! and the workload live in their own mount namespace, one test's guard never
//! sees another test's execs (the test harness runs tests on parallel threads).
//!
//! Needs root (fanotify permission events need CAP_SYS_ADMIN) and `unshare`:
//! otherwise each test skips loudly, or fails under `UMD_REQUIRE_SANDBOX=1` (CI).
mod common;

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use umd_digest_list::{Builder, Digest, HashAlgo, Mark, SigningKey};

const SCRIPT: &[u8] = b"#!/bin/sh\nexit 0\n";

fn tiny() -> Vec<u8> {
    umd_bench::guard::helper::tiny_program()
        .unwrap_or_else(|| std::fs::read("/bin/true").expect("reading /bin/true"))
}

/// The same program with different bytes (so a different digest).
fn tiny_other(tag: u8) -> Vec<u8> {
    let mut b = tiny();
    b.extend_from_slice(&[0xa5, tag]);
    b
}

fn available() -> bool {
    let root = rustix::process::geteuid().is_root();
    let unshare = Command::new("unshare").args(["-m", "true"]).status().is_ok_and(|s| s.success());
    if root && unshare {
        return true;
    }
    let why = if root {
        "unshare -m does not work"
    } else {
        "not root (fanotify permission events need CAP_SYS_ADMIN)"
    };
    if std::env::var("UMD_REQUIRE_SANDBOX").as_deref() == Ok("1") {
        panic!("UMD_REQUIRE_SANDBOX=1 but the guard cannot be tested: {why}");
    }
    let bar = "=".repeat(72);
    eprintln!("{bar}\nSKIPPED: umd guard tests: {why}. UMD_REQUIRE_SANDBOX=1 makes this a failure.\n{bar}");
    false
}

/// A test's directory: signing key, lists, programs to install, outputs.
struct Lab {
    dir: PathBuf,
    key: SigningKey,
    files: Vec<(String, Vec<u8>)>,
}

/// What a run printed.
struct Run {
    results: HashMap<String, (i32, String)>,
    out: String,
    decisions: Vec<serde_json::Value>,
    log: String,
}

impl Run {
    fn rc(&self, name: &str) -> i32 {
        self.results.get(name).unwrap_or_else(|| panic!("no result {name}\n{}", self.dump())).0
    }
    fn ran(&self, name: &str) {
        assert_eq!(self.rc(name), 0, "{name} should have run\n{}", self.dump());
    }
    fn denied(&self, name: &str) {
        let (rc, err) = &self.results[name];
        assert!(
            *rc != 0 && err.contains("Operation not permitted"),
            "{name} should have been denied with EPERM, got {rc} {err:?}\n{}",
            self.dump()
        );
    }
    fn decisions_for(&self, file: &str) -> Vec<&serde_json::Value> {
        self.decisions
            .iter()
            .filter(|d| d["path"].as_str().is_some_and(|p| p.ends_with(&format!("/{file}"))))
            .collect()
    }
    fn dump(&self) -> String {
        let d: Vec<String> = self.decisions.iter().map(|d| d.to_string()).collect();
        format!("--- script output\n{}--- decisions\n{}\n--- guard log\n{}", self.out, d.join("\n"), self.log)
    }
}

impl Lab {
    fn new(name: &str) -> Lab {
        let dir = common::scratch().join(format!("guard-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let key = SigningKey::from_bytes(&[0x5a; 32]);
        let hex: String = key.verifying_key().as_bytes().iter().map(|b| format!("{b:02x}")).collect();
        std::fs::write(dir.join("key.pub"), hex + "\n").unwrap();
        Lab { dir, key, files: Vec::new() }
    }

    fn install(&mut self, name: &str, bytes: &[u8]) {
        self.files.push((name.into(), bytes.to_vec()));
    }

    /// Writes a list at `file` listing each content under a package name.
    fn list(&self, file: &str, sequence: u64, created: u64, contents: &[&[u8]]) -> PathBuf {
        let mut b = Builder::new();
        for (i, c) in contents.iter().enumerate() {
            let p = b.add_package(&format!("pkg{i}-1.0-1.x86_64"), Mark::Verified);
            b.add_digest(&Digest::of(HashAlgo::Sha256, c), p).unwrap();
        }
        let path = self.dir.join(file);
        std::fs::write(&path, b.finish(created, sequence, &self.key)).unwrap();
        path
    }

    /// Runs `body` (shell) with the guard started with `args` on `$M`. In the
    /// body: `$M` the mount, `$D` this directory, `$G` the guard's pid, and
    /// `run NAME CMD...` records CMD's exit status and stderr as result NAME.
    fn run(&self, args: &str, body: &str) -> Run {
        let files = self.dir.join("files");
        let _ = std::fs::remove_dir_all(&files);
        std::fs::create_dir_all(&files).unwrap();
        for (name, bytes) in &self.files {
            std::fs::write(files.join(name), bytes).unwrap();
        }
        let mut s = String::new();
        let d = self.dir.display();
        let umd = env!("CARGO_BIN_EXE_umd");
        writeln!(s, "set -u\nD='{d}'; M=\"$D/mnt\"; UMD='{umd}'").unwrap();
        s.push_str(
            r#"mkdir -p "$M"
mount -t tmpfs umd-guard-test "$M" || { echo MOUNT-FAILED; exit 97; }
cp "$D"/files/* "$M"/ && chmod 755 "$M"/*
rm -f "$D/ready"
# Waits (up to 20 s) until the guard has logged N list outcomes (in use or refused).
lists() { i=0; while [ "$(grep -cE 'new digest list in use|list refused' "$D/guard.log")" -lt "$1" ]; do
  i=$((i+1)); [ $i -gt 2000 ] && { echo "NO-LIST-OUTCOME $1"; return 1; }; sleep 0.01; done; }
run() { name=$1; shift; "$@" >/dev/null 2>"$D/err"; rc=$?; echo "RESULT $name $rc $(tr '\n' ' ' < "$D/err")"; }
start_guard() {
  rm -f "$D/ready"
  "$UMD" --log info guard --digests "$D/list" --verify-key "$D/key.pub" --mount "$M" --json \
     --state "$D/guard.state" --ready-file "$D/ready" "$@" >>"$D/decisions" 2>>"$D/guard.log" &
  G=$!
  i=0
  while [ ! -e "$D/ready" ]; do
    i=$((i+1)); [ $i -gt 1000 ] && { echo GUARD-NOT-READY; exit 98; }
    kill -0 $G 2>/dev/null || { echo GUARD-DIED; cat "$D/guard.log"; exit 99; }
    sleep 0.01
  done
}
: > "$D/decisions"; : > "$D/guard.log"
"#,
        );
        if !args.is_empty() {
            writeln!(s, "start_guard {args}").unwrap();
        }
        s.push_str(body);
        // Never `kill 0`: G is unset when no guard was started.
        s.push_str("\nif [ -n \"${G:-}\" ]; then kill -TERM $G 2>/dev/null; wait $G 2>/dev/null; echo \"GUARD-EXIT $?\"; fi\n");
        let script = self.dir.join("script.sh");
        std::fs::write(&script, s).unwrap();
        let o = Command::new("unshare")
            .args(["-m", "--propagation", "private", "bash"])
            .arg(&script)
            .env_remove("RUST_LOG")
            .output()
            .expect("running unshare");
        let out = String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr);
        let mut results = HashMap::new();
        for l in out.lines() {
            let mut it = l.splitn(4, ' ');
            if it.next() == Some("RESULT") {
                let name = it.next().unwrap_or("").to_string();
                let rc = it.next().and_then(|r| r.parse().ok()).unwrap_or(-1);
                results.insert(name, (rc, it.next().unwrap_or("").to_string()));
            }
        }
        let read = |f: &str| std::fs::read_to_string(self.dir.join(f)).unwrap_or_default();
        let decisions = read("decisions")
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect::<Vec<serde_json::Value>>();
        let run = Run { results, out, decisions, log: read("guard.log") };
        assert!(!run.out.contains("GUARD-NOT-READY") && !run.out.contains("GUARD-DIED"), "{}", run.dump());
        assert!(!run.out.contains("MOUNT-FAILED"), "{}", run.dump());
        run
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// A lab with `listed` (the tiny program), `unlisted` (the same with other
/// bytes), `script.sh` (listed) and `other.sh` (unlisted), and a list of the
/// listed ones at `$D/list`.
fn standard(name: &str) -> Lab {
    let mut lab = Lab::new(name);
    lab.install("listed", &tiny());
    lab.install("unlisted", &tiny_other(1));
    lab.install("script.sh", SCRIPT);
    lab.install("other.sh", b"#!/bin/sh\n# not listed\nexit 0\n");
    lab.list("list", 1, 1_700_000_000, &[&tiny(), SCRIPT]);
    lab
}

#[test]
fn enforce_runs_listed_denies_unlisted_with_eperm_and_logs_each_decision() {
    if !available() {
        return;
    }
    let lab = standard("enforce");
    let r = lab.run(
        "--enforce",
        r#"run listed "$M/listed"
run unlisted "$M/unlisted"
run script "$M/script.sh"
run other_script "$M/other.sh"
run sh_other_script sh "$M/other.sh"
"#,
    );
    r.ran("listed");
    r.denied("unlisted");
    r.ran("script");
    r.denied("other_script");
    // `sh script` opens the script as a plain file: not an exec, not checked
    // without --open-perm (the documented scope).
    r.ran("sh_other_script");
    let d = r.decisions_for("listed");
    assert_eq!(d[0]["verdict"], "allow", "{}", r.dump());
    assert_eq!(d[0]["reason"], "listed");
    assert_eq!(d[0]["event"], "exec");
    assert_eq!(d[0]["packages"][0], "pkg0-1.0-1.x86_64");
    let want = Digest::of(HashAlgo::Sha256, &tiny());
    assert_eq!(d[0]["digest"], format!("sha256:{want}"));
    let d = r.decisions_for("unlisted");
    assert_eq!((d[0]["verdict"].as_str(), d[0]["reason"].as_str()), (Some("deny"), Some("not-listed")));
    assert!(d[0]["digest"].as_str().is_some_and(|s| s.starts_with("sha256:")));
    assert!(r.log.contains("denied"), "{}", r.dump());
    assert!(r.out.contains("GUARD-EXIT 0"), "{}", r.dump());
}

#[test]
fn audit_allows_unlisted_and_logs_that_it_would_deny() {
    if !available() {
        return;
    }
    let lab = standard("audit");
    let r = lab.run("--audit", "run unlisted \"$M/unlisted\"\nrun listed \"$M/listed\"\n");
    r.ran("unlisted");
    r.ran("listed");
    let d = r.decisions_for("unlisted");
    assert_eq!(
        (d[0]["verdict"].as_str(), d[0]["would_deny"].as_bool()),
        (Some("allow"), Some(true)),
        "{}",
        r.dump()
    );
    assert!(r.log.contains("would deny"), "{}", r.dump());
}

/// A listed program allowed once (and cached), then rewritten: the next exec
/// must be judged on the new content.
fn modified_binary_is_denied(cache: &str) {
    let lab = standard(&format!("modified-{cache}"));
    let r = lab.run(
        &format!("--enforce --cache {cache}"),
        r##"run first "$M/listed"
run second "$M/listed"
printf 'x' >> "$M/listed"
run appended "$M/listed"
cp "$M/script.sh" "$M/s2.sh"; run s2_first "$M/s2.sh"
printf '#' | dd of="$M/s2.sh" bs=1 seek=12 conv=notrunc 2>/dev/null
run s2_in_place "$M/s2.sh"
cp "$M/script.sh" "$M/s3.sh"; run s3_first "$M/s3.sh"
python3 -c 'import mmap,os,sys; f=os.open(sys.argv[1], os.O_RDWR); m=mmap.mmap(f, 0); m[12:13]=b"#"; m.close(); os.close(f)' "$M/s3.sh"
sleep 1
run s3_mmap "$M/s3.sh"
"##,
    );
    r.ran("first");
    r.ran("second");
    r.denied("appended");
    r.ran("s2_first");
    r.denied("s2_in_place");
    r.ran("s3_first");
    r.denied("s3_mmap");
    let seen = r.decisions_for("listed");
    match cache {
        // The second run never reached the guard: the ignore mark answered it.
        "kernel" => assert_eq!(seen.len(), 2, "{}", r.dump()),
        "user" => assert_eq!(seen[1]["reason"], "cached", "{}", r.dump()),
        _ => assert_eq!(seen[1]["reason"], "listed", "{}", r.dump()),
    }
}

#[test]
fn modified_binary_is_denied_with_kernel_cache() {
    if available() {
        modified_binary_is_denied("kernel");
    }
}

#[test]
fn modified_binary_is_denied_with_user_cache() {
    if available() {
        modified_binary_is_denied("user");
    }
}

#[test]
fn modified_binary_is_denied_without_cache() {
    if available() {
        modified_binary_is_denied("off");
    }
}

#[test]
fn files_over_the_size_bound_are_not_read_denied_in_enforce_and_logged_in_audit() {
    if !available() {
        return;
    }
    // The tiny program is 129 bytes; the script 17.
    let lab = standard("max-size");
    let r = lab.run(
        "--enforce --max-size 100",
        r#"run big "$M/listed"
run small "$M/script.sh"
kill -TERM $G; wait $G
start_guard --audit --max-size 100
run big_audit "$M/listed"
"#,
    );
    r.denied("big");
    r.ran("small");
    r.ran("big_audit");
    let d = r.decisions_for("listed");
    assert_eq!(
        (d[0]["verdict"].as_str(), d[0]["reason"].as_str()),
        (Some("deny"), Some("too-large")),
        "{}",
        r.dump()
    );
    assert!(d[0]["digest"].is_null(), "not read, so no digest\n{}", r.dump());
    assert_eq!(
        (d[1]["verdict"].as_str(), d[1]["would_deny"].as_bool()),
        (Some("allow"), Some(true)),
        "{}",
        r.dump()
    );
}

#[test]
fn open_perm_covers_sh_script() {
    if !available() {
        return;
    }
    let lab = standard("open-perm");
    let r = lab.run(
        "--enforce --open-perm",
        "run sh_other sh \"$M/other.sh\"\nrun sh_listed sh \"$M/script.sh\"\nrun listed \"$M/listed\"\n",
    );
    r.denied("sh_other");
    r.ran("sh_listed");
    r.ran("listed");
    assert!(r.decisions_for("other.sh").iter().any(|d| d["event"] == "open" && d["verdict"] == "deny"));
}

#[test]
fn hung_decider_is_answered_by_the_watchdog() {
    if !available() {
        return;
    }
    let mut lab = standard("watchdog");
    lab.install("hang", &tiny());
    let r = lab.run(
        "--enforce --test-hang-on hang --deadline-ms 300 --deciders 2",
        r#"t0=$(date +%s%N); run hang "$M/hang"; t1=$(date +%s%N)
echo "WAITED $(( (t1 - t0) / 1000000 ))"
run listed_after "$M/listed"
kill -TERM $G; wait $G
start_guard --enforce --test-hang-on hang --deadline-ms 300 --timeout-verdict allow
run hang_allowed "$M/hang"
"#,
    );
    r.denied("hang");
    let waited: u64 =
        r.out.lines().find_map(|l| l.strip_prefix("WAITED ")).and_then(|v| v.trim().parse().ok()).unwrap();
    assert!((250..5000).contains(&waited), "waited {waited} ms\n{}", r.dump());
    // The other decider still works.
    r.ran("listed_after");
    r.ran("hang_allowed");
    let timeouts: Vec<_> = r.decisions_for("hang").into_iter().filter(|d| d["reason"] == "timeout").collect();
    assert_eq!(timeouts.len(), 2, "{}", r.dump());
    assert!(r.log.contains("watchdog answered"), "{}", r.dump());
}

#[test]
fn killed_guard_leaves_the_system_usable() {
    if !available() {
        return;
    }
    let mut lab = standard("killed");
    lab.install("hang", &tiny());
    let r = lab.run(
        "--enforce --test-hang-on hang --deadline-ms 60000",
        r#"run before "$M/unlisted"
( "$M/hang"; echo "PENDING-EXEC $?" ) &
P=$!
sleep 0.3
kill -KILL $G; wait $G 2>/dev/null
wait $P
run after_unlisted "$M/unlisted"
run after_listed "$M/listed"
"#,
    );
    r.denied("before");
    // Fail-open: the exec that was waiting, and every later one, goes through.
    assert!(r.out.contains("PENDING-EXEC 0"), "{}", r.dump());
    r.ran("after_unlisted");
    r.ran("after_listed");
}

#[test]
fn reload_swaps_in_newer_lists_and_refuses_older_or_forged_ones() {
    if !available() {
        return;
    }
    let mut lab = standard("reload");
    lab.install("b", &tiny_other(2));
    lab.install("c", &tiny_other(3));
    let (b, c) = (tiny_other(2), tiny_other(3));
    lab.list("v2", 2, 1_700_000_100, &[&tiny(), &b]);
    lab.list("v1-old", 1, 1_700_000_200, &[&tiny(), &b, &c]);
    lab.list("v3-older-time", 3, 1_600_000_000, &[&tiny(), &b, &c]);
    let forged = lab.list("v9-forged", 9, 1_700_000_300, &[&tiny(), &b, &c]);
    let mut bytes = std::fs::read(&forged).unwrap();
    let n = bytes.len();
    bytes[n - 1] ^= 1; // break the signature
    std::fs::write(&forged, bytes).unwrap();
    let r = lab.run(
        "--enforce --reload-interval-ms 0",
        r#"run b_v1 "$M/b"
cp "$D/v2" "$D/list.new"; mv "$D/list.new" "$D/list"; kill -HUP $G; lists 1
run b_v2 "$M/b"
run c_v2 "$M/c"
cp "$D/v1-old" "$D/list.new"; mv "$D/list.new" "$D/list"; kill -HUP $G; lists 2
run c_after_old "$M/c"
cp "$D/v3-older-time" "$D/list.new"; mv "$D/list.new" "$D/list"; kill -HUP $G; lists 3
run c_after_older_time "$M/c"
cp "$D/v9-forged" "$D/list.new"; mv "$D/list.new" "$D/list"; kill -HUP $G; lists 4
run c_after_forged "$M/c"
run b_still "$M/b"
"#,
    );
    r.denied("b_v1");
    r.ran("b_v2");
    r.denied("c_v2");
    r.denied("c_after_old");
    r.denied("c_after_older_time");
    r.denied("c_after_forged");
    r.ran("b_still");
    assert_eq!(r.log.matches("new digest list in use").count(), 1, "{}", r.dump());
    assert_eq!(r.log.matches("list refused").count(), 3, "{}", r.dump());
    assert!(r.log.contains("signature does not verify"), "{}", r.dump());
}

#[test]
fn replaced_list_file_is_noticed_without_a_signal() {
    if !available() {
        return;
    }
    let mut lab = standard("replaced");
    lab.install("b", &tiny_other(2));
    lab.list("v2", 2, 1_700_000_100, &[&tiny(), &tiny_other(2)]);
    let r = lab.run(
        "--enforce --cache kernel --reload-interval-ms 100",
        r#"run b_v1 "$M/b"
run listed "$M/listed"
cp "$D/v2" "$D/list.new"; mv "$D/list.new" "$D/list"; lists 1
run b_v2 "$M/b"
run listed_v2 "$M/listed"
"#,
    );
    r.denied("b_v1");
    r.ran("listed");
    r.ran("b_v2");
    r.ran("listed_v2");
    assert!(r.log.contains("new digest list in use"), "{}", r.dump());
}

#[test]
fn mount_marks_see_one_mount_and_filesystem_marks_every_mount_of_it() {
    if !available() {
        return;
    }
    let lab = standard("scope");
    let r = lab.run(
        "--enforce",
        r#"mkdir -p "$D/bind"; mount --bind "$M" "$D/bind"
run via_mount "$M/unlisted"
run via_bind "$D/bind/unlisted"
kill -TERM $G; wait $G
start_guard --enforce --filesystem
run fs_via_mount "$M/unlisted"
run fs_via_bind "$D/bind/unlisted"
"#,
    );
    r.denied("via_mount");
    // Documented scope: a mount mark does not see another mount of the same
    // filesystem (here a bind mount).
    r.ran("via_bind");
    r.denied("fs_via_mount");
    r.denied("fs_via_bind");
}

#[test]
fn systemd_is_told_when_the_marks_are_in_place() {
    if !available() {
        return;
    }
    let lab = standard("notify");
    let r = lab.run(
        "",
        r#"python3 -c '
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM); s.bind(sys.argv[1]); s.settimeout(20)
with open(sys.argv[2], "w") as out:
    for _ in range(2):
        out.write(s.recv(256).decode() + " "); out.flush()
' "$D/notify.sock" "$D/notified" &
N=$!
i=0; while [ ! -S "$D/notify.sock" ]; do i=$((i+1)); [ $i -gt 2000 ] && { echo NO-NOTIFY-SOCKET; exit 96; }; sleep 0.01; done
export NOTIFY_SOCKET="$D/notify.sock"
start_guard --enforce
unset NOTIFY_SOCKET
run listed "$M/listed"
kill -TERM $G; wait $G
wait $N
echo "NOTIFIED $(cat "$D/notified")"
"#,
    );
    r.ran("listed");
    assert!(r.out.contains("NOTIFIED READY=1 STOPPING=1"), "{}", r.dump());
}

#[test]
fn root_mount_needs_the_explicit_flag() {
    if !available() {
        return;
    }
    let lab = standard("root");
    // Inside the private namespace anyway: a bug here must not guard the machine.
    let r = lab.run(
        "",
        r#""$UMD" guard --digests "$D/list" --verify-key "$D/key.pub" --mount / --enforce --state "$D/guard.state" \
  > /dev/null 2> "$D/err"
echo "ROOT-EXIT $? $(tr '\n' ' ' < "$D/err")"
"#,
    );
    assert!(r.out.contains("ROOT-EXIT 2") && r.out.contains("--allow-root-mount"), "{}", r.dump());
}

#[test]
fn a_forged_list_is_refused_at_start() {
    let lab = standard("forged-start");
    let path = lab.dir.join("list");
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[70] ^= 1;
    std::fs::write(&path, bytes).unwrap();
    let o = common::umd(&[
        "guard",
        "--digests",
        path.to_str().unwrap(),
        "--verify-key",
        lab.dir.join("key.pub").to_str().unwrap(),
        "--mount",
        lab.dir.to_str().unwrap(),
        "--enforce",
        "--state",
        lab.dir.join("guard.state").to_str().unwrap(),
    ]);
    let (_, err) = common::text(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("signature does not verify"), "{err}");
}

#[test]
fn guard_requires_audit_or_enforce() {
    let o =
        common::umd(&["guard", "--digests", "x", "--mount", "/tmp", "--state", "/nonexistent/guard.state"]);
    assert_eq!(o.status.code(), Some(2));
    let _ = Path::new("x");
}

/// Rewrites `$1` through a shared writable mapping (no modify event), closes
/// it and execs it at once: a tight race against any asynchronous invalidation.
/// The script's `exit 0` becomes `exit 5`: status 5 means it ran stale; 1 means EPERM.
const RACER: &str = r#"python3 -c '
import mmap, os, sys
p = sys.argv[1]
f = os.open(p, os.O_RDWR); m = mmap.mmap(f, 0); m[15:16] = b"5"; m.close(); os.close(f)
try:
    os.execv(p, [p])
except PermissionError:
    sys.exit(1)
' "#;

#[test]
fn mmap_rewrite_by_a_tight_racer_never_runs_on_a_stale_verdict() {
    if !available() {
        return;
    }
    let lab = standard("mmap-race");
    // Files only root can write get kernel ignore marks; others (here: owned by
    // nobody) the user-space table, which sees mapping stores in ctime.
    let body = format!(
        r#"for i in $(seq 1 25); do
cp "$M/script.sh" "$M/n$i.sh"; chown 65534 "$M/n$i.sh"; run n${{i}}_first "$M/n$i.sh"
run n$i {RACER} "$M/n$i.sh"
cp "$M/script.sh" "$M/r$i.sh"; run r${{i}}_first "$M/r$i.sh"
run r$i {RACER} "$M/r$i.sh"
done
"#
    );
    let r = lab.run("--enforce --cache kernel", &body);
    let count = |p: &str, rc: i32| (1..=25).filter(|i| r.rc(&format!("{p}{i}")) == rc).count();
    for i in 1..=25 {
        r.ran(&format!("n{i}_first"));
        r.ran(&format!("r{i}_first"));
    }
    assert_eq!((count("n", 5), count("n", 1)), (0, 25), "{}", r.dump());
    // Root-owned files: root is trusted (it can stop the guard); the write-close
    // invalidation is asynchronous, so a racing root may win. Reported, not asserted.
    eprintln!("root-owned, mmap-rewritten and exec'd at once: {}/25 ran stale", count("r", 5));
}

/// The guard hosted by `umd serve`: the service answers requests while its
/// guard denies unlisted programs; SIGHUP to the service reloads the guard's
/// list; SIGTERM stops both, the guard's marks first.
#[test]
fn the_service_hosts_the_guard_and_reloads_its_list_on_sighup() {
    if !available() {
        return;
    }
    let lab = standard("serve");
    lab.list("list2", 2, 1_700_000_100, &[&tiny(), SCRIPT, &tiny_other(1)]);
    std::fs::write(lab.dir.join("umd.toml"), "admin_group = \"0\"\n[drivers.sample]\neveryone = true\n")
        .unwrap();
    let r = lab.run(
        "",
        r#"L="$D/guard.log"
"$UMD" --log info --socket "$D/sock" serve --config "$D/umd.toml" --guard-digests "$D/list" \
   --guard-verify-key "$D/key.pub" --guard-mount "$M" --guard-mode enforce --guard-state "$D/guard.state" 2>>"$L" &
S=$!
i=0
until grep -q "umd service ready" "$L"; do
  i=$((i+1)); [ $i -gt 2000 ] && { echo SERVE-NOT-READY; exit 96; }
  kill -0 $S 2>/dev/null || { echo SERVE-DIED; exit 95; }
  sleep 0.01
done
run listed "$M/listed"
run unlisted "$M/unlisted"
run sample "$UMD" --socket "$D/sock" sample request --offset 7
cp "$D/list2" "$D/list.new" && mv "$D/list.new" "$D/list"
kill -HUP $S
lists 1
run unlisted_after_reload "$M/unlisted"
kill -TERM $S; wait $S; echo "SERVE-EXIT $?"
run unlisted_after_stop "$M/unlisted"
"#,
    );
    assert!(!r.out.contains("SERVE-NOT-READY") && !r.out.contains("SERVE-DIED"), "{}", r.dump());
    r.ran("listed");
    r.denied("unlisted");
    r.ran("sample");
    r.ran("unlisted_after_reload");
    assert!(r.out.contains("SERVE-EXIT 0"), "{}", r.dump());
    r.ran("unlisted_after_stop");
    assert!(r.log.contains("exec guard started") && r.log.contains("exec guard stopped"), "{}", r.dump());
}

/// Starts a guard on `$M` with the list `$D/$1` and stops it at once; prints
/// `START-$1 <exit status> <stderr>`. For the rollback tests.
const START_ONCE: &str = r#"start_once() {
  cp "$D/$1" "$D/list"; rm -f "$D/ready"
  "$UMD" --log info guard --digests "$D/list" --verify-key "$D/key.pub" --mount "$M" --enforce \
     --state "$D/guard.state" --ready-file "$D/ready" 2>"$D/start-err" &
  P=$!; i=0
  while [ ! -e "$D/ready" ] && kill -0 $P 2>/dev/null && [ $i -lt 1000 ]; do i=$((i+1)); sleep 0.01; done
  kill -TERM $P 2>/dev/null; wait $P; echo "START-$1 $? $(tr '\n' ' ' < "$D/start-err")"
  echo "STATE-$1 $(tr '\n' ' ' < "$D/guard.state" 2>/dev/null)"
}
"#;

fn line<'a>(r: &'a Run, prefix: &str) -> &'a str {
    r.out.lines().find(|l| l.starts_with(prefix)).unwrap_or_else(|| panic!("no {prefix} line\n{}", r.dump()))
}

#[test]
fn a_restarted_guard_refuses_an_older_validly_signed_list() {
    if !available() {
        return;
    }
    let lab = standard("rollback");
    // v1 lists `unlisted` (a package a later list dropped); v2 and v3 do not.
    lab.list("v1", 1, 1_700_000_000, &[&tiny(), SCRIPT, &tiny_other(1)]);
    lab.list("v2", 2, 1_700_000_100, &[&tiny(), SCRIPT]);
    lab.list("v3", 3, 1_700_000_200, &[&tiny(), SCRIPT]);
    let r = lab.run("", &format!("{START_ONCE}start_once v2\nstart_once v2\nstart_once v1\nstart_once v3\n"));
    // First run: no state file; v2 is accepted and recorded.
    assert!(line(&r, "START-v2 ").starts_with("START-v2 0"), "{}", r.dump());
    assert!(line(&r, "STATE-v2 ").contains("sequence 2"), "{}", r.dump());
    assert_eq!(r.out.matches("START-v2 0").count(), 2, "the same list again: {}", r.dump());
    // A restart with the older v1, validly signed: refused, exit 2, the
    // record unchanged.
    let v1 = line(&r, "START-v1 ");
    assert!(v1.starts_with("START-v1 2"), "{}", r.dump());
    assert!(v1.contains("sequence 1 is lower than 2") && v1.contains("guard.state"), "{v1}");
    assert!(line(&r, "STATE-v1 ").contains("sequence 2"), "{}", r.dump());
    // A newer one starts and is recorded.
    assert!(line(&r, "START-v3 ").starts_with("START-v3 0"), "{}", r.dump());
    assert!(line(&r, "STATE-v3 ").contains("sequence 3"), "{}", r.dump());
}

#[test]
fn a_reload_records_the_new_list_so_a_restart_cannot_go_back_past_it() {
    if !available() {
        return;
    }
    let lab = standard("rollback-reload");
    lab.list("v1", 1, 1_700_000_000, &[&tiny(), SCRIPT]);
    lab.list("v2", 2, 1_700_000_100, &[&tiny(), SCRIPT]);
    let r = lab.run(
        "--enforce --reload-interval-ms 0",
        &format!(
            r#"cp "$D/v2" "$D/list.new"; mv "$D/list.new" "$D/list"; kill -HUP $G; lists 1
echo "STATE-AFTER-RELOAD $(tr '\n' ' ' < "$D/guard.state")"
kill -TERM $G; wait $G; G=
{START_ONCE}start_once v1
"#
        ),
    );
    assert!(line(&r, "STATE-AFTER-RELOAD").contains("sequence 2"), "{}", r.dump());
    assert!(line(&r, "START-v1 ").starts_with("START-v1 2"), "{}", r.dump());
}

#[test]
fn a_corrupt_or_unreadable_state_file_stops_the_guard_and_is_never_reset() {
    if !available() {
        return;
    }
    let lab = standard("state-corrupt");
    lab.list("v1", 1, 1_700_000_000, &[&tiny(), SCRIPT]);
    let r = lab.run(
        "",
        &format!(
            r#"{START_ONCE}printf 'umd-guard-state 1\nkey zz\n' > "$D/guard.state"
start_once v1
rm "$D/guard.state"; mkdir "$D/guard.state"
start_once v1
rmdir "$D/guard.state"
start_once v1
"#
        ),
    );
    let starts: Vec<&str> = r.out.lines().filter(|l| l.starts_with("START-v1 ")).collect();
    assert_eq!(starts.len(), 3, "{}", r.dump());
    assert!(
        starts[0].starts_with("START-v1 2") && starts[0].contains("guard.state is corrupt"),
        "{}",
        r.dump()
    );
    assert!(starts[1].starts_with("START-v1 2") && starts[1].contains("cannot read it"), "{}", r.dump());
    // Removed by the administrator: a first run.
    assert!(starts[2].starts_with("START-v1 0"), "{}", r.dump());
    let states: Vec<&str> = r.out.lines().filter(|l| l.starts_with("STATE-v1")).collect();
    assert_eq!(states[0], "STATE-v1 umd-guard-state 1 key zz ", "not reset: {}", r.dump());
}

#[test]
fn the_service_hosted_guard_refuses_a_rollback_across_restarts() {
    if !available() {
        return;
    }
    let lab = standard("serve-rollback");
    lab.list("v1", 1, 1_700_000_000, &[&tiny(), SCRIPT, &tiny_other(1)]);
    lab.list("v2", 2, 1_700_000_100, &[&tiny(), SCRIPT]);
    std::fs::write(lab.dir.join("umd.toml"), "admin_group = \"0\"\n").unwrap();
    let r = lab.run(
        "",
        r#"L="$D/guard.log"
serve() {
  cp "$D/$1" "$D/list"; : > "$L"
  "$UMD" --log info --socket "$D/sock" serve --config "$D/umd.toml" --guard-digests "$D/list" \
     --guard-verify-key "$D/key.pub" --guard-mount "$M" --guard-mode enforce --guard-state "$D/guard.state" 2>>"$L" &
  S=$!; i=0
  until grep -q "umd service ready" "$L"; do
    i=$((i+1)); [ $i -gt 2000 ] && break
    kill -0 $S 2>/dev/null || break
    sleep 0.01
  done
  kill -TERM $S 2>/dev/null; wait $S; echo "SERVE-$1 $? $(grep -o 'refusing to roll back' "$L")"
}
serve v2
serve v1
"#,
    );
    assert!(line(&r, "SERVE-v2 ").starts_with("SERVE-v2 0"), "{}", r.dump());
    let v1 = line(&r, "SERVE-v1 ");
    assert!(v1.starts_with("SERVE-v1 2") && v1.contains("refusing to roll back"), "{}", r.dump());
}
