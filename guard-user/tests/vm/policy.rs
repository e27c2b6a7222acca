//! The shipped production policy on a real Debian system with containerd and runc
//! installed from the archive: what the seed incident's uninstaller did to the files,
//! refused, while package upgrades keep working.

use std::{os::unix::fs::MetadataExt as _, path::Path};

use crate::common::*;

#[test]
fn check_resolves_the_production_policy_against_the_installed_packages() {
    let out = std::process::Command::new(rtguard_bin())
        .args(["check", PRODUCTION_POLICY])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("containerd"), "{stdout}");
    assert!(stdout.contains("/usr/bin/containerd"), "{stdout}");
}

#[test]
fn the_uninstallers_file_operations_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let audit = dir.path().join("audit.jsonl");
    let files = [
        "/usr/bin/containerd",
        "/usr/bin/ctr",
        "/usr/bin/containerd-shim-runc-v2",
        "/usr/sbin/runc",
        "/etc/containerd/config.toml",
        "/lib/systemd/system/containerd.service",
    ]
    .map(std::path::PathBuf::from);
    let before = snapshot(&files);
    assert_eq!(
        before.len(),
        files.len(),
        "every file exists before: {before:?}"
    );
    let guard = start_production(&audit, &[]);

    // What the Olares uninstaller ran, as its own command lines.
    expect_denied("rm -rf /usr/bin/containerd*");
    expect_denied("rm -rf /usr/bin/ctr");
    expect_denied("rm -rf /lib/systemd/system/containerd.service");
    expect_denied("rm -rf /etc/containerd");
    expect_denied("rm -f /usr/sbin/runc");
    expect_denied(": > /usr/bin/containerd");
    expect_denied("mv /etc/containerd /etc/containerd.bak");
    assert_eq!(
        snapshot(&files),
        before,
        "files changed under the production policy"
    );

    let (status, log) = guard.stop();
    assert!(status.success(), "{log}");
    let records = std::fs::read_to_string(&audit).unwrap();
    let blocked: Vec<&str> = records
        .lines()
        .filter(|l| l.contains(r#""decision":"blocked""#))
        .collect();
    assert!(
        blocked.len() >= 7,
        "expected a blocked record per attempt:\n{records}"
    );
    assert!(
        blocked
            .iter()
            .any(|l| l.contains(r#""path":"/usr/bin/containerd""#) && l.contains(r#""rule":"#)),
        "records name the path and the rule:\n{records}"
    );
    assert!(
        records.contains(r#""environment":"production""#),
        "{records}"
    );
}

#[test]
fn a_reinstall_through_dpkg_passes_and_the_new_files_are_protected() {
    let dir = tempfile::tempdir().unwrap();
    let audit = dir.path().join("audit.jsonl");
    let deb = containerd_deb();
    let bin = Path::new("/usr/bin/containerd");
    let old_ino = std::fs::metadata(bin).unwrap().ino();
    let guard = start_production(&audit, &[]);

    let dpkg = sh(&format!("dpkg -i {}", deb.display()));
    let said = String::from_utf8_lossy(&dpkg.stderr);
    assert!(dpkg.status.success(), "{said}");
    // dpkg finished its own bookkeeping in the protected config tree too.
    assert!(
        !said.contains("Operation not permitted"),
        "dpkg was refused something: {said}"
    );
    let leftovers = sh("find /etc/containerd /usr/bin /lib/systemd/system -name '*.dpkg-*'");
    assert_eq!(
        String::from_utf8_lossy(&leftovers.stdout),
        "",
        "dpkg left temporary files"
    );
    assert_ne!(std::fs::metadata(bin).unwrap().ino(), old_ino);
    // Protection follows the new inode once the package manager is done.
    let latency = wait_until_protected(bin);
    println!("  re-protected {latency:?} after dpkg returned");
    expect_denied("rm -f /usr/bin/containerd");
    let (_, log) = guard.stop();
    expect_verified(&["containerd", "runc"]);
    let records = std::fs::read_to_string(&audit).unwrap();
    assert!(
        records.contains(r#""decision":"allowed-upgrade""#),
        "{records}\n{log}"
    );
}
