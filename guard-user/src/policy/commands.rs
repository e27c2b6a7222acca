//! Compiles a policy's command classes and protected names into the exec layer's tables:
//! the exact key/value pairs the loader writes into the BPF maps, and that
//! `guard_common::exec::classify` reads through [`CommandTables`] on both sides.

use std::collections::{BTreeMap, HashMap};

use guard_common::{
    exec::{
        classify, BinaryEntry, ClassEntry, Classification, CommandConfig, CommandLine,
        CommandTables, ObjectEntry, ObjectKey, WordEntry, WordKey, BINARY_LOADER, BINARY_MULTICALL,
        CLASS_PATTERNS, CLASS_REMOVE_SUFFIX, MAX_COMMAND_BINARIES, MAX_COMMAND_OBJECTS,
        MAX_COMMAND_WORDS, MAX_PREFIX_LENS, OBJECTS_AFTER_VERB, OBJECTS_ANY, OBJECTS_LAST,
        OBJECT_NAME, OBJECT_PREFIX, UPGRADE_ALLOW, UPGRADE_DENY, UPGRADE_NONE, UPGRADE_WINDOW,
        WORD_BARE, WORD_DESTRUCTIVE, WORD_REPORT_ONLY,
    },
    hash::fnv1a,
    rule::NO_RULE,
};

use super::{
    Diagnostic, Mode, ObjectKind, ObjectPosition, Policy, PolicyError, RuleBody, Upgrade,
    WithoutVerb,
};

/// A protected name as the exec layer matches it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct ObjectName {
    /// As the policy writes it (`containerd.io`, `DOCKER*`, `docker.service`).
    pub name: String,
    pub kind: ObjectKind,
    pub rule: u32,
}

/// The compiled tables, in memory. The fields are what the loader copies into the maps.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CompiledCommands {
    pub config: CommandConfig,
    /// Indexed by class id.
    pub classes: Vec<ClassEntry>,
    pub class_names: Vec<String>,
    /// Basename hash → class; `names` keeps the text for explanations.
    pub binaries: BTreeMap<u64, BinaryEntry>,
    pub binary_names: BTreeMap<u64, String>,
    pub words: HashMap<WordKey, WordEntry>,
    pub objects: HashMap<ObjectKey, ObjectEntry>,
    /// Indexed by `ObjectEntry::object`.
    pub object_names: Vec<ObjectName>,
}

impl CommandTables for CompiledCommands {
    fn config(&self) -> CommandConfig {
        self.config
    }

    fn binary(&self, name_hash: u64) -> Option<BinaryEntry> {
        self.binaries.get(&name_hash).copied()
    }

    fn class(&self, class: u32) -> Option<ClassEntry> {
        self.classes.get(class as usize).copied()
    }

    fn word(&self, key: &WordKey) -> Option<WordEntry> {
        self.words.get(key).copied()
    }

    fn object(&self, key: &ObjectKey) -> Option<ObjectEntry> {
        self.objects.get(key).copied()
    }
}

impl CompiledCommands {
    /// Builds the classifier's input from an argv, the way the kernel does at exec.
    pub fn command_line<S: AsRef<[u8]>>(&self, argv: &[S]) -> Box<CommandLine> {
        let mut line = Box::new(CommandLine::EMPTY);
        for arg in argv {
            line.push(arg.as_ref(), &self.config.prefix_lens);
        }
        if let Some(first) = argv.first() {
            line.set_filename(first.as_ref(), &self.config.prefix_lens);
        }
        line
    }

    pub fn classify(&self, line: &CommandLine) -> Classification {
        classify(self, line)
    }

    pub fn class_name(&self, class: u32) -> Option<&str> {
        self.class_names.get(class as usize).map(String::as_str)
    }

    pub fn object_name(&self, object: u32) -> Option<&ObjectName> {
        self.object_names.get(object as usize)
    }

    /// Class of a binary basename, if any.
    pub fn class_of_binary(&self, basename: &str) -> Option<u32> {
        self.binaries
            .get(&fnv1a(basename.as_bytes()))
            .filter(|b| b.flags & (BINARY_MULTICALL | BINARY_LOADER) == 0)
            .map(|b| b.class)
    }
}

/// A name feeding the object tables, before it gets an index.
struct Feed {
    kind: ObjectKind,
    text: String,
    /// Spellings matched whole (a `.service` unit also without its suffix).
    spellings: Vec<String>,
    prefix: Option<String>,
    rule: u32,
    mode: Mode,
    upgrade: u32,
}

fn upgrade_code(u: Upgrade) -> u32 {
    match u {
        Upgrade::Allow => UPGRADE_ALLOW,
        Upgrade::Window => UPGRADE_WINDOW,
        Upgrade::Deny => UPGRADE_DENY,
    }
}

fn feeds(policy: &Policy) -> Vec<Feed> {
    let mut out = Vec::new();
    for rule in &policy.rules {
        let base = |kind, text: &str, literal: &str, wildcard: bool, upgrade| Feed {
            kind,
            text: text.to_owned(),
            spellings: if wildcard {
                Vec::new()
            } else {
                vec![literal.to_owned()]
            },
            prefix: wildcard.then(|| literal.to_owned()),
            rule: rule.id,
            mode: rule.mode,
            upgrade,
        };
        match &rule.body {
            RuleBody::Packages { packages, upgrade } => {
                for p in packages {
                    let shown = if p.wildcard {
                        format!("{}*", p.name)
                    } else {
                        p.name.clone()
                    };
                    out.push(base(
                        ObjectKind::Packages,
                        &shown,
                        &p.name,
                        p.wildcard,
                        upgrade_code(*upgrade),
                    ));
                }
            }
            RuleBody::Services { units } => {
                for unit in units {
                    let mut feed = base(ObjectKind::Units, unit, unit, false, UPGRADE_NONE);
                    // `systemctl stop containerd` means containerd.service.
                    if let Some(short) = unit.strip_suffix(".service") {
                        feed.spellings.push(short.to_owned());
                    }
                    out.push(feed);
                }
            }
            RuleBody::Netfilter {
                chains,
                tables,
                sets,
            } => {
                for (kind, names) in [
                    (ObjectKind::Chains, chains),
                    (ObjectKind::Tables, tables),
                    (ObjectKind::Sets, sets),
                ] {
                    for n in names {
                        out.push(base(kind, &n.text, &n.literal, n.wildcard, UPGRADE_NONE));
                    }
                }
            }
            RuleBody::Paths { .. } | RuleBody::Trees { .. } | RuleBody::Processes { .. } => {}
        }
    }
    out
}

/// Compiles the command tables. Depends on the policy only, never on the host.
pub fn compile(policy: &Policy) -> Result<CompiledCommands, PolicyError> {
    let feeds = feeds(policy);
    let mut errors = Vec::new();

    let mut prefix_lens: Vec<u32> = Vec::new();
    for feed in &feeds {
        let Some(prefix) = &feed.prefix else { continue };
        let len = prefix.len() as u32;
        if !prefix_lens.contains(&len) {
            if prefix_lens.len() == MAX_PREFIX_LENS {
                let rule = policy.rule(feed.rule).expect("feeds come from rules");
                errors.push(diagnostic_at(
                    policy,
                    rule.location,
                    format!(
                        "`{}`: wildcard names may use at most {MAX_PREFIX_LENS} distinct prefix \
                         lengths ({prefix_lens:?} are taken)",
                        feed.text
                    ),
                ));
                continue;
            }
            prefix_lens.push(len);
        }
    }
    let mut config = CommandConfig {
        classes: policy.commands.len() as u32,
        ..Default::default()
    };
    for (slot, len) in config.prefix_lens.iter_mut().zip(&prefix_lens) {
        *slot = *len;
    }

    let mut tables = CompiledCommands {
        config,
        ..Default::default()
    };
    for feed in &feeds {
        tables.object_names.push(ObjectName {
            name: feed.text.clone(),
            kind: feed.kind,
            rule: feed.rule,
        });
    }

    for b in &policy.multicall {
        let hash = fnv1a(b.as_bytes());
        tables.binaries.insert(
            hash,
            BinaryEntry {
                class: 0,
                flags: BINARY_MULTICALL,
            },
        );
        tables.binary_names.insert(hash, b.clone());
    }
    for b in &policy.loaders {
        let hash = fnv1a(b.as_bytes());
        tables.binaries.insert(
            hash,
            BinaryEntry {
                class: 0,
                flags: BINARY_LOADER,
            },
        );
        tables.binary_names.insert(hash, b.clone());
    }

    for (class_id, class) in policy.commands.iter().enumerate() {
        let class_id = class_id as u32;
        tables.class_names.push(class.name.clone());
        for b in &class.binaries {
            let hash = fnv1a(b.as_bytes());
            tables.binaries.insert(
                hash,
                BinaryEntry {
                    class: class_id,
                    flags: 0,
                },
            );
            tables.binary_names.insert(hash, b.clone());
        }

        for (word, flags) in &class.words {
            let key = WordKey::new(class_id, fnv1a(word.as_bytes()));
            tables.words.entry(key).or_default().flags |= flags;
        }
        if class.abbreviations {
            for (prefix, flags) in abbreviations(&class.words) {
                let key = WordKey::new(class_id, fnv1a(prefix.as_bytes()));
                tables.words.entry(key).or_insert(WordEntry { flags });
            }
        }

        // Objects of the kinds this class names; on a clash the enforcing rule wins.
        let mut bare: Option<(Mode, u32)> = None;
        let mut bare_upgrade = UPGRADE_NONE;
        for (index, feed) in feeds.iter().enumerate() {
            if !class.objects.contains(&feed.kind) {
                continue;
            }
            if bare.is_none_or(|(mode, _)| feed.mode > mode) {
                bare = Some((feed.mode, feed.rule));
            }
            bare_upgrade = bare_upgrade.max(feed.upgrade);
            let entry = ObjectEntry {
                rule: feed.rule,
                object: index as u32,
                upgrade: feed.upgrade,
                flags: 0,
            };
            // Package names are matched lower-cased, as dpkg and apt read them (the
            // tokens' stems are folded the same way).
            let spellings = feed.spellings.iter().flat_map(|s| {
                let s = if feed.kind == ObjectKind::Packages {
                    s.to_ascii_lowercase()
                } else {
                    s.clone()
                };
                let others: Vec<String> = class
                    .object_spellings
                    .iter()
                    .map(|t| t.replace("{}", &s))
                    .collect();
                std::iter::once(s).chain(others)
            });
            let keys = spellings
                .map(|s| ObjectKey::new(class_id, OBJECT_NAME, fnv1a(s.as_bytes())))
                .chain(
                    feed.prefix
                        .iter()
                        .map(|p| ObjectKey::new(class_id, OBJECT_PREFIX, fnv1a(p.as_bytes()))),
                );
            for key in keys {
                match tables.objects.get(&key) {
                    Some(existing) if rule_mode(policy, existing.rule) >= feed.mode => {}
                    _ => {
                        tables.objects.insert(key, entry);
                    }
                }
            }
        }

        let mut flags = 0;
        if class.remove_suffix {
            flags |= CLASS_REMOVE_SUFFIX;
        }
        if class.patterns {
            flags |= CLASS_PATTERNS;
        }
        tables.classes.push(ClassEntry {
            flags,
            verb_position: class.verb_position,
            objects: match class.object_position {
                ObjectPosition::Any => OBJECTS_ANY,
                ObjectPosition::AfterVerb => OBJECTS_AFTER_VERB,
                ObjectPosition::Last => OBJECTS_LAST,
            },
            without_verb: match class.without_verb {
                WithoutVerb::Allow => 0,
                WithoutVerb::Report => WORD_REPORT_ONLY,
                WithoutVerb::Destructive => WORD_DESTRUCTIVE | WORD_BARE,
            },
            bare_rule: bare.map_or(NO_RULE, |(_, rule)| rule),
            bare_upgrade,
        });
    }

    let limits = [
        ("binaries", tables.binaries.len(), MAX_COMMAND_BINARIES),
        ("command words", tables.words.len(), MAX_COMMAND_WORDS),
        ("protected names", tables.objects.len(), MAX_COMMAND_OBJECTS),
    ];
    for (what, count, max) in limits {
        if count > max as usize {
            errors.push(diagnostic_at(
                policy,
                Default::default(),
                format!("too many {what}: {count}, the kernel tables hold {max}"),
            ));
        }
    }
    if errors.is_empty() {
        Ok(tables)
    } else {
        Err(PolicyError::Invalid(errors))
    }
}

fn rule_mode(policy: &Policy, rule: u32) -> Mode {
    policy.rule(rule).map_or(Mode::Audit, |r| r.mode)
}

fn diagnostic_at(policy: &Policy, at: super::Location, message: String) -> Diagnostic {
    let offset = offset_of(&policy.source.text, at);
    policy.source.diagnostic(offset..offset, message)
}

fn offset_of(text: &str, at: super::Location) -> usize {
    let line_start: usize = text
        .split_inclusive('\n')
        .take(at.line.saturating_sub(1))
        .map(str::len)
        .sum();
    let col_bytes: usize = text[line_start.min(text.len())..]
        .chars()
        .take(at.col.saturating_sub(1))
        .map(char::len_utf8)
        .sum();
    line_start + col_bytes
}

/// Unambiguous prefixes of the long options among `words`, down to `--` plus one
/// character, as getopt_long accepts them. A prefix shared by words with different
/// meanings is left out; a prefix that is itself a word keeps that word's meaning.
fn abbreviations(words: &[(String, u32)]) -> Vec<(String, u32)> {
    let mut candidates: BTreeMap<String, Option<u32>> = BTreeMap::new();
    for (word, flags) in words {
        if !word.starts_with("--") || !word.is_ascii() {
            continue;
        }
        for len in 3..word.len() {
            let prefix = &word[..len];
            if words.iter().any(|(w, _)| w == prefix) {
                continue;
            }
            candidates
                .entry(prefix.to_owned())
                .and_modify(|f| {
                    if *f != Some(*flags) {
                        *f = None;
                    }
                })
                .or_insert(Some(*flags));
        }
    }
    candidates
        .into_iter()
        .filter_map(|(prefix, flags)| flags.map(|f| (prefix, f)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn abbreviations_skip_ambiguous_prefixes() {
        let words = vec![
            ("--flush".to_owned(), 3),
            ("--delete-chain".to_owned(), 3),
            ("--delete".to_owned(), 0),
            ("--table".to_owned(), 128),
        ];
        let abbrev: BTreeMap<_, _> = abbreviations(&words).into_iter().collect();
        assert_eq!(abbrev.get("--fl"), Some(&3));
        assert_eq!(abbrev.get("--f"), Some(&3));
        assert_eq!(abbrev.get("--delete-c"), Some(&3));
        // `--del` is a prefix of both --delete and --delete-chain, which differ.
        assert_eq!(abbrev.get("--del"), None);
        assert_eq!(abbrev.get("--t"), Some(&128));
    }
}
