//! The trail: what the daemon writes to the audit log. Each kernel decision (file, exec,
//! process), each degraded-mode observation and each notice about the daemon itself
//! (start, self-test, reload, takeover, maintenance windows, mounts) becomes one record,
//! named with the rules, objects and paths of the tables that made the decision.

use std::path::Path;

use guard_common::{degraded::EXEC_ARGS, FileOp};
use tracing::error;

use super::{Actor, AuditLog, AuditRecord, Decision, Layer, RecordContext, Target};
use crate::{
    events::{
        ExecDecision, FileDecision, KernelActor, NetfilterDecision, ProcessDecision, SysctlDecision,
    },
    host::proc::Procfs,
    tables::{maintenance::MaintenanceWindow, Legend},
};

/// The audit trail's word for a kernel decision.
impl From<guard_common::Decision> for Decision {
    fn from(decision: guard_common::Decision) -> Self {
        match decision {
            guard_common::Decision::Blocked => Decision::Blocked,
            guard_common::Decision::WouldBlock => Decision::WouldBlock,
            guard_common::Decision::AllowedUpgrade => Decision::AllowedUpgrade,
            guard_common::Decision::AllowedEdit => Decision::AllowedEdit,
        }
    }
}

/// The audit log and what every record says about where it came from.
pub struct AuditTrail {
    pub log: AuditLog,
    /// Environment and policy, as every record names them.
    pub context: RecordContext,
    procfs: Procfs,
}

impl AuditTrail {
    pub fn new(log: AuditLog, context: RecordContext) -> Self {
        Self {
            log,
            context,
            procfs: Procfs::default(),
        }
    }

    /// Reads actors' details from `procfs` instead of the host's /proc.
    pub fn with_procfs(mut self, procfs: Procfs) -> Self {
        self.procfs = procfs;
        self
    }

    /// Appends a record; a failing log is reported and the daemon keeps guarding.
    pub fn write(&mut self, record: &AuditRecord) {
        if let Err(e) = self.log.append(record) {
            error!("audit log: {e}");
        }
    }

    /// A daemon-layer notice by this process, for the caller to complete.
    fn daemon_record(&self, op: &str, decision: Decision) -> AuditRecord {
        self.context.record(
            Layer::Daemon,
            op,
            decision,
            Actor::this_process(&self.procfs),
        )
    }

    /// Filesystems were mounted on or unmounted from protected paths, and what those paths
    /// hold now is protected (written once the maps are).
    pub fn mounts_changed(&mut self, points: &[String]) {
        let record = self
            .daemon_record("mounts-changed", Decision::Notice)
            .note(format!("{}; protection resolved again", points.join(", ")));
        self.write(&record);
    }

    /// The daemon's start: what it enforces with, and why that mechanism.
    pub fn started(&mut self, state: &str, mechanism_reason: &str, enforcing: bool) {
        let record = self
            .daemon_record("start", Decision::Notice)
            .enforced(enforcing)
            .note(format!("{state}: {mechanism_reason}"));
        self.write(&record);
    }

    /// The start's proof of one layer on a canary.
    pub fn self_test(&mut self, layer: &str, passed: bool, detail: &str) {
        let record = self
            .daemon_record(&format!("self-test-{layer}"), Decision::SelfTest)
            .enforced(passed)
            .note(detail.to_owned());
        self.write(&record);
    }

    /// A proof of enforcement while the daemon serves that failed (`proof-failed`), or
    /// the first one that passed again after a failure (`proof-restored`). Proofs that
    /// pass while nothing failed are not recorded: `rtguard status` shows the last one.
    pub fn proof(&mut self, passed: bool, detail: &str) {
        let op = if passed {
            "proof-restored"
        } else {
            "proof-failed"
        };
        let record = self
            .daemon_record(op, Decision::SelfTest)
            .enforced(passed)
            .note(detail.to_owned());
        self.write(&record);
    }

    /// Writes a notice carrying lost events that no decision record has carried yet.
    pub fn flush_drops(&mut self) {
        let pending = self.log.pending_dropped();
        if pending == 0 {
            return;
        }
        let record = self
            .context
            .dropped_events(Actor::this_process(&self.procfs), 0);
        self.write(&record);
    }

    /// A degraded-mode observation: would-block, not enforced.
    /// `tgid`, `uid` and `comm` as a syscall tracepoint saw them, the rest from /proc,
    /// else the arguments its execve had.
    pub fn observed(
        &mut self,
        op: FileOp,
        rule: &str,
        path: &Path,
        (tgid, uid, comm): (u32, u32, &str),
        argv: Option<&Vec<String>>,
    ) {
        let mut actor = Actor::new(tgid, uid, comm.to_owned());
        actor.fill_from_proc(&self.procfs).ok();
        if actor.argv.is_empty() {
            if let Some(argv) = argv {
                // The process is gone; its arguments as execve saw them (the first few).
                actor.set_argv(argv.clone(), argv.len() >= EXEC_ARGS);
            }
        }
        let record = self
            .context
            .record(Layer::File, op.as_str(), Decision::WouldBlock, actor)
            .rule(rule.to_owned())
            .enforced(false)
            .target(Target::default().with_path(path.display().to_string()));
        self.write(&record);
    }

    /// A record about a maintenance window opening, closing or expiring.
    pub fn window_notice(&mut self, op: &str, w: &MaintenanceWindow) {
        let record = self
            .daemon_record(op, Decision::Notice)
            .target(Target::package(w.package.clone()))
            .note(format!(
                "{}; until {}; removal {}; opened by {}",
                w.reason,
                w.expires,
                w.removal(),
                w.opened_by
            ));
        self.write(&record);
    }

    /// A record about the daemon itself (reloads).
    pub fn notice(&mut self, op: &str, note: &str) {
        let record = self
            .daemon_record(op, Decision::Notice)
            .note(note.to_owned());
        self.write(&record);
    }

    /// The actor of a file or process decision: what the kernel reported, the rest from
    /// /proc. The command line the kernel copied in the actor's own context is preferred
    /// when complete: the actor may be gone, or its pid reused, by the time /proc is read.
    fn kernel_actor(&self, reported: &KernelActor) -> Actor {
        let cmdline = &reported.cmdline;
        let mut actor = Actor::new(reported.tgid, reported.uid, reported.comm.clone())
            .with_ppid(reported.ppid)
            .with_cgroup_id(reported.cgroup_id);
        if !cmdline.args.is_empty() && !cmdline.truncated {
            actor.set_argv(cmdline.args.iter().cloned(), false);
        }
        actor.fill_from_proc(&self.procfs).ok();
        if actor.argv.is_empty() && !cmdline.args.is_empty() {
            actor.set_argv(cmdline.args.iter().cloned(), true);
        }
        actor
    }

    pub fn process_decision(&mut self, ev: &ProcessDecision, legend: &Legend) {
        let actor = self.kernel_actor(&ev.actor);
        let mut target =
            Target::inode(ev.target_exe).with_process(ev.target_pid, ev.target_comm.clone());
        if let Some(path) = legend.path(&ev.target_exe) {
            target = target.with_path(path.display().to_string());
        }
        let mut record = self
            .context
            .record(Layer::Process, ev.op(), ev.decision.into(), actor)
            .target(target);
        if ev.is_signal() {
            record = record.signal(ev.signal).signal_reason(ev.reason.as_str());
        }
        if let Some(rule) = legend.rule(ev.rule_id) {
            record = record.rule(rule);
        }
        self.write(&record);
    }

    /// A write to a sysctl the programs depend on: a file-layer record on its
    /// `/proc/sys` path (a sysctl has no stable identity), the value written in `note`.
    pub fn sysctl_decision(&mut self, ev: &SysctlDecision, legend: &Legend) {
        let actor = self.kernel_actor(&ev.actor);
        let mut record = self
            .context
            .record(Layer::File, "sysctl-write", ev.decision.into(), actor)
            .target(Target::default().with_path(ev.path()))
            .note(format!("value written: {:?}", ev.value));
        if let Some(rule) = legend.rule(ev.rule_id) {
            record = record.rule(rule);
        }
        self.write(&record);
    }

    /// A netfilter batch that would take a protected chain or set away: `op` says how,
    /// the target names what, the note how much of the batch was read.
    /// Degraded mode's records (`enforced`: false) say what the same batch would have
    /// met: the walk ran at the `sendmsg`'s entry, on the sender's memory.
    pub fn netfilter_decision(&mut self, ev: &NetfilterDecision, legend: &Legend, enforced: bool) {
        let actor = self.kernel_actor(&ev.actor);
        let mut record = self
            .context
            .record(Layer::Netfilter, ev.op.as_str(), ev.decision.into(), actor)
            .target(Target::netfilter(ev.object_text()))
            .note(format!("batch of {} messages read", ev.messages));
        if !enforced {
            record = record.enforced(false);
        }
        if let Some(rule) = legend.rule(ev.rule_id) {
            record = record.rule(rule);
        }
        self.write(&record);
    }

    pub fn exec_decision(&mut self, ev: &ExecDecision, legend: &Legend) {
        // The kernel's argv is the command being executed; procfs would show the caller's.
        let mut actor = Actor::new(ev.actor.tgid, ev.actor.uid, ev.actor.comm.clone())
            .with_ppid(ev.actor.ppid)
            .with_cgroup_id(ev.actor.cgroup_id)
            .with_argv(ev.argv.iter().cloned(), ev.argv_truncated);
        actor.fill_from_proc(&self.procfs).ok();
        let mut target = Target::inode(ev.exe);
        if !ev.filename.is_empty() {
            target = target.with_path(ev.filename.clone());
        }
        let verb = ev.verb().unwrap_or_default().to_owned();
        // What only an open maintenance window let through says so.
        let decision = match Decision::from(ev.decision) {
            Decision::AllowedUpgrade if ev.in_window() => Decision::AllowedMaintenance,
            decision => decision,
        };
        let mut record = self
            .context
            .record(Layer::Exec, "exec", decision, actor)
            .target(target)
            .exec(verb, ev.object(legend));
        if let Some(reason) = ev.reason() {
            record = record.note(reason.as_str());
        }
        if let Some(rule) = legend.rule(ev.rule_id()) {
            record = record.rule(rule);
        }
        self.write(&record);
    }

    pub fn file_decision(&mut self, ev: &FileDecision, legend: &Legend) {
        // The process may be gone already; the kernel's fields stay.
        let actor = self.kernel_actor(&ev.actor);
        let mut target = Target::inode(ev.target);
        if let Some(path) = ev.path(legend) {
            target = target.with_path(path.display().to_string());
        }
        // An edit is recorded as one: the kernel's operation (a write-open, truncation or
        // replacement) goes in the note.
        let (op, note) = match ev.decision {
            guard_common::Decision::AllowedEdit => ("edit", Some(ev.op.as_str())),
            _ => (ev.op.as_str(), None),
        };
        let mut record = self
            .context
            .record(Layer::File, op, ev.decision.into(), actor)
            .target(target);
        if let Some(note) = note {
            record = record.note(note);
        }
        if let Some(rule) = legend.rule(ev.rule_id) {
            record = record.rule(rule);
        }
        self.write(&record);
    }
}

/// Every kind of record the daemon writes, byte for byte against `testdata/trail.jsonl`.
/// The audit log is an interface (docs/audit-schema.md): a change here must be on purpose.
/// `RTGUARD_BLESS=1 cargo test -p guard-user --lib audit::trail` rewrites the file.
#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use guard_common::{
        exec::{Classification, Reason, Verdict, NO_OBJECT, NO_TOKEN},
        process::ProcessReason,
        Decision as KernelDecision, FileOp, InodeKey,
    };

    use super::*;
    use crate::{
        audit::{testing::context, AuditLogConfig},
        events::KernelCmdline,
        policy::{commands::ObjectName, ObjectKind},
    };

    const GOLDEN: &str = "src/audit/testdata/trail.jsonl";

    fn actor(tgid: u32, comm: &str, args: &[&str]) -> KernelActor {
        KernelActor {
            exe: InodeKey::from_stat(254, 1, 4711),
            cgroup_id: 8123,
            pid: tgid,
            tgid,
            ppid: 1001,
            uid: 0,
            comm: comm.to_owned(),
            cmdline: KernelCmdline {
                args: args.iter().map(|a| a.to_string()).collect(),
                truncated: false,
            },
            tty: 0,
            mnt_ns: 0,
        }
    }

    fn legend() -> Legend {
        let mut legend = Legend::default();
        legend.rules.insert(3, "runtime-binaries".to_owned());
        legend.rules.insert(5, "runtime-data".to_owned());
        legend.rules.insert(7, "runtime-packages".to_owned());
        legend.rules.insert(9, "runtime-processes".to_owned());
        legend.objects = ["containerd", "runc"]
            .map(|name| ObjectName {
                name: name.to_owned(),
                kind: ObjectKind::Packages,
                rule: 7,
            })
            .to_vec();
        legend.paths.insert(
            InodeKey::from_stat(254, 1, 1311),
            PathBuf::from("/usr/bin/containerd"),
        );
        legend.paths.insert(
            InodeKey::from_stat(254, 1, 2001),
            PathBuf::from("/var/lib/containerd"),
        );
        legend.paths.insert(
            InodeKey::from_stat(254, 1, 3001),
            PathBuf::from("/etc/containerd/config.toml"),
        );
        legend
    }

    fn exec(decision: KernelDecision, reason: Reason, argv: &[&str]) -> ExecDecision {
        ExecDecision {
            decision,
            classification: Classification {
                verdict: match decision {
                    KernelDecision::AllowedUpgrade => Verdict::AllowedAsUpgrade,
                    _ => Verdict::Destructive,
                } as u32,
                reason: reason as u32,
                rule: 7,
                class: 1,
                verb_token: 1,
                object_token: 2,
                object: 0,
                _pad: 0,
            },
            exe: InodeKey::from_stat(254, 1, 5001),
            filename: format!("/usr/bin/{}", argv[0]),
            argv: argv.iter().map(|a| a.to_string()).collect(),
            argv_truncated: false,
            actor: KernelActor {
                exe: InodeKey::from_stat(254, 1, 5002),
                ppid: 4_000_000,
                cmdline: KernelCmdline::default(),
                ..actor(4_000_001, "bash", &[])
            },
        }
    }

    /// The records, with what depends on the moment and on the test process (the time,
    /// and the daemon's own pid, uid and details from /proc) set to fixed values.
    fn written() -> String {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let log = AuditLog::open(AuditLogConfig::new(&path)).unwrap();
        // An empty procfs: the actors are what the kernel reported, nothing more.
        let mut trail = AuditTrail::new(log, context()).with_procfs(Procfs::new(dir.path()));
        let legend = legend();

        trail.started("enforcing (BPF LSM)", "bpf is among the active LSMs", true);
        trail.self_test("file", true, "unlink of the canary refused with EPERM");
        trail.self_test("exec", false, "the canary command ran");
        trail.proof(
            false,
            "file layer: unlink of the canary succeeded; kernel event: none",
        );
        trail.proof(
            true,
            "file, exec, process layer canaries refused and reported",
        );
        trail.file_decision(
            &FileDecision {
                op: FileOp::Unlink,
                decision: KernelDecision::Blocked,
                rule_id: 3,
                target: InodeKey::from_stat(254, 1, 1311),
                anchor: InodeKey::from_stat(254, 1, 1311),
                components: Vec::new(),
                path_truncated: false,
                actor: actor(4_000_002, "rm", &["rm", "-rf", "/usr/bin/containerd"]),
            },
            &legend,
        );
        trail.file_decision(
            &FileDecision {
                op: FileOp::Rename,
                decision: KernelDecision::WouldBlock,
                rule_id: 5,
                target: InodeKey::from_stat(254, 1, 2002),
                anchor: InodeKey::from_stat(254, 1, 2001),
                components: vec!["io.containerd.metadata.v1.bolt".into(), "meta.db".into()],
                path_truncated: true,
                actor: actor(4_000_003, "mv", &["mv", "meta.db", "/tmp"]),
            },
            &legend,
        );
        trail.file_decision(
            &FileDecision {
                op: FileOp::Replace,
                decision: KernelDecision::AllowedEdit,
                rule_id: 3,
                target: InodeKey::from_stat(254, 1, 3001),
                anchor: InodeKey::from_stat(254, 1, 3001),
                components: Vec::new(),
                path_truncated: false,
                actor: actor(4_000_004, "vim", &["vim", "/etc/containerd/config.toml"]),
            },
            &legend,
        );
        trail.file_decision(
            &FileDecision {
                op: FileOp::Unlink,
                decision: KernelDecision::AllowedUpgrade,
                rule_id: 3,
                target: InodeKey::from_stat(254, 1, 1311),
                anchor: InodeKey::from_stat(254, 1, 1311),
                components: Vec::new(),
                path_truncated: false,
                actor: actor(4_000_005, "dpkg", &["/usr/bin/dpkg", "--unpack"]),
            },
            &legend,
        );
        trail.exec_decision(
            &exec(
                KernelDecision::Blocked,
                Reason::ProtectedObject,
                &["apt-get", "remove", "containerd"],
            ),
            &legend,
        );
        trail.exec_decision(
            &exec(
                KernelDecision::AllowedUpgrade,
                Reason::UpgradeInWindow,
                &["apt-get", "install", "runc"],
            ),
            &legend,
        );
        let mut flush = exec(
            KernelDecision::WouldBlock,
            Reason::BareVerb,
            &["iptables", "-F"],
        );
        flush.classification.object = NO_OBJECT;
        flush.classification.object_token = NO_TOKEN;
        trail.exec_decision(&flush, &legend);
        trail.process_decision(
            &ProcessDecision {
                decision: KernelDecision::Blocked,
                rule_id: 9,
                signal: 9,
                reason: ProcessReason::Uncatchable,
                target_pid: 4_000_010,
                target_comm: "containerd".to_owned(),
                target_exe: InodeKey::from_stat(254, 1, 1311),
                actor: actor(4_000_006, "pkill", &["pkill", "-9", "containerd"]),
            },
            &legend,
        );
        trail.process_decision(
            &ProcessDecision {
                decision: KernelDecision::Blocked,
                rule_id: 9,
                signal: 0,
                reason: ProcessReason::PtraceAttach,
                target_pid: 4_000_010,
                target_comm: "containerd".to_owned(),
                target_exe: InodeKey::from_stat(254, 1, 1311),
                actor: actor(4_000_011, "strace", &["strace", "-p", "4000010"]),
            },
            &legend,
        );
        trail.process_decision(
            &ProcessDecision {
                decision: KernelDecision::Blocked,
                rule_id: 9,
                signal: 0,
                reason: ProcessReason::OomAdjust,
                target_pid: 4_000_010,
                target_comm: "containerd".to_owned(),
                target_exe: InodeKey::from_stat(254, 1, 1311),
                actor: actor(
                    4_000_012,
                    "choom",
                    &["choom", "-n", "1000", "-p", "4000010"],
                ),
            },
            &legend,
        );
        trail.observed(
            FileOp::Unlink,
            "runtime-binaries",
            Path::new("/usr/bin/runc"),
            (4_000_007, 0, "rm"),
            Some(&vec!["rm".to_owned(), "/usr/bin/runc".to_owned()]),
        );
        let window = MaintenanceWindow {
            package: "containerd".to_owned(),
            opened: time::macros::datetime!(2026-11-26 14:00:00 UTC),
            expires: time::macros::datetime!(2026-11-26 15:00:00 UTC),
            reason: "upgrade to 1.7.24".to_owned(),
            allow_removal: false,
            opened_by: "alice".to_owned(),
        };
        trail.window_notice("maintenance-open", &window);
        trail.window_notice("maintenance-expired", &window);
        trail.mounts_changed(&["/var/lib/docker (xfs mounted)".to_owned()]);
        trail.notice("reload", "policy /etc/rtguard/production.toml reloaded");
        trail.notice(
            "reload-refused",
            "production.toml:3:9: unknown field `mdoe`",
        );
        trail.log.add_dropped(17);
        trail.flush_drops();
        drop(trail);

        // The lines as written, not re-serialized: the key order is part of the bytes.
        let this_pid = format!("\"pid\":{}", std::process::id());
        let this_uid = format!("\"uid\":{}", nix::unistd::getuid().as_raw());
        let mut out = String::new();
        for line in std::fs::read_to_string(&path).unwrap().lines() {
            let ts = line.find("\"ts\":\"").expect("a timestamp") + "\"ts\":\"".len();
            let end = ts + line[ts..].find('"').unwrap();
            let mut line = format!("{}2026-11-26T14:00:00Z{}", &line[..ts], &line[end..]);
            if line.contains("\"layer\":\"daemon\"") {
                line = line
                    .replace(&this_pid, "\"pid\":1")
                    .replace(&this_uid, "\"uid\":0");
            }
            out.push_str(&line);
            out.push('\n');
        }
        out
    }

    #[test]
    fn every_record_kind_is_written_as_the_schema_says() {
        let got = written();
        let golden = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(GOLDEN);
        if std::env::var_os("RTGUARD_BLESS").is_some() {
            std::fs::write(&golden, &got).unwrap();
        }
        let want = std::fs::read_to_string(&golden).unwrap();
        for (n, (got, want)) in got.lines().zip(want.lines()).enumerate() {
            assert_eq!(got, want, "record {} differs from {GOLDEN}", n + 1);
        }
        assert_eq!(got.lines().count(), want.lines().count(), "{GOLDEN}");
    }
}
