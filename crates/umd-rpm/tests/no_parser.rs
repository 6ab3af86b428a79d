//! The manager side links no parser of a hostile format: RPM headers, OpenPGP
//! packets (in keyrings, signatures and RPM headers) and the rpm database
//! (SQLite) are all parsed by sandboxed handlers. Checked with `cargo tree`
//! (normal dependencies) for every crate a trusted process links: the one
//! such test of the workspace.

#[test]
fn the_manager_crates_link_no_rpm_openpgp_or_sqlite_parser() {
    // What a trusted process links: the manager crates, the hash and list
    // crates they share, and the `umd` binary.
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let packages =
        ["umd", "umd-hash", "umd-rpm", "umd-pgp", "umd-service", "umd-digest-list", "umd-guard", "umd-cli"];
    for package in packages {
        let out = std::process::Command::new(&cargo)
            .args(["tree", "--offline", "-e", "normal", "--prefix", "none", "-p", package])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .output()
            .expect("running cargo tree");
        assert!(out.status.success(), "cargo tree failed: {}", String::from_utf8_lossy(&out.stderr));
        let tree = String::from_utf8_lossy(&out.stdout);
        for line in tree.lines() {
            let name = line.split_whitespace().next().unwrap_or("");
            let parser = name == "rpm"
                || name.ends_with("-handler")
                || name.starts_with("sequoia")
                || name == "pgp"
                || name == "rpgp"
                || name.starts_with("openpgp")
                || name.contains("sqlite")
                || name == "rusqlite";
            assert!(!parser, "{package} depends on the parser {name}");
        }
        if !["umd", "umd-hash", "umd-guard", "umd-digest-list"].contains(&package) {
            assert!(
                tree.lines().any(|l| l.starts_with("umd-wire ")),
                "{package}: the tree lists the wire crate"
            );
        }
    }
}
