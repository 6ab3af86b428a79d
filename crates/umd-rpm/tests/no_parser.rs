//! The manager side links no RPM header parser: parsing hostile headers is the
//! sandboxed handler's job. Checked with `cargo tree` (normal dependencies).

#[test]
fn the_manager_crates_depend_on_no_rpm_parser() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    for package in ["umd-rpm", "umd-cli"] {
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
                !(name == "rpm" || name == "umd-rpm-handler" || name.starts_with("sequoia")),
                "{package} depends on the parser {name}"
            );
        }
        assert!(
            tree.lines().any(|l| l.starts_with("umd-rpm-wire ")),
            "{package}: the tree lists the wire crate"
        );
    }
}
