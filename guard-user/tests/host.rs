//! Honest degradation, on the kernel `cargo test` runs on.
//!
//! rtguard must never claim to enforce what the kernel doesn't enforce. On a kernel that
//! refuses BPF LSM programs (such as a locked-down host) it must say so in one line and
//! exit 3, or run degraded when asked. On a kernel that accepts them, the claim is checked
//! against the kernel: the protected file really can't be removed.

mod common;

use common::*;

#[test]
fn rtguard_claims_enforcement_only_when_the_kernel_enforces() {
    if !is_root() {
        eprintln!("skipping: loading BPF programs needs root");
        return;
    }
    let s = scratch();
    let target = s.protected.to_str().unwrap();
    let audit = s.dir.path().join("audit.jsonl");
    let audit = audit.to_str().unwrap();
    match start_guard(&["--protect", target, "--audit-log", audit]) {
        Started::Ready(guard) => {
            assert_eq!(guard.status, "enforcing");
            let err = std::fs::remove_file(&s.protected)
                .expect_err("rtguard said enforcing, yet the protected file could be removed");
            assert_eq!(err.raw_os_error(), Some(1));
            assert_eq!(sha256(&s.protected), s.protected_sha256);
        }
        Started::Exited { status, stderr } => {
            assert_eq!(
                status.code(),
                Some(3),
                "exit status for unavailable enforcement\n{stderr}"
            );
            let first = stderr
                .lines()
                .find(|l| l.starts_with("rtguard: "))
                .unwrap_or_default();
            assert!(
                first.starts_with("rtguard: enforcement unavailable: "),
                "first line must say enforcement is unavailable, got:\n{stderr}"
            );
            assert!(
                !stderr.contains("enforcing"),
                "claimed to enforce:\n{stderr}"
            );
            degraded_run_is_honest(&s, audit);
        }
    }
}

/// With --allow-degraded rtguard keeps running, says it is degraded, blocks nothing, and
/// records what it would have blocked, observed through syscall tracepoints.
fn degraded_run_is_honest(s: &Scratch, audit: &str) {
    let target = s.protected.to_str().unwrap();
    let guard = start_ready_guard(&[
        "--protect",
        target,
        "--allow-degraded",
        "--audit-log",
        audit,
    ]);
    assert!(
        guard.status.starts_with("degraded: "),
        "readiness status: {}",
        guard.status
    );
    // `rtguard status` says so too, with its "not enforcing" exit status.
    let (code, json) = guard.status_cmd();
    assert_eq!(code, 3, "{json}");
    assert!(json.contains(r#""state": "degraded""#), "{json}");

    // Nothing is blocked, but the attempt is observed and recorded as not enforced.
    let rm = sh(&format!("rm -f {target}"));
    assert!(rm.status.success(), "degraded mode must not block");
    assert!(!s.protected.exists());
    let record = || {
        std::fs::read_to_string(audit)
            .unwrap_or_default()
            .lines()
            .find(|l| l.contains(r#""decision":"would-block""#))
            .map(str::to_owned)
    };
    eventually("a would-block record for the rm", || record().is_some());
    let record: serde_json::Value = serde_json::from_str(&record().unwrap()).unwrap();
    assert_eq!(record["enforced"], false, "{record}");
    assert_eq!(record["op"], "unlink", "{record}");
    assert_eq!(record["rule"], "command-line-paths", "{record}");
    assert_eq!(record["target"]["path"], target, "{record}");
    let argv: Vec<&str> = record["actor"]["argv"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert_eq!(argv, ["rm", "-f", target], "{record}");

    let (status, log) = guard.stop();
    assert!(status.success(), "{log}");
    assert!(log.contains("running degraded"), "{log}");
    assert!(!log.contains("enforcing"), "claimed to enforce:\n{log}");
}
