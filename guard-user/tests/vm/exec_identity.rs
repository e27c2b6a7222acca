//! The routes around the exec layer that real tools take (issue 15): a package name in
//! capitals, argv[0] naming another command, the dynamic loader, a program the kernel starts
//! itself, a unit masked or stopped without `systemctl stop|disable|mask`. Each is refused
//! with the package, chain or unit left as it was; each legitimate neighbour still runs.

use std::path::Path;

use crate::{
    common::*,
    exec_layer::{
        bash, docker_nat_chain, exec_records, expect_not_refused_at_exec, expect_refused_at_exec,
        expect_runs, package_states,
    },
};

/// glibc's loader as Debian installs it; the test image is x86-64.
const LOADER: &str = "/lib64/ld-linux-x86-64.so.2";

/// A protected unit's name in the directory whose unit files override the packaged ones.
const MASK: &str = "/etc/systemd/system/containerd.service";

fn file_records(audit: &Path) -> Vec<String> {
    std::fs::read_to_string(audit)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains(r#""layer":"file""#))
        .map(str::to_owned)
        .collect()
}

#[test]
fn package_names_in_capitals_argv0_and_the_dynamic_loader_do_not_get_past_the_exec_layer() {
    let dir = tempfile::tempdir().unwrap();
    let audit = dir.path().join("audit.jsonl");
    assert_eq!(package_states(), "ii |ii |");
    let chain = docker_nat_chain();
    let guard = start_production(&audit, &[]);

    for command in [
        // dpkg and apt lower-case a package name before they look it up.
        "dpkg --remove CONTAINERD",
        "dpkg -r Runc:AMD64",
        "dpkg --remove DOCKER-CE",
        "apt-get remove -y RUNC",
        // dpkg does not read its argv[0]: the file decides.
        "(exec -a apt-get /usr/bin/dpkg --remove containerd)",
        "(exec -a xtables-nft-multi /usr/bin/dpkg iptables -r runc)",
        // The loader maps dpkg and runs it without another exec.
        &format!("{LOADER} /usr/bin/dpkg --remove containerd"),
        &format!("{LOADER} --argv0 apt-get /usr/bin/dpkg -r runc"),
        &format!("{LOADER} --inhibit-cache /usr/bin/dpkg -P CONTAINERD"),
        "/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2 /usr/bin/dpkg -r runc",
        &format!("{LOADER} /usr/sbin/xtables-nft-multi iptables -t nat -F DOCKER"),
        &format!("{LOADER} --argv0 iptables /usr/sbin/xtables-nft-multi -t nat -X DOCKER"),
    ] {
        expect_refused_at_exec(command);
        assert_eq!(package_states(), "ii |ii |", "after `{command}`");
        assert_eq!(
            expect_runs("iptables -t nat -S DOCKER"),
            chain,
            "`{command}` changed the DOCKER chain"
        );
    }

    // Neighbours: reading commands in any spelling, through the loader too, and a
    // reinstall of the same package.
    expect_runs("dpkg -l containerd");
    // dpkg-query reads -l's arguments as patterns, case-sensitively: it finds nothing, but
    // it runs.
    expect_not_refused_at_exec("dpkg -l CONTAINERD");
    expect_runs("dpkg -s containerd");
    expect_runs(&format!("{LOADER} /usr/bin/dpkg -l containerd"));
    expect_runs(&format!("{LOADER} --list /usr/bin/dpkg"));
    expect_runs("(exec -a dpkg-query /usr/bin/dpkg -s runc)");
    expect_runs(&format!(
        "{LOADER} /usr/sbin/xtables-nft-multi iptables -t nat -S DOCKER"
    ));
    // runc's: containerd's files also match the `/usr/bin/containerd*` glob of a [[paths]]
    // rule, and a re-resolution while dpkg still holds its `*.dpkg-tmp` backups protects
    // them (issue 15, deliverable 2).
    expect_runs(&format!("dpkg -i {}", kept_deb("runc").display()));
    assert_eq!(package_states(), "ii |ii |");
    expect_verified(&["containerd", "runc"]);

    let (status, log) = guard.stop();
    assert!(status.success(), "{log}");
    let records = exec_records(&audit);
    assert!(
        records.iter().any(|l| l.contains(r#""decision":"blocked""#)
            && l.contains(r#""argv":["dpkg","--remove","CONTAINERD"]"#)),
        "{}",
        records.join("\n")
    );
    assert!(
        records.iter().any(|l| l.contains(r#""decision":"blocked""#)
            && l.contains(r#""argv":["apt-get","--remove","containerd"]"#)
            && l.contains(r#""path":"/usr/bin/dpkg""#)
            && l.contains("protected-object")),
        "the exec -a route is read as dpkg's:\n{}",
        records.join("\n")
    );
}

/// Restores `/proc/sys/kernel/core_pattern` when dropped.
struct CorePattern(String);

impl CorePattern {
    fn set(pattern: &str) -> Self {
        let old = std::fs::read_to_string("/proc/sys/kernel/core_pattern").unwrap();
        std::fs::write("/proc/sys/kernel/core_pattern", pattern).unwrap();
        Self(old)
    }
}

impl Drop for CorePattern {
    fn drop(&mut self) {
        let _ = std::fs::write("/proc/sys/kernel/core_pattern", self.0.trim_end());
    }
}

/// A process that dumps core: the kernel runs the `core_pattern` pipe as a usermode helper.
fn crash() {
    bash("ulimit -c unlimited; sh -c 'kill -SEGV $$'");
}

#[test]
fn a_usermode_helper_that_would_run_a_guarded_command_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let audit = dir.path().join("audit.jsonl");
    let marker = dir.path().join("helper-ran");
    let guard = start_production(&audit, &[]);

    // The kernel runs an unguarded helper as before.
    {
        let _pattern = CorePattern::set(&format!("|/usr/bin/touch {}", marker.display()));
        crash();
        eventually("the core_pattern helper ran", || marker.exists());
    }
    // dpkg as the helper: no syscall showed its argv, and it is refused.
    {
        let _pattern = CorePattern::set("|/usr/bin/dpkg --remove containerd");
        crash();
        eventually("the refused helper was recorded", || {
            exec_records(&audit)
                .iter()
                .any(|l| l.contains("kernel-exec"))
        });
    }
    std::thread::sleep(std::time::Duration::from_secs(1));
    assert_eq!(package_states(), "ii |ii |");

    let (status, log) = guard.stop();
    assert!(status.success(), "{log}");
    let records = exec_records(&audit);
    assert!(
        records.iter().any(|l| l.contains(r#""decision":"blocked""#)
            && l.contains("kernel-exec")
            && l.contains(r#""path":"/usr/bin/dpkg""#)),
        "{}",
        records.join("\n")
    );
}

#[test]
fn a_protected_units_name_cannot_be_created_where_it_would_mask_or_replace_the_unit() {
    let dir = tempfile::tempdir().unwrap();
    let audit = dir.path().join("audit.jsonl");
    // /run/systemd/system exists only under systemd; made here for the guard to find, and
    // removed again (its presence tells systemctl that systemd is running).
    std::fs::create_dir_all("/run/systemd/system").unwrap();
    struct RunDir;
    impl Drop for RunDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all("/run/systemd/system");
        }
    }
    let _run_dir = RunDir;
    assert!(!Path::new(MASK).exists());
    let guard = start_production(&audit, &[]);

    let scratch = "/etc/systemd/system/rtguard-test.tmp";
    for command in [
        // `systemctl mask` without systemctl.
        "ln -s /dev/null /etc/systemd/system/containerd.service",
        "ln -sf /dev/null /etc/systemd/system/docker.service",
        "ln -s /dev/null /run/systemd/system/containerd.service",
        // A file by that name replaces the packaged unit.
        "touch /etc/systemd/system/containerd.service",
        "cp /lib/systemd/system/containerd.service /etc/systemd/system/",
        "echo '[Service]' > /run/systemd/system/docker.socket",
        "mkdir /etc/systemd/system/containerd.service",
        "ln /lib/systemd/system/containerd.service /etc/systemd/system/containerd.service",
        "mknod /etc/systemd/system/containerd.service p",
        &format!("touch {scratch} && mv {scratch} /etc/systemd/system/containerd.service"),
    ] {
        expect_denied(command);
        let _ = std::fs::remove_file(scratch);
        for name in [
            MASK,
            "/etc/systemd/system/docker.service",
            "/run/systemd/system/containerd.service",
            "/run/systemd/system/docker.socket",
        ] {
            assert!(
                Path::new(name).symlink_metadata().is_err(),
                "`{command}` created {name}"
            );
        }
    }
    // Still enabled (with /run/systemd/system present, systemctl would ask systemd).
    assert!(
        Path::new("/etc/systemd/system/multi-user.target.wants/containerd.service")
            .symlink_metadata()
            .is_ok()
    );

    // Neighbours: other units' names, and drop-ins, which is how Docker's documentation
    // configures the daemon.
    expect_allowed(
        "ln -s /dev/null /etc/systemd/system/unrelated.service && \
         rm /etc/systemd/system/unrelated.service",
    );
    expect_allowed(
        "mkdir -p /etc/systemd/system/containerd.service.d && \
         echo '[Service]' > /etc/systemd/system/containerd.service.d/rtguard-test.conf && \
         rm -r /etc/systemd/system/containerd.service.d",
    );
    expect_allowed(
        "touch /run/systemd/system/unrelated.service && rm /run/systemd/system/unrelated.service",
    );

    let (status, log) = guard.stop();
    assert!(status.success(), "{log}");
    let records = file_records(&audit);
    assert!(
        records.iter().any(|l| l.contains(r#""op":"create""#)
            && l.contains(r#""decision":"blocked""#)
            && l.contains(MASK)
            && l.contains(r#""rule":"runtime-units""#)),
        "{}",
        records.join("\n")
    );
}

/// Whether `program` is on the PATH of the test guest.
fn installed(program: &str) -> bool {
    bash(&format!("command -v {program}")).status.success()
}

#[test]
fn systemctl_options_target_switches_and_dbus_unit_calls_are_refused_at_exec() {
    let dir = tempfile::tempdir().unwrap();
    let audit = dir.path().join("audit.jsonl");
    let guard = start_production(&audit, &[]);

    let mut refused = vec![
        "systemctl --legend no mask containerd.service".to_owned(),
        "systemctl --legend=no stop containerd".to_owned(),
        "systemctl --kill-value 9 -s KILL kill containerd".to_owned(),
        "systemctl --no-such-option value mask containerd".to_owned(),
        "systemctl -q --no-pager disable docker.socket".to_owned(),
        "systemctl isolate rescue.target".to_owned(),
        "systemctl isolate emergency".to_owned(),
        "systemctl rescue".to_owned(),
        "systemctl emergency".to_owned(),
        "(exec -a telinit systemctl 1)".to_owned(),
        "(exec -a telinit systemctl S)".to_owned(),
    ];
    if installed("telinit") {
        refused.push("telinit 1".to_owned());
    }
    let stop_unit = "org.freedesktop.systemd1 /org/freedesktop/systemd1 \
                     org.freedesktop.systemd1.Manager StopUnit ss";
    if installed("busctl") {
        refused.push(format!(
            "busctl call {stop_unit} containerd.service replace"
        ));
        refused.push(
            "busctl call org.freedesktop.systemd1 \
             /org/freedesktop/systemd1/unit/containerd_2eservice \
             org.freedesktop.systemd1.Unit Stop s replace"
                .to_owned(),
        );
    }
    if installed("dbus-send") {
        refused.push(
            "dbus-send --system --print-reply --dest=org.freedesktop.systemd1 \
             /org/freedesktop/systemd1 org.freedesktop.systemd1.Manager.MaskUnitFiles \
             array:string:containerd.service boolean:false boolean:true"
                .to_owned(),
        );
    }
    if installed("gdbus") {
        refused.push(
            "gdbus call --system --dest org.freedesktop.systemd1 --object-path \
             /org/freedesktop/systemd1 --method org.freedesktop.systemd1.Manager.StopUnit \
             \"'containerd.service'\" \"'replace'\""
                .to_owned(),
        );
    }
    for command in &refused {
        expect_refused_at_exec(command);
    }

    // Neighbours. systemd is not pid 1 in the test guest, so these fail on their own; what
    // matters is that the exec layer lets them run.
    let mut allowed = vec![
        "systemctl status containerd".to_owned(),
        "systemctl restart containerd".to_owned(),
        "systemctl daemon-reload".to_owned(),
        "systemctl --legend no list-units".to_owned(),
        "systemctl isolate multi-user.target".to_owned(),
        "systemctl default".to_owned(),
        "(exec -a telinit systemctl 3)".to_owned(),
    ];
    if installed("busctl") {
        allowed.push(format!("busctl call {stop_unit} cron.service replace"));
    }
    for command in &allowed {
        expect_not_refused_at_exec(command);
    }
    assert_eq!(
        expect_runs("systemctl is-enabled containerd").trim(),
        "enabled"
    );
    assert!(Path::new(MASK).symlink_metadata().is_err());

    let (status, log) = guard.stop();
    assert!(status.success(), "{log}");
    let records = exec_records(&audit);
    assert!(
        records.iter().any(|l| l.contains(r#""decision":"blocked""#)
            && l.contains("stops-everything")
            && l.contains("rescue.target")),
        "{}",
        records.join("\n")
    );
    assert!(
        records
            .iter()
            .filter(|l| l.contains(r#""decision":"blocked""#))
            .count()
            >= refused.len(),
        "a blocked record per refused command:\n{}",
        records.join("\n")
    );
}
