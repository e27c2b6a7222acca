//! Earlier contents of protected configuration files, so that any edit can be undone.
//!
//! The kernel lets configuration be edited (an edit the guard refused would get it
//! switched off), so an edit that empties or breaks a file is the one thing it cannot
//! stop. The daemon copies each configuration file when it starts and after every change
//! (close after writing, or a file renamed into place); `rtguard config restore` writes an
//! earlier copy back. A restore is itself an edit, which the kernel reports with its actor.
//!
//! Layout, under the state directory: `config-history/<id>/index.json` (the path and its
//! versions) and one file per version, `config-history/<id>/<number>`, where `<id>` is a
//! digest of the path. At most [`MAX_VERSIONS`] versions of at most [`MAX_FILE_BYTES`]
//! each are kept per file.

use std::{
    collections::{BTreeSet, HashMap},
    io,
    os::fd::{AsFd as _, AsRawFd, RawFd},
    path::{Path, PathBuf},
};

use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify, WatchDescriptor};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use time::OffsetDateTime;
use tracing::{info, warn};

/// Versions kept per file; the oldest go first.
pub const MAX_VERSIONS: usize = 20;
/// Larger files are not copied (configuration is small; this bounds the disk used).
pub const MAX_FILE_BYTES: u64 = 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{}: unreadable history index: {source}", path.display())]
    Index {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("{} is larger than {MAX_FILE_BYTES} bytes; its versions are not kept", path.display())]
    TooLarge { path: PathBuf },
    #[error("no earlier version of {} is kept", path.display())]
    NoHistory { path: PathBuf },
    #[error("{} has no version {number}; `rtguard config history` lists them", path.display())]
    NoSuchVersion { path: PathBuf, number: u32 },
    #[error("{} already holds version {number}", path.display())]
    Unchanged { path: PathBuf, number: u32 },
}

fn io_error(path: &Path) -> impl FnOnce(io::Error) -> HistoryError + '_ {
    move |source| HistoryError::Io {
        path: path.to_owned(),
        source,
    }
}

/// One kept version of a file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Version {
    /// 1 for the first copy, counting up; numbers are never reused.
    pub number: u32,
    /// When the copy was taken (RFC 3339, UTC).
    #[serde(with = "time::serde::rfc3339")]
    pub taken: OffsetDateTime,
    pub size: u64,
    /// Lowercase hex SHA-256 of the contents.
    pub sha256: String,
}

/// What is kept of one file.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct Index {
    path: PathBuf,
    versions: Vec<Version>,
}

/// The history store under a state directory.
#[derive(Clone, Debug)]
pub struct History {
    dir: PathBuf,
}

impl History {
    pub fn new(state_dir: &Path) -> Self {
        Self {
            dir: state_dir.join("config-history"),
        }
    }

    fn file_dir(&self, path: &Path) -> PathBuf {
        let digest = Sha256::digest(path.as_os_str().as_encoded_bytes());
        let id: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
        self.dir.join(id)
    }

    fn read_index(&self, path: &Path) -> Result<Index, HistoryError> {
        let index = self.file_dir(path).join("index.json");
        match std::fs::read(&index) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|source| HistoryError::Index {
                path: index,
                source,
            }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Index {
                path: path.to_owned(),
                versions: Vec::new(),
            }),
            Err(e) => Err(io_error(&index)(e)),
        }
    }

    /// The kept versions of `path`, oldest first.
    pub fn versions(&self, path: &Path) -> Result<Vec<Version>, HistoryError> {
        Ok(self.read_index(path)?.versions)
    }

    /// The bytes of one version.
    pub fn contents(&self, path: &Path, number: u32) -> Result<Vec<u8>, HistoryError> {
        let blob = self.file_dir(path).join(number.to_string());
        std::fs::read(&blob).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => HistoryError::NoSuchVersion {
                path: path.to_owned(),
                number,
            },
            _ => io_error(&blob)(e),
        })
    }

    /// Copies the current contents of `path` as a new version, unless the newest kept
    /// version already has them. Returns the new version, if one was taken. A missing
    /// file is not an error (nothing to keep).
    pub fn record(&self, path: &Path) -> Result<Option<Version>, HistoryError> {
        let meta = match std::fs::metadata(path) {
            Ok(meta) if meta.is_file() => meta,
            Ok(_) => return Ok(None),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_error(path)(e)),
        };
        if meta.len() > MAX_FILE_BYTES {
            return Err(HistoryError::TooLarge {
                path: path.to_owned(),
            });
        }
        let bytes = std::fs::read(path).map_err(io_error(path))?;
        let sha256 = sha256_hex(&bytes);
        let mut index = self.read_index(path)?;
        if index.versions.last().is_some_and(|v| v.sha256 == sha256) {
            return Ok(None);
        }
        let dir = self.file_dir(path);
        std::fs::create_dir_all(&dir).map_err(io_error(&dir))?;
        let number = index.versions.last().map_or(1, |v| v.number + 1);
        write_atomically(&dir.join(number.to_string()), &bytes)?;
        let version = Version {
            number,
            taken: OffsetDateTime::now_utc(),
            size: bytes.len() as u64,
            sha256,
        };
        index.path = path.to_owned();
        index.versions.push(version.clone());
        let dropped = index.versions.len().saturating_sub(MAX_VERSIONS);
        for old in index.versions.drain(..dropped) {
            std::fs::remove_file(dir.join(old.number.to_string())).ok();
        }
        let json = serde_json::to_vec_pretty(&index).expect("an index serialises");
        write_atomically(&dir.join("index.json"), &json)?;
        Ok(Some(version))
    }

    /// Writes version `number` (by default the newest one that differs from what the file
    /// holds now) back into `path`, in place: the same inode, so its protection and its
    /// mode stay. Returns the version restored.
    pub fn restore(&self, path: &Path, number: Option<u32>) -> Result<Version, HistoryError> {
        let versions = self.versions(path)?;
        let current = current_sha256(path);
        let version = match number {
            Some(number) => versions
                .iter()
                .find(|v| v.number == number)
                .cloned()
                .ok_or_else(|| HistoryError::NoSuchVersion {
                    path: path.to_owned(),
                    number,
                })?,
            None => versions
                .iter()
                .rev()
                .find(|v| Some(&v.sha256) != current.as_ref())
                .cloned()
                .ok_or_else(|| HistoryError::NoHistory {
                    path: path.to_owned(),
                })?,
        };
        if current.as_ref() == Some(&version.sha256) {
            return Err(HistoryError::Unchanged {
                path: path.to_owned(),
                number: version.number,
            });
        }
        let bytes = self.contents(path, version.number)?;
        std::fs::write(path, bytes).map_err(io_error(path))?;
        Ok(version)
    }
}

/// Watches the directories of the configuration files and keeps a version of each file
/// after every change: a close after writing, or a file renamed into place (an atomic
/// replacement).
pub struct Watcher {
    inotify: Inotify,
    /// Watched directory by watch descriptor.
    dirs: HashMap<WatchDescriptor, PathBuf>,
    files: BTreeSet<PathBuf>,
}

impl Watcher {
    pub fn new() -> nix::Result<Self> {
        Ok(Self {
            inotify: Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC)?,
            dirs: HashMap::new(),
            files: BTreeSet::new(),
        })
    }

    /// Watches `files` (replacing what was watched) and keeps a version of each one
    /// that changed since its newest kept version: what it held before the next edit.
    pub fn watch(&mut self, files: BTreeSet<PathBuf>, history: &History) {
        let dirs: BTreeSet<PathBuf> = files
            .iter()
            .filter_map(|f| f.parent().map(Path::to_owned))
            .collect();
        let stale: Vec<WatchDescriptor> = self
            .dirs
            .iter()
            .filter(|(_, d)| !dirs.contains(*d))
            .map(|(wd, _)| *wd)
            .collect();
        for wd in stale {
            self.inotify.rm_watch(wd).ok();
            self.dirs.remove(&wd);
        }
        for dir in dirs {
            if self.dirs.values().any(|d| *d == dir) {
                continue;
            }
            let mask = AddWatchFlags::IN_CLOSE_WRITE | AddWatchFlags::IN_MOVED_TO;
            match self.inotify.add_watch(&dir, mask) {
                Ok(wd) => {
                    self.dirs.insert(wd, dir);
                }
                Err(e) => warn!(
                    "cannot watch {} for configuration edits: {e}",
                    dir.display()
                ),
            }
        }
        for file in &files {
            keep(history, file);
        }
        self.files = files;
    }

    /// Keeps a version of every watched file the queued events say changed. Returns
    /// how many versions were taken.
    pub fn drain(&mut self, history: &History) -> usize {
        let mut taken = 0;
        while let Ok(events) = self.inotify.read_events() {
            if events.is_empty() {
                break;
            }
            for event in events {
                let (Some(dir), Some(name)) = (self.dirs.get(&event.wd), &event.name) else {
                    continue;
                };
                let path = dir.join(name);
                if self.files.contains(&path) {
                    taken += usize::from(keep(history, &path));
                }
            }
        }
        taken
    }
}

impl AsRawFd for Watcher {
    fn as_raw_fd(&self) -> RawFd {
        self.inotify.as_fd().as_raw_fd()
    }
}

/// Keeps a version of `file` if it changed; says so in the log. Returns whether it did.
fn keep(history: &History, file: &Path) -> bool {
    match history.record(file) {
        Ok(Some(v)) => {
            info!(
                version = v.number,
                size = v.size,
                "kept a version of {}",
                file.display()
            );
            true
        }
        Ok(None) => false,
        Err(e) => {
            warn!("{e}");
            false
        }
    }
}

fn sha256_hex(bytes: &[u8]) -> String {
    format!("{:x}", Sha256::digest(bytes))
}

/// The SHA-256 of what `path` holds now, as a [`Version`] records it; `None` if it can't
/// be read.
pub fn current_sha256(path: &Path) -> Option<String> {
    std::fs::read(path).ok().map(|bytes| sha256_hex(&bytes))
}

/// Writes `bytes` to a temp file beside `path` and renames it into place, so a crash
/// never leaves a half-written version or index.
fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), HistoryError> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes).map_err(io_error(&tmp))?;
    std::fs::rename(&tmp, path).map_err(io_error(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_kept_once_per_content_and_restored_in_place() {
        let state = tempfile::tempdir().unwrap();
        let etc = tempfile::tempdir().unwrap();
        let file = etc.path().join("config.toml");
        let history = History::new(state.path());

        std::fs::write(&file, "version = 2\n").unwrap();
        let first = history.record(&file).unwrap().expect("a first version");
        assert_eq!(first.number, 1);
        assert_eq!(history.record(&file).unwrap(), None, "same contents again");
        std::fs::write(&file, "").unwrap();
        assert_eq!(history.record(&file).unwrap().unwrap().number, 2);

        use std::os::unix::fs::MetadataExt as _;
        let ino = std::fs::metadata(&file).unwrap().ino();
        let restored = history.restore(&file, None).unwrap();
        assert_eq!(restored.number, 1, "the newest version that differs");
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "version = 2\n");
        assert_eq!(std::fs::metadata(&file).unwrap().ino(), ino, "in place");
        assert!(matches!(
            history.restore(&file, Some(1)),
            Err(HistoryError::Unchanged { number: 1, .. })
        ));
        assert!(matches!(
            history.restore(&file, Some(9)),
            Err(HistoryError::NoSuchVersion { number: 9, .. })
        ));
        history.restore(&file, Some(2)).unwrap();
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "");
    }

    #[test]
    fn only_the_newest_versions_are_kept() {
        let state = tempfile::tempdir().unwrap();
        let etc = tempfile::tempdir().unwrap();
        let file = etc.path().join("daemon.json");
        let history = History::new(state.path());
        for i in 0..MAX_VERSIONS + 5 {
            std::fs::write(&file, format!("{{\"n\": {i}}}")).unwrap();
            history.record(&file).unwrap();
        }
        let versions = history.versions(&file).unwrap();
        assert_eq!(versions.len(), MAX_VERSIONS);
        assert_eq!(versions[0].number, 6);
        assert!(matches!(
            history.contents(&file, 5),
            Err(HistoryError::NoSuchVersion { .. })
        ));
        assert_eq!(history.contents(&file, 6).unwrap(), b"{\"n\": 5}".to_vec());
    }

    #[test]
    fn missing_and_oversized_files_are_not_kept() {
        let state = tempfile::tempdir().unwrap();
        let etc = tempfile::tempdir().unwrap();
        let history = History::new(state.path());
        assert_eq!(history.record(&etc.path().join("absent")).unwrap(), None);
        let big = etc.path().join("big");
        std::fs::write(&big, vec![b'x'; MAX_FILE_BYTES as usize + 1]).unwrap();
        assert!(matches!(
            history.record(&big),
            Err(HistoryError::TooLarge { .. })
        ));
        assert!(matches!(
            history.restore(&big, None),
            Err(HistoryError::NoHistory { .. })
        ));
    }
}
