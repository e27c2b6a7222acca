//! The policy engine's front half: a per-environment TOML policy, parsed, checked and
//! turned into the command tables the exec layer classifies with.
//!
//! `parse` → [`Policy`] (what the operator meant, every error with `file:line:col`) →
//! [`commands::compile`] (root-independent command tables) and `crate::resolve` (what
//! it all is on one host). The schema is documented in policy/README.md.

pub mod commands;
pub mod error;
pub mod schema;
pub mod validate;

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

pub use commands::{compile, CompiledCommands};
pub use error::{Diagnostic, Location, PolicyError, Source};
pub use schema::{Mode, ObjectKind, ObjectPosition, Upgrade, WithoutVerb};

/// The shipped production policy, used by `rtguard explain` when no policy is given and
/// none is installed.
pub const BUILTIN_PRODUCTION: &str = include_str!("../../../policy/production.toml");

/// A checked policy.
#[derive(Clone, Debug)]
pub struct Policy {
    pub source: Source,
    /// SHA-256 of the policy text, hex; audit records carry it.
    pub sha256: String,
    pub environment: String,
    /// The default mode; each rule has its effective mode in [`Rule::mode`].
    pub mode: Mode,
    pub description: Option<String>,
    /// Refusals are explained on the refused process's terminal.
    pub terminal_notices: bool,
    pub multicall: Vec<String>,
    /// Dynamic loaders run as programs (`program_loaders`).
    pub loaders: Vec<String>,
    /// Rules in file order, grouped by section; `rules[i].id == i + 1`.
    pub rules: Vec<Rule>,
    /// Command classes; a class's id is its index.
    pub commands: Vec<CommandDef>,
}

impl Policy {
    pub fn rule(&self, id: u32) -> Option<&Rule> {
        id.checked_sub(1).and_then(|i| self.rules.get(i as usize))
    }

    pub fn rule_by_name(&self, name: &str) -> Option<&Rule> {
        self.rules.iter().find(|r| r.name == name)
    }
}

/// One rule: a name, an id the kernel carries, a mode and what it protects.
#[derive(Clone, Debug)]
pub struct Rule {
    pub id: u32,
    pub name: String,
    pub description: Option<String>,
    pub mode: Mode,
    /// Where the rule's `name` is.
    pub location: Location,
    pub body: RuleBody,
}

impl Rule {
    pub fn kind(&self) -> guard_common::rule::RuleKind {
        use guard_common::rule::RuleKind;
        match self.body {
            RuleBody::Packages { .. } => RuleKind::Packages,
            RuleBody::Paths { .. } => RuleKind::Paths,
            RuleBody::Trees { .. } => RuleKind::Trees,
            RuleBody::Services { .. } => RuleKind::Services,
            RuleBody::Netfilter { .. } => RuleKind::Netfilter,
            RuleBody::Processes { .. } => RuleKind::Processes,
        }
    }
}

#[derive(Clone, Debug)]
pub enum RuleBody {
    Packages {
        packages: Vec<PackageSpec>,
        upgrade: Upgrade,
    },
    Paths {
        paths: Vec<PathPattern>,
    },
    Trees {
        paths: Vec<PathBuf>,
        trusted_writers: Vec<PathPattern>,
        exclude: Vec<PathBuf>,
        allow_writes: bool,
    },
    Services {
        units: Vec<String>,
    },
    Netfilter {
        chains: Vec<NameSpec>,
        tables: Vec<NameSpec>,
        sets: Vec<NameSpec>,
    },
    Processes {
        exe: Vec<PathPattern>,
        supervisors: Vec<PathPattern>,
        /// Signal numbers refused whatever the process does with them.
        signals: Vec<u32>,
        /// Signal numbers the programs handle although their runtime hides it.
        handles: Vec<u32>,
    },
}

/// A package as the policy names it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PackageSpec {
    /// As written (`containerd.io:amd64`, `docker-ce*`).
    pub text: String,
    /// The name without arch or `*`.
    pub name: String,
    pub arch: Option<String>,
    /// Ends in `*`: every package whose name starts with `name`.
    pub wildcard: bool,
    pub location: Location,
}

impl PackageSpec {
    /// Whether `package` (a name, without architecture) is one this spec names: the name
    /// itself, or any name it starts for a trailing `*`.
    pub fn names(&self, package: &str) -> bool {
        if self.wildcard {
            package.starts_with(&self.name)
        } else {
            package == self.name
        }
    }
}

/// An absolute path or glob.
#[derive(Clone, Debug)]
pub struct PathPattern {
    pub text: String,
    /// Set when `text` is a glob.
    pub glob: Option<globset::GlobMatcher>,
    pub location: Location,
}

/// A chain, table or set name, possibly ending in `*`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NameSpec {
    pub text: String,
    pub literal: String,
    pub wildcard: bool,
}

/// A command class, checked.
#[derive(Clone, Debug)]
pub struct CommandDef {
    pub name: String,
    pub description: Option<String>,
    pub location: Location,
    pub binaries: Vec<String>,
    pub objects: Vec<ObjectKind>,
    pub verb_position: u32,
    pub object_position: ObjectPosition,
    pub without_verb: WithoutVerb,
    /// Each word with its `WORD_*` flags.
    pub words: Vec<(String, u32)>,
    /// Templates of other spellings of an object name, `{}` for the name.
    pub object_spellings: Vec<String>,
    pub remove_suffix: bool,
    pub patterns: bool,
    pub abbreviations: bool,
    pub trusted_callers: Vec<PathPattern>,
}

/// Parses and checks a policy text. `name` is how the file is named in messages.
pub fn parse(name: &str, text: &str) -> Result<Policy, PolicyError> {
    let source = Source::new(name, text);
    let file: schema::PolicyFile = toml::from_str(text).map_err(|e| {
        let span = e.span().unwrap_or(0..0);
        PolicyError::Invalid(vec![source.diagnostic(span, e.message().trim_end())])
    })?;
    let sha256 = format!("{:x}", Sha256::digest(text.as_bytes()));
    validate::validate(source, file, sha256).map_err(PolicyError::Invalid)
}

/// Reads, parses and checks a policy file.
pub fn load(path: &Path) -> Result<Policy, PolicyError> {
    let text = std::fs::read_to_string(path).map_err(|source| PolicyError::Read {
        path: path.to_owned(),
        source,
    })?;
    parse(&path.display().to_string(), &text)
}
