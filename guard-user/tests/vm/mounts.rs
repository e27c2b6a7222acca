//! A host whose init mounted neither tracefs nor the BPF filesystem (minimal inits, some
//! cloud images): rtguard mounts them where systemd would, says so, and enforces.

use std::path::{Path, PathBuf};

use crate::common::*;

const TRACEFS: &str = "/sys/kernel/tracing";
const BPFFS: &str = "/sys/fs/bpf";

fn is_bpffs(path: &str) -> bool {
    nix::sys::statfs::statfs(path)
        .is_ok_and(|fs| fs.filesystem_type() == nix::sys::statfs::BPF_FS_MAGIC)
}

#[test]
fn tracefs_and_bpffs_are_mounted_when_the_host_booted_without_them() {
    let dir = tempfile::tempdir().unwrap();
    let audit = dir.path().join("audit.jsonl");
    let pin_dir = PathBuf::from(BPFFS).join("rtguard-test-mounts");
    // As a minimal init leaves the host (the guest's init mounted both).
    sh(&format!("umount {TRACEFS}; umount {BPFFS}"));
    assert!(
        !Path::new(TRACEFS).join("events").exists(),
        "tracefs still mounted"
    );
    assert!(!is_bpffs(BPFFS), "bpffs still mounted");

    let guard = start_production(&audit, &["--pin", "--pin-dir", pin_dir.to_str().unwrap()]);
    assert!(guard.status.contains("enforcing"), "{}", guard.status);
    assert!(Path::new(TRACEFS).join("events").is_dir());
    assert!(is_bpffs(BPFFS));
    // The exec layer, whose argv capture is a tracepoint, and the file layer enforce.
    expect_denied("rm -f /usr/sbin/runc");
    let out = std::process::Command::new("bash")
        .args(["-c", "apt-get remove -y runc"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(126), "{out:?}");
    expect_verified(&["runc"]);

    let (status, log) = guard.stop();
    assert!(status.success(), "{log}");
    let out = std::process::Command::new(rtguard_bin())
        .arg("unload")
        .arg("--pin-dir")
        .arg(&pin_dir)
        .arg("--audit-log")
        .arg(&audit)
        .arg("--status-file")
        .arg(dir.path().join("no-daemon.json"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert!(
        log.contains("tracefs was not mounted: mounted it at /sys/kernel/tracing"),
        "{log}"
    );
    assert!(
        log.contains("bpffs was not mounted: mounted it at /sys/fs/bpf"),
        "{log}"
    );
}
