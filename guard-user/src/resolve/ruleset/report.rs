//! What resolution reports for `rtguard check`: for each rule, every entry it names (a
//! package, a path, a unit, …) and what that resolved to on this host, plus the warnings.

use serde::Serialize;

use crate::policy::Location;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ItemState {
    Installed,
    /// Known to the package manager but not fully installed (config-files, half-installed).
    Partial,
    NotInstalled,
    Present,
    NotPresent,
    /// Could not be looked up here (no rpm to read an rpm database).
    Unavailable,
}

impl ItemState {
    pub fn as_str(self) -> &'static str {
        match self {
            ItemState::Installed => "installed",
            ItemState::Partial => "partly installed",
            ItemState::NotInstalled => "not installed here",
            ItemState::Present => "present",
            ItemState::NotPresent => "not present here",
            ItemState::Unavailable => "unavailable",
        }
    }
}

/// One entry of a rule (a package, a path, a unit, …) and what it resolved to.
#[derive(Clone, Debug, Serialize)]
pub struct ItemReport {
    pub name: String,
    pub state: ItemState,
    pub detail: String,
    pub objects: usize,
}

#[derive(Clone, Debug, Serialize)]
pub struct RuleReport {
    pub rule: u32,
    pub items: Vec<ItemReport>,
    /// Kernel objects this rule contributes (files, trees, executables).
    pub objects: usize,
}

/// Something the operator should know that doesn't stop the policy from loading.
#[derive(Clone, Debug, Serialize)]
pub struct Warning {
    pub file: String,
    pub location: Location,
    pub message: String,
}

impl std::fmt::Display for Warning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}:{}:{}: warning: {}",
            self.file, self.location.line, self.location.col, self.message
        )
    }
}

/// The report of an entry that names `count` objects of one kind (`what`, singular).
pub(super) fn item(name: &str, count: usize, what: &str) -> ItemReport {
    if count == 0 {
        ItemReport {
            name: name.to_owned(),
            state: ItemState::NotPresent,
            detail: String::new(),
            objects: 0,
        }
    } else {
        ItemReport {
            name: name.to_owned(),
            state: ItemState::Present,
            detail: format!("{count} {what}{}", if count == 1 { "" } else { "s" }),
            objects: count,
        }
    }
}
