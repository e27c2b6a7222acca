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
