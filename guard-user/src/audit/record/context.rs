//! Making records: a [`RecordContext`] stamps a new record with what stays the same
//! across a daemon's records, and the builder methods on [`AuditRecord`] fill in the rest.

use time::OffsetDateTime;

use super::{
    Actor, AuditRecord, Decision, ExecDetail, Layer, PolicyRef, SignalDetail, Target,
    SCHEMA_VERSION,
};

/// What stays the same across a daemon's records: host, environment and policy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordContext {
    pub host: String,
    pub environment: String,
    pub policy: PolicyRef,
}

impl AuditRecord {
    pub fn rule(mut self, rule: impl Into<String>) -> Self {
        self.rule = Some(rule.into());
        self
    }

    pub fn target(mut self, target: Target) -> Self {
        self.target = target;
        self
    }

    pub fn enforced(mut self, enforced: bool) -> Self {
        self.enforced = enforced;
        self
    }

    pub fn exec(mut self, verb: impl Into<String>, object: Option<String>) -> Self {
        self.exec = Some(ExecDetail {
            verb: verb.into(),
            object,
        });
        self
    }

    pub fn signal(mut self, number: i32) -> Self {
        self.signal = Some(SignalDetail::new(number));
        self
    }

    /// Why the signal counts as ending the target (see [`SignalDetail::reason`]); after
    /// [`signal`](Self::signal).
    pub fn signal_reason(mut self, reason: &str) -> Self {
        if let Some(signal) = &mut self.signal {
            signal.reason = Some(reason.to_owned());
        }
        self
    }

    pub fn note(mut self, note: impl Into<String>) -> Self {
        self.note = Some(note.into());
        self
    }

    /// Overrides the time of recording (the default is when the record was made).
    pub fn at(mut self, ts: OffsetDateTime) -> Self {
        self.ts = ts.to_offset(time::UtcOffset::UTC);
        self
    }

    pub fn dropped_since_last(mut self, dropped: u64) -> Self {
        self.dropped_since_last = dropped;
        self
    }
}

impl RecordContext {
    /// A context for this host, named as `uname -n` names it.
    pub fn new(environment: impl Into<String>, policy: PolicyRef) -> Self {
        let host = nix::sys::utsname::uname()
            .map(|u| u.nodename().to_string_lossy().into_owned())
            .unwrap_or_default();
        Self {
            host,
            environment: environment.into(),
            policy,
        }
    }

    /// A record stamped now, enforced, with no rule, no target and nothing dropped; fill
    /// in the rest with the builder methods on [`AuditRecord`].
    pub fn record(
        &self,
        layer: Layer,
        op: impl Into<String>,
        decision: Decision,
        actor: Actor,
    ) -> AuditRecord {
        AuditRecord {
            v: SCHEMA_VERSION,
            ts: OffsetDateTime::now_utc(),
            host: self.host.clone(),
            environment: self.environment.clone(),
            policy: self.policy.clone(),
            rule: None,
            layer,
            op: op.into(),
            decision,
            enforced: true,
            target: Target::default(),
            actor,
            dropped_since_last: 0,
            exec: None,
            signal: None,
            note: None,
        }
    }

    /// A daemon-layer notice that kernel events were lost, for when drops happen and no
    /// other record follows soon to carry the count.
    pub fn dropped_events(&self, actor: Actor, dropped: u64) -> AuditRecord {
        self.record(Layer::Daemon, "events-dropped", Decision::Notice, actor)
            .dropped_since_last(dropped)
    }
}
