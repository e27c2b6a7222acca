//! What a running daemon publishes about itself, for `rtguard status`: a JSON file in the
//! runtime directory, replaced atomically whenever something changes.

use std::{
    io,
    path::{Path, PathBuf},
    time::Instant,
};

use serde::{Deserialize, Serialize};

use crate::{
    daemon::self_test::{IdentityCheck, SelfTestResult},
    host::paths,
    tables::{maintenance::MaintenanceWindow, KernelTables},
};

/// The status file of the running daemon.
pub fn default_path() -> PathBuf {
    Path::new(paths::RUNTIME_DIR).join("status.json")
}

/// Whether the guard blocks, only reports, or cannot act.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum GuardState {
    /// Programs attached, self-test passed, matching operations are refused.
    Enforcing,
    /// Programs attached, matches are only reported (audit mode).
    Auditing,
    /// The kernel can't run the programs, or the self-test failed: nothing is refused.
    Degraded,
}

impl GuardState {
    pub fn as_str(self) -> &'static str {
        match self {
            GuardState::Enforcing => "enforcing",
            GuardState::Auditing => "auditing",
            GuardState::Degraded => "degraded",
        }
    }
}

/// Counts of kernel decisions since the daemon started.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventCounters {
    pub blocked: u64,
    pub would_block: u64,
    pub allowed_upgrade: u64,
    /// Edits of configuration files (writes, truncations, replacements).
    #[serde(default)]
    pub allowed_edit: u64,
    /// Events the kernel could not queue.
    pub dropped: u64,
    /// Hook calls the kernel skipped the guard's programs for (see
    /// `ProgramUsage::recursion_misses`): operations that were not judged.
    #[serde(default)]
    pub not_judged: u64,
}

impl EventCounters {
    /// Decisions recorded (lost ones aside).
    pub fn total(&self) -> u64 {
        self.blocked + self.would_block + self.allowed_upgrade + self.allowed_edit
    }
}

/// Counts of what the kernel maps hold.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProtectedCounts {
    /// Protected objects and their ancestor directories.
    pub inodes: usize,
    pub trees: usize,
    pub trusted_executables: usize,
    pub rules: usize,
}

impl ProtectedCounts {
    /// What `tables` put in the maps.
    pub fn of(tables: &KernelTables) -> Self {
        Self {
            inodes: tables.inodes.len(),
            trees: tables.trees.len(),
            trusted_executables: tables.trusted.len(),
            rules: tables.rules.len(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DaemonStatus {
    pub pid: u32,
    /// RFC 3339.
    pub started: String,
    pub updated: String,
    pub state: GuardState,
    /// Why the state is what it is, in one line.
    pub reason: String,
    pub environment: String,
    pub policy: String,
    pub policy_sha256: String,
    /// The policy file the daemon enforces; empty for a command-line guard. The apt hook
    /// reads the same one.
    #[serde(default)]
    pub policy_file: String,
    /// Attached programs by layer, e.g. ("file", ["path_unlink", …]).
    pub layers: Vec<(String, Vec<String>)>,
    /// How the enforcing programs are attached: "bpf-lsm" or "fmod-ret".
    #[serde(default)]
    pub mechanism: Option<String>,
    pub file_hooks: Option<String>,
    /// Whether the tree-walk cache is on ("on", or "off (why)").
    #[serde(default)]
    pub tree_cache: Option<String>,
    /// Whether the sysctls the programs depend on are protected, or why not.
    #[serde(default)]
    pub sysctls: Option<String>,
    /// What the netfilter layer covers and how many protected chains and sets exist.
    #[serde(default)]
    pub netfilter: Option<String>,
    pub protected: ProtectedCounts,
    pub self_test: Vec<SelfTestResult>,
    /// One identity check per filesystem holding protected objects, from the last time
    /// the tables were installed.
    #[serde(default)]
    pub identities: Vec<IdentityCheck>,
    pub events: EventCounters,
    /// Open maintenance windows.
    #[serde(default)]
    pub maintenance: Vec<MaintenanceWindow>,
    /// Where the programs' links are pinned (`--pin`): they stay attached, enforcing the
    /// maps as they are, if the daemon dies.
    #[serde(default)]
    pub pinned: Option<String>,
    /// How long each step of the start took, in order.
    #[serde(default)]
    pub startup: Vec<StartupStep>,
    /// The last proof of enforcement on the canaries: the start's self-test, then one
    /// every interval and after every reload. `None` where nothing was loaded to prove.
    #[serde(default)]
    pub proof: Option<Proof>,
}

/// One proof of enforcement: every layer's canary, refused and reported by the kernel.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Proof {
    /// RFC 3339.
    pub at: String,
    pub passed: bool,
    /// What failed, layer by layer; what passed when nothing did.
    pub detail: String,
    /// Seconds until the next one.
    pub interval_secs: u64,
}

impl Proof {
    /// A proof from the layers' results at `at`.
    pub fn of(results: &[SelfTestResult], at: String, interval_secs: u64) -> Self {
        let failed: Vec<String> = results
            .iter()
            .filter(|r| !r.passed)
            .map(|r| format!("{} layer: {}", r.layer, r.detail))
            .collect();
        let layers: Vec<&str> = results.iter().map(|r| r.layer.as_str()).collect();
        Self {
            at,
            passed: failed.is_empty(),
            detail: if failed.is_empty() {
                format!("{} layer canaries refused and reported", layers.join(", "))
            } else {
                failed.join("; ")
            },
            interval_secs,
        }
    }

    /// Whether the next proof is late: the daemon stopped proving (it hangs, or its
    /// clock jumped). Two intervals and a minute of slack.
    pub fn overdue(&self, now: time::OffsetDateTime) -> bool {
        let Ok(at) =
            time::OffsetDateTime::parse(&self.at, &time::format_description::well_known::Rfc3339)
        else {
            return false;
        };
        now - at > time::Duration::seconds(2 * self.interval_secs as i64 + 60)
    }
}

/// One step from `rtguard run` to ready.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StartupStep {
    pub step: String,
    pub micros: u64,
}

/// Times the steps of the start.
pub struct Stopwatch {
    last: Instant,
    pub steps: Vec<StartupStep>,
}

impl Stopwatch {
    pub fn start() -> Self {
        Self {
            last: Instant::now(),
            steps: Vec::new(),
        }
    }

    /// Ends `step` now; the next one starts.
    pub fn lap(&mut self, step: &str) {
        let now = Instant::now();
        self.steps.push(StartupStep {
            step: step.to_owned(),
            micros: (now - self.last).as_micros() as u64,
        });
        self.last = now;
    }

    /// Milliseconds since the start, over every step so far.
    pub fn total_ms(&self) -> u64 {
        self.steps.iter().map(|s| s.micros).sum::<u64>() / 1000
    }
}

impl DaemonStatus {
    /// Writes the status next to `path` and renames it over `path`, so readers never see
    /// half a file.
    pub fn write(&self, path: &Path) -> io::Result<()> {
        let dir = path.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir)?;
        let tmp = dir.join(format!(".status.{}.tmp", std::process::id()));
        std::fs::write(
            &tmp,
            serde_json::to_vec_pretty(self).map_err(io::Error::other)?,
        )?;
        std::fs::rename(&tmp, path)
    }

    pub fn read(path: &Path) -> io::Result<Self> {
        let bytes = std::fs::read(path)?;
        serde_json::from_slice(&bytes).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
    }
}

/// Whether `pid` is a live rtguard process (a status file can outlive its daemon).
pub fn is_rtguard(pid: u32) -> bool {
    std::fs::read_link(format!("/proc/{pid}/exe"))
        .ok()
        .and_then(|exe| {
            exe.file_name()
                .map(|n| n.to_string_lossy().starts_with("rtguard"))
        })
        .unwrap_or(false)
}

/// The pid of the daemon publishing `path`, if it is running.
pub fn running_daemon(path: &Path) -> Option<u32> {
    running_status(path).map(|s| s.pid)
}

/// The status of the daemon running under `path`'s status file, if one is.
pub fn running_status(path: &Path) -> Option<DaemonStatus> {
    DaemonStatus::read(path).ok().filter(|s| is_rtguard(s.pid))
}

/// RFC 3339 timestamp for now, UTC.
pub fn now() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_through_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run/status.json");
        let status = DaemonStatus {
            pid: 42,
            started: now(),
            updated: now(),
            state: GuardState::Enforcing,
            reason: "self-test passed".into(),
            environment: "production".into(),
            policy: "/etc/rtguard/production.toml".into(),
            policy_sha256: "ab".into(),
            policy_file: "/etc/rtguard/production.toml".into(),
            layers: vec![("file".into(), vec!["path_unlink".into()])],
            mechanism: Some("bpf-lsm".into()),
            file_hooks: Some("path".into()),
            tree_cache: Some("on".into()),
            sysctls: None,
            netfilter: None,
            protected: ProtectedCounts {
                inodes: 3,
                trees: 1,
                trusted_executables: 2,
                rules: 9,
            },
            self_test: vec![SelfTestResult {
                layer: "file".into(),
                passed: true,
                detail: "refused".into(),
            }],
            identities: Vec::new(),
            events: EventCounters {
                blocked: 1,
                ..Default::default()
            },
            maintenance: Vec::new(),
            pinned: None,
            startup: vec![StartupStep {
                step: "policy".into(),
                micros: 1200,
            }],
            proof: Some(Proof {
                at: now(),
                passed: true,
                detail: "file layer canaries refused and reported".into(),
                interval_secs: 60,
            }),
        };
        status.write(&path).unwrap();
        assert_eq!(DaemonStatus::read(&path).unwrap(), status);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains(r#""state": "enforcing""#), "{text}");
    }

    #[test]
    fn a_proof_names_what_failed_and_is_overdue_after_two_intervals() {
        let result = |layer: &str, passed| SelfTestResult {
            layer: layer.into(),
            passed,
            detail: format!("{layer} detail"),
        };
        let at = "2026-11-29T21:00:00Z".to_owned();
        let passed = Proof::of(
            &[result("file", true), result("exec", true)],
            at.clone(),
            60,
        );
        assert!(passed.passed);
        assert_eq!(
            passed.detail,
            "file, exec layer canaries refused and reported"
        );
        let failed = Proof::of(&[result("file", false), result("exec", true)], at, 60);
        assert!(!failed.passed);
        assert_eq!(failed.detail, "file layer: file detail");
        let t = time::macros::datetime!(2026-11-29 21:00:00 UTC);
        assert!(!passed.overdue(t + time::Duration::seconds(180)));
        assert!(passed.overdue(t + time::Duration::seconds(181)));
    }
}
