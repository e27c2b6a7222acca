//! The audit log writer: appends one JSON line per record, rotates by size, and optionally
//! copies each record to the local syslog socket.
//!
//! Durability: every record is handed to the kernel with one `write(2)` on an `O_APPEND`
//! descriptor before [`AuditLog::append`] returns; nothing is buffered in this process, so a
//! crash or `kill -9` of the daemon loses at most the record being written. By default there
//! is no `fsync` per record (an event flood would otherwise be bounded by the disk's flush
//! rate); the file is synced when it is rotated and when the log is dropped, and
//! [`AuditLog::sync`] is there for a periodic flush. [`FsyncPolicy::EveryRecord`] syncs
//! each record too, for hosts that must keep the trail across power loss.
//!
//! The copy sent to syslog is in `syslog`.

mod syslog;

use std::{
    fs::{self, File, OpenOptions},
    io::{self, Write as _},
    os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _, PermissionsExt as _},
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use tracing::warn;

use self::syslog::{severity, SyslogSink};
use super::record::AuditRecord;
use crate::host::paths::{DEFAULT_AUDIT_LOG, SYSLOG_SOCKET};

/// Rotate when the live file would grow past this.
pub const DEFAULT_MAX_BYTES: u64 = 64 * 1024 * 1024;
/// Rotated files kept besides the live one.
pub const DEFAULT_KEEP: usize = 8;

/// The log directory is readable by the admin group (`adm`-style review) only.
const DIR_MODE: u32 = 0o750;
/// How long to wait before trying a failed rotation again.
const ROTATION_RETRY: Duration = Duration::from_secs(60);
const FILE_MODE: u32 = 0o640;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum FsyncPolicy {
    /// Sync on rotation and when the log is dropped.
    #[default]
    OnRotate,
    /// Also sync after every record.
    EveryRecord,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditLogConfig {
    /// The live file; rotated ones are `<path>.1` (newest) … `<path>.<keep>` (oldest).
    pub path: PathBuf,
    /// Rotate before a record would take the live file past this many bytes. A record
    /// bigger than this still goes into a file of its own.
    pub max_bytes: u64,
    /// How many rotated files to keep. 0 keeps none: rotation starts the file afresh.
    pub keep: usize,
    pub fsync: FsyncPolicy,
    /// Also send each record to this syslog socket (normally [`SYSLOG_SOCKET`]).
    pub syslog: Option<PathBuf>,
}

impl Default for AuditLogConfig {
    fn default() -> Self {
        Self::new(DEFAULT_AUDIT_LOG)
    }
}

impl AuditLogConfig {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            max_bytes: DEFAULT_MAX_BYTES,
            keep: DEFAULT_KEEP,
            fsync: FsyncPolicy::default(),
            syslog: None,
        }
    }

    /// Copies records to the local syslog socket (journald's `/dev/log`).
    pub fn with_syslog(mut self) -> Self {
        self.syslog = Some(SYSLOG_SOCKET.into());
        self
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AuditLogError {
    #[error("cannot create audit log directory {path}: {source}")]
    CreateDir {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot open audit log {path}: {source}")]
    Open {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot write audit log {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot rotate audit log {from} to {to}: {source}")]
    Rotate {
        from: PathBuf,
        to: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// An open audit log. One per daemon: it owns the file and its rotation.
#[derive(Debug)]
pub struct AuditLog {
    config: AuditLogConfig,
    file: File,
    size: u64,
    pending_dropped: u64,
    syslog: Option<SyslogSink>,
    /// After a failed rotation, when to try again; meanwhile records go on into the
    /// current file, which may grow past `max_bytes`.
    rotation_retry: Option<Instant>,
}

impl AuditLog {
    /// Opens (creating with mode 0640, in a directory created with mode 0750) the live
    /// file for appending. Existing records are kept.
    pub fn open(config: AuditLogConfig) -> Result<Self, AuditLogError> {
        if let Some(dir) = config.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            create_dir(dir)?;
        }
        let (file, size) = open_live(&config.path)?;
        let syslog = config.syslog.clone().map(SyslogSink::new);
        Ok(Self {
            config,
            file,
            size,
            pending_dropped: 0,
            syslog,
            rotation_retry: None,
        })
    }

    pub fn path(&self) -> &Path {
        &self.config.path
    }

    pub fn config(&self) -> &AuditLogConfig {
        &self.config
    }

    /// Bytes in the live file.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Counts kernel events that were lost. The count goes into the next record appended,
    /// added to that record's own `dropped_since_last`.
    pub fn add_dropped(&mut self, dropped: u64) {
        self.pending_dropped = self.pending_dropped.saturating_add(dropped);
    }

    /// Lost events not yet written into a record.
    pub fn pending_dropped(&self) -> u64 {
        self.pending_dropped
    }

    /// Writes one record as one line, rotating first if it would not fit. When this returns
    /// Ok, the line is in the kernel's hands.
    pub fn append(&mut self, record: &AuditRecord) -> Result<(), AuditLogError> {
        let line = if self.pending_dropped > 0 {
            let mut with_drops = record.clone();
            with_drops.dropped_since_last = with_drops
                .dropped_since_last
                .saturating_add(self.pending_dropped);
            with_drops.to_json_line()
        } else {
            record.to_json_line()
        };
        let len = line.len() as u64;
        if self.size > 0
            && self.size.saturating_add(len) > self.config.max_bytes
            && self.rotation_retry.is_none_or(|t| Instant::now() >= t)
        {
            // A record is worth more than the size limit: if rotation fails (a full or
            // read-only directory, an immutable file), keep writing where we are.
            match self.rotate() {
                Ok(()) => self.rotation_retry = None,
                Err(e) => {
                    warn!(
                        "{e}; appending to {} past its size limit",
                        self.path().display()
                    );
                    self.rotation_retry = Some(Instant::now() + ROTATION_RETRY);
                }
            }
        }
        // One write of the whole line on an O_APPEND file: a reader (or a crash) sees all
        // of it or none of it, never a torn record followed by another.
        self.file
            .write_all(line.as_bytes())
            .map_err(|source| self.write_error(source))?;
        self.size += len;
        self.pending_dropped = 0;
        if self.config.fsync == FsyncPolicy::EveryRecord {
            self.file
                .sync_data()
                .map_err(|source| self.write_error(source))?;
        }
        if let Some(syslog) = &mut self.syslog {
            syslog.send(severity(record), line.trim_end());
        }
        Ok(())
    }

    /// Flushes the live file to stable storage.
    pub fn sync(&self) -> Result<(), AuditLogError> {
        self.file
            .sync_data()
            .map_err(|source| self.write_error(source))
    }

    /// Shifts `<path>.N` to `<path>.N+1` (dropping the oldest beyond `keep`), moves the live
    /// file to `<path>.1` and starts a new one.
    pub fn rotate(&mut self) -> Result<(), AuditLogError> {
        self.sync()?;
        let path = self.config.path.clone();
        let keep = self.config.keep;
        if keep == 0 {
            remove_if_exists(&path)?;
        } else {
            remove_if_exists(&rotated(&path, keep))?;
            for n in (1..keep).rev() {
                rename_if_exists(&rotated(&path, n), &rotated(&path, n + 1))?;
            }
            rename_if_exists(&path, &rotated(&path, 1))?;
        }
        let (file, size) = open_live(&path)?;
        self.file = file;
        self.size = size;
        Ok(())
    }

    fn write_error(&self, source: io::Error) -> AuditLogError {
        AuditLogError::Write {
            path: self.config.path.clone(),
            source,
        }
    }
}

impl Drop for AuditLog {
    fn drop(&mut self) {
        self.file.sync_data().ok();
    }
}

/// `<path>.<n>`: the n-th newest rotated file.
pub fn rotated(path: &Path, n: usize) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".{n}"));
    PathBuf::from(name)
}

fn create_dir(dir: &Path) -> Result<(), AuditLogError> {
    if dir.is_dir() {
        // An existing directory keeps the mode its owner gave it.
        return Ok(());
    }
    let err = |source| AuditLogError::CreateDir {
        path: dir.to_owned(),
        source,
    };
    fs::DirBuilder::new()
        .recursive(true)
        .mode(DIR_MODE)
        .create(dir)
        .map_err(err)?;
    // The umask may have taken bits away; set exactly what the mode says.
    fs::set_permissions(dir, fs::Permissions::from_mode(DIR_MODE)).map_err(err)
}

fn open_live(path: &Path) -> Result<(File, u64), AuditLogError> {
    let err = |source| AuditLogError::Open {
        path: path.to_owned(),
        source,
    };
    let existed = path.exists();
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .mode(FILE_MODE)
        .custom_flags(libc::O_CLOEXEC | libc::O_NOFOLLOW)
        .open(path)
        .map_err(err)?;
    let meta = file.metadata().map_err(err)?;
    if !existed {
        fs::set_permissions(path, fs::Permissions::from_mode(FILE_MODE)).map_err(err)?;
    }
    Ok((file, meta.len()))
}

fn remove_if_exists(path: &Path) -> Result<(), AuditLogError> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(AuditLogError::Rotate {
            from: path.to_owned(),
            to: PathBuf::from("(removed)"),
            source: e,
        }),
        _ => Ok(()),
    }
}

fn rename_if_exists(from: &Path, to: &Path) -> Result<(), AuditLogError> {
    match fs::rename(from, to) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(AuditLogError::Rotate {
            from: from.to_owned(),
            to: to.to_owned(),
            source: e,
        }),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::testing::{record_at, ts};
    use std::os::unix::{fs::MetadataExt as _, net::UnixDatagram};

    fn lines(path: &Path) -> Vec<AuditRecord> {
        fs::read_to_string(path)
            .unwrap()
            .lines()
            .map(|l| AuditRecord::from_json_line(l).unwrap())
            .collect()
    }

    #[test]
    fn creates_dir_and_file_with_restricted_modes_and_appends() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("log/rtguard/audit.jsonl");
        let mut log = AuditLog::open(AuditLogConfig::new(&path)).unwrap();
        log.append(&record_at(ts(0), "r1")).unwrap();
        log.append(&record_at(ts(1), "r2")).unwrap();
        assert_eq!(
            fs::metadata(path.parent().unwrap()).unwrap().mode() & 0o7777,
            0o750
        );
        assert_eq!(fs::metadata(&path).unwrap().mode() & 0o7777, 0o640);
        let text = fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 2);
        assert!(text.ends_with('\n'));
        assert_eq!(log.size(), text.len() as u64);
        drop(log);

        // Reopening appends after what is there.
        let mut log = AuditLog::open(AuditLogConfig::new(&path)).unwrap();
        assert_eq!(log.size(), text.len() as u64);
        log.append(&record_at(ts(2), "r3")).unwrap();
        let rules: Vec<_> = lines(&path).into_iter().map(|r| r.rule.unwrap()).collect();
        assert_eq!(rules, ["r1", "r2", "r3"]);
    }

    #[test]
    fn each_record_is_on_disk_when_append_returns() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("audit.jsonl");
        let mut log = AuditLog::open(AuditLogConfig::new(&path)).unwrap();
        for i in 0..3 {
            log.append(&record_at(ts(i), "r")).unwrap();
            // Read through another descriptor while the writer stays open.
            assert_eq!(lines(&path).len(), i as usize + 1);
        }
        std::mem::forget(log); // as if the daemon were killed: no drop, no final sync
        assert_eq!(lines(&path).len(), 3);
    }

    #[test]
    fn rotates_by_size_numbering_newest_first_and_keeps_n() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("audit.jsonl");
        let one = record_at(ts(0), "r0").to_json_line().len() as u64;
        let config = AuditLogConfig {
            max_bytes: 2 * one, // two records per file
            keep: 3,
            ..AuditLogConfig::new(&path)
        };
        let mut log = AuditLog::open(config).unwrap();
        // 9 records of the same size: files of 2, the live one ends with 1.
        for i in 0..9 {
            log.append(&record_at(ts(i), &format!("r{i}"))).unwrap();
        }
        let rules =
            |p: &Path| -> Vec<String> { lines(p).into_iter().map(|r| r.rule.unwrap()).collect() };
        assert_eq!(rules(&path), ["r8"]);
        assert_eq!(rules(&rotated(&path, 1)), ["r6", "r7"]);
        assert_eq!(rules(&rotated(&path, 2)), ["r4", "r5"]);
        assert_eq!(rules(&rotated(&path, 3)), ["r2", "r3"]);
        assert!(!rotated(&path, 4).exists(), "only keep=3 rotated files");
        for n in 1..=3 {
            let len = fs::metadata(rotated(&path, n)).unwrap().len();
            assert_eq!(len, 2 * one, "file .{n} is full but not over");
            assert_eq!(
                fs::metadata(rotated(&path, n)).unwrap().mode() & 0o7777,
                0o640
            );
        }
        assert_eq!(fs::metadata(&path).unwrap().mode() & 0o7777, 0o640);
        let names: Vec<_> = fs::read_dir(tmp.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names.len(), 4, "{names:?}");
    }

    #[test]
    fn oversized_record_gets_a_file_of_its_own_and_keep_zero_starts_afresh() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("audit.jsonl");
        let config = AuditLogConfig {
            max_bytes: 10,
            keep: 0,
            ..AuditLogConfig::new(&path)
        };
        let mut log = AuditLog::open(config).unwrap();
        log.append(&record_at(ts(0), "first")).unwrap();
        log.append(&record_at(ts(1), "second")).unwrap();
        assert_eq!(lines(&path).len(), 1);
        assert_eq!(lines(&path)[0].rule.as_deref(), Some("second"));
        assert!(!rotated(&path, 1).exists());
    }

    #[test]
    fn failed_rotation_keeps_the_record() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("audit.jsonl");
        let config = AuditLogConfig {
            max_bytes: 10,
            keep: 2,
            ..AuditLogConfig::new(&path)
        };
        let mut log = AuditLog::open(config).unwrap();
        log.append(&record_at(ts(0), "first")).unwrap();
        // A directory where audit.jsonl.2 must go makes the shift fail.
        fs::create_dir(rotated(&path, 2)).unwrap();
        fs::write(rotated(&path, 2).join("x"), b"").unwrap();
        fs::write(rotated(&path, 1), b"").unwrap();
        log.append(&record_at(ts(1), "second")).unwrap();
        log.append(&record_at(ts(2), "third")).unwrap();
        let rules: Vec<_> = lines(&path).into_iter().map(|r| r.rule.unwrap()).collect();
        assert_eq!(rules, ["first", "second", "third"]);
        assert!(log.rotation_retry.is_some());
    }

    #[test]
    fn dropped_events_go_into_the_next_record() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("audit.jsonl");
        let mut log = AuditLog::open(AuditLogConfig::new(&path)).unwrap();
        log.add_dropped(5);
        log.add_dropped(2);
        assert_eq!(log.pending_dropped(), 7);
        log.append(&record_at(ts(0), "r").dropped_since_last(1))
            .unwrap();
        log.append(&record_at(ts(1), "r")).unwrap();
        assert_eq!(log.pending_dropped(), 0);
        let dropped: Vec<_> = lines(&path).iter().map(|r| r.dropped_since_last).collect();
        assert_eq!(dropped, [8, 0]);
    }

    #[test]
    fn copies_records_to_syslog() {
        let tmp = tempfile::tempdir().unwrap();
        let sock_path = tmp.path().join("dev-log");
        let listener = UnixDatagram::bind(&sock_path).unwrap();
        let config = AuditLogConfig {
            syslog: Some(sock_path),
            ..AuditLogConfig::new(tmp.path().join("audit.jsonl"))
        };
        let mut log = AuditLog::open(config).unwrap();
        let rec = record_at(ts(0), "containerd-binaries");
        log.append(&rec).unwrap();
        let mut buf = vec![0u8; 65536];
        let n = listener.recv(&mut buf).unwrap();
        let msg = std::str::from_utf8(&buf[..n]).unwrap();
        let prefix = format!("<84>rtguard[{}]: ", std::process::id());
        assert!(msg.starts_with(&prefix), "{msg}");
        assert_eq!(
            AuditRecord::from_json_line(&msg[prefix.len()..]).unwrap(),
            rec
        );
    }

    #[test]
    fn missing_syslog_socket_does_not_stop_the_log() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("audit.jsonl");
        let config = AuditLogConfig {
            syslog: Some(tmp.path().join("no-such-socket")),
            ..AuditLogConfig::new(&path)
        };
        let mut log = AuditLog::open(config).unwrap();
        for i in 0..3 {
            log.append(&record_at(ts(i), "r")).unwrap();
        }
        assert_eq!(lines(&path).len(), 3);
        let sink = log.syslog.as_ref().unwrap();
        assert!(sink.failing);
        assert_eq!(sink.lost, 3);
    }

    #[test]
    fn unwritable_location_is_an_error_naming_the_path() {
        let tmp = tempfile::tempdir().unwrap();
        let blocker = tmp.path().join("file");
        fs::write(&blocker, b"").unwrap();
        let err = AuditLog::open(AuditLogConfig::new(blocker.join("audit.jsonl"))).unwrap_err();
        assert!(
            err.to_string().starts_with(&format!(
                "cannot create audit log directory {}",
                blocker.display()
            )),
            "{err}"
        );
    }
}
