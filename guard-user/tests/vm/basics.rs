//! The first enforcement path: unlink of a protected file, end to end.

use std::io::ErrorKind;

use crate::common::*;

const EPERM: i32 = 1;

fn protect_args(s: &Scratch) -> Vec<&str> {
    vec!["--protect", s.protected.to_str().unwrap()]
}

#[test]
fn guard_reports_enforcing_when_ready() {
    let s = scratch();
    let guard = start_ready_guard(&protect_args(&s));
    assert_eq!(guard.status, enforcing_status());
}

#[test]
fn protected_file_cannot_be_removed() {
    let s = scratch();
    let guard = start_ready_guard(&protect_args(&s));

    let err = std::fs::remove_file(&s.protected).expect_err("unlink of a protected file succeeded");
    assert_eq!(err.raw_os_error(), Some(EPERM), "unlink: {err}");

    let rm = sh(&format!("rm -f '{}'", s.protected.display()));
    assert!(!rm.status.success(), "rm -f of a protected file succeeded");
    let stderr = String::from_utf8_lossy(&rm.stderr);
    assert!(
        stderr.contains("Operation not permitted"),
        "rm said: {stderr}"
    );

    assert!(s.protected.exists());
    assert_eq!(
        sha256(&s.protected),
        s.protected_sha256,
        "protected bytes changed"
    );

    let (status, log) = guard.stop();
    assert!(status.success(), "rtguard exit: {status}\n{log}");
    assert!(
        log.contains("blocked unlink of a protected object")
            && log.contains(s.protected.to_str().unwrap()),
        "no blocked-unlink record naming the file in rtguard's log:\n{log}"
    );
}

#[test]
fn unprotected_sibling_can_be_removed() {
    let s = scratch();
    let _guard = start_ready_guard(&protect_args(&s));
    std::fs::remove_file(&s.sibling).expect("unlink of an unprotected file");
    assert!(!s.sibling.try_exists().unwrap());
    assert_eq!(sha256(&s.protected), s.protected_sha256);
}

#[test]
fn protection_ends_when_guard_exits() {
    let s = scratch();
    let guard = start_ready_guard(&protect_args(&s));
    assert_eq!(
        std::fs::remove_file(&s.protected)
            .unwrap_err()
            .raw_os_error(),
        Some(EPERM)
    );
    let (status, log) = guard.stop();
    assert!(status.success(), "rtguard exit: {status}\n{log}");
    // No pinned programs are left behind unless asked for.
    std::fs::remove_file(&s.protected).expect("unlink after rtguard stopped");
    assert_eq!(
        std::fs::metadata(&s.protected).unwrap_err().kind(),
        ErrorKind::NotFound
    );
}

#[test]
fn another_name_of_the_same_inode_is_protected_too() {
    // Identity is (dev, ino): a hard link is the same object under another name.
    let s = scratch();
    let hard = s.dir.path().join("hard-link");
    std::fs::hard_link(&s.protected, &hard).unwrap();
    let _guard = start_ready_guard(&protect_args(&s));
    let err = std::fs::remove_file(&hard).expect_err("unlink through a hard link succeeded");
    assert_eq!(err.raw_os_error(), Some(EPERM));
    assert_eq!(sha256(&hard), s.protected_sha256);
}

#[test]
fn removing_a_symlink_leaves_its_protected_target() {
    // A symlink is its own inode; removing it is allowed and the target stays intact.
    let s = scratch();
    let link = s.dir.path().join("symlink");
    std::os::unix::fs::symlink(&s.protected, &link).unwrap();
    let _guard = start_ready_guard(&protect_args(&s));
    std::fs::remove_file(&link).expect("unlink of the symlink itself");
    let err = std::fs::remove_file(&s.protected).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(EPERM));
    assert_eq!(sha256(&s.protected), s.protected_sha256);
}

#[test]
fn audit_mode_allows_and_reports_would_block() {
    let s = scratch();
    let mut args = protect_args(&s);
    args.extend(["--mode", "audit"]);
    let guard = start_ready_guard(&args);
    assert_eq!(
        guard.status,
        format!("auditing (not blocking) ({})", booted_mechanism().1)
    );
    std::fs::remove_file(&s.protected).expect("audit mode must not block");
    let (_, log) = guard.stop();
    assert!(
        log.contains("would-block unlink of a protected object"),
        "no would-block record in rtguard's log:\n{log}"
    );
}
