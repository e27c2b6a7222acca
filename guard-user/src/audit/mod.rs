//! The audit trail: every decision the guard makes ends up here as one JSON line
//! (`record`), written and rotated by the daemon (`log`), and read back by
//! `rtguard audit` (`review`). docs/audit-schema.md documents the record. Edits of protected
//! configuration files are kept as versions beside it (`config_history`, `rtguard config`).

pub mod config_history;
pub mod log;
pub mod record;
pub mod review;
pub mod trail;

pub use log::{AuditLog, AuditLogConfig, AuditLogError, FsyncPolicy};
pub use record::{
    Actor, Ancestor, AuditRecord, Cgroup, Decision, DevId, ExecDetail, Layer, PolicyRef,
    RecordContext, RecordError, SignalDetail, Target, SCHEMA_VERSION,
};
pub use trail::AuditTrail;

/// Records to test with, shared by the modules' unit tests.
#[cfg(test)]
pub(crate) mod testing {
    use time::OffsetDateTime;

    use super::record::*;

    pub fn context() -> RecordContext {
        RecordContext {
            host: "prod-7".into(),
            environment: "production".into(),
            policy: PolicyRef {
                name: "production".into(),
                sha256: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08".into(),
            },
        }
    }

    /// 2026-11-26T14:00:00Z plus `minutes`.
    pub fn ts(minutes: i64) -> OffsetDateTime {
        time::macros::datetime!(2026-11-26 14:00:00 UTC) + time::Duration::minutes(minutes)
    }

    /// A blocked unlink of /usr/bin/containerd by `rm -rf`, under `rule`.
    pub fn record_at(at: OffsetDateTime, rule: &str) -> AuditRecord {
        context()
            .record(
                Layer::File,
                "unlink",
                Decision::Blocked,
                Actor::new(4242, 0, "rm").with_argv(["rm", "-rf", "/usr/bin/containerd"], false),
            )
            .at(at)
            .rule(rule)
            .target(
                Target::inode(guard_common::InodeKey::from_stat(254, 1, 1311))
                    .with_path("/usr/bin/containerd")
                    .with_package("containerd.io"),
            )
    }
}
