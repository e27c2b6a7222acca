//! The one place that knows where rtguard keeps things on a host. Every default path a
//! subcommand, the daemon or the packaging uses comes from here, so moving one is a
//! one-line change.

/// The audit trail: JSON lines, rotated to `audit.jsonl.1`, `audit.jsonl.2`, …
pub const DEFAULT_AUDIT_LOG: &str = "/var/log/rtguard/audit.jsonl";

/// Per-environment policies (`production.toml`, `staging.toml`, …).
pub const DEFAULT_POLICY_DIR: &str = "/etc/rtguard";

/// The policy the service enforces unless its unit names another (`RTGUARD_POLICY`).
pub const DEFAULT_POLICY: &str = "/etc/rtguard/production.toml";

/// Where pinned programs and maps live, so enforcement outlives the daemon.
pub const BPFFS_DIR: &str = "/sys/fs/bpf/rtguard";

/// Runtime state the running daemon publishes (readiness, counters) for `rtguard status`.
pub const RUNTIME_DIR: &str = "/run/rtguard";

/// State that must survive a daemon restart (open maintenance windows).
pub const STATE_DIR: &str = "/var/lib/rtguard";

/// The local syslog socket; journald listens here too.
pub const SYSLOG_SOCKET: &str = "/dev/log";

/// The process table the audit trail reads actor details from.
pub const PROC_ROOT: &str = "/proc";
