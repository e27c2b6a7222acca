//! The exec-layer classifier over the shipped production policy's compiled tables: every
//! destructive form the design names, the safe look-alikes that must stay allowed, and a
//! property test that neither the parser nor the classifier panics on anything.

use guard_common::{
    exec::{
        action, classify, ArgToken, CommandLine, Reason, Verdict, MAX_ARGV_TOKENS, MAX_PREFIX_LENS,
        TOKEN_HEAD_BYTES,
    },
    rule::Action,
};
use guard_user::policy::{self, CompiledCommands, Policy};
use proptest::prelude::*;

fn production() -> (Policy, CompiledCommands) {
    let text = include_str!("../../policy/production.toml");
    let policy =
        policy::parse("policy/production.toml", text).unwrap_or_else(|e| panic!("{}", e.render()));
    let tables = policy::compile(&policy).unwrap_or_else(|e| panic!("{}", e.render()));
    (policy, tables)
}

/// What the operator sees.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Want {
    /// Destructive, charged to the named rule.
    Blocked(&'static str),
    /// Allowed as an upgrade through the package manager.
    Upgrade,
    /// A plain install of a protected package (allowed).
    Install,
    /// Allowed, nothing protected is touched.
    Allowed,
    /// Allowed but always reported (input exec can't see).
    Reported,
}

use Want::*;

const PKGS_CE: &str = "docker-ce-packages";
const PKGS_DEB: &str = "distro-docker-packages";
const UNITS: &str = "runtime-units";
const NET: &str = "docker-netfilter";

#[rustfmt::skip]
const CASES: &[(&[&str], Want)] = &[
    // apt, apt-get, aptitude
    (&["apt-get", "remove", "containerd"], Blocked(PKGS_DEB)),
    (&["apt", "purge", "containerd.io"], Blocked(PKGS_CE)),
    (&["apt-get", "purge", "-y", "containerd.io"], Blocked(PKGS_CE)),
    (&["apt-get", "remove", "docker.io", "containerd", "runc"], Blocked(PKGS_DEB)),
    (&["apt-get", "-y", "remove", "runc"], Blocked(PKGS_DEB)),
    (&["apt-get", "autoremove", "containerd"], Blocked(PKGS_DEB)),
    (&["apt-get", "autoremove", "--purge", "docker-ce"], Blocked(PKGS_CE)),
    (&["aptitude", "purge", "docker-ce-cli"], Blocked(PKGS_CE)),
    (&["apt", "remove", "containerd*"], Blocked(PKGS_CE)),
    (&["apt-get", "install", "containerd.io-"], Blocked(PKGS_CE)),
    (&["aptitude", "install", "docker-ce_"], Blocked(PKGS_CE)),
    (&["apt-get", "remove", "containerd:amd64"], Blocked(PKGS_DEB)),
    (&["apt-get", "remove", "runc=1.1.12-1"], Blocked(PKGS_DEB)),
    (&["apt-get", "remove", "docker-buildx-plugin/bookworm"], Blocked(PKGS_CE)),
    (&["apt-get", "-o", "Dpkg::Options::=--force-confold", "remove", "containerd.io"], Blocked(PKGS_CE)),
    (&["/usr/bin/apt-get", "-qq", "purge", "docker-compose-plugin"], Blocked(PKGS_CE)),
    // dpkg, as people and as apt call it
    (&["dpkg", "-r", "runc"], Blocked(PKGS_DEB)),
    (&["dpkg", "-P", "--force-all", "containerd"], Blocked(PKGS_DEB)),
    (&["dpkg", "--status-fd", "23", "--no-triggers", "--force-depends", "--remove", "containerd.io:amd64"], Blocked(PKGS_CE)),
    (&["dpkg", "--status-fd=23", "--remove", "containerd.io"], Blocked(PKGS_CE)),
    (&["dpkg", "--purge", "docker-ce", "docker-ce-cli"], Blocked(PKGS_CE)),
    (&["dpkg", "--remove", "--force-remove-protected", "hello"], Blocked(PKGS_CE)),
    (&["dpkg", "--force-remove-essential", "-r", "hello"], Blocked(PKGS_CE)),
    (&["dpkg", "-r", "-a"], Blocked(PKGS_CE)),
    // rpm family
    (&["rpm", "-e", "containerd.io"], Blocked(PKGS_CE)),
    (&["rpm", "-evh", "docker-ce"], Blocked(PKGS_CE)),
    (&["dnf", "remove", "-y", "docker-ce"], Blocked(PKGS_CE)),
    (&["yum", "erase", "containerd.io"], Blocked(PKGS_CE)),
    (&["dnf", "autoremove", "docker*"], Blocked(PKGS_CE)),
    (&["zypper", "--non-interactive", "rm", "runc"], Blocked(PKGS_DEB)),
    // systemd units
    (&["systemctl", "disable", "--now", "containerd"], Blocked(UNITS)),
    (&["systemctl", "stop", "docker.socket"], Blocked(UNITS)),
    (&["systemctl", "stop", "containerd.service", "docker.service"], Blocked(UNITS)),
    (&["systemctl", "mask", "docker"], Blocked(UNITS)),
    (&["systemctl", "kill", "-s", "KILL", "containerd"], Blocked(UNITS)),
    (&["systemctl", "--no-block", "stop", "docker"], Blocked(UNITS)),
    (&["systemctl", "stop", "docker*"], Blocked(UNITS)),
    (&["deb-systemd-invoke", "stop", "containerd.service"], Blocked(UNITS)),
    (&["service", "docker", "stop"], Blocked(UNITS)),
    (&["invoke-rc.d", "containerd", "stop"], Blocked(UNITS)),
    // iptables: bare flush/delete hits every chain, any table
    (&["iptables", "-F"], Blocked(NET)),
    (&["iptables", "-X"], Blocked(NET)),
    (&["iptables", "-t", "nat", "-X"], Blocked(NET)),
    (&["iptables", "-F", "-t", "nat"], Blocked(NET)),
    (&["iptables", "-X", "DOCKER"], Blocked(NET)),
    (&["iptables", "-t", "nat", "-F", "DOCKER"], Blocked(NET)),
    (&["iptables", "-X", "DOCKER-USER"], Blocked(NET)),
    (&["iptables", "-vF"], Blocked(NET)),
    (&["iptables", "-tnat", "-F"], Blocked(NET)),
    (&["iptables", "--flush"], Blocked(NET)),
    (&["iptables", "--fl"], Blocked(NET)),
    (&["iptables", "-FDOCKER-USER"], Blocked(NET)),
    (&["ip6tables", "-F"], Blocked(NET)),
    (&["iptables-nft", "-t", "filter", "-X", "DOCKER-ISOLATION-STAGE-1"], Blocked(NET)),
    (&["iptables", "-E", "DOCKER", "DOCKER-OLD"], Blocked(NET)),
    (&["/usr/sbin/iptables", "-w", "5", "-F"], Blocked(NET)),
    (&["xtables-nft-multi", "iptables", "-F"], Blocked(NET)),
    // nft and ipset
    (&["nft", "flush", "ruleset"], Blocked(NET)),
    (&["nft", "flush ruleset"], Blocked(NET)),
    (&["nft", "delete", "table", "ip", "nat"], Blocked(NET)),
    (&["nft", "flush", "chain", "ip", "filter", "DOCKER-USER"], Blocked(NET)),
    (&["ipset", "destroy"], Blocked(NET)),
    (&["ipset", "flush", "docker-ext-bridges-v4"], Blocked(NET)),
    (&["ipset", "-X", "docker-ext-bridges-v6"], Blocked(NET)),
    // upgrades and reinstalls through the package manager
    (&["apt-get", "install", "--reinstall", "containerd"], Upgrade),
    (&["apt-get", "reinstall", "containerd.io"], Upgrade),
    (&["apt-get", "upgrade"], Upgrade),
    (&["apt-get", "dist-upgrade", "-y"], Upgrade),
    (&["dpkg", "-i", "/var/cache/apt/archives/containerd.io_1.7.27-1_amd64.deb"], Upgrade),
    (&["dpkg", "--status-fd", "23", "--no-triggers", "--unpack", "--auto-deconfigure", "/var/cache/apt/archives/docker-ce_5%3a27.3.1-1_amd64.deb"], Upgrade),
    (&["dnf", "reinstall", "containerd.io"], Upgrade),
    (&["dnf", "upgrade"], Upgrade),
    // installs
    (&["apt-get", "install", "containerd"], Install),
    (&["apt", "install", "-y", "docker-ce", "docker-ce-cli", "containerd.io"], Install),
    (&["dnf", "install", "docker-ce"], Install),
    // safe look-alikes
    (&["systemctl", "status", "containerd"], Allowed),
    (&["systemctl", "restart", "docker"], Allowed),
    (&["systemctl", "enable", "--now", "docker"], Allowed),
    (&["systemctl", "status", "stop"], Allowed),
    (&["systemctl", "stop", "nginx"], Allowed),
    (&["service", "docker", "status"], Allowed),
    (&["iptables", "-L"], Allowed),
    (&["iptables", "-t", "nat", "-S", "DOCKER"], Allowed),
    (&["iptables", "-L", "DOCKER", "-n", "-v"], Allowed),
    (&["iptables", "-F", "INPUT"], Allowed),
    (&["iptables", "-A", "DOCKER-USER", "-j", "RETURN"], Allowed),
    (&["iptables", "-I", "DOCKER-USER", "-s", "10.0.0.0/8", "-j", "DROP"], Allowed),
    (&["iptables", "-nvL"], Allowed),
    (&["dpkg", "-l", "containerd"], Allowed),
    (&["dpkg", "-L", "containerd.io"], Allowed),
    (&["dpkg", "--configure", "-a"], Allowed),
    (&["dpkg", "-r", "nginx"], Allowed),
    (&["apt-get", "remove", "nginx"], Allowed),
    (&["apt-get", "-s", "remove", "containerd"], Allowed),
    (&["apt-get", "remove", "--simulate", "containerd"], Allowed),
    (&["apt", "show", "containerd"], Allowed),
    (&["apt-get", "autoremove"], Allowed),
    (&["apt-cache", "policy", "containerd"], Allowed),
    (&["rm", "-rf", "/tmp/x"], Allowed),
    (&["docker", "stop", "web"], Allowed),
    (&["kill", "-9", "1234"], Allowed),
    (&["sh", "-c", "apt-get remove containerd"], Allowed),
    (&["echo", "apt-get", "remove", "containerd"], Allowed),
    (&["nft", "list", "ruleset"], Allowed),
    (&["nft", "list", "table", "ip", "nat"], Allowed),
    (&["nft", "-c", "-f", "/etc/nftables.conf"], Allowed),
    (&["ipset", "list"], Allowed),
    (&["ipset", "flush", "myset"], Allowed),
    (&["iptables-restore", "--noflush"], Allowed),
    (&["iptables-restore", "-n"], Allowed),
    (&["rpm", "-Uvh", "containerd.io-1.7.27-3.1.el9.x86_64.rpm"], Allowed),
    // issue 15: package names in capitals, the dynamic loader, systemctl's options and
    // target switches, D-Bus calls
    (&["dpkg", "--remove", "DOCKER-CE"], Blocked(PKGS_CE)),
    (&["dpkg", "-P", "Containerd.IO:amd64"], Blocked(PKGS_CE)),
    (&["apt-get", "purge", "RUNC"], Blocked(PKGS_DEB)),
    (&["apt-get", "install", "DOCKER.IO-"], Blocked(PKGS_DEB)),
    (&["/lib64/ld-linux-x86-64.so.2", "/usr/bin/dpkg", "-r", "containerd"], Blocked(PKGS_DEB)),
    (&["ld-linux-x86-64.so.2", "--argv0", "apt-get", "/usr/bin/dpkg", "--remove", "runc"], Blocked(PKGS_DEB)),
    (&["/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2", "/usr/sbin/xtables-nft-multi", "iptables", "-t", "nat", "-F", "DOCKER"], Blocked(NET)),
    (&["/lib64/ld-linux-x86-64.so.2", "--argv0", "iptables", "/usr/sbin/xtables-nft-multi", "-F"], Blocked(NET)),
    (&["systemctl", "--legend", "no", "mask", "containerd.service"], Blocked(UNITS)),
    (&["systemctl", "--legend=no", "stop", "docker"], Blocked(UNITS)),
    (&["systemctl", "-C", "x", "kill", "containerd"], Blocked(UNITS)),
    (&["systemctl", "--what", "state", "clean", "containerd"], Blocked(UNITS)),
    (&["systemctl", "--not-an-option", "no", "disable", "docker.socket"], Blocked(UNITS)),
    (&["systemctl", "isolate", "rescue.target"], Blocked(UNITS)),
    (&["systemctl", "isolate", "emergency"], Blocked(UNITS)),
    (&["systemctl", "rescue"], Blocked(UNITS)),
    (&["systemctl", "--no-block", "emergency"], Blocked(UNITS)),
    (&["telinit", "1"], Blocked(UNITS)),
    (&["telinit", "S"], Blocked(UNITS)),
    (&["busctl", "call", "org.freedesktop.systemd1", "/org/freedesktop/systemd1", "org.freedesktop.systemd1.Manager", "StopUnit", "ss", "containerd.service", "replace"], Blocked(UNITS)),
    (&["busctl", "call", "org.freedesktop.systemd1", "/org/freedesktop/systemd1/unit/docker_2eservice", "org.freedesktop.systemd1.Unit", "Kill", "si", "all", "9"], Blocked(UNITS)),
    (&["busctl", "call", "org.freedesktop.systemd1", "/org/freedesktop/systemd1", "org.freedesktop.systemd1.Manager", "MaskUnitFiles", "asbb", "1", "containerd.service", "false", "true"], Blocked(UNITS)),
    (&["dbus-send", "--system", "--print-reply", "--dest=org.freedesktop.systemd1", "/org/freedesktop/systemd1", "org.freedesktop.systemd1.Manager.StopUnit", "string:containerd.service", "string:replace"], Blocked(UNITS)),
    (&["dbus-send", "--system", "--dest=org.freedesktop.systemd1", "/org/freedesktop/systemd1", "org.freedesktop.systemd1.Manager.DisableUnitFiles", "array:string:docker.socket", "boolean:false"], Blocked(UNITS)),
    (&["gdbus", "call", "--system", "--dest", "org.freedesktop.systemd1", "--object-path", "/org/freedesktop/systemd1", "--method", "org.freedesktop.systemd1.Manager.StopUnit", "'containerd.service'", "'replace'"], Blocked(UNITS)),
    (&["dpkg", "-l", "DOCKER-CE"], Allowed),
    (&["dpkg", "-i", "containerd.deb"], Allowed),
    (&["/lib64/ld-linux-x86-64.so.2", "/usr/bin/dpkg", "-l", "containerd"], Allowed),
    (&["/lib64/ld-linux-x86-64.so.2", "--list", "/usr/bin/dpkg"], Allowed),
    (&["systemctl", "daemon-reload"], Allowed),
    (&["systemctl", "--legend", "no", "list-units"], Allowed),
    (&["systemctl", "--no-pager", "status", "containerd"], Allowed),
    (&["systemctl", "isolate", "multi-user.target"], Allowed),
    (&["systemctl", "isolate", "graphical"], Allowed),
    (&["systemctl", "default"], Allowed),
    (&["systemctl", "reboot"], Allowed),
    (&["systemctl", "poweroff"], Allowed),
    (&["systemctl", "halt"], Allowed),
    (&["telinit", "3"], Allowed),
    (&["telinit", "6"], Allowed),
    (&["busctl", "call", "org.freedesktop.systemd1", "/org/freedesktop/systemd1", "org.freedesktop.systemd1.Manager", "StopUnit", "ss", "cron.service", "replace"], Allowed),
    (&["busctl", "call", "org.freedesktop.systemd1", "/org/freedesktop/systemd1", "org.freedesktop.systemd1.Manager", "GetUnit", "s", "containerd.service"], Allowed),
    (&["busctl", "status"], Allowed),
    (&["dbus-send", "--system", "--print-reply", "--dest=org.freedesktop.systemd1", "/org/freedesktop/systemd1", "org.freedesktop.systemd1.Manager.RestartUnit", "string:containerd.service", "string:replace"], Allowed),
    // input exec can't see
    (&["iptables-restore"], Reported),
    (&["iptables-restore", "-w"], Reported),
    (&["ip6tables-legacy-restore", "-T", "nat"], Reported),
    (&["nft", "-f", "/etc/nftables.conf"], Reported),
    (&["ipset", "restore"], Reported),
];

fn outcome(policy: &Policy, tables: &CompiledCommands, argv: &[&str]) -> (Want, String) {
    let line = tables.command_line(argv);
    let c = tables.classify(&line);
    let rule = policy.rule(c.rule);
    let entry = rule.map(|r| guard_common::rule::RuleEntry {
        flags: if r.mode == policy::Mode::Enforce {
            guard_common::rule::RULE_ENFORCE
        } else {
            0
        },
        kind: r.kind() as u32,
    });
    let got = match (c.verdict(), c.reason(), action(&c, entry)) {
        (Some(Verdict::Destructive), _, Action::Block) => {
            Blocked(rule.map(|r| leak(&r.name)).unwrap_or("?"))
        }
        (Some(Verdict::AllowedAsUpgrade), _, _) => Upgrade,
        (Some(Verdict::Allowed), Some(Reason::Install), _) => Install,
        (Some(Verdict::Allowed), _, _) => Allowed,
        (Some(Verdict::ReportOnly), _, _) => Reported,
        other => panic!("unexpected {other:?} for {argv:?}"),
    };
    (got, format!("{:?}/{:?}", c.verdict(), c.reason()))
}

fn leak(s: &str) -> &'static str {
    Box::leak(s.to_owned().into_boxed_str())
}

#[test]
fn production_policy_classifies_every_listed_command_line() {
    let (policy, tables) = production();
    assert!(
        CASES.len() >= 60,
        "the table must cover at least 60 command lines"
    );
    let mut failures = Vec::new();
    for (argv, want) in CASES {
        let (got, detail) = outcome(&policy, &tables, argv);
        if got != *want {
            failures.push(format!("{argv:?}: want {want:?}, got {got:?} ({detail})"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} wrong:\n{}",
        failures.len(),
        CASES.len(),
        failures.join("\n")
    );
}

#[test]
fn audit_policies_report_instead_of_blocking() {
    for (name, text) in [
        (
            "policy/staging.toml",
            include_str!("../../policy/staging.toml"),
        ),
        (
            "policy/development.toml",
            include_str!("../../policy/development.toml"),
        ),
    ] {
        let policy = policy::parse(name, text).unwrap_or_else(|e| panic!("{}", e.render()));
        let tables = policy::compile(&policy).unwrap();
        for argv in [
            &["apt-get", "remove", "containerd"][..],
            &["iptables", "-F"],
            &["systemctl", "stop", "docker"],
        ] {
            let c = tables.classify(&tables.command_line(argv));
            assert_eq!(c.verdict(), Some(Verdict::Destructive), "{name} {argv:?}");
            let r = policy.rule(c.rule).unwrap();
            let entry = guard_common::rule::RuleEntry {
                flags: if r.mode == policy::Mode::Enforce {
                    1
                } else {
                    0
                },
                kind: r.kind() as u32,
            };
            assert_eq!(action(&c, Some(entry)), Action::Report, "{name} {argv:?}");
        }
    }
}

#[test]
fn argv_past_the_bound_is_destructive_only_where_it_could_hide_a_removal() {
    let (_, tables) = production();
    let many: Vec<String> = (0..MAX_ARGV_TOKENS + 8)
        .map(|i| format!("pkg{i}"))
        .collect();
    let with = |head: &[&str]| -> Vec<String> {
        head.iter()
            .map(|s| s.to_string())
            .chain(many.iter().cloned())
            .collect()
    };
    let classify_owned = |argv: Vec<String>| {
        let c = tables.classify(&tables.command_line(&argv));
        (c.verdict().unwrap(), c.reason().unwrap())
    };
    // The tail might name containerd.
    assert_eq!(
        classify_owned(with(&["apt-get", "remove"])),
        (Verdict::Destructive, Reason::ArgvOverflow)
    );
    // The tail might say `containerd-`.
    assert_eq!(
        classify_owned(with(&["apt-get", "install"])),
        (Verdict::Destructive, Reason::ArgvOverflow)
    );
    // The verb might be in the tail.
    assert_eq!(
        classify_owned(with(&["dpkg"])),
        (Verdict::Destructive, Reason::ArgvOverflow)
    );
    // dpkg takes one action; an unpack of many packages can't also remove one.
    assert_eq!(
        classify_owned(with(&["dpkg", "--unpack"])).0,
        Verdict::Allowed
    );
    // A verb that can't hurt, seen in full.
    assert_eq!(
        classify_owned(with(&["systemctl", "status"])).0,
        Verdict::Allowed
    );
}

#[test]
fn classification_names_the_verb_and_object_tokens() {
    let (_, tables) = production();
    let argv = [
        "dpkg",
        "--status-fd",
        "23",
        "--no-triggers",
        "--force-depends",
        "--remove",
        "containerd.io:amd64",
    ];
    let c = tables.classify(&tables.command_line(&argv));
    assert_eq!((c.verb_token, c.object_token), (5, 6));
    let object = tables.object_name(c.object).unwrap();
    assert_eq!(object.name, "containerd.io");
    assert_eq!(tables.class_name(c.class), Some("dpkg"));
}

#[test]
fn the_kernel_and_userspace_build_the_same_tokens() {
    // The kernel reads a NUL-terminated buffer of MAX_TOKEN_BYTES; userspace passes the
    // argument. Both must give the same token.
    let (_, tables) = production();
    let lens = &tables.config.prefix_lens;
    for arg in ["containerd.io:amd64", "-F", "DOCKER-USER", ""] {
        let mut buffer = [0u8; 128];
        buffer[..arg.len()].copy_from_slice(arg.as_bytes());
        assert_eq!(
            ArgToken::new(&buffer, false, lens),
            ArgToken::new(arg.as_bytes(), false, lens)
        );
    }
}

fn arg_strategy() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        // Words the tables know, so deep paths get exercised.
        prop::sample::select(vec![
            "remove",
            "purge",
            "install",
            "--reinstall",
            "-F",
            "-X",
            "-t",
            "nat",
            "DOCKER",
            "DOCKER-USER",
            "--",
            "-",
            "containerd",
            "containerd.io:amd64",
            "containerd-",
            "flush",
            "ruleset",
            "-vFt",
            "-FDOCKER",
            "--status-fd",
            "23",
            "*",
            "stop",
            "-a",
            "docker.service",
            "--force-remove-protected",
            "-s",
            "upgrade",
        ])
        .prop_map(|s| s.as_bytes().to_vec()),
        prop::collection::vec(any::<u8>(), 0..200),
        "-{1,2}[a-zA-Z=_:-]{0,40}".prop_map(|s| s.into_bytes()),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn classifier_never_panics_on_any_argv(
        argv0 in prop::sample::select(vec!["apt-get", "dpkg", "iptables", "nft", "systemctl", "service", "ipset", "iptables-restore", "xtables-nft-multi", "busybox", "rpm", "x"]),
        rest in prop::collection::vec(arg_strategy(), 0..80),
    ) {
        let (_, tables) = production();
        let mut argv = vec![argv0.as_bytes().to_vec()];
        argv.extend(rest);
        let c = tables.classify(&tables.command_line(&argv));
        prop_assert!(c.verdict().is_some());
        prop_assert!(c.reason().is_some());
    }

    #[test]
    fn classifier_never_panics_on_garbage_from_the_kernel(
        count in any::<u32>(),
        flags in any::<u32>(),
        exe_class in any::<u32>(),
        trusted in any::<u32>(),
        hashes in prop::collection::vec(any::<u64>(), 8),
        head in prop::collection::vec(any::<u8>(), TOKEN_HEAD_BYTES),
        token_flags in any::<u32>(),
        len in any::<u32>(),
    ) {
        let (_, tables) = production();
        let mut token = ArgToken::EMPTY;
        token.whole = hashes[0];
        token.stem = hashes[1];
        token.base = hashes[2];
        token.base_stem = hashes[3];
        token.prefix = [hashes[4], hashes[5], hashes[6], hashes[7]];
        token.head.copy_from_slice(&head);
        token.flags = token_flags;
        token.len = len;
        let mut line = CommandLine::EMPTY;
        line.tokens = [token; MAX_ARGV_TOKENS];
        line.tokens[0] = ArgToken::new(b"iptables", false, &[6, 0, 0, 0]);
        line.count = count;
        line.flags = flags;
        line.exe_class = exe_class;
        line.trusted_classes = trusted;
        let c = classify(&tables, &line);
        prop_assert!(c.verdict().is_some());
        let _ = MAX_PREFIX_LENS;
    }

    #[test]
    fn parser_never_panics_on_arbitrary_text(text in "\\PC{0,400}") {
        let _ = policy::parse("fuzz.toml", &text);
    }

    #[test]
    fn parser_never_panics_on_policy_shaped_text(
        pieces in prop::collection::vec(prop::sample::select(vec![
            "environment = \"x\"\n", "mode = \"enforce\"\n", "mode = \"audit\"\n", "mode = 1\n",
            "[[packages]]\n", "[[paths]]\n", "[[trees]]\n", "[[services]]\n", "[[netfilter]]\n",
            "[[processes]]\n", "[[commands]]\n", "name = \"a\"\n", "name = \"b\"\n", "name = \"\"\n",
            "packages = [\"runc\", \"x:\", \"*\", \"docker-*\"]\n", "paths = [\"/a\", \"b\", \"/[\", \"/**\"]\n",
            "units = [\"a.service\", \"b\"]\n", "chains = [\"D*\", \"*\", \"\"]\n", "exe = [\"/x*\"]\n",
            "binaries = [\"apt\", \"/x\"]\n", "objects = [\"packages\", \"units\", \"x\"]\n",
            "verb_position = 99\n", "destructive = [\"--\", \"rm\"]\n", "signals = [\"KILL\", \"X\"]\n",
            "exclude = [\"/a/b\"]\n", "upgrade = \"deny\"\n", "tables = [\"nat\"]\n", "é = 1\n", "\"\n",
        ]), 0..30),
    ) {
        let text: String = pieces.concat();
        if let Ok(p) = policy::parse("fuzz.toml", &text) {
            let _ = policy::compile(&p);
        }
    }
}
