//! A refusal explains itself on the terminal of the person refused: one notice per command,
//! with the rule and the way to read more, written by the daemon to the refused process's
//! controlling terminal, and nowhere when it has none.

use std::{
    path::Path,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use crate::common::*;

/// Runs `script` in bash on a pseudo-terminal of its own, as a person at a terminal would,
/// and returns what the terminal showed. The session stays open after the command, as the
/// person's shell would: the notice comes from the daemon, which first records every
/// refusal (hundreds for an `rm -rf`, slow under emulation). The screen is returned once
/// the command has ended, `ready` holds for it, and neither the screen nor `audit` has
/// changed for two seconds, long enough for a second notice to show.
fn on_terminal_until(script: &str, audit: &Path, mut ready: impl FnMut(&str) -> bool) -> String {
    let dir = tempfile::tempdir().unwrap();
    let typescript = dir.path().join("screen");
    let _session = Spawned(
        Command::new("script")
            .args([
                "-qfec",
                &format!("bash -c '{script}'; echo exit=$?; sleep 600"),
            ])
            .arg(&typescript)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .expect("spawn script"),
    );
    let screen = || {
        let bytes = std::fs::read(&typescript).unwrap_or_default();
        String::from_utf8_lossy(&bytes).replace('\r', "")
    };
    let audit_size = || std::fs::metadata(audit).map(|m| m.len()).unwrap_or(0);
    let start = Instant::now();
    loop {
        let now = screen();
        if now.contains("exit=") && ready(&now) {
            break;
        }
        // Not a timing assertion: the limit only stops a hung test. What the daemon
        // recorded last says whether the refusal reached it at all.
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "`{script}` never ended with its refusals handled; the terminal showed:\n{now}\n\
             the audit log's last records:\n{}",
            last_records(audit, 4)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut seen = (screen(), audit_size());
    let mut unchanged_since = Instant::now();
    while unchanged_since.elapsed() < Duration::from_secs(2) {
        std::thread::sleep(Duration::from_millis(100));
        let now = (screen(), audit_size());
        if now != seen {
            seen = now;
            unchanged_since = Instant::now();
        }
    }
    seen.0
}

/// [`on_terminal_until`] a notice has been shown.
fn on_terminal(script: &str, audit: &Path) -> String {
    on_terminal_until(script, audit, |screen| !notices(screen).is_empty())
}

/// [`on_terminal_until`] the audit log has a new record: the daemon has handled the
/// refusal, and a notice, if one were due, would be written within the next two seconds.
fn on_terminal_unnoticed(script: &str, audit: &Path) -> String {
    let records = audit_records(audit);
    on_terminal_until(script, audit, |_| audit_records(audit) > records)
}

/// The last `n` lines of the audit log.
fn last_records(audit: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(audit).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

fn audit_records(audit: &Path) -> usize {
    std::fs::read_to_string(audit)
        .map(|text| text.lines().count())
        .unwrap_or(0)
}

/// The notices' first lines on a terminal.
fn notices(screen: &str) -> Vec<&str> {
    screen
        .lines()
        .filter(|l| l.starts_with("rtguard: refused") || l.starts_with("rtguard: would have"))
        .collect()
}

/// The same command without a controlling terminal (a new session, no tty).
fn without_terminal(script: &str) -> String {
    let out = Command::new("setsid")
        .args(["-w", "bash", "-c", script])
        .stdin(Stdio::null())
        .output()
        .expect("spawn setsid");
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn package_states() -> String {
    let out = sh("dpkg-query -W -f='${db:Status-Abbrev}|' containerd runc");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn refusals_are_explained_on_the_terminal_once_per_command() {
    let dir = tempfile::tempdir().unwrap();
    let audit = dir.path().join("audit.jsonl");
    // Hundreds of files in the runtime's tree, made before the start.
    let many = Path::new("/var/lib/containerd/rtguard-notice-test");
    std::fs::create_dir_all(many).unwrap();
    for i in 0..300 {
        std::fs::write(many.join(format!("f{i}")), b"x").unwrap();
    }
    let mut containerd = spawn_containerd();
    assert_eq!(package_states(), "ii |ii |");
    let guard = start_production(&audit, &[]);

    // A package removal: refused at exec, with the rule, the explanation and the way to
    // do it on purpose.
    let screen = on_terminal("apt-get remove -y containerd", &audit);
    assert!(screen.contains("exit=126"), "{screen}");
    assert!(screen.contains("Operation not permitted"), "{screen}");
    let lines = notices(&screen);
    assert_eq!(lines.len(), 1, "one notice: {screen}");
    assert!(
        lines[0].starts_with(
            "rtguard: refused `remove` of containerd, by `apt-get remove -y containerd`"
        ),
        "{screen}"
    );
    assert!(
        lines[0].ends_with("the exec layer refuses it (rule distro-docker-packages)."),
        "{screen}"
    );
    assert!(
        screen.contains(
            "rtguard: see `rtguard audit --since 5m` and `rtguard explain -- apt-get remove -y containerd`."
        ),
        "{screen}"
    );
    assert!(
        screen.contains(
            "rtguard: to remove it on purpose, open a window first: rtguard maintenance open \
             --package containerd --allow-removal --for 30m"
        ),
        "{screen}"
    );

    // `rm -rf` over hundreds of files: refused for each, told once, with the count.
    let screen = on_terminal(&format!("rm -rf {}", many.display()), &audit);
    assert!(screen.contains("exit=1"), "{screen}");
    let lines = notices(&screen);
    assert_eq!(lines.len(), 1, "one notice for the whole rm: {screen}");
    let line = lines[0];
    let count: u32 = line
        .split(" and ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("a count of the other refusals: {line}"));
    assert!(count >= 299, "{line}");
    assert!(
        line.contains(&format!("more, by `rm -rf {}`", many.display())),
        "{line}"
    );
    assert!(
        line.ends_with("the file layer protects /var/lib/containerd (rule runtime-state)."),
        "{line}"
    );
    assert_eq!(
        std::fs::read_dir(many).unwrap().count(),
        300,
        "nothing removed"
    );

    // A firewall flush and a signal to the runtime.
    let screen = on_terminal("iptables -t nat -F DOCKER", &audit);
    assert!(screen.contains("exit=126"), "{screen}");
    let lines = notices(&screen);
    assert_eq!(lines.len(), 1, "{screen}");
    assert!(lines[0].contains("refused `-F` of DOCKER"), "{screen}");
    let pid = containerd.pid();
    let screen = on_terminal(&format!("kill -9 {pid}"), &audit);
    let lines = notices(&screen);
    assert_eq!(lines.len(), 1, "{screen}");
    assert!(
        lines[0].starts_with(&format!(
            "rtguard: refused signal 9 to containerd (pid {pid})"
        )),
        "{screen}"
    );
    assert!(
        lines[0].ends_with("the process layer protects containerd (rule runtime-daemons)."),
        "{screen}"
    );
    containerd.assert_alive(&format!("kill -9 {pid}"));

    // The same terminal, but the command in a mount namespace of its own (as in a
    // container): its terminal's number names no node the daemon can be sure of.
    let screen = on_terminal_unnoticed("unshare -m apt-get remove -y containerd", &audit);
    assert!(screen.contains("exit=126"), "{screen}");
    assert!(notices(&screen).is_empty(), "{screen}");

    // Without a terminal the refusal is the same and no notice is written.
    let out = without_terminal("apt-get remove -y containerd; echo exit=$?");
    assert!(out.contains("exit=126"), "{out}");
    assert!(!out.contains("rtguard:"), "{out}");

    assert_eq!(package_states(), "ii |ii |");
    drop(guard);
    drop(containerd);
    std::fs::remove_dir_all(many).unwrap();
}

#[test]
fn audit_mode_says_it_let_the_command_through_and_a_policy_can_turn_notices_off() {
    let dir = tempfile::tempdir().unwrap();
    let audit = dir.path().join("audit.jsonl");
    let tree = dir.path().join("data");
    let policy = dir.path().join("policy.toml");
    let write_policy = |mode: &str, notices: bool| {
        std::fs::create_dir_all(&tree).unwrap();
        for i in 0..20 {
            std::fs::write(tree.join(format!("f{i}")), b"x").unwrap();
        }
        std::fs::write(
            &policy,
            format!(
                "environment = \"test\"\nmode = \"{mode}\"\nterminal_notices = {notices}\n\n\
                 [[trees]]\nname = \"data\"\npaths = [\"{}\"]\n",
                tree.display()
            ),
        )
        .unwrap();
    };
    let start = || {
        start_ready_guard(&[
            "--policy",
            policy.to_str().unwrap(),
            "--audit-log",
            audit.to_str().unwrap(),
        ])
    };

    write_policy("audit", true);
    let guard = start();
    let screen = on_terminal(&format!("rm -rf {}", tree.display()), &audit);
    assert!(screen.contains("exit=0"), "{screen}");
    let lines = notices(&screen);
    assert_eq!(lines.len(), 1, "{screen}");
    assert!(
        lines[0].starts_with("rtguard: would have refused (audit mode: it was let through) "),
        "{screen}"
    );
    assert!(!tree.exists(), "audit mode let rm remove the tree");
    drop(guard);

    write_policy("enforce", false);
    let guard = start();
    let screen = on_terminal_unnoticed(&format!("rm -rf {}", tree.display()), &audit);
    assert!(screen.contains("Operation not permitted"), "{screen}");
    assert!(notices(&screen).is_empty(), "{screen}");
    assert_eq!(std::fs::read_dir(&tree).unwrap().count(), 20);
    drop(guard);
}
