//! The file layer against every destructive operation and path trick an uninstaller,
//! a tool or a person would use. Each case asserts the failure (EPERM) and that every
//! protected file's bytes, mode, owner and inode are unchanged.

use std::{
    collections::BTreeMap,
    os::unix::fs::MetadataExt as _,
    path::{Path, PathBuf},
};

use crate::common::*;

/// A miniature runtime installation in a scratch directory:
///
/// ```text
/// bin/containerd, bin/ctr          protected objects (--protect)
/// etc/containerd/{config.toml,empty/}   protected tree (--protect-tree)
/// lib/containerd/{meta.db,io/state}     protected tree, trusted writer: tools/writer
/// tools/writer                     a copy of /bin/sh, trusted for the trees
/// unprotected, hardlink, symlink   an ordinary file, and other names of bin/containerd
/// ```
struct Install {
    _dir: tempfile::TempDir,
    root: PathBuf,
}

impl Install {
    fn new() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("rtguard-install-")
            .tempdir_in("/tmp")
            .unwrap();
        let root = dir.path().to_owned();
        write_runtime_installation(&root);
        std::fs::create_dir_all(root.join("etc/containerd/empty")).unwrap();
        write_file(
            &root.join("etc/containerd/config.toml"),
            b"version = 2\n",
            0o644,
        );
        std::fs::hard_link(root.join("bin/containerd"), root.join("hardlink")).unwrap();
        std::os::unix::fs::symlink(root.join("bin/containerd"), root.join("symlink")).unwrap();
        Self { _dir: dir, root }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }

    fn p(&self, rel: &str) -> String {
        self.path(rel).display().to_string()
    }

    /// Everything the guard protects, as paths.
    fn protected(&self) -> Vec<PathBuf> {
        let mut paths = vec![
            self.path("bin"),
            self.path("bin/containerd"),
            self.path("bin/ctr"),
            self.path("hardlink"),
        ];
        paths.extend(walk(&self.path("etc/containerd")));
        paths.extend(walk(&self.path("lib/containerd")));
        paths
    }

    fn guard_args(&self, extra: &[&str]) -> Vec<String> {
        let mut args: Vec<String> = [
            "--protect",
            &self.p("bin/containerd"),
            "--protect",
            &self.p("bin/ctr"),
            "--protect-tree",
            &self.p("etc/containerd"),
            "--protect-tree",
            &self.p("lib/containerd"),
            "--trust",
            &self.p("tools/writer"),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        args.extend(extra.iter().map(|s| s.to_string()));
        args
    }

    fn start(&self, extra: &[&str]) -> RunningGuard {
        let args = self.guard_args(extra);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        start_ready_guard(&args)
    }
}

/// The destructive cases, each a shell line an operator or a tool would run. Every one
/// must fail with EPERM's message, except where the tool reports an earlier error of its
/// own (see `denied_under_another_message`).
fn destructive_cases(i: &Install, scratch: &Path) -> Vec<(&'static str, String)> {
    let s = scratch.display();
    vec![
        ("rm", format!("rm -f {}", i.p("bin/containerd"))),
        ("rm -rf on a tree", format!("rm -rf {}", i.p("etc/containerd"))),
        ("rm -rf on a data tree", format!("rm -rf {}", i.p("lib/containerd"))),
        ("unlink", format!("unlink {}", i.p("bin/ctr"))),
        ("rmdir in a tree", format!("rmdir {}", i.p("etc/containerd/empty"))),
        ("mv of", format!("mv {} {s}/moved", i.p("bin/containerd"))),
        ("mv over", format!("mv {} {}", i.p("unprotected"), i.p("bin/containerd"))),
        ("mv of a parent", format!("mv {} {}", i.p("bin"), i.p("bin.old"))),
        ("mv of a tree root", format!("mv {} {s}/moved-tree", i.p("lib/containerd"))),
        ("mv within a tree", format!("mv {} {}", i.p("lib/containerd/meta.db"), i.p("lib/containerd/x"))),
        ("cp over", format!("cp {} {}", i.p("unprotected"), i.p("bin/containerd"))),
        (": >", format!(": > {}", i.p("bin/containerd"))),
        (": > in a tree", format!(": > {}", i.p("etc/containerd/config.toml"))),
        ("truncate -s0", format!("truncate -s0 {}", i.p("bin/containerd"))),
        ("dd of=", format!("dd if=/dev/zero of={} count=1", i.p("bin/ctr"))),
        ("tar -x over", format!("tar -x -C {} -f {s}/over.tar", i.root.display())),
        ("tar -x --overwrite over", format!("tar -x --overwrite -C {} -f {s}/over.tar", i.root.display())),
        ("install -m755 over", format!("install -m755 {} {}", i.p("unprotected"), i.p("bin/containerd"))),
        ("ln -sf over", format!("ln -sf {} {}", i.p("unprotected"), i.p("bin/containerd"))),
        ("chmod 000", format!("chmod 000 {}", i.p("bin/containerd"))),
        ("chmod in a tree", format!("chmod 000 {}", i.p("lib/containerd/meta.db"))),
        ("chown nobody", format!("chown nobody {}", i.p("bin/containerd"))),
        ("rm through a hard link", format!("rm -f {}", i.p("hardlink"))),
        (": > through a hard link", format!(": > {}", i.p("hardlink"))),
        (": > through a symlink", format!(": > {}", i.p("symlink"))),
        ("rm through /proc/self/root", format!("rm -f /proc/self/root{}", i.p("bin/containerd"))),
        ("rm through ..", format!("rm -f {}/../bin/containerd", i.p("tools"))),
        (
            "rm through a bind mount of the parent",
            format!(
                "mkdir -p {s}/bind && mount --bind {} {s}/bind && trap 'umount {s}/bind' EXIT && rm -f {s}/bind/containerd",
                i.p("bin")
            ),
        ),
        (
            "rm -rf through a bind mount of a tree",
            format!(
                "mkdir -p {s}/bindtree && mount --bind {} {s}/bindtree && trap 'umount {s}/bindtree' EXIT && rm -rf {s}/bindtree/io",
                i.p("lib/containerd")
            ),
        ),
        (
            "rm in a chroot",
            format!(
                "set -e; c={s}/chroot; mkdir -p $c/usr $c/data; mount --bind /usr $c/usr; \
                 ln -sfn usr/bin $c/bin; ln -sfn usr/lib $c/lib; ln -sfn usr/lib64 $c/lib64; \
                 mount --bind {} $c/data; trap 'umount $c/data $c/usr' EXIT; \
                 chroot $c /bin/rm -f /data/containerd",
                i.p("bin")
            ),
        ),
        (
            "rm in a fresh mount namespace",
            format!(
                "unshare -m sh -c 'mount -t tmpfs none /mnt && mkdir /mnt/b && mount --bind {} /mnt/b && rm -f /mnt/b/containerd'",
                i.p("bin")
            ),
        ),
    ]
}

/// A tar archive holding bin/containerd with other bytes, for `tar -x` over.
fn over_tar(scratch: &Path) {
    let src = scratch.join("tarsrc/bin");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("containerd"), b"replaced by tar\n").unwrap();
    expect_allowed(&format!(
        "tar -c -C {}/tarsrc -f {}/over.tar bin",
        scratch.display(),
        scratch.display()
    ));
}

fn run_destructive_cases(hooks: &str) {
    let install = Install::new();
    let scratch = tempfile::tempdir_in("/tmp").unwrap();
    over_tar(scratch.path());
    let before = snapshot(&install.protected());
    let guard = install.start(&["--file-hooks", hooks]);
    assert_eq!(guard.status, enforcing_status());

    let mut failures = Vec::new();
    for (name, script) in destructive_cases(&install, scratch.path()) {
        let result = std::panic::catch_unwind(|| {
            if denied_under_another_message(name) {
                expect_failed(&script)
            } else {
                expect_denied(&script)
            }
        });
        let after = snapshot(&install.protected());
        let changed = changes(&before, &after);
        match (result, changed.is_empty()) {
            (Ok(()), true) => println!("  {hooks} hooks: {name}: denied, nothing changed"),
            (Ok(()), false) => failures.push(format!("{name}: denied but changed {changed:?}")),
            (Err(_), _) => failures.push(format!(
                "{name}: not denied (`{script}`), changed {changed:?}"
            )),
        }
    }
    let (status, log) = guard.stop();
    assert!(status.success(), "{log}");
    assert!(
        failures.is_empty(),
        "{} case(s) failed:\n{}\nguard log:\n{log}",
        failures.len(),
        failures.join("\n")
    );
    for op in ["unlink", "rmdir", "rename", "open-write"] {
        assert!(
            log.contains(&format!("blocked {op} of a protected object")),
            "no blocked {op} in:\n{log}"
        );
    }
}

/// GNU tar extracts with O_EXCL first; on EEXIST it unlinks the old file and retries. When
/// the unlink is denied it reports the first error ("File exists"), not EPERM. The guard's
/// log still has to show the denied unlink, which `run_destructive_cases` checks.
fn denied_under_another_message(case: &str) -> bool {
    case == "tar -x over"
}

fn changes(
    before: &BTreeMap<PathBuf, FileState>,
    after: &BTreeMap<PathBuf, FileState>,
) -> Vec<String> {
    let mut out = Vec::new();
    for (path, state) in before {
        match after.get(path) {
            None => out.push(format!("{} removed", path.display())),
            Some(now) if now != state => {
                out.push(format!("{} changed: {state:?} -> {now:?}", path.display()))
            }
            Some(_) => {}
        }
    }
    out
}

#[test]
fn every_destructive_operation_is_denied_through_path_hooks() {
    run_destructive_cases("path");
}

#[test]
fn every_destructive_operation_is_denied_through_the_inode_fallback() {
    run_destructive_cases("inode");
}

#[test]
fn unprotected_operations_keep_working() {
    let install = Install::new();
    let guard = install.start(&[]);
    // Next to protected objects, in a protected object's parent, and through a symlink.
    expect_allowed(&format!("rm -f {}", install.p("symlink")));
    expect_allowed(&format!(
        "echo new > {}/new && mv {0}/new {0}/renamed && rm {0}/renamed",
        install.p("bin")
    ));
    expect_allowed(&format!(
        "cp {} {}/copy && chmod 600 {1}/copy && rm {1}/copy",
        install.p("bin/containerd"),
        install.root.display()
    ));
    expect_allowed(&format!(
        "cat {} > /dev/null",
        install.p("lib/containerd/meta.db")
    ));

    // An ordinary workload on the same filesystem as the protected trees: untar and
    // remove about 10k files.
    let work = tempfile::tempdir_in("/tmp").unwrap();
    let w = work.path().display();
    expect_allowed(&format!(
        "set -e; mkdir -p {w}/src; cd {w}/src; for d in $(seq 1 100); do mkdir d$d; \
         for f in $(seq 1 100); do echo $d$f > d$d/f$f; done; done; \
         tar -c -f {w}/tree.tar -C {w} src; rm -rf {w}/src; \
         tar -x -f {w}/tree.tar -C {w}; test $(find {w}/src -type f | wc -l) -eq 10000; \
         rm -rf {w}/src {w}/tree.tar"
    ));
    let (status, log) = guard.stop();
    assert!(status.success(), "{log}");
    assert!(
        !log.contains("of a protected object"),
        "unexpected decisions:\n{log}"
    );
}

#[test]
fn files_created_in_a_tree_after_start_are_protected() {
    let install = Install::new();
    let _guard = install.start(&[]);
    // Written by the tree's trusted writer, so creation itself is allowed.
    let new = install.path("lib/containerd/io/created-later");
    expect_allowed(&format!(
        "{} -c 'echo fresh > {}'",
        install.p("tools/writer"),
        new.display()
    ));
    let before = snapshot(std::slice::from_ref(&new));
    expect_denied(&format!("rm -f {}", new.display()));
    expect_denied(&format!(": > {}", new.display()));
    assert_eq!(snapshot(std::slice::from_ref(&new)), before);
    assert_eq!(std::fs::read(&new).unwrap(), b"fresh\n");
}

/// The guard remembers directories with nothing protected above them, so that ordinary
/// work does not walk up to the root on every write. A directory moved into a tree (or
/// whose parent is) must be protected from the next operation on.
#[test]
fn a_directory_moved_into_a_tree_is_protected_at_once() {
    let install = Install::new();
    let _guard = install.start(&[]);
    for d in ["outside/moved", "outside/parent/child"] {
        std::fs::create_dir_all(install.path(d)).unwrap();
    }
    for f in ["moved", "parent/child"] {
        for name in ["a", "b"] {
            std::fs::write(install.path(&format!("outside/{f}/{name}")), b"kept\n").unwrap();
        }
    }
    // Unlinks and writes in both directories: each walk finds no tree, and is remembered.
    for dir in ["outside/moved", "outside/parent/child"] {
        let d = install.p(dir);
        expect_allowed(&format!("rm {d}/a && echo new > {d}/c && : > {d}/c"));
    }
    // One directory moves itself, the other's parent moves, into a protected tree.
    let tree = install.p("lib/containerd");
    expect_allowed(&format!(
        "mv {0}/moved {tree}/moved && mv {0}/parent {tree}/parent",
        install.p("outside")
    ));
    let inside = [
        install.path("lib/containerd/moved/b"),
        install.path("lib/containerd/parent/child/b"),
    ];
    let before = snapshot(&inside);
    assert_eq!(before.len(), 2);
    for f in &inside {
        let f = f.display();
        expect_denied(&format!("rm -f {f}"));
        expect_denied(&format!(": > {f}"));
        expect_denied(&format!("mv {f} {f}.old"));
    }
    expect_denied(&format!("rm -rf {tree}/parent"));
    assert_eq!(snapshot(&inside), before);
    // And the other way: out of the tree is a rename of protected directories, refused.
    expect_denied(&format!("mv {tree}/moved {}/moved", install.p("outside")));
}

/// The guard also remembers which tree a directory is in, and directories an exclusion by
/// name cleared. Each remembered answer is the walk's own, and gives way as soon as the
/// walk would answer otherwise:
/// - an exclusion by name directly below the tree root decides for that name only: work in
///   an excluded directory (or file) created after the start must not open the root's
///   other entries;
/// - records made from a remembered tree root still name the file by its path;
/// - a directory the trusted writer moves out of the tree is unprotected at the next
///   operation, and protected again once moved back in;
/// - a tree dropped from the policy protects nothing after the reload.
#[test]
fn the_tree_walk_cache_answers_as_the_walk_would() {
    let scratch = tempfile::tempdir_in("/tmp").unwrap();
    let s = scratch.path();
    let tree = s.join("data");
    for d in ["keep", "work/sub"] {
        std::fs::create_dir_all(tree.join(d)).unwrap();
    }
    for f in ["keep.txt", "work/sub/f1", "work/sub/f2", "work/sub/f3"] {
        std::fs::write(tree.join(f), b"kept\n").unwrap();
    }
    let writer = s.join("writer");
    std::fs::copy("/bin/sh", &writer).unwrap();
    let policy = s.join("policy.toml");
    let policy_with = |trees: &str| {
        format!(
            "environment = \"test\"\nmode = \"enforce\"\n\n\
             [[paths]]\nname = \"writer\"\npaths = [\"{w}\"]\n\n{trees}",
            w = writer.display()
        )
    };
    std::fs::write(
        &policy,
        policy_with(&format!(
            "[[trees]]\nname = \"data\"\npaths = [\"{t}\"]\n\
             trusted_writers = [\"{w}\"]\nexclude = [\"{t}/scratch\"]\n",
            t = tree.display(),
            w = writer.display()
        )),
    )
    .unwrap();
    let audit = s.join("audit.jsonl");
    let guard = start_ready_guard(&[
        "--policy",
        policy.to_str().unwrap(),
        "--audit-log",
        audit.to_str().unwrap(),
    ]);
    let t = tree.display();

    // Excluded by name, as a directory and as a file, each created after the start: every
    // operation on it passes, and each is followed by the same operation on a protected
    // neighbour in the same directory, the tree root.
    expect_allowed(&format!(
        "mkdir {t}/scratch && echo x > {t}/scratch/f && rm {t}/scratch/f && rmdir {t}/scratch"
    ));
    expect_denied(&format!("rmdir {t}/keep"));
    expect_allowed(&format!("echo x > {t}/scratch"));
    expect_denied(&format!(": > {t}/keep.txt"));
    expect_allowed(&format!("rm {t}/scratch"));
    expect_denied(&format!("rm -f {t}/keep.txt"));
    assert!(tree.join("keep").is_dir());
    assert_eq!(std::fs::read(tree.join("keep.txt")).unwrap(), b"kept\n");

    // Two refusals in one directory: the first walks, the second is answered from what
    // the first found. Both records name the file by its path.
    expect_denied(&format!("rm -f {t}/work/sub/f1"));
    expect_denied(&format!("rm -f {t}/work/sub/f2"));
    // The daemon writes a record after the refusal, from the ring buffer: wait for it.
    for f in ["f1", "f2"] {
        let path = format!("{t}/work/sub/{f}");
        eventually(&format!("a blocked record for {path}"), || {
            std::fs::read_to_string(&audit)
                .unwrap_or_default()
                .lines()
                .any(|l| {
                    l.contains(r#""decision":"blocked""#)
                        && l.contains(&format!(r#""path":"{path}""#))
                })
        });
    }

    // Out of the tree with the writer's hand, and back in with anyone's.
    let outside = s.join("outside");
    let o = outside.display();
    expect_allowed(&format!("{} -c 'mv {t}/work {o}'", writer.display()));
    expect_allowed(&format!("rm {o}/sub/f1"));
    expect_allowed(&format!("mv {o} {t}/work"));
    expect_denied(&format!("rm -f {t}/work/sub/f2"));
    assert_eq!(std::fs::read(tree.join("work/sub/f2")).unwrap(), b"kept\n");

    // The tree leaves the policy: after the reload its files are anyone's.
    std::fs::write(&policy, policy_with("")).unwrap();
    guard.signal(nix::sys::signal::Signal::SIGHUP);
    eventually("the dropped tree is unprotected", || {
        sh(&format!("rm -f {t}/work/sub/f2")).status.success()
    });
    expect_allowed(&format!("rm {t}/work/sub/f3 && rmdir {t}/keep"));
    let (status, log) = guard.stop();
    assert!(status.success(), "{log}");
}

/// A record names a file below a tree root by its path: the root's, then the names the
/// kernel collected on its way up. A file deeper than the kernel collects names for is
/// marked as cut short, and its path still ends in the file's own name.
#[test]
fn records_name_files_below_a_tree_root_by_their_path() {
    let install = Install::new();
    let deep = format!("lib/containerd/{}", ["d"; 12].join("/"));
    std::fs::create_dir_all(install.path(&deep)).unwrap();
    std::fs::write(install.path(&format!("{deep}/deep-file")), b"kept\n").unwrap();
    let audit = install.path("audit.jsonl");
    let guard = install.start(&["--audit-log", audit.to_str().unwrap()]);
    expect_denied(&format!("rm -f {}", install.p("lib/containerd/io/state")));
    expect_denied(&format!(
        "rm -f {}",
        install.p(&format!("{deep}/deep-file"))
    ));
    let (_, log) = guard.stop();
    let records = std::fs::read_to_string(&audit).unwrap();
    let blocked = |path: &str| {
        records.lines().any(|l| {
            l.contains(r#""decision":"blocked""#) && l.contains(&format!(r#""path":"{path}""#))
        })
    };
    assert!(
        blocked(&install.p("lib/containerd/io/state")),
        "{records}\n{log}"
    );
    // The target and the 7 directories above it; the other 5 are left out.
    let cut = format!(
        "{}/…/{}/deep-file",
        install.p("lib/containerd"),
        ["d"; 7].join("/")
    );
    assert!(blocked(&cut), "no record for {cut}:\n{records}");
}

#[test]
fn a_trusted_writer_manages_its_tree_while_others_are_denied() {
    let install = Install::new();
    let guard = install.start(&[]);
    let state = install.p("lib/containerd/io/state");
    expect_denied(&format!("rm -f {state}"));
    // The writer itself, and a child it starts (as the runtime starts its shims).
    let writer = install.p("tools/writer");
    expect_allowed(&format!("{writer} -c 'echo stopped > {state}'"));
    assert_eq!(std::fs::read(&state).unwrap(), b"stopped\n");
    expect_allowed(&format!(
        "{writer} -c 'rm {state} && rmdir {}'",
        install.p("lib/containerd/io")
    ));
    assert!(!Path::new(&state).exists());
    // Everyone else is still denied on the same tree.
    expect_denied(&format!("rm -f {}", install.p("lib/containerd/meta.db")));
    let (_, log) = guard.stop();
    assert!(
        !log.contains("tools/writer"),
        "trusted writes must not be reported:\n{log}"
    );
}

#[test]
fn audit_mode_lets_operations_through_and_reports_would_block() {
    let install = Install::new();
    let guard = install.start(&["--mode", "audit"]);
    assert_eq!(
        guard.status,
        format!("auditing (not blocking) ({})", booted_mechanism().1)
    );
    expect_allowed(&format!("chmod 700 {}", install.p("bin/ctr")));
    expect_allowed(&format!(": > {}", install.p("etc/containerd/config.toml")));
    expect_allowed(&format!(
        "mv {} {}",
        install.p("bin/ctr"),
        install.p("bin/ctr.moved")
    ));
    expect_allowed(&format!("rm -rf {}", install.p("lib/containerd")));
    assert_eq!(
        std::fs::metadata(install.path("bin/ctr.moved"))
            .unwrap()
            .mode()
            & 0o777,
        0o700
    );
    assert!(!install.path("lib/containerd").exists());
    let (_, log) = guard.stop();
    for op in ["chmod", "open-write", "rename", "unlink", "rmdir"] {
        assert!(
            log.contains(&format!("would-block {op} of a protected object")),
            "no would-block {op} in:\n{log}"
        );
    }
    assert!(
        !log.contains("blocked"),
        "audit mode must not block:\n{log}"
    );
    assert!(
        log.contains(&install.p("lib/containerd/io/state")),
        "tree paths are named:\n{log}"
    );
}

#[test]
fn dpkg_upgrade_passes_when_allowed_and_the_new_file_is_protected_again() {
    let deb = containerd_deb();
    let bin = Path::new("/usr/bin/containerd");
    let before = snapshot(&[bin.to_owned()]);
    let guard = start_ready_guard(&[
        "--upgradable",
        "/usr/bin/containerd",
        "--upgradable",
        "/usr/bin/ctr",
    ]);
    expect_denied("rm -f /usr/bin/containerd");

    expect_allowed(&format!("dpkg -i {}", deb.display()));
    assert_eq!(dpkg_status("containerd"), "install ok installed");
    let after = snapshot(&[bin.to_owned()]);
    assert_ne!(after[bin].ino, before[bin].ino, "dpkg installs a new inode");
    assert_eq!(
        after[bin].sha256, before[bin].sha256,
        "same version, same bytes"
    );

    let latency = wait_until_protected(bin);
    println!("  /usr/bin/containerd protected again {latency:?} after dpkg returned");
    expect_denied("rm -f /usr/bin/containerd");
    assert!(bin.exists());
    let (_, log) = guard.stop();
    assert!(
        // dpkg renames X.dpkg-new over X: a replacement from the same directory.
        log.contains("allowed-upgrade replace of a protected object"),
        "{log}"
    );
    assert!(
        log.contains("re-protected after the package manager replaced protected files"),
        "{log}"
    );
    expect_verified(&["containerd"]);
}

#[test]
fn dpkg_cannot_replace_a_file_that_is_not_upgradable() {
    let deb = containerd_deb();
    let bin = PathBuf::from("/usr/bin/containerd");
    let before = snapshot(std::slice::from_ref(&bin));
    let guard = start_ready_guard(&["--protect", "/usr/bin/containerd"]);
    let out = sh(&format!("dpkg -i {}", deb.display()));
    assert!(!out.status.success(), "dpkg replaced a protected file");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("Operation not permitted"), "{stderr}");
    assert_eq!(
        snapshot(std::slice::from_ref(&bin)),
        before,
        "bytes and inode intact"
    );
    // dpkg put its backups back, so every file verifies, but it records the interrupted
    // upgrade: this is why destructive package commands must be stopped at exec, before
    // dpkg starts (the exec layer).
    expect_verified(&["containerd"]);
    assert_eq!(
        dpkg_status("containerd"),
        "install reinstreq half-installed"
    );
    drop(guard);
    // Without the guard the same reinstall completes, leaving the VM as it was.
    expect_allowed(&format!("dpkg -i {}", deb.display()));
    assert_eq!(dpkg_status("containerd"), "install ok installed");
}
