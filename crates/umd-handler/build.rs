//! Builds the runtime seccomp filters ahead of time.
//!
//! A handler starts cold: every page of code it runs for the first time is a page
//! fault. Building the filter at start-up runs all of `seccompiler` once per
//! handler (measured: ~100 us of a ~1 ms start); building it here leaves the
//! handler with a copy of the BPF to install. Only when the driver widens the list
//! does the handler build a filter itself. Skipped when cross-compiling (the build
//! script's architecture would be the wrong one).

use std::env;
use std::fs;
use std::path::PathBuf;

fn encode(filter: &[umd_seccomp::sock_filter]) -> Vec<u8> {
    let mut out = Vec::with_capacity(filter.len() * 8);
    for f in filter {
        out.extend_from_slice(&f.code.to_ne_bytes());
        out.push(f.jt);
        out.push(f.jf);
        out.extend_from_slice(&f.k.to_ne_bytes());
    }
    out
}

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rustc-check-cfg=cfg(umd_prebuilt_filters)");
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    if env::var("TARGET").ok() != env::var("HOST").ok() {
        return;
    }
    for (name, memfd) in [("runtime.bpf", false), ("runtime-memfd.bpf", true)] {
        let filters = umd_seccomp::build(umd_seccomp::Flavor::Runtime { memfd_replies: memfd }, &[])
            .expect("the allow-list builds");
        assert_eq!(filters.len(), 1, "the runtime flavour is one filter");
        fs::write(out.join(name), encode(&filters[0])).expect("writing the prebuilt filter");
    }
    println!("cargo:rustc-cfg=umd_prebuilt_filters");
}
