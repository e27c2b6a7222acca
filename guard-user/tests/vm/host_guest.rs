//! The host guest (`cargo xtask host-test`): systemd is pid 1, Debian's `docker.io` runs a
//! container with a published port, and rtguard is installed from its .deb and enabled the
//! way README's "Installing on a host" says. The other guests skip this module.
//!
//! `first_boot` runs against the live stack and leaves rtguard enabled; the guest then
//! reboots, and `after_reboot` checks that rtguard was enforcing before the runtime
//! started. Tests in a module run in name order, one at a time.

use std::{
    path::{Path, PathBuf},
    process::Command,
    sync::OnceLock,
};

use crate::common::*;

/// Where the container's port is published: an address on a dummy link, so that reaching
/// it takes Docker's DNAT rule in the DOCKER chain (the userland proxy is off).
const ADDRESS: &str = "10.200.0.1";
const PORT: u16 = 8080;
const CONTAINER: &str = "web";
const IMAGE: &str = "rtguard-test/web";
/// What the container serves.
const PAGE: &str = "rtguard host guest: the container answers\n";
const AUDIT_LOG: &str = "/var/log/rtguard/audit.jsonl";

/// The runtime's files an uninstaller removes, with those of rtguard's unit.
const RUNTIME_FILES: &[&str] = &[
    "/usr/bin/containerd",
    "/usr/bin/containerd-shim-runc-v2",
    "/usr/bin/ctr",
    "/usr/sbin/runc",
    "/usr/sbin/dockerd",
    "/usr/bin/docker",
    "/lib/systemd/system/containerd.service",
    "/lib/systemd/system/docker.service",
    "/lib/systemd/system/docker.socket",
    "/etc/containerd/config.toml",
    "/lib/systemd/system/rtguard.service",
];

fn show(unit: &str, property: &str) -> String {
    expect_allowed(&format!("systemctl show -p {property} --value {unit}"))
        .trim()
        .to_owned()
}

/// The host as the tests find it: the published address, the container running, rtguard
/// installed from its package and enabled. Done once per boot; on the second boot only
/// the address is new (links don't survive a reboot, the rest is on disk).
fn host() {
    static READY: OnceLock<Result<(), String>> = OnceLock::new();
    let ready = READY.get_or_init(|| {
        std::panic::catch_unwind(set_up_host).map_err(|e| {
            e.downcast_ref::<String>()
                .cloned()
                .unwrap_or_else(|| "setting up the host panicked".to_owned())
        })
    });
    // One failed setup fails every test at once, with its reason.
    if let Err(reason) = ready {
        panic!("the host guest could not be set up: {reason}");
    }
}

fn set_up_host() {
    {
        if !Path::new("/sys/class/net/rtg0").exists() {
            expect_allowed(&format!(
                "ip link add rtg0 type dummy && ip addr add {ADDRESS}/24 dev rtg0 && ip link set rtg0 up"
            ));
        }
        if !sh(&format!("docker inspect {CONTAINER}")).status.success() {
            start_container();
        }
        if !Path::new("/usr/bin/rtguard").exists() {
            // README's "Installing on a host".
            expect_allowed("dpkg -i /root/payload/rtguard.deb");
            expect_allowed("rtguard check /etc/rtguard/production.toml");
            expect_allowed("systemctl enable --now rtguard");
        }
        let start = std::time::Instant::now();
        while fetch().as_deref() != Some(PAGE) {
            if start.elapsed().as_secs() > 120 {
                panic!(
                    "the container does not answer on {ADDRESS}:{PORT}:\n{}",
                    diagnosis()
                );
            }
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
    }
}

/// What an operator would look at when the container does not answer.
fn diagnosis() -> String {
    let script = "docker ps -a; docker logs web 2>&1 | tail -5; ip -4 addr; ip route; \
        iptables -t nat -S; sysctl net.ipv4.ip_forward";
    let out = sh(&format!("{{ {script}; }} 2>&1"));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Builds a one-binary image (a static busybox serving one page) and runs it with its
/// port published and restarted with the engine, as a service would be.
fn start_container() {
    let root = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(root.path().join("bin")).unwrap();
    std::fs::create_dir_all(root.path().join("www")).unwrap();
    std::fs::copy("/usr/bin/busybox", root.path().join("bin/busybox")).unwrap();
    std::fs::write(root.path().join("www/index.html"), PAGE).unwrap();
    expect_allowed(&format!(
        "tar -C {} -c . | docker import -c 'CMD [\"/bin/busybox\", \"httpd\", \"-f\", \"-p\", \"80\", \"-h\", \"/www\"]' - {IMAGE}",
        root.path().display()
    ));
    expect_allowed(&format!(
        "docker run -d --name {CONTAINER} --restart always -p {PORT}:80 {IMAGE}"
    ));
}

/// The page, fetched through the published port; `None` if nothing answers.
fn fetch() -> Option<String> {
    use std::io::{Read as _, Write as _};
    let timeout = Some(std::time::Duration::from_secs(5));
    let address = format!("{ADDRESS}:{PORT}").parse().unwrap();
    let mut stream = std::net::TcpStream::connect_timeout(&address, timeout?).ok()?;
    stream.set_read_timeout(timeout).ok()?;
    stream
        .write_all(b"GET / HTTP/1.0\r\nHost: rtguard-host\r\n\r\n")
        .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let (head, body) = response.split_once("\r\n\r\n")?;
    let status = head.lines().next()?;
    status.contains(" 200 ").then(|| body.to_owned())
}

/// What must hold after every destructive attempt: the services active, the container
/// listed and answering through the DOCKER chain, the packages installed and intact.
fn expect_stack_intact() {
    assert_eq!(
        expect_allowed("systemctl is-active containerd docker rtguard").trim(),
        "active\nactive\nactive"
    );
    assert!(
        expect_allowed("docker ps --format '{{.Names}} {{.Status}}'")
            .contains(&format!("{CONTAINER} Up")),
        "docker ps does not list the container as up"
    );
    assert_eq!(
        fetch().as_deref(),
        Some(PAGE),
        "the container no longer answers"
    );
    for package in ["containerd", "runc", "docker.io", "rtguard"] {
        assert_eq!(dpkg_status(package), "install ok installed", "{package}");
    }
    expect_verified(&["containerd", "runc", "docker.io"]);
}

/// The audit log's lines so far, for "what did this step add".
fn audit_lines() -> Vec<String> {
    std::fs::read_to_string(AUDIT_LOG)
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

/// Audit records added since `before` whose decision is a refusal.
fn refusals_since(before: usize) -> Vec<String> {
    audit_lines()
        .into_iter()
        .skip(before)
        .filter(|l| l.contains(r#""decision":"blocked""#))
        .collect()
}

fn files_state() -> std::collections::BTreeMap<PathBuf, FileState> {
    let paths: Vec<PathBuf> = RUNTIME_FILES.iter().map(PathBuf::from).collect();
    let state = snapshot(&paths);
    assert_eq!(
        state.len(),
        paths.len(),
        "a runtime file is missing: {state:?}"
    );
    state
}

/// How many rules the running daemon enforces, from `rtguard status`.
fn protected_rules() -> u64 {
    let json = expect_allowed("rtguard status --json");
    let status: serde_json::Value = serde_json::from_str(&json).unwrap();
    status["protected"]["rules"]
        .as_u64()
        .expect("protected.rules in the status")
}

/// The policy without its `[[processes]]` rule for rtguard's own daemon.
fn without_daemon_rule(policy: &str) -> String {
    let start = policy
        .find("[[processes]]\nname = \"rtguard-daemon\"")
        .expect("the production policy has the rtguard-daemon rule");
    let end = policy[start..]
        .find("\n\n")
        .map_or(policy.len(), |n| start + n);
    format!("{}{}", &policy[..start], &policy[end..])
}

fn main_pid(unit: &str) -> u32 {
    show(unit, "MainPID").parse().unwrap()
}

fn pids_of(name: &str) -> String {
    sh(&format!("pidof {name}"))
        .stdout
        .iter()
        .map(|&b| b as char)
        .collect::<String>()
        .trim()
        .to_owned()
}

pub mod first_boot {
    use super::*;

    #[test]
    fn a_service_reaches_ready_enforcing_and_status_agrees() {
        host();
        println!(
            "{}",
            String::from_utf8_lossy(&sh("systemctl status rtguard --no-pager").stdout)
        );
        assert_eq!(show("rtguard", "ActiveState"), "active");
        assert_eq!(show("rtguard", "SubState"), "running");
        // Type=notify: systemd's status line is what the daemon sent with READY=1, and
        // `rtguard status` says the same, with the self-test's verdict.
        let systemd_says = show("rtguard", "StatusText");
        let out = Command::new("rtguard").arg("status").output().unwrap();
        let rtguard_says = String::from_utf8_lossy(&out.stdout).into_owned();
        println!("rtguard status:\n{rtguard_says}");
        assert!(out.status.success(), "rtguard status: {rtguard_says}");
        assert_eq!(systemd_says, enforcing_status());
        let state = rtguard_says
            .lines()
            .find_map(|l| l.strip_prefix("state:"))
            .map(str::trim);
        assert_eq!(
            state,
            Some(format!("enforcing ({}; self-test passed)", booted_mechanism().1).as_str())
        );
        // Ordered before the runtime, and its programs pinned where the unit says.
        let before = show("rtguard", "Before");
        for unit in ["containerd.service", "docker.service"] {
            assert!(
                before.contains(unit),
                "rtguard is not ordered before {unit}: {before}"
            );
        }
        assert!(
            std::fs::read_dir("/sys/fs/bpf/rtguard").unwrap().count() > 0,
            "nothing pinned under /sys/fs/bpf/rtguard"
        );
        assert_eq!(show("rtguard", "NRestarts"), "0");
    }

    #[test]
    fn b_the_seed_incident_leaves_the_stack_running() {
        host();
        expect_stack_intact();
        let files = files_state();
        let chain = expect_allowed("iptables -t nat -S DOCKER");
        assert!(
            chain.contains(&format!("--dport {PORT}")),
            "no DNAT rule: {chain}"
        );
        let shims = pids_of("containerd-shim-runc-v2");
        assert!(!shims.is_empty(), "no shim runs the container");
        let before = audit_lines().len();
        println!(
            "before the incident, {ADDRESS}:{PORT} answers: {:?}",
            fetch().unwrap_or_default()
        );

        // What the uninstaller ran, in its order.
        for refused in [
            "systemctl disable --now docker.service docker.socket containerd.service",
            "systemctl stop containerd",
            "systemctl stop docker",
            "rm -rf /usr/bin/containerd* /usr/bin/ctr /usr/sbin/runc /usr/sbin/dockerd /usr/bin/docker",
            "rm -rf /lib/systemd/system/containerd.service /lib/systemd/system/docker.service /lib/systemd/system/docker.socket",
            "rm -rf /etc/containerd",
            "iptables -t nat -F",
            "iptables -t nat -X DOCKER",
            "iptables -F",
            "apt-get remove -y docker.io containerd runc",
            "dpkg --purge --force-all docker.io containerd runc",
        ] {
            expect_failed(refused);
        }
        // Firewall changes judged by their content: Debian's own nftables.conf starts
        // with `flush ruleset`, and a restore of a nat table without Docker's chain.
        for refused in [
            "systemctl restart nftables",
            "printf '*nat\\n:PREROUTING ACCEPT [0:0]\\n:POSTROUTING ACCEPT [0:0]\\nCOMMIT\\n' | iptables-restore",
        ] {
            expect_failed(refused);
            assert_eq!(
                expect_allowed("iptables -t nat -S DOCKER"),
                chain,
                "`{refused}` changed the DOCKER chain"
            );
        }
        expect_allowed("systemctl reset-failed nftables.service");
        // The shims: every container on the host is one of their children.
        let out = sh("pkill -9 -f containerd-shim");
        assert!(!out.status.success(), "pkill reported the shims killed");
        assert_eq!(pids_of("containerd-shim-runc-v2"), shims, "a shim died");

        expect_stack_intact();
        println!(
            "after the incident, {ADDRESS}:{PORT} answers: {:?}",
            fetch().unwrap_or_default()
        );
        assert_eq!(files_state(), files, "a runtime file changed");
        assert_eq!(
            expect_allowed("iptables -t nat -S DOCKER"),
            chain,
            "the DOCKER chain changed"
        );
        let refusals = refusals_since(before);
        assert!(
            refusals.len() >= 12,
            "expected a refusal per step in the audit log, got {}: {refusals:#?}",
            refusals.len()
        );
    }

    #[test]
    fn c_stop_disable_and_mask_are_refused_while_it_runs() {
        host();
        let pid = main_pid("containerd");
        for verb in ["stop", "disable", "mask", "kill"] {
            expect_denied(&format!("systemctl {verb} containerd.service"));
        }
        // "pkill -HUP to make it reload its config": containerd's Go runtime exits on it.
        expect_denied(&format!("kill -HUP {pid}"));
        assert_eq!(
            main_pid("containerd"),
            pid,
            "containerd was restarted or stopped"
        );
        assert_eq!(
            expect_allowed("systemctl is-enabled containerd docker").trim(),
            "enabled\nenabled"
        );
        assert!(!Path::new("/etc/systemd/system/containerd.service").exists());
        expect_stack_intact();
    }

    #[test]
    fn d_restart_reload_and_a_container_cycle_pass() {
        host();
        let before = audit_lines().len();
        let containerd = main_pid("containerd");
        expect_allowed("systemctl restart containerd");
        assert_ne!(
            main_pid("containerd"),
            containerd,
            "containerd did not restart"
        );
        // dockerd handles SIGHUP (configuration reload): the unit's ExecReload sends it.
        let dockerd = main_pid("docker");
        expect_allowed("systemctl reload docker");
        assert_eq!(main_pid("docker"), dockerd, "the reload ended dockerd");
        expect_allowed(&format!("docker run --rm {IMAGE} /bin/busybox true"));
        expect_allowed(&format!(
            "docker create --name cycle {IMAGE} && docker rm cycle"
        ));
        // dockerd rebuilds its own chains (flush, delete, recreate) when it starts.
        expect_allowed("systemctl restart docker");
        assert_ne!(main_pid("docker"), dockerd, "dockerd did not restart");
        eventually("the container is back after the engine's restart", || {
            fetch().as_deref() == Some(PAGE)
        });
        expect_stack_intact();
        assert_eq!(
            refusals_since(before),
            Vec::<String>::new(),
            "the runtime's own maintenance was refused"
        );
    }

    #[test]
    fn e_a_dead_daemon_is_restarted_and_the_pins_hold_meanwhile() {
        host();
        let pid = main_pid("rtguard");
        // From a shell, kill -9 is refused: only the supervisor (pid 1) may.
        expect_denied(&format!("kill -9 {pid}"));
        assert_eq!(main_pid("rtguard"), pid);

        // So the daemon dies the way the policy documents taking rtguard down on purpose:
        // its process rule out of the policy, a reload, then the kill. That stands for a
        // crash or the OOM killer, which no rule stops.
        let policy = Path::new("/etc/rtguard/production.toml");
        let original = std::fs::read_to_string(policy).unwrap();
        let rules = protected_rules();
        std::fs::write(policy, without_daemon_rule(&original)).unwrap();
        expect_allowed("systemctl reload rtguard");
        eventually("the reloaded policy lets kill -9 through", || {
            sh(&format!("kill -9 {pid}")).status.success()
        });

        let file = Path::new("/usr/bin/containerd");
        let bytes = sha256(file);
        // Until the restarted daemon is READY only the pinned programs hold: a removal
        // in that gap is refused too.
        let mut refused_in_gap = 0;
        while show("rtguard", "ActiveState") != "active" || main_pid("rtguard") == pid {
            expect_denied(&format!("rm -f {}", file.display()));
            refused_in_gap += 1;
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        println!("refused {refused_in_gap} removals while systemd restarted rtguard");
        assert!(
            refused_in_gap > 0,
            "systemd had restarted rtguard before the first try"
        );
        assert_eq!(show("rtguard", "NRestarts"), "1");
        assert_eq!(sha256(file), bytes);
        assert!(
            audit_lines().iter().any(|l| l.contains(r#""op":"adopt""#)),
            "the restarted daemon did not take the pinned programs over"
        );

        // The rule back, as the host had it.
        std::fs::write(policy, &original).unwrap();
        expect_allowed("systemctl reload rtguard");
        eventually("the daemon's rule is back", || protected_rules() == rules);
        expect_denied(&format!("kill -9 {}", main_pid("rtguard")));
        expect_denied(&format!("rm -f {}", file.display()));
        expect_stack_intact();
    }

    #[test]
    fn f_reinstalling_the_runtime_passes_and_protects_the_new_files() {
        host();
        let ino = std::fs::metadata("/usr/bin/containerd")
            .map(|m| std::os::unix::fs::MetadataExt::ino(&m))
            .unwrap();
        expect_allowed(&format!(
            "apt-get install -y --reinstall {} {}",
            kept_deb("containerd").display(),
            kept_deb("docker.io").display()
        ));
        let new_ino = std::fs::metadata("/usr/bin/containerd")
            .map(|m| std::os::unix::fs::MetadataExt::ino(&m))
            .unwrap();
        assert_ne!(new_ino, ino, "dpkg did not replace the binary");
        // The new file is protected once the daemon has seen the package operation. It
        // runs, so it can't be opened for writing; a chmod to its own mode shows it.
        eventually("the new containerd binary is protected", || {
            sh("chmod 755 /usr/bin/containerd")
                .status
                .code()
                .is_some_and(|c| c != 0)
        });
        expect_denied("chmod 755 /usr/bin/containerd");
        expect_denied("rm -f /usr/bin/containerd");
        eventually("the container answers after the upgrade", || {
            fetch().as_deref() == Some(PAGE)
        });
        expect_stack_intact();
    }
    #[test]
    fn g_target_switches_and_dbus_stop_calls_are_refused() {
        host();
        let pid = main_pid("containerd");
        for refused in [
            "systemctl isolate rescue.target",
            "systemctl rescue",
            "systemctl emergency",
            "telinit 1",
            "busctl call org.freedesktop.systemd1 /org/freedesktop/systemd1 \
             org.freedesktop.systemd1.Manager StopUnit ss containerd.service replace",
            "dbus-send --system --print-reply --dest=org.freedesktop.systemd1 \
             /org/freedesktop/systemd1 org.freedesktop.systemd1.Manager.StopUnit \
             string:containerd.service string:replace",
        ] {
            expect_denied(refused);
        }
        // Asking systemd about the unit over the same bus passes.
        expect_allowed(
            "busctl call org.freedesktop.systemd1 /org/freedesktop/systemd1 \
             org.freedesktop.systemd1.Manager GetUnit s containerd.service",
        );
        assert_eq!(main_pid("containerd"), pid, "containerd was stopped");
        assert_eq!(show("multi-user.target", "ActiveState"), "active");
        assert_eq!(show("rescue.target", "ActiveState"), "inactive");
        expect_stack_intact();
    }
}

pub mod after_reboot {
    use super::*;

    /// The monotonic time (µs) a unit's property names, as systemd recorded it.
    fn timestamp(unit: &str, property: &str) -> u64 {
        show(unit, property).parse().unwrap()
    }

    #[test]
    fn rtguard_enforced_before_the_runtime_started() {
        host();
        let ready = timestamp("rtguard", "ActiveEnterTimestampMonotonic");
        let containerd = timestamp("containerd", "ExecMainStartTimestampMonotonic");
        let dockerd = timestamp("docker", "ExecMainStartTimestampMonotonic");
        println!(
            "boot (monotonic): rtguard ready at {:.3} s, containerd started at {:.3} s, dockerd at {:.3} s",
            ready as f64 / 1e6,
            containerd as f64 / 1e6,
            dockerd as f64 / 1e6
        );
        assert!(ready > 0, "rtguard never became ready");
        assert!(
            ready <= containerd,
            "containerd started before rtguard was ready"
        );
        assert!(ready <= dockerd, "dockerd started before rtguard was ready");
        assert!(show("rtguard", "StatusText").starts_with(&enforcing_status()));
        // systemd resolves an ordering cycle by dropping a job, and says so only here.
        let journal = expect_allowed("journalctl -b --no-pager -o cat");
        let cycles: Vec<&str> = journal
            .lines()
            .filter(|l| l.contains("ordering cycle"))
            .collect();
        assert!(
            cycles.is_empty(),
            "the boot had ordering cycles: {cycles:#?}"
        );
    }

    #[test]
    fn the_runtime_is_protected_and_the_container_is_back() {
        host();
        expect_denied("rm -f /usr/bin/containerd");
        expect_denied("systemctl stop containerd");
        expect_stack_intact();
    }
}
