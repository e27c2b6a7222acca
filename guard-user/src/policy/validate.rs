//! From the file as written ([`schema`]) to the policy as meant ([`Policy`]): every check
//! that TOML and serde can't do, each reported at the span it is about.

use std::{collections::HashMap, ops::Range, path::PathBuf};

use globset::GlobBuilder;
use guard_common::{
    exec::{
        MAX_CLASSES, MAX_TOKEN_BYTES, WORD_ALL_OBJECTS, WORD_BARE, WORD_DESTRUCTIVE, WORD_DRY_RUN,
        WORD_HITS_ALL, WORD_INSTALL, WORD_REPORT_ONLY, WORD_SAFE_TARGET, WORD_SWITCH,
        WORD_TAKES_VALUE, WORD_UPGRADE,
    },
    netfilter::MAX_NAME_PATTERNS,
    rule::MAX_RULES,
};
use toml::Spanned;

use super::{
    error::{Diagnostic, Location, Source},
    schema::{self, Str},
    CommandDef, NameSpec, PackageSpec, PathPattern, Policy, Rule, RuleBody,
};

/// Signals a protected process refuses by default: the ones whose default action ends or
/// stops it, less SIGHUP, which daemons (dockerd) take as "reload your configuration".
pub const DEFAULT_SIGNALS: &[&str] = &["INT", "QUIT", "ABRT", "KILL", "TERM", "STOP"];

const SIGNALS: &[(&str, u32)] = &[
    ("HUP", 1),
    ("INT", 2),
    ("QUIT", 3),
    ("ILL", 4),
    ("TRAP", 5),
    ("ABRT", 6),
    ("BUS", 7),
    ("FPE", 8),
    ("KILL", 9),
    ("USR1", 10),
    ("SEGV", 11),
    ("USR2", 12),
    ("PIPE", 13),
    ("ALRM", 14),
    ("TERM", 15),
    ("STKFLT", 16),
    ("CONT", 18),
    ("STOP", 19),
    ("TSTP", 20),
    ("TTIN", 21),
    ("TTOU", 22),
    ("XCPU", 24),
    ("XFSZ", 25),
    ("VTALRM", 26),
    ("PROF", 27),
    ("SYS", 31),
];

/// Signal number for a name with or without the `SIG` prefix.
pub fn signal_number(name: &str) -> Option<u32> {
    let name = name.strip_prefix("SIG").unwrap_or(name);
    SIGNALS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|&(_, num)| num)
}

/// Signal name for a number.
pub fn signal_name(number: u32) -> Option<&'static str> {
    SIGNALS
        .iter()
        .find(|(_, n)| *n == number)
        .map(|&(name, _)| name)
}

struct Checker<'a> {
    source: &'a Source,
    errors: Vec<Diagnostic>,
    names: HashMap<String, Location>,
}

impl Checker<'_> {
    fn error(&mut self, span: Range<usize>, message: impl Into<String>) {
        self.errors.push(self.source.diagnostic(span, message));
    }

    /// Signal numbers for names; an unknown name is an error at its place.
    fn signals(&mut self, names: &[Str]) -> Vec<u32> {
        let mut numbers = Vec::new();
        for raw in names {
            match signal_number(raw.get_ref()) {
                Some(n) => numbers.push(n),
                None => {
                    let message = format!(
                        "unknown signal `{}` (expected a name such as `KILL` or `TERM`)",
                        raw.get_ref()
                    );
                    self.error(raw.span(), message);
                }
            }
        }
        numbers
    }

    fn at(&self, span: &Range<usize>) -> Location {
        self.source.locate(span.start)
    }

    /// Registers a rule or command-class name; all share one namespace.
    fn name(&mut self, name: &Str) -> String {
        let text = name.get_ref().clone();
        let span = name.span();
        if text.is_empty() {
            self.error(span, "a name cannot be empty");
        } else if !text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        {
            self.error(
                span,
                format!("name `{text}` may only contain letters, digits, `-`, `_` and `.`"),
            );
        } else if let Some(first) = self.names.get(&text) {
            let message = format!(
                "duplicate rule name `{text}` (first defined at line {})",
                first.line
            );
            self.error(span, message);
        } else {
            let at = self.at(&span);
            self.names.insert(text.clone(), at);
        }
        text
    }

    fn mode(&self, mode: &Option<Spanned<schema::Mode>>, default: schema::Mode) -> schema::Mode {
        mode.as_ref().map_or(default, |m| *m.get_ref())
    }

    fn non_empty<T>(&mut self, list: &[T], name: &Str, what: &str) {
        if list.is_empty() {
            let message = format!("rule `{}` lists no {what}", name.get_ref());
            self.error(name.span(), message);
        }
    }

    fn path(&mut self, raw: &Str, globs: bool) -> Option<PathPattern> {
        let text = raw.get_ref();
        let span = raw.span();
        if !text.starts_with('/') {
            self.error(span, format!("path `{text}` must be absolute"));
            return None;
        }
        if text.contains('\0') {
            self.error(span, "path contains a NUL byte");
            return None;
        }
        let is_glob = text.contains(['*', '?', '[', '{']);
        if !is_glob {
            return Some(PathPattern {
                text: text.clone(),
                glob: None,
                location: self.at(&span),
            });
        }
        if !globs {
            self.error(
                span,
                format!("`{text}` is a glob; these paths must be literal directories"),
            );
            return None;
        }
        match GlobBuilder::new(text).literal_separator(true).build() {
            Ok(glob) => Some(PathPattern {
                text: text.clone(),
                glob: Some(glob.compile_matcher()),
                location: self.at(&span),
            }),
            Err(e) => {
                let reason = e.kind().to_string();
                self.error(span, format!("invalid glob `{text}`: {reason}"));
                None
            }
        }
    }

    fn package(&mut self, raw: &Str) -> Option<PackageSpec> {
        let text = raw.get_ref();
        let span = raw.span();
        let (name, arch) = match text.split_once(':') {
            Some((name, arch)) => (name, Some(arch)),
            None => (text.as_str(), None),
        };
        let (literal, wildcard) = match name.strip_suffix('*') {
            Some(literal) => (literal, true),
            None => (name, false),
        };
        let valid_name = !literal.is_empty()
            && literal
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.' | '_'))
            && literal.len() < MAX_TOKEN_BYTES;
        if !valid_name {
            self.error(
                span,
                format!(
                    "invalid package name `{text}`: expected letters, digits, `+`, `-`, `.` or `_`, \
                     optionally `:arch` or a trailing `*`"
                ),
            );
            return None;
        }
        if let Some(arch) = arch {
            if wildcard
                || arch.is_empty()
                || !arch.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            {
                self.error(
                    span,
                    format!(
                        "invalid architecture in `{text}` (expected e.g. `containerd.io:amd64`)"
                    ),
                );
                return None;
            }
        }
        Some(PackageSpec {
            text: text.clone(),
            name: literal.to_owned(),
            arch: arch.map(str::to_owned),
            wildcard,
            location: self.at(&span),
        })
    }

    fn unit(&mut self, raw: &Str) -> Option<String> {
        const TYPES: &[&str] = &[
            ".service",
            ".socket",
            ".timer",
            ".mount",
            ".automount",
            ".path",
            ".target",
            ".slice",
            ".scope",
            ".swap",
            ".device",
        ];
        let text = raw.get_ref();
        let span = raw.span();
        let valid_chars = !text.is_empty()
            && text.chars().all(|c| {
                c.is_ascii_alphanumeric() || matches!(c, ':' | '-' | '_' | '.' | '\\' | '@')
            });
        if !valid_chars || text.len() >= MAX_TOKEN_BYTES {
            self.error(span, format!("invalid unit name `{text}`"));
            return None;
        }
        if !TYPES
            .iter()
            .any(|t| text.ends_with(t) && text.len() > t.len())
        {
            self.error(
                span,
                format!("unit `{text}` needs its type suffix (e.g. `{text}.service`)"),
            );
            return None;
        }
        Some(text.clone())
    }

    fn netfilter_name(&mut self, raw: &Str, what: &str, max: usize) -> Option<NameSpec> {
        let text = raw.get_ref();
        let span = raw.span();
        let (literal, wildcard) = match text.strip_suffix('*') {
            Some(literal) => (literal, true),
            None => (text.as_str(), false),
        };
        if literal.is_empty() || literal.contains(['*', '?', '[', ' ', '\t', '\n']) {
            self.error(
                span,
                format!("invalid {what} name `{text}`: only a trailing `*` is supported"),
            );
            return None;
        }
        if literal.len() > max {
            self.error(
                span,
                format!("{what} name `{text}` is longer than {max} bytes"),
            );
            return None;
        }
        Some(NameSpec {
            text: text.clone(),
            literal: literal.to_owned(),
            wildcard,
        })
    }
}

/// Checks a parsed policy file and builds the policy it describes.
pub fn validate(
    source: Source,
    file: schema::PolicyFile,
    sha256: String,
) -> Result<Policy, Vec<Diagnostic>> {
    let mut c = Checker {
        source: &source,
        errors: Vec::new(),
        names: HashMap::new(),
    };
    let environment = file.environment.get_ref().trim().to_owned();
    if environment.is_empty() {
        c.error(file.environment.span(), "environment cannot be empty");
    }
    let default_mode = *file.mode.get_ref();
    let mut rules = Vec::new();
    let push =
        |rules: &mut Vec<Rule>, name: String, description: Option<String>, mode, location, body| {
            let id = rules.len() as u32 + 1;
            rules.push(Rule {
                id,
                name,
                description,
                mode,
                location,
                body,
            });
        };

    for r in &file.packages {
        let name = c.name(&r.name);
        c.non_empty(&r.packages, &r.name, "packages");
        let packages = r.packages.iter().filter_map(|p| c.package(p)).collect();
        let mode = c.mode(&r.mode, default_mode);
        let at = c.at(&r.name.span());
        let body = RuleBody::Packages {
            packages,
            upgrade: r.upgrade,
        };
        push(&mut rules, name, r.description.clone(), mode, at, body);
    }
    for r in &file.paths {
        let name = c.name(&r.name);
        c.non_empty(&r.paths, &r.name, "paths");
        let paths = r.paths.iter().filter_map(|p| c.path(p, true)).collect();
        let mode = c.mode(&r.mode, default_mode);
        let at = c.at(&r.name.span());
        push(
            &mut rules,
            name,
            r.description.clone(),
            mode,
            at,
            RuleBody::Paths { paths },
        );
    }
    for r in &file.trees {
        let name = c.name(&r.name);
        c.non_empty(&r.paths, &r.name, "paths");
        let paths: Vec<PathBuf> = r
            .paths
            .iter()
            .filter_map(|p| c.path(p, false))
            .map(|p| PathBuf::from(p.text))
            .collect();
        let trusted_writers = r
            .trusted_writers
            .iter()
            .filter_map(|p| c.path(p, true))
            .collect();
        let mut exclude = Vec::new();
        for raw in &r.exclude {
            let Some(p) = c.path(raw, false) else {
                continue;
            };
            let p = PathBuf::from(p.text);
            if !paths.iter().any(|tree| p.starts_with(tree) && &p != tree) {
                let message = format!(
                    "excluded `{}` is not inside one of this rule's trees",
                    p.display()
                );
                c.error(raw.span(), message);
                continue;
            }
            exclude.push(p);
        }
        let mode = c.mode(&r.mode, default_mode);
        let at = c.at(&r.name.span());
        let body = RuleBody::Trees {
            paths,
            trusted_writers,
            exclude,
            allow_writes: r.allow_writes,
        };
        push(&mut rules, name, r.description.clone(), mode, at, body);
    }
    for r in &file.services {
        let name = c.name(&r.name);
        c.non_empty(&r.units, &r.name, "units");
        let units = r.units.iter().filter_map(|u| c.unit(u)).collect();
        let mode = c.mode(&r.mode, default_mode);
        let at = c.at(&r.name.span());
        push(
            &mut rules,
            name,
            r.description.clone(),
            mode,
            at,
            RuleBody::Services { units },
        );
    }
    let mut netfilter_names = 0;
    for r in &file.netfilter {
        let name = c.name(&r.name);
        let before = netfilter_names;
        netfilter_names += r.chains.len() + r.sets.len();
        if netfilter_names > MAX_NAME_PATTERNS && before <= MAX_NAME_PATTERNS {
            c.error(
                r.name.span(),
                format!(
                    "rule `{name}` brings the policy's chain and set names past \
                     {MAX_NAME_PATTERNS}, as many as the kernel compares"
                ),
            );
        }
        if r.chains.is_empty() && r.tables.is_empty() && r.sets.is_empty() {
            c.error(
                r.name.span(),
                format!("rule `{name}` lists no chains, tables or sets"),
            );
        }
        // XT_EXTENSION_MAXNAMELEN and IPSET_MAXNAMELEN, less the NUL.
        let chains = r
            .chains
            .iter()
            .filter_map(|n| c.netfilter_name(n, "chain", 28))
            .collect();
        let tables = r
            .tables
            .iter()
            .filter_map(|n| c.netfilter_name(n, "table", 28))
            .collect();
        let sets = r
            .sets
            .iter()
            .filter_map(|n| c.netfilter_name(n, "set", 31))
            .collect();
        let mode = c.mode(&r.mode, default_mode);
        let at = c.at(&r.name.span());
        let body = RuleBody::Netfilter {
            chains,
            tables,
            sets,
        };
        push(&mut rules, name, r.description.clone(), mode, at, body);
    }
    for r in &file.processes {
        let name = c.name(&r.name);
        c.non_empty(&r.exe, &r.name, "executables");
        let exe = r.exe.iter().filter_map(|p| c.path(p, true)).collect();
        let supervisors = r
            .supervisors
            .iter()
            .filter_map(|p| c.path(p, true))
            .collect();
        let signals = match &r.signals {
            None => DEFAULT_SIGNALS
                .iter()
                .filter_map(|s| signal_number(s))
                .collect(),
            Some(list) => c.signals(list),
        };
        let handles = c.signals(&r.handles);
        let mode = c.mode(&r.mode, default_mode);
        let at = c.at(&r.name.span());
        let body = RuleBody::Processes {
            exe,
            supervisors,
            signals,
            handles,
        };
        push(&mut rules, name, r.description.clone(), mode, at, body);
    }
    if rules.len() > MAX_RULES as usize {
        let message = format!(
            "too many rules: {}, the kernel's rule table holds {MAX_RULES}",
            rules.len()
        );
        c.errors.push(source.diagnostic(0..0, message));
    }

    let mut commands = Vec::new();
    let mut binaries: HashMap<String, String> = HashMap::new();
    let mut multicall = Vec::new();
    for raw in &file.multicall_binaries {
        if let Some(b) = binary_name(&mut c, raw) {
            multicall.push(b);
        }
    }
    let mut loaders = Vec::new();
    for raw in &file.program_loaders {
        if let Some(b) = binary_name(&mut c, raw) {
            if multicall.contains(&b) {
                c.error(
                    raw.span(),
                    format!("`{b}` is listed as a multi-call binary"),
                );
            } else {
                loaders.push(b);
            }
        }
    }
    for class in &file.commands {
        let name = c.name(&class.name);
        if class.binaries.is_empty() {
            c.error(
                class.name.span(),
                format!("command class `{name}` lists no binaries"),
            );
        }
        if class.objects.is_empty() {
            c.error(
                class.name.span(),
                format!("command class `{name}` names no objects (set `objects`)"),
            );
        }
        let mut class_binaries = Vec::new();
        for raw in &class.binaries {
            let Some(b) = binary_name(&mut c, raw) else {
                continue;
            };
            if multicall.contains(&b) || loaders.contains(&b) {
                c.error(
                    raw.span(),
                    format!("`{b}` is listed as a multi-call binary or a program loader"),
                );
            } else if let Some(other) = binaries.get(&b) {
                let message = format!("binary `{b}` already belongs to command class `{other}`");
                c.error(raw.span(), message);
            } else {
                binaries.insert(b.clone(), name.clone());
                class_binaries.push(b);
            }
        }
        let verb_position = class.verb_position.as_ref().map_or(0, |p| *p.get_ref());
        if let Some(p) = class.verb_position.as_ref().filter(|p| *p.get_ref() > 8) {
            c.error(p.span(), "verb_position must be between 0 and 8");
        }
        let mut words: Vec<(String, u32)> = Vec::new();
        let lists: [(&[Str], u32); 12] = [
            (&class.destructive, WORD_DESTRUCTIVE),
            (&class.destructive_bare, WORD_DESTRUCTIVE | WORD_BARE),
            (&class.install, WORD_INSTALL),
            (&class.upgrade, WORD_UPGRADE),
            (&class.upgrade_bare, WORD_UPGRADE | WORD_BARE),
            (&class.hits_all, WORD_HITS_ALL),
            (&class.all_objects, WORD_ALL_OBJECTS),
            (&class.dry_run, WORD_DRY_RUN),
            (&class.report_only, WORD_REPORT_ONLY),
            (&class.takes_value, WORD_TAKES_VALUE),
            (&class.switches_target, WORD_SWITCH),
            (&class.safe_targets, WORD_SAFE_TARGET),
        ];
        for (list, flags) in lists {
            for raw in list {
                let word = raw.get_ref();
                if word.is_empty() || word == "-" || word == "--" {
                    c.error(raw.span(), format!("`{word}` cannot be a word"));
                } else if word.len() > MAX_TOKEN_BYTES || word.contains('\0') {
                    c.error(
                        raw.span(),
                        format!("word `{word}` is longer than {MAX_TOKEN_BYTES} bytes"),
                    );
                } else if let Some(existing) = words.iter_mut().find(|(w, _)| w == word) {
                    existing.1 |= flags;
                } else {
                    words.push((word.clone(), flags));
                }
            }
        }
        let mut object_spellings = Vec::new();
        for raw in &class.object_spellings {
            let text = raw.get_ref();
            if text.matches("{}").count() != 1 || text == "{}" {
                c.error(
                    raw.span(),
                    format!("object spelling `{text}` must hold `{{}}` once, with more around it"),
                );
            } else {
                object_spellings.push(text.clone());
            }
        }
        let trusted_callers = class
            .trusted_callers
            .iter()
            .filter_map(|p| c.path(p, true))
            .collect();
        commands.push(CommandDef {
            name,
            description: class.description.clone(),
            location: c.at(&class.name.span()),
            binaries: class_binaries,
            objects: class.objects.iter().map(|o| *o.get_ref()).collect(),
            verb_position,
            object_position: class.object_position,
            without_verb: class.without_verb,
            words,
            object_spellings,
            remove_suffix: class.remove_suffix,
            patterns: class.patterns,
            abbreviations: class.abbreviations,
            trusted_callers,
        });
    }
    if commands.len() > MAX_CLASSES as usize {
        let span = file.commands[MAX_CLASSES as usize].name.span();
        c.error(
            span,
            format!("too many command classes: at most {MAX_CLASSES}"),
        );
    }

    if !c.errors.is_empty() {
        let mut errors = c.errors;
        errors.sort_by_key(|d| d.location);
        return Err(errors);
    }
    Ok(Policy {
        source,
        sha256,
        environment,
        mode: default_mode,
        description: file.description,
        terminal_notices: file.terminal_notices.unwrap_or(true),
        multicall,
        loaders,
        rules,
        commands,
    })
}

fn binary_name(c: &mut Checker<'_>, raw: &Str) -> Option<String> {
    let text = raw.get_ref();
    if text.is_empty() || text.contains(['/', '\0', ' ']) || text.len() > MAX_TOKEN_BYTES {
        c.error(
            raw.span(),
            format!("binary `{text}` must be a bare file name such as `apt-get`, not a path"),
        );
        return None;
    }
    Some(text.clone())
}
