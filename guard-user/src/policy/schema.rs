//! The policy file as written: serde types that mirror the TOML one to one. Every field
//! an error can point at is `Spanned`, and every table refuses unknown keys, so a typo is
//! an error at its line and column rather than a silently ignored setting.
//!
//! policy/README.md documents each key; keep the two in step.

use serde::Deserialize;
use toml::Spanned;

pub type Str = Spanned<String>;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyFile {
    /// Which environment this policy is for (`production`, `staging`, …). Carried in every
    /// audit record.
    pub environment: Str,
    /// Default mode of every rule.
    pub mode: Spanned<Mode>,
    #[serde(default)]
    pub description: Option<String>,
    /// Whether a refusal is explained on the refused process's terminal (default true).
    #[serde(default)]
    pub terminal_notices: Option<bool>,
    /// Binaries whose argv[1] names the program they act as (busybox, xtables-nft-multi).
    #[serde(default)]
    pub multicall_binaries: Vec<Str>,
    /// Dynamic loaders that run the program their first argument names
    /// (`ld-linux-x86-64.so.2 /usr/bin/dpkg -r x`).
    #[serde(default)]
    pub program_loaders: Vec<Str>,
    #[serde(default)]
    pub packages: Vec<PackagesRule>,
    #[serde(default)]
    pub paths: Vec<PathsRule>,
    #[serde(default)]
    pub trees: Vec<TreesRule>,
    #[serde(default)]
    pub services: Vec<ServicesRule>,
    #[serde(default)]
    pub netfilter: Vec<NetfilterRule>,
    #[serde(default)]
    pub processes: Vec<ProcessesRule>,
    #[serde(default)]
    pub commands: Vec<CommandClass>,
}

#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Reported only: matches are logged as `would-block`.
    Audit,
    /// Matches are refused (-EPERM) and logged as `blocked`.
    Enforce,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Enforce => "enforce",
            Mode::Audit => "audit",
        }
    }
}

#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Upgrade {
    /// The package manager may replace the package's files; removal stays blocked.
    #[default]
    Allow,
    /// Only while a maintenance window is open.
    Window,
    /// Never, not even a reinstall.
    Deny,
}

impl Upgrade {
    pub fn as_str(self) -> &'static str {
        match self {
            Upgrade::Allow => "allow",
            Upgrade::Window => "window",
            Upgrade::Deny => "deny",
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PackagesRule {
    pub name: Str,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub mode: Option<Spanned<Mode>>,
    /// `name`, `name:arch`, or a name ending in `*`.
    pub packages: Vec<Str>,
    #[serde(default)]
    pub upgrade: Upgrade,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PathsRule {
    pub name: Str,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub mode: Option<Spanned<Mode>>,
    /// Absolute paths or globs (`*`, `?`, `[…]`, `{a,b}`, `**`).
    pub paths: Vec<Str>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TreesRule {
    pub name: Str,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub mode: Option<Spanned<Mode>>,
    /// Absolute directory paths; each protects itself and everything below it.
    pub paths: Vec<Str>,
    /// Executables (paths or globs) that may change anything in these trees.
    #[serde(default)]
    pub trusted_writers: Vec<Str>,
    /// Subdirectories left to whoever writes them (container volumes and layers).
    #[serde(default)]
    pub exclude: Vec<Str>,
    /// false: writes, truncation, removal and renames are refused. true: only removal and
    /// renames are (configuration directories that operators edit).
    #[serde(default)]
    pub allow_writes: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServicesRule {
    pub name: Str,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub mode: Option<Spanned<Mode>>,
    /// Unit names with their type suffix (`containerd.service`, `docker.socket`).
    pub units: Vec<Str>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetfilterRule {
    pub name: Str,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub mode: Option<Spanned<Mode>>,
    /// Chain names, a trailing `*` matching any suffix (`DOCKER*`).
    #[serde(default)]
    pub chains: Vec<Str>,
    /// Table names whose flush or deletion takes the protected chains with them.
    #[serde(default)]
    pub tables: Vec<Str>,
    /// ipset names.
    #[serde(default)]
    pub sets: Vec<Str>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProcessesRule {
    pub name: Str,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub mode: Option<Spanned<Mode>>,
    /// Executables (paths or globs) whose processes are protected.
    pub exe: Vec<Str>,
    /// Executables that may still signal them; pid 1 always may.
    #[serde(default)]
    pub supervisors: Vec<Str>,
    /// Signals refused whatever the process does with them, by name (`KILL`, `TERM`, …);
    /// default: the ones daemons shut down on. Any other signal is refused when it would
    /// end or stop the process.
    #[serde(default)]
    pub signals: Option<Vec<Str>>,
    /// Signals these programs ask for although their runtime catches every signal, so the
    /// kernel cannot tell (a Go program's `os/signal.Notify`, e.g. dockerd's `HUP`).
    #[serde(default)]
    pub handles: Vec<Str>,
}

#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ObjectPosition {
    /// Every positional argument other than the verb.
    #[default]
    Any,
    /// Only the argument right after the verb (iptables).
    AfterVerb,
    /// Only the last positional argument (nft).
    Last,
}

#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum WithoutVerb {
    /// A command line without a verb does nothing protected.
    #[default]
    Allow,
    /// It acts on input exec cannot see (iptables-restore): report, never block.
    Report,
    /// It destroys everything of its kind.
    Destructive,
}

#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ObjectKind {
    Packages,
    Units,
    Chains,
    Tables,
    Sets,
}

impl ObjectKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ObjectKind::Packages => "packages",
            ObjectKind::Units => "units",
            ObjectKind::Chains => "chains",
            ObjectKind::Tables => "tables",
            ObjectKind::Sets => "sets",
        }
    }
}

/// A command class: how one family of programs names and destroys protected objects.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommandClass {
    pub name: Str,
    #[serde(default)]
    pub description: Option<String>,
    /// Basenames that select the class (argv[0], the executed file).
    pub binaries: Vec<Str>,
    /// Which protected objects its arguments name.
    #[serde(default)]
    pub objects: Vec<Spanned<ObjectKind>>,
    /// 0: verbs are options and may appear anywhere. N: the Nth positional argument.
    #[serde(default)]
    pub verb_position: Option<Spanned<u32>>,
    #[serde(default)]
    pub object_position: ObjectPosition,
    #[serde(default)]
    pub without_verb: WithoutVerb,
    #[serde(default)]
    pub destructive: Vec<Str>,
    #[serde(default)]
    pub destructive_bare: Vec<Str>,
    #[serde(default)]
    pub install: Vec<Str>,
    #[serde(default)]
    pub upgrade: Vec<Str>,
    #[serde(default)]
    pub upgrade_bare: Vec<Str>,
    #[serde(default)]
    pub hits_all: Vec<Str>,
    #[serde(default)]
    pub all_objects: Vec<Str>,
    #[serde(default)]
    pub dry_run: Vec<Str>,
    #[serde(default)]
    pub report_only: Vec<Str>,
    #[serde(default)]
    pub takes_value: Vec<Str>,
    /// Verbs that switch the system to the target they name, stopping what it doesn't pull
    /// in (`systemctl isolate`, `rescue`, `telinit 1`).
    #[serde(default)]
    pub switches_target: Vec<Str>,
    /// Targets a switch may go to without stopping the runtime (`multi-user.target`).
    #[serde(default)]
    pub safe_targets: Vec<Str>,
    /// Other spellings of an object name, `{}` standing for the name (dbus-send's
    /// `string:{}`).
    #[serde(default)]
    pub object_spellings: Vec<Str>,
    /// apt/aptitude: `pkg-` (and `pkg_`) in an install removes the package.
    #[serde(default)]
    pub remove_suffix: bool,
    /// Object arguments may be patterns that match names they don't spell.
    #[serde(default)]
    pub patterns: bool,
    /// getopt_long accepts unambiguous prefixes of long options (`--fl` for `--flush`).
    #[serde(default)]
    pub abbreviations: bool,
    /// Executables that may run destructive commands of this class (dockerd rewriting
    /// its own chains).
    #[serde(default)]
    pub trusted_callers: Vec<Str>,
}
