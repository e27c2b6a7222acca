//! The classifier's tests, over two small tables built from plain arrays.

use super::*;
use crate::hash::fnv1a;
use crate::rule::{Action, RuleEntry};

const LENS: [u32; MAX_PREFIX_LENS] = [6, 0, 0, 0];

#[test]
fn shared_types_have_no_implicit_padding() {
    assert_eq!(
        core::mem::size_of::<ArgToken>(),
        8 * 8 + TOKEN_HEAD_BYTES + 8
    );
    assert_eq!(
        core::mem::size_of::<CommandLine>(),
        MAX_ARGV_TOKENS * core::mem::size_of::<ArgToken>() + 4 + 4 + 8 + 4 + 4
    );
    assert_eq!(
        core::mem::size_of::<CommandConfig>(),
        4 * MAX_PREFIX_LENS + 8
    );
    assert_eq!(core::mem::size_of::<ClassEntry>(), 24);
    assert_eq!(core::mem::size_of::<WordKey>(), 16);
    assert_eq!(core::mem::size_of::<ObjectKey>(), 16);
    assert_eq!(core::mem::size_of::<ObjectEntry>(), 16);
    assert_eq!(core::mem::size_of::<Classification>(), 32);
}

#[test]
fn token_stems_reduce_package_spellings() {
    let name = fnv1a(b"containerd.io");
    for spelling in [
        &b"containerd.io"[..],
        b"containerd.io:amd64",
        b"containerd.io=1.7.27-1",
        b"containerd.io/bookworm",
        b"containerd.io-",
        b"containerd.io_",
    ] {
        assert_eq!(
            ArgToken::new(spelling, false, &LENS).stem,
            name,
            "{spelling:?}"
        );
    }
    let deb = ArgToken::new(
        b"/var/cache/apt/archives/containerd.io_1.7.27-1_amd64.deb",
        false,
        &LENS,
    );
    assert_eq!(deb.base_stem, name);
    assert_eq!(
        ArgToken::new(b"/usr/sbin/iptables", false, &LENS).base,
        fnv1a(b"iptables")
    );
}

#[test]
fn token_flags() {
    let t = |s: &[u8]| ArgToken::new(s, false, &LENS).flags;
    assert_eq!(t(b"--"), TOKEN_END_OF_OPTIONS);
    assert_eq!(t(b"-"), 0);
    assert_eq!(t(b"-F"), TOKEN_OPTION);
    assert_eq!(t(b"--flush"), TOKEN_OPTION | TOKEN_LONG_OPTION);
    assert_eq!(
        t(b"--status-fd=23"),
        TOKEN_OPTION | TOKEN_LONG_OPTION | TOKEN_HAS_VALUE
    );
    assert_eq!(t(b"containerd-"), TOKEN_REMOVE_SUFFIX);
    assert_eq!(t(b"docker*"), TOKEN_PATTERN);
    assert_eq!(t(b"flush ruleset"), TOKEN_HAS_SPACE);
    let long = [b'a'; MAX_TOKEN_BYTES + 1];
    assert_eq!(t(&long), TOKEN_TRUNCATED);
    assert_eq!(t(b"a\0b"), ArgToken::new(b"a", false, &LENS).flags);
}

#[test]
fn prefix_snapshots_cover_exactly_the_prefix() {
    let t = ArgToken::new(b"DOCKER-USER", false, &LENS);
    assert_eq!(t.prefix[0], fnv1a(b"DOCKER"));
    assert_eq!(t.prefix[1], 0);
    assert_eq!(ArgToken::new(b"DOCK", false, &LENS).prefix[0], 0);
}

/// A two-class table over plain arrays: enough to exercise the scan without userspace.
struct Tiny;

const IPT: u32 = 0;
const APT: u32 = 1;

impl CommandTables for Tiny {
    fn config(&self) -> CommandConfig {
        CommandConfig {
            prefix_lens: LENS,
            classes: 2,
            _pad: 0,
        }
    }
    fn binary(&self, name_hash: u64) -> Option<BinaryEntry> {
        let class = if name_hash == fnv1a(b"iptables") {
            IPT
        } else if name_hash == fnv1a(b"apt-get") {
            APT
        } else if name_hash == fnv1a(b"xtables-nft-multi") {
            return Some(BinaryEntry {
                class: 0,
                flags: BINARY_MULTICALL,
            });
        } else {
            return None;
        };
        Some(BinaryEntry { class, flags: 0 })
    }
    fn class(&self, class: u32) -> Option<ClassEntry> {
        match class {
            IPT => Some(ClassEntry {
                objects: OBJECTS_AFTER_VERB,
                bare_rule: 1,
                ..Default::default()
            }),
            APT => Some(ClassEntry {
                flags: CLASS_REMOVE_SUFFIX | CLASS_PATTERNS,
                verb_position: 1,
                bare_rule: 2,
                bare_upgrade: UPGRADE_ALLOW,
                ..Default::default()
            }),
            _ => None,
        }
    }
    fn word(&self, key: &WordKey) -> Option<WordEntry> {
        let words: &[(u32, &[u8], u32)] = &[
            (IPT, b"-F", WORD_DESTRUCTIVE | WORD_BARE),
            (IPT, b"-X", WORD_DESTRUCTIVE | WORD_BARE),
            (IPT, b"-t", WORD_TAKES_VALUE),
            (APT, b"remove", WORD_DESTRUCTIVE),
            (APT, b"install", WORD_INSTALL),
            (APT, b"--reinstall", WORD_UPGRADE),
            (APT, b"upgrade", WORD_UPGRADE | WORD_BARE),
            (APT, b"-o", WORD_TAKES_VALUE),
            (APT, b"-s", WORD_DRY_RUN),
        ];
        words
            .iter()
            .find(|(c, w, _)| *c == key.class && fnv1a(w) == key.hash)
            .map(|&(_, _, flags)| WordEntry { flags })
    }
    fn object(&self, key: &ObjectKey) -> Option<ObjectEntry> {
        let objects: &[(u32, u32, &[u8], u32, u32)] = &[
            (IPT, OBJECT_PREFIX, b"DOCKER", 1, 0),
            (APT, OBJECT_NAME, b"containerd", 2, 1),
        ];
        objects
            .iter()
            .find(|(c, k, n, _, _)| *c == key.class && *k == key.kind && fnv1a(n) == key.hash)
            .map(|&(_, _, _, rule, object)| ObjectEntry {
                rule,
                object,
                upgrade: if rule == 2 {
                    UPGRADE_ALLOW
                } else {
                    UPGRADE_NONE
                },
                flags: 0,
            })
    }
}

fn run(args: &[&str]) -> (Verdict, Reason) {
    let mut line = CommandLine::EMPTY;
    for arg in args {
        line.push(arg.as_bytes(), &LENS);
    }
    let c = classify(&Tiny, &line);
    (c.verdict().unwrap(), c.reason().unwrap())
}

#[test]
fn classifies_with_a_minimal_table() {
    use Reason::*;
    use Verdict::*;
    assert_eq!(run(&["iptables", "-F"]), (Destructive, BareVerb));
    assert_eq!(
        run(&["iptables", "-t", "nat", "-X"]),
        (Destructive, BareVerb)
    );
    assert_eq!(
        run(&["iptables", "-X", "-t", "nat"]),
        (Destructive, BareVerb)
    );
    assert_eq!(run(&["iptables", "-tnat", "-F"]), (Destructive, BareVerb));
    assert_eq!(run(&["iptables", "-vF"]), (Destructive, BareVerb));
    assert_eq!(
        run(&["iptables", "-FDOCKER"]),
        (Destructive, ProtectedObject)
    );
    assert_eq!(
        run(&["iptables", "-F", "INPUT"]),
        (Allowed, NoDestructiveVerb)
    );
    assert_eq!(
        run(&["iptables", "-X", "DOCKER-USER"]),
        (Destructive, ProtectedObject)
    );
    assert_eq!(
        run(&["/sbin/xtables-nft-multi", "iptables", "-F"]),
        (Destructive, BareVerb)
    );
    assert_eq!(
        run(&["apt-get", "remove", "containerd"]),
        (Destructive, ProtectedObject)
    );
    assert_eq!(
        run(&["apt-get", "-s", "remove", "containerd"]),
        (Allowed, DryRun)
    );
    assert_eq!(
        run(&["apt-get", "remove", "contain*"]),
        (Destructive, Pattern)
    );
    assert_eq!(
        run(&["apt-get", "install", "containerd-"]),
        (Destructive, RemoveSuffix)
    );
    assert_eq!(
        run(&["apt-get", "install", "containerd"]),
        (Allowed, Install)
    );
    assert_eq!(
        run(&["apt-get", "install", "--reinstall", "containerd"]),
        (AllowedAsUpgrade, Upgrade)
    );
    assert_eq!(run(&["apt-get", "upgrade"]), (AllowedAsUpgrade, Upgrade));
    assert_eq!(
        run(&["apt-get", "status", "remove"]),
        (Allowed, NoDestructiveVerb)
    );
    assert_eq!(
        run(&["apt-get", "-o", "remove", "x"]),
        (Allowed, NoDestructiveVerb)
    );
    assert_eq!(run(&["rm", "-rf", "/"]), (Allowed, NotGuarded));
    assert_eq!(run(&[]), (Allowed, NotGuarded));
}

#[test]
fn overflow_counts_as_destructive_only_when_it_could_be() {
    let mut line = CommandLine::EMPTY;
    line.push(b"apt-get", &LENS);
    line.push(b"install", &LENS);
    for _ in 0..MAX_ARGV_TOKENS {
        line.push(b"hello", &LENS);
    }
    assert_ne!(line.flags & LINE_TRUNCATED, 0);
    let c = classify(&Tiny, &line);
    assert_eq!(c.reason(), Some(Reason::ArgvOverflow));
}

#[test]
fn trusted_callers_are_let_through() {
    let mut line = CommandLine::EMPTY;
    for arg in ["iptables", "-X", "DOCKER"] {
        line.push(arg.as_bytes(), &LENS);
    }
    line.trusted_classes = 1 << IPT;
    let c = classify(&Tiny, &line);
    assert_eq!(
        (c.verdict(), c.reason()),
        (Some(Verdict::Allowed), Some(Reason::TrustedCaller))
    );
    assert_eq!(c.rule, 1);
}

/// apt and dpkg over three packages: `containerd` and `runc` upgrade in a window, `hello`
/// always; each object's window bits as the test sets them.
struct Windowed {
    flags: [u32; 3],
}

const DPKG: u32 = 0;
const PACKAGES: [&[u8]; 3] = [b"containerd", b"runc", b"hello"];
const WINDOW_RULE: u32 = 7;
const ALLOW_RULE: u32 = 8;

impl CommandTables for Windowed {
    fn config(&self) -> CommandConfig {
        CommandConfig {
            prefix_lens: LENS,
            classes: 2,
            _pad: 0,
        }
    }
    fn binary(&self, name_hash: u64) -> Option<BinaryEntry> {
        [(&b"dpkg"[..], DPKG), (b"apt-get", APT)]
            .iter()
            .find(|(n, _)| fnv1a(n) == name_hash)
            .map(|&(_, class)| BinaryEntry { class, flags: 0 })
    }
    fn class(&self, class: u32) -> Option<ClassEntry> {
        let common = ClassEntry {
            bare_rule: WINDOW_RULE,
            bare_upgrade: UPGRADE_WINDOW,
            ..Default::default()
        };
        match class {
            DPKG => Some(common),
            APT => Some(ClassEntry {
                flags: CLASS_REMOVE_SUFFIX | CLASS_PATTERNS,
                verb_position: 1,
                ..common
            }),
            _ => None,
        }
    }
    fn word(&self, key: &WordKey) -> Option<WordEntry> {
        let words: &[(u32, &[u8], u32)] = &[
            (DPKG, b"-r", WORD_DESTRUCTIVE),
            (DPKG, b"--remove", WORD_DESTRUCTIVE),
            (DPKG, b"-i", WORD_UPGRADE),
            (DPKG, b"--pending", WORD_ALL_OBJECTS),
            (DPKG, b"--force-remove-protected", WORD_HITS_ALL),
            (APT, b"remove", WORD_DESTRUCTIVE),
            (APT, b"install", WORD_INSTALL),
            (APT, b"--reinstall", WORD_UPGRADE),
            (APT, b"upgrade", WORD_UPGRADE | WORD_BARE),
        ];
        words
            .iter()
            .find(|(c, w, _)| *c == key.class && fnv1a(w) == key.hash)
            .map(|&(_, _, flags)| WordEntry { flags })
    }
    fn object(&self, key: &ObjectKey) -> Option<ObjectEntry> {
        if key.kind != OBJECT_NAME {
            return None;
        }
        let object = PACKAGES.iter().position(|n| fnv1a(n) == key.hash)?;
        let window = object < 2;
        Some(ObjectEntry {
            rule: if window { WINDOW_RULE } else { ALLOW_RULE },
            object: object as u32,
            upgrade: if window {
                UPGRADE_WINDOW
            } else {
                UPGRADE_ALLOW
            },
            flags: self.flags[object],
        })
    }
}

const CONTAINERD: usize = 0;
const RUNC: usize = 1;
const BOTH: u32 = OBJECT_WINDOW_OPEN | OBJECT_REMOVAL_OPEN;

/// (verdict, reason, charged object name) under the given windows.
fn windowed(flags: [u32; 3], args: &[&str]) -> (Verdict, Reason, Option<&'static str>) {
    let mut line = CommandLine::EMPTY;
    for arg in args {
        line.push(arg.as_bytes(), &LENS);
    }
    let c = classify(&Windowed { flags }, &line);
    let object = PACKAGES
        .get(c.object as usize)
        .map(|n| core::str::from_utf8(n).unwrap());
    (c.verdict().unwrap(), c.reason().unwrap(), object)
}

#[test]
fn a_window_opens_installs_of_its_own_package_only() {
    use Reason::*;
    use Verdict::*;
    let closed = [0; 3];
    let mut runc = [0; 3];
    runc[RUNC] = OBJECT_WINDOW_OPEN;
    let reinstall = ["apt-get", "install", "--reinstall", "runc"];
    assert_eq!(
        windowed(closed, &reinstall),
        (Destructive, UpgradeOutsideWindow, Some("runc"))
    );
    assert_eq!(
        windowed(runc, &reinstall),
        (AllowedAsUpgrade, UpgradeInWindow, Some("runc"))
    );
    assert_eq!(
        windowed(
            runc,
            &["dpkg", "-i", "/root/debs/runc_1.1.5+ds1-1_amd64.deb"]
        ),
        (AllowedAsUpgrade, UpgradeInWindow, Some("runc"))
    );
    assert_eq!(
        windowed(runc, &["apt-get", "install", "runc:amd64"]),
        (AllowedAsUpgrade, UpgradeInWindow, Some("runc"))
    );
    // The other package's window is still closed: it decides, whatever the order.
    for args in [
        &["apt-get", "install", "--reinstall", "runc", "containerd"][..],
        &["apt-get", "install", "--reinstall", "containerd", "runc"],
        &[
            "dpkg",
            "-i",
            "containerd_1.6.20_amd64.deb",
            "runc_1.1.5_amd64.deb",
        ],
    ] {
        assert_eq!(
            windowed(runc, args),
            (Destructive, UpgradeOutsideWindow, Some("containerd")),
            "{args:?}"
        );
    }
    // An always-upgradable package next to a windowed one doesn't hide the window.
    assert_eq!(
        windowed(
            runc,
            &["apt-get", "install", "--reinstall", "hello", "runc"]
        ),
        (AllowedAsUpgrade, UpgradeInWindow, Some("runc"))
    );
    // A bare upgrade replaces packages the command line doesn't name.
    assert_eq!(
        windowed([OBJECT_WINDOW_OPEN; 3], &["apt-get", "upgrade"]),
        (Destructive, UpgradeOutsideWindow, None)
    );
    // An upgrade-only window refuses removal.
    assert_eq!(
        windowed(runc, &["dpkg", "-r", "runc"]),
        (Destructive, ProtectedObject, Some("runc"))
    );
    assert_eq!(
        windowed(runc, &["apt-get", "install", "runc-"]),
        (Destructive, RemoveSuffix, Some("runc"))
    );
}

#[test]
fn a_removal_window_opens_removal_of_its_own_package_only() {
    use Reason::*;
    use Verdict::*;
    let mut runc = [0; 3];
    runc[RUNC] = BOTH;
    for args in [
        &["dpkg", "-r", "runc"][..],
        &["dpkg", "--remove", "--force-depends", "runc:amd64"],
        &["apt-get", "remove", "runc"],
    ] {
        assert_eq!(
            windowed(runc, args),
            (AllowedAsUpgrade, RemovalInWindow, Some("runc")),
            "{args:?}"
        );
    }
    assert_eq!(
        windowed(runc, &["apt-get", "install", "runc-"]),
        (AllowedAsUpgrade, RemovalInWindow, Some("runc"))
    );
    // An always-allowed install next to a removal: the removal is what is reported.
    assert_eq!(
        windowed(runc, &["apt-get", "install", "hello", "runc-"]),
        (AllowedAsUpgrade, RemovalInWindow, Some("runc"))
    );
    // Any object without such a window is enough to refuse, wherever it stands.
    for args in [
        &["apt-get", "remove", "containerd", "runc"][..],
        &["apt-get", "remove", "runc", "containerd"],
        &["dpkg", "-r", "containerd"],
        &["apt-get", "remove", "runc", "hello"],
    ] {
        let (verdict, reason, object) = windowed(runc, args);
        assert_eq!(
            (verdict, reason),
            (Destructive, ProtectedObject),
            "{args:?}"
        );
        assert_ne!(object, Some("runc"), "{args:?}");
    }
    assert_eq!(
        windowed(runc, &["apt-get", "install", "runc-", "containerd-"]),
        (Destructive, RemoveSuffix, Some("containerd"))
    );
    // A removal next to an install the windows don't allow.
    assert_eq!(
        windowed(runc, &["apt-get", "install", "runc-", "containerd"]),
        (Destructive, UpgradeOutsideWindow, Some("containerd"))
    );
    // Words that reach beyond the named objects stay refused.
    assert_eq!(
        windowed(runc, &["dpkg", "--remove", "--pending", "runc"]),
        (Destructive, AllObjects, None)
    );
    assert_eq!(
        windowed(runc, &["apt-get", "remove", "run*"]),
        (Destructive, Pattern, None)
    );
    assert_eq!(
        windowed(runc, &["dpkg", "--force-remove-protected", "-r", "runc"]),
        (Destructive, HitsAll, None)
    );
    assert_eq!(
        windowed([BOTH; 3], &["dpkg", "--remove", "--pending"]),
        (Destructive, AllObjects, None)
    );
    // A removal window without an upgrade window (an `allow` group has no need of
    // one; a `deny` group gets none) leaves installs as the group says.
    let mut removal_only = [0; 3];
    removal_only[CONTAINERD] = OBJECT_REMOVAL_OPEN;
    assert_eq!(
        windowed(removal_only, &["dpkg", "-i", "containerd_1.6.20_amd64.deb"]),
        (Destructive, UpgradeOutsideWindow, Some("containerd"))
    );
    assert_eq!(
        windowed(removal_only, &["dpkg", "-r", "containerd"]),
        (AllowedAsUpgrade, RemovalInWindow, Some("containerd"))
    );
}

#[test]
fn a_long_removal_stays_refused_in_a_removal_window() {
    let mut line = CommandLine::EMPTY;
    for arg in ["dpkg", "-r"] {
        line.push(arg.as_bytes(), &LENS);
    }
    for _ in 0..MAX_ARGV_TOKENS {
        line.push(b"runc", &LENS);
    }
    line.push(b"containerd", &LENS);
    let c = classify(
        &Windowed {
            flags: [0, BOTH, 0],
        },
        &line,
    );
    assert_eq!(
        (c.verdict(), c.reason()),
        (Some(Verdict::Destructive), Some(Reason::ArgvOverflow))
    );
}

#[test]
fn actions_follow_rule_modes() {
    let mut c = Classification::new(Verdict::Destructive, Reason::BareVerb, 0);
    c.rule = 1;
    let enforce = RuleEntry {
        flags: crate::rule::RULE_ENFORCE,
        kind: 5,
    };
    assert_eq!(action(&c, Some(enforce)), Action::Block);
    assert_eq!(action(&c, Some(RuleEntry::default())), Action::Report);
    assert_eq!(action(&c, None), Action::Report);
}

/// dpkg, systemctl and apt-get as the production policy spells them, a dynamic loader and
/// a multi-call binary: enough for which file decides, and for systemctl's options and
/// target switches.
struct Identity;

const ID_DPKG: u32 = 0;
const ID_SYSTEMCTL: u32 = 1;
const ID_APT: u32 = 2;
const ID_IPT: u32 = 3;
const UNIT_RULE: u32 = 4;
const PACKAGE_RULE: u32 = 5;
const CHAIN_RULE: u32 = 6;

impl CommandTables for Identity {
    fn config(&self) -> CommandConfig {
        CommandConfig {
            prefix_lens: LENS,
            classes: 4,
            _pad: 0,
        }
    }
    fn binary(&self, name_hash: u64) -> Option<BinaryEntry> {
        let binaries: &[(&[u8], u32, u32)] = &[
            (b"dpkg", ID_DPKG, 0),
            (b"systemctl", ID_SYSTEMCTL, 0),
            (b"telinit", ID_SYSTEMCTL, 0),
            (b"apt-get", ID_APT, 0),
            (b"iptables", ID_IPT, 0),
            (b"xtables-nft-multi", 0, BINARY_MULTICALL),
            (b"busybox", 0, BINARY_MULTICALL),
            (b"ld-linux-x86-64.so.2", 0, BINARY_LOADER),
        ];
        binaries
            .iter()
            .find(|(n, _, _)| fnv1a(n) == name_hash)
            .map(|&(_, class, flags)| BinaryEntry { class, flags })
    }
    fn class(&self, class: u32) -> Option<ClassEntry> {
        match class {
            ID_DPKG => Some(ClassEntry {
                bare_rule: PACKAGE_RULE,
                bare_upgrade: UPGRADE_ALLOW,
                ..Default::default()
            }),
            ID_SYSTEMCTL => Some(ClassEntry {
                flags: CLASS_PATTERNS,
                verb_position: 1,
                bare_rule: UNIT_RULE,
                ..Default::default()
            }),
            ID_APT => Some(ClassEntry {
                flags: CLASS_REMOVE_SUFFIX | CLASS_PATTERNS,
                verb_position: 1,
                bare_rule: PACKAGE_RULE,
                bare_upgrade: UPGRADE_ALLOW,
                ..Default::default()
            }),
            ID_IPT => Some(ClassEntry {
                objects: OBJECTS_AFTER_VERB,
                bare_rule: CHAIN_RULE,
                ..Default::default()
            }),
            _ => None,
        }
    }
    fn word(&self, key: &WordKey) -> Option<WordEntry> {
        let words: &[(u32, &[u8], u32)] = &[
            (ID_DPKG, b"-r", WORD_DESTRUCTIVE),
            (ID_DPKG, b"--remove", WORD_DESTRUCTIVE),
            (ID_DPKG, b"-P", WORD_DESTRUCTIVE),
            (ID_DPKG, b"-i", WORD_UPGRADE),
            (ID_DPKG, b"--status-fd", WORD_TAKES_VALUE),
            (ID_SYSTEMCTL, b"stop", WORD_DESTRUCTIVE),
            (ID_SYSTEMCTL, b"mask", WORD_DESTRUCTIVE),
            (ID_SYSTEMCTL, b"--legend", WORD_TAKES_VALUE),
            (ID_SYSTEMCTL, b"-p", WORD_TAKES_VALUE),
            (ID_SYSTEMCTL, b"--kill-value", WORD_TAKES_VALUE),
            (ID_SYSTEMCTL, b"isolate", WORD_SWITCH),
            (ID_SYSTEMCTL, b"rescue", WORD_SWITCH),
            (ID_SYSTEMCTL, b"emergency", WORD_SWITCH),
            (ID_SYSTEMCTL, b"1", WORD_SWITCH),
            (ID_SYSTEMCTL, b"s", WORD_SWITCH),
            (ID_SYSTEMCTL, b"multi-user.target", WORD_SAFE_TARGET),
            (ID_SYSTEMCTL, b"default.target", WORD_SAFE_TARGET),
            (ID_SYSTEMCTL, b"graphical.target", WORD_SAFE_TARGET),
            (ID_APT, b"remove", WORD_DESTRUCTIVE),
            (ID_APT, b"install", WORD_INSTALL),
            (ID_IPT, b"-F", WORD_DESTRUCTIVE | WORD_BARE),
            (ID_IPT, b"-t", WORD_TAKES_VALUE),
        ];
        words
            .iter()
            .find(|(c, w, _)| *c == key.class && fnv1a(w) == key.hash)
            .map(|&(_, _, flags)| WordEntry { flags })
    }
    fn object(&self, key: &ObjectKey) -> Option<ObjectEntry> {
        let objects: &[(u32, u32, &[u8], u32)] = &[
            (ID_DPKG, OBJECT_NAME, b"containerd", PACKAGE_RULE),
            (ID_DPKG, OBJECT_NAME, b"docker-ce", PACKAGE_RULE),
            (ID_APT, OBJECT_NAME, b"containerd", PACKAGE_RULE),
            (ID_APT, OBJECT_NAME, b"docker-ce", PACKAGE_RULE),
            (ID_SYSTEMCTL, OBJECT_NAME, b"containerd.service", UNIT_RULE),
            (ID_SYSTEMCTL, OBJECT_NAME, b"containerd", UNIT_RULE),
            (ID_IPT, OBJECT_PREFIX, b"DOCKER", CHAIN_RULE),
        ];
        objects
            .iter()
            .find(|(c, k, n, _)| *c == key.class && *k == key.kind && fnv1a(n) == key.hash)
            .map(|&(_, _, _, rule)| ObjectEntry {
                rule,
                object: 0,
                upgrade: if rule == PACKAGE_RULE {
                    UPGRADE_ALLOW
                } else {
                    UPGRADE_NONE
                },
                flags: 0,
            })
    }
}

/// Classifies `args` as executed from the file at `path` (`bprm->filename`), whose inode
/// the policy bound to `exe_class`.
fn exec_file(path: &str, exe_class: u32, args: &[&str]) -> (Verdict, Reason) {
    let mut line = CommandLine::EMPTY;
    for arg in args {
        line.push(arg.as_bytes(), &LENS);
    }
    line.set_filename(path.as_bytes(), &LENS);
    line.exe_class = exe_class;
    let c = classify(&Identity, &line);
    (c.verdict().unwrap(), c.reason().unwrap())
}

/// As run from a shell: the file is argv[0].
fn id_run(args: &[&str]) -> (Verdict, Reason) {
    exec_file(args[0], NO_CLASS, args)
}

#[test]
fn package_names_match_in_any_case_as_dpkg_and_apt_read_them() {
    use Reason::*;
    use Verdict::*;
    for args in [
        &["dpkg", "--remove", "DOCKER-CE"][..],
        &["dpkg", "-r", "Containerd:AMD64"],
        &["apt-get", "remove", "Docker-CE"],
        &["apt-get", "install", "DOCKER-CE-"],
    ] {
        assert_eq!(id_run(args).0, Destructive, "{args:?}");
    }
    assert_eq!(
        id_run(&["dpkg", "-l", "DOCKER-CE"]),
        (Allowed, NoDestructiveVerb)
    );
    assert_eq!(
        id_run(&["dpkg", "-i", "/tmp/CONTAINERD_1.7_amd64.deb"]),
        (AllowedAsUpgrade, Upgrade)
    );
    // Chains are case-sensitive: iptables' `docker` is not Docker's `DOCKER`.
    assert_eq!(
        id_run(&["iptables", "-F", "docker"]),
        (Allowed, NoDestructiveVerb)
    );
    assert_eq!(
        id_run(&["iptables", "-F", "DOCKER"]),
        (Destructive, ProtectedObject)
    );
    // Options keep their case: dpkg's -p prints, -P purges.
    assert_eq!(
        id_run(&["dpkg", "-p", "containerd"]),
        (Allowed, NoDestructiveVerb)
    );
    assert_eq!(
        id_run(&["dpkg", "-P", "containerd"]),
        (Destructive, ProtectedObject)
    );
}

#[test]
fn the_executed_file_decides_over_argv0() {
    use Reason::*;
    use Verdict::*;
    // `exec -a apt-get /usr/bin/dpkg --remove containerd`: dpkg ignores its argv[0].
    let args = ["apt-get", "--remove", "containerd"];
    assert_eq!(
        exec_file("/usr/bin/dpkg", NO_CLASS, &args),
        (Destructive, ProtectedObject)
    );
    // Known by inode only (a hard link under another name).
    assert_eq!(
        exec_file("/tmp/x", ID_DPKG, &args),
        (Destructive, ProtectedObject)
    );
    // argv[0] naming a multi-call binary doesn't hand dpkg's arguments to an applet.
    assert_eq!(
        exec_file(
            "/usr/bin/dpkg",
            NO_CLASS,
            &["xtables-nft-multi", "iptables", "-r", "containerd"]
        ),
        (Destructive, ProtectedObject)
    );
    // A file of no class leaves argv[0] to decide, as before.
    assert_eq!(
        exec_file("/tmp/copy", NO_CLASS, &["dpkg", "-r", "containerd"]),
        (Destructive, ProtectedObject)
    );
    // A multi-call binary takes its personality from argv[0] or argv[1].
    assert_eq!(
        exec_file(
            "/usr/sbin/xtables-nft-multi",
            NO_CLASS,
            &["iptables", "-t", "nat", "-F", "DOCKER"]
        ),
        (Destructive, ProtectedObject)
    );
    assert_eq!(
        exec_file("/bin/busybox", NO_CLASS, &["busybox", "ls", "-F"]),
        (Allowed, NotGuarded)
    );
    // systemctl read as telinit is still systemctl's class.
    assert_eq!(
        exec_file("/usr/bin/systemctl", NO_CLASS, &["telinit", "1"]),
        (Destructive, StopsEverything)
    );
    // Neighbours: the same file under its own name.
    assert_eq!(
        exec_file("/usr/bin/dpkg", NO_CLASS, &["dpkg", "-l", "containerd"]),
        (Allowed, NoDestructiveVerb)
    );
    assert_eq!(
        exec_file(
            "/usr/bin/apt-get",
            ID_APT,
            &["apt-get", "install", "containerd"]
        ),
        (Allowed, Install)
    );
}

#[test]
fn a_program_run_by_the_dynamic_loader_is_classified_as_itself() {
    use Reason::*;
    use Verdict::*;
    let ld = "/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2";
    let run = |args: &[&str]| {
        let mut line = CommandLine::EMPTY;
        line.push(ld.as_bytes(), &LENS);
        for arg in args {
            line.push(arg.as_bytes(), &LENS);
        }
        line.set_filename(ld.as_bytes(), &LENS);
        let c = classify(&Identity, &line);
        (c.verdict().unwrap(), c.reason().unwrap())
    };
    assert_eq!(
        run(&["/usr/bin/dpkg", "--remove", "containerd"]),
        (Destructive, ProtectedObject)
    );
    assert_eq!(
        run(&[
            "--library-path",
            "/lib",
            "--argv0",
            "apt-get",
            "/usr/bin/dpkg",
            "-r",
            "containerd"
        ]),
        (Destructive, ProtectedObject)
    );
    assert_eq!(
        run(&["--inhibit-cache", "/usr/bin/dpkg", "-r", "DOCKER-CE"]),
        (Destructive, ProtectedObject)
    );
    assert_eq!(
        run(&[
            "/usr/sbin/xtables-nft-multi",
            "iptables",
            "-t",
            "nat",
            "-F",
            "DOCKER"
        ]),
        (Destructive, ProtectedObject)
    );
    assert_eq!(
        run(&["--argv0", "iptables", "/usr/sbin/xtables-nft-multi", "-F"]),
        (Destructive, BareVerb)
    );
    assert_eq!(run(&["/usr/sbin/iptables", "-F"]), (Destructive, BareVerb));
    // Neighbours: a reading command, and the loader listing a program's libraries.
    assert_eq!(
        run(&["/usr/bin/dpkg", "-l", "containerd"]),
        (Allowed, NoDestructiveVerb)
    );
    assert_eq!(
        run(&["--list", "/usr/bin/dpkg"]),
        (Allowed, NoDestructiveVerb)
    );
    assert_eq!(run(&["/bin/ls", "-r"]), (Allowed, NotGuarded));
    assert_eq!(run(&[]), (Allowed, NotGuarded));
}

#[test]
fn a_kernel_started_program_of_a_guarded_class_is_refused() {
    let mut line = CommandLine::EMPTY;
    line.set_filename(b"/usr/bin/dpkg", &LENS);
    line.flags = LINE_KERNEL_EXEC;
    let c = classify(&Identity, &line);
    assert_eq!(
        (c.verdict(), c.reason(), c.rule),
        (
            Some(Verdict::Destructive),
            Some(Reason::KernelExec),
            PACKAGE_RULE
        )
    );
    // Anything else the kernel starts (modprobe, a core dump handler, poweroff) is not
    // guarded.
    line.set_filename(b"/sbin/poweroff", &LENS);
    assert_eq!(
        classify(&Identity, &line).reason(),
        Some(Reason::NotGuarded)
    );
}

#[test]
fn systemctl_options_never_turn_a_value_into_the_verb() {
    use Reason::*;
    use Verdict::*;
    for args in [
        &["systemctl", "--legend", "no", "mask", "containerd.service"][..],
        &["systemctl", "--legend=no", "mask", "containerd.service"],
        &["systemctl", "-p", "MainPID", "stop", "containerd"],
        &["systemctl", "--kill-value", "3", "stop", "containerd"],
        // Options the class doesn't know, with and without a value.
        &["systemctl", "--unknown-option", "no", "mask", "containerd"],
        &["systemctl", "--no-pager", "stop", "containerd"],
        &["systemctl", "-q", "stop", "containerd"],
        &["systemctl", "-Z", "x", "stop", "containerd"],
        &["systemctl", "--a", "x", "--b", "y", "stop", "containerd"],
    ] {
        assert_eq!(id_run(args), (Destructive, ProtectedObject), "{args:?}");
    }
    for args in [
        &["systemctl", "status", "containerd"][..],
        &["systemctl", "restart", "containerd"],
        &["systemctl", "daemon-reload"],
        &["systemctl", "--legend", "no", "list-units"],
        &["systemctl", "--no-pager", "status", "containerd"],
        &["systemctl", "--legend", "no", "status", "stop"],
    ] {
        assert_eq!(id_run(args).0, Allowed, "{args:?}");
    }
}

#[test]
fn switching_to_a_target_without_the_runtime_stops_everything() {
    use Reason::*;
    use Verdict::*;
    for args in [
        &["systemctl", "isolate", "rescue.target"][..],
        &["systemctl", "isolate", "emergency.target"],
        &["systemctl", "isolate", "multi-user.target", "rescue.target"],
        &["systemctl", "isolate"],
        &["systemctl", "rescue"],
        &["systemctl", "--no-block", "emergency"],
        &["telinit", "1"],
        &["telinit", "s"],
    ] {
        assert_eq!(id_run(args), (Destructive, StopsEverything), "{args:?}");
    }
    for args in [
        &["systemctl", "isolate", "multi-user.target"][..],
        &["systemctl", "isolate", "graphical.target"],
        &["systemctl", "isolate", "default.target"],
        &["systemctl", "default"],
        &["systemctl", "reboot"],
        &["systemctl", "poweroff"],
        &["systemctl", "halt"],
        &["telinit", "3"],
        &["systemctl", "status", "rescue.target"],
    ] {
        assert_eq!(id_run(args).0, Allowed, "{args:?}");
    }
}

#[test]
fn a_protected_packages_prerm_is_refused_when_dpkg_runs_it_to_remove_the_package() {
    use Reason::*;
    use Verdict::*;
    let script = "/var/lib/dpkg/info/containerd.prerm";
    let class = EXE_REMOVAL_SCRIPT | 7;
    let removal = |args: &[&str]| {
        let mut line = CommandLine::EMPTY;
        for arg in args {
            line.push(arg.as_bytes(), &LENS);
        }
        line.set_filename(script.as_bytes(), &LENS);
        line.exe_class = class;
        classify(&Identity, &line)
    };
    // An install that conflicts with it, `dpkg -r`, `dpkg -P`.
    for args in [
        &[script, "remove", "in-favour", "other", "1.0"][..],
        &[script, "remove"],
        &[script, "purge"],
    ] {
        let c = removal(args);
        assert_eq!(
            (c.verdict(), c.reason()),
            (Some(Destructive), Some(RemovalScript))
        );
        assert_eq!((c.rule, c.verb_token), (7, 1), "{args:?}");
    }
    // An upgrade runs it too, and passes.
    for args in [
        &[script, "upgrade", "1.7.0"][..],
        &[script, "deconfigure", "in-favour", "x", "1.0"],
        &[script],
    ] {
        assert_eq!(
            exec_file(script, class, args),
            (Allowed, NotGuarded),
            "{args:?}"
        );
    }
    // Run where its argv cannot be read (a 32-bit caller's exec): judged as a removal.
    let mut unseen = CommandLine::EMPTY;
    unseen.flags = LINE_TRUNCATED;
    unseen.set_filename(script.as_bytes(), &LENS);
    unseen.exe_class = class;
    let c = classify(&Identity, &unseen);
    assert_eq!(
        (c.verdict(), c.reason(), c.rule),
        (Some(Destructive), Some(ArgvOverflow), 7)
    );
    assert_eq!(removal_script_rule(class), Some(7));
    assert_eq!(removal_script_rule(NO_CLASS), None);
    assert_eq!(removal_script_rule(3), None);
}
