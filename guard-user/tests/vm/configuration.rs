//! The runtime's configuration under the production policy: operators and configuration
//! management edit it the ways they do (in place, by atomic replacement, with temp and
//! swap files), while removing it or moving it away stays refused.

use std::{os::unix::fs::MetadataExt as _, path::Path};

use crate::common::*;

const CONFIG: &str = "/etc/containerd/config.toml";
const DAEMON_JSON: &str = "/etc/docker/daemon.json";

/// Puts config.toml's bytes back when a test ends, whatever happened (writes pass).
struct RestoreConfig(Vec<u8>);

impl Drop for RestoreConfig {
    fn drop(&mut self) {
        std::fs::write(CONFIG, &self.0).ok();
    }
}

fn ino(path: &str) -> u64 {
    std::fs::metadata(path).unwrap().ino()
}

fn content(path: &str) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {path}: {e}"))
}

#[test]
fn configuration_is_edited_the_ways_operators_and_tools_do_but_not_removed() {
    let dir = tempfile::tempdir().unwrap();
    let audit = dir.path().join("audit.jsonl");
    let original = std::fs::read(CONFIG).expect("containerd ships config.toml");
    let _restore = RestoreConfig(original.clone());
    let saved = dir.path().join("saved.toml");
    std::fs::write(&saved, &original).unwrap();
    // Docker's configuration, as a host with Docker has it.
    let docker_etc = Path::new("/etc/docker");
    let made_docker_etc = !docker_etc.exists();
    std::fs::create_dir_all(docker_etc).unwrap();
    std::fs::write(DAEMON_JSON, "{}\n").unwrap();
    let guard = start_production(&audit, &[]);

    // sed -i: a temp file in the same directory, renamed over the file.
    let before = ino(CONFIG);
    expect_allowed(&format!("sed -i '$ a # edited by sed' {CONFIG}"));
    assert!(content(CONFIG).ends_with("# edited by sed\n"));
    assert_ne!(ino(CONFIG), before, "sed replaced the inode");
    // The replacement is as protected as the file it replaced, at once.
    expect_denied(&format!("rm -f {CONFIG}"));

    // Configuration management's way (Ansible, Python's mkstemp + os.replace).
    expect_allowed(&format!(
        "t=$(mktemp /etc/containerd/.ansible_tmpXXXXXX) && printf 'version = 2\\n# ansible\\n' > \"$t\" \
         && mv -f \"$t\" {CONFIG}"
    ));
    assert_eq!(content(CONFIG), "version = 2\n# ansible\n");
    expect_denied(&format!("rm -f {CONFIG}"));
    // The same for Docker's daemon.json.
    expect_allowed(&format!(
        "t=$(mktemp /etc/docker/.daemon.json.XXXXXX) && printf '{{\"iptables\": true}}\\n' > \"$t\" \
         && mv -f \"$t\" {DAEMON_JSON}"
    ));
    assert_eq!(content(DAEMON_JSON), "{\"iptables\": true}\n");
    expect_denied(&format!("rm -f {DAEMON_JSON}"));
    expect_denied("rm -rf /etc/docker");

    // Writing over it in place: `cat saved > config`, `containerd config default > config`.
    expect_allowed(&format!("cat {} > {CONFIG}", saved.display()));
    assert_eq!(std::fs::read(CONFIG).unwrap(), original);
    expect_allowed(&format!("containerd config default > {CONFIG}"));
    assert!(content(CONFIG).contains("[plugins"), "{}", content(CONFIG));
    expect_allowed(&format!(": > {CONFIG}"));
    assert_eq!(std::fs::metadata(CONFIG).unwrap().len(), 0);

    // An editor's swap file, a backup copy, a drop-in directory: created after the
    // policy was resolved, so they may go again.
    expect_allowed(
        "echo swap > /etc/containerd/.config.toml.swp && rm /etc/containerd/.config.toml.swp",
    );
    expect_allowed(&format!("cp {CONFIG} {CONFIG}.bak && rm {CONFIG}.bak"));
    expect_allowed(
        "mkdir /etc/containerd/conf.d && echo x > /etc/containerd/conf.d/10-x.toml \
         && rm -rf /etc/containerd/conf.d",
    );

    // Losing it is still refused, with the file in place afterwards.
    std::fs::write(CONFIG, &original).unwrap();
    let kept = snapshot(&[CONFIG.into()]);
    expect_denied(&format!("rm -f {CONFIG}"));
    expect_denied("rm -rf /etc/containerd");
    expect_denied(&format!("mv {CONFIG} /tmp/"));
    expect_denied(&format!("mv {CONFIG} {CONFIG}.old"));
    expect_denied("mv /etc/containerd /etc/containerd.moved");
    // Replacing it from another directory is a move, not an edit.
    expect_allowed(
        "mkdir -p /etc/containerd/staging && echo other > /etc/containerd/staging/config.toml",
    );
    expect_denied(&format!("mv /etc/containerd/staging/config.toml {CONFIG}"));
    expect_allowed("rm -rf /etc/containerd/staging");
    assert_eq!(snapshot(&[CONFIG.into()]), kept, "config.toml changed");
    assert!(Path::new("/etc/containerd").is_dir());

    let (status, log) = guard.stop();
    assert!(status.success(), "{log}");
    std::fs::remove_file(DAEMON_JSON).ok();
    if made_docker_etc {
        std::fs::remove_dir(docker_etc).ok();
    }
    let records = std::fs::read_to_string(&audit).unwrap();
    let edits: Vec<&str> = records
        .lines()
        .filter(|l| l.contains(r#""op":"edit""#))
        .collect();
    // The shell opens the file for `>`, so it is the actor of the write.
    for (note, comm) in [("replace", "sed"), ("replace", "mv"), ("open-write", "sh")] {
        assert!(
            edits
                .iter()
                .any(|l| l.contains(&format!(r#""note":"{note}""#))
                    && l.contains(&format!(r#""comm":"{comm}""#))
                    && l.contains(r#""decision":"allowed-edit""#)
                    && l.contains(&format!(r#""path":"{CONFIG}""#))),
            "no {note} edit by {comm}:\n{records}"
        );
    }
    assert!(
        records
            .lines()
            .any(|l| l.contains(r#""decision":"blocked""#)
                && l.contains(r#""op":"unlink""#)
                && l.contains(CONFIG)),
        "{records}"
    );
}

#[test]
fn a_file_created_after_start_in_a_configuration_tree_is_not_adopted_by_a_reload() {
    let dir = tempfile::tempdir().unwrap();
    let audit = dir.path().join("audit.jsonl");
    let guard = start_production(&audit, &[]);
    let backup = "/etc/containerd/config.toml.reload-test";
    expect_allowed(&format!("cp {CONFIG} {backup}"));
    // A reload resolves the policy again; the baseline from the start stays.
    guard.signal(nix::sys::signal::Signal::SIGHUP);
    eventually("the reload is recorded", || {
        std::fs::read_to_string(&audit).is_ok_and(|r| r.contains(r#""op":"reload""#))
    });
    expect_allowed(&format!("rm {backup}"));
    expect_denied(&format!("rm {CONFIG}"));
    let (status, log) = guard.stop();
    assert!(status.success(), "{log}");
}

#[test]
fn volumes_and_layers_created_after_start_are_left_to_whoever_writes_them() {
    let docker = Path::new("/var/lib/docker");
    let created = !docker.exists();
    std::fs::create_dir_all(docker).unwrap();
    for sub in ["volumes", "overlay2"] {
        std::fs::remove_dir_all(docker.join(sub)).ok();
    }
    let kept = docker.join("engine-id");
    std::fs::write(&kept, "id\n").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let audit = dir.path().join("audit.jsonl");
    let data = dir.path().join("data.bin");
    std::fs::write(&data, b"operator's data\n").unwrap();
    let guard = start_production(&audit, &[]);

    // Created after the policy was resolved, as dockerd does on its first volume.
    expect_allowed("mkdir -p /var/lib/docker/volumes/v1/_data /var/lib/docker/overlay2/l1/diff");
    expect_allowed(&format!(
        "cp {} /var/lib/docker/volumes/v1/_data/ && echo more >> /var/lib/docker/volumes/v1/_data/data.bin",
        data.display()
    ));
    assert_eq!(
        std::fs::read("/var/lib/docker/volumes/v1/_data/data.bin").unwrap(),
        b"operator's data\nmore\n"
    );
    expect_allowed("echo layer > /var/lib/docker/overlay2/l1/diff/file && mv /var/lib/docker/overlay2/l1/diff/file /var/lib/docker/overlay2/l1/diff/moved");
    // Removing a volume or a layer is the runtime's or the operator's business.
    expect_allowed("rm -rf /var/lib/docker/volumes/v1 /var/lib/docker/overlay2/l1");
    // The rest of the tree is still the runtime's alone.
    expect_denied(&format!("rm -f {}", kept.display()));
    expect_denied(&format!(": > {}", kept.display()));
    expect_denied("mkdir /var/lib/docker/other && echo x > /var/lib/docker/other/f");
    assert_eq!(std::fs::read_to_string(&kept).unwrap(), "id\n");

    let (status, log) = guard.stop();
    assert!(status.success(), "{log}");
    std::fs::remove_file(&kept).ok();
    for sub in ["volumes", "overlay2", "other"] {
        std::fs::remove_dir_all(docker.join(sub)).ok();
    }
    if created {
        std::fs::remove_dir_all(docker).ok();
    }
}

fn rtguard_config(state_dir: &Path, args: &[&str]) -> std::process::Output {
    std::process::Command::new(rtguard_bin())
        .arg("config")
        .args(args)
        .arg("--state-dir")
        .arg(state_dir)
        .output()
        .unwrap()
}

#[test]
fn an_edit_that_empties_the_configuration_is_undone_by_one_command() {
    let dir = tempfile::tempdir().unwrap();
    let audit = dir.path().join("audit.jsonl");
    let state = dir.path().join("state");
    let original = std::fs::read(CONFIG).unwrap();
    let _restore = RestoreConfig(original.clone());
    let guard = start_production(&audit, &["--state-dir", state.to_str().unwrap()]);
    let versions = |state: &Path| {
        let out = rtguard_config(state, &["history", CONFIG, "--json"]);
        String::from_utf8_lossy(&out.stdout).lines().count()
    };
    // The daemon keeps what the file held at start.
    eventually("the first version is kept", || versions(&state) == 1);

    expect_allowed(&format!(": > {CONFIG}"));
    assert_eq!(std::fs::metadata(CONFIG).unwrap().len(), 0);
    eventually("the emptied file is kept as a version", || {
        versions(&state) == 2
    });
    let table = rtguard_config(&state, &["history", CONFIG]);
    let table = String::from_utf8_lossy(&table.stdout);
    assert!(table.contains("(current)"), "{table}");

    let ino = std::fs::metadata(CONFIG).unwrap().ino();
    let out = rtguard_config(&state, &["restore", CONFIG]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("to version 1"));
    assert_eq!(std::fs::read(CONFIG).unwrap(), original, "byte for byte");
    assert_eq!(
        std::fs::metadata(CONFIG).unwrap().ino(),
        ino,
        "restored in place"
    );
    expect_denied(&format!("rm -f {CONFIG}"));
    // Restoring what the file already holds is refused with a reason.
    let again = rtguard_config(&state, &["restore", CONFIG, "--version", "1"]);
    assert_eq!(again.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&again.stderr).contains("already holds version 1"));

    let (status, log) = guard.stop();
    assert!(status.success(), "{log}");
    let records = std::fs::read_to_string(&audit).unwrap();
    let edits: Vec<&str> = records
        .lines()
        .filter(|l| l.contains(r#""op":"edit""#) && l.contains(CONFIG))
        .collect();
    assert!(
        edits.iter().any(|l| l.contains(r#""comm":"sh""#)),
        "the truncation is recorded:\n{records}"
    );
    assert!(
        edits
            .iter()
            .any(|l| l.contains(r#""comm":"rtguard""#) && l.contains(r#""restore""#)),
        "the restore is recorded with its command line:\n{records}"
    );
}

#[test]
fn dpkg_keeps_or_replaces_an_edited_conffile_as_asked_with_the_guard_on() {
    let dir = tempfile::tempdir().unwrap();
    let audit = dir.path().join("audit.jsonl");
    let original = std::fs::read(CONFIG).unwrap();
    let _restore = RestoreConfig(original.clone());
    let deb = containerd_deb();
    let edited = b"# edited by the operator\nversion = 2\n";
    std::fs::write(CONFIG, edited).unwrap();

    // Keep the operator's version: dpkg leaves the package's beside it as *.dpkg-dist.
    package_changed_the_conffile();
    let guard = start_production(&audit, &[]);
    reinstall_answering(&deb, "--force-confold");
    assert_eq!(std::fs::read(CONFIG).unwrap(), edited);
    let dist = format!("{CONFIG}.dpkg-dist");
    assert_eq!(std::fs::read(&dist).unwrap(), original);
    let (status, log) = guard.stop();
    assert!(status.success(), "{log}");

    // Take the package's: the operator's is kept as *.dpkg-old.
    package_changed_the_conffile();
    let guard = start_production(&audit, &[]);
    reinstall_answering(&deb, "--force-confnew");
    assert_eq!(std::fs::read(CONFIG).unwrap(), original);
    let old = format!("{CONFIG}.dpkg-old");
    assert_eq!(std::fs::read(&old).unwrap(), edited);
    assert!(
        !Path::new(&dist).exists(),
        "dpkg drops the *.dpkg-dist it left"
    );
    expect_verified(&["containerd"]);

    // Once dpkg is done the new conffile is protected, and the operator's old one, now
    // dpkg's leftover, is not: it may be cleaned up.
    let latency = wait_until_removal_refused(CONFIG);
    println!("  conffile protected again {latency:?} after dpkg returned");
    expect_allowed(&format!("rm {old}"));
    expect_denied(&format!("rm {CONFIG}"));
    let (status, log) = guard.stop();
    assert!(status.success(), "{log}");
}

/// Reinstalls `deb` with dpkg, answering its conffile question with `answer`; nothing
/// in it may be refused.
fn reinstall_answering(deb: &Path, answer: &str) {
    let out = sh(&format!(
        "timeout 120 dpkg -i {answer} {} 2>&1",
        deb.display()
    ));
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{said}");
    assert!(!said.contains("Operation not permitted"), "{said}");
}

/// Makes dpkg believe the installed version shipped another config.toml, so a reinstall
/// finds the conffile changed both by the package and by the operator: the case where
/// dpkg asks, and `--force-confold` / `--force-confnew` answer. (The same version again
/// would otherwise leave an edited conffile alone.) It edits dpkg's status file, which
/// only dpkg may write while a guard runs: call it with none running.
fn package_changed_the_conffile() {
    expect_allowed(&format!(
        "sed -i -E 's#^ ({CONFIG}) [0-9a-f]{{32}}# \\1 00000000000000000000000000000000#' /var/lib/dpkg/status \
         && grep -q '{CONFIG} 00000000000000000000000000000000' /var/lib/dpkg/status"
    ));
}

/// Waits until moving `path` away is refused, which is how protection shows from
/// outside. While it is not, the probe moves the file away and straight back.
fn wait_until_removal_refused(path: &str) -> std::time::Duration {
    let start = std::time::Instant::now();
    loop {
        let out = sh(&format!(
            "mv {path} {path}.probe-away 2>&1 && mv {path}.probe-away {path}"
        ));
        if !out.status.success() {
            assert!(
                String::from_utf8_lossy(&out.stdout).contains("Operation not permitted"),
                "{}",
                String::from_utf8_lossy(&out.stdout)
            );
            return start.elapsed();
        }
        assert!(
            start.elapsed().as_secs() < 60,
            "{path} never protected again"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}
