//! Maintenance windows: a time-limited permission to install, upgrade and reinstall named
//! packages whose group says `upgrade = "window"`, and, if asked, to remove them.
//!
//! `rtguard maintenance open|close` edits a small JSON state file and asks the daemon to
//! re-read it (SIGHUP); the daemon applies open windows to the kernel tables, records
//! every open, close and expiry in the audit log, and closes windows when they expire.
//! The file lives in the state directory, so windows survive a daemon restart.
//!
//! What an open window relaxes, in both layers that see packages, is decided here
//! ([`package_manager_flags`], [`commands_at`]), per package: a window for runc opens nothing of
//! containerd.

use std::{
    io,
    path::{Path, PathBuf},
    time::Duration,
};

use guard_common::{
    exec::{
        removal_script_rule, ObjectEntry, ObjectKey, MAX_COMMAND_OBJECTS, OBJECT_NAME,
        OBJECT_PREFIX, OBJECT_REMOVAL_OPEN, OBJECT_WINDOW_OPEN, UPGRADE_WINDOW,
    },
    file::{FILE_REMOVABLE, FILE_UPGRADABLE},
    hash::fnv1a,
};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::{
    host::paths,
    policy::{commands::ObjectName, CompiledCommands, ObjectKind, Upgrade},
    resolve::{ExeClass, Origin, ResolvedObject, RuleSet},
};

/// The state file in `dir`.
pub fn state_file(dir: &Path) -> PathBuf {
    dir.join("maintenance.json")
}

/// The default state file.
pub fn default_state_file() -> PathBuf {
    state_file(Path::new(paths::STATE_DIR))
}

/// One open window.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MaintenanceWindow {
    pub package: String,
    /// Whether removing the package is allowed too (otherwise only install, upgrade and
    /// reinstall).
    pub allow_removal: bool,
    #[serde(with = "time::serde::rfc3339")]
    pub opened: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub expires: OffsetDateTime,
    pub reason: String,
    /// Who opened it: the user name or uid of the caller.
    pub opened_by: String,
}

impl MaintenanceWindow {
    /// Whether the window lets the package be removed, as the status, the window list and
    /// the audit trail say it: `allowed` or `refused`.
    pub fn removal(&self) -> &'static str {
        if self.allow_removal {
            "allowed"
        } else {
            "refused"
        }
    }

    pub fn is_open_at(&self, now: OffsetDateTime) -> bool {
        self.opened <= now && now < self.expires
    }
}

/// Every window on record.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MaintenanceState {
    pub windows: Vec<MaintenanceWindow>,
}

#[derive(Debug, thiserror::Error)]
pub enum MaintenanceError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{path} is not a maintenance state file: {source}")]
    Parse {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

impl MaintenanceState {
    /// Reads the state; a missing file means no windows.
    pub fn load(path: &Path) -> Result<Self, MaintenanceError> {
        match std::fs::read(path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|source| MaintenanceError::Parse {
                path: path.to_owned(),
                source,
            }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Self::default()),
            Err(source) => Err(MaintenanceError::Read {
                path: path.to_owned(),
                source,
            }),
        }
    }

    /// Writes the state atomically (a temporary file renamed over the old one).
    pub fn save(&self, path: &Path) -> Result<(), MaintenanceError> {
        let write = |source| MaintenanceError::Write {
            path: path.to_owned(),
            source,
        };
        let dir = path.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).map_err(write)?;
        let tmp = dir.join(format!(".maintenance.{}.tmp", std::process::id()));
        let bytes = serde_json::to_vec_pretty(self).map_err(|e| write(io::Error::other(e)))?;
        std::fs::write(&tmp, bytes).map_err(write)?;
        std::fs::rename(&tmp, path).map_err(write)
    }

    /// Opens (or extends) a window for `package`.
    pub fn open(
        &mut self,
        package: &str,
        allow_removal: bool,
        duration: Duration,
        reason: &str,
        opened_by: &str,
        now: OffsetDateTime,
    ) {
        self.windows.retain(|w| w.package != package);
        self.windows.push(MaintenanceWindow {
            package: package.to_owned(),
            allow_removal,
            opened: now,
            expires: now + duration,
            reason: reason.to_owned(),
            opened_by: opened_by.to_owned(),
        });
    }

    /// Closes the window for `package`; returns whether there was one.
    pub fn close(&mut self, package: &str) -> bool {
        let before = self.windows.len();
        self.windows.retain(|w| w.package != package);
        self.windows.len() != before
    }

    /// Drops expired windows and returns them.
    pub fn expire(&mut self, now: OffsetDateTime) -> Vec<MaintenanceWindow> {
        let (open, expired) = self.windows.drain(..).partition(|w| w.expires > now);
        self.windows = open;
        expired
    }

    /// The windows open at `now`.
    pub fn open_at(&self, now: OffsetDateTime) -> impl Iterator<Item = &MaintenanceWindow> {
        self.windows.iter().filter(move |w| w.is_open_at(now))
    }

    /// The window open for `package` at `now`, if any. Architectures are ignored on both
    /// sides: `runc:amd64` and `runc` are one package to a window.
    pub fn window_for(&self, package: &str, now: OffsetDateTime) -> Option<&MaintenanceWindow> {
        let name = package_name(package);
        self.open_at(now).find(|w| package_name(&w.package) == name)
    }

    /// Whether `package` (with or without `:arch`) has a window open at `now`.
    pub fn is_open(&self, package: &str, now: OffsetDateTime) -> bool {
        self.window_for(package, now).is_some()
    }

    /// Whether `package` has a window open at `now` that allows removing it.
    pub fn allows_removal(&self, package: &str, now: OffsetDateTime) -> bool {
        self.window_for(package, now)
            .is_some_and(|w| w.allow_removal)
    }

    /// When the next open window expires, if any.
    pub fn next_expiry(&self) -> Option<OffsetDateTime> {
        self.windows.iter().map(|w| w.expires).min()
    }
}

/// A package name without its `:arch`.
fn package_name(package: &str) -> &str {
    package.split(':').next().unwrap_or(package)
}

/// What the package manager may do to `object` at `now` (`FILE_*` bits, see
/// `guard_common::file`):
/// - [`FILE_UPGRADABLE`]: replace it, as an upgrade or reinstall does, and remove it while
///   upgrading its package: its group allows upgrades, or a window for its package is
///   open. dpkg's status file is always upgradable: dpkg rewrites it for every package.
/// - [`FILE_REMOVABLE`] as well: remove it outright. A window allowing removal of its
///   package (or of a package shipping its unit) is open, or it is a configuration
///   tree's entry, where dpkg keeps its `*.dpkg-*` bookkeeping.
pub fn package_manager_flags(
    set: &RuleSet,
    object: &ResolvedObject,
    windows: &MaintenanceState,
    now: OffsetDateTime,
) -> u32 {
    let removable = match &object.origin {
        Origin::Package { package, .. }
        | Origin::PackageRecord {
            package: Some(package),
        } => windows.allows_removal(package, now),
        Origin::Unit { unit, .. } => unit_removal_open(set, unit, windows, now),
        Origin::Path { .. } | Origin::PackageRecord { package: None } => false,
        Origin::TreeEntry { .. } => true,
    };
    let upgradable = removable
        || matches!(object.origin, Origin::PackageRecord { package: None })
        || match set.rule(object.rule).and_then(|r| r.upgrade) {
            Some(Upgrade::Allow) => true,
            Some(Upgrade::Window) => object
                .origin
                .package()
                .is_some_and(|package| windows.is_open(package, now)),
            Some(Upgrade::Deny) | None => false,
        };
    match (upgradable, removable) {
        (_, true) => FILE_UPGRADABLE | FILE_REMOVABLE,
        (true, false) => FILE_UPGRADABLE,
        (false, false) => 0,
    }
}

/// Whether `exe` is a protected package's removal script (see `EXE_REMOVAL_SCRIPT`)
/// with a window open for the package's removal, so dpkg may run it.
pub fn removal_script_open(
    exe: &ExeClass,
    windows: &MaintenanceState,
    now: OffsetDateTime,
) -> bool {
    if removal_script_rule(exe.class).is_none() {
        return false;
    }
    // `info/<package>.prerm` or `info/<package>:<arch>.prerm`.
    exe.path
        .file_stem()
        .and_then(|stem| stem.to_str())
        .and_then(|stem| stem.split(':').next())
        .is_some_and(|package| windows.allows_removal(package, now))
}

/// Whether a package shipping `unit`'s unit file has a window open that allows removal.
fn unit_removal_open(
    set: &RuleSet,
    unit: &str,
    windows: &MaintenanceState,
    now: OffsetDateTime,
) -> bool {
    set.unit_packages
        .get(unit)
        .is_some_and(|packages| packages.iter().any(|p| windows.allows_removal(p, now)))
}

/// The exec layer's command tables at `now`: `set`'s compiled tables with each protected
/// object's window bits set. The kernel's maps and `rtguard explain` are both built from
/// this, and the classifier reads the bits (see `guard_common::exec`).
/// - A package gets `OBJECT_WINDOW_OPEN` while a window is open for it and its group says
///   `upgrade = "window"` (the rule [`package_manager_flags`] applies to its files), and
///   `OBJECT_REMOVAL_OPEN` while that window allows removal.
/// - A unit gets `OBJECT_REMOVAL_OPEN` while a package shipping its unit file has a
///   window that allows removal: the package's prerm stops it (`deb-systemd-invoke stop`).
/// - A package matched by a wildcard name (`docker-*`) gets an exact entry of its own while
///   its window is open, so that the window opens that package and not the whole prefix.
pub fn commands_at(
    set: &RuleSet,
    windows: &MaintenanceState,
    now: OffsetDateTime,
) -> CompiledCommands {
    let mut commands = set.commands.clone();
    for window in windows.open_at(now) {
        exact_entries(&mut commands, package_name(&window.package));
    }
    let names = &commands.object_names;
    for entry in commands.objects.values_mut() {
        entry.flags = object_flags(set, names, entry, windows, now);
    }
    commands
}

/// Adds `package` by its exact name to every class where only a wildcard names it.
fn exact_entries(commands: &mut CompiledCommands, package: &str) {
    let wildcards: Vec<(usize, &ObjectName)> = commands
        .object_names
        .iter()
        .enumerate()
        .filter(|(_, o)| {
            o.kind == ObjectKind::Packages
                && o.name
                    .strip_suffix('*')
                    .is_some_and(|prefix| package.starts_with(prefix))
        })
        .collect();
    let mut added: Vec<(ObjectKey, ObjectEntry)> = Vec::new();
    let mut names: Vec<ObjectName> = Vec::new();
    for (index, wildcard) in wildcards {
        let prefix = fnv1a(wildcard.name.trim_end_matches('*').as_bytes());
        for (key, entry) in &commands.objects {
            if key.kind != OBJECT_PREFIX || key.hash != prefix || entry.object != index as u32 {
                continue;
            }
            let exact = ObjectKey::new(key.class, OBJECT_NAME, fnv1a(package.as_bytes()));
            if commands.objects.contains_key(&exact) || added.iter().any(|(k, _)| *k == exact) {
                continue;
            }
            // The kernel's map is no bigger than the compiler allowed for: a policy at its
            // limit keeps its wildcard closed rather than fail to load.
            if commands.objects.len() + added.len() >= MAX_COMMAND_OBJECTS as usize {
                continue;
            }
            let object = match names.iter().position(|n| n.rule == entry.rule) {
                Some(i) => commands.object_names.len() + i,
                None => {
                    names.push(ObjectName {
                        name: package.to_owned(),
                        kind: ObjectKind::Packages,
                        rule: entry.rule,
                    });
                    commands.object_names.len() + names.len() - 1
                }
            };
            added.push((
                exact,
                ObjectEntry {
                    object: object as u32,
                    ..*entry
                },
            ));
        }
    }
    commands.object_names.extend(names);
    commands.objects.extend(added);
}

fn object_flags(
    set: &RuleSet,
    names: &[ObjectName],
    entry: &ObjectEntry,
    windows: &MaintenanceState,
    now: OffsetDateTime,
) -> u32 {
    let Some(name) = names.get(entry.object as usize) else {
        return 0;
    };
    match name.kind {
        ObjectKind::Packages => match windows.window_for(&name.name, now) {
            Some(window) => {
                let mut flags = 0;
                if entry.upgrade == UPGRADE_WINDOW {
                    flags |= OBJECT_WINDOW_OPEN;
                }
                if window.allow_removal {
                    flags |= OBJECT_REMOVAL_OPEN;
                }
                flags
            }
            None => 0,
        },
        ObjectKind::Units if unit_removal_open(set, &name.name, windows, now) => {
            OBJECT_REMOVAL_OPEN
        }
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    const T0: OffsetDateTime = datetime!(2026-11-27 10:00 UTC);

    #[test]
    fn windows_open_expire_and_close() {
        let mut s = MaintenanceState::default();
        s.open(
            "runc",
            false,
            Duration::from_secs(900),
            "CVE fix",
            "root",
            T0,
        );
        s.open(
            "containerd",
            true,
            Duration::from_secs(60),
            "rebuild",
            "root",
            T0,
        );
        assert!(s.is_open("runc", T0));
        assert!(s.is_open("runc:amd64", T0 + Duration::from_secs(899)));
        assert!(
            !s.is_open("runc", T0 + Duration::from_secs(900)),
            "expiry is exclusive"
        );
        assert!(!s.is_open("docker.io", T0));
        assert!(!s.allows_removal("runc", T0));
        assert!(s.allows_removal("containerd:amd64", T0));
        assert!(!s.allows_removal("containerd", T0 + Duration::from_secs(60)));
        assert_eq!(s.next_expiry(), Some(T0 + Duration::from_secs(60)));

        let expired = s.expire(T0 + Duration::from_secs(61));
        assert_eq!(expired.len(), 1);
        assert_eq!(expired[0].package, "containerd");
        assert!(s.close("runc"));
        assert!(!s.close("runc"));
        assert!(s.windows.is_empty());
    }

    #[test]
    fn a_window_names_a_package_whatever_the_architecture() {
        let mut s = MaintenanceState::default();
        s.open("runc:amd64", true, Duration::from_secs(60), "a", "root", T0);
        assert!(s.is_open("runc", T0));
        assert!(s.allows_removal("runc:arm64", T0));
        assert!(!s.is_open("runc-extra", T0));
    }

    #[test]
    fn reopening_replaces_the_window() {
        let mut s = MaintenanceState::default();
        s.open("runc", false, Duration::from_secs(60), "a", "root", T0);
        s.open("runc", true, Duration::from_secs(600), "b", "root", T0);
        assert_eq!(s.windows.len(), 1);
        assert!(s.windows[0].allow_removal);
        assert_eq!(s.windows[0].reason, "b");
    }

    #[test]
    fn state_survives_a_round_trip_and_a_missing_file_is_empty() {
        let dir = tempfile::tempdir().unwrap();
        let path = state_file(&dir.path().join("lib/rtguard"));
        assert_eq!(
            MaintenanceState::load(&path).unwrap(),
            MaintenanceState::default()
        );
        let mut s = MaintenanceState::default();
        s.open(
            "containerd",
            false,
            Duration::from_secs(900),
            "upgrade",
            "root",
            T0,
        );
        s.save(&path).unwrap();
        assert_eq!(MaintenanceState::load(&path).unwrap(), s);
        std::fs::write(&path, b"{not json").unwrap();
        let err = MaintenanceState::load(&path).unwrap_err().to_string();
        assert!(err.contains("is not a maintenance state file"), "{err}");
    }
}
