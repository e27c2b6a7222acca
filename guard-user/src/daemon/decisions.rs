//! The kernel's decisions, read from the ring buffer: each one is logged, recorded in the
//! audit trail and counted, and some make the daemon resolve again (a package manager
//! replaced protected files, a package command the exec layer let through).

use std::path::Path;

use aya::maps::{MapData, RingBuf};
use guard_common::{rule::SELF_TEST_RULE, Decision, FileOp};
use tracing::{debug, error, info, warn};

use super::{notice::Refusal, Daemon};
use crate::{
    audit,
    events::{self, Event, ExecDecision, FileDecision, NetfilterDecision, ProcessDecision},
    tables::Legend,
};

impl Daemon {
    /// Logs and records every queued decision. Returns whether the package manager
    /// replaced protected files, so that the new inodes must be protected. Package
    /// commands the exec layer let through are added to `package_operations`.
    pub(super) fn drain_events(&mut self, ring: &mut RingBuf<MapData>, legend: &Legend) -> bool {
        let mut upgraded = false;
        while let Some(item) = ring.next() {
            match events::decode_record(&item) {
                Ok(event) => upgraded |= self.record_event(event, legend),
                Err(e) => error!("undecodable event: {e}"),
            }
        }
        upgraded
    }

    /// Logs, records and counts one decision (see [`Daemon::drain_events`]). A canary's
    /// (the synthetic rule's) that arrives after its proof gave up waiting is not a
    /// decision about the policy: it is only logged.
    pub(super) fn record_event(&mut self, event: Event, legend: &Legend) -> bool {
        let rule_id = match &event {
            Event::File(ev) => ev.rule_id,
            Event::Exec(ev) => ev.rule_id(),
            Event::Process(ev) => ev.rule_id,
            Event::Sysctl(ev) => ev.rule_id,
            Event::Netfilter(ev) => ev.rule_id,
        };
        if rule_id == SELF_TEST_RULE {
            debug!("a canary's event after its proof: {event:?}");
            return false;
        }
        let mut upgraded = false;
        let decision = match event {
            Event::File(ev) => {
                log_decision(&ev, legend);
                self.trail.file_decision(&ev, legend);
                self.note(Refusal::file(&ev, legend));
                // A replaced configuration file is a new inode too: the kernel gave
                // it the old one's protection, and the tables must learn it.
                upgraded = ev.decision == Decision::AllowedUpgrade
                    || (ev.decision == Decision::AllowedEdit && ev.op == FileOp::Replace);
                ev.decision
            }
            Event::Exec(ev) => {
                log_exec_decision(&ev, legend);
                self.trail.exec_decision(&ev, legend);
                self.note(Refusal::exec(&ev, legend));
                if ev.decision == Decision::AllowedUpgrade {
                    self.package_operations.insert(ev.actor.tgid);
                }
                ev.decision
            }
            Event::Process(ev) => {
                log_process_decision(&ev, legend);
                self.trail.process_decision(&ev, legend);
                self.note(Refusal::signal(&ev, legend));
                ev.decision
            }
            Event::Sysctl(ev) => {
                warn!(
                    decision = ev.decision.as_str(),
                    rule = legend.rule(ev.rule_id).unwrap_or("?"),
                    value = ev.value,
                    pid = ev.actor.tgid,
                    uid = ev.actor.uid,
                    comm = ev.actor.comm,
                    "{} write to {}: rtguard's programs depend on it",
                    ev.decision.as_str(),
                    ev.path()
                );
                self.trail.sysctl_decision(&ev, legend);
                ev.decision
            }
            Event::Netfilter(ev) => {
                log_netfilter_decision(&ev, legend);
                self.trail.netfilter_decision(&ev, legend, true);
                self.note(Refusal::netfilter(&ev, legend));
                ev.decision
            }
        };
        let counters = &mut self.published.events;
        match decision {
            Decision::Blocked => counters.blocked += 1,
            Decision::WouldBlock => counters.would_block += 1,
            Decision::AllowedUpgrade => counters.allowed_upgrade += 1,
            Decision::AllowedEdit => counters.allowed_edit += 1,
        }
        upgraded
    }

    /// Keeps a refusal for the notice on its terminal.
    fn note(&mut self, refusal: Option<Refusal>) {
        if let (Some(notices), Some(refusal)) = (&mut self.notices, refusal) {
            notices.add(refusal, std::time::Instant::now());
        }
    }
}

fn log_exec_decision(ev: &ExecDecision, legend: &Legend) {
    let rule = legend.rule(ev.rule_id()).unwrap_or("?");
    let command = audit::record::command_text(&ev.argv, ev.argv_truncated);
    warn!(
        decision = ev.decision.as_str(),
        rule,
        reason = ev.reason().map_or("?", |r| r.as_str()),
        verb = ev.verb().unwrap_or(""),
        object = ev.object(legend).unwrap_or_default(),
        file = ev.filename,
        pid = ev.actor.tgid,
        ppid = ev.actor.ppid,
        uid = ev.actor.uid,
        comm = ev.actor.comm,
        "{} exec: {command}",
        ev.decision.as_str()
    );
}

fn log_process_decision(ev: &ProcessDecision, legend: &Legend) {
    let rule = legend.rule(ev.rule_id);
    warn!(
        decision = ev.decision.as_str(),
        rule = rule.unwrap_or("?"),
        signal = ev.signal,
        reason = ev.reason.as_str(),
        target_pid = ev.target_pid,
        target_comm = ev.target_comm,
        pid = ev.actor.tgid,
        comm = ev.actor.comm,
        "{} {}",
        ev.decision.as_str(),
        ev.what()
    );
}

pub(super) fn log_netfilter_decision(ev: &NetfilterDecision, legend: &Legend) {
    warn!(
        decision = ev.decision.as_str(),
        rule = legend.rule(ev.rule_id).unwrap_or("?"),
        op = ev.op.as_str(),
        messages = ev.messages,
        pid = ev.actor.tgid,
        comm = ev.actor.comm,
        "{} netfilter batch: {} of {}",
        ev.decision.as_str(),
        ev.op.as_str(),
        ev.object_text()
    );
}

fn log_decision(ev: &FileDecision, legend: &Legend) {
    let path = ev
        .path(legend)
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| "?".to_owned());
    let exe = Path::new("/proc")
        .join(ev.actor.tgid.to_string())
        .join("exe")
        .read_link()
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    let rule = legend.rule(ev.rule_id).unwrap_or("?");
    if ev.decision == Decision::AllowedEdit {
        info!(
            op = ev.op.as_str(),
            rule,
            pid = ev.actor.tgid,
            comm = ev.actor.comm,
            exe,
            "configuration edited: {path}"
        );
        return;
    }
    warn!(
        decision = ev.decision.as_str(),
        op = ev.op.as_str(),
        rule,
        path,
        dev = format_args!("{}:{}", ev.target.major(), ev.target.minor()),
        ino = ev.target.ino,
        pid = ev.actor.tgid,
        ppid = ev.actor.ppid,
        uid = ev.actor.uid,
        comm = ev.actor.comm,
        exe,
        cgroup = ev.actor.cgroup_id,
        "{} {} of a protected object",
        ev.decision.as_str(),
        ev.op.as_str()
    );
}
