//! Reading the audit trail back: which files hold it and in what order, which records
//! match a question, and how to show them to a person (table, summary).

use std::{
    collections::{BTreeMap, VecDeque},
    fs::{self, File},
    io::{self, BufRead, BufReader, Read, Write},
    path::{Path, PathBuf},
    rc::Rc,
};

use flate2::read::MultiGzDecoder;
use serde::Serialize;
use time::{
    format_description::FormatItem, macros::format_description, Date, OffsetDateTime, Time,
};

use super::record::{timestamp, AuditRecord, Decision, Layer};

#[derive(Debug, thiserror::Error)]
pub enum ReviewError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(
        "invalid time '{0}': expected a duration ago (30s, 10m, 2h, 3d, 1w) or an RFC 3339 \
         timestamp (2026-11-26T14:00:00Z) or a date (2026-11-26, midnight UTC)"
    )]
    BadTime(String),
}

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

/// Parses a `--since`/`--until` value: a duration meaning that long before `now` (`10m`,
/// `2h`, `3d`, `1h30m`), an RFC 3339 timestamp, or a date meaning its midnight UTC.
pub fn parse_when(s: &str, now: OffsetDateTime) -> Result<OffsetDateTime, ReviewError> {
    let s = s.trim();
    if let Ok(ts) = timestamp::parse(s) {
        return Ok(ts);
    }
    if let Ok(date) = Date::parse(s, format_description!("[year]-[month]-[day]")) {
        return Ok(date.with_time(Time::MIDNIGHT).assume_utc());
    }
    if s.starts_with(|c: char| c.is_ascii_digit()) {
        if let Ok(ago) = humantime::parse_duration(s) {
            if let Some(t) = time::Duration::try_from(ago)
                .ok()
                .and_then(|ago| now.checked_sub(ago))
            {
                return Ok(t);
            }
        }
    }
    Err(ReviewError::BadTime(s.to_owned()))
}

/// Which records to show. Each list is a set of alternatives (any may match); the
/// different criteria must all match. Empty lists match everything.
#[derive(Clone, Debug, Default)]
pub struct Filter {
    /// At or after.
    pub since: Option<OffsetDateTime>,
    /// At or before.
    pub until: Option<OffsetDateTime>,
    /// Rule names, exactly.
    pub rules: Vec<String>,
    pub decisions: Vec<Decision>,
    /// Operations, exactly (`unlink`, `exec`, `maintenance-open`, …).
    pub ops: Vec<String>,
    /// Package names, exactly: the target's owning package, or the object of a classified
    /// command (`apt-get remove containerd.io` is about containerd.io).
    pub packages: Vec<String>,
    /// Substrings of the actor's comm, exe or command line.
    pub actors: Vec<String>,
    pub layers: Vec<Layer>,
}

impl Filter {
    /// Whether the record falls inside `since`/`until`.
    pub fn in_window(&self, r: &AuditRecord) -> bool {
        self.since.is_none_or(|s| r.ts >= s) && self.until.is_none_or(|u| r.ts <= u)
    }

    pub fn matches(&self, r: &AuditRecord) -> bool {
        fn any<T>(wanted: &[T], hit: impl Fn(&T) -> bool) -> bool {
            wanted.is_empty() || wanted.iter().any(hit)
        }
        self.in_window(r)
            && any(&self.rules, |w| r.rule.as_deref() == Some(w.as_str()))
            && any(&self.decisions, |&d| r.decision == d)
            && any(&self.ops, |w| r.op == *w)
            && any(&self.layers, |&l| r.layer == l)
            && any(&self.packages, |w| {
                r.target.package.as_deref() == Some(w.as_str())
                    || r.exec
                        .as_ref()
                        .and_then(|e| e.object.as_deref())
                        .is_some_and(|o| o == w)
            })
            && any(&self.actors, |w| {
                let a = &r.actor;
                a.comm.contains(w.as_str())
                    || a.exe.as_deref().is_some_and(|e| e.contains(w.as_str()))
                    || a.argv.join(" ").contains(w.as_str())
            })
    }
}

/// Counts over the records reviewed, like aureport's summary.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    pub records: u64,
    #[serde(serialize_with = "optional_ts")]
    pub first: Option<OffsetDateTime>,
    #[serde(serialize_with = "optional_ts")]
    pub last: Option<OffsetDateTime>,
    /// Records whose decision the kernel could not enforce.
    pub unenforced: u64,
    /// Kernel events lost in the reviewed period. They belong to no rule or actor, so only
    /// `since`/`until` narrow this down.
    pub dropped: u64,
    pub by_decision: BTreeMap<String, u64>,
    pub by_rule: BTreeMap<String, u64>,
    /// Per `layer/op`.
    pub by_op: BTreeMap<String, u64>,
    /// Per actor command line.
    pub by_actor: BTreeMap<String, u64>,
}

const NO_RULE: &str = "(no rule)";

impl Summary {
    pub fn add(&mut self, r: &AuditRecord) {
        self.records += 1;
        self.first = Some(self.first.map_or(r.ts, |f| f.min(r.ts)));
        self.last = Some(self.last.map_or(r.ts, |l| l.max(r.ts)));
        if !r.enforced {
            self.unenforced += 1;
        }
        *self.by_decision.entry(r.decision.to_string()).or_default() += 1;
        *self
            .by_rule
            .entry(r.rule.clone().unwrap_or_else(|| NO_RULE.into()))
            .or_default() += 1;
        *self
            .by_op
            .entry(format!("{}/{}", r.layer, r.op))
            .or_default() += 1;
        *self.by_actor.entry(r.command_line()).or_default() += 1;
    }

    pub fn add_dropped(&mut self, dropped: u64) {
        self.dropped = self.dropped.saturating_add(dropped);
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a summary always serialises to JSON")
    }

    /// The summary as text for a terminal.
    pub fn render(&self) -> String {
        use std::fmt::Write as _;
        let mut out = String::new();
        let span = match (self.first, self.last) {
            (Some(f), Some(l)) => format!(", {} to {} UTC", table_time(f), table_time(l)),
            _ => String::new(),
        };
        let _ = writeln!(out, "Audit summary: {} records{span}", self.records);
        let _ = writeln!(
            out,
            "Not enforced (degraded mode or failed self-test): {}",
            self.unenforced
        );
        let _ = writeln!(
            out,
            "Dropped kernel events (not in the log): {}",
            self.dropped
        );
        for (title, counts) in [
            ("decision", &self.by_decision),
            ("rule", &self.by_rule),
            ("layer/op", &self.by_op),
            ("actor command line", &self.by_actor),
        ] {
            let _ = writeln!(out, "\nBy {title}:");
            if counts.is_empty() {
                let _ = writeln!(out, "  (none)");
                continue;
            }
            let mut rows: Vec<_> = counts.iter().collect();
            rows.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
            let width = rows[0].1.to_string().len().max(5);
            let _ = writeln!(out, "  {:>width$}  {title}", "count");
            for (key, count) in rows {
                let _ = writeln!(out, "  {count:>width$}  {}", ellipsize_end(key, 100));
            }
        }
        out
    }
}

fn optional_ts<S: serde::Serializer>(ts: &Option<OffsetDateTime>, s: S) -> Result<S::Ok, S::Error> {
    match ts {
        Some(ts) => s.serialize_str(&timestamp::format(*ts)),
        None => s.serialize_none(),
    }
}

const TABLE_TIME: &[FormatItem<'static>] =
    format_description!("[year]-[month]-[day] [hour]:[minute]:[second]");

fn table_time(ts: OffsetDateTime) -> String {
    ts.format(TABLE_TIME)
        .unwrap_or_else(|_| timestamp::format(ts))
}

const HEADERS: [&str; 6] = [
    "TIME (UTC)",
    "DECISION",
    "LAYER/OP",
    "RULE",
    "TARGET",
    "ACTOR",
];
/// Widest a cell may be, in characters; longer ones are shortened with `…`.
const CAPS: [usize; 6] = [19, 20, 24, 28, 48, 90];
/// Rows looked at to size the columns before the first is printed.
const SIZING_ROWS: usize = 1000;

/// Writes records as an aligned table. Columns are sized from the first rows, so a long
/// log streams out without being held in memory.
pub struct TableWriter<W: Write> {
    out: W,
    pending: Vec<[String; 6]>,
    widths: Option<[usize; 6]>,
    rows: u64,
    unenforced: bool,
}

impl<W: Write> TableWriter<W> {
    pub fn new(out: W) -> Self {
        Self {
            out,
            pending: Vec::new(),
            widths: None,
            rows: 0,
            unenforced: false,
        }
    }

    pub fn push(&mut self, r: &AuditRecord) -> io::Result<()> {
        self.rows += 1;
        self.unenforced |= !r.enforced;
        let row = table_row(r);
        match self.widths {
            Some(widths) => write_row(&mut self.out, &widths, &row),
            None => {
                self.pending.push(row);
                if self.pending.len() >= SIZING_ROWS {
                    self.flush_pending()?;
                }
                Ok(())
            }
        }
    }

    fn flush_pending(&mut self) -> io::Result<()> {
        let mut widths = HEADERS.map(|h| h.chars().count());
        for row in &self.pending {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.chars().count());
            }
        }
        self.widths = Some(widths);
        write_row(&mut self.out, &widths, &HEADERS.map(String::from))?;
        for row in std::mem::take(&mut self.pending) {
            write_row(&mut self.out, &widths, &row)?;
        }
        Ok(())
    }

    /// The output, for writing around the table.
    pub fn get_mut(&mut self) -> &mut W {
        &mut self.out
    }

    /// Rows written so far.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Ends the table with what a reader must not miss: unenforced decisions and lost
    /// events. Prints nothing at all when there were no rows and nothing was lost.
    pub fn finish(mut self, dropped: u64) -> io::Result<W> {
        if self.rows > 0 {
            self.flush_pending()?;
        }
        if self.unenforced {
            writeln!(
                self.out,
                "* not enforced: the kernel only observed this (degraded mode), or the self-test failed"
            )?;
        }
        if dropped > 0 {
            writeln!(
                self.out,
                "{dropped} kernel event(s) were dropped in this period and are not in the log"
            )?;
        }
        self.out.flush()?;
        Ok(self.out)
    }
}

fn table_row(r: &AuditRecord) -> [String; 6] {
    let decision = if r.enforced {
        r.decision.to_string()
    } else {
        format!("{}*", r.decision)
    };
    let mut actor = format!("{}[{}]", r.actor.comm, r.actor.pid);
    if !r.actor.argv.is_empty() {
        actor.push(' ');
        actor.push_str(&r.command_line());
    }
    let target = match &r.exec {
        // For a refused command the command says more than the binary's path.
        Some(e) => match &e.object {
            Some(o) => format!("{} {o}", e.verb),
            None => e.verb.clone(),
        },
        None => r.target.describe(),
    };
    // Why a window was opened, why a self-test failed: worth a glance in the table.
    let target = match (&r.note, target.is_empty()) {
        (Some(note), false) => format!("{target} ({note})"),
        (Some(note), true) => format!("({note})"),
        (None, _) => target,
    };
    let cells = [
        table_time(r.ts),
        decision,
        format!("{}/{}", r.layer, r.op),
        r.rule.clone().unwrap_or_else(|| "-".into()),
        target,
        actor,
    ];
    let mut i = 0;
    cells.map(|cell| {
        let cap = CAPS[i];
        i += 1;
        let cell = if cell.is_empty() { "-".into() } else { cell };
        // Paths keep their end (the file name), everything else its start.
        if i == 5 && cell.starts_with('/') {
            ellipsize_start(&cell, cap)
        } else {
            ellipsize_end(&cell, cap)
        }
    })
}

fn write_row(out: &mut impl Write, widths: &[usize; 6], row: &[String; 6]) -> io::Result<()> {
    let mut line = String::new();
    for (i, (cell, &w)) in row.iter().zip(widths).enumerate() {
        if i + 1 == row.len() {
            line.push_str(cell);
        } else {
            line.push_str(cell);
            let pad = w.saturating_sub(cell.chars().count()) + 2;
            line.extend(std::iter::repeat_n(' ', pad));
        }
    }
    writeln!(out, "{}", line.trim_end())
}

fn ellipsize_end(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_owned();
    }
    let mut out: String = s.chars().take(max - 1).collect();
    out.push('…');
    out
}

fn ellipsize_start(s: &str, max: usize) -> String {
    let n = s.chars().count();
    if n <= max {
        return s.to_owned();
    }
    let mut out = String::from('…');
    out.extend(s.chars().skip(n - (max - 1)));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::{
        log::{rotated, AuditLog, AuditLogConfig},
        record::{Actor, Target},
        testing::{context, record_at, ts},
    };

    /// A small log covering every filter dimension.
    fn fixture() -> Vec<AuditRecord> {
        let exec = context()
            .record(
                Layer::Exec,
                "exec",
                Decision::WouldBlock,
                Actor::new(5000, 0, "bash")
                    .with_argv(["apt-get", "remove", "containerd.io"], false),
            )
            .at(ts(10))
            .enforced(false)
            .rule("package-removal")
            .target(
                Target::default()
                    .with_path("/usr/bin/apt-get")
                    .with_package("apt"),
            )
            .exec("remove", Some("containerd.io".into()));
        let kill = context()
            .record(
                Layer::Process,
                "kill",
                Decision::Blocked,
                Actor::new(6000, 0, "pkill").with_argv(["pkill", "-9", "containerd-shim"], false),
            )
            .at(ts(20))
            .rule("runtime-daemons")
            .target(
                Target::default()
                    .with_path("/usr/bin/containerd-shim-runc-v2")
                    .with_process(900, "containerd-shim"),
            )
            .signal(9)
            .dropped_since_last(3);
        let upgrade = context()
            .record(
                Layer::File,
                "rename",
                Decision::AllowedMaintenance,
                Actor::new(7000, 0, "dpkg").with_argv(["dpkg", "--unpack", "runc.deb"], false),
            )
            .at(ts(30))
            .rule("runc-binary")
            .target(
                Target::default()
                    .with_path("/usr/sbin/runc")
                    .with_package("runc"),
            );
        let notice = context()
            .record(
                Layer::Daemon,
                "maintenance-open",
                Decision::Notice,
                Actor::new(1, 0, "rtguard"),
            )
            .at(ts(40))
            .target(Target::package("runc"))
            .note("security upgrade")
            .dropped_since_last(2);
        vec![
            record_at(ts(0), "containerd-binaries"),
            exec,
            kill,
            upgrade,
            notice,
            record_at(ts(50), "containerd-binaries"),
        ]
    }

    fn matching(filter: &Filter) -> Vec<String> {
        fixture()
            .iter()
            .filter(|r| filter.matches(r))
            .map(|r| format!("{}/{}", r.layer, r.op))
            .collect()
    }

    #[test]
    fn every_filter_narrows() {
        assert_eq!(matching(&Filter::default()).len(), 6);
        let f = |build: fn(&mut Filter)| {
            let mut filter = Filter::default();
            build(&mut filter);
            matching(&filter)
        };
        assert_eq!(
            f(|f| f.since = Some(ts(30))),
            ["file/rename", "daemon/maintenance-open", "file/unlink"]
        );
        assert_eq!(f(|f| f.until = Some(ts(10))), ["file/unlink", "exec/exec"]);
        assert_eq!(
            f(|f| {
                f.since = Some(ts(10));
                f.until = Some(ts(20));
            }),
            ["exec/exec", "process/kill"]
        );
        assert_eq!(
            f(|f| f.rules = vec!["containerd-binaries".into()]),
            ["file/unlink", "file/unlink"]
        );
        assert_eq!(
            f(|f| f.rules = vec!["runc-binary".into(), "runtime-daemons".into()]),
            ["process/kill", "file/rename"]
        );
        assert!(
            f(|f| f.rules = vec!["containerd".into()]).is_empty(),
            "rules match exactly"
        );
        assert_eq!(
            f(|f| f.decisions = vec![Decision::WouldBlock]),
            ["exec/exec"]
        );
        assert_eq!(
            f(|f| f.decisions = vec![Decision::Notice, Decision::AllowedMaintenance]),
            ["file/rename", "daemon/maintenance-open"]
        );
        assert_eq!(f(|f| f.ops = vec!["kill".into()]), ["process/kill"]);
        assert_eq!(f(|f| f.layers = vec![Layer::Exec]), ["exec/exec"]);
        assert_eq!(
            f(|f| f.layers = vec![Layer::File]),
            ["file/unlink", "file/rename", "file/unlink"]
        );
        // Owning package, or the package a command is about.
        assert_eq!(
            f(|f| f.packages = vec!["runc".into()]),
            ["file/rename", "daemon/maintenance-open"]
        );
        assert_eq!(
            f(|f| f.packages = vec!["containerd.io".into()]),
            ["file/unlink", "exec/exec", "file/unlink"]
        );
        // Actor: comm, exe or command line substrings.
        assert_eq!(f(|f| f.actors = vec!["pkill".into()]), ["process/kill"]);
        assert_eq!(
            f(|f| f.actors = vec!["remove containerd".into()]),
            ["exec/exec"]
        );
        assert_eq!(f(|f| f.actors = vec!["--unpack".into()]), ["file/rename"]);
        assert_eq!(
            f(|f| f.actors = vec!["rtgu".into()]),
            ["daemon/maintenance-open"]
        );
        // Criteria combine with AND.
        assert_eq!(
            f(|f| {
                f.layers = vec![Layer::File];
                f.decisions = vec![Decision::Blocked];
                f.since = Some(ts(1));
            }),
            ["file/unlink"]
        );
    }

    #[test]
    fn actor_filter_matches_exe() {
        let mut r = record_at(ts(0), "r");
        r.actor.exe = Some("/opt/olares/uninstall".into());
        let filter = Filter {
            actors: vec!["olares".into()],
            ..Filter::default()
        };
        assert!(filter.matches(&r));
    }

    #[test]
    fn parses_durations_timestamps_and_dates() {
        let now = ts(0);
        assert_eq!(parse_when("10m", now).unwrap(), ts(-10));
        assert_eq!(parse_when("2h", now).unwrap(), ts(-120));
        assert_eq!(parse_when("3d", now).unwrap(), ts(-3 * 24 * 60));
        assert_eq!(parse_when("1h30m", now).unwrap(), ts(-90));
        assert_eq!(parse_when("2026-11-26T15:00:00+01:00", now).unwrap(), ts(0));
        assert_eq!(
            parse_when("2026-11-26T14:00:00.5Z", now).unwrap(),
            ts(0) + time::Duration::milliseconds(500)
        );
        assert_eq!(parse_when("2026-11-26", now).unwrap(), ts(-14 * 60));
        for bad in ["", "yesterday", "10", "-5m", "2026-13-01", "10 parsecs"] {
            let err = parse_when(bad, now).unwrap_err().to_string();
            assert!(err.starts_with(&format!("invalid time '{bad}'")), "{err}");
        }
    }

    #[test]
    fn summary_counts() {
        let mut summary = Summary::default();
        for r in fixture() {
            summary.add(&r);
            summary.add_dropped(r.dropped_since_last);
        }
        assert_eq!(summary.records, 6);
        assert_eq!(summary.unenforced, 1);
        assert_eq!(summary.dropped, 5);
        assert_eq!((summary.first, summary.last), (Some(ts(0)), Some(ts(50))));
        let counts = |m: &BTreeMap<String, u64>| -> Vec<(String, u64)> {
            m.iter().map(|(k, v)| (k.clone(), *v)).collect()
        };
        assert_eq!(
            counts(&summary.by_decision),
            [
                ("allowed-maintenance".into(), 1),
                ("blocked".into(), 3),
                ("notice".into(), 1),
                ("would-block".into(), 1)
            ]
        );
        assert_eq!(
            counts(&summary.by_rule),
            [
                ("(no rule)".into(), 1),
                ("containerd-binaries".into(), 2),
                ("package-removal".into(), 1),
                ("runc-binary".into(), 1),
                ("runtime-daemons".into(), 1)
            ]
        );
        assert_eq!(summary.by_actor["rm -rf /usr/bin/containerd"], 2);
        assert_eq!(summary.by_actor["apt-get remove containerd.io"], 1);
        assert_eq!(summary.by_actor["[rtguard]"], 1);
        assert_eq!(summary.by_op["file/unlink"], 2);

        let text = summary.render();
        assert!(
            text.starts_with(
                "Audit summary: 6 records, 2026-11-26 14:00:00 to 2026-11-26 14:50:00 UTC\n\
             Not enforced (degraded mode or failed self-test): 1\n\
             Dropped kernel events (not in the log): 5\n"
            ),
            "{text}"
        );
        // Most frequent first, then by name.
        assert!(
            text.contains(
                "By decision:\n  count  decision\n      3  blocked\n      1  allowed-maintenance\n"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "By rule:\n  count  rule\n      2  containerd-binaries\n      1  (no rule)\n"
            ),
            "{text}"
        );

        let json: serde_json::Value = serde_json::from_str(&summary.to_json()).unwrap();
        assert_eq!(json["records"], 6);
        assert_eq!(json["dropped"], 5);
        assert_eq!(json["first"], "2026-11-26T14:00:00.000000000Z");
        assert_eq!(json["by_rule"]["containerd-binaries"], 2);
    }

    #[test]
    fn empty_summary_renders() {
        let text = Summary::default().render();
        assert!(text.starts_with("Audit summary: 0 records\n"), "{text}");
        assert!(text.contains("By rule:\n  (none)\n"), "{text}");
    }

    #[test]
    fn table_is_aligned_and_shortened() {
        let mut table = TableWriter::new(Vec::new());
        let mut long = record_at(ts(0), "r");
        long.target.path = Some(format!("/var/lib/containerd/{}/snapshot", "x".repeat(60)));
        long.actor = long
            .actor
            .with_argv(["rm".to_owned(), "-rf".into(), "y".repeat(200)], false);
        for r in fixture().iter().chain([&long]) {
            table.push(r).unwrap();
        }
        assert_eq!(table.rows(), 7);
        let out = String::from_utf8(table.finish(5).unwrap()).unwrap();
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(
            lines[0],
            "TIME (UTC)           DECISION             LAYER/OP                 RULE                 TARGET                                            ACTOR"
        );
        assert_eq!(
            lines[1],
            "2026-11-26 14:00:00  blocked              file/unlink              containerd-binaries  /usr/bin/containerd                               rm[4242] rm -rf /usr/bin/containerd"
        );
        assert_eq!(
            lines[2],
            "2026-11-26 14:10:00  would-block*         exec/exec                package-removal      remove containerd.io                              bash[5000] apt-get remove containerd.io"
        );
        assert!(lines[3].contains("process/kill             runtime-daemons      /usr/bin/containerd-shim-runc-v2 [900]"), "{}", lines[3]);
        assert!(
            lines[5]
                .contains("daemon/maintenance-open  -                    runc (security upgrade)"),
            "{}",
            lines[5]
        );
        // Every ACTOR column starts at the same place.
        let col = lines[0].find("ACTOR").unwrap();
        for l in &lines[1..8] {
            assert_eq!(l.chars().nth(col - 2), Some(' '), "{l}");
            assert_ne!(l.chars().nth(col), Some(' '), "{l}");
        }
        // Long paths keep their end, long command lines their start.
        assert!(lines[7].contains("  …xxxx"), "{}", lines[7]);
        assert!(
            lines[7].contains("xxxx/snapshot  rm[4242] rm -rf yyyy"),
            "{}",
            lines[7]
        );
        let actor = &lines[7][lines[7].find("rm[4242]").unwrap()..];
        assert_eq!(actor.chars().count(), CAPS[5]);
        assert!(actor.ends_with("yyy…"), "{actor}");
        assert_eq!(lines[8], "* not enforced: the kernel only observed this (degraded mode), or the self-test failed");
        assert_eq!(
            lines[9],
            "5 kernel event(s) were dropped in this period and are not in the log"
        );
    }

    #[test]
    fn empty_table_prints_nothing_unless_events_were_dropped() {
        let out = TableWriter::new(Vec::new()).finish(0).unwrap();
        assert!(out.is_empty());
        let out = TableWriter::new(Vec::new()).finish(2).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "2 kernel event(s) were dropped in this period and are not in the log\n"
        );
    }

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
