//! The enforcement mechanism: BPF LSM where `bpf` is an active LSM, fmod_ret on the
//! `security_*` functions where it is not. Every other test runs with the mechanism the
//! boot allows; these name it, force each one, and check what the operator is told.

use std::{path::PathBuf, process::Command};

use crate::common::*;

#[test]
fn status_probe_and_audit_trail_name_the_mechanism() {
    let s = scratch();
    let audit = s.dir.path().join("audit.jsonl");
    let guard = start_ready_guard(&[
        "--protect",
        s.protected.to_str().unwrap(),
        "--audit-log",
        audit.to_str().unwrap(),
    ]);
    let (name, described) = booted_mechanism();
    assert_eq!(guard.status, format!("enforcing ({described})"));

    let out = Command::new(rtguard_bin())
        .args(["status", "--status-file"])
        .arg(&guard.status_file)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    println!("rtguard status:\n{text}");
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(
        text.contains(&format!(
            "state:         enforcing ({described}; self-test passed)"
        )),
        "{text}"
    );
    assert!(text.contains(&format!("mechanism:     {name}\n")), "{text}");
    let (_, json) = guard.status_cmd();
    assert!(
        json.contains(&format!(r#""mechanism": "{name}""#)),
        "{json}"
    );

    let records = std::fs::read_to_string(&audit).unwrap();
    assert!(
        records
            .lines()
            .any(|r| r.contains(r#""op":"start""#)
                && r.contains(&format!("enforcing ({described})"))),
        "the start record names the mechanism:\n{records}"
    );

    let probe = Command::new(rtguard_bin()).arg("probe").output().unwrap();
    let said = String::from_utf8_lossy(&probe.stdout);
    println!("rtguard probe:\n{said}");
    assert!(said.contains(&format!("mechanism:     {name} (")), "{said}");
}

/// fmod_ret on every boot, also where BPF LSM would do: the self-test proves the file,
/// exec and process layers under it (the guard is not ready otherwise), refusals keep
/// the bytes, and `--pin` keeps its links attached after a crash until `rtguard unload`.
#[test]
fn fmod_ret_enforces_and_its_pinned_links_outlive_the_daemon() {
    let s = scratch();
    let audit = s.dir.path().join("audit.jsonl");
    let pin_dir = PathBuf::from("/sys/fs/bpf/rtguard-test-fmod-ret");
    let _cleanup = UnloadOnDrop {
        pin_dir: pin_dir.clone(),
        audit: audit.clone(),
    };
    let guard = start_ready_guard(&[
        "--protect",
        s.protected.to_str().unwrap(),
        "--audit-log",
        audit.to_str().unwrap(),
        "--mechanism",
        "fmod-ret",
        "--pin",
        "--pin-dir",
        pin_dir.to_str().unwrap(),
    ]);
    assert_eq!(
        guard.status,
        "enforcing (fmod_ret on security_* functions; forced with --mechanism)"
    );
    let (_, json) = guard.status_cmd();
    for program in [
        "path_unlink",
        "file_open",
        "bprm_check_security",
        "task_kill",
    ] {
        assert!(json.contains(program), "{program} attached: {json}");
    }
    expect_denied(&format!("rm -f {}", s.protected.display()));
    expect_denied(&format!(": > {}", s.protected.display()));
    expect_denied(&format!(
        "mv {} {}",
        s.protected.display(),
        s.sibling.display()
    ));
    assert_eq!(sha256(&s.protected), s.protected_sha256);
    expect_allowed(&format!("rm -f {}", s.sibling.display()));

    // A crash: the pinned fmod_ret links keep enforcing.
    let status_file = guard.status_file.clone();
    guard.kill();
    expect_denied(&format!("rm -f {}", s.protected.display()));
    assert_eq!(sha256(&s.protected), s.protected_sha256);

    let (code, said) = unload(&pin_dir, &audit, &status_file);
    assert_eq!(code, 0, "{said}");
    // With the links unpinned nothing refuses any more: they were what enforced.
    expect_allowed(&format!("rm -f {}", s.protected.display()));
    assert!(!s.protected.exists());
}

/// Forcing BPF LSM works where `bpf` is an active LSM. Where it is not, the programs
/// attach but never run: the self-test catches it and the guard refuses to start,
/// naming the active LSMs and the boot parameter that adds `bpf`.
#[test]
fn forced_bpf_lsm_enforces_only_where_bpf_is_an_active_lsm() {
    let s = scratch();
    let args = [
        "--protect",
        s.protected.to_str().unwrap(),
        "--mechanism",
        "bpf-lsm",
    ];
    match (booted_mechanism().0, start_guard(&args)) {
        ("bpf-lsm", Started::Ready(guard)) => {
            assert_eq!(guard.status, "enforcing (BPF LSM)");
            expect_denied(&format!("rm -f {}", s.protected.display()));
        }
        ("fmod-ret", Started::Exited { status, stderr }) => {
            assert_eq!(status.code(), Some(3), "{stderr}");
            let lsms = std::fs::read_to_string("/sys/kernel/security/lsm").unwrap();
            let lsms = lsms.trim();
            assert!(
                stderr.contains("self-test failed for the file layer"),
                "{stderr}"
            );
            assert!(
                stderr.contains(&format!("active LSMs: {lsms}"))
                    && stderr.contains(&format!("`lsm={lsms},bpf`")),
                "{stderr}"
            );
            // Nothing was ever enforced: the file is as it was.
            assert_eq!(sha256(&s.protected), s.protected_sha256);
        }
        (mechanism, Started::Ready(guard)) => {
            panic!("ready with {mechanism} booted: {}", guard.status)
        }
        (mechanism, Started::Exited { status, stderr }) => {
            panic!("exited ({status}) with {mechanism} booted:\n{stderr}")
        }
    }
}
