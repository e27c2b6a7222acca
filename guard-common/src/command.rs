//! The exec-layer command classifier: one function, two callers.
//!
//! The kernel program captures argv at `sys_enter_execve`, reduces every argument to an
//! [`ArgToken`] (a handful of hashes plus the first bytes) with [`ArgToken::new`], and
//! decides at `bprm_check_security` with [`classify`]. `rtguard explain` and the degraded
//! (audit-only) mode build the same [`CommandLine`] from a real argv and call the same
//! [`classify`] over the same compiled tables. There is no second implementation of the
//! matching logic anywhere.
//!
//! Everything here is `no_std`, allocates nothing, and loops only over constant bounds, so
//! the verifier can prove termination. Table access goes through [`CommandTables`]: the
//! kernel implements it over BPF maps, userspace over in-memory maps filled with exactly
//! the key/value pairs the loader writes into those BPF maps.
//!
//! # How a command line is read
//!
//! 1. **Class.** The basename of argv[0] selects a command class (apt, dpkg, systemctl, …);
//!    if it is unknown, the basename of the executed file; if that is unknown too, the class
//!    the executable's inode was resolved to. A multi-call binary (busybox,
//!    xtables-nft-multi) hands the choice to argv[1].
//! 2. **Words.** Each argument is looked up as a word of that class: a verb (destructive,
//!    upgrade, report-only), a modifier (hits-all, all-objects, dry-run) or an option that
//!    consumes the next argument as its value (`iptables -t nat`, `dpkg --status-fd 23`),
//!    so that a value is never mistaken for an object. Short options may be clustered
//!    (`-vF`), as getopt allows.
//! 3. **Objects.** The remaining positional arguments name objects (packages, units,
//!    chains): any of them, only the one right after the verb (iptables), or only the last
//!    (nft). Each is matched by its whole hash, its stem, the stem of its basename and its
//!    literal prefixes, against the protected objects of the class.
//! 4. **Decision.** A destructive verb meeting a protected object, a bare verb that hits
//!    everything, a hits-all flag or a name pattern is [`Verdict::Destructive`]; an install
//!    or reinstall of a protected package is [`Verdict::AllowedAsUpgrade`] when its group
//!    allows upgrades, or allows them in a window and one is open for that package.
//! 5. **Maintenance windows** are per object ([`OBJECT_WINDOW_OPEN`],
//!    [`OBJECT_REMOVAL_OPEN`]): a destructive verb passes only when every protected object
//!    it names has a window open that allows removal, and it names them one by one (no
//!    bare verb, pattern or all-objects word).

use crate::{
    hash::{basename_step, fnv1a_step, short_option_hash, FNV_OFFSET},
    rule::{Action, RuleEntry, NO_RULE},
};

/// Arguments captured per exec, argv[0] included. A longer argv is flagged
/// [`LINE_TRUNCATED`]; on a guarded binary that counts as destructive unless what was seen
/// already rules it out (see [`Reason::ArgvOverflow`]).
pub const MAX_ARGV_TOKENS: usize = 64;
/// Bytes of one argument that are hashed. Longer arguments are flagged
/// [`TOKEN_TRUNCATED`]; protected names must be shorter (the policy compiler checks).
pub const MAX_TOKEN_BYTES: usize = 128;
/// Leading bytes of each argument kept verbatim, for short-option clusters (`-vF`) and
/// attached values (`-tnat`, `-FDOCKER`). Netfilter chain names are at most 28 bytes, so
/// `-X` plus any valid chain name fits.
pub const TOKEN_HEAD_BYTES: usize = 32;
/// Distinct literal-prefix lengths the tables may use for wildcard objects (`DOCKER*`).
pub const MAX_PREFIX_LENS: usize = 4;
/// Command classes per policy; a class is also a bit in [`CommandLine::trusted_classes`].
pub const MAX_CLASSES: u32 = 32;
/// Capacity of the binary-name map.
pub const MAX_COMMAND_BINARIES: u32 = 512;
/// Capacity of the word map (verbs, modifiers, value-taking options of every class).
pub const MAX_COMMAND_WORDS: u32 = 8192;
/// Capacity of the object map (protected names of every class, in every spelling).
pub const MAX_COMMAND_OBJECTS: u32 = 8192;

pub const NO_CLASS: u32 = u32::MAX;
pub const NO_TOKEN: u32 = u32::MAX;
pub const NO_OBJECT: u32 = u32::MAX;

// ArgToken::flags
/// Begins with `-` and is neither `-` nor `--`.
pub const TOKEN_OPTION: u32 = 1 << 0;
/// Begins with `--` and is longer than that.
pub const TOKEN_LONG_OPTION: u32 = 1 << 1;
/// Exactly `--`: everything after it is positional.
pub const TOKEN_END_OF_OPTIONS: u32 = 1 << 2;
/// Contains `=` (`--status-fd=23`, `runc=1.1.12-1`).
pub const TOKEN_HAS_VALUE: u32 = 1 << 3;
/// Contains a pattern character (`* ? [ ~ ^ $`): it may name objects it does not spell.
pub const TOKEN_PATTERN: u32 = 1 << 4;
/// A non-option ending in `-` or `_`: apt's and aptitude's "remove this package" marker.
pub const TOKEN_REMOVE_SUFFIX: u32 = 1 << 5;
/// Longer than [`MAX_TOKEN_BYTES`]; the hashes cover only the first bytes.
pub const TOKEN_TRUNCATED: u32 = 1 << 6;
/// Contains white space or `;` (nft joins its arguments into one statement).
pub const TOKEN_HAS_SPACE: u32 = 1 << 7;

// CommandLine::flags
/// argv had more than [`MAX_ARGV_TOKENS`] arguments.
pub const LINE_TRUNCATED: u32 = 1 << 0;

// WordEntry::flags
/// Destroys the objects it names (`remove`, `-r`, `stop`, `-X`).
pub const WORD_DESTRUCTIVE: u32 = 1 << 0;
/// With DESTRUCTIVE or UPGRADE: naming no object means every object (`iptables -F`,
/// `apt-get upgrade`).
pub const WORD_BARE: u32 = 1 << 1;
/// Installs or replaces the packages it names (`install`, `--reinstall`, `dpkg -i`).
pub const WORD_UPGRADE: u32 = 1 << 2;
/// Destructive on its own, whatever else the line says (`--force-remove-protected`).
pub const WORD_HITS_ALL: u32 = 1 << 3;
/// Names every object (`dpkg -a`, `nft … ruleset`).
pub const WORD_ALL_OBJECTS: u32 = 1 << 4;
/// Makes the command harmless (`--simulate`, `--no-act`, `iptables-restore --noflush`).
pub const WORD_DRY_RUN: u32 = 1 << 5;
/// Its effect depends on input the exec layer cannot see (`nft -f FILE`): reported, never
/// blocked.
pub const WORD_REPORT_ONLY: u32 = 1 << 6;
/// Consumes the next argument as its value unless the value is attached.
pub const WORD_TAKES_VALUE: u32 = 1 << 7;
/// Installs the packages it names (`apt-get install`), which replaces files only when the
/// package is already there: allowed where the group allows upgrades, treated as an
/// upgrade where it doesn't.
pub const WORD_INSTALL: u32 = 1 << 8;

const VERB_FLAGS: u32 = WORD_DESTRUCTIVE | WORD_UPGRADE | WORD_INSTALL | WORD_REPORT_ONLY;
const MODIFIER_FLAGS: u32 = WORD_HITS_ALL | WORD_ALL_OBJECTS | WORD_DRY_RUN;

// ClassEntry::flags
/// A trailing `-` or `_` on a package name in an install means "remove" (apt, aptitude).
pub const CLASS_REMOVE_SUFFIX: u32 = 1 << 0;
/// Object arguments may be patterns (`apt-get remove 'containerd*'`,
/// `systemctl stop 'docker*'`); a pattern under a destructive verb hits everything.
pub const CLASS_PATTERNS: u32 = 1 << 1;

// ClassEntry::objects
/// Every positional argument other than the verb names an object (apt, dpkg, systemctl).
pub const OBJECTS_ANY: u32 = 0;
/// Only the argument right after the verb, or attached to it (`iptables -F DOCKER`).
pub const OBJECTS_AFTER_VERB: u32 = 1;
/// Only the last positional argument (`nft delete chain ip filter DOCKER`).
pub const OBJECTS_LAST: u32 = 2;

// BinaryEntry::flags
/// A multi-call binary: argv[1] names the applet (`xtables-nft-multi iptables -F`).
pub const BINARY_MULTICALL: u32 = 1 << 0;

// ObjectKey::kind
/// Matched by an argument's whole hash, stem or basename stem.
pub const OBJECT_NAME: u32 = 1;
/// Matched by an argument's literal prefix (a policy name ending in `*`).
pub const OBJECT_PREFIX: u32 = 2;

// ObjectEntry::upgrade
pub const UPGRADE_NONE: u32 = 0;
pub const UPGRADE_ALLOW: u32 = 1;
pub const UPGRADE_WINDOW: u32 = 2;
pub const UPGRADE_DENY: u32 = 3;

// ObjectEntry::flags: what the maintenance windows open now allow. Userspace sets them per
// object (a window for runc must not open containerd) and rewrites the entry when a window
// opens, closes or expires.
/// A window is open for this package and its group says `upgrade = "window"`: installs,
/// upgrades and reinstalls of it pass ([`Reason::UpgradeInWindow`]).
pub const OBJECT_WINDOW_OPEN: u32 = 1 << 0;
/// A window that allows removal is open for this object (the package, or a unit a package
/// with such a window ships): destructive verbs naming it pass, reported
/// ([`Reason::RemovalInWindow`]).
pub const OBJECT_REMOVAL_OPEN: u32 = 1 << 1;

/// One argv argument, reduced to what the classifier needs. The kernel fills it while it
/// copies the argument; userspace with the same function.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ArgToken {
    /// FNV-1a of the whole argument (up to [`MAX_TOKEN_BYTES`]).
    pub whole: u64,
    /// FNV-1a of the argument up to its first `:`, `=`, `/` or `_`, or without a trailing
    /// `-` when it has none of those: `containerd.io:amd64`, `runc=1.1.12-1`,
    /// `containerd/bookworm`, `containerd-` and `--status-fd=23` all reduce to their name.
    pub stem: u64,
    /// FNV-1a of the part after the last `/` (`/usr/sbin/iptables` → `iptables`).
    pub base: u64,
    /// FNV-1a of that basename up to its first `:`, `=` or `_`, so a package file
    /// `/var/cache/apt/archives/containerd.io_1.7.27-1_amd64.deb` reduces to its package.
    pub base_stem: u64,
    /// FNV-1a of the first `CommandConfig::prefix_lens[i]` bytes; 0 when the argument is
    /// shorter or the length is unused.
    pub prefix: [u64; MAX_PREFIX_LENS],
    /// The first bytes verbatim, zero-padded.
    pub head: [u8; TOKEN_HEAD_BYTES],
    /// Bytes hashed (at most [`MAX_TOKEN_BYTES`]).
    pub len: u32,
    /// `TOKEN_*` bits.
    pub flags: u32,
}

impl ArgToken {
    pub const EMPTY: Self = Self {
        whole: FNV_OFFSET,
        stem: FNV_OFFSET,
        base: FNV_OFFSET,
        base_stem: FNV_OFFSET,
        prefix: [0; MAX_PREFIX_LENS],
        head: [0; TOKEN_HEAD_BYTES],
        len: 0,
        flags: 0,
    };

    /// Reduces one argument. `bytes` stops at its end or at the first NUL, whichever comes
    /// first; `truncated` says the caller could not copy all of it. Anything past
    /// [`MAX_TOKEN_BYTES`] is ignored and flagged.
    ///
    /// This is [`TokenHasher::byte`] per byte and [`TokenHasher::finish`]; the kernel makes
    /// the same calls, one byte per call of a BPF function.
    pub fn new(bytes: &[u8], truncated: bool, prefix_lens: &[u32; MAX_PREFIX_LENS]) -> Self {
        let mut hasher = TokenHasher::START;
        let mut ended = false;
        for i in 0..MAX_TOKEN_BYTES {
            let more = match bytes.get(i) {
                Some(&b) => hasher.byte(i, b, prefix_lens),
                None => false,
            };
            if !more {
                ended = true;
                break;
            }
        }
        let longer = !ended && bytes.get(MAX_TOKEN_BYTES).is_some_and(|&b| b != 0);
        hasher.finish(truncated || longer)
    }
}

/// [`ArgToken::new`] one byte at a time: the state between bytes.
#[derive(Clone, Copy, Debug)]
pub struct TokenHasher {
    token: ArgToken,
    stem_open: bool,
    stem_before_last: u64,
    base_stem_open: bool,
    first: u8,
    second: u8,
    last: u8,
    len: usize,
}

impl TokenHasher {
    pub const START: Self = Self {
        token: ArgToken::EMPTY,
        stem_open: true,
        stem_before_last: FNV_OFFSET,
        base_stem_open: true,
        first: 0,
        second: 0,
        last: 0,
        len: 0,
    };

    /// Folds in byte `i` (callers go from 0 upwards, below [`MAX_TOKEN_BYTES`]). Returns
    /// false, folding nothing, at the terminating NUL.
    pub fn byte(&mut self, i: usize, b: u8, prefix_lens: &[u32; MAX_PREFIX_LENS]) -> bool {
        if b == 0 {
            return false;
        }
        let t = &mut self.token;
        t.whole = fnv1a_step(t.whole, b);
        if self.stem_open {
            if matches!(b, b':' | b'=' | b'/' | b'_') {
                self.stem_open = false;
            } else {
                self.stem_before_last = t.stem;
                t.stem = fnv1a_step(t.stem, b);
            }
        }
        t.base = basename_step(t.base, b);
        if b == b'/' {
            t.base_stem = FNV_OFFSET;
            self.base_stem_open = true;
        } else {
            if self.base_stem_open {
                if matches!(b, b':' | b'=' | b'_') {
                    self.base_stem_open = false;
                } else {
                    t.base_stem = fnv1a_step(t.base_stem, b);
                }
            }
        }
        if let Some(slot) = t.head.get_mut(i) {
            *slot = b;
        }
        for (len, slot) in prefix_lens.iter().zip(t.prefix.iter_mut()) {
            if *len as usize == i + 1 {
                *slot = t.whole;
            }
        }
        match b {
            b'=' => t.flags |= TOKEN_HAS_VALUE,
            b'*' | b'?' | b'[' | b'~' | b'^' | b'$' => t.flags |= TOKEN_PATTERN,
            b' ' | b'\t' | b'\n' | b';' => t.flags |= TOKEN_HAS_SPACE,
            _ => {}
        }
        if i == 0 {
            self.first = b;
        } else if i == 1 {
            self.second = b;
        }
        self.last = b;
        self.len = i + 1;
        true
    }

    /// The token; `truncated`: the argument went on past what was folded in.
    pub fn finish(&self, truncated: bool) -> ArgToken {
        let mut token = self.token;
        let len = self.len;
        let mut flags = token.flags;
        if truncated {
            flags |= TOKEN_TRUNCATED;
        }
        if self.first == b'-' {
            if len == 2 && self.second == b'-' {
                flags |= TOKEN_END_OF_OPTIONS;
            } else if len >= 2 {
                flags |= TOKEN_OPTION;
                if self.second == b'-' {
                    flags |= TOKEN_LONG_OPTION;
                }
            }
        } else if len > 1 && (self.last == b'-' || self.last == b'_') {
            flags |= TOKEN_REMOVE_SUFFIX;
        }
        if self.stem_open && self.last == b'-' && len > 1 {
            token.stem = self.stem_before_last;
        }
        token.len = len as u32;
        token.flags = flags;
        token
    }
}

/// Everything the classifier knows about one exec.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct CommandLine {
    /// argv[0], argv[1], …; only the first `count` are meaningful.
    pub tokens: [ArgToken; MAX_ARGV_TOKENS],
    pub count: u32,
    /// `LINE_*` bits.
    pub flags: u32,
    /// FNV-1a of the basename of the executed path (`bprm->filename`).
    pub filename_base: u64,
    /// The class the executable's inode was resolved to, or [`NO_CLASS`].
    pub exe_class: u32,
    /// Bit `c` set: the calling executable is a trusted caller of class `c` (dockerd may
    /// rewrite its own iptables chains).
    pub trusted_classes: u32,
}

impl CommandLine {
    pub const EMPTY: Self = Self {
        tokens: [ArgToken::EMPTY; MAX_ARGV_TOKENS],
        count: 0,
        flags: 0,
        filename_base: FNV_OFFSET,
        exe_class: NO_CLASS,
        trusted_classes: 0,
    };

    /// Appends one argument; sets [`LINE_TRUNCATED`] once the bound is reached.
    pub fn push(&mut self, arg: &[u8], prefix_lens: &[u32; MAX_PREFIX_LENS]) {
        match self.tokens.get_mut(self.count as usize) {
            Some(slot) => {
                *slot = ArgToken::new(arg, arg.len() > MAX_TOKEN_BYTES, prefix_lens);
                self.count += 1;
            }
            None => self.flags |= LINE_TRUNCATED,
        }
    }

    /// Records the executed path; only its basename matters.
    pub fn set_filename(&mut self, path: &[u8], prefix_lens: &[u32; MAX_PREFIX_LENS]) {
        self.filename_base = ArgToken::new(path, false, prefix_lens).base;
    }
}

/// Table-wide parameters.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CommandConfig {
    /// Literal-prefix lengths in use, 0 for an unused slot. The kernel snapshots each
    /// argument's hash after this many bytes.
    pub prefix_lens: [u32; MAX_PREFIX_LENS],
    /// Number of classes (ids 0..classes).
    pub classes: u32,
    pub _pad: u32,
}

/// A binary name → its class.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BinaryEntry {
    pub class: u32,
    /// `BINARY_*` bits.
    pub flags: u32,
}

/// One command class, indexed by class id.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ClassEntry {
    /// `CLASS_*` bits.
    pub flags: u32,
    /// 0: verbs are options anywhere (dpkg, iptables). N: the Nth positional argument is the
    /// verb (1 for apt and systemctl, 2 for `service NAME stop`).
    pub verb_position: u32,
    /// `OBJECTS_*`: which positional arguments name objects.
    pub objects: u32,
    /// `WORD_*` verb bits assumed when no verb word appears (iptables-restore replaces
    /// tables unless told otherwise).
    pub without_verb: u32,
    /// Rule charged when the command hits every object of the class (a bare verb, a
    /// hits-all flag, a pattern); [`NO_RULE`] when nothing of this class is protected.
    pub bare_rule: u32,
    /// Strictest `UPGRADE_*` among the packages this class names, for bare upgrades.
    pub bare_upgrade: u32,
}

/// Key of the word map.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct WordKey {
    pub hash: u64,
    pub class: u32,
    pub _pad: u32,
}

impl WordKey {
    pub const fn new(class: u32, hash: u64) -> Self {
        Self {
            hash,
            class,
            _pad: 0,
        }
    }
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WordEntry {
    /// `WORD_*` bits.
    pub flags: u32,
}

/// Key of the object map.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectKey {
    pub hash: u64,
    pub class: u32,
    /// `OBJECT_NAME` or `OBJECT_PREFIX`.
    pub kind: u32,
}

impl ObjectKey {
    pub const fn new(class: u32, kind: u32, hash: u64) -> Self {
        Self { hash, class, kind }
    }
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ObjectEntry {
    /// The rule that protects the object.
    pub rule: u32,
    /// Index of the object's name in userspace's object list, for explanations and events.
    pub object: u32,
    /// `UPGRADE_*`: what an install of this package is.
    pub upgrade: u32,
    /// `OBJECT_*` bits.
    pub flags: u32,
}

/// Read access to the compiled tables. The kernel implements it over BPF maps, userspace
/// over in-memory maps with the same keys and values.
pub trait CommandTables {
    fn config(&self) -> CommandConfig;
    fn binary(&self, name_hash: u64) -> Option<BinaryEntry>;
    fn class(&self, class: u32) -> Option<ClassEntry>;
    fn word(&self, key: &WordKey) -> Option<WordEntry>;
    fn object(&self, key: &ObjectKey) -> Option<ObjectEntry>;

    /// [`ArgToken::new`] for a value attached to an option (`-FDOCKER`, `-tnat`). The
    /// kernel overrides it to hash one byte per BPF function call.
    fn attached_token(
        &self,
        bytes: &[u8],
        truncated: bool,
        prefix_lens: &[u32; MAX_PREFIX_LENS],
    ) -> ArgToken {
        ArgToken::new(bytes, truncated, prefix_lens)
    }
}

/// What the classifier concluded.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Allowed = 0,
    /// Refused in enforce mode, reported in audit mode.
    Destructive = 1,
    /// An install, reinstall or upgrade of a protected package its group lets through.
    AllowedAsUpgrade = 2,
    /// Allowed but always reported: its effect depends on input exec cannot see.
    ReportOnly = 3,
}

impl Verdict {
    pub const fn from_u32(raw: u32) -> Option<Self> {
        match raw {
            0 => Some(Self::Allowed),
            1 => Some(Self::Destructive),
            2 => Some(Self::AllowedAsUpgrade),
            3 => Some(Self::ReportOnly),
            _ => None,
        }
    }

    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Allowed => "allowed",
            Self::Destructive => "destructive",
            Self::AllowedAsUpgrade => "allowed-as-upgrade",
            Self::ReportOnly => "report-only",
        }
    }
}

/// Why the classifier concluded what it did.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    /// The binary belongs to no command class.
    NotGuarded = 1,
    /// No verb that destroys or replaces anything protected.
    NoDestructiveVerb = 2,
    /// A dry-run flag makes the command harmless.
    DryRun = 3,
    /// A destructive verb names a protected object.
    ProtectedObject = 4,
    /// A destructive verb names no object and so hits every one (`iptables -F`).
    BareVerb = 5,
    /// A destructive verb with an all-objects word (`dpkg -r -a`, `nft flush ruleset`).
    AllObjects = 6,
    /// A flag that is destructive on its own (`dpkg --force-remove-protected`).
    HitsAll = 7,
    /// A destructive verb with a name pattern that may match protected objects.
    Pattern = 8,
    /// argv was longer than [`MAX_ARGV_TOKENS`] or an option cluster longer than
    /// [`TOKEN_HEAD_BYTES`], and what was seen does not rule out a destructive reading.
    ArgvOverflow = 9,
    /// An install that removes a protected package through apt's `pkg-` suffix.
    RemoveSuffix = 10,
    /// Replaces a protected package whose group allows upgrades.
    Upgrade = 11,
    /// Replaces a protected package whose group allows upgrades in a window, and one is open.
    UpgradeInWindow = 12,
    /// Replaces a protected package whose group allows upgrades only in a window; none is open.
    UpgradeOutsideWindow = 13,
    /// Replaces a protected package whose group denies upgrades.
    UpgradeDenied = 14,
    /// The command's effect depends on input exec cannot see (`iptables-restore`, `nft -f`).
    ContentNotVisible = 15,
    /// Destructive, but the caller is a trusted caller of the class (the runtime itself).
    TrustedCaller = 16,
    /// Installs a protected package whose group allows upgrades: nothing is lost.
    Install = 17,
    /// Removes (or stops) protected objects, every one of them covered by an open
    /// maintenance window that allows removal.
    RemovalInWindow = 18,
}

impl Reason {
    pub const fn from_u32(raw: u32) -> Option<Self> {
        match raw {
            1 => Some(Self::NotGuarded),
            2 => Some(Self::NoDestructiveVerb),
            3 => Some(Self::DryRun),
            4 => Some(Self::ProtectedObject),
            5 => Some(Self::BareVerb),
            6 => Some(Self::AllObjects),
            7 => Some(Self::HitsAll),
            8 => Some(Self::Pattern),
            9 => Some(Self::ArgvOverflow),
            10 => Some(Self::RemoveSuffix),
            11 => Some(Self::Upgrade),
            12 => Some(Self::UpgradeInWindow),
            13 => Some(Self::UpgradeOutsideWindow),
            14 => Some(Self::UpgradeDenied),
            15 => Some(Self::ContentNotVisible),
            16 => Some(Self::TrustedCaller),
            17 => Some(Self::Install),
            18 => Some(Self::RemovalInWindow),
            _ => None,
        }
    }

    pub const fn as_str(self) -> &'static str {
        match self {
            Self::NotGuarded => "not-guarded",
            Self::NoDestructiveVerb => "no-destructive-verb",
            Self::DryRun => "dry-run",
            Self::ProtectedObject => "protected-object",
            Self::BareVerb => "bare-verb",
            Self::AllObjects => "all-objects",
            Self::HitsAll => "hits-all",
            Self::Pattern => "pattern",
            Self::ArgvOverflow => "argv-overflow",
            Self::RemoveSuffix => "remove-suffix",
            Self::Upgrade => "upgrade",
            Self::UpgradeInWindow => "upgrade-in-window",
            Self::UpgradeOutsideWindow => "upgrade-outside-window",
            Self::UpgradeDenied => "upgrade-denied",
            Self::ContentNotVisible => "content-not-visible",
            Self::TrustedCaller => "trusted-caller",
            Self::Install => "install",
            Self::RemovalInWindow => "removal-in-window",
        }
    }
}

/// The classifier's answer, small enough for an event record.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Classification {
    /// [`Verdict`] as u32.
    pub verdict: u32,
    /// [`Reason`] as u32.
    pub reason: u32,
    /// Rule charged, or [`NO_RULE`].
    pub rule: u32,
    /// Class id, or [`NO_CLASS`].
    pub class: u32,
    /// argv index of the deciding verb or flag, or [`NO_TOKEN`].
    pub verb_token: u32,
    /// argv index of the deciding object, or [`NO_TOKEN`].
    pub object_token: u32,
    /// Index of the matched object's name in userspace's object list, or [`NO_OBJECT`].
    pub object: u32,
    pub _pad: u32,
}

impl Classification {
    const fn new(verdict: Verdict, reason: Reason, class: u32) -> Self {
        Self {
            verdict: verdict as u32,
            reason: reason as u32,
            rule: NO_RULE,
            class,
            verb_token: NO_TOKEN,
            object_token: NO_TOKEN,
            object: NO_OBJECT,
            _pad: 0,
        }
    }

    pub const fn verdict(&self) -> Option<Verdict> {
        Verdict::from_u32(self.verdict)
    }

    pub const fn reason(&self) -> Option<Reason> {
        Reason::from_u32(self.reason)
    }
}

/// What to do with a classified exec, given the charged rule's table entry (`None` when the
/// rule table has no such id). Destructive commands are blocked only when the rule
/// enforces; nothing is ever blocked without a rule.
pub fn action(classification: &Classification, rule: Option<RuleEntry>) -> Action {
    match classification.verdict() {
        Some(Verdict::Destructive) => match rule {
            Some(entry) if entry.enforces() => Action::Block,
            _ => Action::Report,
        },
        Some(Verdict::ReportOnly) => Action::Report,
        Some(Verdict::AllowedAsUpgrade) => Action::AllowLogged,
        Some(Verdict::Allowed) | None => Action::Allow,
    }
}

/// A protected object an argument matched.
#[derive(Clone, Copy)]
struct Hit {
    entry: ObjectEntry,
    token: u32,
}

/// Scan state: what the arguments seen so far say.
struct Scan {
    class: u32,
    entry: ClassEntry,
    prefix_lens: [u32; MAX_PREFIX_LENS],
    verbs: u32,
    bare_verbs: u32,
    modifiers: u32,
    verb_token: u32,
    destructive_token: u32,
    upgrade_token: u32,
    install_token: u32,
    report_token: u32,
    hits_all_token: u32,
    all_objects_token: u32,
    bare_token: u32,
    bare_pending: bool,
    bare_hit: bool,
    objects_named: u32,
    /// The first protected object named that no removal window covers.
    first_hit: Option<Hit>,
    /// The first protected object named that a removal window covers.
    removal_hit: Option<Hit>,
    /// Among the objects an install or upgrade would put in place (not apt's `pkg-`
    /// removals), the one whose group is strictest about it.
    strictest: Option<Hit>,
    /// The first `pkg-` removal in an install that no removal window covers.
    suffix_hit: Option<Hit>,
    /// The first `pkg-` removal in an install that a removal window covers.
    suffix_removal: Option<Hit>,
    pattern_token: u32,
    unparsed: bool,
}

impl Scan {
    fn word(&mut self, flags: u32, token: u32) {
        let verb = flags & VERB_FLAGS;
        if verb != 0 {
            self.verbs |= verb;
            if flags & WORD_BARE != 0 {
                self.bare_verbs |= verb;
            }
            if self.verb_token == NO_TOKEN {
                self.verb_token = token;
            }
            if verb & WORD_DESTRUCTIVE != 0 && self.destructive_token == NO_TOKEN {
                self.destructive_token = token;
            }
            if verb & WORD_UPGRADE != 0 && self.upgrade_token == NO_TOKEN {
                self.upgrade_token = token;
            }
            if verb & WORD_INSTALL != 0 && self.install_token == NO_TOKEN {
                self.install_token = token;
            }
            if verb & WORD_REPORT_ONLY != 0 && self.report_token == NO_TOKEN {
                self.report_token = token;
            }
        }
        self.modifiers |= flags & MODIFIER_FLAGS;
        if flags & WORD_HITS_ALL != 0 && self.hits_all_token == NO_TOKEN {
            self.hits_all_token = token;
        }
        if flags & WORD_ALL_OBJECTS != 0 && self.all_objects_token == NO_TOKEN {
            self.all_objects_token = token;
        }
    }

    /// After a verb in an OBJECTS_AFTER_VERB class, the next argument names its object.
    fn expect_object(&mut self, flags: u32, token: u32) -> bool {
        if self.entry.objects != OBJECTS_AFTER_VERB || flags & VERB_FLAGS == 0 {
            return false;
        }
        if flags & WORD_BARE != 0 {
            self.bare_pending = true;
            self.bare_token = token;
        }
        true
    }

    fn candidate<T: CommandTables + ?Sized>(&mut self, tables: &T, token: &ArgToken, index: u32) {
        self.objects_named += 1;
        if token.flags & TOKEN_PATTERN != 0
            && self.entry.flags & CLASS_PATTERNS != 0
            && self.pattern_token == NO_TOKEN
        {
            self.pattern_token = index;
        }
        let Some(entry) = lookup_object(tables, self.class, token, &self.prefix_lens) else {
            return;
        };
        let hit = Hit {
            entry,
            token: index,
        };
        // Under a destructive verb every object named is destroyed: one a removal window
        // does not cover is enough to refuse the command.
        let covered = entry.flags & OBJECT_REMOVAL_OPEN != 0;
        if !covered && self.first_hit.is_none() {
            self.first_hit = Some(hit);
        }
        if covered && self.removal_hit.is_none() {
            self.removal_hit = Some(hit);
        }
        if token.flags & TOKEN_REMOVE_SUFFIX != 0 && self.entry.flags & CLASS_REMOVE_SUFFIX != 0 {
            // `apt-get install containerd-` removes containerd: never an install of it.
            if !covered && self.suffix_hit.is_none() {
                self.suffix_hit = Some(hit);
            }
            if covered && self.suffix_removal.is_none() {
                self.suffix_removal = Some(hit);
            }
            return;
        }
        match self.strictest {
            Some(s) if upgrade_rank(&s.entry) >= upgrade_rank(&entry) => {}
            _ => self.strictest = Some(hit),
        }
    }
}

/// How strict a package's group is about replacing it, with the object's open windows
/// taken into account: of several packages an install names, the strictest decides.
const fn upgrade_rank(entry: &ObjectEntry) -> u32 {
    match entry.upgrade {
        UPGRADE_ALLOW => 1,
        UPGRADE_WINDOW if entry.flags & OBJECT_WINDOW_OPEN != 0 => 2,
        UPGRADE_WINDOW => 3,
        UPGRADE_DENY => 4,
        _ => 0,
    }
}

fn lookup_object<T: CommandTables + ?Sized>(
    tables: &T,
    class: u32,
    token: &ArgToken,
    prefix_lens: &[u32; MAX_PREFIX_LENS],
) -> Option<ObjectEntry> {
    let names = [token.whole, token.stem, token.base_stem];
    for (i, &hash) in names.iter().enumerate() {
        // The stems usually equal the whole hash; don't look the same key up twice.
        if i > 0 && (hash == token.whole || (i == 2 && hash == token.stem)) {
            continue;
        }
        if let Some(entry) = tables.object(&ObjectKey::new(class, OBJECT_NAME, hash)) {
            return Some(entry);
        }
    }
    for (&len, &hash) in prefix_lens.iter().zip(token.prefix.iter()) {
        if len == 0 || hash == 0 {
            continue;
        }
        if let Some(entry) = tables.object(&ObjectKey::new(class, OBJECT_PREFIX, hash)) {
            return Some(entry);
        }
    }
    None
}

/// Finds the class of an exec and where its arguments start.
fn find_class<T: CommandTables + ?Sized>(tables: &T, line: &CommandLine) -> (u32, usize) {
    let count = line.count as usize;
    if count > 0 {
        if let Some(first) = tables.binary(line.tokens[0].base) {
            if first.flags & BINARY_MULTICALL == 0 {
                return (first.class, 1);
            }
            if count > 1 {
                if let Some(applet) = tables.binary(line.tokens[1].base) {
                    if applet.flags & BINARY_MULTICALL == 0 {
                        return (applet.class, 2);
                    }
                }
            }
            return (NO_CLASS, 0);
        }
    }
    if let Some(file) = tables.binary(line.filename_base) {
        if file.flags & BINARY_MULTICALL == 0 {
            return (file.class, 1);
        }
    }
    (line.exe_class, 1)
}

/// Classifies one exec against the compiled tables. Never panics, allocates nothing, and
/// every loop has a constant bound.
///
/// This is [`Classifier::start`], one [`Classifier::step`] per argument and
/// [`Classifier::finish`]. The kernel makes the same calls, each from its own BPF
/// function, so the verifier checks the per-argument work once rather than once per
/// argument.
pub fn classify<T: CommandTables + ?Sized>(tables: &T, line: &CommandLine) -> Classification {
    let mut classifier = Classifier::IDLE;
    if let Some(done) = classifier.start(tables, line) {
        return done;
    }
    for i in 0..MAX_ARGV_TOKENS {
        if !classifier.step(tables, line, i) {
            break;
        }
    }
    classifier.finish(tables, line)
}

/// The classifier between arguments: what the arguments seen so far say, and where the
/// parse stands. Kernel and userspace drive it the same way (see [`classify`]).
pub struct Classifier {
    scan: Scan,
    start: usize,
    count: usize,
    skip_next: bool,
    options_done: bool,
    positional: u32,
    expecting_object: bool,
    last_candidate: u32,
}

impl Classifier {
    pub const IDLE: Self = Self {
        scan: Scan {
            class: NO_CLASS,
            entry: ClassEntry {
                flags: 0,
                verb_position: 0,
                objects: 0,
                without_verb: 0,
                bare_rule: NO_RULE,
                bare_upgrade: 0,
            },
            prefix_lens: [0; MAX_PREFIX_LENS],
            verbs: 0,
            bare_verbs: 0,
            modifiers: 0,
            verb_token: NO_TOKEN,
            destructive_token: NO_TOKEN,
            upgrade_token: NO_TOKEN,
            install_token: NO_TOKEN,
            report_token: NO_TOKEN,
            hits_all_token: NO_TOKEN,
            all_objects_token: NO_TOKEN,
            bare_token: NO_TOKEN,
            bare_pending: false,
            bare_hit: false,
            objects_named: 0,
            first_hit: None,
            removal_hit: None,
            strictest: None,
            suffix_hit: None,
            suffix_removal: None,
            pattern_token: NO_TOKEN,
            unparsed: false,
        },
        start: 0,
        count: 0,
        skip_next: false,
        options_done: false,
        positional: 0,
        expecting_object: false,
        last_candidate: NO_TOKEN,
    };

    /// Selects the class and resets the state. Returns the final answer when there is
    /// nothing to scan (the binary belongs to no class).
    pub fn start<T: CommandTables + ?Sized>(
        &mut self,
        tables: &T,
        line: &CommandLine,
    ) -> Option<Classification> {
        *self = Self::IDLE;
        let (class_id, start) = find_class(tables, line);
        let entry = match (class_id != NO_CLASS).then(|| tables.class(class_id)) {
            Some(Some(entry)) => entry,
            _ => {
                return Some(Classification::new(
                    Verdict::Allowed,
                    Reason::NotGuarded,
                    NO_CLASS,
                ))
            }
        };
        self.scan.class = class_id;
        self.scan.entry = entry;
        self.scan.prefix_lens = tables.config().prefix_lens;
        self.start = start;
        self.count = if (line.count as usize) < MAX_ARGV_TOKENS {
            line.count as usize
        } else {
            MAX_ARGV_TOKENS
        };
        None
    }

    /// Reads argument `i` (callers go from 0 upwards). Returns false once past the last
    /// argument.
    pub fn step<T: CommandTables + ?Sized>(
        &mut self,
        tables: &T,
        line: &CommandLine,
        i: usize,
    ) -> bool {
        if i >= self.count {
            return false;
        }
        if i < self.start {
            return true;
        }
        let Some(token) = line.tokens.get(i) else {
            return false;
        };
        let class_id = self.scan.class;
        let entry = self.scan.entry;
        let prefix_lens = self.scan.prefix_lens;
        let scan = &mut self.scan;
        let index = i as u32;
        let consumed = self.skip_next;
        self.skip_next = false;
        let free = !self.options_done && !consumed;
        let is_end = free && token.flags & TOKEN_END_OF_OPTIONS != 0;
        let is_option = free && !is_end && token.flags & TOKEN_OPTION != 0;
        let is_positional = !consumed && !is_end && !is_option;

        let expecting = self.expecting_object;
        self.expecting_object = false;
        if expecting && !is_positional {
            if scan.bare_pending {
                scan.bare_hit = true;
            }
            scan.bare_pending = false;
        }
        if consumed {
            return true;
        }
        if is_end {
            self.options_done = true;
            return true;
        }

        if is_option {
            let long = token.flags & TOKEN_LONG_OPTION != 0;
            if long || token.len <= 2 {
                let mut word = tables.word(&WordKey::new(class_id, token.whole));
                let mut attached = false;
                if word.is_none() && token.flags & TOKEN_HAS_VALUE != 0 {
                    word = tables.word(&WordKey::new(class_id, token.stem));
                    attached = true;
                }
                if let Some(word) = word {
                    if word.flags & WORD_TAKES_VALUE != 0 && !attached {
                        self.skip_next = true;
                    }
                    scan.word(word.flags, index);
                    self.expecting_object = scan.expect_object(word.flags, index);
                }
            } else {
                let len = token.len as usize;
                let mut ended = false;
                for j in 1..TOKEN_HEAD_BYTES {
                    if j >= len {
                        ended = true;
                        break;
                    }
                    let c = token.head[j];
                    let Some(word) = tables.word(&WordKey::new(class_id, short_option_hash(c)))
                    else {
                        continue;
                    };
                    let rest = j + 1 < len;
                    if word.flags & WORD_TAKES_VALUE != 0 {
                        if !rest {
                            self.skip_next = true;
                        }
                        scan.word(word.flags, index);
                        ended = true;
                        break;
                    }
                    scan.word(word.flags, index);
                    if scan.expect_object(word.flags, index) {
                        if rest {
                            scan.bare_pending = false;
                            let attached = token.head.get(j + 1..len.min(TOKEN_HEAD_BYTES));
                            if let Some(bytes) = attached {
                                let object = tables.attached_token(
                                    bytes,
                                    len > TOKEN_HEAD_BYTES,
                                    &prefix_lens,
                                );
                                scan.candidate(tables, &object, index);
                            }
                        } else {
                            self.expecting_object = true;
                        }
                        ended = true;
                        break;
                    }
                }
                if !ended && len > TOKEN_HEAD_BYTES {
                    scan.unparsed = true;
                }
            }
            return true;
        }

        self.positional += 1;
        let word = tables.word(&WordKey::new(class_id, token.whole));
        if entry.verb_position != 0 && self.positional == entry.verb_position {
            if let Some(word) = word {
                scan.word(word.flags, index);
            }
            return true;
        }
        if let Some(word) = word {
            if word.flags & MODIFIER_FLAGS != 0 {
                scan.word(word.flags, index);
                return true;
            }
            if entry.verb_position == 0 && word.flags & VERB_FLAGS != 0 {
                scan.word(word.flags, index);
                self.expecting_object = scan.expect_object(word.flags, index);
                return true;
            }
        }
        match entry.objects {
            OBJECTS_AFTER_VERB => {
                if expecting {
                    scan.bare_pending = false;
                    scan.candidate(tables, token, index);
                }
            }
            OBJECTS_LAST => self.last_candidate = index,
            _ => scan.candidate(tables, token, index),
        }
        true
    }

    /// The decision, once every argument has been read. `tables` is needed again for an
    /// object named by the last argument (`OBJECTS_LAST`).
    pub fn finish<T: CommandTables + ?Sized>(
        &mut self,
        tables: &T,
        line: &CommandLine,
    ) -> Classification {
        if self.last_candidate != NO_TOKEN {
            if let Some(token) = line.tokens.get(self.last_candidate as usize) {
                self.scan.candidate(tables, token, self.last_candidate);
            }
            self.last_candidate = NO_TOKEN;
        }
        self.conclude(line)
    }

    fn conclude(&mut self, line: &CommandLine) -> Classification {
        let class_id = self.scan.class;
        let entry = self.scan.entry;
        let scan = &mut self.scan;
        if self.expecting_object && scan.bare_pending {
            scan.bare_hit = true;
        }
        let verb_seen =
            scan.verbs != 0 || (entry.verb_position != 0 && self.positional >= entry.verb_position);
        if scan.verbs == 0 {
            scan.verbs = entry.without_verb & VERB_FLAGS;
            if entry.without_verb & WORD_BARE != 0 {
                scan.bare_verbs = scan.verbs;
                scan.bare_hit = true;
            }
        }
        let truncated = line.flags & LINE_TRUNCATED != 0 || scan.unparsed;
        let decision = decide(scan, &entry, truncated, verb_seen);
        let trusted = class_id < MAX_CLASSES && line.trusted_classes & (1 << class_id) != 0;
        match decision.verdict() {
            Some(Verdict::Destructive) | Some(Verdict::ReportOnly) if trusted => Classification {
                verdict: Verdict::Allowed as u32,
                reason: Reason::TrustedCaller as u32,
                ..decision
            },
            _ => decision,
        }
    }
}

fn decide(scan: &Scan, entry: &ClassEntry, truncated: bool, verb_seen: bool) -> Classification {
    let class = scan.class;
    let bare_rule = entry.bare_rule;
    let destructive = |reason: Reason, rule: u32, verb: u32, hit: Option<Hit>| {
        charge(Verdict::Destructive, reason, class, rule, verb, hit)
    };
    let removal_in_window = |verb: u32, hit: Hit| {
        charge(
            Verdict::AllowedAsUpgrade,
            Reason::RemovalInWindow,
            class,
            hit.entry.rule,
            verb,
            Some(hit),
        )
    };

    if scan.modifiers & WORD_DRY_RUN != 0 {
        return Classification::new(Verdict::Allowed, Reason::DryRun, class);
    }
    if scan.modifiers & WORD_HITS_ALL != 0 && bare_rule != NO_RULE {
        return destructive(Reason::HitsAll, bare_rule, scan.hits_all_token, None);
    }
    if scan.verbs & WORD_DESTRUCTIVE != 0 {
        let verb = scan.destructive_token;
        if let Some(hit) = scan.first_hit {
            return destructive(Reason::ProtectedObject, hit.entry.rule, verb, Some(hit));
        }
        if bare_rule != NO_RULE {
            if scan.modifiers & WORD_ALL_OBJECTS != 0 {
                let mut c = destructive(Reason::AllObjects, bare_rule, verb, None);
                c.object_token = scan.all_objects_token;
                return c;
            }
            if scan.pattern_token != NO_TOKEN {
                let mut c = destructive(Reason::Pattern, bare_rule, verb, None);
                c.object_token = scan.pattern_token;
                return c;
            }
            if scan.bare_verbs & WORD_DESTRUCTIVE != 0
                && (scan.bare_hit
                    || (entry.objects != OBJECTS_AFTER_VERB && scan.objects_named == 0))
            {
                return destructive(Reason::BareVerb, bare_rule, verb, None);
            }
            if truncated {
                return destructive(Reason::ArgvOverflow, bare_rule, verb, None);
            }
        }
        // Every protected object it names has a window open for its removal (and nothing
        // above reads as "everything"): allowed, and reported.
        if let Some(hit) = scan.removal_hit {
            return removal_in_window(verb, hit);
        }
    }
    if scan.verbs & WORD_REPORT_ONLY != 0 && bare_rule != NO_RULE {
        return charge(
            Verdict::ReportOnly,
            Reason::ContentNotVisible,
            class,
            bare_rule,
            scan.report_token,
            None,
        );
    }
    if scan.verbs & (WORD_UPGRADE | WORD_INSTALL) != 0 {
        let replaces = scan.verbs & WORD_UPGRADE != 0;
        let verb = if replaces {
            scan.upgrade_token
        } else {
            scan.install_token
        };
        if entry.flags & CLASS_REMOVE_SUFFIX != 0 {
            if let Some(hit) = scan.suffix_hit {
                return destructive(Reason::RemoveSuffix, hit.entry.rule, verb, Some(hit));
            }
            if truncated && bare_rule != NO_RULE {
                return destructive(Reason::ArgvOverflow, bare_rule, verb, None);
            }
        }
        let installs = if let Some(hit) = scan.strictest {
            if !replaces && hit.entry.upgrade == UPGRADE_ALLOW {
                Some(charge(
                    Verdict::Allowed,
                    Reason::Install,
                    class,
                    hit.entry.rule,
                    verb,
                    Some(hit),
                ))
            } else {
                Some(upgrade(hit.entry, hit.entry.rule, class, verb, Some(hit)))
            }
        } else if scan.bare_verbs & WORD_UPGRADE != 0
            && scan.objects_named == 0
            && bare_rule != NO_RULE
        {
            // Which packages a bare upgrade replaces is not on the command line: only a
            // group that allows upgrades outright lets it through, never a window.
            let strictest = ObjectEntry {
                upgrade: entry.bare_upgrade,
                ..ObjectEntry::default()
            };
            Some(upgrade(strictest, bare_rule, class, verb, None))
        } else {
            None
        };
        match installs {
            Some(c) if c.verdict == Verdict::Destructive as u32 => return c,
            _ => {}
        }
        // What it removes (`pkg-` in a window that allows it) matters more to a reviewer
        // than what it installs.
        if let Some(hit) = scan.suffix_removal {
            return removal_in_window(verb, hit);
        }
        if let Some(c) = installs {
            return c;
        }
    }
    if truncated && !verb_seen && bare_rule != NO_RULE {
        // The verb, if any, lies beyond what the kernel copied.
        return destructive(Reason::ArgvOverflow, bare_rule, NO_TOKEN, None);
    }
    Classification::new(Verdict::Allowed, Reason::NoDestructiveVerb, class)
}

/// A classification charged to `rule`, naming the deciding verb and object.
fn charge(
    verdict: Verdict,
    reason: Reason,
    class: u32,
    rule: u32,
    verb: u32,
    hit: Option<Hit>,
) -> Classification {
    let mut c = Classification::new(verdict, reason, class);
    c.rule = rule;
    c.verb_token = verb;
    if let Some(hit) = hit {
        c.object_token = hit.token;
        c.object = hit.entry.object;
    }
    c
}

/// An install, reinstall or upgrade of the package `object` describes (its group's
/// `UPGRADE_*` and its window bits).
fn upgrade(
    object: ObjectEntry,
    rule: u32,
    class: u32,
    verb: u32,
    hit: Option<Hit>,
) -> Classification {
    let (verdict, reason) = match object.upgrade {
        UPGRADE_ALLOW => (Verdict::AllowedAsUpgrade, Reason::Upgrade),
        UPGRADE_WINDOW if object.flags & OBJECT_WINDOW_OPEN != 0 => {
            (Verdict::AllowedAsUpgrade, Reason::UpgradeInWindow)
        }
        UPGRADE_WINDOW => (Verdict::Destructive, Reason::UpgradeOutsideWindow),
        UPGRADE_DENY => (Verdict::Destructive, Reason::UpgradeDenied),
        // Not a package (a unit or chain named by an install-like verb): nothing replaced.
        _ => return Classification::new(Verdict::Allowed, Reason::NoDestructiveVerb, class),
    };
    charge(verdict, reason, class, rule, verb, hit)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::fnv1a;

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
}
