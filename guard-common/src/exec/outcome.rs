//! What the classifier answers: a [`Verdict`], the [`Reason`] for it, and the
//! [`Classification`] that carries both to an event record.

use num_enum::TryFromPrimitive;
use strum::IntoStaticStr;

use crate::rule::{Action, RuleEntry, NO_RULE};

pub const NO_TOKEN: u32 = u32::MAX;
pub const NO_OBJECT: u32 = u32::MAX;

/// What the classifier concluded. The strings are the audit log's.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, TryFromPrimitive, IntoStaticStr)]
#[cfg_attr(test, derive(strum::EnumCount))]
#[strum(serialize_all = "kebab-case")]
pub enum Verdict {
    Allowed = 0,
    /// Refused in enforce mode, reported in audit mode.
    Destructive = 1,
    /// An install, reinstall or upgrade of a protected package its group lets through.
    AllowedAsUpgrade = 2,
    /// Allowed but always reported: its effect depends on input exec cannot see.
    ReportOnly = 3,
}

impl Verdict {
    pub fn from_u32(raw: u32) -> Option<Self> {
        Self::try_from(raw).ok()
    }

    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

/// Why the classifier concluded what it did. The strings are the audit log's.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, TryFromPrimitive, IntoStaticStr)]
#[cfg_attr(test, derive(strum::EnumCount))]
#[strum(serialize_all = "kebab-case")]
pub enum Reason {
    /// The binary belongs to no command class.
    NotGuarded = 1,
    /// No verb that destroys or replaces anything protected.
    NoDestructiveVerb = 2,
    /// A dry-run flag makes the command harmless.
    DryRun = 3,
    /// A destructive verb names a protected object.
    ProtectedObject = 4,
    /// A destructive verb names no object and so hits every one (`iptables -F`).
    BareVerb = 5,
    /// A destructive verb with an all-objects word (`dpkg -r -a`, `nft flush ruleset`).
    AllObjects = 6,
    /// A flag that is destructive on its own (`dpkg --force-remove-protected`).
    HitsAll = 7,
    /// A destructive verb with a name pattern that may match protected objects.
    Pattern = 8,
    /// argv was longer than [`MAX_ARGV_TOKENS`](super::MAX_ARGV_TOKENS) or an option cluster longer than
    /// [`TOKEN_HEAD_BYTES`](super::TOKEN_HEAD_BYTES), and what was seen does not rule out a destructive reading.
    ArgvOverflow = 9,
    /// An install that removes a protected package through apt's `pkg-` suffix.
    RemoveSuffix = 10,
    /// Replaces a protected package whose group allows upgrades.
    Upgrade = 11,
    /// Replaces a protected package whose group allows upgrades in a window, and one is open.
    UpgradeInWindow = 12,
    /// Replaces a protected package whose group allows upgrades only in a window; none is open.
    UpgradeOutsideWindow = 13,
    /// Replaces a protected package whose group denies upgrades.
    UpgradeDenied = 14,
    /// The command's effect depends on input exec cannot see (`iptables-restore`, `nft -f`).
    ContentNotVisible = 15,
    /// Destructive, but the caller is a trusted caller of the class (the runtime itself).
    TrustedCaller = 16,
    /// Installs a protected package whose group allows upgrades: nothing is lost.
    Install = 17,
    /// Removes (or stops) protected objects, every one of them covered by an open
    /// maintenance window that allows removal.
    RemovalInWindow = 18,
    /// Switches the system to a target that does not keep the runtime running
    /// (`systemctl isolate rescue.target`, `systemctl rescue`, `telinit 1`).
    StopsEverything = 19,
    /// The kernel started a program of a guarded class itself (a usermode helper), with
    /// arguments no syscall showed.
    KernelExec = 20,
    /// A protected package's `prerm` run to remove it (`remove`, `purge`), with no window
    /// open for its removal: how dpkg starts removing a package, whatever asked for it.
    RemovalScript = 21,
}

impl Reason {
    pub fn from_u32(raw: u32) -> Option<Self> {
        Self::try_from(raw).ok()
    }

    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

/// The classifier's answer, small enough for an event record.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Classification {
    /// [`Verdict`] as u32.
    pub verdict: u32,
    /// [`Reason`] as u32.
    pub reason: u32,
    /// Rule charged, or [`NO_RULE`].
    pub rule: u32,
    /// Class id, or [`NO_CLASS`](super::NO_CLASS).
    pub class: u32,
    /// argv index of the deciding verb or flag, or [`NO_TOKEN`].
    pub verb_token: u32,
    /// argv index of the deciding object, or [`NO_TOKEN`].
    pub object_token: u32,
    /// Index of the matched object's name in userspace's object list, or [`NO_OBJECT`].
    pub object: u32,
    pub _pad: u32,
}

impl Classification {
    pub(super) const fn new(verdict: Verdict, reason: Reason, class: u32) -> Self {
        Self {
            verdict: verdict as u32,
            reason: reason as u32,
            rule: NO_RULE,
            class,
            verb_token: NO_TOKEN,
            object_token: NO_TOKEN,
            object: NO_OBJECT,
            _pad: 0,
        }
    }

    pub fn verdict(&self) -> Option<Verdict> {
        Verdict::from_u32(self.verdict)
    }

    pub fn reason(&self) -> Option<Reason> {
        Reason::from_u32(self.reason)
    }
}

/// What to do with a classified exec, given the charged rule's table entry (`None` when the
/// rule table has no such id). Destructive commands are blocked only when the rule
/// enforces; nothing is ever blocked without a rule.
pub fn action(classification: &Classification, rule: Option<RuleEntry>) -> Action {
    match classification.verdict() {
        Some(Verdict::Destructive) => match rule {
            Some(entry) if entry.enforces() => Action::Block,
            _ => Action::Report,
        },
        Some(Verdict::ReportOnly) => Action::Report,
        Some(Verdict::AllowedAsUpgrade) => Action::AllowLogged,
        Some(Verdict::Allowed) | None => Action::Allow,
    }
}

#[cfg(test)]
mod tests {
    use strum::EnumCount;

    use super::*;

    #[test]
    fn verdicts_round_trip_and_keep_their_audit_log_words() {
        let words = [
            (Verdict::Allowed, "allowed"),
            (Verdict::Destructive, "destructive"),
            (Verdict::AllowedAsUpgrade, "allowed-as-upgrade"),
            (Verdict::ReportOnly, "report-only"),
        ];
        assert_eq!(words.len(), Verdict::COUNT);
        for (verdict, word) in words {
            assert_eq!(verdict.as_str(), word);
            assert_eq!(Verdict::from_u32(verdict as u32), Some(verdict));
        }
        assert_eq!(Verdict::from_u32(4), None);
    }

    #[test]
    fn reasons_round_trip_and_keep_their_audit_log_words() {
        let words = [
            (Reason::NotGuarded, "not-guarded"),
            (Reason::NoDestructiveVerb, "no-destructive-verb"),
            (Reason::DryRun, "dry-run"),
            (Reason::ProtectedObject, "protected-object"),
            (Reason::BareVerb, "bare-verb"),
            (Reason::AllObjects, "all-objects"),
            (Reason::HitsAll, "hits-all"),
            (Reason::Pattern, "pattern"),
            (Reason::ArgvOverflow, "argv-overflow"),
            (Reason::RemoveSuffix, "remove-suffix"),
            (Reason::Upgrade, "upgrade"),
            (Reason::UpgradeInWindow, "upgrade-in-window"),
            (Reason::UpgradeOutsideWindow, "upgrade-outside-window"),
            (Reason::UpgradeDenied, "upgrade-denied"),
            (Reason::ContentNotVisible, "content-not-visible"),
            (Reason::TrustedCaller, "trusted-caller"),
            (Reason::Install, "install"),
            (Reason::RemovalInWindow, "removal-in-window"),
            (Reason::StopsEverything, "stops-everything"),
            (Reason::KernelExec, "kernel-exec"),
            (Reason::RemovalScript, "removal-script"),
        ];
        assert_eq!(words.len(), Reason::COUNT);
        for (reason, word) in words {
            assert_eq!(reason.as_str(), word);
            assert_eq!(Reason::from_u32(reason as u32), Some(reason));
        }
        assert_eq!(Reason::from_u32(0), None);
        assert_eq!(Reason::from_u32(22), None);
    }
}
