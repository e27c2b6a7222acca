//! `rtguard check` and `rtguard explain` as an operator runs them.

use std::process::{Command, Output};

const PRODUCTION: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../policy/production.toml");

fn rtguard(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rtguard"))
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run rtguard: {e}"))
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn check_passes_on_the_shipped_policies_here() {
    for name in ["production", "staging", "development"] {
        let path = PRODUCTION.replace("production", name);
        let out = rtguard(&["check", &path]);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{name}: {}{}",
            stdout(&out),
            stderr(&out)
        );
        let text = stdout(&out);
        assert!(text.contains(&format!("environment `{name}`")), "{text}");
        assert!(text.contains("docker-ce-packages"), "{text}");
    }
}

#[test]
fn check_reports_a_broken_policy_at_its_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("broken.toml");
    std::fs::write(&path, "environment = \"prod\"\nmode = \"enforce\"\n\n[[paths]]\nname = \"bin\"\npaths = [\"/usr/bin/[x\"]\n").unwrap();
    let out = rtguard(&["check", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    let first = err.lines().next().unwrap();
    assert_eq!(
        first,
        format!(
            "{}:6:10: invalid glob `/usr/bin/[x`: unclosed character class; missing ']'",
            path.display()
        )
    );
    assert!(
        err.contains("  6 | paths = [\"/usr/bin/[x\"]\n    |          ^^^^^^^^^^^^^"),
        "{err}"
    );

    let out = rtguard(&["check", "--json", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["ok"], false);
    assert_eq!(v["errors"][0]["line"], 6);
    assert_eq!(v["errors"][0]["col"], 10);
}

#[test]
fn check_json_against_a_root() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("var/lib/containerd")).unwrap();
    let out = rtguard(&[
        "check",
        "--json",
        "--root",
        dir.path().to_str().unwrap(),
        PRODUCTION,
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["ok"], true);
    assert_eq!(v["ruleset"]["policy"]["environment"], "production");
    assert_eq!(v["ruleset"]["trees"][0]["path"], "/var/lib/containerd");
    assert_eq!(v["ruleset"]["rules"][0]["name"], "docker-ce-packages");
    assert_eq!(v["ruleset"]["rules"][0]["id"], 1);
    assert!(v["ruleset"]["warnings"].as_array().unwrap().len() > 1);
}

#[test]
fn check_help_points_to_the_schema_docs() {
    let out = rtguard(&["check", "--help"]);
    assert!(
        stdout(&out).contains("policy/README.md"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn explain_gives_decision_reason_and_rule() {
    let out = rtguard(&[
        "explain",
        "--policy",
        PRODUCTION,
        "--",
        "apt-get",
        "purge",
        "-y",
        "containerd.io",
    ]);
    assert_eq!(out.status.code(), Some(0));
    let text = stdout(&out);
    assert!(text.contains("class:    apt\n"), "{text}");
    assert!(text.contains("decision: blocked\n"), "{text}");
    assert!(
        text.contains("rule:     docker-ce-packages (#1, enforce)"),
        "{text}"
    );

    let out = rtguard(&[
        "explain",
        "--policy",
        PRODUCTION,
        "--",
        "apt-get",
        "install",
        "--reinstall",
        "containerd",
    ]);
    assert!(
        stdout(&out).contains("decision: allowed (upgrade)\n"),
        "{}",
        stdout(&out)
    );

    let staging = PRODUCTION.replace("production", "staging");
    let out = rtguard(&["explain", "--policy", &staging, "--", "iptables", "-F"]);
    assert!(
        stdout(&out).contains("decision: would-block"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn explain_says_a_shell_is_allowed_and_does_not_guess() {
    let out = rtguard(&[
        "explain",
        "--policy",
        PRODUCTION,
        "--",
        "sh",
        "-c",
        "apt-get remove containerd; iptables -F",
    ]);
    let text = stdout(&out);
    assert!(text.contains("decision: allowed\n"), "{text}");
    assert!(text.contains("`sh` itself is allowed. Each command it runs is classified when that command is executed"), "{text}");
}

#[test]
fn explain_json() {
    let out = rtguard(&[
        "explain",
        "--json",
        "--policy",
        PRODUCTION,
        "--",
        "dpkg",
        "--status-fd",
        "23",
        "--no-triggers",
        "--force-depends",
        "--remove",
        "containerd.io:amd64",
    ]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["decision"], "blocked");
    assert_eq!(v["verdict"], "destructive");
    assert_eq!(v["reason"], "protected-object");
    assert_eq!(v["rule"]["name"], "docker-ce-packages");
    assert_eq!(v["verb"]["text"], "--remove");
    assert_eq!(v["object"]["text"], "containerd.io:amd64");
    assert_eq!(v["object_name"], "containerd.io");
}

#[test]
fn explain_without_a_policy_uses_the_shipped_production_one() {
    if std::path::Path::new("/etc/rtguard/policy.toml").exists() {
        eprintln!("skipping: an installed policy takes precedence on this host");
        return;
    }
    let out = rtguard(&["explain", "--", "nft", "flush", "ruleset"]);
    let text = stdout(&out);
    assert!(
        text.contains("policy:   built-in policy/production.toml"),
        "{text}"
    );
    assert!(text.contains("decision: blocked"), "{text}");
}

#[test]
fn explain_follows_the_maintenance_windows_open_for_each_package() {
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("windowed.toml");
    let text = std::fs::read_to_string(PRODUCTION).unwrap().replacen(
        "packages = [\"containerd\", \"runc\", \"docker.io\"]\nupgrade = \"allow\"",
        "packages = [\"containerd\", \"runc\", \"docker.io\"]\nupgrade = \"window\"",
        1,
    );
    std::fs::write(&policy, text).unwrap();
    let state = dir.path().join("state");
    let explain = |extra: &[&str], argv: &[&str]| {
        let mut args = vec![
            "explain",
            "--json",
            "--policy",
            policy.to_str().unwrap(),
            "--state-dir",
            state.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        args.push("--");
        args.extend_from_slice(argv);
        let out = rtguard(&args);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        (
            v["decision"].as_str().unwrap().to_owned(),
            v["reason"].as_str().unwrap().to_owned(),
        )
    };
    let decided = |decision: &str, reason: &str| (decision.to_owned(), reason.to_owned());
    let reinstall_runc = ["apt-get", "install", "--reinstall", "runc"];
    assert_eq!(
        explain(&[], &reinstall_runc),
        decided("blocked", "upgrade-outside-window")
    );

    // A window opened with no daemon running is on record and applies.
    let out = rtguard(&[
        "maintenance",
        "open",
        "--package",
        "runc",
        "--allow-removal",
        "--for",
        "10m",
        "--reason",
        "CVE fix",
        "--state-dir",
        state.to_str().unwrap(),
        "--status-file",
        dir.path().join("no-daemon.json").to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(
        explain(&[], &reinstall_runc),
        decided("allowed-by-maintenance", "upgrade-in-window")
    );
    assert_eq!(
        explain(&[], &["dpkg", "--remove", "--force-depends", "runc"]),
        decided("allowed-by-maintenance", "removal-in-window")
    );
    assert_eq!(
        explain(&[], &["dpkg", "-r", "containerd"]),
        decided("blocked", "protected-object")
    );
    assert_eq!(
        explain(&[], &["apt-get", "remove", "runc", "containerd"]),
        decided("blocked", "protected-object")
    );

    // --window simulates one more, upgrade only unless --allow-removal.
    let containerd = ["--window", "containerd"];
    assert_eq!(
        explain(
            &containerd,
            &["dpkg", "-i", "/root/debs/containerd_1.6.20_amd64.deb"]
        ),
        decided("allowed-by-maintenance", "upgrade-in-window")
    );
    assert_eq!(
        explain(&containerd, &["dpkg", "-r", "containerd"]),
        decided("blocked", "protected-object")
    );
    let out = rtguard(&[
        "explain",
        "--policy",
        policy.to_str().unwrap(),
        "--state-dir",
        state.to_str().unwrap(),
        "--",
        "dpkg",
        "-r",
        "runc",
    ]);
    let text = stdout(&out);
    assert!(
        text.contains("decision: allowed (maintenance window), recorded\n"),
        "{text}"
    );
    assert!(text.contains("window open that allows removal"), "{text}");
}
