//! The audit record: one JSON object per line, versioned. docs/audit-schema.md documents
//! every field; a change here that is not additive needs a new [`SCHEMA_VERSION`] and a
//! note there.
//!
//! This file holds the record itself and the values it is made of; `actor` and `target`
//! hold who did it and what it was aimed at, `context` how records are made, and
//! `timestamp` how `ts` is written and read.

mod actor;
mod context;
mod target;
pub mod timestamp;

use std::{fmt, str::FromStr};

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

pub use actor::{Actor, Ancestor, Cgroup, ANCESTRY_MAX, ARGV_MAX_ARGS, ARGV_MAX_BYTES};
pub use context::RecordContext;
pub use target::{DevId, Target};

/// Version of the record layout, written as `"v"` in every record. Adding a field does not
/// change it (readers ignore fields they don't know). Removing or renaming a field,
/// changing a field's type or meaning, or adding a `layer` or `decision` value does.
pub const SCHEMA_VERSION: u32 = 2;
/// The oldest schema version this rtguard still reads: version 2 only added values
/// (decision `allowed-edit`, op `edit`), so version 1 records read unchanged.
pub const OLDEST_SCHEMA_VERSION: u32 = 1;

/// One audited event: a kernel decision, a self-test result or a daemon notice.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditRecord {
    /// [`SCHEMA_VERSION`] at the time of writing.
    pub v: u32,
    /// When the event was recorded, UTC, written with nine fractional digits.
    #[serde(with = "timestamp")]
    pub ts: OffsetDateTime,
    pub host: String,
    /// The policy's environment (`production`, `staging`, …).
    pub environment: String,
    pub policy: PolicyRef,
    /// The policy rule that matched; `null` for records no rule produced.
    pub rule: Option<String>,
    pub layer: Layer,
    /// What was attempted, in the layer's words: `unlink`, `rmdir`, `rename`, `truncate`,
    /// `open-write`, `setattr`, `link`, `exec`, `kill`, `ptrace`, `oom-adjust`, or for the daemon layer
    /// `start`, `policy-reload`, `maintenance-open`, …
    pub op: String,
    pub decision: Decision,
    /// Whether a kernel hook that could refuse the operation made the decision. `false` in
    /// degraded mode, where the event was only observed, and for a failed self-test.
    pub enforced: bool,
    pub target: Target,
    pub actor: Actor,
    /// Kernel events lost (ring buffer full) between the previous record and this one.
    pub dropped_since_last: u64,
    /// Exec layer: how the command was classified.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exec: Option<ExecDetail>,
    /// Process layer: the signal that was sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signal: Option<SignalDetail>,
    /// Free text for people: a maintenance window's reason, why a self-test failed, a
    /// rejected policy's error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// Which policy was in force.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyRef {
    pub name: String,
    /// Lowercase hex SHA-256 of the policy file's bytes.
    pub sha256: String,
}

/// Where in the system the decision was made.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Layer {
    /// File operations on protected objects (unlink, rename, truncate, …).
    File,
    /// Program execution (package removal, service stop, firewall flush commands).
    Exec,
    /// Signals to protected daemons.
    Process,
    /// Netfilter batches (nftables, iptables-nft, ipset) that take protected chains or
    /// sets away.
    Netfilter,
    /// The guard's own lifecycle: start, stop, policy reload, maintenance windows, unload.
    Daemon,
}

/// What happened to the operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Decision {
    /// Refused by the kernel (EPERM).
    Blocked,
    /// Allowed, but the policy would have refused it (audit mode or degraded mode).
    WouldBlock,
    /// Allowed because the policy lets the package manager replace this object (an
    /// upgrade or reinstall); removing it would have been refused.
    AllowedUpgrade,
    /// Allowed because a maintenance window was open for it.
    AllowedMaintenance,
    /// A configuration file was edited (op `edit`): written, truncated or replaced. The
    /// note says which; the previous contents can be restored.
    AllowedEdit,
    /// The startup self-test's own attempt on its canary.
    SelfTest,
    /// A record about the guard itself (layer `daemon`).
    Notice,
}

/// How the exec layer read a command line.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecDetail {
    /// The classified action: `remove`, `purge`, `autoremove`, `stop`, `disable`, `mask`,
    /// `flush`, `delete-chain`, …
    pub verb: String,
    /// What it acts on: a package, a unit, a chain or table; `null` for a bare flush.
    pub object: Option<String>,
}

/// The signal in a process-layer record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignalDetail {
    pub number: i32,
    /// `SIGKILL`, `SIGTERM`, …; `null` for a number this platform does not name.
    pub name: Option<String>,
    /// Why the signal counts as ending or stopping the target: `uncatchable` (KILL,
    /// STOP), `listed` (the rule's `signals`), `default-terminate`, `default-core`,
    /// `default-stop` (left at that default action), `runtime-exits` (caught by a runtime
    /// that exits on it). Absent in records written before rtguard judged signals by
    /// their effect.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("{0}")]
    Json(#[from] serde_json::Error),
    #[error(
        "unsupported schema version {found} (this rtguard reads versions \
         {OLDEST_SCHEMA_VERSION} to {SCHEMA_VERSION})"
    )]
    Version { found: u64 },
}

/// A string that names none of a set of values.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("unknown {what} '{value}' (expected one of: {expected})")]
pub struct UnknownValue {
    pub what: &'static str,
    pub value: String,
    pub expected: String,
}

impl AuditRecord {
    /// The record as one line of the log, newline included.
    pub fn to_json_line(&self) -> String {
        let mut line =
            serde_json::to_string(self).expect("an audit record always serialises to JSON");
        line.push('\n');
        line
    }

    /// Parses one line of the log (with or without its newline).
    pub fn from_json_line(line: &str) -> Result<Self, RecordError> {
        #[derive(Deserialize)]
        struct VersionOnly {
            v: u64,
        }
        match serde_json::from_str::<AuditRecord>(line) {
            Ok(rec) if (OLDEST_SCHEMA_VERSION..=SCHEMA_VERSION).contains(&rec.v) => Ok(rec),
            Ok(rec) => Err(RecordError::Version {
                found: rec.v.into(),
            }),
            Err(e) => match serde_json::from_str::<VersionOnly>(line) {
                // A newer writer: say so rather than naming whichever field changed.
                Ok(VersionOnly { v }) if v > u64::from(SCHEMA_VERSION) => {
                    Err(RecordError::Version { found: v })
                }
                _ => Err(e.into()),
            },
        }
    }

    /// The command line people recognise the actor by: argv joined, or `[comm]` when
    /// there is no argv (kernel threads, processes gone before the lookup).
    pub fn command_line(&self) -> String {
        if self.actor.argv.is_empty() {
            format!("[{}]", self.actor.comm)
        } else {
            command_text(&self.actor.argv, self.actor.argv_truncated)
        }
    }
}

impl SignalDetail {
    pub fn new(number: i32) -> Self {
        let name = nix::sys::signal::Signal::try_from(number)
            .ok()
            .map(|s| s.as_str().to_owned());
        Self {
            number,
            name,
            reason: None,
        }
    }
}

impl Layer {
    pub const ALL: [Layer; 5] = [
        Layer::File,
        Layer::Exec,
        Layer::Process,
        Layer::Netfilter,
        Layer::Daemon,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            Layer::File => "file",
            Layer::Exec => "exec",
            Layer::Process => "process",
            Layer::Netfilter => "netfilter",
            Layer::Daemon => "daemon",
        }
    }
}

impl Decision {
    pub const ALL: [Decision; 7] = [
        Decision::Blocked,
        Decision::WouldBlock,
        Decision::AllowedUpgrade,
        Decision::AllowedMaintenance,
        Decision::AllowedEdit,
        Decision::SelfTest,
        Decision::Notice,
    ];

    /// The same strings as the kernel side's `guard_common::Decision::as_str`, so the
    /// event pipeline can convert with `parse()`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Decision::Blocked => "blocked",
            Decision::WouldBlock => "would-block",
            Decision::AllowedUpgrade => "allowed-upgrade",
            Decision::AllowedMaintenance => "allowed-maintenance",
            Decision::AllowedEdit => "allowed-edit",
            Decision::SelfTest => "self-test",
            Decision::Notice => "notice",
        }
    }
}

fn unknown<T: Copy>(
    what: &'static str,
    value: &str,
    all: &[T],
    name: fn(T) -> &'static str,
) -> UnknownValue {
    UnknownValue {
        what,
        value: value.to_owned(),
        expected: all.iter().map(|&v| name(v)).collect::<Vec<_>>().join(", "),
    }
}

impl FromStr for Layer {
    type Err = UnknownValue;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|l| l.as_str() == s)
            .ok_or_else(|| unknown("layer", s, &Self::ALL, Self::as_str))
    }
}

impl FromStr for Decision {
    type Err = UnknownValue;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|d| d.as_str() == s)
            .ok_or_else(|| unknown("decision", s, &Self::ALL, Self::as_str))
    }
}

impl fmt::Display for Layer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for Decision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A command line for display: [`shell_join`], and ` …` after one that was cut.
pub fn command_text(args: &[String], truncated: bool) -> String {
    let mut text = shell_join(args);
    if truncated {
        text.push_str(" …");
    }
    text
}

/// Joins arguments for display, quoting the ones a shell would split or mangle. The one
/// way command lines are shown: in records ([`AuditRecord::command_line`]), the daemon's
/// log and `rtguard explain`.
pub fn shell_join(args: &[String]) -> String {
    let mut out = String::new();
    for (i, arg) in args.iter().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        let plain = !arg.is_empty()
            && arg
                .chars()
                .all(|c| c.is_alphanumeric() || "-_./:=,+@%^".contains(c));
        if plain {
            out.push_str(arg);
        } else {
            out.push('\'');
            out.push_str(&arg.replace('\'', r"'\''"));
            out.push('\'');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::testing::context;
    use time::macros::datetime;

    fn blocked_unlink() -> AuditRecord {
        let actor = Actor {
            ppid: Some(4100),
            exe: Some("/usr/bin/rm".into()),
            ancestry: vec![Ancestor {
                pid: 4100,
                comm: "uninstall.sh".into(),
                exe: Some("/usr/bin/bash".into()),
            }],
            cgroup: Cgroup {
                id: Some(7431),
                path: Some("/user.slice/user-0.slice/session-3.scope".into()),
            },
            ..Actor::new(4242, 0, "rm")
        }
        .with_argv(["rm", "-rf", "/usr/bin/containerd"], false);
        context()
            .record(Layer::File, "unlink", Decision::Blocked, actor)
            .at(datetime!(2026-11-26 14:03:22.000012345 UTC))
            .rule("containerd-binaries")
            .target(
                Target::inode(guard_common::InodeKey::from_stat(254, 1, 1311))
                    .with_path("/usr/bin/containerd")
                    .with_package("containerd.io"),
            )
    }

    #[test]
    fn golden_file_record() {
        let line = blocked_unlink().to_json_line();
        let golden = concat!(
            r#"{"v":2,"ts":"2026-11-26T14:03:22.000012345Z","host":"prod-7","environment":"production","#,
            r#""policy":{"name":"production","sha256":"9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"},"#,
            r#""rule":"containerd-binaries","layer":"file","op":"unlink","decision":"blocked","enforced":true,"#,
            r#""target":{"path":"/usr/bin/containerd","dev":"254:1","ino":1311,"package":"containerd.io"},"#,
            r#""actor":{"pid":4242,"ppid":4100,"uid":0,"comm":"rm","exe":"/usr/bin/rm","argv":["rm","-rf","/usr/bin/containerd"],"argv_truncated":false,"#,
            r#""ancestry":[{"pid":4100,"comm":"uninstall.sh","exe":"/usr/bin/bash"}],"#,
            r#""cgroup":{"id":7431,"path":"/user.slice/user-0.slice/session-3.scope"}},"#,
            r#""dropped_since_last":0}"#,
            "\n"
        );
        assert_eq!(line, golden);
        assert_eq!(
            AuditRecord::from_json_line(&line).unwrap(),
            blocked_unlink()
        );
        // A version 1 writer's record reads the same.
        let v1 = golden.replacen(r#"{"v":2,"#, r#"{"v":1,"#, 1);
        assert_eq!(AuditRecord::from_json_line(&v1).unwrap().v, 1);
    }

    #[test]
    fn golden_exec_and_process_records() {
        let exec = context()
            .record(
                Layer::Exec,
                "exec",
                Decision::WouldBlock,
                Actor::new(5000, 0, "bash")
                    .with_argv(["apt-get", "remove", "containerd.io"], false),
            )
            .at(datetime!(2026-11-26 14:00:00 UTC))
            .enforced(false)
            .rule("package-removal")
            .target(Target::default().with_path("/usr/bin/apt-get"))
            .exec("remove", Some("containerd.io".into()));
        let json = exec.to_json_line();
        assert!(
            json.contains(r#""ts":"2026-11-26T14:00:00.000000000Z""#),
            "{json}"
        );
        assert!(json.contains(r#""enforced":false"#), "{json}");
        assert!(
            json.contains(
                r#""target":{"path":"/usr/bin/apt-get","dev":null,"ino":null,"package":null}"#
            ),
            "{json}"
        );
        assert!(json.contains(r#""actor":{"pid":5000,"ppid":null,"uid":0,"comm":"bash","exe":null,"argv":["apt-get","remove","containerd.io"],"argv_truncated":false,"ancestry":[],"cgroup":{"id":null,"path":null}}"#), "{json}");
        assert!(
            json.ends_with(concat!(
                r#""dropped_since_last":0,"exec":{"verb":"remove","object":"containerd.io"}}"#,
                "\n"
            )),
            "{json}"
        );
        assert_eq!(AuditRecord::from_json_line(&json).unwrap(), exec);

        let kill = context()
            .record(
                Layer::Process,
                "kill",
                Decision::Blocked,
                Actor::new(6000, 0, "pkill"),
            )
            .at(datetime!(2026-11-26 14:00:00 UTC))
            .target(
                Target::default()
                    .with_path("/usr/bin/containerd")
                    .with_process(812, "containerd"),
            )
            .signal(9);
        let json = kill.to_json_line();
        assert!(json.contains(r#""target":{"path":"/usr/bin/containerd","dev":null,"ino":null,"package":null,"pid":812,"comm":"containerd"}"#), "{json}");
        assert!(
            json.contains(r#""signal":{"number":9,"name":"SIGKILL"}"#),
            "{json}"
        );
        assert_eq!(AuditRecord::from_json_line(&json).unwrap(), kill);
    }

    #[test]
    fn reads_other_offsets_and_ignores_unknown_fields() {
        let mut value: serde_json::Value =
            serde_json::from_str(&blocked_unlink().to_json_line()).unwrap();
        value["ts"] = "2026-11-26T15:03:22.000012345+01:00".into();
        value["added_later"] = serde_json::json!({"x": 1});
        let rec = AuditRecord::from_json_line(&value.to_string()).unwrap();
        assert_eq!(rec, blocked_unlink());
    }

    #[test]
    fn rejects_other_versions_and_bad_values() {
        let mut value: serde_json::Value =
            serde_json::from_str(&blocked_unlink().to_json_line()).unwrap();
        value["v"] = 3.into();
        value["layer"] = "network".into();
        let err = AuditRecord::from_json_line(&value.to_string()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "unsupported schema version 3 (this rtguard reads versions 1 to 2)"
        );

        value["v"] = 2.into();
        let err = AuditRecord::from_json_line(&value.to_string()).unwrap_err();
        assert!(
            err.to_string().contains("unknown variant `network`"),
            "{err}"
        );

        let err = AuditRecord::from_json_line(r#"{"v":1,"ts":"yesterday"}"#).unwrap_err();
        assert!(err.to_string().contains("ts 'yesterday'"), "{err}");
        assert!(AuditRecord::from_json_line("{\"v\":1,").is_err());
    }

    #[test]
    fn names_parse_and_print() {
        for d in Decision::ALL {
            assert_eq!(d.as_str().parse::<Decision>(), Ok(d));
            assert_eq!(serde_json::to_string(&d).unwrap(), format!("\"{d}\""));
        }
        for l in Layer::ALL {
            assert_eq!(l.as_str().parse::<Layer>(), Ok(l));
            assert_eq!(serde_json::to_string(&l).unwrap(), format!("\"{l}\""));
        }
        assert_eq!(
            "deny".parse::<Decision>().unwrap_err().to_string(),
            "unknown decision 'deny' (expected one of: blocked, would-block, allowed-upgrade, allowed-maintenance, allowed-edit, self-test, notice)"
        );
        // The kernel side's names convert.
        assert_eq!(
            guard_common::Decision::WouldBlock.as_str().parse(),
            Ok(Decision::WouldBlock)
        );
        assert_eq!(
            guard_common::Decision::AllowedEdit.as_str().parse(),
            Ok(Decision::AllowedEdit)
        );
        assert_eq!(
            "0:300".parse(),
            Ok(DevId {
                major: 0,
                minor: 300
            })
        );
        assert!("254".parse::<DevId>().is_err());
    }

    #[test]
    fn shell_join_keeps_plain_words_and_quotes_the_rest() {
        let args = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            shell_join(&args(&["apt-get", "remove", "a=b,c+d@e%f^g:h/i_j"])),
            "apt-get remove a=b,c+d@e%f^g:h/i_j"
        );
        // Letters and digits of any script are plain too.
        assert_eq!(shell_join(&args(&["touch", "café", "x²"])), "touch café x²");
        assert_eq!(
            shell_join(&args(&["", "a b", "$HOME", "it's", "*"])),
            r#"'' 'a b' '$HOME' 'it'\''s' '*'"#
        );
    }

    #[test]
    fn command_line_and_target_for_people() {
        let rec = blocked_unlink();
        assert_eq!(rec.command_line(), "rm -rf /usr/bin/containerd");
        assert_eq!(rec.target.describe(), "/usr/bin/containerd");
        let quoted =
            Actor::default().with_argv(["sh", "-c", "iptables -F; echo it's gone", ""], true);
        let rec = rec.clone();
        let rec = AuditRecord {
            actor: quoted,
            ..rec
        };
        assert_eq!(
            rec.command_line(),
            r#"sh -c 'iptables -F; echo it'\''s gone' '' …"#
        );
        let gone = AuditRecord {
            actor: Actor::new(1, 0, "kworker/0:1"),
            ..rec
        };
        assert_eq!(gone.command_line(), "[kworker/0:1]");
        assert_eq!(
            Target::inode(guard_common::InodeKey::from_stat(0, 41, 9)).describe(),
            "0:41 ino 9"
        );
        assert_eq!(Target::package("runc").describe(), "runc");
        assert_eq!(
            Target::default().with_process(812, "containerd").describe(),
            "[812]"
        );
    }
}
