//! A handler written in C against the kernel sample's wire format (raw 4-byte
//! request, raw 128 KiB reply, nothing else) runs under the manager unchanged.

mod common;

use common::*;

#[test]
fn c_sample_handler_passes_the_kernel_selftest() {
    let Some(handler) = compile_c("sample_handler") else { return };
    let o = umd(&["sample", "selftest", "--handler", handler.to_str().expect("utf-8 path"), "--json"]);
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(0), "stdout {out}\nstderr {err}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("stdout is JSON");
    assert_eq!(v["requests"], 500);
    assert_eq!(v["passed"], 500, "{v}");
    assert_eq!(v["failed"], 0);
    assert_eq!(v["loads"], 10, "unloaded every 50 requests, so loaded on demand 10 times: {v}");
}

#[test]
fn c_sample_handler_serves_a_single_request() {
    let Some(handler) = compile_c("sample_handler") else { return };
    let o =
        umd(&["sample", "request", "--offset", "1024", "--handler", handler.to_str().expect("utf-8 path")]);
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(0), "stdout {out}\nstderr {err}");
    assert!(out.contains("offset 1024: ok"), "{out}");
}
