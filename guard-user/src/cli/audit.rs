//! `rtguard audit`: review the audit trail.

use std::{
    io::{self, BufWriter, Write},
    path::PathBuf,
};

use clap::{
    builder::{PossibleValuesParser, TypedValueParser as _},
    Args,
};
use time::OffsetDateTime;

use super::exit;
use crate::{
    audit::{
        review::{log_files, parse_when, Filter, LogReader, ReadError, Summary, TableWriter},
        Decision, Layer,
    },
    host::paths::DEFAULT_AUDIT_LOG,
};

/// At most this many malformed lines are described on stderr; the rest are counted.
const MALFORMED_SHOWN: u64 = 20;

#[derive(Debug, Args)]
#[command(
    after_help = "Reads FILE and the files rotated from it (FILE.N … FILE.1, also FILE.N.gz), \
                  oldest first, and shows the records that match every filter given. A filter \
                  given more than once matches any of its values. Malformed lines are reported \
                  on stderr with file:line and skipped. The schema is in docs/audit-schema.md.\n\n\
                  Exit status: 0 when the log was read (even with no matching record), 1 when \
                  a file could not be read, 2 for bad arguments."
)]
pub struct AuditArgs {
    /// The audit log to read.
    #[arg(value_name = "FILE", default_value = DEFAULT_AUDIT_LOG)]
    pub file: PathBuf,

    /// Only records at or after WHEN: a duration ago (30s, 10m, 2h, 3d, 1w), an RFC 3339
    /// timestamp (2026-11-26T14:00:00Z) or a date (2026-11-26, midnight UTC).
    #[arg(long, value_name = "WHEN", value_parser = parse_when_now)]
    pub since: Option<OffsetDateTime>,

    /// Only records at or before WHEN (same forms as --since).
    #[arg(long, value_name = "WHEN", value_parser = parse_when_now)]
    pub until: Option<OffsetDateTime>,

    /// Only records of this policy rule (exact name).
    #[arg(long, value_name = "RULE")]
    pub rule: Vec<String>,

    /// Only records with this decision.
    #[arg(long, value_name = "DECISION", value_parser = decision_parser())]
    pub decision: Vec<Decision>,

    /// Only records of this operation (unlink, rename, exec, kill, maintenance-open, …).
    #[arg(long, value_name = "OP")]
    pub op: Vec<String>,

    /// Only records about this package: the target's owner, or the package a refused
    /// command names.
    #[arg(long, value_name = "PACKAGE")]
    pub package: Vec<String>,

    /// Only records whose actor's comm, executable or command line contains TEXT.
    #[arg(long, value_name = "TEXT")]
    pub actor: Vec<String>,

    /// Only records from this layer.
    #[arg(long, value_name = "LAYER", value_parser = layer_parser())]
    pub layer: Vec<Layer>,

    /// Print the matching records as they are in the log, one JSON object per line (with
    /// --summary: the summary as one JSON object).
    #[arg(long)]
    pub json: bool,

    /// Print counts per decision, rule, operation and actor command line, and the number
    /// of kernel events dropped, instead of the records.
    #[arg(long)]
    pub summary: bool,

    /// Read FILE only, not the files rotated from it.
    #[arg(long)]
    pub no_rotated: bool,
}

fn parse_when_now(s: &str) -> Result<OffsetDateTime, String> {
    parse_when(s, OffsetDateTime::now_utc()).map_err(|e| e.to_string())
}

fn decision_parser() -> impl clap::builder::TypedValueParser<Value = Decision> {
    PossibleValuesParser::new(Decision::ALL.map(Decision::as_str))
        .map(|s| s.parse::<Decision>().expect("only listed values get here"))
}

fn layer_parser() -> impl clap::builder::TypedValueParser<Value = Layer> {
    PossibleValuesParser::new(Layer::ALL.map(Layer::as_str))
        .map(|s| s.parse::<Layer>().expect("only listed values get here"))
}

pub fn audit(args: AuditArgs) -> u8 {
    if let (Some(since), Some(until)) = (args.since, args.until) {
        if since > until {
            eprintln!("rtguard: --since is later than --until: nothing could match");
            return exit::USAGE;
        }
    }
    let filter = Filter {
        since: args.since,
        until: args.until,
        rules: args.rule,
        decisions: args.decision,
        ops: args.op,
        packages: args.package,
        actors: args.actor,
        layers: args.layer,
    };
    let reader = match log_files(&args.file, !args.no_rotated).and_then(|f| LogReader::open(&f)) {
        Ok(reader) => reader,
        Err(e) => {
            eprintln!("rtguard: {e}");
            return exit::FAILURE;
        }
    };
    let output = match (args.summary, args.json) {
        (true, json) => Output::Summary { json },
        (false, true) => Output::Json,
        (false, false) => Output::Table,
    };
    let mut out = BufWriter::new(io::stdout().lock());
    let result = review(reader, &filter, output, &mut out).and_then(|status| {
        out.flush()?;
        Ok(status)
    });
    match result {
        Ok(status) => status,
        // `rtguard audit | head`: the reader has seen enough.
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => exit::OK,
        Err(e) => {
            eprintln!("rtguard: cannot write output: {e}");
            exit::FAILURE
        }
    }
}

#[derive(Clone, Copy, Debug)]
enum Output {
    Table,
    Json,
    Summary { json: bool },
}

/// Reads every record, writes what matches to `out` and problems to stderr, and returns
/// the exit status.
fn review(
    reader: LogReader,
    filter: &Filter,
    output: Output,
    out: &mut impl Write,
) -> io::Result<u8> {
    let mut status = exit::OK;
    let mut malformed = 0u64;
    let mut matched = 0u64;
    let mut dropped = 0u64;
    let mut table = TableWriter::new(&mut *out);
    let mut summary = Summary::default();
    for item in reader {
        let entry = match item {
            Ok(entry) => entry,
            Err(e @ ReadError::Malformed { .. }) => {
                malformed += 1;
                if malformed <= MALFORMED_SHOWN {
                    eprintln!("rtguard: {e}");
                }
                continue;
            }
            Err(e @ ReadError::Io { .. }) => {
                eprintln!("rtguard: {e}");
                status = exit::FAILURE;
                continue;
            }
        };
        let record = &entry.record;
        if filter.in_window(record) {
            dropped = dropped.saturating_add(record.dropped_since_last);
        }
        if !filter.matches(record) {
            continue;
        }
        matched += 1;
        match output {
            Output::Table => table.push(record)?,
            Output::Json => writeln!(table.get_mut(), "{}", entry.raw)?,
            Output::Summary { .. } => summary.add(record),
        }
    }
    if malformed > MALFORMED_SHOWN {
        eprintln!(
            "rtguard: … and {} more malformed line(s) skipped",
            malformed - MALFORMED_SHOWN
        );
    }
    match output {
        Output::Table => {
            table.finish(dropped)?;
        }
        Output::Json => {
            if dropped > 0 {
                eprintln!(
                    "rtguard: {dropped} kernel event(s) were dropped in this period and are not in the log"
                );
            }
        }
        Output::Summary { json } => {
            summary.add_dropped(dropped);
            let out = table.get_mut();
            if json {
                writeln!(out, "{}", summary.to_json())?;
            } else {
                write!(out, "{}", summary.render())?;
            }
        }
    }
    if matched == 0 {
        eprintln!("rtguard: no matching records");
    }
    Ok(status)
}
