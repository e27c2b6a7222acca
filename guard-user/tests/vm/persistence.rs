//! Persistence and self-protection: with `--pin` the programs outlive the daemon (kill -9,
//! a stop), a restarted daemon takes them over without a gap and records what they
//! decided meanwhile, and `rtguard unload` removes them. Under the production policy rtguard
//! protects itself: its binary, unit, policies and pins, and its process.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use crate::common::*;

/// The pinned programs' generation directories under `dir`.
fn generations(dir: &Path) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|entries| entries.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    found.sort();
    found
}

/// Pinned links below `dir`.
fn pinned_links(dir: &Path) -> usize {
    generations(dir)
        .iter()
        .map(|g| std::fs::read_dir(g.join("links")).map_or(0, |l| l.count()))
        .sum()
}

#[test]
fn pinned_programs_outlive_kill_9_and_a_restart_takes_them_over() {
    let s = scratch();
    let audit = s.dir.path().join("audit.jsonl");
    let policy = s.dir.path().join("policy.toml");
    std::fs::write(
        &policy,
        format!(
            "environment = \"test\"\nmode = \"enforce\"\n\n[[paths]]\nname = \"canary\"\npaths = [\"{}\"]\n",
            s.protected.display()
        ),
    )
    .unwrap();
    let pin_dir = PathBuf::from("/sys/fs/bpf/rtguard-test-persistence");
    let _cleanup = UnloadOnDrop {
        pin_dir: pin_dir.clone(),
        audit: audit.clone(),
    };
    let args = [
        "--policy",
        policy.to_str().unwrap(),
        "--audit-log",
        audit.to_str().unwrap(),
        "--pin",
        "--pin-dir",
        pin_dir.to_str().unwrap(),
    ];

    let first = start_ready_guard(&args);
    let (_, json) = first.status_cmd();
    assert!(
        json.contains(r#""pinned": "/sys/fs/bpf/rtguard-test-persistence/gen-"#),
        "{json}"
    );
    let status_file = first.status_file.clone();
    let first_generation = generations(&pin_dir);
    assert_eq!(first_generation.len(), 1, "{first_generation:?}");
    let links = pinned_links(&pin_dir);
    assert!(links >= 9, "every program's link is pinned: {links}");

    // A crash: enforcement stays.
    first.kill();
    expect_denied(&format!("rm -f {}", s.protected.display()));
    assert_eq!(sha256(&s.protected), s.protected_sha256);
    let status = Command::new(rtguard_bin())
        .args(["status", "--status-file"])
        .arg(&status_file)
        .arg("--pin-dir")
        .arg(&pin_dir)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&status.stderr);
    assert_eq!(status.status.code(), Some(1), "{said}");
    assert!(
        said.contains(&format!("{links} program(s) pinned")),
        "{said}"
    );

    // A restart takes the pins over: one generation again, the new one, and the refusal
    // made while no daemon ran is in the audit log.
    let second = start_ready_guard(&args);
    let second_generation = generations(&pin_dir);
    assert_eq!(second_generation.len(), 1, "{second_generation:?}");
    assert_ne!(second_generation, first_generation);
    let records = std::fs::read_to_string(&audit).unwrap();
    assert!(
        records.contains(r#""op":"adopt""#)
            && records.contains("1 decision(s) they queued recorded"),
        "{records}"
    );
    // rm is long gone by then: its command line is the one the kernel copied.
    let argv = format!(r#""argv":["rm","-f","{}"]"#, s.protected.display());
    assert!(
        records
            .lines()
            .any(|r| r.contains(r#""decision":"blocked""#)
                && r.contains(r#""op":"unlink""#)
                && r.contains(&argv)),
        "the refusal made without a daemon is recorded, with its actor:\n{records}"
    );
    expect_denied(&format!("rm -f {}", s.protected.display()));

    // unload refuses while a daemon runs.
    let (code, said) = unload(&pin_dir, &audit, &second.status_file);
    assert_eq!(code, 1, "{said}");
    assert!(said.contains("stop it first"), "{said}");

    // A stop with --pin leaves the programs attached.
    let (exit, log) = second.stop();
    assert!(exit.success(), "{log}");
    assert!(log.contains("stay attached"), "{log}");
    expect_denied(&format!("rm -f {}", s.protected.display()));

    let (code, said) = unload(&pin_dir, &audit, &status_file);
    assert_eq!(code, 0, "{said}");
    assert!(
        said.contains(&format!("unloaded {links} pinned program(s)")),
        "{said}"
    );
    assert!(!pin_dir.exists(), "the pin directory is gone");
    expect_allowed(&format!("rm -f {}", s.protected.display()));
    assert!(!s.protected.exists());
    let records = std::fs::read_to_string(&audit).unwrap();
    assert!(records.contains(r#""op":"unload""#), "{records}");
}

#[test]
fn the_production_policy_protects_rtguard_itself() {
    const MARKER: &str = "/etc/rtguard/unload-marker";
    let dir = tempfile::tempdir().unwrap();
    let audit = dir.path().join("audit.jsonl");
    let pin_dir = PathBuf::from("/sys/fs/bpf/rtguard");
    let _cleanup = UnloadOnDrop {
        pin_dir: pin_dir.clone(),
        audit: audit.clone(),
    };
    // A policy file the operator keeps beside the shipped ones, there before the start.
    std::fs::write(MARKER, b"x").unwrap();
    let guard = start_production(&audit, &["--pin"]);
    let pid = guard.pid();
    let binary = snapshot(&[PathBuf::from("/usr/bin/rtguard")]);
    let links = pinned_links(&pin_dir);
    assert!(links >= 9, "{links}");

    // Its process: fatal signals from anything but its supervisor are refused.
    for signal in ["-TERM", "-9", "-INT"] {
        let out = sh(&format!("kill {signal} {pid}"));
        assert!(!out.status.success(), "kill {signal} was let through");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("Operation not permitted"),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // SIGHUP (reload) is not fatal and stays allowed.
    assert!(sh(&format!("kill -0 {pid}")).status.success());

    // Its binary, policies and pins.
    expect_denied("rm -f /usr/bin/rtguard");
    expect_denied("mv /usr/bin/rtguard /usr/bin/rtguard.old");
    expect_denied("rm -rf /etc/rtguard");
    expect_denied("mv /etc/rtguard /etc/rtguard.old");
    expect_denied("rm -rf /sys/fs/bpf/rtguard");
    assert_eq!(snapshot(&[PathBuf::from("/usr/bin/rtguard")]), binary);
    assert!(PathBuf::from("/etc/rtguard/production.toml").exists());
    assert_eq!(pinned_links(&pin_dir), links, "every pin is still there");

    // Its unit, at exec: bash reports the refused execve as 126.
    for cmd in [
        "systemctl stop rtguard",
        "systemctl disable rtguard.service",
    ] {
        let out = Command::new("bash").args(["-c", cmd]).output().unwrap();
        assert_eq!(out.status.code(), Some(126), "`{cmd}`: {out:?}");
    }

    // The supervisor (here: the tests) stops it; the pins stay, still protected, until
    // rtguard itself unloads them.
    let status_file = guard.status_file.clone();
    let (exit, log) = guard.stop();
    assert!(exit.success(), "{log}");
    expect_denied("rm -rf /sys/fs/bpf/rtguard");
    expect_denied("rm -f /usr/bin/rtguard");
    // The policy directory is configuration: edits pass, removal does not.
    expect_allowed(&format!("echo y > {MARKER}"));
    expect_denied(&format!("rm -f {MARKER}"));
    let (code, said) = unload(&pin_dir, &audit, &status_file);
    assert_eq!(code, 0, "{said}");
    assert!(!pin_dir.exists());
    // Unloaded means detached: what the pinned programs protected is free again.
    expect_allowed(&format!("rm -f {MARKER}"));
    assert!(!Path::new(MARKER).exists());
    let records = std::fs::read_to_string(&audit).unwrap();
    // The binary is rtguard-package's where the .deb is installed, else rtguard-binary's.
    for (rule, op, target) in [
        ("rtguard-daemon", "kill", "/usr/bin/rtguard"),
        ("rtguard-", "unlink", r#""path":"/usr/bin/rtguard""#),
        ("rtguard-pins", "unlink", "/sys/fs/bpf/rtguard/gen-"),
        ("rtguard-unit", "exec", "/usr/bin/systemctl"),
    ] {
        assert!(
            records
                .lines()
                .any(|r| r.contains(&format!(r#""rule":"{rule}"#))
                    && r.contains(&format!(r#""op":"{op}""#))
                    && r.contains(r#""decision":"blocked""#)
                    && r.contains(target)),
            "no blocked {op} record of {target} for {rule}:\n{records}"
        );
    }
}
