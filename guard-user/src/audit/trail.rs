//! The trail: what the daemon writes to the audit log. Each kernel decision (file, exec,
//! process), each degraded-mode observation and each notice about the daemon itself
//! (start, self-test, reload, takeover, maintenance windows, mounts) becomes one record,
//! named with the rules, objects and paths of the tables that made the decision.

use std::path::Path;

use guard_common::{syscall::EXEC_ARGS, FileOp};
use tracing::error;

use super::{Actor, AuditLog, AuditRecord, Decision, Layer, RecordContext, Target};
use crate::{
    events::{ExecDecision, FileDecision, KernelActor, ProcessDecision},
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
            guard_common::Decision::Edited => Decision::AllowedEdit,
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
                if w.allow_removal {
                    "allowed"
                } else {
                    "refused"
                },
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
            .record(Layer::Process, "kill", ev.decision.into(), actor)
            .target(target)
            .signal(ev.signal);
        if let Some(rule) = legend.rule(ev.rule_id) {
            record = record.rule(rule);
        }
        self.write(&record);
    }

    pub fn exec_decision(&mut self, ev: &ExecDecision, legend: &Legend) {
        // The kernel's argv is the command being executed; procfs would show the caller's.
        let mut actor = Actor::new(ev.tgid, ev.uid, ev.comm.clone())
            .with_ppid(ev.ppid)
            .with_cgroup_id(ev.cgroup_id)
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
            .exec(verb, ev.object(&legend.objects));
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
            guard_common::Decision::Edited => ("edit", Some(ev.op.as_str())),
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
