//! The exec layer under the shipped production policy, with the real Debian packages of
//! the VM image: destructive package and firewall commands are refused at exec (bash exits
//! 126 with EPERM's message) before they touch anything, while reading commands and
//! reinstalls keep working.

use std::{path::Path, process::Command};

use crate::common::*;

fn start_production(audit_log: &Path, extra: &[&str]) -> RunningGuard {
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

/// Runs a command line with bash, which reports a refused execve as exit 126.
fn bash(script: &str) -> std::process::Output {
    Command::new("bash")
        .args(["-c", script])
        .output()
        .expect("spawn bash")
}

/// The command must be refused at exec: exit 126 and EPERM's message, from bash itself.
fn expect_refused_at_exec(script: &str) {
    let out = bash(script);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(126),
        "`{script}` was not refused at exec ({}); stdout: {}; stderr: {stderr}",
        out.status,
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(
        stderr.contains("Operation not permitted"),
        "`{script}` failed without EPERM: {stderr}"
    );
}

fn expect_runs(script: &str) -> String {
    let out = bash(script);
    assert!(
        out.status.success(),
        "`{script}` failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// What `dpkg-query` says of both packages: `ii ` each while they are installed.
fn package_states() -> String {
    expect_runs("dpkg-query -W -f='${db:Status-Abbrev}|' containerd runc")
}

/// `dpkg -V` prints one line per file that differs from the package: nothing may.
fn assert_packages_verify() {
    expect_verified(&["containerd", "runc"]);
}

/// The files, unit and enablement link a removal's prerm and unpack would touch first.
fn runtime_files() -> Vec<std::path::PathBuf> {
    [
        "/usr/bin/containerd",
        "/usr/bin/ctr",
        "/usr/sbin/runc",
        "/lib/systemd/system/containerd.service",
        "/etc/systemd/system/multi-user.target.wants/containerd.service",
        "/etc/containerd/config.toml",
    ]
    .map(std::path::PathBuf::from)
    .into_iter()
    .filter(|p| p.symlink_metadata().is_ok())
    .collect()
}

fn exec_records(audit: &Path) -> Vec<String> {
    std::fs::read_to_string(audit)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains(r#""layer":"exec""#))
        .map(str::to_owned)
        .collect()
}

#[test]
fn package_removals_are_refused_at_exec_and_the_packages_stay_installed() {
    let dir = tempfile::tempdir().unwrap();
    let audit = dir.path().join("audit.jsonl");
    let files = runtime_files();
    assert!(
        files
            .iter()
            .any(|p| p.ends_with("multi-user.target.wants/containerd.service")),
        "the image enables containerd: {files:?}"
    );
    let before = snapshot(&files);
    assert_eq!(package_states(), "ii |ii |");
    let guard = start_production(&audit, &[]);

    let commands = [
        "apt-get remove -y containerd",
        "apt-get purge -y containerd",
        "apt remove -y runc",
        "dpkg -r runc",
        "dpkg --purge --force-all containerd",
        "dpkg --status-fd 23 --no-triggers --force-depends --remove containerd:amd64",
        "dpkg --remove --pending",
        "/usr/bin/dpkg -P runc:amd64",
    ];
    for command in commands {
        expect_refused_at_exec(command);
    }
    // Each command of a shell loop is its own exec: the protected ones are refused.
    let out = expect_runs(
        "for pkg in docker.io docker-doc docker-compose podman-docker containerd runc; do \
         apt-get remove -y $pkg >/dev/null 2>&1; echo \"$pkg=$?\"; done",
    );
    assert!(out.contains("containerd=126"), "{out}");
    assert!(out.contains("runc=126"), "{out}");
    assert!(out.contains("docker.io=126"), "{out}");
    // An unprotected package goes to apt, which says it doesn't know it.
    assert!(!out.contains("docker-doc=126"), "{out}");

    assert_eq!(
        package_states(),
        "ii |ii |",
        "a package left the installed state"
    );
    assert_packages_verify();
    assert_eq!(
        snapshot(&files),
        before,
        "the prerm or the unpack touched files"
    );

    let (status, log) = guard.stop();
    assert!(status.success(), "{log}");
    let records = exec_records(&audit);
    let blocked = records
        .iter()
        .filter(|l| l.contains(r#""decision":"blocked""#))
        .count();
    assert!(
        blocked >= commands.len() + 3,
        "a blocked exec record per refused command:\n{}",
        records.join("\n")
    );
    assert!(
        records.iter().any(
            |l| l.contains(r#""argv":["apt-get","remove","-y","containerd"]"#)
                && l.contains(r#""exec":{"verb":"remove","object":"containerd"}"#)
                && l.contains(r#""rule":"distro-docker-packages""#)
        ),
        "the record names argv, verb, object and rule:\n{}",
        records.join("\n")
    );
    assert!(
        records.iter().any(|l| l.contains(r#""verb":"--remove""#)
            && l.contains(r#""object":"containerd""#)
            && l.contains("containerd:amd64")),
        "apt's own dpkg call is named:\n{}",
        records.join("\n")
    );
}

#[test]
fn reading_commands_and_a_reinstall_from_a_local_deb_pass() {
    let dir = tempfile::tempdir().unwrap();
    let audit = dir.path().join("audit.jsonl");
    let guard = start_production(&audit, &[]);
    expect_runs("dpkg -l containerd runc");
    expect_runs("dpkg -s containerd");
    expect_runs("apt-get remove -s containerd");
    expect_runs("dpkg --no-act -r containerd");
    let deb = containerd_deb();
    expect_runs(&format!(
        "DEBIAN_FRONTEND=noninteractive apt-get install --reinstall -y {}",
        deb.display()
    ));
    assert_eq!(package_states(), "ii |ii |");
    assert_packages_verify();
    // Still refused afterwards.
    expect_refused_at_exec("apt-get remove -y containerd");

    let (status, log) = guard.stop();
    assert!(status.success(), "{log}");
    let records = exec_records(&audit);
    assert!(
        records
            .iter()
            .any(|l| l.contains(r#""decision":"allowed-upgrade""#) && l.contains("--reinstall")),
        "the reinstall is recorded as an allowed upgrade:\n{}",
        records.join("\n")
    );
}

/// Loads the netfilter modules and creates Docker's NAT chain with a rule in it.
fn docker_nat_chain() -> String {
    for module in [
        "nf_tables",
        "nft_compat",
        "nft_chain_nat",
        "iptable_nat",
        "xt_addrtype",
    ] {
        // Some are built in on one kernel and modules on the other.
        bash(&format!("modprobe {module}"));
    }
    bash("iptables -t nat -N DOCKER");
    expect_runs("iptables -t nat -F DOCKER && iptables -t nat -A DOCKER -d 10.7.0.1/32 -j RETURN");
    let rules = expect_runs("iptables -t nat -S DOCKER");
    assert!(rules.contains("10.7.0.1"), "{rules}");
    rules
}

#[test]
fn firewall_flushes_are_refused_and_dockers_chain_survives_byte_for_byte() {
    let dir = tempfile::tempdir().unwrap();
    let audit = dir.path().join("audit.jsonl");
    let before = docker_nat_chain();
    let guard = start_production(&audit, &[]);

    for command in [
        "iptables -F",
        "iptables -X",
        "iptables -t nat -F",
        "iptables -t nat -X",
        "iptables -t nat -F DOCKER",
        "iptables -t nat -X DOCKER",
        "iptables -tnat -FDOCKER",
        "nft flush ruleset",
    ] {
        expect_refused_at_exec(command);
        assert_eq!(
            expect_runs("iptables -t nat -S DOCKER"),
            before,
            "`{command}` changed the DOCKER chain"
        );
    }
    expect_runs("iptables -L");
    let nat = expect_runs("iptables -t nat -S");
    assert!(nat.contains("-N DOCKER"), "{nat}");
    expect_runs("nft list ruleset");

    let (status, log) = guard.stop();
    assert!(status.success(), "{log}");
    let records = exec_records(&audit);
    assert!(
        records.iter().any(|l| l.contains(r#""decision":"blocked""#)
            && l.contains(r#""argv":["iptables","-t","nat","-F"]"#)
            && l.contains(r#""rule":"docker-netfilter""#)),
        "{}",
        records.join("\n")
    );
}

#[test]
fn audit_mode_lets_destructive_commands_run_and_records_would_block() {
    let dir = tempfile::tempdir().unwrap();
    let audit = dir.path().join("audit.jsonl");
    docker_nat_chain();
    let guard = start_production(&audit, &["--mode", "audit"]);
    // Harmless in this image: docker.io is not installed (apt, without package lists here,
    // says it doesn't know it), and the chain is the test's own.
    let out = bash("apt-get remove -y docker.io");
    assert_ne!(
        out.status.code(),
        Some(126),
        "refused in audit mode: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    expect_runs("iptables -t nat -F DOCKER");
    let after = expect_runs("iptables -t nat -S DOCKER");
    assert!(
        !after.contains("10.7.0.1"),
        "the flush went through: {after}"
    );

    let (status, log) = guard.stop();
    assert!(status.success(), "{log}");
    let records = exec_records(&audit);
    for argv in [
        r#""argv":["apt-get","remove","-y","docker.io"]"#,
        r#""argv":["iptables","-t","nat","-F","DOCKER"]"#,
    ] {
        assert!(
            records
                .iter()
                .any(|l| l.contains(r#""decision":"would-block""#) && l.contains(argv)),
            "no would-block record for {argv}:\n{}",
            records.join("\n")
        );
    }
    assert!(
        !records
            .iter()
            .any(|l| l.contains(r#""decision":"blocked""#)),
        "{}",
        records.join("\n")
    );
}

#[test]
fn service_commands_that_stop_or_disable_the_runtime_are_refused_at_exec() {
    let dir = tempfile::tempdir().unwrap();
    let audit = dir.path().join("audit.jsonl");
    let files = runtime_files();
    let before = snapshot(&files);
    let guard = start_production(&audit, &[]);
    for command in [
        "systemctl disable containerd",
        "systemctl disable --now containerd",
        "systemctl stop containerd",
        "systemctl mask docker",
        "systemctl stop docker.socket",
    ] {
        expect_refused_at_exec(command);
    }
    // Reading commands run. systemd is not pid 1 in the test guest, so `status` has no
    // state to show; what matters is that the exec is not refused.
    let status = bash("systemctl status containerd");
    assert_ne!(status.status.code(), Some(126));
    assert!(!String::from_utf8_lossy(&status.stderr).contains("Operation not permitted"));
    assert_eq!(
        expect_runs("systemctl is-enabled containerd").trim(),
        "enabled"
    );
    assert_eq!(
        snapshot(&files),
        before,
        "the unit and its enablement link are intact"
    );
    let (_, log) = guard.stop();
    let records = exec_records(&audit);
    assert!(
        records
            .iter()
            .filter(|r| r.contains(r#""decision":"blocked""#))
            .count()
            >= 5,
        "a blocked exec record per command:\n{}\n{log}",
        records.join("\n")
    );
    assert!(
        records
            .iter()
            .any(|r| r.contains(r#""rule":"runtime-units""#)),
        "{records:?}"
    );
}
