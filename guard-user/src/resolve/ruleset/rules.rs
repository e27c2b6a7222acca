//! How each kind of rule resolves: packages through their package database, paths and
//! trees on disk, units through the unit directories, netfilter objects through the
//! command classes, processes by their executables; and the command classes' binaries.

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
};

use guard_common::{
    exec::{EXE_REMOVAL_SCRIPT, MAX_CLASSES},
    file::{ExcludedChildKey, EXCLUDED_NAME_LEN},
    netfilter, InodeKey,
};

use super::{
    build::Builder, report::item, ExcludedChild, ExeClass, ItemReport, ItemState, NetfilterName,
    Origin, ProtectedName, ResolvedTree, TrustedCaller,
};
use crate::{
    policy::{self, validate::signal_name, Location, PathPattern, RuleBody},
    resolve::{
        dpkg::{DpkgDb, DpkgPackage},
        rpm::RpmDb,
        units::{unit_entries, UnitRole},
    },
};

/// Unit directories whose files override the packaged units (systemd reads them first):
/// where `systemctl mask` and `systemctl edit --full` write.
pub const UNIT_OVERRIDE_DIRS: &[&str] = &["/etc/systemd/system", "/run/systemd/system"];

/// Directories searched for command binaries, as a root shell's PATH.
pub const EXEC_PATH: &[&str] = &[
    "/usr/local/sbin",
    "/usr/local/bin",
    "/usr/sbin",
    "/usr/bin",
    "/sbin",
    "/bin",
];

impl Builder<'_> {
    pub(super) fn packages_rule(
        &mut self,
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
                        self.warn(
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
                        match self.file(path, rule, &origin, true, spec.location) {
                            Some(n) => count += n,
                            None => missing += 1,
                        }
                    }
                    if files.is_empty() && pkg.is_installed() {
                        let message = format!(
                            "package {} is installed but dpkg lists no files for it \
                             (its info/{}.list is missing or empty): they are not protected",
                            pkg.name, pkg.name
                        );
                        self.warn(spec.location, message);
                    }
                    let records = self.package_records(db, pkg, rule, spec.location);
                    let state = if pkg.is_installed() || pkg.state == "unknown" {
                        ItemState::Installed
                    } else {
                        ItemState::Partial
                    };
                    let mut detail = format!(
                        "dpkg {}{}{}: {} files protected ({} conffiles), {records} dpkg records",
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
                        self.warn(spec.location, message);
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
                    self.warn(spec.location, e);
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
                    self.warn(spec.location, e);
                    Vec::new()
                });
                let mut count = 0;
                for path in &files {
                    let origin = Origin::Package {
                        package: pkg.name.clone(),
                        conffile: false,
                    };
                    count += self
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

    pub(super) fn paths_rule(
        &mut self,
        rule: u32,
        paths: &[PathPattern],
    ) -> (Vec<ItemReport>, usize) {
        let mut items = Vec::new();
        let mut total = 0;
        for pattern in paths {
            let origin = Origin::Path {
                pattern: pattern.text.clone(),
            };
            let mut count = 0;
            for found in self.expand(pattern) {
                count += self
                    .file_found(
                        &found.path,
                        found.entry,
                        rule,
                        &origin,
                        false,
                        pattern.location,
                    )
                    .unwrap_or(0);
            }
            total += count;
            items.push(item(&pattern.text, count, "object"));
        }
        (items, total)
    }

    pub(super) fn trees_rule(
        &mut self,
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
                let found = self.stat(path, rule.location);
                let entry = match found {
                    Some((host, key)) if host.is_dir() => Some(ResolvedTree {
                        path: path.clone(),
                        key,
                        rule: rule.id,
                        allow_writes,
                    }),
                    Some(_) => {
                        let message = format!("{} is not a directory", path.display());
                        self.warn(rule.location, message);
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
                        let entries = self.editable_entries(path, rule);
                        total += entries;
                        format!(
                            "configuration: {entries} entries present, not removable or \
                             renamed away; edits and new files pass"
                        )
                    } else {
                        "subtree: removal, renames and writes refused".to_owned()
                    };
                    if is_exclusion {
                        self.set.tree_exclusions.push(tree);
                        report.objects = 0;
                    } else {
                        self.set.trees.push(tree);
                        total += 1;
                    }
                }
                if is_exclusion {
                    if let Some(by_name) = self.excluded_by_name(rule, path) {
                        report.detail = match report.state {
                            ItemState::Present => format!("{}; excluded by name", report.detail),
                            _ => "excluded by name: holds once it exists".to_owned(),
                        };
                        self.set.excluded_children.push(by_name);
                    }
                }
                items.push(report);
            }
        }
        let (writers, writer_items) = self.exes(trusted_writers, rule.id);
        for mut w in writer_items {
            w.name = format!("trusted writer {}", w.name);
            items.push(w);
        }
        self.set.trusted_writers.extend(writers);
        (items, total)
    }

    /// An exclusion directly below one of the rule's trees holds by name, for a directory
    /// created later too. One deeper down can only be held by identity, so it must exist
    /// when the policy is resolved; that is worth a warning.
    fn excluded_by_name(&mut self, rule: &policy::Rule, path: &Path) -> Option<ExcludedChild> {
        let parent = path.parent()?;
        let tree = self
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
            None if !self.set.trees.iter().any(|t| path.starts_with(&t.path)) => None,
            _ => {
                let message = format!(
                    "excluded `{}` is not directly below a tree (or its name is longer than \
                     {EXCLUDED_NAME_LEN} bytes): it holds only for the directory there when the \
                     policy is resolved",
                    path.display()
                );
                self.warn(rule.location, message);
                None
            }
        }
    }

    pub(super) fn services_rule(
        &mut self,
        rule: u32,
        at: Location,
        units: &[String],
    ) -> (Vec<ItemReport>, usize) {
        let mut items = Vec::new();
        let mut total = 0;
        for unit in units {
            let entries = match unit_entries(&self.root, unit) {
                Ok(entries) => entries,
                Err(e) => {
                    self.warn(
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
                if let Some(n) = self.file(&entry.path, rule, &origin, false, at) {
                    count += n;
                    parts.push(format!("{} {}", entry.role.as_str(), entry.path.display()));
                }
            }
            if !masked.is_empty() {
                self.warn(at, format!("{unit} is masked here ({})", masked.join(", ")));
            }
            self.unit_override_names(rule, unit);
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

    /// The unit's name in the directories whose unit files override the packaged one:
    /// created there, a link to /dev/null masks the unit (`systemctl mask` without the
    /// verb) and a file replaces it. Drop-in directories (`<unit>.d/`) stay free: they are
    /// how Docker's own documentation configures the daemon.
    fn unit_override_names(&mut self, rule: u32, unit: &str) {
        for dir in UNIT_OVERRIDE_DIRS {
            let dir = Path::new(dir);
            let Ok((host, key)) = self.root.stat(dir) else {
                continue;
            };
            if !host.is_dir() || ExcludedChildKey::new(key, unit.as_bytes()).is_none() {
                continue;
            }
            let name = ProtectedName {
                path: dir.join(unit),
                dir: key,
                name: unit.to_owned(),
                rule,
            };
            if !self.set.protected_names.contains(&name) {
                self.set.protected_names.push(name);
            }
        }
    }

    pub(super) fn netfilter_rule(&mut self, rule: &policy::Rule) -> (Vec<ItemReport>, usize) {
        let RuleBody::Netfilter {
            chains,
            tables,
            sets,
        } = &rule.body
        else {
            return (Vec::new(), 0);
        };
        let mut items = Vec::new();
        // The netfilter layer compares chain and set names in the kernel; tables are
        // the exec layer's (which tables hold protected chains, the kernel itself says).
        for (kind, names) in [
            (netfilter::PATTERN_CHAIN, chains),
            (netfilter::PATTERN_SET, sets),
        ] {
            for n in names {
                self.set.netfilter_names.push(NetfilterName {
                    rule: rule.id,
                    kind,
                    literal: n.literal.clone(),
                    wildcard: n.wildcard,
                });
            }
        }
        for (kind, names) in [
            (policy::ObjectKind::Chains, chains),
            (policy::ObjectKind::Tables, tables),
            (policy::ObjectKind::Sets, sets),
        ] {
            if names.is_empty() {
                continue;
            }
            for (id, class) in self.policy.commands.iter().enumerate() {
                if class.objects.contains(&kind) && id < MAX_CLASSES as usize {
                    self.set.netfilter_classes |= 1 << id;
                }
            }
            let classes: Vec<&str> = self
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
                self.warn(rule.location, message);
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

    pub(super) fn processes_rule(
        &mut self,
        rule: u32,
        at: Location,
        exe: &[PathPattern],
        supervisors: &[PathPattern],
        signals: &[u32],
        handles: &[u32],
    ) -> (Vec<ItemReport>, usize) {
        let (mut exes, mut items) = self.exes(exe, rule);
        for e in &mut exes {
            e.go_runtime = self.go_program(&e.path, at);
        }
        let total = exes.len();
        let go: Vec<String> = exes
            .iter()
            .filter(|e| e.go_runtime)
            .map(|e| e.path.display().to_string())
            .collect();
        self.set.processes.extend(exes);
        let (sups, sup_items) = self.exes(supervisors, rule);
        self.set.supervisors.extend(sups);
        for mut s in sup_items {
            s.name = format!("supervisor {}", s.name);
            items.push(s);
        }
        let names = |list: &[u32]| -> String {
            let names: Vec<&str> = list.iter().filter_map(|&s| signal_name(s)).collect();
            names.join(" ")
        };
        let mut detail = format!(
            "refused from anyone but pid 1 and the supervisors when they would end or stop \
             the process, and always: {}",
            names(signals)
        );
        if !go.is_empty() {
            detail.push_str(&format!(
                "; Go programs (their runtime exits on signals they catch): {}",
                go.join(" ")
            ));
        }
        if !handles.is_empty() {
            detail.push_str(&format!("; handled by the programs: {}", names(handles)));
        }
        items.push(ItemReport {
            name: "signals".to_owned(),
            state: ItemState::Present,
            detail,
            objects: 0,
        });
        (items, total)
    }

    /// Whether the executable at `path` (inside the root) is a Go program; a file that
    /// cannot be read is reported and taken for one that is not.
    fn go_program(&mut self, path: &Path, at: Location) -> bool {
        let read = self
            .root
            .stat(path)
            .and_then(|(host, _)| crate::resolve::runtime::is_go_program(&host));
        match read {
            Ok(go) => go,
            Err(e) => {
                self.warn(at, format!("cannot read {}: {e}", path.display()));
                false
            }
        }
    }

    /// Binds command classes to executables by identity: each class binary found on the
    /// PATH (unique to one class, and not a multi-call binary, whose argv[0] decides what
    /// it is), and each class's trusted callers. The kernel classifies an exec of a bound
    /// file by its class whatever argv[0] says.
    /// The `prerm` of each protected package, as an executable of its own kind
    /// ([`EXE_REMOVAL_SCRIPT`]): refused when dpkg runs it to remove the package.
    pub(super) fn removal_scripts(&mut self) {
        let scripts: Vec<ExeClass> = self
            .set
            .objects
            .iter()
            .filter(|o| matches!(o.origin, Origin::PackageRecord { package: Some(_) }))
            .filter(|o| o.path.extension().is_some_and(|ext| ext == "prerm"))
            .map(|o| ExeClass {
                path: o.path.clone(),
                key: o.key,
                class: EXE_REMOVAL_SCRIPT | o.rule,
            })
            .collect();
        self.set.exe_classes.extend(scripts);
    }

    pub(super) fn command_exes(&mut self) {
        let policy = self.policy;
        let mut by_key: HashMap<InodeKey, (PathBuf, Option<u32>)> = HashMap::new();
        for binary in &policy.multicall {
            for dir in EXEC_PATH {
                let path = Path::new(dir).join(binary);
                if let Ok((host, key)) = self.root.stat(&path) {
                    if host.is_file() {
                        by_key.insert(key, (path, None));
                    }
                }
            }
        }
        for (class_id, class) in policy.commands.iter().enumerate() {
            for binary in &class.binaries {
                for dir in EXEC_PATH {
                    let path = Path::new(dir).join(binary);
                    let Ok((host, key)) = self.root.stat(&path) else {
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
                for found in self.expand(pattern) {
                    let key = if found.entry.kind.is_symlink() {
                        match self.root.stat(&found.path) {
                            Ok((host, key)) if host.is_file() => key,
                            _ => continue,
                        }
                    } else if found.entry.kind.is_file() {
                        found.entry.key
                    } else {
                        continue;
                    };
                    let path = found.path;
                    if class_id as u32 >= MAX_CLASSES {
                        continue;
                    }
                    let bit = 1u32 << class_id;
                    match self.set.trusted_callers.iter_mut().find(|t| t.key == key) {
                        Some(t) => t.classes |= bit,
                        None => self.set.trusted_callers.push(TrustedCaller {
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
        exe_classes.sort_by(|x, y| x.path.cmp(&y.path));
        self.set.exe_classes = exe_classes;
    }

    /// Protects dpkg's records of `pkg` (`info/<pkg>.*`) and the status file, as written
    /// by dpkg only. Returns how many records were protected.
    fn package_records(
        &mut self,
        db: &DpkgDb,
        pkg: &DpkgPackage,
        rule: u32,
        at: Location,
    ) -> usize {
        let records = db.records(pkg).unwrap_or_else(|e| {
            self.warn(
                at,
                format!("cannot list dpkg's records of {}: {e}", pkg.name),
            );
            Vec::new()
        });
        let package = Origin::PackageRecord {
            package: Some(pkg.name.clone()),
        };
        let count = records
            .iter()
            .filter_map(|path| self.file(path, rule, &package, true, at))
            .sum();
        if db.has_status {
            let status = Origin::PackageRecord { package: None };
            self.file(&DpkgDb::status_file(), rule, &status, true, at);
        }
        count
    }
}
