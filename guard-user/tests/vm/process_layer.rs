//! The process layer under the shipped production policy: a running containerd survives
//! the signals an uninstaller sends it, while unprotected processes can still be killed.

use std::process::{Command, Stdio};

use crate::common::*;

/// A child process killed when the test ends, however it ends.
struct Daemon(std::process::Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        self.0.kill().ok();
        self.0.wait().ok();
    }
}

impl Daemon {
    fn pid(&self) -> u32 {
        self.0.id()
    }

    fn assert_alive(&mut self, after: &str) {
        assert!(
            matches!(self.0.try_wait(), Ok(None)),
            "the daemon died after `{after}`"
        );
    }
}

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
    let mut containerd = Daemon(
        Command::new("/usr/bin/containerd")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start /usr/bin/containerd"),
    );
    let mut sleeper = Daemon(Command::new("sleep").arg("1000").spawn().unwrap());
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
