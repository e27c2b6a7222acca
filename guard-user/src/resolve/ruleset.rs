//! The compiled rule set: everything a policy protects on one host, as kernel identities,
//! plus the command tables and the reports `rtguard check` prints.

use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    io,
    path::{Path, PathBuf},
};

use guard_common::{
    exec::{CommandLine, MAX_CLASSES, NO_CLASS},
    file::{ExcludedChildKey, EXCLUDED_NAME_LEN},
    rule::{RuleEntry, RuleKind, RULE_ENFORCE},
    InodeKey,
};
use serde::{Serialize, Serializer};

use super::{
    dpkg::DpkgDb,
    inode_key,
    rpm::{RpmDb, RpmTool},
    units::{unit_entries, UnitRole},
    ResolveError, Root,
};
use crate::policy::{
    self, validate::signal_name, CompiledCommands, Location, Mode, PathPattern, Policy, RuleBody,
};

/// Directories searched for command binaries, as a root shell's PATH.
pub const EXEC_PATH: &[&str] = &[
    "/usr/local/sbin",
    "/usr/local/bin",
    "/usr/sbin",
    "/usr/bin",
    "/sbin",
    "/bin",
];

fn serialize_key<S: Serializer>(key: &InodeKey, s: S) -> Result<S::Ok, S::Error> {
    #[derive(Serialize)]
    struct Key {
        dev: String,
        ino: u64,
    }
    Key {
        dev: format!("{}:{}", key.major(), key.minor()),
        ino: key.ino,
    }
    .serialize(s)
}

/// The policy a rule set came from.
#[derive(Clone, Debug, Serialize)]
pub struct PolicyInfo {
    pub file: String,
    pub environment: String,
    pub sha256: String,
    pub mode: Mode,
}

/// A rule as the kernel and the audit log know it.
#[derive(Clone, Debug, Serialize)]
pub struct RuleInfo {
    /// The id the kernel carries in events (1-based).
    pub id: u32,
    pub name: String,
    #[serde(serialize_with = "serialize_kind")]
    pub kind: RuleKind,
    pub mode: Mode,
    pub location: Location,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Packages rules: whether the package manager may replace the files.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upgrade: Option<policy::Upgrade>,
    /// Trees rules: only removal and renames are refused, not writes.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub allow_writes: bool,
    /// Processes rules: bit n set refuses signal n.
    #[serde(skip_serializing_if = "is_zero")]
    pub signal_mask: u64,
}

fn serialize_kind<S: Serializer>(kind: &RuleKind, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(kind.as_str())
}

fn is_zero(v: &u64) -> bool {
    *v == 0
}

impl RuleInfo {
    /// The slot of the kernel's rule table.
    pub fn entry(&self) -> RuleEntry {
        RuleEntry {
            flags: if self.mode == Mode::Enforce {
                RULE_ENFORCE
            } else {
                0
            },
            kind: self.kind as u32,
        }
    }
}

/// Why an object is protected.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "from", rename_all = "kebab-case")]
pub enum Origin {
    Package {
        package: String,
        conffile: bool,
    },
    Path {
        pattern: String,
    },
    Unit {
        unit: String,
        role: UnitRole,
    },
    /// Present in an `allow_writes` (configuration) tree when the daemon first resolved it.
    TreeEntry {
        tree: PathBuf,
    },
}

impl Origin {
    /// A configuration file: edits pass, removal and renaming away are refused.
    pub fn is_editable(&self) -> bool {
        matches!(
            self,
            Origin::Package { conffile: true, .. } | Origin::TreeEntry { .. }
        )
    }
}

/// What each configuration (`allow_writes`) tree held when it was first resolved: tree
/// path → the paths of its entries. Only these are refused removal; what is created later
/// (temp files, swap files, backups) is not. A daemon resolves its trees once and passes
/// the result back in, so a reload never adopts an editor's temp file.
pub type EditableBaseline = BTreeMap<PathBuf, Vec<PathBuf>>;

/// How many entries of one configuration tree are protected; the rest are reported.
pub const MAX_EDITABLE_ENTRIES: usize = 10_000;

/// A protected file (or link, or socket) by identity.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ResolvedObject {
    /// The path inside the root.
    pub path: PathBuf,
    #[serde(serialize_with = "serialize_key")]
    pub key: InodeKey,
    pub rule: u32,
    pub origin: Origin,
}

/// A protected directory with its subtree, or a subtree excluded from one.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ResolvedTree {
    pub path: PathBuf,
    #[serde(serialize_with = "serialize_key")]
    pub key: InodeKey,
    pub rule: u32,
    /// Only removal and renames are refused.
    pub allow_writes: bool,
}

/// A subtree excluded by its name below a tree root.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ExcludedChild {
    /// The excluded path (it need not exist).
    pub path: PathBuf,
    #[serde(serialize_with = "serialize_key")]
    pub tree: InodeKey,
    pub name: String,
    pub rule: u32,
}

/// An executable by identity, tied to the rule it matters for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ResolvedExe {
    pub path: PathBuf,
    #[serde(serialize_with = "serialize_key")]
    pub key: InodeKey,
    pub rule: u32,
}

/// A command binary by identity → its class, for execs under another name (a hard link).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ExeClass {
    pub path: PathBuf,
    #[serde(serialize_with = "serialize_key")]
    pub key: InodeKey,
    pub class: u32,
}

/// An executable that may run destructive commands of some classes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TrustedCaller {
    pub path: PathBuf,
    #[serde(serialize_with = "serialize_key")]
    pub key: InodeKey,
    /// Bit c: trusted for class c.
    pub classes: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ItemState {
    Installed,
    /// Known to the package manager but not fully installed (config-files, half-installed).
    Partial,
    NotInstalled,
    Present,
    NotPresent,
    /// Could not be looked up here (no rpm to read an rpm database).
    Unavailable,
}

impl ItemState {
    pub fn as_str(self) -> &'static str {
        match self {
            ItemState::Installed => "installed",
            ItemState::Partial => "partly installed",
            ItemState::NotInstalled => "not installed here",
            ItemState::Present => "present",
            ItemState::NotPresent => "not present here",
            ItemState::Unavailable => "unavailable",
        }
    }
}

/// One entry of a rule (a package, a path, a unit, …) and what it resolved to.
#[derive(Clone, Debug, Serialize)]
pub struct ItemReport {
    pub name: String,
    pub state: ItemState,
    pub detail: String,
    pub objects: usize,
}

#[derive(Clone, Debug, Serialize)]
pub struct RuleReport {
    pub rule: u32,
    pub items: Vec<ItemReport>,
    /// Kernel objects this rule contributes (files, trees, executables).
    pub objects: usize,
}

/// Something the operator should know that doesn't stop the policy from loading.
#[derive(Clone, Debug, Serialize)]
pub struct Warning {
    pub file: String,
    pub location: Location,
    pub message: String,
}

impl std::fmt::Display for Warning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}:{}:{}: warning: {}",
            self.file, self.location.line, self.location.col, self.message
        )
    }
}

/// Everything a policy protects on one host.
#[derive(Clone, Debug, Serialize)]
pub struct RuleSet {
    pub policy: PolicyInfo,
    pub root: PathBuf,
    /// `rules[i].id == i + 1`.
    pub rules: Vec<RuleInfo>,
    /// File layer: one entry per (dev, ino); the first rule to claim an inode keeps it,
    /// unless a later one enforces and the first only audits.
    pub objects: Vec<ResolvedObject>,
    /// Trees whose every entry is refused (data trees). Configuration (`allow_writes`)
    /// trees are here too; the kernel tables protect their entries as objects.
    pub trees: Vec<ResolvedTree>,
    pub tree_exclusions: Vec<ResolvedTree>,
    /// Subtrees excluded by name, directly below a tree root: they hold for a directory
    /// of that name whenever it appears.
    pub excluded_children: Vec<ExcludedChild>,
    /// The entries of each configuration tree this resolution protected.
    pub editable_baseline: EditableBaseline,
    pub trusted_writers: Vec<ResolvedExe>,
    /// Process layer.
    pub processes: Vec<ResolvedExe>,
    pub supervisors: Vec<ResolvedExe>,
    /// Exec layer, host-dependent half (the tables are in `commands`).
    pub exe_classes: Vec<ExeClass>,
    pub trusted_callers: Vec<TrustedCaller>,
    pub package_databases: Vec<String>,
    /// Units whose unit file a package of a `[[packages]]` rule ships, with those
    /// packages: a window that allows removing the package lets its maintainer scripts
    /// stop and disable the unit.
    pub unit_packages: BTreeMap<String, BTreeSet<String>>,
    pub reports: Vec<RuleReport>,
    pub warnings: Vec<Warning>,
    #[serde(skip)]
    pub commands: CompiledCommands,
}

impl RuleSet {
    pub fn rule(&self, id: u32) -> Option<&RuleInfo> {
        id.checked_sub(1).and_then(|i| self.rules.get(i as usize))
    }

    /// The kernel's rule table: (id, entry) for every rule.
    pub fn rule_entries(&self) -> Vec<(u32, RuleEntry)> {
        self.rules.iter().map(|r| (r.id, r.entry())).collect()
    }

    /// Class of an executable by identity, [`NO_CLASS`] if none.
    pub fn exe_class(&self, key: &InodeKey) -> u32 {
        self.exe_classes
            .iter()
            .find(|e| e.key == *key)
            .map_or(NO_CLASS, |e| e.class)
    }

    /// Classes the executable may run destructive commands of.
    pub fn trusted_classes(&self, key: &InodeKey) -> u32 {
        self.trusted_callers
            .iter()
            .filter(|t| t.key == *key)
            .fold(0, |mask, t| mask | t.classes)
    }

    /// Fills the host-dependent fields of a command line: the class of the executed file
    /// by inode and the classes its caller is trusted for.
    pub fn annotate(
        &self,
        line: &mut CommandLine,
        exe: Option<&InodeKey>,
        caller: Option<&InodeKey>,
    ) {
        if let Some(exe) = exe {
            line.exe_class = self.exe_class(exe);
        }
        if let Some(caller) = caller {
            line.trusted_classes = self.trusted_classes(caller);
        }
    }
}

/// How resolution runs.
#[derive(Clone, Debug)]
pub struct ResolveOptions {
    /// The root the policy's paths are read under; `/` on a live host.
    pub root: PathBuf,
    pub rpm: RpmTool,
    /// Configuration trees resolved before ([`RuleSet::editable_baseline`]); trees not in
    /// it are listed now.
    pub editable_baseline: EditableBaseline,
}

impl Default for ResolveOptions {
    fn default() -> Self {
        Self {
            root: PathBuf::from("/"),
            rpm: RpmTool::Auto,
            editable_baseline: EditableBaseline::new(),
        }
    }
}

struct Builder<'a> {
    policy: &'a Policy,
    baseline: &'a EditableBaseline,
    root: Root,
    set: RuleSet,
    by_key: HashMap<InodeKey, usize>,
    /// Files of protected packages by identity → the packages listing them.
    package_files: HashMap<InodeKey, BTreeSet<String>>,
    /// Unit files by identity, with the unit they belong to.
    unit_files: Vec<(String, InodeKey)>,
}

impl Builder<'_> {
    fn warn(&mut self, location: Location, message: String) {
        self.set.warnings.push(Warning {
            file: self.policy.source.name.clone(),
            location,
            message,
        });
    }

    fn mode_of(&self, rule: u32) -> Mode {
        self.policy.rule(rule).map_or(Mode::Audit, |r| r.mode)
    }

    /// Adds a file-layer object; false when this rule already had that inode.
    fn object(&mut self, object: ResolvedObject) -> bool {
        match self.by_key.get(&object.key) {
            Some(&i) => {
                let owner = self.set.objects[i].rule;
                if owner == object.rule {
                    return false;
                }
                if self.mode_of(object.rule) > self.mode_of(owner) {
                    self.set.objects[i] = object;
                }
                true
            }
            None => {
                self.by_key.insert(object.key, self.set.objects.len());
                self.set.objects.push(object);
                true
            }
        }
    }

    /// lstat a path inside the root; NotFound is `None`, other errors are warnings.
    fn lstat(&mut self, path: &Path, at: Location) -> Option<(PathBuf, std::fs::Metadata)> {
        match self.root.lstat(path) {
            Ok(found) => Some(found),
            Err(e) if not_found(&e) => None,
            Err(e) => {
                self.warn(at, format!("cannot inspect {}: {e}", path.display()));
                None
            }
        }
    }

    fn stat(&mut self, path: &Path, at: Location) -> Option<(PathBuf, InodeKey)> {
        match self.root.stat(path) {
            Ok(found) => Some(found),
            Err(e) if not_found(&e) => None,
            Err(e) => {
                self.warn(at, format!("cannot inspect {}: {e}", path.display()));
                None
            }
        }
    }

    /// A file named by the policy or a package: the entry itself (a link stays a link),
    /// and for a link also what it points to inside the root. Directories are skipped
    /// when `files_only` (package lists name shared directories such as /usr/bin).
    fn file(
        &mut self,
        path: &Path,
        rule: u32,
        origin: &Origin,
        files_only: bool,
        at: Location,
    ) -> Option<usize> {
        let (_, meta) = self.lstat(path, at)?;
        if files_only && meta.is_dir() {
            return Some(0);
        }
        let key = inode_key(&meta);
        self.owned(key, origin);
        let mut added = usize::from(self.object(ResolvedObject {
            path: path.to_owned(),
            key,
            rule,
            origin: origin.clone(),
        }));
        if meta.file_type().is_symlink() {
            if let Some((host, key)) = self.stat(path, at) {
                if !(files_only && host.is_dir()) {
                    self.owned(key, origin);
                    added += usize::from(self.object(ResolvedObject {
                        path: self.root.inside(&host),
                        key,
                        rule,
                        origin: origin.clone(),
                    }));
                }
            }
        }
        Some(added)
    }

    /// Protects the entries of the configuration tree at `tree`: those of the baseline
    /// when it has the tree (the ones still there), else what the tree holds now, which
    /// becomes its baseline. Returns how many were protected.
    fn editable_entries(&mut self, tree: &Path, rule: &policy::Rule) -> usize {
        let paths = match self.baseline.get(tree) {
            Some(known) => known.clone(),
            None => self.list_tree(tree, rule.location),
        };
        let origin = Origin::TreeEntry {
            tree: tree.to_owned(),
        };
        let mut kept = Vec::new();
        let mut added = 0;
        for path in paths {
            let Some((_, meta)) = self.lstat(&path, rule.location) else {
                continue;
            };
            added += usize::from(self.object(ResolvedObject {
                path: path.clone(),
                key: inode_key(&meta),
                rule: rule.id,
                origin: origin.clone(),
            }));
            kept.push(path);
        }
        // A baseline path that is gone stays in the baseline: if it comes back (an
        // operator restores it), it is configuration again.
        let baseline = match self.baseline.get(tree) {
            Some(known) => known.clone(),
            None => kept,
        };
        self.set.editable_baseline.insert(tree.to_owned(), baseline);
        added
    }

    /// Every entry below `tree` (not the tree itself), without following links, in
    /// sorted order, at most [`MAX_EDITABLE_ENTRIES`].
    fn list_tree(&mut self, tree: &Path, at: Location) -> Vec<PathBuf> {
        let mut found = Vec::new();
        let mut pending = vec![tree.to_owned()];
        while let Some(dir) = pending.pop() {
            let Some((host, _)) = self.lstat(&dir, at) else {
                continue;
            };
            let entries = match std::fs::read_dir(&host) {
                Ok(entries) => entries,
                Err(e) => {
                    self.warn(at, format!("cannot list {}: {e}", dir.display()));
                    continue;
                }
            };
            let mut names: Vec<_> = entries.filter_map(|e| e.ok()).collect();
            names.sort_by_key(|e| e.file_name());
            for entry in names {
                if found.len() == MAX_EDITABLE_ENTRIES {
                    let message = format!(
                        "{} has more than {MAX_EDITABLE_ENTRIES} entries; only the first are \
                         protected from removal",
                        tree.display()
                    );
                    self.warn(at, message);
                    return found;
                }
                let path = dir.join(entry.file_name());
                if entry.file_type().is_ok_and(|t| t.is_dir()) {
                    pending.push(path.clone());
                }
                found.push(path);
            }
        }
        found.sort();
        found
    }

    /// Remembers which package ships a file and which unit a unit file is, whichever rule
    /// ends up owning the inode, to tie units to their packages.
    fn owned(&mut self, key: InodeKey, origin: &Origin) {
        match origin {
            Origin::Package { package, .. } => {
                self.package_files
                    .entry(key)
                    .or_default()
                    .insert(package.clone());
            }
            Origin::Unit {
                unit,
                role: UnitRole::UnitFile,
            } => self.unit_files.push((unit.clone(), key)),
            _ => {}
        }
    }

    /// In-root paths a pattern names that exist.
    fn expand(&mut self, pattern: &PathPattern) -> Vec<PathBuf> {
        let Some(glob) = &pattern.glob else {
            let path = PathBuf::from(&pattern.text);
            return match self.lstat(&path, pattern.location) {
                Some(_) => vec![path],
                None => Vec::new(),
            };
        };
        // Walk from the longest literal directory, as deep as the pattern reaches.
        let mut base = PathBuf::from("/");
        let mut depth = 0usize;
        let mut literal = true;
        for part in Path::new(&pattern.text).components().skip(1) {
            let text = part.as_os_str().to_string_lossy();
            if literal && !text.contains(['*', '?', '[', '{']) {
                base.push(part);
            } else {
                literal = false;
                depth = if text.contains("**") {
                    32
                } else {
                    depth.saturating_add(1)
                };
            }
        }
        if literal {
            depth = 0;
        }
        let mut found = Vec::new();
        let Ok(host) = self.root.resolve(&base, true) else {
            return found;
        };
        walk(&host, &base, depth, &mut |inside| {
            if glob.is_match(inside) {
                found.push(inside.to_owned());
            }
        });
        found.sort();
        found
    }

    /// Executables a list of patterns names, by the identity of what they run.
    fn exes(&mut self, patterns: &[PathPattern], rule: u32) -> (Vec<ResolvedExe>, Vec<ItemReport>) {
        let mut exes = Vec::new();
        let mut items = Vec::new();
        for pattern in patterns {
            let mut count = 0;
            for path in self.expand(pattern) {
                if let Some((host, key)) = self.stat(&path, pattern.location) {
                    if host.is_file() && !exes.iter().any(|e: &ResolvedExe| e.key == key) {
                        exes.push(ResolvedExe { path, key, rule });
                        count += 1;
                    }
                }
            }
            items.push(item(&pattern.text, count, "executable"));
        }
        (exes, items)
    }
}

fn item(name: &str, count: usize, what: &str) -> ItemReport {
    if count == 0 {
        ItemReport {
            name: name.to_owned(),
            state: ItemState::NotPresent,
            detail: String::new(),
            objects: 0,
        }
    } else {
        ItemReport {
            name: name.to_owned(),
            state: ItemState::Present,
            detail: format!("{count} {what}{}", if count == 1 { "" } else { "s" }),
            objects: count,
        }
    }
}

fn not_found(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
    )
}

/// Depth-first walk without following symlinked directories (no loops, no escapes).
fn walk(host: &Path, inside: &Path, depth: usize, visit: &mut dyn FnMut(&Path)) {
    visit(inside);
    if depth == 0 {
        return;
    }
    let Ok(entries) = std::fs::read_dir(host) else {
        return;
    };
    let mut entries: Vec<_> = entries.filter_map(Result::ok).collect();
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let name = entry.file_name();
        let child_host = host.join(&name);
        let child_inside = inside.join(&name);
        match entry.file_type() {
            Ok(t) if t.is_dir() => walk(&child_host, &child_inside, depth - 1, visit),
            Ok(_) => visit(&child_inside),
            Err(_) => {}
        }
    }
}

/// Resolves a checked policy against a root: the command tables, then every rule in order.
pub fn resolve(policy: &Policy, options: &ResolveOptions) -> Result<RuleSet, ResolveError> {
    let commands = policy::compile(policy)?;
    let meta = std::fs::metadata(&options.root).map_err(|source| ResolveError::Root {
        path: options.root.clone(),
        source,
    })?;
    if !meta.is_dir() {
        return Err(ResolveError::Root {
            path: options.root.clone(),
            source: io::Error::from(io::ErrorKind::NotADirectory),
        });
    }
    let root = Root::new(&options.root);
    let dpkg = DpkgDb::open(&root).map_err(|source| ResolveError::PackageDb {
        what: "dpkg",
        source,
    })?;
    let rpm = RpmDb::open(&root, &options.rpm);
    let mut package_databases = Vec::new();
    match &dpkg {
        Some(db) if db.has_status => package_databases.push("dpkg".to_owned()),
        Some(_) => {
            package_databases.push("dpkg (no status file: installed state unknown)".to_owned())
        }
        None => {}
    }
    match &rpm {
        RpmDb::Absent => {}
        RpmDb::Available { bin, .. } => {
            package_databases.push(format!("rpm (via {})", bin.display()))
        }
        RpmDb::Unavailable(why) => package_databases.push(format!("rpm: unavailable, {why}")),
    }

    let rules = policy
        .rules
        .iter()
        .map(|r| RuleInfo {
            id: r.id,
            name: r.name.clone(),
            kind: r.kind(),
            mode: r.mode,
            location: r.location,
            description: r.description.clone(),
            upgrade: match &r.body {
                RuleBody::Packages { upgrade, .. } => Some(*upgrade),
                _ => None,
            },
            allow_writes: matches!(
                r.body,
                RuleBody::Trees {
                    allow_writes: true,
                    ..
                }
            ),
            signal_mask: match &r.body {
                RuleBody::Processes { signals, .. } => {
                    signals.iter().fold(0u64, |m, &s| m | 1u64 << s)
                }
                _ => 0,
            },
        })
        .collect();
    let mut b = Builder {
        policy,
        baseline: &options.editable_baseline,
        root,
        set: RuleSet {
            policy: PolicyInfo {
                file: policy.source.name.clone(),
                environment: policy.environment.clone(),
                sha256: policy.sha256.clone(),
                mode: policy.mode,
            },
            root: options.root.clone(),
            rules,
            objects: Vec::new(),
            trees: Vec::new(),
            tree_exclusions: Vec::new(),
            excluded_children: Vec::new(),
            editable_baseline: EditableBaseline::new(),
            trusted_writers: Vec::new(),
            processes: Vec::new(),
            supervisors: Vec::new(),
            exe_classes: Vec::new(),
            trusted_callers: Vec::new(),
            package_databases,
            unit_packages: BTreeMap::new(),
            reports: Vec::new(),
            warnings: Vec::new(),
            commands,
        },
        by_key: HashMap::new(),
        package_files: HashMap::new(),
        unit_files: Vec::new(),
    };

    for rule in &policy.rules {
        let (items, objects) = match &rule.body {
            RuleBody::Packages { packages, .. } => {
                packages_rule(&mut b, rule.id, packages, dpkg.as_ref(), &rpm)
            }
            RuleBody::Paths { paths } => paths_rule(&mut b, rule.id, paths),
            RuleBody::Trees {
                paths,
                trusted_writers,
                exclude,
                allow_writes,
            } => trees_rule(&mut b, rule, paths, trusted_writers, exclude, *allow_writes),
            RuleBody::Services { units } => services_rule(&mut b, rule.id, rule.location, units),
            RuleBody::Netfilter { .. } => netfilter_rule(&mut b, rule),
            RuleBody::Processes {
                exe,
                supervisors,
                signals,
            } => processes_rule(&mut b, rule.id, exe, supervisors, signals),
        };
        if objects == 0 && !matches!(rule.body, RuleBody::Netfilter { .. }) {
            let message = format!("rule `{}` resolves to nothing on this host", rule.name);
            b.warn(rule.location, message);
        }
        b.set.reports.push(RuleReport {
            rule: rule.id,
            items,
            objects,
        });
    }
    command_exes(&mut b);
    for (unit, key) in &b.unit_files {
        if let Some(packages) = b.package_files.get(key) {
            b.set
                .unit_packages
                .entry(unit.clone())
                .or_default()
                .extend(packages.iter().cloned());
        }
    }
    Ok(b.set)
}

fn packages_rule(
    b: &mut Builder<'_>,
    rule: u32,
    packages: &[policy::PackageSpec],
    dpkg: Option<&DpkgDb>,
    rpm: &RpmDb,
) -> (Vec<ItemReport>, usize) {
    let mut items = Vec::new();
    let mut total = 0;
    for spec in packages {
        let found = dpkg.map(|db| db.find(spec)).unwrap_or_default();
        if let (Some(db), false) = (dpkg, found.is_empty()) {
            for pkg in found {
                let files = db.files(pkg).unwrap_or_else(|e| {
                    b.warn(
                        spec.location,
                        format!("cannot read the file list of {}: {e}", pkg.name),
                    );
                    Vec::new()
                });
                let conffiles = db.conffiles(pkg).unwrap_or_default();
                let mut count = 0;
                let mut missing = 0;
                for path in &files {
                    let origin = Origin::Package {
                        package: pkg.name.clone(),
                        conffile: conffiles.contains(path),
                    };
                    match b.file(path, rule, &origin, true, spec.location) {
                        Some(n) => count += n,
                        None => missing += 1,
                    }
                }
                let state = if pkg.is_installed() || pkg.state == "unknown" {
                    ItemState::Installed
                } else {
                    ItemState::Partial
                };
                let mut detail = format!(
                    "dpkg {}{}{}: {} files protected ({} conffiles)",
                    pkg.state,
                    pkg.version
                        .as_deref()
                        .map(|v| format!(" {v}"))
                        .unwrap_or_default(),
                    pkg.arch
                        .as_deref()
                        .map(|a| format!(" {a}"))
                        .unwrap_or_default(),
                    count,
                    conffiles.len()
                );
                if missing > 0 {
                    detail.push_str(&format!(", {missing} listed paths missing on disk"));
                    let message = format!(
                        "package {} is {} but {missing} of its {} listed paths are missing",
                        pkg.name,
                        pkg.state,
                        files.len()
                    );
                    b.warn(spec.location, message);
                }
                total += count;
                items.push(ItemReport {
                    name: match &pkg.arch {
                        Some(a) => format!("{}:{a}", pkg.name),
                        None => pkg.name.clone(),
                    },
                    state,
                    detail,
                    objects: count,
                });
            }
            continue;
        }
        let rpm_found = match rpm.find(&spec.name, spec.wildcard) {
            Ok(found) => found,
            Err(e) => {
                b.warn(spec.location, e);
                Vec::new()
            }
        };
        if rpm_found.is_empty() {
            let detail = match rpm {
                RpmDb::Unavailable(why) => format!("not in the dpkg database; rpm {why}"),
                _ => String::new(),
            };
            let state = match rpm {
                RpmDb::Unavailable(_) if dpkg.is_none() => ItemState::Unavailable,
                _ => ItemState::NotInstalled,
            };
            items.push(ItemReport {
                name: spec.text.clone(),
                state,
                detail,
                objects: 0,
            });
            continue;
        }
        for pkg in rpm_found {
            let files = rpm.files(&pkg).unwrap_or_else(|e| {
                b.warn(spec.location, e);
                Vec::new()
            });
            let mut count = 0;
            for path in &files {
                let origin = Origin::Package {
                    package: pkg.name.clone(),
                    conffile: false,
                };
                count += b
                    .file(path, rule, &origin, true, spec.location)
                    .unwrap_or(0);
            }
            total += count;
            items.push(ItemReport {
                name: pkg.name.clone(),
                state: ItemState::Installed,
                detail: format!("rpm {}.{}: {count} files protected", pkg.version, pkg.arch),
                objects: count,
            });
        }
    }
    (items, total)
}

fn paths_rule(b: &mut Builder<'_>, rule: u32, paths: &[PathPattern]) -> (Vec<ItemReport>, usize) {
    let mut items = Vec::new();
    let mut total = 0;
    for pattern in paths {
        let origin = Origin::Path {
            pattern: pattern.text.clone(),
        };
        let mut count = 0;
        for path in b.expand(pattern) {
            count += b
                .file(&path, rule, &origin, false, pattern.location)
                .unwrap_or(0);
        }
        total += count;
        items.push(item(&pattern.text, count, "object"));
    }
    (items, total)
}

fn trees_rule(
    b: &mut Builder<'_>,
    rule: &policy::Rule,
    paths: &[PathBuf],
    trusted_writers: &[PathPattern],
    exclude: &[PathBuf],
    allow_writes: bool,
) -> (Vec<ItemReport>, usize) {
    let mut items = Vec::new();
    let mut total = 0;
    for (list, is_exclusion) in [(paths, false), (exclude, true)] {
        for path in list {
            let found = b.stat(path, rule.location);
            let entry = match found {
                Some((host, key)) if host.is_dir() => Some(ResolvedTree {
                    path: path.clone(),
                    key,
                    rule: rule.id,
                    allow_writes,
                }),
                Some(_) => {
                    let message = format!("{} is not a directory", path.display());
                    b.warn(rule.location, message);
                    None
                }
                None => None,
            };
            let name = if is_exclusion {
                format!("{} (excluded)", path.display())
            } else {
                path.display().to_string()
            };
            let mut report = item(&name, usize::from(entry.is_some()), "directory");
            if let Some(tree) = entry {
                report.detail = if is_exclusion {
                    "left to whoever writes it".to_owned()
                } else if allow_writes {
                    let entries = b.editable_entries(path, rule);
                    total += entries;
                    format!(
                        "configuration: {entries} entries present, not removable or \
                         renamed away; edits and new files pass"
                    )
                } else {
                    "subtree: removal, renames and writes refused".to_owned()
                };
                if is_exclusion {
                    b.set.tree_exclusions.push(tree);
                    report.objects = 0;
                } else {
                    b.set.trees.push(tree);
                    total += 1;
                }
            }
            if is_exclusion {
                if let Some(by_name) = excluded_by_name(b, rule, path) {
                    report.detail = match report.state {
                        ItemState::Present => format!("{}; excluded by name", report.detail),
                        _ => "excluded by name: holds once it exists".to_owned(),
                    };
                    b.set.excluded_children.push(by_name);
                }
            }
            items.push(report);
        }
    }
    let (writers, writer_items) = b.exes(trusted_writers, rule.id);
    for mut w in writer_items {
        w.name = format!("trusted writer {}", w.name);
        items.push(w);
    }
    b.set.trusted_writers.extend(writers);
    (items, total)
}

/// An exclusion directly below one of the rule's trees holds by name, for a directory
/// created later too. One deeper down can only be held by identity, so it must exist
/// when the policy is resolved; that is worth a warning.
fn excluded_by_name(
    b: &mut Builder<'_>,
    rule: &policy::Rule,
    path: &Path,
) -> Option<ExcludedChild> {
    let parent = path.parent()?;
    let tree = b
        .set
        .trees
        .iter()
        .find(|t| t.rule == rule.id && t.path == parent)
        .map(|t| t.key);
    let name = path.file_name()?.to_str()?.to_owned();
    match tree {
        Some(tree) if ExcludedChildKey::new(tree, name.as_bytes()).is_some() => {
            Some(ExcludedChild {
                path: path.to_owned(),
                tree,
                name,
                rule: rule.id,
            })
        }
        // The tree itself is missing here: nothing to exclude from.
        None if !b.set.trees.iter().any(|t| path.starts_with(&t.path)) => None,
        _ => {
            let message = format!(
                "excluded `{}` is not directly below a tree (or its name is longer than \
                 {EXCLUDED_NAME_LEN} bytes): it holds only for the directory there when the \
                 policy is resolved",
                path.display()
            );
            b.warn(rule.location, message);
            None
        }
    }
}

fn services_rule(
    b: &mut Builder<'_>,
    rule: u32,
    at: Location,
    units: &[String],
) -> (Vec<ItemReport>, usize) {
    let mut items = Vec::new();
    let mut total = 0;
    for unit in units {
        let entries = match unit_entries(&b.root, unit) {
            Ok(entries) => entries,
            Err(e) => {
                b.warn(
                    at,
                    format!("cannot search the unit directories for {unit}: {e}"),
                );
                Vec::new()
            }
        };
        let mut count = 0;
        let mut parts: Vec<String> = Vec::new();
        let mut masked = Vec::new();
        for entry in &entries {
            if entry.role == UnitRole::Mask {
                // Unmasking is not destructive; a mask is reported, not protected.
                masked.push(entry.path.display().to_string());
                continue;
            }
            let origin = Origin::Unit {
                unit: unit.clone(),
                role: entry.role,
            };
            if let Some(n) = b.file(&entry.path, rule, &origin, false, at) {
                count += n;
                parts.push(format!("{} {}", entry.role.as_str(), entry.path.display()));
            }
        }
        if !masked.is_empty() {
            b.warn(at, format!("{unit} is masked here ({})", masked.join(", ")));
        }
        total += count;
        items.push(ItemReport {
            name: unit.clone(),
            state: if count > 0 {
                ItemState::Present
            } else {
                ItemState::NotInstalled
            },
            detail: parts.join("; "),
            objects: count,
        });
    }
    (items, total)
}

fn netfilter_rule(b: &mut Builder<'_>, rule: &policy::Rule) -> (Vec<ItemReport>, usize) {
    let RuleBody::Netfilter {
        chains,
        tables,
        sets,
    } = &rule.body
    else {
        return (Vec::new(), 0);
    };
    let mut items = Vec::new();
    for (kind, names) in [
        (policy::ObjectKind::Chains, chains),
        (policy::ObjectKind::Tables, tables),
        (policy::ObjectKind::Sets, sets),
    ] {
        if names.is_empty() {
            continue;
        }
        let classes: Vec<&str> = b
            .policy
            .commands
            .iter()
            .filter(|c| c.objects.contains(&kind))
            .map(|c| c.name.as_str())
            .collect();
        if classes.is_empty() {
            let message = format!(
                "rule `{}` protects {} but no command class names {}",
                rule.name,
                kind.as_str(),
                kind.as_str()
            );
            b.warn(rule.location, message);
        }
        for n in names {
            items.push(ItemReport {
                name: n.text.clone(),
                state: ItemState::Present,
                detail: format!(
                    "{} named by: {}",
                    kind.as_str().trim_end_matches('s'),
                    classes.join(", ")
                ),
                objects: 0,
            });
        }
    }
    (items, 0)
}

fn processes_rule(
    b: &mut Builder<'_>,
    rule: u32,
    exe: &[PathPattern],
    supervisors: &[PathPattern],
    signals: &[u32],
) -> (Vec<ItemReport>, usize) {
    let (exes, mut items) = b.exes(exe, rule);
    let total = exes.len();
    b.set.processes.extend(exes);
    let (sups, sup_items) = b.exes(supervisors, rule);
    b.set.supervisors.extend(sups);
    for mut s in sup_items {
        s.name = format!("supervisor {}", s.name);
        items.push(s);
    }
    let names: Vec<&str> = signals.iter().filter_map(|&s| signal_name(s)).collect();
    items.push(ItemReport {
        name: "signals".to_owned(),
        state: ItemState::Present,
        detail: format!(
            "refused from anyone but pid 1 and the supervisors: {}",
            names.join(" ")
        ),
        objects: 0,
    });
    (items, total)
}

/// Binds command classes to executables by identity: each class binary found on the
/// PATH (unique to one class), and each class's trusted callers.
fn command_exes(b: &mut Builder<'_>) {
    let policy = b.policy;
    let mut by_key: HashMap<InodeKey, (PathBuf, Option<u32>)> = HashMap::new();
    for (class_id, class) in policy.commands.iter().enumerate() {
        for binary in &class.binaries {
            for dir in EXEC_PATH {
                let path = Path::new(dir).join(binary);
                let Ok((host, key)) = b.root.stat(&path) else {
                    continue;
                };
                if !host.is_file() {
                    continue;
                }
                by_key
                    .entry(key)
                    .and_modify(|(_, class)| {
                        // A multi-call binary behind several classes: the name decides.
                        if *class != Some(class_id as u32) {
                            *class = None;
                        }
                    })
                    .or_insert((path, Some(class_id as u32)));
            }
        }
        for pattern in &class.trusted_callers {
            for path in b.expand(pattern) {
                let Ok((host, key)) = b.root.stat(&path) else {
                    continue;
                };
                if !host.is_file() || class_id as u32 >= MAX_CLASSES {
                    continue;
                }
                let bit = 1u32 << class_id;
                match b.set.trusted_callers.iter_mut().find(|t| t.key == key) {
                    Some(t) => t.classes |= bit,
                    None => b.set.trusted_callers.push(TrustedCaller {
                        path,
                        key,
                        classes: bit,
                    }),
                }
            }
        }
    }
    let mut exe_classes: Vec<ExeClass> = by_key
        .into_iter()
        .filter_map(|(key, (path, class))| class.map(|class| ExeClass { path, key, class }))
        .collect();
    exe_classes.sort_by(|a, b| a.path.cmp(&b.path));
    b.set.exe_classes = exe_classes;
}
