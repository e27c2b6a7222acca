//! The policy schema: every feature parses into what it means, and every error points at
//! the right line and column with the right message.

use guard_common::exec::{
    WORD_ALL_OBJECTS, WORD_BARE, WORD_DESTRUCTIVE, WORD_DRY_RUN, WORD_HITS_ALL, WORD_INSTALL,
    WORD_REPORT_ONLY, WORD_TAKES_VALUE, WORD_UPGRADE,
};
use guard_user::policy::{
    self, Mode, ObjectKind, ObjectPosition, Policy, PolicyError, RuleBody, Upgrade, WithoutVerb,
};

const HEADER: &str = "environment = \"test\"\nmode = \"enforce\"\n";

fn parse(text: &str) -> Policy {
    policy::parse("p.toml", text).unwrap_or_else(|e| panic!("policy should parse:\n{}", e.render()))
}

/// The first error, as (line, col, message).
fn error(text: &str) -> (usize, usize, String) {
    match policy::parse("p.toml", text) {
        Ok(_) => panic!("policy should not parse:\n{text}"),
        Err(PolicyError::Invalid(d)) => (d[0].line(), d[0].col(), d[0].message.clone()),
        Err(e) => panic!("unexpected error {e}"),
    }
}

#[test]
fn minimal_policy_has_environment_and_mode() {
    let p = parse(HEADER);
    assert_eq!(p.environment, "test");
    assert_eq!(p.mode, Mode::Enforce);
    assert!(p.rules.is_empty());
    assert_eq!(p.sha256.len(), 64);
}

#[test]
fn mode_is_overridable_per_rule() {
    let p = parse(&format!(
        "{HEADER}[[paths]]\nname = \"a\"\npaths = [\"/x\"]\n\n[[paths]]\nname = \"b\"\nmode = \"audit\"\npaths = [\"/y\"]\n"
    ));
    assert_eq!(p.rules[0].mode, Mode::Enforce);
    assert_eq!(p.rules[1].mode, Mode::Audit);
    assert_eq!((p.rules[0].id, p.rules[1].id), (1, 2));
    assert_eq!(p.rule_by_name("b").unwrap().location.line, 8);
}

#[test]
fn package_groups_with_arch_wildcards_and_upgrade_policies() {
    let p = parse(&format!(
        "{HEADER}[[packages]]\nname = \"ce\"\npackages = [\"containerd.io:amd64\", \"docker-ce\", \"docker-*\"]\nupgrade = \"window\"\n\
         [[packages]]\nname = \"deb\"\npackages = [\"runc\"]\n"
    ));
    let RuleBody::Packages { packages, upgrade } = &p.rules[0].body else {
        panic!("not a packages rule")
    };
    assert_eq!(*upgrade, Upgrade::Window);
    assert_eq!(packages[0].name, "containerd.io");
    assert_eq!(packages[0].arch.as_deref(), Some("amd64"));
    assert!(!packages[1].wildcard);
    assert!(packages[2].wildcard);
    assert_eq!(packages[2].name, "docker-");
    let RuleBody::Packages { upgrade, .. } = &p.rules[1].body else {
        panic!("not a packages rule")
    };
    assert_eq!(*upgrade, Upgrade::Allow, "upgrade defaults to allow");
}

#[test]
fn paths_accept_literals_and_globs() {
    let p = parse(&format!(
        "{HEADER}[[paths]]\nname = \"bin\"\npaths = [\"/usr/local/bin/containerd*\", \"/run/docker.sock\", \"/etc/**/x.{{conf,toml}}\"]\n"
    ));
    let RuleBody::Paths { paths } = &p.rules[0].body else {
        panic!()
    };
    assert!(paths[0]
        .glob
        .as_ref()
        .unwrap()
        .is_match("/usr/local/bin/containerd-shim-runc-v2"));
    assert!(!paths[0]
        .glob
        .as_ref()
        .unwrap()
        .is_match("/usr/local/bin/sub/containerd"));
    assert!(paths[1].glob.is_none());
    assert!(paths[2].glob.as_ref().unwrap().is_match("/etc/a/b/x.toml"));
}

#[test]
fn trees_with_trusted_writers_exclusions_and_write_policy() {
    let p = parse(&format!(
        "{HEADER}[[trees]]\nname = \"state\"\npaths = [\"/var/lib/docker\"]\ntrusted_writers = [\"/usr/bin/dockerd\", \"/usr/bin/containerd-shim*\"]\n\
         exclude = [\"/var/lib/docker/volumes\"]\nallow_writes = true\n"
    ));
    let RuleBody::Trees {
        paths,
        trusted_writers,
        exclude,
        allow_writes,
    } = &p.rules[0].body
    else {
        panic!()
    };
    assert_eq!(paths[0].to_str(), Some("/var/lib/docker"));
    assert_eq!(trusted_writers.len(), 2);
    assert!(trusted_writers[1].glob.is_some());
    assert_eq!(exclude[0].to_str(), Some("/var/lib/docker/volumes"));
    assert!(allow_writes);
}

#[test]
fn services_netfilter_and_processes() {
    let p = parse(&format!(
        "{HEADER}[[services]]\nname = \"units\"\nunits = [\"containerd.service\", \"docker.socket\"]\n\
         [[netfilter]]\nname = \"nf\"\nchains = [\"DOCKER*\", \"DOCKER-USER\"]\ntables = [\"nat\"]\nsets = [\"docker-ext-bridges-v4\"]\n\
         [[processes]]\nname = \"daemons\"\nexe = [\"/usr/bin/containerd\"]\nsupervisors = [\"/usr/bin/dockerd\"]\n\
         [[processes]]\nname = \"shims\"\nexe = [\"/usr/bin/containerd-shim*\"]\nsignals = [\"KILL\", \"SIGTERM\"]\nhandles = [\"HUP\", \"SIGUSR2\"]\n"
    ));
    let RuleBody::Services { units } = &p.rules[0].body else {
        panic!()
    };
    assert_eq!(units, &["containerd.service", "docker.socket"]);
    let RuleBody::Netfilter {
        chains,
        tables,
        sets,
    } = &p.rules[1].body
    else {
        panic!()
    };
    assert!(chains[0].wildcard && chains[0].literal == "DOCKER");
    assert!(!chains[1].wildcard);
    assert_eq!((tables.len(), sets.len()), (1, 1));
    let RuleBody::Processes {
        signals,
        supervisors,
        ..
    } = &p.rules[2].body
    else {
        panic!()
    };
    assert!(
        signals.contains(&9) && signals.contains(&15),
        "fatal signals by default"
    );
    assert!(
        !signals.contains(&1),
        "SIGHUP reloads daemons; not refused by default"
    );
    assert_eq!(supervisors.len(), 1);
    let RuleBody::Processes {
        signals, handles, ..
    } = &p.rules[3].body
    else {
        panic!()
    };
    assert_eq!(signals, &[9, 15]);
    assert_eq!(handles, &[1, 12]);
}

#[test]
fn command_classes_are_data() {
    let p = parse(&format!(
        "{HEADER}multicall_binaries = [\"busybox\"]\n[[commands]]\nname = \"apt\"\nbinaries = [\"apt-get\"]\nobjects = [\"packages\"]\n\
         verb_position = 1\nobject_position = \"any\"\ndestructive = [\"remove\"]\ndestructive_bare = [\"wipe\"]\ninstall = [\"install\"]\n\
         upgrade = [\"reinstall\"]\nupgrade_bare = [\"upgrade\"]\nhits_all = [\"--nuke\"]\nall_objects = [\"-a\"]\ndry_run = [\"-s\"]\n\
         report_only = [\"-f\"]\ntakes_value = [\"-o\", \"-f\"]\nremove_suffix = true\npatterns = true\nabbreviations = true\n\
         trusted_callers = [\"/usr/bin/dockerd\"]\n[[commands]]\nname = \"ipt\"\nbinaries = [\"iptables\"]\nobjects = [\"chains\", \"tables\"]\n\
         object_position = \"after-verb\"\nwithout_verb = \"report\"\n"
    ));
    let c = &p.commands[0];
    assert_eq!(p.multicall, ["busybox"]);
    assert_eq!(c.objects, [ObjectKind::Packages]);
    assert_eq!(c.verb_position, 1);
    let flags = |w: &str| {
        c.words
            .iter()
            .find(|(x, _)| x == w)
            .map(|(_, f)| *f)
            .unwrap()
    };
    assert_eq!(flags("remove"), WORD_DESTRUCTIVE);
    assert_eq!(flags("wipe"), WORD_DESTRUCTIVE | WORD_BARE);
    assert_eq!(flags("install"), WORD_INSTALL);
    assert_eq!(flags("reinstall"), WORD_UPGRADE);
    assert_eq!(flags("upgrade"), WORD_UPGRADE | WORD_BARE);
    assert_eq!(flags("--nuke"), WORD_HITS_ALL);
    assert_eq!(flags("-a"), WORD_ALL_OBJECTS);
    assert_eq!(flags("-s"), WORD_DRY_RUN);
    assert_eq!(
        flags("-f"),
        WORD_REPORT_ONLY | WORD_TAKES_VALUE,
        "a word in two lists has both meanings"
    );
    assert!(c.remove_suffix && c.patterns && c.abbreviations);
    assert_eq!(c.trusted_callers.len(), 1);
    let ipt = &p.commands[1];
    assert_eq!(ipt.object_position, ObjectPosition::AfterVerb);
    assert_eq!(ipt.without_verb, WithoutVerb::Report);
    assert_eq!(ipt.objects, [ObjectKind::Chains, ObjectKind::Tables]);
}

// ---- error paths: message and line:col -----------------------------------------------

#[test]
fn unknown_top_level_key() {
    let (line, col, msg) = error(&format!("{HEADER}enviroment = \"x\"\n"));
    assert_eq!((line, col), (3, 1));
    assert!(
        msg.starts_with("unknown field `enviroment`, expected one of"),
        "{msg}"
    );
}

#[test]
fn unknown_key_in_a_rule() {
    let (line, col, msg) = error(&format!(
        "{HEADER}\n[[packages]]\nname = \"p\"\npackages = [\"runc\"]\n  upgrades = \"allow\"\n"
    ));
    assert_eq!((line, col), (7, 3));
    assert!(
        msg.starts_with("unknown field `upgrades`, expected one of"),
        "{msg}"
    );
}

#[test]
fn unknown_key_in_a_command_class() {
    let (line, col, msg) = error(&format!(
        "{HEADER}[[commands]]\nname = \"c\"\nbinaries = [\"x\"]\nobjects = [\"units\"]\nmode = \"audit\"\n"
    ));
    assert_eq!((line, col), (7, 1));
    assert!(msg.starts_with("unknown field `mode`"), "{msg}");
}

#[test]
fn unknown_section() {
    let (line, col, msg) = error(&format!("{HEADER}[[files]]\nname = \"x\"\n"));
    assert_eq!((line, col), (3, 3));
    assert!(msg.starts_with("unknown field `files`"), "{msg}");
}

#[test]
fn wrong_type() {
    let (line, col, msg) = error(&format!("{HEADER}[[paths]]\nname = 3\npaths = [\"/x\"]\n"));
    assert_eq!((line, col), (4, 8));
    assert_eq!(msg, "invalid type: integer `3`, expected a string");

    let (line, col, msg) = error(&format!(
        "{HEADER}[[paths]]\nname = \"p\"\npaths = \"/x\"\n"
    ));
    assert_eq!((line, col), (5, 9));
    assert!(
        msg.starts_with("invalid type: string \"/x\", expected a sequence"),
        "{msg}"
    );

    let (line, col, msg) = error(&format!(
        "{HEADER}[[trees]]\nname = \"t\"\npaths = [\"/x\"]\nallow_writes = \"yes\"\n"
    ));
    assert_eq!((line, col), (6, 16));
    assert!(
        msg.starts_with("invalid type: string \"yes\", expected a boolean"),
        "{msg}"
    );
}

#[test]
fn unknown_mode() {
    let (line, col, msg) = error("environment = \"p\"\nmode = \"block\"\n");
    assert_eq!((line, col), (2, 8));
    assert_eq!(
        msg,
        "unknown variant `block`, expected `audit` or `enforce`"
    );

    let (line, col, msg) = error(&format!(
        "{HEADER}[[services]]\nname = \"s\"\nmode = \"Enforce\"\nunits = [\"x.service\"]\n"
    ));
    assert_eq!((line, col), (5, 8));
    assert_eq!(
        msg,
        "unknown variant `Enforce`, expected `audit` or `enforce`"
    );
}

#[test]
fn unknown_upgrade_policy_and_object_kind() {
    let (line, col, msg) = error(&format!(
        "{HEADER}[[packages]]\nname = \"p\"\npackages = [\"runc\"]\nupgrade = \"sometimes\"\n"
    ));
    assert_eq!((line, col), (6, 11));
    assert_eq!(
        msg,
        "unknown variant `sometimes`, expected one of `allow`, `window`, `deny`"
    );

    let (line, col, msg) = error(&format!(
        "{HEADER}[[commands]]\nname = \"c\"\nbinaries = [\"x\"]\nobjects = [\"packages\", \"files\"]\n"
    ));
    assert_eq!((line, col), (6, 24));
    assert!(msg.starts_with("unknown variant `files`"), "{msg}");
}

#[test]
fn bad_glob() {
    let (line, col, msg) = error(&format!(
        "{HEADER}[[paths]]\nname = \"p\"\npaths = [\"/ok\",\n  \"/usr/bin/[containerd\"]\n"
    ));
    assert_eq!((line, col), (6, 3));
    assert_eq!(
        msg,
        "invalid glob `/usr/bin/[containerd`: unclosed character class; missing ']'"
    );

    let (line, col, msg) = error(&format!(
        "{HEADER}[[processes]]\nname = \"p\"\nexe = [\"/usr/bin/{{a,b\"]\n"
    ));
    assert_eq!((line, col), (5, 8));
    assert!(
        msg.starts_with("invalid glob `/usr/bin/{a,b`: unclosed alternate group"),
        "{msg}"
    );
}

#[test]
fn duplicate_rule_name() {
    let (line, col, msg) = error(&format!(
        "{HEADER}[[paths]]\nname = \"runtime\"\npaths = [\"/x\"]\n\n[[trees]]\nname = \"runtime\"\npaths = [\"/y\"]\n"
    ));
    assert_eq!((line, col), (8, 8));
    assert_eq!(
        msg,
        "duplicate rule name `runtime` (first defined at line 4)"
    );

    // Command classes share the namespace.
    let (line, _, msg) = error(&format!(
        "{HEADER}[[paths]]\nname = \"apt\"\npaths = [\"/x\"]\n[[commands]]\nname = \"apt\"\nbinaries = [\"apt\"]\nobjects = [\"packages\"]\n"
    ));
    assert_eq!(line, 7);
    assert!(msg.starts_with("duplicate rule name `apt`"), "{msg}");
}

#[test]
fn duplicate_key_is_a_toml_error() {
    let (line, col, msg) = error(&format!(
        "{HEADER}[[paths]]\nname = \"a\"\nname = \"b\"\npaths = []\n"
    ));
    assert_eq!((line, col), (5, 1));
    assert_eq!(msg, "duplicate key");
}

#[test]
fn missing_required_fields() {
    let (_, _, msg) = error("environment = \"p\"\n");
    assert_eq!(msg, "missing field `mode`");
    let (line, _, msg) = error(&format!("{HEADER}[[paths]]\nname = \"p\"\n"));
    assert!(line >= 3, "points into the table, not the top");
    assert_eq!(msg, "missing field `paths`");
}

#[test]
fn semantic_errors_point_at_their_value() {
    let cases: &[(&str, (usize, usize), &str)] = &[
        (
            "[[paths]]\nname = \"p\"\npaths = [\"usr/bin/x\"]\n",
            (5, 10),
            "path `usr/bin/x` must be absolute",
        ),
        (
            "[[trees]]\nname = \"t\"\npaths = [\"/var/lib/*\"]\n",
            (5, 10),
            "`/var/lib/*` is a glob; these paths must be literal directories",
        ),
        (
            "[[trees]]\nname = \"t\"\npaths = [\"/a\"]\nexclude = [\"/b/c\"]\n",
            (6, 12),
            "excluded `/b/c` is not inside one of this rule's trees",
        ),
        (
            "[[packages]]\nname = \"p\"\npackages = [\"docker ce\"]\n",
            (5, 13),
            "invalid package name `docker ce`",
        ),
        (
            "[[packages]]\nname = \"p\"\npackages = [\"runc:\"]\n",
            (5, 13),
            "invalid architecture in `runc:`",
        ),
        (
            "[[packages]]\nname = \"p\"\npackages = []\n",
            (4, 8),
            "rule `p` lists no packages",
        ),
        (
            "[[services]]\nname = \"s\"\nunits = [\"containerd\"]\n",
            (5, 10),
            "unit `containerd` needs its type suffix (e.g. `containerd.service`)",
        ),
        (
            "[[netfilter]]\nname = \"n\"\nchains = [\"DOCK*ER\"]\n",
            (5, 11),
            "invalid chain name `DOCK*ER`: only a trailing `*` is supported",
        ),
        (
            "[[netfilter]]\nname = \"n\"\nchains = [\"A-CHAIN-NAME-LONGER-THAN-28-BYTES\"]\n",
            (5, 11),
            "chain name `A-CHAIN-NAME-LONGER-THAN-28-BYTES` is longer than 28 bytes",
        ),
        (
            "[[processes]]\nname = \"p\"\nexe = [\"/x\"]\nsignals = [\"KILL\", \"SIGBOGUS\"]\n",
            (6, 20),
            "unknown signal `SIGBOGUS`",
        ),
        (
            "[[processes]]\nname = \"p\"\nexe = [\"/x\"]\nhandles = [\"HUP\", \"RELOAD\"]\n",
            (6, 19),
            "unknown signal `RELOAD`",
        ),
        (
            "[[paths]]\nname = \"bad name\"\npaths = [\"/x\"]\n",
            (4, 8),
            "name `bad name` may only contain letters, digits, `-`, `_` and `.`",
        ),
        (
            "[[commands]]\nname = \"c\"\nbinaries = [\"/usr/bin/apt\"]\nobjects = [\"packages\"]\n",
            (5, 13),
            "binary `/usr/bin/apt` must be a bare file name",
        ),
        (
            "[[commands]]\nname = \"c\"\nbinaries = [\"apt\"]\nobjects = [\"packages\"]\n[[commands]]\nname = \"d\"\nbinaries = [\"apt\"]\nobjects = [\"packages\"]\n",
            (9, 13),
            "binary `apt` already belongs to command class `c`",
        ),
        (
            "[[commands]]\nname = \"c\"\nbinaries = [\"x\"]\n",
            (4, 8),
            "command class `c` names no objects (set `objects`)",
        ),
        (
            "[[commands]]\nname = \"c\"\nbinaries = [\"x\"]\nobjects = [\"units\"]\nverb_position = 9\n",
            (7, 17),
            "verb_position must be between 0 and 8",
        ),
        (
            "[[commands]]\nname = \"c\"\nbinaries = [\"x\"]\nobjects = [\"units\"]\ndestructive = [\"--\"]\n",
            (7, 16),
            "`--` cannot be a word",
        ),
        (
            "environment_x = 1\n",
            (3, 1),
            "unknown field `environment_x`",
        ),
    ];
    for (body, (line, col), message) in cases {
        let (l, c, m) = error(&format!("{HEADER}{body}"));
        assert_eq!((l, c), (*line, *col), "position for {message:?}, got {m:?}");
        assert!(m.starts_with(message), "expected {message:?}, got {m:?}");
    }
}

#[test]
fn all_semantic_errors_are_reported_in_file_order() {
    let text = format!(
        "{HEADER}[[paths]]\nname = \"a\"\npaths = [\"rel\"]\n[[paths]]\nname = \"a\"\npaths = [\"/[\"]\n"
    );
    let Err(PolicyError::Invalid(d)) = policy::parse("p.toml", &text) else {
        panic!()
    };
    let at: Vec<_> = d.iter().map(|d| (d.line(), d.col())).collect();
    assert_eq!(at, [(5, 10), (7, 8), (8, 10)]);
}

#[test]
fn error_renders_one_line_then_the_snippet() {
    let err = policy::parse(
        "policy/broken.toml",
        "environment = \"p\"\nmode = \"block\"\n",
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "policy/broken.toml:2:8: unknown variant `block`, expected `audit` or `enforce`"
    );
    assert_eq!(
        err.render(),
        "policy/broken.toml:2:8: unknown variant `block`, expected `audit` or `enforce`\n  2 | mode = \"block\"\n    |        ^^^^^^^"
    );
}

#[test]
fn too_many_prefix_lengths_is_a_compile_error() {
    let p = parse(&format!(
        "{HEADER}[[netfilter]]\nname = \"n\"\nchains = [\"A*\", \"BB*\", \"CCC*\", \"DDDD*\", \"EEEEE*\"]\n"
    ));
    let err = policy::compile(&p).unwrap_err();
    assert_eq!(err.diagnostics()[0].line(), 4);
    assert!(
        err.to_string()
            .contains("`EEEEE*`: wildcard names may use at most 4 distinct prefix lengths"),
        "{err}"
    );
}

#[test]
fn read_errors_name_the_file() {
    let err = policy::load(std::path::Path::new("/nonexistent/policy.toml")).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("cannot read policy /nonexistent/policy.toml: "),
        "{err}"
    );
}
