//! Which files hold one audit log and in what order ([`log_files`]), and reading their
//! records back one by one ([`LogReader`]), rotated and compressed files included.

use std::{
    collections::VecDeque,
    fs::{self, File},
    io::{self, BufRead, BufReader, Read},
    path::{Path, PathBuf},
    rc::Rc,
};

use flate2::read::MultiGzDecoder;

use super::ReviewError;
use crate::audit::record::AuditRecord;

/// The files of one audit log, oldest first: the rotated ones (`FILE.N` … `FILE.1`, each
/// possibly gzip-compressed as `FILE.N.gz`) and then `FILE` itself. With
/// `include_rotated` false, just `FILE`. Fails if there is nothing to read.
pub fn log_files(live: &Path, include_rotated: bool) -> Result<Vec<PathBuf>, ReviewError> {
    let read_error = |path: &Path, source| ReviewError::Read {
        path: path.to_owned(),
        source,
    };
    let live_exists = match fs::metadata(live) {
        Ok(_) => true,
        Err(e) if e.kind() == io::ErrorKind::NotFound => false,
        Err(e) => return Err(read_error(live, e)),
    };
    let mut files = Vec::new();
    if include_rotated {
        if let Some(name) = live.file_name().and_then(|n| n.to_str()) {
            let dir = match live.parent() {
                Some(d) if !d.as_os_str().is_empty() => d,
                _ => Path::new("."),
            };
            let entries = match fs::read_dir(dir) {
                Ok(entries) => entries,
                // Nothing rotated can be there either; the live file's error says it best.
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    return Err(read_error(live, e));
                }
                Err(e) => return Err(read_error(dir, e)),
            };
            let mut rotated: Vec<(u64, bool, PathBuf)> = entries
                .filter_map(Result::ok)
                .filter_map(|entry| {
                    let file_name = entry.file_name();
                    let suffix = file_name.to_str()?.strip_prefix(name)?.strip_prefix('.')?;
                    let (number, gz) = match suffix.strip_suffix(".gz") {
                        Some(n) => (n, true),
                        None => (suffix, false),
                    };
                    if number.is_empty() || !number.bytes().all(|b| b.is_ascii_digit()) {
                        return None;
                    }
                    Some((number.parse().ok()?, gz, entry.path()))
                })
                .collect();
            // Highest number is oldest. Should both FILE.N and FILE.N.gz exist, the
            // uncompressed one is the newer (logrotate's delaycompress leaves it so).
            rotated.sort_by(|a, b| b.0.cmp(&a.0).then(b.1.cmp(&a.1)));
            files.extend(rotated.into_iter().map(|(_, _, p)| p));
        }
    }
    if live_exists {
        files.push(live.to_owned());
    } else if files.is_empty() {
        return Err(read_error(live, io::Error::from_raw_os_error(libc::ENOENT)));
    }
    Ok(files)
}

/// One record as read, with where it came from.
#[derive(Clone, Debug)]
pub struct Entry {
    pub file: Rc<Path>,
    /// 1-based line number within `file`.
    pub line: u64,
    /// The line as written, without its newline, for passing it on unchanged.
    pub raw: String,
    pub record: AuditRecord,
}

/// Something that stopped a line or a file from being read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("{}:{line}: skipped malformed record: {error}", file.display())]
    Malformed {
        file: Rc<Path>,
        line: u64,
        error: String,
    },
    #[error("cannot read {} after line {line}: {source}", file.display())]
    Io {
        file: Rc<Path>,
        line: u64,
        #[source]
        source: io::Error,
    },
}

struct Source {
    path: Rc<Path>,
    reader: Box<dyn BufRead>,
    line: u64,
}

/// Reads records from a list of files in order. A malformed line is an `Err` item and
/// reading goes on with the next line; an I/O error is an `Err` item and reading goes on
/// with the next file.
pub struct LogReader {
    sources: VecDeque<Source>,
    buf: Vec<u8>,
}

impl LogReader {
    /// Opens every file up front, so that a rotation while reading (which renames files)
    /// cannot make a file be read twice or skipped. gzip files are recognised by their
    /// magic number and decompressed.
    pub fn open(files: &[PathBuf]) -> Result<Self, ReviewError> {
        let mut sources = VecDeque::new();
        for path in files {
            let err = |source| ReviewError::Read {
                path: path.clone(),
                source,
            };
            let mut raw = BufReader::new(File::open(path).map_err(err)?);
            let gzip = raw.fill_buf().map_err(err)?.starts_with(&[0x1f, 0x8b]);
            let reader: Box<dyn BufRead> = if gzip {
                Box::new(BufReader::new(MultiGzDecoder::new(raw)))
            } else {
                Box::new(raw)
            };
            sources.push_back(Source {
                path: Rc::from(path.as_path()),
                reader,
                line: 0,
            });
        }
        Ok(Self {
            sources,
            buf: Vec::new(),
        })
    }

    /// Reads from any reader, named `name` in messages (for tests and stdin).
    pub fn from_reader(name: &Path, reader: impl Read + 'static) -> Self {
        let source = Source {
            path: Rc::from(name),
            reader: Box::new(BufReader::new(reader)),
            line: 0,
        };
        Self {
            sources: VecDeque::from([source]),
            buf: Vec::new(),
        }
    }
}

impl Iterator for LogReader {
    type Item = Result<Entry, ReadError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let source = self.sources.front_mut()?;
            self.buf.clear();
            match source.reader.read_until(b'\n', &mut self.buf) {
                Ok(0) => {
                    self.sources.pop_front();
                }
                Ok(_) => {
                    source.line += 1;
                    let complete = self.buf.last() == Some(&b'\n');
                    let bytes = self.buf.strip_suffix(b"\n").unwrap_or(&self.buf);
                    if bytes.iter().all(u8::is_ascii_whitespace) {
                        continue;
                    }
                    let malformed = |error: String| ReadError::Malformed {
                        file: source.path.clone(),
                        line: source.line,
                        error,
                    };
                    let raw = match std::str::from_utf8(bytes) {
                        Ok(raw) => raw,
                        Err(e) => return Some(Err(malformed(format!("not UTF-8: {e}")))),
                    };
                    return Some(match AuditRecord::from_json_line(raw) {
                        Ok(record) => Ok(Entry {
                            file: source.path.clone(),
                            line: source.line,
                            raw: raw.to_owned(),
                            record,
                        }),
                        Err(e) if !complete => Err(malformed(format!(
                            "incomplete last line (a write cut short?): {e}"
                        ))),
                        Err(e) => Err(malformed(e.to_string())),
                    });
                }
                Err(source_err) => {
                    let source = self.sources.pop_front()?;
                    return Some(Err(ReadError::Io {
                        file: source.path,
                        line: source.line,
                        source: source_err,
                    }));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write as _;

    use super::*;
    use crate::audit::{
        log::{rotated, AuditLog, AuditLogConfig},
        testing::{record_at, ts},
    };

    fn write_rotated_log(dir: &Path) -> PathBuf {
        let path = dir.join("audit.jsonl");
        let one = record_at(ts(0), "r0").to_json_line().len() as u64;
        let mut log = AuditLog::open(AuditLogConfig {
            max_bytes: 2 * one,
            keep: 5,
            ..AuditLogConfig::new(&path)
        })
        .unwrap();
        for i in 0..7 {
            log.append(&record_at(ts(i), &format!("r{i}"))).unwrap();
        }
        path
    }

    fn rules(reader: LogReader) -> Vec<String> {
        reader.map(|e| e.unwrap().record.rule.unwrap()).collect()
    }

    #[test]
    fn reads_rotated_files_oldest_first() {
        let tmp = tempfile::tempdir().unwrap();
        let path = write_rotated_log(tmp.path());
        let files = log_files(&path, true).unwrap();
        assert_eq!(
            files,
            [
                rotated(&path, 3),
                rotated(&path, 2),
                rotated(&path, 1),
                path.clone()
            ]
        );
        assert_eq!(
            rules(LogReader::open(&files).unwrap()),
            ["r0", "r1", "r2", "r3", "r4", "r5", "r6"]
        );
        // Just the live file.
        assert_eq!(
            log_files(&path, false).unwrap(),
            std::slice::from_ref(&path)
        );
        // Unrelated names next to it are left alone.
        fs::write(tmp.path().join("audit.jsonl.bak"), "x").unwrap();
        fs::write(tmp.path().join("audit.jsonl.1x"), "x").unwrap();
        fs::write(tmp.path().join("other.jsonl.4"), "x").unwrap();
        assert_eq!(log_files(&path, true).unwrap().len(), 4);
        // Numbers sort as numbers.
        fs::rename(rotated(&path, 3), rotated(&path, 10)).unwrap();
        assert_eq!(log_files(&path, true).unwrap()[0], rotated(&path, 10));
    }

    #[test]
    fn reads_gzip_rotated_files() {
        use flate2::{write::GzEncoder, Compression};
        let tmp = tempfile::tempdir().unwrap();
        let path = write_rotated_log(tmp.path());
        // As logrotate's compress + delaycompress would leave it: .1 plain, older ones .gz.
        for n in [2, 3] {
            let plain = fs::read(rotated(&path, n)).unwrap();
            let mut gz = GzEncoder::new(Vec::new(), Compression::default());
            gz.write_all(&plain).unwrap();
            let mut name = rotated(&path, n).into_os_string();
            name.push(".gz");
            fs::write(&name, gz.finish().unwrap()).unwrap();
            fs::remove_file(rotated(&path, n)).unwrap();
        }
        let files = log_files(&path, true).unwrap();
        assert!(
            files[0].to_str().unwrap().ends_with("audit.jsonl.3.gz"),
            "{files:?}"
        );
        assert_eq!(
            rules(LogReader::open(&files).unwrap()),
            ["r0", "r1", "r2", "r3", "r4", "r5", "r6"]
        );
    }

    #[test]
    fn live_file_missing_after_rotation_still_reads_the_rest() {
        let tmp = tempfile::tempdir().unwrap();
        let path = write_rotated_log(tmp.path());
        fs::remove_file(&path).unwrap();
        let files = log_files(&path, true).unwrap();
        assert_eq!(files.len(), 3);
        // Nothing at all is an error naming the live file.
        let err = log_files(&tmp.path().join("none.jsonl"), true).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "cannot read {}: No such file or directory (os error 2)",
                tmp.path().join("none.jsonl").display()
            )
        );
        let err = log_files(Path::new("/nonexistent-dir/audit.jsonl"), true).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("cannot read /nonexistent-dir/audit.jsonl: "),
            "{err}"
        );
    }

    #[test]
    fn malformed_lines_are_reported_with_file_and_line_and_skipped() {
        let good = record_at(ts(0), "good").to_json_line();
        let mut newer: serde_json::Value = serde_json::from_str(&good).unwrap();
        newer["v"] = 3.into();
        let mut bytes = Vec::new();
        bytes.extend_from_slice(good.as_bytes()); // 1
        bytes.extend_from_slice(b"not json\n\n   \n"); // 2, then two blank lines
        bytes.extend_from_slice(format!("{newer}\n").as_bytes()); // 5
        bytes.extend_from_slice(b"{\"v\":1}\n"); // 6
        bytes.extend_from_slice(b"\xff\n"); // 7
        bytes.extend_from_slice(good.as_bytes()); // 8
        bytes.extend_from_slice(&good.as_bytes()[..good.len() / 2]); // 9, cut short
        let reader = LogReader::from_reader(Path::new("audit.jsonl"), io::Cursor::new(bytes));
        let results: Vec<_> = reader.collect();
        let summary: Vec<String> = results
            .iter()
            .map(|r| match r {
                Ok(e) => format!("ok {}:{}", e.file.display(), e.line),
                Err(e) => e.to_string(),
            })
            .collect();
        assert_eq!(summary.len(), 7, "{summary:#?}");
        assert_eq!(summary[0], "ok audit.jsonl:1");
        assert!(
            summary[1].starts_with("audit.jsonl:2: skipped malformed record: expected ident"),
            "{}",
            summary[1]
        );
        assert_eq!(summary[2], "audit.jsonl:5: skipped malformed record: unsupported schema version 3 (this rtguard reads versions 1 to 2)");
        assert!(
            summary[3].starts_with("audit.jsonl:6: skipped malformed record: missing field"),
            "{}",
            summary[3]
        );
        assert!(
            summary[4].starts_with("audit.jsonl:7: skipped malformed record: not UTF-8"),
            "{}",
            summary[4]
        );
        assert_eq!(summary[5], "ok audit.jsonl:8");
        assert!(
            summary[6].starts_with("audit.jsonl:9: skipped malformed record: incomplete last line"),
            "{}",
            summary[6]
        );
        // The raw line is kept byte for byte for --json.
        assert_eq!(results[0].as_ref().unwrap().raw, good.trim_end());
    }

    #[test]
    fn an_unreadable_file_fails_to_open() {
        let tmp = tempfile::tempdir().unwrap();
        let dir_not_file = tmp.path().join("audit.jsonl");
        fs::create_dir(&dir_not_file).unwrap();
        // Opening a directory works; reading it fails, and that is reported, not a panic.
        match LogReader::open(std::slice::from_ref(&dir_not_file)) {
            Err(e) => assert!(e.to_string().starts_with("cannot read"), "{e}"),
            Ok(reader) => {
                let items: Vec<_> = reader.collect();
                assert!(
                    matches!(items.as_slice(), [Err(ReadError::Io { .. })]),
                    "{items:?}"
                );
            }
        }
    }
}
