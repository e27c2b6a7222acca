//! The runtime's configuration under the production policy: operators and configuration
//! management edit it the ways they do (in place, by atomic replacement, with temp and
//! swap files), while removing it or moving it away stays refused.

use std::{os::unix::fs::MetadataExt as _, path::Path};

use crate::common::*;

const CONFIG: &str = "/etc/containerd/config.toml";

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
