//! Attribute changes that break a protected binary without touching a byte of it: a POSIX
//! ACL that takes every permission away (the effect of `chmod 000`), and inode flags
//! (`chattr +i`) that make the next upgrade fail. Refused like chmod; trusted writers
//! still may.

use std::{
    ffi::CString,
    os::unix::{ffi::OsStrExt as _, fs::PermissionsExt as _},
    path::Path,
};

use crate::common::*;

/// `FS_IOC_GETFLAGS` and the immutable flag.
const FS_IOC_GETFLAGS: libc::c_ulong = 0x8008_6601;
const FS_IMMUTABLE_FL: libc::c_long = 0x10;

/// An ACL as the kernel stores it in `system.posix_acl_access`: version 2, then the
/// owner, a named user (nobody), the group, the mask and other, all without
/// permissions. The named user makes it an extended ACL, which the kernel keeps as an
/// attribute (a minimal one is folded into the mode bits); either way the file's mode
/// becomes 000.
fn acl_taking_everything() -> Vec<u8> {
    let mut acl = 2u32.to_le_bytes().to_vec();
    for (tag, id) in [
        (0x01u16, u32::MAX),
        (0x02, 65534),
        (0x04, u32::MAX),
        (0x10, u32::MAX),
        (0x20, u32::MAX),
    ] {
        acl.extend_from_slice(&tag.to_le_bytes());
        acl.extend_from_slice(&0u16.to_le_bytes());
        acl.extend_from_slice(&id.to_le_bytes());
    }
    acl
}

fn c_path(path: &Path) -> CString {
    CString::new(path.as_os_str().as_bytes()).unwrap()
}

/// `setxattr(path, system.posix_acl_access, …)`: the errno, or None if it was set.
fn set_acl(path: &Path) -> Option<i32> {
    let acl = acl_taking_everything();
    let name = c_path(Path::new("system.posix_acl_access"));
    let path = c_path(path);
    let rc = unsafe {
        libc::setxattr(
            path.as_ptr(),
            name.as_ptr(),
            acl.as_ptr().cast(),
            acl.len(),
            0,
        )
    };
    (rc != 0).then(|| std::io::Error::last_os_error().raw_os_error().unwrap_or(0))
}

fn has_acl(path: &Path) -> bool {
    let name = c_path(Path::new("system.posix_acl_access"));
    let path = c_path(path);
    let size = unsafe { libc::getxattr(path.as_ptr(), name.as_ptr(), std::ptr::null_mut(), 0) };
    size >= 0
}

fn immutable(path: &Path) -> bool {
    let file = std::fs::File::open(path).unwrap();
    let mut flags: libc::c_long = 0;
    let rc = unsafe {
        libc::ioctl(
            std::os::fd::AsRawFd::as_raw_fd(&file),
            FS_IOC_GETFLAGS,
            &mut flags,
        )
    };
    assert_eq!(rc, 0, "FS_IOC_GETFLAGS on {}", path.display());
    flags & FS_IMMUTABLE_FL != 0
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o7777
}

#[test]
fn an_acl_or_an_immutable_flag_on_a_protected_binary_is_refused() {
    let s = scratch();
    std::fs::set_permissions(&s.protected, std::fs::Permissions::from_mode(0o755)).unwrap();
    let audit = s.dir.path().join("audit.jsonl");
    let guard = start_ready_guard(&[
        "--protect",
        s.protected.to_str().unwrap(),
        "--audit-log",
        audit.to_str().unwrap(),
    ]);
    // The unprotected neighbour takes both, so the refusals below are the guard's.
    std::fs::set_permissions(&s.sibling, std::fs::Permissions::from_mode(0o755)).unwrap();
    assert_eq!(set_acl(&s.sibling), None, "an ACL on an unprotected file");
    assert!(has_acl(&s.sibling));
    assert_eq!(mode(&s.sibling), 0o000, "the ACL took every permission");
    expect_allowed(&format!(
        "chattr +i {0} && chattr -i {0}",
        s.sibling.display()
    ));

    assert_eq!(set_acl(&s.protected), Some(libc::EPERM));
    assert!(!has_acl(&s.protected), "no ACL was set");
    assert_eq!(mode(&s.protected), 0o755, "permissions unchanged");
    expect_denied(&format!("chattr +i {}", s.protected.display()));
    expect_denied(&format!("chattr +a {}", s.protected.display()));
    assert!(!immutable(&s.protected), "flags unchanged");
    assert_eq!(sha256(&s.protected), s.protected_sha256);
    let (status, log) = guard.stop();
    assert!(status.success(), "{log}");
    let records = std::fs::read_to_string(&audit).unwrap();
    for op in ["set-acl", "set-flags"] {
        assert!(
            records
                .lines()
                .any(|r| r.contains(&format!(r#""op":"{op}""#))
                    && r.contains(r#""decision":"blocked""#)),
            "no blocked {op} record:\n{records}"
        );
    }
}

#[test]
fn a_trusted_writer_may_still_change_attributes_in_its_tree() {
    let s = scratch();
    let tree = s.dir.path().join("state");
    std::fs::create_dir(&tree).unwrap();
    let file = tree.join("task");
    std::fs::write(&file, b"state\n").unwrap();
    let guard = start_ready_guard(&[
        "--protect-tree",
        tree.to_str().unwrap(),
        "--trust",
        "/usr/bin/chattr",
    ]);
    // Anyone else is refused.
    assert_eq!(set_acl(&file), Some(libc::EPERM));
    // The trusted writer is not.
    expect_allowed(&format!("chattr +i {}", file.display()));
    assert!(immutable(&file));
    expect_allowed(&format!("chattr -i {}", file.display()));
    assert!(!immutable(&file));
    drop(guard);
}
