//! The process layer under the shipped production policy: a running containerd survives
//! the signals an uninstaller sends it and keeps its place with the OOM killer, while
//! unprotected processes can still be killed and adjusted.

use std::{
    path::PathBuf,
    process::{Command, Stdio},
};

use crate::common::*;

/// Runs `script` in bash (whose `kill` is a builtin).
fn bash(script: &str) -> std::process::Output {
    Command::new("bash")
        .args(["-c", script])
        .output()
        .expect("spawn bash")
}

#[test]
fn a_running_containerd_survives_kill_pkill_and_killall() {
    let dir = tempfile::tempdir().unwrap();
    let audit = dir.path().join("audit.jsonl");
    // Declared before the guard, so the guard is stopped first and the daemon can go.
    let mut containerd = spawn_containerd();
    let mut sleeper = Spawned(Command::new("sleep").arg("1000").spawn().unwrap());
    let guard = start_production(&audit, &[]);
    let pid = containerd.pid();

    for (command, builtin) in [
        (format!("kill -9 {pid}"), true),
        (format!("kill {pid}"), true),
        (format!("kill -INT {pid}"), true),
        (format!("/bin/kill -QUIT {pid}"), false),
        ("pkill containerd".to_owned(), false),
        ("pkill -9 containerd".to_owned(), false),
        ("killall -9 containerd".to_owned(), false),
    ] {
        let out = bash(&command);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "`{command}` succeeded: {stderr}");
        if builtin {
            assert!(
                stderr.contains("Operation not permitted"),
                "`{command}` failed without EPERM: {stderr}"
            );
        }
        containerd.assert_alive(&command);
    }
    // Signal 0 only asks whether the process exists.
    assert!(bash(&format!("kill -0 {pid}")).status.success());

    // An unprotected process is killed as always.
    let out = bash(&format!("kill -9 {}", sleeper.pid()));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let status = sleeper.0.wait().unwrap();
    use std::os::unix::process::ExitStatusExt as _;
    assert_eq!(status.signal(), Some(9));

    let (status, log) = guard.stop();
    assert!(status.success(), "{log}");
    containerd.assert_alive("the guard stopped");
    let records = std::fs::read_to_string(&audit).unwrap_or_default();
    assert!(
        records.lines().any(|l| l.contains(r#""layer":"process""#)
            && l.contains(r#""decision":"blocked""#)
            && l.contains(r#""number":9"#)
            && l.contains(r#""rule":"runtime-daemons""#)),
        "a blocked process record for SIGKILL:\n{records}"
    );
}

/// `kill -SIG PID` through the shell's builtin: refused with EPERM, and the target alive.
fn expect_refused(daemon: &mut Spawned, signal: &str) {
    let command = format!("kill -{signal} {}", daemon.pid());
    let out = bash(&command);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("Operation not permitted"),
        "`{command}` was not refused with EPERM: {stderr}"
    );
    daemon.assert_alive(&command);
}

/// `kill -SIG PID` passes, and the target is still alive afterwards.
fn expect_passed(daemon: &mut Spawned, signal: &str) {
    let command = format!("kill -{signal} {}", daemon.pid());
    let out = bash(&command);
    assert!(
        out.status.success(),
        "`{command}` was refused: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Give a signal that would end it the time to do so.
    std::thread::sleep(std::time::Duration::from_millis(300));
    daemon.assert_alive(&command);
}

/// Whether the audit log holds a blocked process record for `signal` to a process of
/// `rule`, refused for `reason`.
fn blocked_for(records: &str, rule: &str, signal: u32, reason: &str) -> bool {
    records.lines().any(|l| {
        l.contains(r#""layer":"process""#)
            && l.contains(r#""decision":"blocked""#)
            && l.contains(&format!(r#""rule":"{rule}""#))
            && l.contains(&format!(r#""number":{signal},"#))
            && l.contains(&format!(r#""reason":"{reason}""#))
    })
}

#[test]
fn containerd_survives_the_signals_its_go_runtime_exits_on_and_still_dumps_on_usr1() {
    let dir = tempfile::tempdir().unwrap();
    let audit = dir.path().join("audit.jsonl");
    // containerd asks for SIGUSR1 once it serves; before that Go drops the signal. A
    // socket left by an earlier containerd would say it serves too early.
    let socket = std::path::Path::new("/run/containerd/containerd.sock");
    std::fs::remove_file(socket).ok();
    let mut containerd = spawn_containerd();
    let guard = start_production(&audit, &[]);
    let pid = containerd.pid();
    eventually("containerd serves", || socket.exists());

    // Go catches all of these and exits or crashes on them: containerd did not ask for
    // them. Not in the policy's list, they ended containerd before signals were judged
    // by their effect.
    for signal in ["HUP", "SEGV", "SYS"] {
        expect_refused(&mut containerd, signal);
    }
    // Go leaves the stop signals at their default.
    expect_refused(&mut containerd, "TSTP");

    // containerd asked for SIGUSR1 and dumps its goroutines on it.
    let dump = std::env::temp_dir().join(format!("containerd.{pid}.stacks.log"));
    std::fs::remove_file(&dump).ok();
    expect_passed(&mut containerd, "USR1");
    eventually("containerd's goroutine dump", || dump.exists());
    std::fs::remove_file(&dump).ok();
    // Harmless to it: Go catches and drops WINCH and URG, CONT does nothing to a running
    // process.
    for signal in ["WINCH", "URG", "CONT"] {
        expect_passed(&mut containerd, signal);
    }

    let (status, log) = guard.stop();
    assert!(status.success(), "{log}");
    containerd.assert_alive("the guard stopped");
    let records = std::fs::read_to_string(&audit).unwrap_or_default();
    for (signal, reason) in [
        (1, "runtime-exits"),
        (11, "runtime-exits"),
        (31, "runtime-exits"),
        (20, "default-stop"),
    ] {
        assert!(
            blocked_for(&records, "runtime-daemons", signal, reason),
            "a blocked record for signal {signal} ({reason}):\n{records}"
        );
    }
    assert!(
        !records.contains(r#""number":10,"#),
        "SIGUSR1 passed without a record:\n{records}"
    );
}

/// A protected copy of bash (`guarded-sh` in `dir`), and the production policy with a rule
/// for it and `extra` lines in that rule.
fn guarded_shell(dir: &std::path::Path, extra: &str) -> (std::path::PathBuf, PathBuf) {
    let exe = dir.join("guarded-sh");
    std::fs::copy("/bin/bash", &exe).expect("copy bash");
    let policy = format!(
        "{}\n[[processes]]\nname = \"guarded-shell\"\n\
         description = \"A shell under test.\"\nexe = [{:?}]\n{extra}",
        supervised_production_policy(),
        exe.display().to_string()
    );
    let path = dir.join("policy.toml");
    std::fs::write(&path, policy).unwrap();
    (exe, path)
}

/// The guard under `policy`, auditing to `audit`.
fn start_with(policy: &std::path::Path, audit: &std::path::Path) -> RunningGuard {
    start_ready_guard(&[
        "--policy",
        policy.to_str().unwrap(),
        "--audit-log",
        audit.to_str().unwrap(),
    ])
}

#[test]
fn a_handled_signal_passes_and_is_delivered_while_default_fatal_ones_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let audit = dir.path().join("audit.jsonl");
    let (exe, policy) = guarded_shell(dir.path(), "");
    let hups = dir.path().join("hups");
    let terms = dir.path().join("terms");
    let script = format!(
        "trap 'echo hup >> {hups}' HUP; trap 'echo term >> {terms}' TERM; \
         while :; do sleep 0.1; done",
        hups = hups.display(),
        terms = terms.display()
    );
    let mut shell = Spawned(
        Command::new(&exe)
            .args(["-c", &script])
            .stdin(Stdio::null())
            .spawn()
            .expect("start the guarded shell"),
    );
    let guard = start_with(&policy, &audit);
    // The traps are set once the shell has read its script; the guard's start-up takes
    // far longer, but say so rather than assume it.
    let pid = shell.pid();
    eventually("the shell's HUP trap", || {
        std::fs::read_to_string(format!("/proc/{pid}/status"))
            .ok()
            .and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("SigCgt:"))
                    .and_then(|m| u64::from_str_radix(m.trim(), 16).ok())
            })
            .is_some_and(|caught| caught & 1 != 0)
    });

    // Left at their default, these end the shell (USR1, and SEGV, SYS and XCPU with a
    // core) or stop it (TSTP). Not in the policy's list, they passed before.
    for signal in ["USR1", "SEGV", "SYS", "XCPU", "TSTP"] {
        expect_refused(&mut shell, signal);
    }
    // Handled: the signal passes and the handler runs.
    expect_passed(&mut shell, "HUP");
    eventually("the HUP trap ran", || {
        std::fs::read_to_string(&hups).is_ok_and(|s| s.contains("hup"))
    });
    // Their default does nothing (CHLD the shell also handles).
    for signal in ["WINCH", "URG", "CHLD", "CONT"] {
        expect_passed(&mut shell, signal);
    }
    // Listed: refused although the shell handles it.
    expect_refused(&mut shell, "TERM");
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert!(
        !terms.exists(),
        "the TERM trap ran: the signal was delivered"
    );

    let (status, log) = guard.stop();
    assert!(status.success(), "{log}");
    shell.assert_alive("the guard stopped");
    let records = std::fs::read_to_string(&audit).unwrap_or_default();
    for (signal, reason) in [
        (10, "default-terminate"),
        (11, "default-core"),
        (31, "default-core"),
        (24, "default-core"),
        (20, "default-stop"),
        (15, "listed"),
    ] {
        assert!(
            blocked_for(&records, "guarded-shell", signal, reason),
            "a blocked record for signal {signal} ({reason}):\n{records}"
        );
    }
    assert!(
        !records.contains(r#""number":1,"#),
        "SIGHUP passed without a record:\n{records}"
    );
}

#[test]
fn the_rtguard_daemon_survives_kill_usr1() {
    let dir = tempfile::tempdir().unwrap();
    let audit = dir.path().join("audit.jsonl");
    let guard = start_production(&audit, &[]);
    let pid = guard.pid();
    // rtguard handles TERM, INT and HUP; USR1 is left at its default, which ends it.
    let out = bash(&format!("kill -USR1 {pid}"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("Operation not permitted"),
        "`kill -USR1` to rtguard was not refused: {stderr}"
    );
    std::thread::sleep(std::time::Duration::from_millis(300));
    let (code, status) = guard.status_cmd();
    assert_eq!(code, 0, "rtguard status after kill -USR1: {status}");
    let (exit, log) = guard.stop();
    // Stopped by its supervisor (this test) with SIGTERM, not killed by SIGUSR1.
    assert!(
        exit.success(),
        "rtguard did not survive kill -USR1: {exit}\n{log}"
    );
    let records = std::fs::read_to_string(&audit).unwrap_or_default();
    assert!(
        blocked_for(&records, "rtguard-daemon", 10, "default-terminate"),
        "a blocked record for SIGUSR1 to rtguard:\n{records}"
    );
}

/// Attaches to PID with `PTRACE_SEIZE` (the tracee is not stopped) and leaves, which
/// detaches; exits 1 with the errno's text when the attach is refused.
const PTRACE_SEIZE: &str = r#"
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p]
if libc.ptrace(0x4206, int(sys.argv[1]), None, None) != 0:
    sys.exit(os.strerror(ctypes.get_errno()))
print("attached")
"#;

#[test]
fn a_ptrace_attach_to_a_protected_process_is_refused_except_to_its_supervisor() {
    let dir = tempfile::tempdir().unwrap();
    let audit = dir.path().join("audit.jsonl");
    // The supervisor is a copy of python: its own inode, which python3 does not share.
    let supervisor = dir.path().join("supervisor-python");
    std::fs::copy("/usr/bin/python3", &supervisor).expect("copy python3");
    let (exe, policy) = guarded_shell(
        dir.path(),
        &format!("supervisors = [{:?}]\n", supervisor.display().to_string()),
    );
    let script = dir.path().join("seize.py");
    std::fs::write(&script, PTRACE_SEIZE).unwrap();
    let mut shell = Spawned(
        Command::new(&exe)
            .args(["-c", "while :; do sleep 0.1; done"])
            .stdin(Stdio::null())
            .spawn()
            .expect("start the guarded shell"),
    );
    let pid = shell.pid();
    let seize = |python: &std::path::Path| {
        Command::new(python)
            .arg(&script)
            .arg(pid.to_string())
            // The copy finds its library where python3 does.
            .env("PYTHONHOME", "/usr")
            .output()
            .expect("run python")
    };
    let open_mem = || {
        std::fs::OpenOptions::new()
            .write(true)
            .open(format!("/proc/{pid}/mem"))
    };
    // Before the guard both work, so a refusal below is the guard's.
    let before = seize(std::path::Path::new("/usr/bin/python3"));
    assert!(
        before.status.success(),
        "{}",
        String::from_utf8_lossy(&before.stderr)
    );
    open_mem().expect("/proc/PID/mem opens for writing without the guard");

    let guard = start_with(&policy, &audit);
    let out = seize(std::path::Path::new("/usr/bin/python3"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("Operation not permitted"),
        "a ptrace attach to a protected process was not refused: {stderr}"
    );
    // Writing its memory needs the same rights; procfs turns the refusal into EACCES.
    assert_eq!(
        open_mem().err().and_then(|e| e.raw_os_error()),
        Some(libc::EACCES),
        "/proc/{pid}/mem opened for writing"
    );
    // What ps and top read needs less, and passes.
    let environ = std::fs::read(format!("/proc/{pid}/environ"));
    assert!(environ.is_ok(), "/proc/{pid}/environ: {environ:?}");
    // Its supervisor may.
    let out = seize(&supervisor);
    assert!(
        out.status.success(),
        "the supervisor's attach was refused: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    shell.assert_alive("the attaches");

    let (status, log) = guard.stop();
    assert!(status.success(), "{log}");
    let records = std::fs::read_to_string(&audit).unwrap_or_default();
    assert!(
        records.lines().any(|l| l.contains(r#""layer":"process""#)
            && l.contains(r#""op":"ptrace""#)
            && l.contains(r#""decision":"blocked""#)
            && l.contains(r#""rule":"guarded-shell""#)
            && l.contains(&format!(r#""pid":{pid},"#))),
        "a blocked ptrace record:\n{records}"
    );
}

/// `oom_score_adj` at 1000 makes a process the OOM killer's first choice. A protected
/// process's is written by itself, pid 1 and its supervisors only, through any of its
/// threads' procfs entries and the older `oom_adj` alike; other processes' are as usual.
#[test]
fn a_protected_process_keeps_its_oom_score_adj() {
    let dir = tempfile::tempdir().unwrap();
    let audit = dir.path().join("audit.jsonl");
    let mut containerd = spawn_containerd();
    let sleeper = Spawned(Command::new("sleep").arg("1000").spawn().unwrap());
    let pid = containerd.pid();
    let oom_score_adj =
        |pid: u32| std::fs::read_to_string(format!("/proc/{pid}/oom_score_adj")).unwrap();
    // A Go program starts its threads at once; one that is not the main thread.
    let mut thread = None;
    eventually("containerd has a second thread", || {
        thread = std::fs::read_dir(format!("/proc/{pid}/task"))
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .find(|tid| *tid != pid.to_string());
        thread.is_some()
    });
    let thread = thread.unwrap();
    let before = oom_score_adj(pid);
    let guard = start_production(&audit, &[]);

    for command in [
        format!("echo 1000 > /proc/{pid}/oom_score_adj"),
        format!("echo 15 > /proc/{pid}/oom_adj"),
        format!("echo 1000 > /proc/{pid}/task/{thread}/oom_score_adj"),
        format!("echo -1000 > /proc/{pid}/oom_score_adj"),
    ] {
        expect_denied(&command);
    }
    expect_failed(&format!("choom -n 1000 -p {pid}"));
    assert_eq!(oom_score_adj(pid), before);
    // Reading it, and another process's, as usual.
    expect_allowed(&format!("cat /proc/{pid}/oom_score_adj"));
    expect_allowed(&format!("echo 500 > /proc/{}/oom_score_adj", sleeper.pid()));
    assert_eq!(oom_score_adj(sleeper.pid()), "500\n");
    containerd.assert_alive("the writes");

    let (status, log) = guard.stop();
    assert!(status.success(), "{log}");
    let records = audit_log(&audit);
    assert!(
        records.iter().any(|r| r["layer"] == "process"
            && r["op"] == "oom-adjust"
            && r["decision"] == "blocked"
            && r["rule"] == "runtime-daemons"
            && r["target"]["pid"] == pid),
        "a blocked oom-adjust record: {records:?}"
    );
}

/// Cgroups made for one test, removed (innermost first) when it ends, after the
/// processes in them (declare this first, so it is dropped last).
struct TestCgroups(Vec<PathBuf>);

impl Drop for TestCgroups {
    fn drop(&mut self) {
        for dir in self.0.iter().rev() {
            std::fs::remove_dir(dir).ok();
        }
    }
}

/// `cgroup.kill` kills everything in a cgroup and below it, and `cgroup.freeze` stops it.
/// For the cgroup that holds containerd and its ancestors both are refused (pid 1 may:
/// systemd stops and freezes units so); another cgroup's are as usual.
#[test]
fn the_cgroups_holding_a_protected_process_are_neither_killed_nor_frozen() {
    let root = PathBuf::from("/sys/fs/cgroup");
    assert!(
        root.join("cgroup.controllers").exists(),
        "cgroup v2 is mounted on {}",
        root.display()
    );
    let outer = root.join("rtguard-test-outer");
    let inner = outer.join("inner");
    let other = root.join("rtguard-test-other");
    let cgroups = TestCgroups(vec![outer.clone(), inner.clone(), other.clone()]);
    for dir in &cgroups.0 {
        std::fs::create_dir(dir).unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    let audit = dir.path().join("audit.jsonl");
    let mut containerd = spawn_containerd();
    let mut sleeper = Spawned(Command::new("sleep").arg("1000").spawn().unwrap());
    std::fs::write(inner.join("cgroup.procs"), containerd.pid().to_string()).unwrap();
    std::fs::write(other.join("cgroup.procs"), sleeper.pid().to_string()).unwrap();
    let guard = start_production(&audit, &[]);
    // The daemon finds which cgroups hold protected processes by a census of /proc.
    eventually("containerd's cgroup is guarded", || {
        write_open_refused(&inner.join("cgroup.kill"))
    });

    for cgroup in [&inner, &outer] {
        for file in ["cgroup.kill", "cgroup.freeze"] {
            expect_denied(&format!("echo 1 > {}", cgroup.join(file).display()));
        }
    }
    let events = std::fs::read_to_string(inner.join("cgroup.events")).unwrap();
    assert!(events.contains("frozen 0"), "{events}");
    containerd.assert_alive("cgroup.kill");

    expect_allowed(&format!("echo 1 > {}", other.join("cgroup.kill").display()));
    use std::os::unix::process::ExitStatusExt as _;
    assert_eq!(sleeper.0.wait().unwrap().signal(), Some(9));

    let (status, log) = guard.stop();
    assert!(status.success(), "{log}");
    let records = audit_log(&audit);
    assert!(
        records.iter().any(|r| r["op"] == "open-write"
            && r["decision"] == "blocked"
            && r["rule"] == "runtime-daemons"
            && r["target"]["path"]
                .as_str()
                .is_some_and(|p| p.ends_with("rtguard-test-outer/inner/cgroup.kill"))),
        "a blocked record for cgroup.kill: {records:?}"
    );
    drop(containerd);
}
