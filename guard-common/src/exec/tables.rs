//! The compiled command tables: the entries the loader writes into the command maps,
//! their flag bits, and [`CommandTables`], through which the classifier reads them.

use super::{ArgToken, MAX_PREFIX_LENS};

/// Command classes per policy; a class is also a bit in [`CommandLine::trusted_classes`](super::CommandLine::trusted_classes).
pub const MAX_CLASSES: u32 = 32;
/// Capacity of the binary-name map.
pub const MAX_COMMAND_BINARIES: u32 = 512;
/// Capacity of the word map (verbs, modifiers, value-taking options of every class).
pub const MAX_COMMAND_WORDS: u32 = 8192;
/// Capacity of the object map (protected names of every class, in every spelling).
pub const MAX_COMMAND_OBJECTS: u32 = 8192;

pub const NO_CLASS: u32 = u32::MAX;

/// Set in an executable's class ([`CommandLine::exe_class`](super::CommandLine::exe_class))
/// that is not a command class but a protected package's `prerm`, with the id of the rule
/// protecting the package in the other bits. dpkg runs `prerm remove` before it removes a
/// package's files, for `dpkg -r` and for an install that `Conflicts:` with the package
/// alike, and stops the removal when the script fails, with the package still installed.
pub const EXE_REMOVAL_SCRIPT: u32 = 1 << 31;

/// The rule of a removal script's class ([`EXE_REMOVAL_SCRIPT`]), `None` for a command
/// class or [`NO_CLASS`].
pub const fn removal_script_rule(exe_class: u32) -> Option<u32> {
    if exe_class != NO_CLASS && exe_class & EXE_REMOVAL_SCRIPT != 0 {
        Some(exe_class & !EXE_REMOVAL_SCRIPT)
    } else {
        None
    }
}

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

/// Switches the system to the target it names, stopping every unit that target does not
/// pull in (`systemctl isolate`, `rescue`, `emergency`, `telinit 1`): destructive unless
/// every target it names is a [`WORD_SAFE_TARGET`], and destructive when it names none.
pub const WORD_SWITCH: u32 = 1 << 9;
/// A target whose units include the runtime's (`multi-user.target`): switching to it
/// stops nothing protected.
pub const WORD_SAFE_TARGET: u32 = 1 << 10;

pub(super) const VERB_FLAGS: u32 =
    WORD_DESTRUCTIVE | WORD_UPGRADE | WORD_INSTALL | WORD_REPORT_ONLY | WORD_SWITCH;
pub(super) const MODIFIER_FLAGS: u32 = WORD_HITS_ALL | WORD_ALL_OBJECTS | WORD_DRY_RUN;

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
/// A dynamic loader run as a program (`ld-linux-x86-64.so.2 /usr/bin/dpkg -r x`): it maps
/// the program its first non-option argument names and runs it without another exec, so
/// that program's class decides.
pub const BINARY_LOADER: u32 = 1 << 1;

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
/// upgrades and reinstalls of it pass ([`Reason::UpgradeInWindow`](super::Reason::UpgradeInWindow)).
pub const OBJECT_WINDOW_OPEN: u32 = 1 << 0;
/// A window that allows removal is open for this object (the package, or a unit a package
/// with such a window ships): destructive verbs naming it pass, reported
/// ([`Reason::RemovalInWindow`](super::Reason::RemovalInWindow)).
pub const OBJECT_REMOVAL_OPEN: u32 = 1 << 1;

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
    /// hits-all flag, a pattern); [`NO_RULE`](crate::rule::NO_RULE) when nothing of this class is protected.
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
