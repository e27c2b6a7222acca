//! Reading the audit trail back: which files hold it and in what order, which records
//! match a question, and how to show them to a person (table, summary).
//!
//! `reader` finds the files and reads their records, `filter` decides which records
//! match, and `table` shows them (the aligned table and the summary counts).

mod filter;
mod reader;
mod table;

use std::{io, path::PathBuf};

pub use filter::{parse_when, Filter};
pub use reader::{log_files, Entry, LogReader, ReadError};
pub use table::{Summary, TableWriter};

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

/// Records shared by the tests of the review modules.
#[cfg(test)]
mod testing {
    use crate::audit::{
        record::{Actor, AuditRecord, Decision, Layer, Target},
        testing::{context, record_at, ts},
    };

    /// A small log covering every filter dimension.
    pub fn fixture() -> Vec<AuditRecord> {
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
}
