//! Harness shared by the integration tests: start `rtguard run` as a child, wait for its
//! readiness notification, and look at files the way an operator would.
#![allow(dead_code)] // each test binary uses a different subset

use std::{
    os::unix::net::UnixDatagram,
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus, Stdio},
    time::Duration,
};

use sha2::{Digest as _, Sha256};

pub mod netlink;

/// Readiness under TCG emulation includes parsing the kernel's BTF; give it time.
const READY_TIMEOUT: Duration = Duration::from_secs(120);

/// The rtguard binary: `$RTGUARD_BIN` inside the VM, cargo's build otherwise.
pub fn rtguard_bin() -> PathBuf {
    std::env::var_os("RTGUARD_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_rtguard")))
}

pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// The shipped production policy.
pub const PRODUCTION_POLICY: &str = "/etc/rtguard/production.toml";

/// The shipped production policy with this test binary as a supervisor of the rtguard
/// daemon. The policy lets only its supervisor (systemd, pid 1) stop rtguard with a fatal
/// signal; here the tests start the guard and stop it with SIGTERM.
pub fn production_policy() -> PathBuf {
    let path = std::env::temp_dir().join("rtguard-production-under-test.toml");
    std::fs::write(&path, supervised_production_policy()).expect("write the policy under test");
    path
}

/// The text of the shipped production policy with the running executable added to the
/// supervisors of the rtguard daemon.
pub fn supervised_production_policy() -> String {
    let text = std::fs::read_to_string(PRODUCTION_POLICY).expect("the shipped policy");
    let marker = "name = \"rtguard-daemon\"\n";
    assert!(
        text.contains(marker),
        "the production policy protects rtguard"
    );
    let exe = std::env::current_exe().expect("the running executable's path");
    text.replace(
        marker,
        &format!("{marker}supervisors = [{:?}]\n", exe.display().to_string()),
    )
}

/// Starts a guard enforcing the production policy (see [`production_policy`]) with its
/// audit log at `audit_log`, plus `extra` arguments.
pub fn start_production(audit_log: &Path, extra: &[&str]) -> RunningGuard {
    let policy = production_policy();
    let mut args = vec![
        "--policy",
        policy.to_str().unwrap(),
        "--audit-log",
        audit_log.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    start_ready_guard(&args)
}

/// A running `rtguard run`, stopped with SIGTERM on drop.
pub struct RunningGuard {
    child: Option<Child>,
    /// The guard's log, a file rather than a pipe: a pipe nobody reads fills up and
    /// blocks the guard, and reading it takes a thread, which would make the caller (the
    /// benchmark's workloads) a multi-threaded process that every file descriptor
    /// lookup pays for.
    log: PathBuf,
    /// What rtguard sent with READY=1 (its STATUS= line).
    pub status: String,
    /// Where this guard publishes its status for `rtguard status`.
    pub status_file: PathBuf,
    _notify_dir: tempfile::TempDir,
}

/// How a guard start ended.
pub enum Started {
    Ready(RunningGuard),
    /// rtguard exited before it was ready.
    Exited {
        status: ExitStatus,
        stderr: String,
    },
}

/// Starts `rtguard run ARGS` and waits until it reports READY=1 or exits.
pub fn start_guard(args: &[&str]) -> Started {
    let notify_dir = tempfile::tempdir().expect("temp dir for the notify socket");
    let socket_path = notify_dir.path().join("notify");
    let status_file = notify_dir.path().join("status.json");
    let socket = UnixDatagram::bind(&socket_path).expect("bind notify socket");
    socket
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let log = notify_dir.path().join("rtguard.log");
    let mut child = Command::new(rtguard_bin())
        .arg("run")
        .args(args)
        .arg("--status-file")
        .arg(&status_file)
        .env("NOTIFY_SOCKET", &socket_path)
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).expect("create the guard's log"))
        .spawn()
        .expect("spawn rtguard");
    let deadline = std::time::Instant::now() + READY_TIMEOUT;
    let mut buf = [0u8; 4096];
    loop {
        if let Ok(n) = socket.recv(&mut buf) {
            let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
            if msg.lines().any(|l| l == "READY=1") {
                let status = msg
                    .lines()
                    .find_map(|l| l.strip_prefix("STATUS="))
                    .unwrap_or_default()
                    .to_owned();
                return Started::Ready(RunningGuard {
                    child: Some(child),
                    log,
                    status,
                    status_file,
                    _notify_dir: notify_dir,
                });
            }
        }
        if let Some(status) = child.try_wait().expect("poll rtguard") {
            let stderr = std::fs::read_to_string(&log).unwrap_or_default();
            return Started::Exited { status, stderr };
        }
        if std::time::Instant::now() > deadline {
            child.kill().ok();
            child.wait().ok();
            panic!(
                "rtguard not ready within {READY_TIMEOUT:?}; stderr:\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        }
    }
}

/// Starts a guard that must become ready, or fails the test with rtguard's own words.
pub fn start_ready_guard(args: &[&str]) -> RunningGuard {
    match start_guard(args) {
        Started::Ready(guard) => guard,
        Started::Exited { status, stderr } => {
            panic!("rtguard exited before ready ({status}):\n{stderr}")
        }
    }
}

impl RunningGuard {
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("guard still running").id()
    }

    /// Sends a signal to the guard.
    pub fn signal(&self, sig: nix::sys::signal::Signal) {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.pid() as i32), sig).unwrap();
    }

    /// Runs `rtguard status --json` against this guard; returns (exit code, stdout).
    pub fn status_cmd(&self) -> (i32, String) {
        rtguard_status(&self.status_file)
    }

    /// Stops the guard with SIGTERM and returns its exit status and everything it logged.
    pub fn stop(mut self) -> (ExitStatus, String) {
        let mut child = self.child.take().expect("guard still running");
        terminate(&child);
        let status = child.wait().expect("wait for rtguard");
        (status, self.take_log())
    }

    /// Everything the guard logged, once it has exited.
    fn take_log(&mut self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl RunningGuard {
    /// Kills the guard with SIGKILL (a crash, an OOM kill) and returns what it logged.
    pub fn kill(mut self) -> String {
        let mut child = self.child.take().expect("guard still running");
        child.kill().expect("SIGKILL the guard");
        child.wait().expect("wait for rtguard");
        self.take_log()
    }
}

impl Drop for RunningGuard {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            terminate(&child);
            child.wait().ok();
        }
    }
}

fn terminate(child: &Child) {
    use nix::{sys::signal, unistd::Pid};
    signal::kill(Pid::from_raw(child.id() as i32), signal::Signal::SIGTERM).ok();
}

/// sha256 of a file's bytes, as hex.
pub fn sha256(path: &Path) -> String {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    format!("{:x}", Sha256::digest(bytes))
}

/// Runs a shell command line the way an operator would type it.
/// How rtguard enforces on the running kernel, as `rtguard status` names it: BPF LSM
/// where `bpf` is an active LSM (Debian), fmod_ret where it is not (Ubuntu's LSM list).
pub fn booted_mechanism() -> (&'static str, &'static str) {
    let lsms = std::fs::read_to_string("/sys/kernel/security/lsm").unwrap_or_default();
    if lsms.trim().split(',').any(|l| l == "bpf") {
        ("bpf-lsm", "BPF LSM")
    } else {
        (
            "fmod-ret",
            "fmod_ret on security_* functions; bpf is not an active LSM",
        )
    }
}

/// The READY status of an enforcing guard on the running kernel.
pub fn enforcing_status() -> String {
    format!("enforcing ({})", booted_mechanism().1)
}

pub fn sh(script: &str) -> std::process::Output {
    Command::new("sh")
        .args(["-c", script])
        .output()
        .expect("spawn sh")
}

/// A scratch directory with one file of known content, `protected`, and a sibling.
pub struct Scratch {
    pub dir: tempfile::TempDir,
    pub protected: PathBuf,
    pub sibling: PathBuf,
    pub protected_sha256: String,
}

pub fn scratch() -> Scratch {
    let dir = tempfile::Builder::new()
        .prefix("rtguard-test-")
        .tempdir_in("/tmp")
        .expect("scratch dir");
    let protected = dir.path().join("containerd");
    let sibling = dir.path().join("unprotected");
    std::fs::write(&protected, b"#!/bin/sh\necho pretend containerd\n").unwrap();
    std::fs::write(&sibling, b"anything\n").unwrap();
    let protected_sha256 = sha256(&protected);
    Scratch {
        dir,
        protected,
        sibling,
        protected_sha256,
    }
}

/// What an operator would check after an attempt: presence, bytes, mode, owner, inode.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileState {
    pub sha256: Option<String>,
    pub mode: u32,
    pub uid: u32,
    pub ino: u64,
}

/// The state of every path, keyed by path. A missing path has no entry.
pub fn snapshot(paths: &[PathBuf]) -> std::collections::BTreeMap<PathBuf, FileState> {
    use std::os::unix::fs::MetadataExt as _;
    paths
        .iter()
        .filter_map(|p| {
            let meta = std::fs::symlink_metadata(p).ok()?;
            let sha256 = meta.is_file().then(|| sha256(p));
            Some((
                p.clone(),
                FileState {
                    sha256,
                    mode: meta.mode(),
                    uid: meta.uid(),
                    ino: meta.ino(),
                },
            ))
        })
        .collect()
}

/// Every regular file, directory and link below `dir`, `dir` included.
pub fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = vec![dir.to_owned()];
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            let path = entry.path();
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                out.extend(walk(&path));
            } else {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

/// Runs `script` with sh and requires it to fail with EPERM's message.
pub fn expect_denied(script: &str) {
    let out = sh(script);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "`{script}` succeeded; stderr: {stderr}"
    );
    assert!(
        stderr.contains("Operation not permitted"),
        "`{script}` failed without EPERM: {stderr}"
    );
}

/// Runs `script` with sh and requires it to fail, whatever the message.
pub fn expect_failed(script: &str) {
    let out = sh(script);
    assert!(
        !out.status.success(),
        "`{script}` succeeded; stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Runs `script` with sh and requires it to succeed; returns what it printed.
pub fn expect_allowed(script: &str) -> String {
    let out = sh(script);
    assert!(
        out.status.success(),
        "`{script}` failed ({}): {}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The .deb of `package` the image was built with, kept for upgrade and reinstall tests
/// (containerd and runc).
pub fn kept_deb(package: &str) -> PathBuf {
    let prefix = format!("{package}_");
    std::fs::read_dir("/root/debs")
        .expect("/root/debs in the VM image")
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with(&prefix)
        })
        .unwrap_or_else(|| panic!("{prefix}*.deb in /root/debs"))
}

/// The containerd .deb the image was built with.
pub fn containerd_deb() -> PathBuf {
    kept_deb("containerd")
}

pub fn dpkg_status(package: &str) -> String {
    let out = std::process::Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", package])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Waits until the file can no longer be opened for writing, which is how protection
/// shows from outside. Opening without writing changes nothing if it is allowed.
pub fn wait_until_protected(path: &Path) -> std::time::Duration {
    let start = std::time::Instant::now();
    loop {
        match std::fs::OpenOptions::new().write(true).open(path) {
            Err(e) if e.raw_os_error() == Some(1) => return start.elapsed(),
            Err(e) => panic!("opening {}: {e}", path.display()),
            Ok(_) => {}
        }
        assert!(
            start.elapsed().as_secs() < 60,
            "{} never protected again",
            path.display()
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

/// Runs `rtguard status --json --status-file FILE`; returns (exit code, stdout).
pub fn rtguard_status(status_file: &Path) -> (i32, String) {
    let out = Command::new(rtguard_bin())
        .args(["status", "--json", "--status-file"])
        .arg(status_file)
        .output()
        .expect("run rtguard status");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// Runs `rtguard maintenance ARGS` for `guard`, with windows kept in `state_dir` (the
/// guard's `--state-dir`), and requires it to succeed. Returns what it printed.
pub fn maintenance(guard: &RunningGuard, state_dir: &Path, args: &[&str]) -> String {
    let out = Command::new(rtguard_bin())
        .arg("maintenance")
        .args(args)
        .arg("--state-dir")
        .arg(state_dir)
        .arg("--status-file")
        .arg(&guard.status_file)
        .output()
        .expect("run rtguard maintenance");
    assert!(
        out.status.success(),
        "rtguard maintenance {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Waits until the guard publishes a window for `package` as open (or no longer open).
/// It publishes its windows only once it has written them into the kernel's maps.
pub fn wait_for_window(guard: &RunningGuard, package: &str, open: bool) {
    let needle = format!(r#""package": "{package}""#);
    eventually(
        &format!(
            "the window for {package} is {}",
            if open { "applied" } else { "closed" }
        ),
        || guard.status_cmd().1.contains(&needle) == open,
    );
}

/// Polls until `check` holds, for things that happen asynchronously in the daemon (a
/// reload after SIGHUP). Not a timing assertion: the limit only stops a hung test.
pub fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let start = std::time::Instant::now();
    while !check() {
        assert!(start.elapsed().as_secs() < 120, "never happened: {what}");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// Whether the kernel refuses to open `path` for writing (how protection shows from
/// outside; an allowed open without a write changes nothing).
pub fn write_open_refused(path: &Path) -> bool {
    matches!(
        std::fs::OpenOptions::new().write(true).open(path),
        Err(e) if e.raw_os_error() == Some(1)
    )
}

/// Requires `dpkg -V` to report nothing for the packages: every file dpkg installed is
/// present with its checksum. (dpkg -V exits 0 even when it reports problems.)
pub fn expect_verified(packages: &[&str]) {
    let out = Command::new("dpkg")
        .arg("-V")
        .args(packages)
        .output()
        .expect("dpkg -V");
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && report.trim().is_empty(),
        "dpkg -V {packages:?} reported:\n{report}{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `rtguard unload` with these arguments; returns (exit code, stdout + stderr).
pub fn unload(pin_dir: &Path, audit: &Path, status_file: &Path) -> (i32, String) {
    let out = Command::new(rtguard_bin())
        .arg("unload")
        .arg("--pin-dir")
        .arg(pin_dir)
        .arg("--audit-log")
        .arg(audit)
        .arg("--status-file")
        .arg(status_file)
        .output()
        .expect("run rtguard unload");
    (
        out.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// Unloads whatever a test left pinned, however the test ends: later tests share the VM.
pub struct UnloadOnDrop {
    pub pin_dir: PathBuf,
    pub audit: PathBuf,
}

impl Drop for UnloadOnDrop {
    fn drop(&mut self) {
        let status = self.pin_dir.join("no-daemon.json");
        unload(&self.pin_dir, &self.audit, &status);
    }
}

/// Writes `bytes` to `path` with permission bits `mode`.
pub fn write_file(path: &Path, bytes: &[u8], mode: u32) {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::write(path, bytes).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// The miniature runtime installation the file-layer tests protect, under `root`, always
/// written in this order (a copy on a fresh btrfs subvolume gets the same inode numbers):
///
/// ```text
/// bin/containerd, bin/ctr               binaries
/// lib/containerd/{meta.db,io/state}     the runtime's data
/// unprotected                           an ordinary file
/// tools/writer                          a copy of /bin/sh, to trust for the data
/// ```
pub fn write_runtime_installation(root: &Path) {
    for d in ["bin", "lib/containerd/io", "tools"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    write_file(
        &root.join("bin/containerd"),
        b"\x7fELF pretend containerd\n",
        0o755,
    );
    write_file(&root.join("bin/ctr"), b"\x7fELF pretend ctr\n", 0o755);
    write_file(&root.join("lib/containerd/meta.db"), b"bolt\n", 0o600);
    write_file(&root.join("lib/containerd/io/state"), b"running\n", 0o600);
    write_file(&root.join("unprotected"), b"anything\n", 0o644);
    std::fs::copy("/bin/sh", root.join("tools/writer")).unwrap();
}

/// A child process that is killed and reaped when dropped, so a test that fails leaves no
/// process behind for the next one (a stray containerd is found by the next `pkill`).
pub struct Spawned(pub Child);

impl Drop for Spawned {
    fn drop(&mut self) {
        self.0.kill().ok();
        self.0.wait().ok();
    }
}

/// The image's containerd, started as a daemon of the test (with its default
/// configuration), killed when the test ends.
pub fn spawn_containerd() -> Spawned {
    Spawned(
        Command::new("/usr/bin/containerd")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start /usr/bin/containerd"),
    )
}

impl Spawned {
    pub fn pid(&self) -> u32 {
        self.0.id()
    }

    /// Asserts the process has not exited.
    pub fn assert_alive(&mut self, after: &str) {
        assert!(
            matches!(self.0.try_wait(), Ok(None)),
            "the process died after `{after}`"
        );
    }
}

/// A .deb built in a test: its control fields, files and maintainer scripts.
pub struct TestDeb<'a> {
    pub name: &'a str,
    pub version: &'a str,
    /// Extra control fields, each ending in a newline (`"Conflicts: x\n"`).
    pub fields: &'a str,
    /// Absolute path → contents.
    pub files: &'a [(&'a str, &'a str)],
    /// Maintainer script name (`preinst`, `postinst`, …) → its shell commands.
    pub scripts: &'a [(&'a str, &'a str)],
}

impl TestDeb<'_> {
    /// A package named `name`, version 1.0, shipping `/usr/share/<name>/marker`.
    pub fn marker(name: &str) -> TestDeb<'_> {
        TestDeb {
            name,
            version: "1.0",
            fields: "",
            files: &[],
            scripts: &[],
        }
    }

    /// Builds `<name>_<version>_all.deb` in `dir`.
    pub fn build(&self, dir: &Path) -> PathBuf {
        let root = dir.join(format!("{}-{}-root", self.name, self.version));
        std::fs::create_dir_all(root.join("DEBIAN")).unwrap();
        let marker = format!("/usr/share/{}/marker", self.name);
        let files: Vec<(&str, &str)> = if self.files.is_empty() {
            vec![(marker.as_str(), self.name)]
        } else {
            self.files.to_vec()
        };
        for (path, contents) in files {
            let path = root.join(path.trim_start_matches('/'));
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, contents).unwrap();
        }
        for (script, body) in self.scripts {
            write_file(
                &root.join("DEBIAN").join(script),
                format!("#!/bin/sh\nset -e\n{body}\n").as_bytes(),
                0o755,
            );
        }
        std::fs::write(
            root.join("DEBIAN/control"),
            format!(
                "Package: {}\nVersion: {}\nArchitecture: all\n\
                 Maintainer: rtguard tests <tests@localhost>\n{}\
                 Description: rtguard test package\n",
                self.name, self.version, self.fields
            ),
        )
        .unwrap();
        let deb = dir.join(format!("{}_{}_all.deb", self.name, self.version));
        let out = sh(&format!(
            "dpkg-deb --root-owner-group --build {} {}",
            root.display(),
            deb.display()
        ));
        assert!(out.status.success(), "{out:?}");
        deb
    }
}

/// Every record of the audit log at `audit` (none if it does not exist yet).
pub fn audit_log(audit: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(audit)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Fills `dir` with every kind of entry a glob can protect: files, a hard link, a
/// symlink to a file beside it, a fifo, and a directory with a file of its own.
pub fn write_glob_entries(dir: &Path) {
    std::fs::create_dir_all(dir.join("sub")).unwrap();
    std::fs::write(dir.join("one"), "1\n").unwrap();
    std::fs::write(dir.join("two"), "2\n").unwrap();
    std::fs::write(dir.join("sub/three"), "3\n").unwrap();
    std::fs::hard_link(dir.join("one"), dir.join("hard")).unwrap();
    std::os::unix::fs::symlink(dir.join("two"), dir.join("link")).unwrap();
    nix::unistd::mkfifo(&dir.join("fifo"), nix::sys::stat::Mode::S_IRUSR).unwrap();
}

/// Resolves globs over `dir` (`dir/*` and `dir/*/*`) and checks every object they
/// protect against lstat(2): the resolver takes what it can from the directory listing,
/// and that must be what lstat reports. Returns how many objects were checked.
pub fn glob_objects_are_what_lstat_finds(dir: &Path) -> usize {
    let text = format!(
        "environment = \"test\"\nmode = \"enforce\"\n\n[[paths]]\nname = \"glob\"\n\
         paths = [\"{d}/*\", \"{d}/*/*\"]\n",
        d = dir.display()
    );
    let policy =
        guard_user::policy::parse("glob.toml", &text).unwrap_or_else(|e| panic!("{}", e.render()));
    let options = guard_user::resolve::ResolveOptions::default();
    let set = guard_user::resolve::resolve(&policy, &options).expect("resolve");
    for object in &set.objects {
        let meta = std::fs::symlink_metadata(&object.path).unwrap();
        assert_eq!(
            object.key,
            guard_user::resolve::inode_key(&meta),
            "{} has the identity lstat gives",
            object.path.display()
        );
    }
    set.objects.len()
}

/// A mount made for a test (`mount ARGS AT`, with `at` created first), unmounted when
/// the test ends, however it ends.
pub struct Mounted(PathBuf);

impl Mounted {
    pub fn new(args: &str, at: PathBuf) -> Self {
        if !at.exists() {
            std::fs::create_dir_all(&at).unwrap();
        }
        expect_allowed(&format!("mount {args} {}", at.display()));
        Self(at)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        sh(&format!("umount {}", self.0.display()));
    }
}
