//! Building a [`RuleSet`] from a checked policy: the package databases opened, every rule
//! resolved in order against the root (see `rules`), then the command binaries bound.

use std::{
    collections::{BTreeMap, BTreeSet, HashMap, HashSet},
    io,
    os::unix::fs::{DirEntryExt, MetadataExt},
    path::{Path, PathBuf},
};

use guard_common::{process::signal_bit, InodeKey};

use super::{
    report::item, EditableBaseline, ItemReport, Origin, PolicyInfo, ResolvedExe, ResolvedObject,
    RuleInfo, RuleReport, RuleSet, Warning, MAX_EDITABLE_ENTRIES,
};
use crate::{
    host::mount_table::MountTable,
    policy::{self, Location, Mode, PathPattern, Policy, RuleBody},
    resolve::{
        dpkg::DpkgDb,
        identity, inode_key,
        rpm::{RpmDb, RpmTool},
        units::UnitRole,
        ResolveError, Root,
    },
};

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

/// The state of one resolution: the rule set so far and what ties its parts together.
pub(super) struct Builder<'a> {
    pub(super) policy: &'a Policy,
    baseline: &'a EditableBaseline,
    pub(super) root: Root,
    pub(super) set: RuleSet,
    by_key: HashMap<InodeKey, usize>,
    /// Files of protected packages by identity → the packages listing them.
    package_files: HashMap<InodeKey, BTreeSet<String>>,
    /// Unit files by identity, with the unit they belong to.
    unit_files: Vec<(String, InodeKey)>,
    /// The mount points, for the globs' walks ([`Listing`]); `None` if unknown.
    mount_points: Option<HashSet<PathBuf>>,
}

impl Builder<'_> {
    pub(super) fn warn(&mut self, location: Location, message: String) {
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

    pub(super) fn stat(&mut self, path: &Path, at: Location) -> Option<(PathBuf, InodeKey)> {
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
    pub(super) fn file(
        &mut self,
        path: &Path,
        rule: u32,
        origin: &Origin,
        files_only: bool,
        at: Location,
    ) -> Option<usize> {
        let (_, meta) = self.lstat(path, at)?;
        self.file_found(path, Entry::of(&meta), rule, origin, files_only, at)
    }

    /// [`Builder::file`] with the entry already known (from a glob's walk).
    pub(super) fn file_found(
        &mut self,
        path: &Path,
        entry: Entry,
        rule: u32,
        origin: &Origin,
        files_only: bool,
        at: Location,
    ) -> Option<usize> {
        if files_only && entry.kind.is_dir() {
            return Some(0);
        }
        let key = entry.key;
        self.owned(key, origin);
        let mut added = usize::from(self.object(ResolvedObject {
            path: path.to_owned(),
            key,
            rule,
            origin: origin.clone(),
        }));
        if entry.kind.is_symlink() {
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
    pub(super) fn editable_entries(&mut self, tree: &Path, rule: &policy::Rule) -> usize {
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

    /// In-root paths a pattern names that exist, each as lstat(2) would find it (symlinks
    /// not followed). The glob's walk takes that from the directory it lists (see
    /// [`Listing`]), not from an lstat of every component of each path.
    pub(super) fn expand(&mut self, pattern: &PathPattern) -> Vec<Found> {
        let Some(glob) = &pattern.glob else {
            let path = PathBuf::from(&pattern.text);
            return match self.lstat(&path, pattern.location) {
                Some((_, meta)) => vec![Found {
                    path,
                    entry: Entry::of(&meta),
                }],
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
        let mut matched = Vec::new();
        let Ok(host) = self.root.resolve(&base, true) else {
            return Vec::new();
        };
        walk(
            &host,
            &base,
            depth,
            &self.mount_points,
            &mut |inside, entry| {
                if glob.is_match(inside) && !is_unpack_transient(inside) {
                    // The walk reaches entries through real directories only, so the entry
                    // is what `Root::lstat` of its in-root path would find, with the same
                    // st_dev (a btrfs subvolume's, for its root directory).
                    matched.push((inside.to_owned(), entry.map(Listed::entry)));
                }
            },
        );
        matched.sort_by(|a, b| a.0.cmp(&b.0));
        let mut found = Vec::with_capacity(matched.len());
        for (path, entry) in matched {
            // The walk's starting directory has no entry of its own; an entry that
            // vanished since its directory was listed is `Some(None)`.
            let entry = match entry {
                Some(entry) => entry,
                None => match self.lstat(&path, pattern.location) {
                    Some((_, meta)) => Some(Entry::of(&meta)),
                    None => continue,
                },
            };
            if let Some(entry) = entry {
                found.push(Found { path, entry });
            }
        }
        found
    }

    /// The identity a found path runs as (symlinks followed inside the root), when it
    /// is a regular file.
    pub(super) fn executable(&mut self, found: &Found, at: Location) -> Option<InodeKey> {
        if found.entry.kind.is_symlink() {
            let (host, key) = self.stat(&found.path, at)?;
            return host.is_file().then_some(key);
        }
        found.entry.kind.is_file().then_some(found.entry.key)
    }

    /// Executables a list of patterns names, by the identity of what they run.
    pub(super) fn exes(
        &mut self,
        patterns: &[PathPattern],
        rule: u32,
    ) -> (Vec<ResolvedExe>, Vec<ItemReport>) {
        let mut exes = Vec::new();
        let mut items = Vec::new();
        for pattern in patterns {
            let mut count = 0;
            for found in self.expand(pattern) {
                if let Some(key) = self.executable(&found, pattern.location) {
                    if !exes.iter().any(|e: &ResolvedExe| e.key == key) {
                        exes.push(ResolvedExe {
                            path: found.path,
                            key,
                            rule,
                            go_runtime: false,
                        });
                        count += 1;
                    }
                }
            }
            items.push(item(&pattern.text, count, "executable"));
        }
        (exes, items)
    }
}

fn signal_mask(signals: &[u32]) -> u64 {
    signals.iter().fold(0, |m, &s| m | signal_bit(s))
}

fn not_found(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
    )
}

/// A path a pattern named, and what lstat(2) says of it.
pub(super) struct Found {
    pub(super) path: PathBuf,
    pub(super) entry: Entry,
}

/// What resolution needs of an lstat(2): the kind of file and its identity.
#[derive(Clone, Copy, Debug)]
pub(super) struct Entry {
    pub(super) kind: std::fs::FileType,
    pub(super) key: InodeKey,
}

impl Entry {
    pub(super) fn of(meta: &std::fs::Metadata) -> Self {
        Self {
            kind: meta.file_type(),
            key: inode_key(meta),
        }
    }
}

/// The mount points in rtguard's mount namespace, or `None` if the table cannot be read
/// (then no directory entry is taken for its lstat).
fn read_mount_points() -> Option<HashSet<PathBuf>> {
    let mounts = MountTable::open().and_then(|mut table| table.read()).ok()?;
    Some(mounts.into_iter().map(|m| m.point).collect())
}

/// What a directory's listing tells of its entries. A directory entry carries the inode
/// number (`d_ino`) and the file type (`d_type`); on the filesystems below both are what
/// lstat(2) reports, and an entry that is not a directory has its directory's device (on
/// btrfs too: only a subvolume's root, a directory, has a device of its own). So a file
/// needs no lstat of its own. Not taken from the listing: directories (a mount point or a
/// subvolume root has another device), entries a file is mounted on (`d_ino` is the inode
/// underneath), and every entry on other filesystems (overlayfs's `d_ino` need not be
/// its `st_ino`) or when the mount points are not known.
struct Listing<'a> {
    /// The directory's `st_dev`, its canonical path and the mount points, where its
    /// entries can be taken from the listing.
    dir: Option<(u64, PathBuf, &'a HashSet<PathBuf>)>,
}

/// Filesystems whose directory entries give what lstat(2) gives.
const LISTED_AS_STAT: [nix::sys::statfs::FsType; 4] = [
    nix::sys::statfs::EXT4_SUPER_MAGIC,
    nix::sys::statfs::XFS_SUPER_MAGIC,
    nix::sys::statfs::BTRFS_SUPER_MAGIC,
    nix::sys::statfs::TMPFS_MAGIC,
];

impl<'a> Listing<'a> {
    /// The listing of the directory at `host`.
    fn of(host: &Path, mount_points: &'a Option<HashSet<PathBuf>>) -> Self {
        let dir = mount_points
            .as_ref()
            .filter(|_| {
                nix::sys::statfs::statfs(host)
                    .is_ok_and(|fs| LISTED_AS_STAT.contains(&fs.filesystem_type()))
            })
            .and_then(|points| {
                // The mount table names mount points by their canonical paths.
                Some((
                    std::fs::metadata(host).ok()?.dev(),
                    host.canonicalize().ok()?,
                    points,
                ))
            });
        Self { dir }
    }

    /// The device of the entry `name` of `kind`, when the listing can stand for its lstat.
    fn dev(&self, name: &std::ffi::OsStr, kind: std::fs::FileType) -> Option<u64> {
        let (dev, canonical, mount_points) = self.dir.as_ref()?;
        (!kind.is_dir() && !mount_points.contains(&canonical.join(name))).then_some(*dev)
    }
}

/// A directory entry met by [`walk`], with what it takes to know it as lstat(2) would.
struct Listed<'a> {
    entry: &'a std::fs::DirEntry,
    kind: std::fs::FileType,
    /// Its directory's device, when the entry can be known without an lstat.
    dev: Option<u64>,
}

impl Listed<'_> {
    /// The entry as lstat(2) finds it; `None` if it is gone.
    fn entry(self) -> Option<Entry> {
        match self.dev {
            Some(dev) => Some(Entry {
                kind: self.kind,
                key: identity(dev, self.entry.ino()),
            }),
            None => self.entry.metadata().ok().map(|m| Entry::of(&m)),
        }
    }
}

/// Depth-first walk without following symlinked directories (no loops, no escapes).
/// `visit` gets each in-root path and, below the start, its directory entry.
fn walk(
    host: &Path,
    inside: &Path,
    depth: usize,
    mount_points: &Option<HashSet<PathBuf>>,
    visit: &mut dyn FnMut(&Path, Option<Listed>),
) {
    visit(inside, None);
    walk_below(host, inside, depth, mount_points, visit);
}

fn walk_below(
    host: &Path,
    inside: &Path,
    depth: usize,
    mount_points: &Option<HashSet<PathBuf>>,
    visit: &mut dyn FnMut(&Path, Option<Listed>),
) {
    if depth == 0 {
        return;
    }
    let Ok(entries) = std::fs::read_dir(host) else {
        return;
    };
    let listing = Listing::of(host, mount_points);
    let mut entries: Vec<_> = entries.filter_map(Result::ok).collect();
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let name = entry.file_name();
        let child_host = host.join(&name);
        let child_inside = inside.join(&name);
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        let listed = Listed {
            entry: &entry,
            kind,
            dev: listing.dev(&name, kind),
        };
        visit(&child_inside, Some(listed));
        if kind.is_dir() {
            walk_below(&child_host, &child_inside, depth - 1, mount_points, visit);
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
                RuleBody::Processes { signals, .. } => signal_mask(signals),
                _ => 0,
            },
            handled_mask: match &r.body {
                RuleBody::Processes { handles, .. } => signal_mask(handles),
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
            protected_names: Vec::new(),
            editable_baseline: EditableBaseline::new(),
            trusted_writers: Vec::new(),
            processes: Vec::new(),
            supervisors: Vec::new(),
            exe_classes: Vec::new(),
            trusted_callers: Vec::new(),
            netfilter_names: Vec::new(),
            netfilter_classes: 0,
            package_databases,
            unit_packages: BTreeMap::new(),
            reports: Vec::new(),
            warnings: Vec::new(),
            commands,
        },
        by_key: HashMap::new(),
        package_files: HashMap::new(),
        unit_files: Vec::new(),
        mount_points: read_mount_points(),
    };

    for rule in &policy.rules {
        let (items, objects) = match &rule.body {
            RuleBody::Packages { packages, .. } => {
                b.packages_rule(rule.id, packages, dpkg.as_ref(), &rpm)
            }
            RuleBody::Paths { paths } => b.paths_rule(rule.id, paths),
            RuleBody::Trees {
                paths,
                trusted_writers,
                exclude,
                allow_writes,
            } => b.trees_rule(rule, paths, trusted_writers, exclude, *allow_writes),
            RuleBody::Services { units } => b.services_rule(rule.id, rule.location, units),
            RuleBody::Netfilter { .. } => b.netfilter_rule(rule),
            RuleBody::Processes {
                exe,
                supervisors,
                signals,
                handles,
            } => b.processes_rule(rule.id, rule.location, exe, supervisors, signals, handles),
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
    b.command_exes();
    b.removal_scripts();
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

/// A package manager's file of the moment, that a glob like `/usr/bin/containerd*` would
/// otherwise match: dpkg unpacks a new file as `NAME.dpkg-new` and keeps the old one as
/// `NAME.dpkg-tmp` until the unpack ends (rpm: `NAME;<8 hex digits>`). Protected, the
/// backup could not be removed, and the upgrade that made it would fail half-way.
fn is_unpack_transient(path: &Path) -> bool {
    let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
        return false;
    };
    let rpm_temp = name.rsplit_once(';').is_some_and(|(_, suffix)| {
        suffix.len() == 8 && suffix.bytes().all(|b| b.is_ascii_hexdigit())
    });
    name.ends_with(".dpkg-new") || name.ends_with(".dpkg-tmp") || rpm_temp
}
