//! Rules as the kernel sees them: a small integer id, a mode and what kind of thing the
//! rule protects. Names, descriptions and sources stay in userspace, which maps the id
//! carried in every event back to them.

use num_enum::TryFromPrimitive;
use strum::IntoStaticStr;

/// Rule ids run from 1; 0 means "no rule".
pub const NO_RULE: u32 = 0;
/// Capacity of the rule table (ids 1..=MAX_RULES). A policy with more rules is refused.
pub const MAX_RULES: u32 = 255;

/// The rule id of the startup self-test's canary, one past the policy's ids: the rule
/// table has `MAX_RULES + 2` slots (0, the policy's 1..=MAX_RULES, and this one).
pub const SELF_TEST_RULE: u32 = MAX_RULES + 1;

/// The rule id of what rtguard's programs depend on themselves (the sysctls of
/// [`crate::sysctl::GUARD_SYSCTLS`]), two past the policy's ids. Its mode is the policy's.
pub const GUARD_DEPENDENCIES_RULE: u32 = MAX_RULES + 2;

/// Set in [`RuleEntry::flags`] when matches are denied rather than only reported.
pub const RULE_ENFORCE: u32 = 1 << 0;

/// What a rule protects, which decides the layers that act on it. The strings are the
/// policy's and the audit log's.
#[repr(u32)]
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, TryFromPrimitive, IntoStaticStr,
)]
#[cfg_attr(test, derive(strum::EnumCount))]
#[strum(serialize_all = "kebab-case")]
pub enum RuleKind {
    /// Files of installed packages (file layer) and the package names (exec layer).
    Packages = 1,
    /// Named files and globs (file layer).
    Paths = 2,
    /// Directories with their whole subtree (file layer, parent walk).
    Trees = 3,
    /// Unit files, drop-ins and enablement links (file layer), unit names (exec layer).
    Services = 4,
    /// Netfilter chains, tables and sets (exec layer).
    Netfilter = 5,
    /// Processes by executable (process layer).
    Processes = 6,
}

impl RuleKind {
    pub fn from_u32(raw: u32) -> Option<Self> {
        Self::try_from(raw).ok()
    }

    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

/// One slot of the rule table, indexed by rule id.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RuleEntry {
    /// `RULE_*` bits. A u32 rather than a bool so both sides agree on the bytes.
    pub flags: u32,
    /// [`RuleKind`] as u32; 0 for an empty slot.
    pub kind: u32,
}

impl RuleEntry {
    pub const fn enforces(&self) -> bool {
        self.flags & RULE_ENFORCE != 0
    }
}

/// What happens to an operation once its rule is known.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Let it through without a record.
    Allow = 0,
    /// Deny it (-EPERM) and record it.
    Block = 1,
    /// Let it through and record that it would have been blocked.
    Report = 2,
    /// Let it through and record it as permitted maintenance (an allowed upgrade).
    AllowLogged = 3,
}

// Written out: the audit log's words for actions are not the variants' names.
impl Action {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Allow => "allowed",
            Self::Block => "blocked",
            Self::Report => "would-block",
            Self::AllowLogged => "allowed-by-maintenance",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rule_kinds_round_trip_and_keep_their_words() {
        let words = [
            (RuleKind::Packages, "packages"),
            (RuleKind::Paths, "paths"),
            (RuleKind::Trees, "trees"),
            (RuleKind::Services, "services"),
            (RuleKind::Netfilter, "netfilter"),
            (RuleKind::Processes, "processes"),
        ];
        assert_eq!(words.len(), <RuleKind as strum::EnumCount>::COUNT);
        for (kind, word) in words {
            assert_eq!(kind.as_str(), word);
            assert_eq!(RuleKind::from_u32(kind as u32), Some(kind));
        }
        assert_eq!(RuleKind::from_u32(0), None);
        assert_eq!(RuleKind::from_u32(7), None);
    }
}
