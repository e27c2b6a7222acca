//! The file layer's fast path: the common case ("not protected", or a tree's trusted
//! writer at work in it) decided in the hook, with the full decision only for what could
//! be refused. Every case here first makes the guard remember the directories involved
//! (an operation of the same kind in each), so that the fast path, not the walk, answers
//! first; a fast path that allowed what the full decision refuses lets the case through.

use crate::common::*;

/// ```text
/// bin/containerd, bin/ctr                protected objects (bin/ is their ancestor)
/// hardlink                               another name of bin/containerd
/// lib/containerd/{meta.db,io/state}      protected tree, trusted writer: tools/writer
/// outside/                               an ordinary directory
/// ```
struct Installation {
    _dir: tempfile::TempDir,
    root: std::path::PathBuf,
}

impl Installation {
    fn new() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("rtguard-fast-")
            .tempdir_in("/tmp")
            .unwrap();
        let root = dir.path().to_owned();
        write_runtime_installation(&root);
        std::fs::create_dir_all(root.join("outside")).unwrap();
        std::fs::hard_link(root.join("bin/containerd"), root.join("hardlink")).unwrap();
        Self { _dir: dir, root }
    }

    fn p(&self, rel: &str) -> String {
        self.root.join(rel).display().to_string()
    }

    fn start(&self) -> RunningGuard {
        start_ready_guard(&[
            "--protect",
            &self.p("bin/containerd"),
            "--protect",
            &self.p("bin/ctr"),
            "--protect-tree",
            &self.p("lib/containerd"),
            "--trust",
            &self.p("tools/writer"),
        ])
    }

    /// An unlink, a rename, a write-open and a chmod of a scratch file in `dir`: each
    /// leaves `dir` remembered as holding no tree for that operation.
    fn warm(&self, dir: &str) {
        let d = self.p(dir);
        expect_allowed(&format!(
            "set -e; echo x > {d}/.warm; chmod 600 {d}/.warm; mv {d}/.warm {d}/.warm2; \
             : > {d}/.warm2; rm {d}/.warm2"
        ));
    }
}

#[test]
fn the_fast_path_never_allows_what_the_full_decision_refuses() {
    let i = Installation::new();
    let protected = [
        "bin",
        "bin/containerd",
        "bin/ctr",
        "hardlink",
        "lib/containerd",
        "lib/containerd/meta.db",
        "lib/containerd/io",
        "lib/containerd/io/state",
    ]
    .map(|rel| i.root.join(rel));
    let before = snapshot(&protected);
    let guard = i.start();
    for dir in [".", "bin", "lib", "outside"] {
        i.warm(dir);
    }
    // A protected object, in a directory remembered as holding no tree.
    for op in ["rm -f", "chmod 000", ": >", "truncate -s0"] {
        expect_denied(&format!("{op} {}", i.p("bin/containerd")));
    }
    expect_denied(&format!("mv {} {}/moved", i.p("bin/ctr"), i.p("outside")));
    // Renamed over from a remembered directory.
    expect_denied(&format!(
        "echo new > {0}/over && mv {0}/over {1}",
        i.p("outside"),
        i.p("bin/ctr")
    ));
    // The same object by another name, in another remembered directory.
    expect_denied(&format!("rm -f {}", i.p("hardlink")));
    // An ancestor of protected objects, renamed in a remembered directory.
    expect_denied(&format!("mv {} {}", i.p("bin"), i.p("bin.old")));
    // A tree root, in a remembered directory, and the tree's members.
    expect_denied(&format!(
        "mv {} {}/moved",
        i.p("lib/containerd"),
        i.p("outside")
    ));
    expect_denied(&format!("rm -rf {}", i.p("lib/containerd")));
    expect_denied(&format!("rm -f {}", i.p("lib/containerd/io/state")));
    expect_denied(&format!(": > {}", i.p("lib/containerd/meta.db")));
    assert_eq!(snapshot(&protected), before, "protected objects changed");

    // The tree's trusted writer passes where everyone else is refused.
    let state = i.p("lib/containerd/io/state");
    expect_allowed(&format!(
        "{} -c 'echo stopped > {state}'",
        i.p("tools/writer")
    ));
    assert_eq!(std::fs::read(&state).unwrap(), b"stopped\n");
    expect_denied(&format!("rm -f {state}"));

    // Now the cache remembers `io` as in the tree. The writer's own writes there are
    // answered in the hook; the commands it starts, by the full decision's walk over
    // their ancestors. Everyone else in the same directory is still refused.
    let w = i.p("tools/writer");
    let io = i.p("lib/containerd/io");
    expect_allowed(&format!("{w} -c 'echo a > {io}/new; echo b >> {io}/new'"));
    expect_allowed(&format!(
        "{w} -c 'echo x > {io}/w1 && mv {io}/w1 {io}/w2 && rm {io}/w2'"
    ));
    for op in [": >", "rm -f", "chmod 000"] {
        expect_denied(&format!("{op} {io}/new"));
    }
    expect_denied(&format!("mv {io}/new {io}/new2"));
    assert_eq!(std::fs::read(format!("{io}/new")).unwrap(), b"a\nb\n");
    expect_denied(&format!("rm -f {state}"));
    assert_eq!(std::fs::read(&state).unwrap(), b"stopped\n");

    // And ordinary work in the remembered directories still passes.
    for dir in [".", "bin", "lib", "outside"] {
        i.warm(dir);
    }
    let (status, log) = guard.stop();
    assert!(status.success(), "{log}");
    for op in ["unlink", "rename", "open-write", "chmod"] {
        assert!(
            log.contains(&format!("blocked {op} of a protected object")),
            "no blocked {op} in:\n{log}"
        );
    }
}

/// What a decision costs: the kernel's run counts and times per program for a file-heavy
/// workload on the filesystem of a protected tree, and the instructions verified to load
/// each program. Printed for comparison between builds; the times are the guest's, under
/// emulation, so only their ratios mean anything.
#[test]
fn cost_of_unprotected_decisions() {
    let i = Installation::new();
    let guard = i.start();
    std::fs::write(guard_user::host::usage::BPF_STATS_SYSCTL, "1\n").unwrap();
    let work = i.p("outside");
    expect_allowed(&format!(
        "set -e; cd {work}; for n in $(seq 1 500); do echo $n > f$n; chmod 600 f$n; \
         mv f$n g$n; rm g$n; done"
    ));
    let usage = guard_user::host::usage::of_process(guard.pid()).unwrap();
    std::fs::write(guard_user::host::usage::BPF_STATS_SYSCTL, "0\n").unwrap();
    let mut verified = 0;
    for p in &usage.programs {
        verified += p.verified_insns;
        match p.mean_ns() {
            Some(mean) => println!(
                "  cost: {:<16} {:>6} runs, {mean:>8.0} ns per run, {:>6} instructions verified",
                p.name, p.run_count, p.verified_insns
            ),
            None => println!(
                "  cost: {:<16} {:>6} runs, {:>8} ns per run, {:>6} instructions verified",
                p.name, 0, "-", p.verified_insns
            ),
        }
    }
    println!("  cost: {verified} instructions verified in all");
    drop(guard);
}

/// The fast path remembers, per CPU, the last filesystem it found holding no tree root,
/// under the policy epoch of that moment. A reload that roots a tree on that filesystem
/// moves the epoch on, and CPU 0's next operations there are decided again. The work runs
/// on CPU 0, the daemon and this test's own threads on CPU 1, so that little else on
/// CPU 0 replaces what it remembers; even the wait for the reload polls from CPU 0, so a
/// word that outlived its epoch keeps the test waiting until it fails.
#[test]
fn a_filesystem_remembered_without_trees_is_looked_at_again_when_a_tree_arrives() {
    let dir = tempfile::Builder::new()
        .prefix("rtguard-treeless-")
        .tempdir_in("/var/tmp")
        .unwrap();
    let mnt = Mounted::new("-t tmpfs rtguard-test", dir.path().join("mnt"));
    let data = mnt.path().join("data");
    std::fs::create_dir(&data).unwrap();
    let member = data.join("meta.db");
    std::fs::write(&member, "state\n").unwrap();
    let other = dir.path().join("other");
    std::fs::write(&other, "other\n").unwrap();

    let policy = dir.path().join("policy.toml");
    let header = format!(
        "environment = \"test\"\nmode = \"enforce\"\n\n\
         [[paths]]\nname = \"other\"\npaths = [\"{}\"]\n",
        other.display()
    );
    std::fs::write(&policy, &header).unwrap();
    let guard = start_ready_guard(&["--policy", policy.to_str().unwrap()]);
    let (_, status) = guard.status_cmd();
    assert!(
        status.contains(r#""tree_cache": "on""#),
        "the tree-walk cache is off, and nothing is remembered: {status}"
    );
    let _pinned = [
        PinnedToCpu1::pin(guard.pid()),
        PinnedToCpu1::pin(std::process::id()),
    ];
    let on_cpu0 = |script: &str| format!("taskset -c 0 sh -c '{script}'");
    let d = data.display();
    // Work in the directory, and in the directory of what will be the tree's root: the
    // filesystem holds no tree, and CPU 0 remembers it.
    expect_allowed(&on_cpu0(&format!(
        "set -e; echo x > {d}/w; mv {d}/w {d}/w2; rm {d}/w2; echo y > {m}/w; rm {m}/w",
        m = mnt.path().display()
    )));

    std::fs::write(
        &policy,
        format!(
            "{header}\n[[trees]]\nname = \"data\"\npaths = [\"{}\"]\n",
            data.display()
        ),
    )
    .unwrap();
    guard.signal(nix::sys::signal::Signal::SIGHUP);
    let append = on_cpu0(&format!(": >> {}", member.display()));
    eventually("CPU 0 is refused a write in the new tree", || {
        !sh(&append).status.success()
    });
    for op in ["rm -f", ": >", "chmod 000"] {
        expect_denied(&on_cpu0(&format!("{op} {}", member.display())));
    }
    expect_denied(&on_cpu0(&format!("echo z > {d}/new")));
    assert_eq!(std::fs::read(&member).unwrap(), b"state\n");
    // Creating a name in a tree is not refused (only protected names are); the write is.
    assert_eq!(std::fs::read(data.join("new")).unwrap_or_default(), b"");
    let (status, log) = guard.stop();
    assert!(status.success(), "{log}");
}

/// Each CPU keeps a copy of the tree-walk cache's entries it used last, one per directory
/// slot, so that work in one directory skips the cache's hash lookup. Those copies answer
/// under the same epochs as the cache: a directory CPU 0 has just worked in is decided
/// again at its next operation once it moves into a tree, and once a reload roots a tree
/// above it. As above, the work runs on CPU 0 and everything else on CPU 1, so nothing
/// else on CPU 0 replaces what it holds.
#[test]
fn a_directory_each_cpu_remembers_is_decided_again_when_a_tree_takes_it_in() {
    let dir = tempfile::Builder::new()
        .prefix("rtguard-recent-")
        .tempdir_in("/var/tmp")
        .unwrap();
    // A filesystem of its own that holds a tree from the start: the cache, not the
    // treeless-filesystem word, answers for its directories.
    let mnt = Mounted::new("-t tmpfs rtguard-test", dir.path().join("mnt"));
    let m = mnt.path().display().to_string();
    for d in ["tree", "moved", "outer/work"] {
        std::fs::create_dir_all(mnt.path().join(d)).unwrap();
    }
    for f in ["tree/meta.db", "moved/kept", "outer/work/kept"] {
        std::fs::write(mnt.path().join(f), "state\n").unwrap();
    }
    let policy = dir.path().join("policy.toml");
    let header = format!(
        "environment = \"test\"\nmode = \"enforce\"\n\n\
         [[trees]]\nname = \"tree\"\npaths = [\"{m}/tree\"]\n"
    );
    std::fs::write(&policy, &header).unwrap();
    let guard = start_ready_guard(&["--policy", policy.to_str().unwrap()]);
    let _pinned = [
        PinnedToCpu1::pin(guard.pid()),
        PinnedToCpu1::pin(std::process::id()),
    ];
    let on_cpu0 = |script: &str| format!("taskset -c 0 sh -c '{script}'");
    let work_in = |d: &str| {
        on_cpu0(&format!(
            "set -e; echo x > {d}/w; mv {d}/w {d}/w2; chmod 600 {d}/w2; rm {d}/w2"
        ))
    };
    // CPU 0 works in both directories: each is found outside every tree, and held.
    expect_allowed(&work_in(&format!("{m}/moved")));
    expect_allowed(&work_in(&format!("{m}/outer/work")));

    // A rename moves one of them into the tree.
    expect_allowed(&on_cpu0(&format!("mv {m}/moved {m}/tree/moved")));
    let moved = format!("{m}/tree/moved/kept");
    for op in ["rm -f", ": >", "chmod 000"] {
        expect_denied(&on_cpu0(&format!("{op} {moved}")));
    }
    expect_denied(&on_cpu0(&format!("echo z > {m}/tree/moved/new")));
    assert_eq!(std::fs::read(&moved).unwrap(), b"state\n");

    // A reload roots a tree above the other.
    std::fs::write(
        &policy,
        format!("{header}\n[[trees]]\nname = \"outer\"\npaths = [\"{m}/outer\"]\n"),
    )
    .unwrap();
    guard.signal(nix::sys::signal::Signal::SIGHUP);
    let kept = format!("{m}/outer/work/kept");
    let append = on_cpu0(&format!(": >> {kept}"));
    eventually("CPU 0 is refused a write in the new tree", || {
        !sh(&append).status.success()
    });
    for op in ["rm -f", ": >", "chmod 000"] {
        expect_denied(&on_cpu0(&format!("{op} {kept}")));
    }
    assert_eq!(std::fs::read(&kept).unwrap(), b"state\n");
    let (status, log) = guard.stop();
    assert!(status.success(), "{log}");
}

/// A process's threads kept on CPU 1 until dropped, then let run on every CPU again.
struct PinnedToCpu1(u32);

impl PinnedToCpu1 {
    fn pin(pid: u32) -> Self {
        expect_allowed(&format!("taskset -a -p -c 1 {pid} >/dev/null"));
        Self(pid)
    }
}

impl Drop for PinnedToCpu1 {
    fn drop(&mut self) {
        // Gone already, for the daemon: nothing to undo.
        sh(&format!(
            "taskset -a -p -c 0-$(($(nproc --all) - 1)) {} >/dev/null",
            self.0
        ));
    }
}
