//! Mounts: a host whose init mounted neither tracefs nor the BPF filesystem (minimal
//! inits, some cloud images), where rtguard mounts bpffs where systemd would, says so, and
//! enforces without tracefs; and mounts over protected objects, refused in the runtime's
//! mount namespace.
//! Data disks mounted late on protected paths are in `filesystems.rs`.

use std::path::{Path, PathBuf};

use nix::{errno::Errno, mount::MsFlags};

use crate::common::*;

const TRACEFS: &str = "/sys/kernel/tracing";
const BPFFS: &str = "/sys/fs/bpf";

fn is_bpffs(path: &str) -> bool {
    nix::sys::statfs::statfs(path)
        .is_ok_and(|fs| fs.filesystem_type() == nix::sys::statfs::BPF_FS_MAGIC)
}

/// Mounts tracefs again when the test ends, as the guest's init had it.
struct MountTracefsAgain;

impl Drop for MountTracefsAgain {
    fn drop(&mut self) {
        sh(&format!(
            "mountpoint -q {TRACEFS} || mount -t tracefs tracefs {TRACEFS}"
        ));
    }
}

/// rtguard mounts bpffs (its pins live there) and says so. Enforcing needs no tracefs:
/// only degraded mode's syscall tracepoints do, and rtguard leaves it unmounted.
#[test]
fn bpffs_is_mounted_when_the_host_booted_without_it_and_tracefs_is_not_needed() {
    let dir = tempfile::tempdir().unwrap();
    let audit = dir.path().join("audit.jsonl");
    let pin_dir = PathBuf::from(BPFFS).join("rtguard-test-mounts");
    // Declared before the guard: after a failure, too, the pins go once it has stopped.
    let _remount = MountTracefsAgain;
    let _unload = UnloadOnDrop {
        pin_dir: pin_dir.clone(),
        audit: audit.clone(),
    };
    // As a minimal init leaves the host (the guest's init mounted both).
    sh(&format!("umount {TRACEFS}; umount {BPFFS}"));
    assert!(
        !Path::new(TRACEFS).join("events").exists(),
        "tracefs still mounted"
    );
    assert!(!is_bpffs(BPFFS), "bpffs still mounted");

    let guard = start_production(&audit, &["--pin", "--pin-dir", pin_dir.to_str().unwrap()]);
    assert!(guard.status.contains("enforcing"), "{}", guard.status);
    assert!(is_bpffs(BPFFS));
    assert!(
        !Path::new(TRACEFS).join("events").exists(),
        "rtguard mounted tracefs, which enforcing does not need"
    );
    // The exec layer and the file layer enforce.
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
        log.contains("bpffs was not mounted: mounted it at /sys/fs/bpf"),
        "{log}"
    );
}

/// `open_tree(from, OPEN_TREE_CLONE)` then `move_mount` onto `to`: how util-linux 2.39 and
/// later mount. Returns the errno of the move, 0 when it succeeded.
fn move_mount_clone(from: &Path, to: &Path) -> i32 {
    use std::{ffi::CString, os::unix::ffi::OsStrExt as _};
    const OPEN_TREE_CLONE: libc::c_uint = 1;
    const MOVE_MOUNT_F_EMPTY_PATH: libc::c_uint = 0x4;
    let from = CString::new(from.as_os_str().as_bytes()).unwrap();
    let to = CString::new(to.as_os_str().as_bytes()).unwrap();
    let empty = CString::new("").unwrap();
    // SAFETY: plain syscalls on NUL-terminated strings that outlive them.
    unsafe {
        let tree = libc::syscall(
            libc::SYS_open_tree,
            libc::AT_FDCWD,
            from.as_ptr(),
            OPEN_TREE_CLONE | libc::O_CLOEXEC as libc::c_uint,
        );
        assert!(tree >= 0, "open_tree: {}", std::io::Error::last_os_error());
        let moved = libc::syscall(
            libc::SYS_move_mount,
            tree as libc::c_int,
            empty.as_ptr(),
            libc::AT_FDCWD,
            to.as_ptr(),
            MOVE_MOUNT_F_EMPTY_PATH,
        );
        let errno = if moved == 0 {
            0
        } else {
            std::io::Error::last_os_error().raw_os_error().unwrap_or(-1)
        };
        libc::close(tree as libc::c_int);
        errno
    }
}

/// `mount(8)` fails with the kernel's refusal ("permission denied" in util-linux's words).
fn expect_mount_refused(script: &str) {
    let out = sh(script);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "`{script}` succeeded");
    assert!(stderr.contains("permission denied"), "`{script}`: {stderr}");
}

/// Whether anything is mounted exactly at `point` in this mount namespace.
fn mounted_at(point: &str) -> bool {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .any(|l| l.split(' ').nth(4) == Some(point))
}

/// Mounting over a protected object, tree or one of their ancestors replaces what the
/// runtime sees without touching a byte; in the runtime's mount namespace it is refused,
/// through mount(2) and the new mount API alike. Mounts inside the runtime's trees, and
/// mounts in other namespaces, go on working.
#[test]
fn mounts_over_protected_objects_are_refused_in_the_runtimes_namespace() {
    let dir = tempfile::tempdir().unwrap();
    let audit = dir.path().join("audit.jsonl");
    let empty_file = dir.path().join("empty-file");
    std::fs::write(&empty_file, b"").unwrap();
    let empty_dir = dir.path().join("empty-dir");
    std::fs::create_dir(&empty_dir).unwrap();
    // Where the runtime mounts a snapshot, inside its tree; made before the start.
    let snapshot = Path::new("/var/lib/containerd/rtguard-test-snapshot");
    std::fs::create_dir_all(snapshot).unwrap();
    let runc = sha256(Path::new("/usr/sbin/runc"));
    let config = std::fs::read("/etc/containerd/config.toml").unwrap();
    let guard = start_production(&audit, &[]);

    let e = empty_file.display();
    let d = empty_dir.display();
    // mount(2), with the errno: a bind, a new filesystem, a move.
    let mount = |source: &Path, target: &str, fstype: Option<&str>, flags: MsFlags| {
        nix::mount::mount(Some(source), target, fstype, flags, None::<&str>)
    };
    assert_eq!(
        mount(&empty_file, "/usr/sbin/runc", None, MsFlags::MS_BIND),
        Err(Errno::EPERM)
    );
    let none = Path::new("none");
    for target in ["/etc/containerd", "/usr/sbin"] {
        assert_eq!(
            mount(none, target, Some("tmpfs"), MsFlags::empty()),
            Err(Errno::EPERM),
            "{target}"
        );
    }
    let out = sh(&format!("mount -t tmpfs staged {d}"));
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        mount(&empty_dir, "/etc/containerd", None, MsFlags::MS_MOVE),
        Err(Errno::EPERM)
    );
    // What an operator types gets the refusal too.
    expect_mount_refused("mount -t tmpfs none /etc/containerd");
    expect_mount_refused(&format!("mount --bind {d} /etc/containerd"));
    assert_eq!(
        move_mount_clone(&empty_dir, Path::new("/etc/containerd")),
        libc::EPERM
    );
    assert_eq!(
        move_mount_clone(&empty_file, Path::new("/usr/sbin/runc")),
        libc::EPERM
    );
    for point in ["/usr/sbin/runc", "/etc/containerd", "/usr/sbin"] {
        assert!(!mounted_at(point), "something is mounted at {point}");
    }
    assert_eq!(sha256(Path::new("/usr/sbin/runc")), runc);
    assert_eq!(
        std::fs::read("/etc/containerd/config.toml").unwrap(),
        config
    );

    // Another mount namespace changes nothing the runtime sees.
    expect_allowed(&format!(
        "unshare -m sh -c 'mount --bind {e} /usr/sbin/runc && test ! -s /usr/sbin/runc'"
    ));
    // The runtime's own mounts inside its trees.
    expect_allowed(&format!(
        "mount -t tmpfs snapshot {s} && umount {s}",
        s = snapshot.display()
    ));

    let (status, log) = guard.stop();
    assert!(status.success(), "{log}");
    let records = std::fs::read_to_string(&audit).unwrap();
    assert!(
        records.lines().any(|r| r.contains(r#""op":"mount""#)
            && r.contains(r#""decision":"blocked""#)
            && r.contains("/usr/sbin/runc")),
        "the refused bind mount is recorded:\n{records}"
    );
    sh(&format!("umount {d}"));
    std::fs::remove_dir(snapshot).ok();
}
