//! The file layer on the filesystems runtimes keep their files on: ext4, XFS and btrfs,
//! each made on a loop device. The guard matches objects by the (dev, ino) `stat(2)`
//! reports; on btrfs that is the subvolume's own device, and inode numbers repeat from one
//! subvolume to the next, so these tests protect files on a subvolume mounted with
//! `subvol=`, reach them through the top-level mount and through subvolumes nested in a
//! protected tree, and check that files of other subvolumes with the same inode numbers
//! stay free.

use std::{
    os::unix::fs::MetadataExt as _,
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

use nix::sys::signal::Signal;

use crate::common::*;

/// A filesystem on a sparse file in the guest's RAM, attached to a loop device. Dropping
/// it unmounts everything mounted from it and detaches the device.
struct Disk {
    device: String,
    mounts: Vec<PathBuf>,
    dir: tempfile::TempDir,
}

impl Disk {
    /// `mkfs.<fs>` with `args` on a new image of `size` (as `truncate -s` takes it).
    fn new(fs: &str, size: &str, args: &str) -> Self {
        // Modules in Debian's cloud kernels; mount would load the filesystem's, but not
        // the loop driver.
        expect_allowed("modprobe loop && modprobe xfs && modprobe btrfs");
        let dir = tempfile::Builder::new()
            .prefix(&format!("rtguard-{fs}-"))
            .tempdir_in("/tmp")
            .unwrap();
        let image = dir.path().join("image");
        expect_allowed(&format!("truncate -s {size} {}", image.display()));
        let out = sh(&format!("losetup -f --show {}", image.display()));
        assert!(out.status.success(), "losetup: {out:?}");
        let device = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        let disk = Self {
            device,
            mounts: Vec::new(),
            dir,
        };
        expect_allowed(&format!("mkfs.{fs} {args} {}", disk.device));
        disk
    }

    /// Mounts the filesystem (with `-o options` unless empty) on a new directory `name`.
    fn mount(&mut self, name: &str, options: &str) -> PathBuf {
        let at = self.dir.path().join(name);
        std::fs::create_dir(&at).unwrap();
        let options = if options.is_empty() {
            String::new()
        } else {
            format!("-o {options}")
        };
        expect_allowed(&format!("mount {options} {} {}", self.device, at.display()));
        self.mounts.push(at.clone());
        at
    }
}

impl Drop for Disk {
    fn drop(&mut self) {
        for at in self.mounts.iter().rev() {
            sh(&format!("umount {}", at.display()));
        }
        sh(&format!("losetup -d {}", self.device));
    }
}

/// A process of a protected executable, killed when the test ends (after the guard
/// that protects it is stopped: declare it first).
/// The common installation ([`write_runtime_installation`]) under `root`, with
/// `tools/daemon`, a copy of /bin/sleep, to run as a protected process.
fn install_runtime(root: &Path) {
    write_runtime_installation(root);
    std::fs::copy("/bin/sleep", root.join("tools/daemon")).unwrap();
}

/// A policy protecting the installation under `root` with each kind of rule.
fn policy_text(root: &Path) -> String {
    let r = root.display();
    format!(
        "environment = \"test\"\nmode = \"enforce\"\n\n\
         [[paths]]\nname = \"runtime-binaries\"\npaths = [\"{r}/bin/containerd\", \"{r}/bin/ctr\"]\n\n\
         [[trees]]\nname = \"runtime-data\"\npaths = [\"{r}/lib/containerd\"]\n\
         trusted_writers = [\"{r}/tools/writer\"]\n\n\
         [[processes]]\nname = \"runtime-daemon\"\nexe = [\"{r}/tools/daemon\"]\n"
    )
}

/// Starts the installation's daemon (its executable lives on the filesystem under test).
fn start_daemon(root: &Path) -> Spawned {
    Spawned(
        Command::new(root.join("tools/daemon"))
            .arg("1000")
            .stdin(Stdio::null())
            .spawn()
            .expect("start tools/daemon"),
    )
}

/// Starts a guard enforcing [`policy_text`] for `root`, plus `extra` arguments.
fn start_guard_for(root: &Path, scratch: &Path, extra: &[&str]) -> RunningGuard {
    let policy = scratch.join("policy.toml");
    std::fs::write(&policy, policy_text(root)).unwrap();
    let audit = scratch.join("audit.jsonl");
    let mut args = vec![
        "--policy",
        policy.to_str().unwrap(),
        "--audit-log",
        audit.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let guard = start_ready_guard(&args);
    // Whatever the mechanism the kernel allows, it enforces.
    assert!(guard.status.starts_with("enforcing"), "{}", guard.status);
    // The daemon proved that the kernel knows the objects on this filesystem (this
    // subvolume) by the identity it resolved.
    let (_, json) = guard.status_cmd();
    let status: serde_json::Value = serde_json::from_str(&json).unwrap();
    let checks = status["identities"].as_array().expect("identity checks");
    let device = format!("{}/", stat_dev(root));
    assert!(
        checks.iter().any(|c| c["passed"] == true
            && c["resolved"]
                .as_str()
                .is_some_and(|r| r.starts_with(&device))),
        "no passed identity check on {device}: {json}"
    );
    assert!(checks.iter().all(|c| c["passed"] == true), "{json}");
    guard
}

/// `major:minor` of the device `stat(2)` reports for `path`, as the audit log writes it.
fn stat_dev(path: &Path) -> String {
    let dev = std::fs::metadata(path).unwrap().dev();
    format!("{}:{}", libc::major(dev), libc::minor(dev))
}

/// What an uninstaller does to the installation under `root`, refused, with every byte
/// left in place; the tree's trusted writer at work, and a file it creates afterwards
/// protected; the daemon surviving a SIGTERM; the audit record naming the object by the
/// device and inode `stat(2)` gives.
fn refuses_the_uninstaller(root: &Path, daemon: &mut Spawned, audit: &Path) {
    let p = |rel: &str| root.join(rel).display().to_string();
    let mut protected = vec![root.join("bin/containerd"), root.join("bin/ctr")];
    protected.extend(walk(&root.join("lib/containerd")));
    let before = snapshot(&protected);
    assert_eq!(before.len(), protected.len(), "{before:?}");

    expect_denied(&format!("rm -f {}", p("bin/containerd")));
    expect_denied(&format!("mv {} {}", p("bin/containerd"), p("moved")));
    expect_denied(&format!(": > {}", p("bin/ctr")));
    expect_denied(&format!("rm -rf {}", p("lib/containerd")));
    expect_denied(&format!(
        "mv {} {}",
        p("lib/containerd/meta.db"),
        p("meta.db")
    ));
    assert_eq!(snapshot(&protected), before, "protected files changed");
    assert_eq!(
        std::fs::read(root.join("bin/containerd")).unwrap(),
        b"\x7fELF pretend containerd\n"
    );
    assert_eq!(
        std::fs::read(root.join("bin/ctr")).unwrap(),
        b"\x7fELF pretend ctr\n"
    );

    // The tree's writer (an executable on this filesystem too) manages its tree.
    let state = p("lib/containerd/io/state");
    let later = p("lib/containerd/io/created-later");
    expect_allowed(&format!(
        "{} -c 'echo stopped > {state} && echo fresh > {later}'",
        p("tools/writer")
    ));
    assert_eq!(std::fs::read(&state).unwrap(), b"stopped\n");
    // What it created after the start is as protected as the rest of the tree.
    expect_denied(&format!("rm -f {later}"));
    expect_denied(&format!(": > {later}"));
    expect_denied(&format!("mv {later} {}", p("escaped")));
    assert_eq!(std::fs::read(&later).unwrap(), b"fresh\n");

    // The daemon, whose executable lives here, survives a TERM from anyone else.
    expect_denied(&format!("kill -TERM {}", daemon.0.id()));
    assert!(
        matches!(daemon.0.try_wait(), Ok(None)),
        "the daemon died after SIGTERM"
    );

    // Unprotected files on the same filesystem stay free.
    expect_allowed(&format!("rm {}", p("unprotected")));

    let dev = stat_dev(&root.join("bin/containerd"));
    let ino = std::fs::metadata(root.join("bin/containerd"))
        .unwrap()
        .ino();
    let target = format!(
        r#""path":"{}","dev":"{dev}","ino":{ino}"#,
        p("bin/containerd")
    );
    eventually(
        "the blocked unlink's record names stat's (dev, ino)",
        || {
            std::fs::read_to_string(audit).is_ok_and(|records| {
                records.lines().any(|l| {
                    l.contains(r#""op":"unlink""#)
                        && l.contains(r#""decision":"blocked""#)
                        && l.contains(&target)
                })
            })
        },
    );
}

/// An installation on a fresh filesystem of type `fs`, with its daemon and a guard.
fn run_on(fs: &str, size: &str, mkfs_args: &str) {
    let mut disk = Disk::new(fs, size, mkfs_args);
    let root = disk.mount("mnt", "");
    install_runtime(&root);
    let scratch = tempfile::tempdir_in("/tmp").unwrap();
    let mut daemon = start_daemon(&root);
    let guard = start_guard_for(&root, scratch.path(), &[]);
    refuses_the_uninstaller(&root, &mut daemon, &scratch.path().join("audit.jsonl"));
    println!("  {fs} on {}: refused, nothing changed", stat_dev(&root));
    let (status, log) = guard.stop();
    assert!(status.success(), "{log}");
}

#[test]
fn ext4_on_a_loop_device() {
    run_on("ext4", "64M", "-q -F");
}

#[test]
fn xfs_on_a_loop_device() {
    // mkfs.xfs refuses filesystems under 300 MB; the image is sparse.
    run_on("xfs", "320M", "-q -f");
}

/// A btrfs filesystem with the installation on subvolume `@data`, mounted `subvol=@data`
/// as a host mounts its data subvolume, and the top level (subvolid=5) mounted beside it.
struct Btrfs {
    /// Unmounted and detached when the test ends.
    _disk: Disk,
    top: PathBuf,
    data: PathBuf,
}

impl Btrfs {
    fn new() -> Self {
        let mut disk = Disk::new("btrfs", "256M", "-q -f");
        let top = disk.mount("top", "subvolid=5");
        expect_allowed(&format!("btrfs subvolume create {}/@data", top.display()));
        let data = disk.mount("data", "subvol=@data");
        install_runtime(&data);
        Self {
            _disk: disk,
            top,
            data,
        }
    }
}

fn btrfs_subvolumes(hooks: &str) {
    let fs = Btrfs::new();
    let (top, data) = (fs.top.clone(), fs.data.clone());
    // Another subvolume with a copy of the installation written in the same order, so
    // the same inode numbers, and a snapshot of the data subvolume: the same inode
    // numbers and generations.
    expect_allowed(&format!("btrfs subvolume create {}/@other", top.display()));
    let other = top.join("@other");
    install_runtime(&other);
    expect_allowed(&format!(
        "btrfs subvolume snapshot {} {}/@snapshot",
        top.join("@data").display(),
        top.display()
    ));
    let snapshot_dir = top.join("@snapshot");
    // A subvolume nested in the protected tree before the start, as Docker's btrfs
    // driver leaves one per layer.
    let nested = data.join("lib/containerd/layer-0");
    expect_allowed(&format!("btrfs subvolume create {}", nested.display()));
    std::fs::write(nested.join("layer.tar"), b"layer 0\n").unwrap();

    // What the cases below rely on: a device per subvolume, repeated inode numbers.
    let meta = |p: &Path| std::fs::metadata(p).unwrap();
    let ours = meta(&data.join("bin/containerd"));
    for twin in [&other, &snapshot_dir] {
        let theirs = meta(&twin.join("bin/containerd"));
        assert_eq!(theirs.ino(), ours.ino(), "same inode number in {twin:?}");
        assert_ne!(theirs.dev(), ours.dev(), "another device for {twin:?}");
        assert_eq!(
            meta(&twin.join("lib/containerd")).ino(),
            meta(&data.join("lib/containerd")).ino()
        );
    }
    assert_ne!(
        meta(&nested).dev(),
        ours.dev(),
        "a nested subvolume's own device"
    );
    assert_eq!(meta(&top.join("@data/bin/containerd")).ino(), ours.ino());
    println!(
        "  {hooks} hooks: bin/containerd is inode {} on @data ({}), @other ({}) and @snapshot ({}); \
         layer-0 nested in the tree is {}",
        ours.ino(),
        stat_dev(&data),
        stat_dev(&other),
        stat_dev(&snapshot_dir),
        stat_dev(&nested)
    );

    let scratch = tempfile::tempdir_in("/tmp").unwrap();
    let mut daemon = start_daemon(&data);
    let guard = start_guard_for(&data, scratch.path(), &["--file-hooks", hooks]);
    let audit = scratch.path().join("audit.jsonl");
    refuses_the_uninstaller(&data, &mut daemon, &audit);

    // The same objects through the top-level mount of the filesystem.
    let via_top = top.join("@data");
    let before = snapshot(&walk(&data));
    expect_denied(&format!("rm -f {}/bin/containerd", via_top.display()));
    expect_denied(&format!(": > {}/bin/ctr", via_top.display()));
    expect_denied(&format!("rm -rf {}/lib/containerd", via_top.display()));
    expect_denied(&format!("mv {0}/bin {0}/bin.old", via_top.display()));
    assert_eq!(snapshot(&walk(&data)), before);

    // Subvolumes nested in the tree, the one from before the start and one its writer
    // creates now: their files have other devices than the tree root, and the walk up
    // to it crosses into the data subvolume.
    let writer = data.join("tools/writer");
    let created = data.join("lib/containerd/layer-1");
    expect_allowed(&format!(
        "{} -c 'btrfs subvolume create {1} && echo layer 1 > {1}/layer.tar'",
        writer.display(),
        created.display()
    ));
    for layer in [&nested, &created] {
        let tar = layer.join("layer.tar");
        let before = snapshot(&walk(layer));
        expect_denied(&format!("rm -f {}", tar.display()));
        expect_denied(&format!(": > {}", tar.display()));
        expect_denied(&format!("rm -rf {}", layer.display()));
        expect_denied(&format!(
            "mv {} {}/escaped",
            layer.display(),
            data.display()
        ));
        assert_eq!(snapshot(&walk(layer)), before, "{layer:?} changed");
    }
    assert_eq!(
        std::fs::read(nested.join("layer.tar")).unwrap(),
        b"layer 0\n"
    );
    assert_eq!(
        std::fs::read(created.join("layer.tar")).unwrap(),
        b"layer 1\n"
    );

    // Files with the protected ones' inode numbers in other subvolumes are not
    // protected: not the copy, not the snapshot, not their trees. A walk through each
    // comes first, so that what the guard remembers of their directories is tried too.
    for twin in [&other, &snapshot_dir] {
        let t = twin.display();
        expect_allowed(&format!("echo more >> {t}/lib/containerd/io/state"));
        expect_allowed(&format!(": > {t}/bin/ctr && rm {t}/bin/ctr"));
        expect_allowed(&format!("mv {t}/bin/containerd {t}/containerd.moved"));
        expect_allowed(&format!("rm -rf {t}/lib/containerd"));
        assert!(!twin.join("lib/containerd").exists());
    }
    // ... while the data subvolume's, in the same directories by inode, still are.
    expect_denied(&format!(
        "rm -f {}",
        data.join("lib/containerd/io/state").display()
    ));
    expect_denied(&format!("rm -f {}", data.join("bin/ctr").display()));
    assert_eq!(
        std::fs::read(data.join("lib/containerd/io/state")).unwrap(),
        b"stopped\n"
    );

    let (status, log) = guard.stop();
    assert!(status.success(), "{log}");
}

#[test]
fn btrfs_subvolumes_through_path_hooks() {
    btrfs_subvolumes("path");
}

#[test]
fn btrfs_subvolumes_through_the_inode_fallback() {
    btrfs_subvolumes("inode");
}

/// btrfs is a module, loaded when the first btrfs filesystem is mounted: on a data disk,
/// that can be long after the guard started. Once the daemon resolves its policy again
/// (here on SIGHUP), files on btrfs are protected by the identity stat(2) gives them.
#[test]
fn btrfs_loaded_after_the_guard_started() {
    let btf = Path::new("/sys/kernel/btf/btrfs");
    if btf.exists() {
        // An earlier test loaded it; its filesystems are unmounted by now.
        expect_allowed("rmmod btrfs");
    }
    assert!(!btf.exists(), "the btrfs module is still loaded");
    let scratch = tempfile::tempdir_in("/tmp").unwrap();
    let s = scratch.path();
    // A guard protecting something else, started while btrfs is not loaded.
    let elsewhere = s.join("elsewhere");
    std::fs::write(&elsewhere, b"kept\n").unwrap();
    let policy = s.join("policy.toml");
    std::fs::write(
        &policy,
        format!(
            "environment = \"test\"\nmode = \"enforce\"\n\n[[paths]]\nname = \"elsewhere\"\npaths = [\"{}\"]\n",
            elsewhere.display()
        ),
    )
    .unwrap();
    let guard = start_ready_guard(&["--policy", policy.to_str().unwrap()]);
    assert!(!btf.exists(), "the guard loaded btrfs");

    let fs = Btrfs::new();
    let data = fs.data.clone();
    std::fs::write(&policy, policy_text(&data)).unwrap();
    guard.signal(Signal::SIGHUP);
    let containerd = data.join("bin/containerd");
    eventually("the btrfs files are protected", || {
        write_open_refused(&containerd)
    });
    expect_denied(&format!("rm -f {}", containerd.display()));
    expect_denied(&format!("rm -rf {}", data.join("lib/containerd").display()));
    expect_denied(&format!("rm -f {}", fs.top.join("@data/bin/ctr").display()));
    assert_eq!(
        std::fs::read(&containerd).unwrap(),
        b"\x7fELF pretend containerd\n"
    );
    assert_eq!(
        std::fs::read(data.join("lib/containerd/io/state")).unwrap(),
        b"running\n"
    );
    let (status, log) = guard.stop();
    assert!(status.success(), "{log}");
    let read = log.lines().find(|l| l.contains("btrfs module layout read"));
    println!(
        "  {}",
        read.unwrap_or_else(|| panic!("no layout read in:\n{log}"))
    );
}

/// A data disk mounted on `/var/lib/docker` after the guard started, as hosts that keep
/// the runtime's data on a disk of its own do, on ext4, XFS and a btrfs subvolume: what the
/// disk holds is protected once the mount table says so, by the identity the kernel
/// computes for it (the daemon proves it), and its unmount is noticed too.
#[test]
fn data_disks_mounted_late_on_a_protected_tree_are_protected() {
    let docker = Path::new("/var/lib/docker");
    let created = !docker.exists();
    std::fs::create_dir_all(docker).unwrap();
    // Each disk with Docker's data on it, made before the start and unmounted again.
    let mut disks = Vec::new();
    for (fs, size, args, options) in [
        ("ext4", "64M", "-q -F", ""),
        ("xfs", "320M", "-q -f", ""),
        ("btrfs", "256M", "-q -f", "subvol=@docker"),
    ] {
        let mut disk = Disk::new(fs, size, args);
        let prep = disk.mount("prep", "");
        let data = if fs == "btrfs" {
            expect_allowed(&format!(
                "btrfs subvolume create {}/@docker",
                prep.display()
            ));
            prep.join("@docker")
        } else {
            prep.clone()
        };
        std::fs::write(data.join("engine-id"), format!("{fs} id\n")).unwrap();
        std::fs::create_dir(data.join("volumes")).unwrap();
        expect_allowed(&format!("umount {}", prep.display()));
        disks.push((fs, disk, options));
    }
    let scratch = tempfile::tempdir_in("/tmp").unwrap();
    let audit = scratch.path().join("audit.jsonl");
    let guard = start_production(&audit, &[]);
    let recorded = |what: &str| {
        std::fs::read_to_string(&audit).is_ok_and(|records| {
            records
                .lines()
                .any(|r| r.contains(r#""op":"mounts-changed""#) && r.contains(what))
        })
    };
    for (fs, disk, options) in &disks {
        let options = if options.is_empty() {
            String::new()
        } else {
            format!("-o {options}")
        };
        let mounted_at = std::time::Instant::now();
        expect_allowed(&format!("mount {options} {} /var/lib/docker", disk.device));
        eventually(
            &format!("the {fs} disk on /var/lib/docker is resolved"),
            || recorded(&format!("/var/lib/docker ({fs} mounted)")),
        );
        // How long the disk went unprotected, for the log (timing is not asserted).
        println!(
            "  {fs}: protected {:?} after mount(8) started",
            mounted_at.elapsed()
        );
        expect_denied("rm -f /var/lib/docker/engine-id");
        expect_denied(": > /var/lib/docker/engine-id");
        expect_denied("mv /var/lib/docker/engine-id /var/lib/docker/volumes/");
        assert_eq!(
            std::fs::read_to_string("/var/lib/docker/engine-id").unwrap(),
            format!("{fs} id\n")
        );
        let (_, json) = guard.status_cmd();
        let device = format!("{}/", stat_dev(docker));
        assert!(
            json.contains(&format!(r#""resolved": "{device}"#)) && !json.contains("MISMATCH"),
            "the {fs} disk's identity is proven: {json}"
        );
        assert!(
            !json.contains(r#""passed": false"#),
            "an identity check failed: {json}"
        );
        expect_allowed("umount /var/lib/docker");
        eventually(&format!("the {fs} disk's unmount is resolved"), || {
            recorded(&format!("/var/lib/docker ({fs} unmounted)"))
        });
    }
    let (status, log) = guard.stop();
    assert!(status.success(), "{log}");
    if created {
        std::fs::remove_dir_all(docker).ok();
    }
}

/// A glob is resolved from its directories' listings where a listing gives what lstat(2)
/// gives (ext4, XFS, btrfs, tmpfs), and by lstat elsewhere (overlayfs) and for what a
/// listing cannot tell: a directory (a btrfs subvolume has its own device) and a file
/// something is mounted on (the listing has the inode underneath). On each, every object
/// the glob protects must be what lstat finds.
#[test]
fn globs_protect_what_lstat_finds_on_every_filesystem() {
    for (fs, size, args) in [
        ("ext4", "64M", "-q -F"),
        ("xfs", "320M", "-q -f"),
        ("btrfs", "256M", "-q -f"),
    ] {
        let mut disk = Disk::new(fs, size, args);
        let dir = disk.mount("mnt", "").join("glob");
        write_glob_entries(&dir);
        let elsewhere = tempfile::NamedTempFile::new_in("/tmp").unwrap();
        let bound = dir.join("bound");
        std::fs::write(&bound, "underneath\n").unwrap();
        let _bound = Mounted::new(&format!("--bind {}", elsewhere.path().display()), bound);
        if fs == "btrfs" {
            let volume = dir.join("volume");
            expect_allowed(&format!("btrfs subvolume create {}", volume.display()));
            std::fs::write(volume.join("inside"), "in a subvolume\n").unwrap();
        }
        let objects = glob_objects_are_what_lstat_finds(&dir);
        println!("  {fs}: {objects} objects, each as lstat finds it");
        assert!(objects >= 7, "{fs}: {objects} objects");
    }
    let scratch = tempfile::tempdir_in("/var/tmp").unwrap();
    let tmpfs = Mounted::new("-t tmpfs rtguard-test", scratch.path().join("tmpfs"));
    write_glob_entries(&tmpfs.path().join("glob"));
    let objects = glob_objects_are_what_lstat_finds(&tmpfs.path().join("glob"));
    println!("  tmpfs: {objects} objects, each as lstat finds it");
    let (lower, upper, work) = (
        tmpfs.path().join("lower"),
        tmpfs.path().join("upper"),
        tmpfs.path().join("work"),
    );
    write_glob_entries(&lower);
    std::fs::create_dir(&upper).unwrap();
    std::fs::create_dir(&work).unwrap();
    let merged = Mounted::new(
        &format!(
            "-t overlay rtguard-test -o lowerdir={},upperdir={},workdir={}",
            lower.display(),
            upper.display(),
            work.display()
        ),
        scratch.path().join("merged"),
    );
    // One entry from each layer, and a directory merged from both.
    std::fs::write(merged.path().join("sub/upper"), "upper\n").unwrap();
    let objects = glob_objects_are_what_lstat_finds(merged.path());
    println!("  overlayfs: {objects} objects, each as lstat finds it");
    assert!(objects >= 7, "overlayfs: {objects} objects");
}
