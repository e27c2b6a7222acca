//! What the package manager may do to protected packages: upgrade and reinstall them,
//! and drop the files a new version no longer ships, from dpkg's own process. Not what
//! it runs (another package's maintainer scripts, `pre-invoke` hooks), not a removal
//! that an install's `Conflicts:` brings, and not the dpkg database by anyone else.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
};

use crate::common::*;

/// containerd's files as dpkg lists them, with dpkg's records of it. (Not the status
/// file, which dpkg rewrites on every run, for the other packages' stanzas too.)
fn containerd_state() -> BTreeMap<PathBuf, FileState> {
    let listed = expect_allowed("dpkg-query -L containerd");
    let mut paths: Vec<PathBuf> = listed
        .lines()
        .map(PathBuf::from)
        .filter(|p| p.is_file())
        .collect();
    for entry in std::fs::read_dir("/var/lib/dpkg/info").unwrap().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with("containerd.") && !name["containerd.".len()..].contains('.') {
            paths.push(entry.path());
        }
    }
    paths.sort();
    snapshot(&paths)
}

/// Puts the host back when a test ends, passed or not, after its guard has stopped
/// (declare it before the guard): purges the test's packages, and reinstalls the runtime
/// if dpkg no longer has it installed, so one failure does not become the next test's.
struct PutBack(&'static [&'static str]);

impl Drop for PutBack {
    fn drop(&mut self) {
        for package in self.0 {
            sh(&format!("dpkg --purge {package}"));
        }
        for package in ["containerd", "runc"] {
            if dpkg_status(package) != "install ok installed" {
                sh(&format!("dpkg -i {}", kept_deb(package).display()));
            }
        }
    }
}

/// The blocked records of the audit log whose target path is `path`.
fn blocked_on(audit: &Path, path: &str) -> Vec<serde_json::Value> {
    audit_log(audit)
        .into_iter()
        .filter(|r| r["decision"] == "blocked" && r["target"]["path"] == path)
        .collect()
}

/// What dpkg runs gets no more than any other process: a third-party package's
/// maintainer script and a dpkg hook, from the command line and from dpkg.cfg.d, cannot
/// remove a file of the runtime; the same package's scripts that touch only its own files
/// install and purge as usual.
#[test]
fn maintainer_scripts_and_dpkg_hooks_get_no_more_than_any_other_process() {
    let dir = tempfile::tempdir().unwrap();
    let audit = dir.path().join("audit.jsonl");
    let remover = TestDeb {
        scripts: &[("preinst", "rm -f /usr/bin/ctr")],
        ..TestDeb::marker("rtguard-remover")
    }
    .build(dir.path());
    let tidy = TestDeb {
        scripts: &[
            (
                "postinst",
                "echo configured > /usr/share/rtguard-tidy/state",
            ),
            ("postrm", "rm -f /usr/share/rtguard-tidy/state"),
        ],
        ..TestDeb::marker("rtguard-tidy")
    }
    .build(dir.path());
    let hook_config = Path::new("/etc/dpkg/dpkg.cfg.d/rtguard-test-hook");
    let before = containerd_state();
    let _put_back = PutBack(&["rtguard-remover", "rtguard-tidy"]);
    let guard = start_production(&audit, &[]);

    // Another package's preinst: refused, so dpkg does not install that package.
    let out = sh(&format!("dpkg -i {}", remover.display()));
    assert!(!out.status.success(), "{out:?}");
    assert_ne!(dpkg_status("rtguard-remover"), "install ok installed");
    // The record is the preinst's `rm`. Its ancestry is read from procfs when the record
    // is written, after the fact: dpkg exits as soon as the preinst fails, and on a busy
    // host it may be gone by then (the ancestry is then empty). Where it is there, dpkg
    // is in it.
    let records = blocked_on(&audit, "/usr/bin/ctr");
    assert!(
        records.iter().any(|r| r["op"] == "unlink"
            && r["actor"]["argv"] == serde_json::json!(["rm", "-f", "/usr/bin/ctr"])
            && r["actor"]["ancestry"]
                .as_array()
                .is_some_and(|a| { a.is_empty() || a.iter().any(|p| p["comm"] == "dpkg") })),
        "the preinst's rm, under dpkg, is on record: {records:?}"
    );

    // A hook on dpkg's command line, and one dropped into dpkg.cfg.d that the next
    // innocent install fires.
    expect_failed(&format!(
        "dpkg --pre-invoke='rm -f /usr/bin/ctr' -i {}",
        tidy.display()
    ));
    std::fs::write(hook_config, "post-invoke=rm -f /usr/bin/ctr\n").unwrap();
    let out = sh(&format!("dpkg -i {}", tidy.display()));
    std::fs::remove_file(hook_config).unwrap();
    assert!(
        !out.status.success(),
        "the hook's failure fails dpkg: {out:?}"
    );
    assert_eq!(containerd_state(), before, "containerd is as it was");

    // Scripts that touch only their own package's files: as usual.
    expect_allowed(&format!("dpkg -i {}", tidy.display()));
    assert_eq!(dpkg_status("rtguard-tidy"), "install ok installed");
    assert_eq!(
        std::fs::read_to_string("/usr/share/rtguard-tidy/state").unwrap(),
        "configured\n"
    );
    expect_allowed("dpkg --purge rtguard-tidy");
    assert!(!Path::new("/usr/share/rtguard-tidy").exists());

    assert_eq!(containerd_state(), before, "containerd is as it was");
    assert_eq!(dpkg_status("containerd"), "install ok installed");
    drop(guard);
}

/// An install whose package `Conflicts:` with and `Replaces:` the runtime would have dpkg
/// remove it, with no removal verb on any command line. dpkg starts the removal by
/// running containerd's `prerm remove in-favour …`, which is refused: the install fails,
/// and containerd stays installed, byte for byte.
#[test]
fn an_install_that_conflicts_with_the_runtime_does_not_remove_it() {
    let dir = tempfile::tempdir().unwrap();
    let audit = dir.path().join("audit.jsonl");
    let rival = TestDeb {
        fields: "Conflicts: containerd\nReplaces: containerd\nProvides: containerd\n",
        ..TestDeb::marker("rtguard-conflicts")
    }
    .build(dir.path());
    // dpkg runs a conflicting package's prerm only when it is configured.
    assert_eq!(dpkg_status("containerd"), "install ok installed", "before");
    let before = containerd_state();
    let _put_back = PutBack(&["rtguard-conflicts"]);
    let guard = start_production(&audit, &[]);

    let out = sh(&format!("dpkg -i {} 2>&1", rival.display()));
    let text = String::from_utf8_lossy(&out.stdout);
    println!("{text}");
    assert!(!out.status.success(), "{text}");
    assert!(
        text.contains("in favour of rtguard-conflicts"),
        "dpkg went for the removal: {text}"
    );
    assert!(text.contains("Operation not permitted"), "{text}");
    assert_eq!(containerd_state(), before, "containerd is as it was");
    assert_eq!(dpkg_status("containerd"), "install ok installed");
    assert_ne!(dpkg_status("rtguard-conflicts"), "install ok installed");
    let records = blocked_on(&audit, "/var/lib/dpkg/info/containerd.prerm");
    assert!(
        records
            .iter()
            .any(|r| r["layer"] == "exec" && r["exec"]["verb"] == "remove"),
        "the refused removal script is on record: {records:?}"
    );
    drop(guard);
    expect_verified(&["containerd"]);
}

/// A protected package's upgrade that drops a file passes: the new version replaces the
/// files it keeps and removes the one it no longer ships. Removing the package does not:
/// not by name, and not by selecting it for purge and purging what is pending.
#[test]
fn an_upgrade_that_drops_a_file_passes_and_a_pending_purge_does_not() {
    let dir = tempfile::tempdir().unwrap();
    let audit = dir.path().join("audit.jsonl");
    let policy = dir.path().join("policy.toml");
    std::fs::write(
        &policy,
        "environment = \"test\"\nmode = \"enforce\"\n\n\
         [[packages]]\nname = \"fixture\"\npackages = [\"rtguard-fixture\"]\nupgrade = \"allow\"\n",
    )
    .unwrap();
    let keep = Path::new("/usr/lib/rtguard-fixture/keep");
    let dropped = Path::new("/usr/lib/rtguard-fixture/dropped");
    let v1 = TestDeb {
        version: "1.0",
        files: &[
            ("/usr/lib/rtguard-fixture/keep", "keep 1\n"),
            ("/usr/lib/rtguard-fixture/dropped", "dropped 1\n"),
        ],
        ..TestDeb::marker("rtguard-fixture")
    }
    .build(dir.path());
    let v2 = TestDeb {
        version: "2.0",
        files: &[("/usr/lib/rtguard-fixture/keep", "keep 2\n")],
        ..TestDeb::marker("rtguard-fixture")
    }
    .build(dir.path());
    expect_allowed(&format!("dpkg -i {}", v1.display()));
    let _put_back = PutBack(&["rtguard-fixture"]);
    let guard = start_ready_guard(&[
        "--policy",
        policy.to_str().unwrap(),
        "--audit-log",
        audit.to_str().unwrap(),
    ]);

    expect_denied(&format!("rm -f {}", dropped.display()));
    expect_allowed(&format!("dpkg -i {}", v2.display()));
    assert_eq!(std::fs::read_to_string(keep).unwrap(), "keep 2\n");
    assert!(!dropped.exists(), "the upgrade dropped the file");
    let version = expect_allowed("dpkg-query -W -f='${Version} ${Status}' rtguard-fixture");
    assert_eq!(version, "2.0 install ok installed");
    // The new version's file is protected from the moment dpkg renamed it into place.
    assert!(write_open_refused(keep));
    assert!(write_open_refused(Path::new(
        "/var/lib/dpkg/info/rtguard-fixture.list"
    )));

    // Selected for purge, then purged as pending: dpkg's own unlink is refused.
    let after_upgrade = snapshot(&[keep.to_owned()]);
    expect_allowed("echo 'rtguard-fixture purge' | dpkg --set-selections");
    let out = sh("dpkg --purge --pending 2>&1");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{text}");
    expect_allowed("echo 'rtguard-fixture install' | dpkg --set-selections");
    assert_eq!(snapshot(&[keep.to_owned()]), after_upgrade);
    assert!(
        dpkg_status("rtguard-fixture").ends_with("installed"),
        "{text}"
    );

    drop(guard);
}

/// dpkg's database is written by dpkg only: the status file and a protected package's
/// `info/` records cannot be edited or removed by hand (the "force-remove" recipes), while
/// a reinstall rewrites them and they stay protected, and an unprotected package's
/// records are anyone's.
#[test]
fn the_dpkg_database_is_written_by_dpkg_only() {
    let dir = tempfile::tempdir().unwrap();
    let audit = dir.path().join("audit.jsonl");
    let other = TestDeb::marker("rtguard-unprotected").build(dir.path());
    expect_allowed(&format!("dpkg -i {}", other.display()));
    let _put_back = PutBack(&["rtguard-unprotected"]);
    let before = containerd_state();
    let status = Path::new("/var/lib/dpkg/status");
    let status_before = snapshot(&[status.to_owned()]);
    let guard = start_production(&audit, &[]);

    expect_denied("sed -i '/^Package: containerd$/,/^$/d' /var/lib/dpkg/status");
    expect_denied("echo >> /var/lib/dpkg/status");
    expect_denied("rm -f /var/lib/dpkg/info/containerd.list");
    expect_denied("mv /var/lib/dpkg/info/containerd.md5sums /tmp/");
    expect_denied("echo >> /var/lib/dpkg/info/containerd.md5sums");
    expect_denied("sed -i 1d /var/lib/dpkg/info/containerd.postinst");
    assert_eq!(containerd_state(), before, "containerd is as it was");
    assert_eq!(snapshot(&[status.to_owned()]), status_before);
    assert!(
        !blocked_on(&audit, "/var/lib/dpkg/info/containerd.list").is_empty(),
        "the attempt is on record"
    );

    // Another package's files and records: anyone's.
    expect_allowed("sed -i 's/x/y/' /usr/share/rtguard-unprotected/marker");
    expect_allowed("sed -i 's/marker/marker/' /var/lib/dpkg/info/rtguard-unprotected.list");

    // A reinstall rewrites the status file and the records, which are protected again
    // as dpkg renames them into place, before the daemon has resolved anything.
    expect_allowed(&format!("dpkg -i {}", containerd_deb().display()));
    assert_eq!(dpkg_status("containerd"), "install ok installed");
    assert!(write_open_refused(status));
    assert!(write_open_refused(Path::new(
        "/var/lib/dpkg/info/containerd.list"
    )));
    expect_denied("rm -f /var/lib/dpkg/info/containerd.list");

    drop(guard);
    expect_verified(&["containerd"]);
}

/// dpkg rewrites its status file many times in one run: a new file renamed over it, the
/// old one kept as `status-old` and unlinked at the next write. The kernel moves the
/// protection to each new file as it lands. Tables resolved between two writes name the
/// file of that moment, which may be `status-old` by the time they are written: the
/// install must not protect it again (dpkg's next unlink of it would fail), and the file
/// at the path stays protected. The guard is loaded here, in the test, so that the
/// resolution and the install can be placed around the second write.
#[test]
fn a_file_replaced_after_it_was_resolved_is_not_protected_again() {
    use guard_user::{
        loader::{Guard, HookChoice, MechanismChoice, Mode},
        tables::{CommandLinePaths, KernelTables},
    };
    use std::os::fd::AsRawFd;

    let dir = tempfile::Builder::new()
        .prefix("rtguard-replaced-")
        .tempdir_in("/var/tmp")
        .unwrap();
    let status = dir.path().join("status");
    let staged = dir.path().join("status-new");
    // The package manager, as the kernel knows it: by its executable's identity.
    let package_manager = dir.path().join("package-manager");
    std::fs::copy("/usr/bin/mv", &package_manager).unwrap();
    std::fs::write(&status, "first\n").unwrap();
    let spec = CommandLinePaths {
        upgradable: vec![status.clone()],
        package_managers: vec![package_manager.clone()],
        ..Default::default()
    };
    let write = |contents: &str| {
        std::fs::write(&staged, contents).unwrap();
        expect_allowed(&format!(
            "{} {} {}",
            package_manager.display(),
            staged.display(),
            status.display()
        ));
    };

    let mut guard = Guard::load(
        Mode::Enforce,
        HookChoice::Auto,
        MechanismChoice::Auto,
        None,
        &mut |_| {},
    )
    .unwrap();
    let replaced = guard
        .install(KernelTables::from_command_line(&spec).unwrap())
        .unwrap();
    assert_eq!(replaced, 0);
    assert!(write_open_refused(&status), "the first file is protected");
    write("second\n");
    let resolved = KernelTables::from_command_line(&spec).unwrap();
    let second = std::fs::File::open(&status).unwrap();
    write("third\n");
    let replaced = guard.install(resolved).unwrap();

    // The second file, replaced since it was resolved, is anyone's again.
    let reopened = std::fs::OpenOptions::new()
        .append(true)
        .open(format!("/proc/self/fd/{}", second.as_raw_fd()));
    assert!(
        reopened.is_ok(),
        "the replaced file was protected again: {reopened:?}"
    );
    // The file at the path kept the protection the kernel moved to it.
    assert!(write_open_refused(&status), "the third file is protected");
    assert_eq!(std::fs::read_to_string(&status).unwrap(), "third\n");
    assert_eq!(replaced, 1);
    // The next resolution finds nothing replaced.
    let replaced = guard
        .install(KernelTables::from_command_line(&spec).unwrap())
        .unwrap();
    assert_eq!(replaced, 0);
    assert!(write_open_refused(&status), "the third file is protected");
    drop(guard);
}
