//! Time, end to end and with the real clock: `umd serve` (whose verifier
//! caches the keyring between requests) and in-process `umd verify` must give
//! the same verdict at every moment — before a key expires and after, and on a
//! document signed after the service first used the keyring. Neither has a
//! time override: the key is made by gpg to expire a few seconds into the
//! test, and the test waits.

mod common;
mod svc;

use common::gpg::Gpg;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use svc::{Service, OPEN};

/// Seconds after its creation at which key A expires.
const EXPIRY: u64 = 15;

fn gpg_present() -> bool {
    if Command::new("gpg").arg("--version").stdout(Stdio::null()).status().is_ok() {
        return true;
    }
    if std::env::var("UMD_REQUIRE_SANDBOX").as_deref() == Ok("1") {
        panic!("UMD_REQUIRE_SANDBOX=1 but gpg is not installed (scripts/test installs gnupg)");
    }
    eprintln!("{0}\nSKIPPED: verify_time: gpg not installed\n{0}", "!".repeat(72));
    false
}

/// Clear-signs `text` as `who@umd.invalid` into `to`.
fn clearsign(gpg: &Gpg, who: &str, text: &str, to: &Path) {
    let input = gpg.home.join("text");
    std::fs::write(&input, text).unwrap();
    let signer = format!("{who}@umd.invalid");
    gpg.run(&["-u", &signer, "--clearsign", "-o", to.to_str().unwrap(), input.to_str().unwrap()]);
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

/// The exit status of `umd verify` in-process and through the service.
fn both(svc: &Service, keyring: &Path, doc: &Path) -> (i32, i32, String) {
    let args = ["verify", "--keyring", keyring.to_str().unwrap(), doc.to_str().unwrap()];
    let local = Command::new(svc::umd_bin()).args(args).env_remove("UMD_SOCKET").output().unwrap();
    let remote = svc.umd(&args);
    let text = format!(
        "in-process: {}{}\nservice: {}{}",
        String::from_utf8_lossy(&local.stdout),
        String::from_utf8_lossy(&local.stderr),
        String::from_utf8_lossy(&remote.stdout),
        String::from_utf8_lossy(&remote.stderr)
    );
    (local.status.code().unwrap_or(-1), remote.status.code().unwrap_or(-1), text)
}

#[test]
fn the_service_and_in_process_verify_agree_before_and_after_a_key_expires() {
    if !gpg_present() {
        return;
    }
    let svc = Service::start("time", OPEN);
    let home = svc.dir.join("gnupg");
    std::fs::create_dir(&home).unwrap();
    std::fs::set_permissions(&home, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
    let gpg = Gpg::new(home);
    // A expires EXPIRY seconds after it is made; B never.
    let made = now();
    gpg.run(&["--quick-gen-key", "A <a@umd.invalid>", "ed25519", "sign", &format!("seconds={EXPIRY}")]);
    gpg.run(&["--quick-gen-key", "B <b@umd.invalid>", "ed25519", "sign", "never"]);
    let keyring = svc.dir.join("keyring.gpg");
    std::fs::write(&keyring, gpg.run(&["--export"])).unwrap();
    let by_a = svc.dir.join("by-a.asc");
    clearsign(&gpg, "a", "Origin: umd time test\nSigned-By: A\n", &by_a);
    let by_b = svc.dir.join("by-b.asc");
    clearsign(&gpg, "b", "Origin: umd time test\nSigned-By: B\n", &by_b);

    // Before A expires: both good, both ways (the service now holds the
    // keyring, checked, in its cache).
    let (l, r, out) = both(&svc, &keyring, &by_a);
    assert_eq!((l, r), (0, 0), "A before its expiry\n{out}");
    let (l, r, out) = both(&svc, &keyring, &by_b);
    assert_eq!((l, r), (0, 0), "B\n{out}");
    assert!(
        now() < made + EXPIRY - 1,
        "the checks before the expiry took {} s, more than the key's {EXPIRY} s: the machine is too slow for \
         this test to mean anything",
        now() - made
    );

    // A document signed after the service first used the keyring (its
    // creation time is later than any time the service saw before).
    std::thread::sleep(Duration::from_secs(2));
    let later = svc.dir.join("by-b-later.asc");
    clearsign(&gpg, "b", "Origin: umd time test\nSigned-By: B, later\n", &later);
    let (l, r, out) = both(&svc, &keyring, &later);
    assert_eq!((l, r), (0, 0), "a document signed after the keyring was first used\n{out}");

    // After A expires: both refuse its document as bad (exit 1), the service
    // with the keyring it cached while A was valid.
    while now() < made + EXPIRY + 1 {
        std::thread::sleep(Duration::from_millis(200));
    }
    let (l, r, out) = both(&svc, &keyring, &by_a);
    assert_eq!((l, r), (1, 1), "A after its expiry\n{out}");
    assert!(out.contains("expired at 20"), "the expiry is printed as an RFC 3339 time\n{out}");
    let (l, r, out) = both(&svc, &keyring, &by_b);
    assert_eq!((l, r), (0, 0), "B is not affected\n{out}");
}
