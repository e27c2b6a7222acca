//! Maintenance windows: a time-limited permission for the package manager to replace
//! (and, if asked, remove) the files of named packages whose group says
//! `upgrade = "window"`.
//!
//! `rtguard maintenance open|close` edits a small JSON state file and asks the daemon to
//! re-read it (SIGHUP); the daemon applies open windows to the kernel tables, records
//! every open, close and expiry in the audit log, and closes windows when they expire.
//! The file lives in the state directory, so windows survive a daemon restart.

use std::{
    io,
    path::{Path, PathBuf},
    time::Duration,
};

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::paths;

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

    /// Whether `package` (with or without `:arch`) has a window open at `now`.
    pub fn is_open(&self, package: &str, now: OffsetDateTime) -> bool {
        let name = package.split(':').next().unwrap_or(package);
        self.open_at(now).any(|w| w.package == name)
    }

    /// When the next open window expires, if any.
    pub fn next_expiry(&self) -> Option<OffsetDateTime> {
        self.windows.iter().map(|w| w.expires).min()
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
        assert_eq!(s.next_expiry(), Some(T0 + Duration::from_secs(60)));

        let expired = s.expire(T0 + Duration::from_secs(61));
        assert_eq!(expired.len(), 1);
        assert_eq!(expired[0].package, "containerd");
        assert!(s.close("runc"));
        assert!(!s.close("runc"));
        assert!(s.windows.is_empty());
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
