//! The audit trail end to end: records written by the daemon's writer (with rotation) are
//! reviewed with the real `rtguard audit` binary.

use std::{
    fs,
    path::{Path, PathBuf},
    process::{Command, Output},
};

use guard_user::audit::{
    log::rotated, Actor, AuditLog, AuditLogConfig, AuditRecord, Decision, Layer, PolicyRef,
    RecordContext, Target,
};
use time::{Duration, OffsetDateTime};

fn context() -> RecordContext {
    RecordContext {
        host: "prod-7".into(),
        environment: "production".into(),
        policy: PolicyRef {
            name: "production".into(),
            sha256: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08".into(),
        },
    }
}

fn rm(at: OffsetDateTime, path: &str) -> AuditRecord {
    context()
        .record(
            Layer::File,
            "unlink",
            Decision::Blocked,
            Actor::new(4242, 0, "rm").with_argv(["rm", "-rf", path], false),
        )
        .at(at)
        .rule("containerd-binaries")
        .target(
            Target::inode(guard_common::InodeKey::from_stat(254, 1, 1311))
                .with_path(path)
                .with_package("containerd.io"),
        )
}

/// The seed incident, as the audit log would have it: three hours ago the uninstaller's
/// `rm -rf`, its `apt-get remove` observed in degraded mode and its `kill -9`; five minutes
/// ago a maintenance window and the runc upgrade it let through.
fn incident(now: OffsetDateTime) -> Vec<AuditRecord> {
    let old = now - Duration::hours(3);
    let recent = now - Duration::minutes(5);
    vec![
        rm(old, "/usr/bin/containerd"),
        rm(
            old + Duration::seconds(1),
            "/usr/bin/containerd-shim-runc-v2",
        ),
        context()
            .record(
                Layer::Exec,
                "exec",
                Decision::WouldBlock,
                Actor::new(5000, 0, "bash")
                    .with_argv(["apt-get", "remove", "-y", "containerd.io"], false),
            )
            .at(old + Duration::seconds(2))
            .enforced(false)
            .rule("package-removal")
            .target(
                Target::default()
                    .with_path("/usr/bin/apt-get")
                    .with_package("apt"),
            )
            .exec("remove", Some("containerd.io".into())),
        context()
            .record(
                Layer::Process,
                "kill",
                Decision::Blocked,
                Actor::new(6000, 0, "kill").with_argv(["kill", "-9", "812"], false),
            )
            .at(old + Duration::seconds(3))
            .rule("runtime-daemons")
            .target(
                Target::default()
                    .with_path("/usr/bin/containerd")
                    .with_process(812, "containerd"),
            )
            .signal(9)
            .dropped_since_last(4),
        context()
            .record(
                Layer::Daemon,
                "maintenance-open",
                Decision::Notice,
                Actor::new(1, 0, "rtguard"),
            )
            .at(recent)
            .target(Target::package("runc"))
            .note("CVE fix"),
        context()
            .record(
                Layer::File,
                "rename",
                Decision::AllowedMaintenance,
                Actor::new(7000, 0, "dpkg")
                    .with_argv(["dpkg", "--unpack", "runc_1.1.12_amd64.deb"], false),
            )
            .at(recent + Duration::seconds(1))
            .rule("runc-binary")
            .target(
                Target::default()
                    .with_path("/usr/sbin/runc")
                    .with_package("runc"),
            )
            .dropped_since_last(1),
    ]
}

/// Writes the incident through the real writer, two records per file.
fn write_log(dir: &Path) -> (PathBuf, Vec<AuditRecord>) {
    let path = dir.join("audit.jsonl");
    let records = incident(OffsetDateTime::now_utc());
    let longest = records
        .iter()
        .map(|r| r.to_json_line().len() as u64)
        .max()
        .unwrap();
    let mut log = AuditLog::open(AuditLogConfig {
        max_bytes: 2 * longest,
        keep: 8,
        ..AuditLogConfig::new(&path)
    })
    .unwrap_or_else(|e| panic!("opening the audit log: {e}"));
    for r in &records {
        log.append(r).unwrap_or_else(|e| panic!("appending: {e}"));
    }
    assert!(rotated(&path, 1).exists(), "the test needs rotated files");
    (path, records)
}

fn rtguard_audit(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rtguard"))
        .arg("audit")
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("running rtguard: {e}"))
}

fn stdout(out: &Output) -> String {
    String::from_utf8(out.stdout.clone()).unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8(out.stderr.clone()).unwrap()
}

#[track_caller]
fn assert_status(out: &Output, code: i32) {
    assert_eq!(
        out.status.code(),
        Some(code),
        "stdout:\n{}\nstderr:\n{}",
        stdout(out),
        stderr(out)
    );
}

#[test]
fn table_shows_every_record_across_rotated_files_in_order() {
    let tmp = tempfile::tempdir().unwrap();
    let (path, _) = write_log(tmp.path());
    let out = rtguard_audit(&[path.to_str().unwrap()]);
    assert_status(&out, 0);
    let text = stdout(&out);
    println!("{text}");
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines[0]
            .starts_with("TIME (UTC)           DECISION             LAYER/OP                 RULE"),
        "{text}"
    );
    let rows: Vec<Vec<&str>> = lines[1..7]
        .iter()
        .map(|l| {
            l.split("  ")
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .collect()
        })
        .collect();
    let columns = |i: usize| rows.iter().map(|r| r[i]).collect::<Vec<_>>();
    assert_eq!(
        columns(1),
        [
            "blocked",
            "blocked",
            "would-block*",
            "blocked",
            "notice",
            "allowed-maintenance"
        ]
    );
    assert_eq!(
        columns(2),
        [
            "file/unlink",
            "file/unlink",
            "exec/exec",
            "process/kill",
            "daemon/maintenance-open",
            "file/rename"
        ]
    );
    assert_eq!(
        columns(3),
        [
            "containerd-binaries",
            "containerd-binaries",
            "package-removal",
            "runtime-daemons",
            "-",
            "runc-binary"
        ]
    );
    assert_eq!(
        columns(4),
        [
            "/usr/bin/containerd",
            "/usr/bin/containerd-shim-runc-v2",
            "remove containerd.io",
            "/usr/bin/containerd [812]",
            "runc (CVE fix)",
            "/usr/sbin/runc"
        ]
    );
    assert_eq!(
        columns(5),
        [
            "rm[4242] rm -rf /usr/bin/containerd",
            "rm[4242] rm -rf /usr/bin/containerd-shim-runc-v2",
            "bash[5000] apt-get remove -y containerd.io",
            "kill[6000] kill -9 812",
            "rtguard[1]",
            "dpkg[7000] dpkg --unpack runc_1.1.12_amd64.deb"
        ]
    );
    // Columns line up.
    let actor_col = lines[0].find("ACTOR").unwrap();
    for l in &lines[1..7] {
        assert_eq!(&l[actor_col - 2..actor_col], "  ", "{l}");
    }
    assert_eq!(
        &lines[7..],
        [
            "* not enforced: the kernel only observed this (degraded mode), or the self-test failed",
            "5 kernel event(s) were dropped in this period and are not in the log"
        ]
    );
    assert_eq!(stderr(&out), "");
}

#[test]
fn json_passes_matching_lines_through_unchanged() {
    let tmp = tempfile::tempdir().unwrap();
    let (path, _) = write_log(tmp.path());
    let mut all_lines = Vec::new();
    for n in (1..=8).rev() {
        if let Ok(text) = fs::read_to_string(rotated(&path, n)) {
            all_lines.extend(text.lines().map(String::from));
        }
    }
    all_lines.extend(fs::read_to_string(&path).unwrap().lines().map(String::from));
    assert_eq!(all_lines.len(), 6);

    let out = rtguard_audit(&[path.to_str().unwrap(), "--json"]);
    assert_status(&out, 0);
    assert_eq!(stdout(&out).lines().collect::<Vec<_>>(), all_lines);

    let out = rtguard_audit(&[path.to_str().unwrap(), "--json", "--decision", "blocked"]);
    assert_status(&out, 0);
    println!("{}", stdout(&out));
    let expected: Vec<&String> = all_lines
        .iter()
        .filter(|l| l.contains(r#""decision":"blocked""#))
        .collect();
    assert_eq!(expected.len(), 3);
    assert_eq!(stdout(&out).lines().collect::<Vec<_>>(), expected);
    for line in stdout(&out).lines() {
        AuditRecord::from_json_line(line).unwrap();
    }
    // Lost events are never hidden, even from a pipeline.
    assert!(
        stderr(&out).contains("5 kernel event(s) were dropped in this period"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn filters_narrow_the_table() {
    let tmp = tempfile::tempdir().unwrap();
    let (path, _) = write_log(tmp.path());
    let file = path.to_str().unwrap();
    let ops = |args: &[&str]| -> Vec<String> {
        let mut all = vec![file, "--json"];
        all.extend_from_slice(args);
        let out = rtguard_audit(&all);
        assert_status(&out, 0);
        stdout(&out)
            .lines()
            .map(|l| {
                let r = AuditRecord::from_json_line(l).unwrap();
                format!("{}/{}", r.layer, r.op)
            })
            .collect()
    };
    assert_eq!(
        ops(&["--since", "1h"]),
        ["daemon/maintenance-open", "file/rename"]
    );
    assert_eq!(ops(&["--until", "1h"]).len(), 4);
    let since = guard_user::audit::record::timestamp::format(
        OffsetDateTime::now_utc() - Duration::hours(4),
    );
    let until = guard_user::audit::record::timestamp::format(
        OffsetDateTime::now_utc() - Duration::hours(2),
    );
    assert_eq!(ops(&["--since", &since, "--until", &until]).len(), 4);
    assert_eq!(ops(&["--rule", "package-removal"]), ["exec/exec"]);
    assert_eq!(
        ops(&[
            "--decision",
            "allowed-maintenance",
            "--decision",
            "would-block"
        ]),
        ["exec/exec", "file/rename"]
    );
    assert_eq!(ops(&["--op", "kill"]), ["process/kill"]);
    assert_eq!(ops(&["--layer", "daemon"]), ["daemon/maintenance-open"]);
    assert_eq!(
        ops(&["--package", "runc"]),
        ["daemon/maintenance-open", "file/rename"]
    );
    assert_eq!(
        ops(&["--package", "containerd.io"]),
        ["file/unlink", "file/unlink", "exec/exec"]
    );
    assert_eq!(ops(&["--actor", "dpkg"]), ["file/rename"]);
    assert_eq!(ops(&["--actor", "shim"]), ["file/unlink"]);
    assert_eq!(
        ops(&["--layer", "file", "--decision", "blocked", "--actor", "rm"]),
        ["file/unlink", "file/unlink"]
    );
    // Only the newest file.
    let out = rtguard_audit(&[file, "--json", "--no-rotated"]);
    assert_status(&out, 0);
    assert_eq!(stdout(&out).lines().count(), 2);
}

#[test]
fn summary_counts_like_aureport() {
    let tmp = tempfile::tempdir().unwrap();
    let (path, _) = write_log(tmp.path());
    let out = rtguard_audit(&[path.to_str().unwrap(), "--summary"]);
    assert_status(&out, 0);
    let text = stdout(&out);
    println!("{text}");
    assert!(text.starts_with("Audit summary: 6 records, "), "{text}");
    assert!(
        text.contains("\nNot enforced (degraded mode or failed self-test): 1\n"),
        "{text}"
    );
    assert!(
        text.contains("\nDropped kernel events (not in the log): 5\n"),
        "{text}"
    );
    assert!(
        text.contains(
            "By decision:\n  count  decision\n      3  blocked\n      1  allowed-maintenance\n      1  notice\n      1  would-block\n"
        ),
        "{text}"
    );
    assert!(
        text.contains(
            "By rule:\n  count  rule\n      2  containerd-binaries\n      1  (no rule)\n"
        ),
        "{text}"
    );
    assert!(
        text.contains("      1  apt-get remove -y containerd.io\n"),
        "{text}"
    );

    let out = rtguard_audit(&[
        path.to_str().unwrap(),
        "--summary",
        "--json",
        "--since",
        "1h",
    ]);
    assert_status(&out, 0);
    let json: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(json["records"], 2);
    // The drop counted on the maintenance-window record's successor is in the window;
    // the 4 from three hours ago are not.
    assert_eq!(json["dropped"], 1);
    assert_eq!(json["by_decision"]["allowed-maintenance"], 1);
    assert_eq!(json["by_actor"]["dpkg --unpack runc_1.1.12_amd64.deb"], 1);
}

#[test]
fn malformed_lines_are_reported_and_skipped() {
    let tmp = tempfile::tempdir().unwrap();
    let (path, _) = write_log(tmp.path());
    let live_lines = fs::read_to_string(&path).unwrap().lines().count();
    let mut text = fs::read_to_string(&path).unwrap();
    text.push_str("{\"v\":1,\"ts\":\"garbage\n");
    text.push_str(&rm(OffsetDateTime::now_utc(), "/usr/bin/ctr").to_json_line());
    fs::write(&path, text).unwrap();
    let out = rtguard_audit(&[path.to_str().unwrap(), "--rule", "containerd-binaries"]);
    assert_status(&out, 0);
    let err = stderr(&out);
    let expected = format!(
        "rtguard: {}:{}: skipped malformed record: ",
        path.display(),
        live_lines + 1
    );
    assert!(err.starts_with(&expected), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    // Header, three rows, and the dropped-events line.
    assert_eq!(stdout(&out).lines().count(), 1 + 3 + 1, "{}", stdout(&out));
    assert!(stdout(&out).contains("rm -rf /usr/bin/ctr"));
}

#[test]
fn no_match_is_success_with_empty_output() {
    let tmp = tempfile::tempdir().unwrap();
    let (path, _) = write_log(tmp.path());
    let out = rtguard_audit(&[
        path.to_str().unwrap(),
        "--rule",
        "no-such-rule",
        "--since",
        "1m",
    ]);
    assert_status(&out, 0);
    assert_eq!(stdout(&out), "");
    assert_eq!(stderr(&out), "rtguard: no matching records\n");
    // Events lost in the period are still reported when no record matches.
    let out = rtguard_audit(&[
        path.to_str().unwrap(),
        "--rule",
        "no-such-rule",
        "--since",
        "1h",
    ]);
    assert_status(&out, 0);
    assert_eq!(
        stdout(&out),
        "1 kernel event(s) were dropped in this period and are not in the log\n"
    );
}

#[test]
fn bad_arguments_exit_2() {
    let tmp = tempfile::tempdir().unwrap();
    let (path, _) = write_log(tmp.path());
    let file = path.to_str().unwrap();
    for (args, says) in [
        (vec!["--since", "yesterday"], "invalid time 'yesterday'"),
        (vec!["--until", "10"], "invalid time '10'"),
        (
            vec!["--decision", "deny"],
            "possible values: blocked, would-block",
        ),
        (
            vec!["--layer", "network"],
            "possible values: file, exec, process, netfilter, daemon",
        ),
        (
            vec!["--since", "1h", "--until", "2h"],
            "--since is later than --until",
        ),
        (vec!["--frobnicate"], "unexpected argument"),
    ] {
        let mut all = vec![file];
        all.extend(args.iter().copied());
        let out = rtguard_audit(&all);
        assert_status(&out, 2);
        assert!(stderr(&out).contains(says), "{args:?}: {}", stderr(&out));
        assert_eq!(stdout(&out), "");
    }
}

#[test]
fn unreadable_log_exits_1() {
    let tmp = tempfile::tempdir().unwrap();
    let missing = tmp.path().join("audit.jsonl");
    let out = rtguard_audit(&[missing.to_str().unwrap()]);
    assert_status(&out, 1);
    assert_eq!(
        stderr(&out),
        format!(
            "rtguard: cannot read {}: No such file or directory (os error 2)\n",
            missing.display()
        )
    );

    // A directory where the log should be: opens, but cannot be read.
    fs::create_dir(&missing).unwrap();
    let out = rtguard_audit(&[missing.to_str().unwrap()]);
    assert_status(&out, 1);
    assert!(
        stderr(&out).starts_with(&format!("rtguard: cannot read {}: ", missing.display())),
        "{}",
        stderr(&out)
    );
}

#[test]
fn help_documents_the_filters() {
    let out = Command::new(env!("CARGO_BIN_EXE_rtguard"))
        .args(["audit", "--help"])
        .output()
        .unwrap();
    assert_status(&out, 0);
    let help = stdout(&out);
    for flag in [
        "--since",
        "--until",
        "--rule",
        "--decision",
        "--op",
        "--package",
        "--actor",
        "--layer",
        "--json",
        "--summary",
        "/var/log/rtguard/audit.jsonl",
    ] {
        assert!(help.contains(flag), "--help lacks {flag}:\n{help}");
    }
}
