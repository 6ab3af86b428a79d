//! The manager side links no parser of a hostile format: RPM headers, the
//! OpenPGP packets in them and the rpm database (SQLite) are all parsed by
//! sandboxed handlers. Checked with `cargo tree` (normal dependencies) for
//! every crate a trusted process links.

#[test]
fn the_manager_crates_link_no_rpm_openpgp_or_sqlite_parser() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    for package in ["umd", "umd-rpm", "umd-pgp", "umd-service", "umd-digest-list", "umd-guard", "umd-cli"] {
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
                || name.contains("sqlite")
                || name == "rusqlite";
            assert!(!parser, "{package} depends on the parser {name}");
        }
        if package != "umd" && package != "umd-guard" && package != "umd-digest-list" {
            assert!(
                tree.lines().any(|l| l.starts_with("umd-wire ")),
                "{package}: the tree lists the wire crate"
            );
        }
    }
}
