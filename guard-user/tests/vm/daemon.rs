//! The daemon around the kernel programs: the startup self-test, `rtguard status`, and
//! SIGHUP reloads that never drop the running policy for a broken one.

use std::path::Path;

use nix::sys::signal::Signal;

use crate::common::*;

/// A policy protecting the given files (each in its own `[[paths]]` rule).
fn policy_text(files: &[&Path]) -> String {
    let mut text = String::from("environment = \"test\"\nmode = \"enforce\"\n");
    for (i, f) in files.iter().enumerate() {
        text.push_str(&format!(
            "\n[[paths]]\nname = \"file-{i}\"\npaths = [\"{}\"]\n",
            f.display()
        ));
    }
    text
}

#[test]
fn self_test_and_status_report_enforcement() {
    let s = scratch();
    let audit = s.dir.path().join("audit.jsonl");
    let guard = start_ready_guard(&[
        "--protect",
        s.protected.to_str().unwrap(),
        "--audit-log",
        audit.to_str().unwrap(),
    ]);
    let (code, json) = guard.status_cmd();
    assert_eq!(code, 0, "status exit for an enforcing guard: {json}");
    assert!(json.contains(r#""state": "enforcing""#), "{json}");
    let status: serde_json::Value = serde_json::from_str(&json).unwrap();
    let results = status["self_test"].as_array().expect("self-test results");
    let layers: Vec<&str> = results
        .iter()
        .filter(|r| r["passed"] == true)
        .filter_map(|r| r["layer"].as_str())
        .collect();
    assert_eq!(layers, ["file", "exec", "process", "netfilter"], "{json}");
    assert!(
        json.contains("path_unlink") && json.contains("vfs_rename_done"),
        "attached programs listed: {json}"
    );
    assert!(json.contains(r#""tree_cache": "on""#), "{json}");
    // The protected file is on /tmp's tmpfs, its ancestors on the root filesystem: the
    // kernel's identity of an object on each matches the resolved one.
    let identities = status["identities"].as_array().expect("identity checks");
    assert!(identities.len() >= 2, "{json}");
    assert!(identities.iter().all(|c| c["passed"] == true), "{json}");
    assert!(
        json.contains(&format!(r#""mechanism": "{}""#, booted_mechanism().0)),
        "{json}"
    );
    // What each program cost the verifier: start-up time, for the log.
    for p in status["usage"]["programs"].as_array().into_iter().flatten() {
        println!(
            "  verified {:>8} instructions: {}",
            p["verified_insns"], p["name"]
        );
    }
    // Where start-up went, step by step: the loader reports its own steps.
    let steps: Vec<(&str, u64)> = status["startup"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| Some((s["step"].as_str()?, s["micros"].as_u64()?)))
        .collect();
    for (step, micros) in &steps {
        println!("  start-up {step:>9}: {:>6} ms", micros / 1000);
    }
    for step in [
        "policy",
        "btf",
        "object",
        "verify",
        "attach",
        "self-test",
        "maps",
    ] {
        assert!(
            steps.iter().any(|(s, _)| *s == step),
            "start-up step {step}: {json}"
        );
    }
    let status_file = guard.status_file.clone();
    drop(guard);
    assert_eq!(
        rtguard_status(&status_file).0,
        1,
        "status after the daemon stopped"
    );

    let records = std::fs::read_to_string(&audit).unwrap();
    for layer in ["file", "exec", "process", "netfilter"] {
        assert!(
            records
                .lines()
                .any(|r| r.contains(r#""decision":"self-test""#)
                    && r.contains(&format!(r#""op":"self-test-{layer}""#))
                    && r.contains(r#""enforced":true"#)),
            "the {layer} self-test is in the audit log:\n{records}"
        );
    }
}

#[test]
fn status_in_audit_mode_is_not_enforcing() {
    let s = scratch();
    let guard = start_ready_guard(&[
        "--protect",
        s.protected.to_str().unwrap(),
        "--mode",
        "audit",
    ]);
    let (code, json) = guard.status_cmd();
    assert_eq!(code, 3, "{json}");
    assert!(json.contains(r#""state": "auditing""#), "{json}");
}

#[test]
fn sighup_with_a_broken_policy_keeps_the_running_one() {
    let s = scratch();
    let policy = s.dir.path().join("policy.toml");
    let audit = s.dir.path().join("audit.jsonl");
    std::fs::write(&policy, policy_text(&[&s.protected])).unwrap();
    let guard = start_ready_guard(&[
        "--policy",
        policy.to_str().unwrap(),
        "--audit-log",
        audit.to_str().unwrap(),
    ]);
    assert!(write_open_refused(&s.protected));

    std::fs::write(&policy, "environment = \"test\"\nmode = \"enforc\"\n").unwrap();
    guard.signal(Signal::SIGHUP);
    eventually("a reload-refused record", || {
        std::fs::read_to_string(&audit).is_ok_and(|r| r.contains(r#""op":"reload-refused""#))
    });
    // Still protected, by the old policy.
    expect_denied(&format!("rm -f {}", s.protected.display()));
    assert_eq!(sha256(&s.protected), s.protected_sha256);
    let (status, log) = guard.stop();
    assert!(status.success(), "{log}");
    assert!(
        log.contains("reload refused, the running policy stays in force"),
        "{log}"
    );
    assert!(
        log.contains(":2:8:"),
        "the error points at line 2, column 8:\n{log}"
    );
}

#[test]
fn sighup_with_a_new_policy_protects_what_it_adds() {
    let s = scratch();
    let policy = s.dir.path().join("policy.toml");
    std::fs::write(&policy, policy_text(&[&s.protected])).unwrap();
    let guard = start_ready_guard(&["--policy", policy.to_str().unwrap()]);
    assert!(!write_open_refused(&s.sibling), "not protected yet");

    std::fs::write(&policy, policy_text(&[&s.protected, &s.sibling])).unwrap();
    guard.signal(Signal::SIGHUP);
    eventually("the added file is protected", || {
        write_open_refused(&s.sibling)
    });
    expect_denied(&format!("rm -f {}", s.sibling.display()));
    assert!(
        write_open_refused(&s.protected),
        "the first file stays protected"
    );
}

/// A reload that adds a tree over a directory the guard has already seen unprotected
/// (and remembered so) protects it at once: the reload invalidates what was remembered.
#[test]
fn sighup_with_a_new_tree_protects_a_directory_already_written_in() {
    let s = scratch();
    let policy = s.dir.path().join("policy.toml");
    let work = s.dir.path().join("work/deeper");
    let other = s.dir.path().join("other");
    std::fs::create_dir_all(&work).unwrap();
    std::fs::create_dir_all(&other).unwrap();
    let kept = work.join("kept");
    std::fs::write(&kept, b"kept\n").unwrap();
    // A tree on the same filesystem from the start, so writes there are checked (and
    // remembered) from the start.
    let tree = |name: &str, dir: &Path| {
        format!(
            "\n[[trees]]\nname = \"{name}\"\npaths = [\"{}\"]\n",
            dir.display()
        )
    };
    let before = policy_text(&[&s.protected]) + &tree("other", &other);
    std::fs::write(&policy, &before).unwrap();
    let guard = start_ready_guard(&["--policy", policy.to_str().unwrap()]);
    let w = work.display();
    expect_allowed(&format!("echo x > {w}/scratch && rm {w}/scratch"));
    assert!(!write_open_refused(&kept), "not protected yet");

    let after = before + &tree("work", &s.dir.path().join("work"));
    std::fs::write(&policy, after).unwrap();
    guard.signal(Signal::SIGHUP);
    eventually("the new tree is protected", || write_open_refused(&kept));
    expect_denied(&format!("rm -f {}", kept.display()));
    assert_eq!(std::fs::read(&kept).unwrap(), b"kept\n");
}

#[test]
fn an_event_flood_is_logged_or_counted_and_the_daemon_survives() {
    const ATTEMPTS: u64 = 100_000;
    let s = scratch();
    let audit = s.dir.path().join("audit.jsonl");
    let guard = start_ready_guard(&[
        "--protect",
        s.protected.to_str().unwrap(),
        "--audit-log",
        audit.to_str().unwrap(),
    ]);
    let mut refused = 0u64;
    for _ in 0..ATTEMPTS {
        if std::fs::remove_file(&s.protected).is_err_and(|e| e.raw_os_error() == Some(1)) {
            refused += 1;
        }
    }
    assert_eq!(refused, ATTEMPTS, "every attempt refused");
    assert_eq!(
        guard.status_cmd().0,
        0,
        "the daemon still answers and still enforces"
    );
    let (status, log) = guard.stop();
    assert!(status.success(), "{log}");

    // Every attempt is either a record or counted in some record's dropped_since_last,
    // across the log and its rotations.
    let (mut recorded, mut dropped) = (0u64, 0u64);
    for entry in std::fs::read_dir(s.dir.path()).unwrap().flatten() {
        if !entry
            .file_name()
            .to_string_lossy()
            .starts_with("audit.jsonl")
        {
            continue;
        }
        for line in std::fs::read_to_string(entry.path()).unwrap().lines() {
            let record: serde_json::Value = serde_json::from_str(line).unwrap();
            dropped += record["dropped_since_last"].as_u64().unwrap_or(0);
            if record["decision"] == "blocked" && record["op"] == "unlink" {
                recorded += 1;
            }
        }
    }
    println!("  flood: {recorded} recorded, {dropped} dropped, {ATTEMPTS} attempts");
    assert_eq!(
        recorded + dropped,
        ATTEMPTS,
        "{recorded} recorded + {dropped} dropped"
    );
    assert_eq!(sha256(&s.protected), s.protected_sha256);
}

#[test]
fn the_systemd_unit_verifies() {
    // Installed by the image where the package installs it, next to /usr/bin/rtguard.
    let out = std::process::Command::new("systemd-analyze")
        .args(["verify", "/usr/lib/systemd/system/rtguard.service"])
        .output()
        .expect("systemd-analyze");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "systemd-analyze verify: {stderr}");
    assert!(
        !stderr.contains("rtguard.service:"),
        "warnings about the unit: {stderr}"
    );
}

#[test]
fn a_maintenance_window_lets_dpkg_replace_files_until_it_closes_or_expires() {
    // A policy without `[[commands]]`: only the file layer is involved here. The exec
    // layer's side of windows is in exec_layer.rs.
    let s = scratch();
    let state_dir = s.dir.path().join("state");
    let audit = s.dir.path().join("audit.jsonl");
    let policy = s.dir.path().join("policy.toml");
    std::fs::write(
        &policy,
        "environment = \"test\"\nmode = \"enforce\"\n\n[[packages]]\nname = \"runtime\"\n\
         packages = [\"containerd\"]\nupgrade = \"window\"\n",
    )
    .unwrap();
    let guard = start_ready_guard(&[
        "--policy",
        policy.to_str().unwrap(),
        "--audit-log",
        audit.to_str().unwrap(),
        "--state-dir",
        state_dir.to_str().unwrap(),
    ]);
    let maintenance = |args: &[&str]| maintenance(&guard, &state_dir, args);

    expect_denied("rm -f /usr/bin/containerd");
    let said = maintenance(&[
        "open",
        "--package",
        "containerd",
        "--for",
        "10m",
        "--reason",
        "test upgrade",
    ]);
    assert!(said.contains("notified"), "{said}");
    wait_for_window(&guard, "containerd", true);
    assert!(maintenance(&["list"]).contains("containerd"));

    // In the window: an upgrade through dpkg passes, and the new files are protected.
    expect_allowed(&format!("dpkg -i {}", containerd_deb().display()));
    wait_until_protected(Path::new("/usr/bin/containerd"));
    // Removal is still refused: the window was opened without --allow-removal.
    expect_denied("rm -f /usr/bin/containerd");

    maintenance(&["close", "--package", "containerd"]);
    wait_for_window(&guard, "containerd", false);

    maintenance(&[
        "open",
        "--package",
        "containerd",
        "--for",
        "2s",
        "--reason",
        "short",
    ]);
    eventually("the short window expires", || {
        std::fs::read_to_string(&audit).is_ok_and(|r| r.contains(r#""op":"maintenance-expired""#))
    });
    wait_for_window(&guard, "containerd", false);

    let (status, log) = guard.stop();
    assert!(status.success(), "{log}");
    let records = std::fs::read_to_string(&audit).unwrap();
    for op in [
        "maintenance-open",
        "maintenance-close",
        "maintenance-expired",
    ] {
        assert!(
            records.contains(&format!(r#""op":"{op}""#)),
            "no {op} record:\n{records}"
        );
    }
    assert!(
        records.contains(r#""decision":"allowed-upgrade""#),
        "{records}"
    );
    assert!(
        records.contains("test upgrade"),
        "the reason is recorded:\n{records}"
    );
    expect_verified(&["containerd"]);
    assert_eq!(dpkg_status("containerd"), "install ok installed");
}
