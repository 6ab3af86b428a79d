//! GnuPG in a private home, for tests that make keys and signatures.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// gpg with its own home directory; its agent is stopped when dropped.
pub struct Gpg {
    pub home: PathBuf,
}

impl Gpg {
    pub fn new(home: PathBuf) -> Gpg {
        std::fs::create_dir_all(&home).expect("gpg home");
        std::fs::set_permissions(&home, std::os::unix::fs::PermissionsExt::from_mode(0o700)).expect("chmod");
        Gpg { home }
    }

    /// Runs gpg in batch mode; panics with its stderr if it fails.
    pub fn run(&self, args: &[&str]) -> Vec<u8> {
        let out = Command::new("gpg")
            .arg("--homedir")
            .arg(&self.home)
            .args(["--batch", "--quiet", "--no-tty", "--pinentry-mode", "loopback", "--passphrase", ""])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("running gpg");
        assert!(out.status.success(), "gpg {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        out.stdout
    }

    /// Fingerprints of `uid`'s keys, primary first.
    pub fn fingerprints(&self, uid: &str) -> Vec<String> {
        let listing = String::from_utf8(self.run(&["--with-colons", "--list-keys", uid])).expect("UTF-8");
        listing
            .lines()
            .filter(|l| l.starts_with("fpr:"))
            .filter_map(|l| l.split(':').nth(9))
            .map(str::to_string)
            .collect()
    }

    /// Makes a key (`gpg --quick-gen-key`) and returns its fingerprint.
    pub fn key(&self, uid: &str, algo: &str, usage: &str, expire: &str, extra: &[&str]) -> String {
        let mut args = extra.to_vec();
        args.extend(["--quick-gen-key", uid, algo, usage, expire]);
        self.run(&args);
        self.fingerprints(uid).remove(0)
    }

    /// Exports `who`'s certificate as a binary keyring file (gpgv reads binary).
    pub fn export(&self, who: &str, to: &Path) {
        std::fs::write(to, self.run(&["--export", who])).expect("writing a keyring");
    }

    /// Signs `data` as each of `signers` (fingerprints with `!`): `how` is
    /// `--detach-sign`, `--clearsign`, ….
    pub fn sign(&self, signers: &[&str], how: &[&str], data: &Path, to: &Path) {
        let mut args: Vec<&str> = Vec::new();
        for s in signers {
            args.extend(["-u", s]);
        }
        args.extend(how);
        args.extend(["-o", to.to_str().expect("UTF-8 path"), data.to_str().expect("UTF-8 path")]);
        self.run(&args);
    }

    /// Revokes key `fpr` with the revocation certificate gpg made for it.
    pub fn revoke(&self, fpr: &str) {
        let rev = std::fs::read_to_string(self.home.join(format!("openpgp-revocs.d/{fpr}.rev")))
            .expect("gpg's revocation certificate");
        // gpg guards it against accidental import with a ':' before the armor line.
        let path = self.home.join(format!("{fpr}.rev.asc"));
        std::fs::write(&path, rev.replace(":-----BEGIN", "-----BEGIN")).expect("writing the revocation");
        self.run(&["--import", path.to_str().expect("UTF-8 path")]);
    }
}

impl Drop for Gpg {
    fn drop(&mut self) {
        // Stop the agent gpg started for this home before the directory goes.
        let _ =
            Command::new("gpgconf").arg("--homedir").arg(&self.home).args(["--kill", "gpg-agent"]).status();
    }
}
