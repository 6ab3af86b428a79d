//! The `umd` command line: exit statuses (0 success, 1 a negative verdict, 2 usage
//! or system error), messages people can act on, and JSON that parses.

mod common;

use common::*;

#[test]
fn out_of_range_offset_exits_2_before_any_handler_runs() {
    // The handler path does not exist: had a handler been loaded, that would be
    // the complaint. The offset is refused first.
    let o = umd(&["sample", "request", "--offset", "131072", "--handler", "/nonexistent/umd-handler"]);
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(2), "stdout {out}\nstderr {err}");
    assert!(err.contains("offset 131072 is outside the sample reply (valid offsets: 0..131072)"), "{err}");
    assert!(!err.contains("nonexistent"), "no handler was loaded: {err}");
    assert!(out.is_empty(), "{out}");
}

#[test]
fn good_request_exits_0() {
    let o = umd(&["sample", "request", "--offset", "4096"]);
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(0), "stdout {out}\nstderr {err}");
    assert!(out.contains("offset 4096: ok"), "{out}");
}

#[test]
fn json_request_output_parses() {
    let o = umd(&["sample", "request", "--offset", "131071", "--json"]);
    assert_eq!(o.status.code(), Some(0), "{:?}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("stdout is JSON");
    assert_eq!(v["verdict"], "ok");
    assert_eq!(v["offset"], 131_071);
    assert_eq!(v["driver"], "sample");
    assert!(v["latency_ns"].as_u64().is_some_and(|ns| ns > 0), "{v}");
}

#[test]
fn json_selftest_output_parses_and_counts_on_demand_loads() {
    let o = umd(&["sample", "selftest", "--iterations", "100", "--unload-every", "10", "--json"]);
    assert_eq!(o.status.code(), Some(0), "{:?}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("stdout is JSON");
    assert_eq!(v["requests"], 100);
    assert_eq!(v["passed"], 100);
    assert_eq!(v["failed"], 0);
    assert_eq!(v["loads"], 10);
    assert_eq!(v["unloads"], 9);
    assert!(v["failures"].as_array().is_some_and(Vec::is_empty), "{v}");
}

#[test]
fn umd_require_sandbox_1_makes_the_cli_require_every_sandbox_layer() {
    // The library reads no environment variable: the CLI turns the variable into
    // the policy's `require_all`, which the JSON summary shows.
    let require_all = |value: Option<&str>| {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_umd"));
        cmd.args(["sample", "selftest", "--iterations", "1", "--json"]).env_remove("RUST_LOG");
        match value {
            Some(v) => cmd.env("UMD_REQUIRE_SANDBOX", v),
            None => cmd.env_remove("UMD_REQUIRE_SANDBOX"),
        };
        let o = cmd.output().expect("running the umd binary");
        assert_eq!(o.status.code(), Some(0), "{:?}", text(&o));
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("stdout is JSON");
        v["policy"]["policy"]["require_all"].as_bool().unwrap_or_else(|| panic!("no require_all in {v}"))
    };
    assert!(require_all(Some("1")));
    assert!(!require_all(Some("0")));
    assert!(!require_all(None));
}

#[test]
fn help_and_version_exit_0() {
    let o = umd(&["--help"]);
    let (out, _) = text(&o);
    assert_eq!(o.status.code(), Some(0));
    assert!(out.contains("Usage: umd"), "{out}");
    assert!(out.contains("Exit status"), "--help documents exit statuses: {out}");
    let o = umd(&["--version"]);
    let (out, _) = text(&o);
    assert_eq!(o.status.code(), Some(0));
    assert!(out.starts_with("umd ") && out.contains(env!("CARGO_PKG_VERSION")), "{out}");
    let o = umd(&["sample", "request", "--help"]);
    assert_eq!(o.status.code(), Some(0));
}

#[test]
fn usage_errors_exit_2() {
    for args in [&["frobnicate"][..], &["sample", "request"][..], &["sample", "request", "--offset", "x"][..]]
    {
        let o = umd(args);
        let (_, err) = text(&o);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.starts_with("error:"), "{args:?}: {err}");
    }
}

#[test]
fn script_as_handler_is_refused_with_exit_2() {
    let script = scratch().join(format!("handler-{}.sh", std::process::id()));
    std::fs::write(&script, "#!/bin/sh\nexit 0\n").expect("writing the script");
    let o = umd(&["sample", "request", "--offset", "1", "--handler", script.to_str().expect("utf-8 path")]);
    let _ = std::fs::remove_file(&script);
    let (_, err) = text(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("driver not available") && err.contains("script"), "{err}");
}

#[test]
fn missing_handler_file_exits_2() {
    let o = umd(&["sample", "request", "--offset", "1", "--handler", "/nonexistent/umd-handler"]);
    let (_, err) = text(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("/nonexistent/umd-handler"), "{err}");
}

#[test]
fn wrong_byte_handler_is_a_negative_verdict_exit_1() {
    let Some(handler) = compile_c("wrong_byte_handler") else { return };
    let h = handler.to_str().expect("utf-8 path");
    let o = umd(&["sample", "request", "--offset", "1024", "--handler", h]);
    let (_, err) = text(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("reply rejected") && err.contains("byte 1024"), "{err}");
    let o = umd(&["sample", "request", "--offset", "1024", "--handler", h, "--json"]);
    assert_eq!(o.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("stdout is JSON");
    assert_eq!(v["verdict"], "error");
    assert!(v["error"].as_str().is_some_and(|e| e.contains("reply rejected")), "{v}");
    let o = umd(&["sample", "selftest", "--iterations", "20", "--handler", h]);
    let (out, _) = text(&o);
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert!(out.contains("FAIL"), "{out}");
}
