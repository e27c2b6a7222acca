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

/// A data disk mounted on `/var/lib/docker` after the guard started: the production
/// policy's tree there now holds the disk's inodes, which are protected as soon as the
/// mount table says so. Unmounting it is noticed the same way.
#[test]
fn a_disk_mounted_on_a_protected_tree_after_start_is_protected() {
    let docker = Path::new("/var/lib/docker");
    let created = !docker.exists();
    std::fs::create_dir_all(docker).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let audit = dir.path().join("audit.jsonl");
    // The "disk": a filesystem of its own with Docker's data on it.
    let disk = dir.path().join("disk");
    std::fs::create_dir(&disk).unwrap();
    let out = sh(&format!(
        "mount -t tmpfs late-disk {d} && mkdir {d}/volumes && echo id > {d}/engine-id",
        d = disk.display()
    ));
    assert!(out.status.success(), "{out:?}");
    let guard = start_production(&audit, &[]);

    let mounted_at = std::time::SystemTime::now();
    let out = sh(&format!("mount --bind {} /var/lib/docker", disk.display()));
    assert!(out.status.success(), "{out:?}");
    let record = |what: &str| {
        std::fs::read_to_string(&audit)
            .unwrap_or_default()
            .lines()
            .find(|r| r.contains(r#""op":"mounts-changed""#) && r.contains(what))
            .map(str::to_owned)
    };
    eventually("the mount on /var/lib/docker is resolved", || {
        record("/var/lib/docker (tmpfs mounted)").is_some()
    });
    // How long the mount went unprotected, for the log (not asserted: timing).
    println!(
        "protected {:?} after the mount",
        mounted_at.elapsed().unwrap_or_default()
    );
    expect_denied("rm -f /var/lib/docker/engine-id");
    expect_denied(": > /var/lib/docker/engine-id");
    assert_eq!(
        std::fs::read_to_string(disk.join("engine-id")).unwrap(),
        "id\n"
    );
    // Volumes stay the runtime's business on the disk too.
    expect_allowed("mkdir /var/lib/docker/volumes/v1 && rmdir /var/lib/docker/volumes/v1");

    let out = sh("umount /var/lib/docker");
    assert!(out.status.success(), "{out:?}");
    eventually("the unmount is resolved", || {
        record("/var/lib/docker (tmpfs unmounted)").is_some()
    });
    let (status, log) = guard.stop();
    assert!(status.success(), "{log}");
    assert!(
        log.contains("mount table changed on protected paths: /var/lib/docker (tmpfs mounted)"),
        "{log}"
    );
    // Without the guard the disk's data is the operator's again.
    sh(&format!("umount {}", disk.display()));
    if created {
        std::fs::remove_dir_all(docker).ok();
    }
}
