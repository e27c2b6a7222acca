//! Showing records to a person: [`TableWriter`], an aligned table that streams, and
//! [`Summary`], counts over the records reviewed.

use std::{
    collections::BTreeMap,
    io::{self, Write},
};

use serde::Serialize;
use time::{format_description::FormatItem, macros::format_description, OffsetDateTime};

use crate::audit::record::{timestamp, AuditRecord};

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
    use super::{super::testing::fixture, *};
    use crate::audit::testing::{record_at, ts};

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
}
