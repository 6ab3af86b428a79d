//! The manager side must not link an OpenPGP parser: parsing hostile packets is
//! the sandboxed handler's job. Checked with `cargo tree`, as the issue asks.

#[test]
fn the_manager_crates_depend_on_no_openpgp_parser() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    for package in ["umd-pgp", "umd-cli"] {
        let out = std::process::Command::new(&cargo)
            .args(["tree", "--offline", "-e", "normal", "--prefix", "none", "-p", package])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .output()
            .expect("running cargo tree");
        assert!(out.status.success(), "cargo tree failed: {}", String::from_utf8_lossy(&out.stderr));
        let tree = String::from_utf8_lossy(&out.stdout);
        for line in tree.lines() {
            let name = line.split_whitespace().next().unwrap_or("");
            assert!(
                !(name.starts_with("sequoia")
                    || name == "pgp"
                    || name == "rpgp"
                    || name.starts_with("openpgp")),
                "{package} depends on the OpenPGP parser {name}"
            );
        }
        assert!(tree.lines().any(|l| l.starts_with("rsa ")), "{package}: the tree lists its crypto crates");
    }
}
