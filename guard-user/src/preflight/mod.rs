//! Pre-flight: a package transaction is judged as a whole before dpkg runs. apt hands its
//! plan to `rtguard apt-hook` ([`apt`]); a plan that removes a protected package is refused
//! there, with the package, the rule and what in the request removes it, instead of apt
//! failing halfway with "Could not exec dpkg!" when the kernel refuses dpkg's removal.
//!
//! The kernel stays the enforcement: this only reads the policy and the maintenance
//! windows, the same ones the daemon installs, and refuses early and readably.

pub mod apt;

use time::OffsetDateTime;

use self::apt::{Action, PackageAction};
use crate::{
    policy::{Mode, Policy, RuleBody},
    tables::maintenance::MaintenanceState,
};

/// A removal in the plan of a package a `[[packages]]` rule protects.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProtectedRemoval {
    pub package: String,
    pub rule: String,
    pub mode: Mode,
}

/// What the plan comes to.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Review {
    /// Removals no open window allows, in enforce-mode rules: the plan is refused.
    pub refused: Vec<ProtectedRemoval>,
    /// The same in audit-mode rules: reported, let through.
    pub reported: Vec<ProtectedRemoval>,
    /// Packages the plan unpacks (installs, upgrades, reinstalls).
    pub installing: Vec<String>,
}

impl Review {
    /// What the person is told when the plan is refused or reported, one line each.
    pub fn message(&self) -> Vec<String> {
        let mut lines = Vec::new();
        let cause = if self.installing.is_empty() {
            "no package is installed in this transaction: an autoremove, or a removal \
             asked for by name"
                .to_owned()
        } else {
            format!(
                "apt removes it to install {}, which conflicts with it, breaks it or \
                 replaces it",
                self.installing.join(", ")
            )
        };
        for r in &self.refused {
            lines.push(format!(
                "refusing this apt transaction before dpkg runs: it removes {} (rule {})",
                r.package, r.rule
            ));
        }
        for r in &self.reported {
            lines.push(format!(
                "this apt transaction removes {} (rule {}, audit mode: let through)",
                r.package, r.rule
            ));
        }
        if !self.refused.is_empty() || !self.reported.is_empty() {
            lines.push(cause);
        }
        if let Some(first) = self.refused.first() {
            lines.push("nothing was changed".to_owned());
            lines.push(format!(
                "to remove it on purpose: rtguard maintenance open --package {} \
                 --allow-removal --for 30m --reason \"…\"",
                first.package
            ));
        }
        lines
    }
}

/// Judges apt's plan against the policy's packages and the windows open at `now`.
/// Upgrades, reinstalls and installs pass; so does a removal a window allows.
pub fn review(
    policy: &Policy,
    windows: &MaintenanceState,
    now: OffsetDateTime,
    plan: &[PackageAction],
) -> Review {
    let mut review = Review::default();
    for action in plan {
        match action.action {
            Action::Unpack(_) => {
                if !review.installing.contains(&action.package) {
                    review.installing.push(action.package.clone());
                }
            }
            Action::Configure => {}
            Action::Remove => {
                let Some((rule, mode)) = protecting(policy, &action.package) else {
                    continue;
                };
                if windows.allows_removal(&action.package, now) {
                    continue;
                }
                let removal = ProtectedRemoval {
                    package: action.package.clone(),
                    rule,
                    mode,
                };
                match mode {
                    Mode::Enforce => review.refused.push(removal),
                    Mode::Audit => review.reported.push(removal),
                }
            }
        }
    }
    review
}

/// The `[[packages]]` rule protecting `package`, and its mode.
fn protecting(policy: &Policy, package: &str) -> Option<(String, Mode)> {
    policy.rules.iter().find_map(|rule| match &rule.body {
        RuleBody::Packages { packages, .. } => packages
            .iter()
            .any(|spec| spec.names(package))
            .then(|| (rule.name.clone(), rule.mode)),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tables::maintenance::MaintenanceWindow;

    const POLICY: &str = r#"
environment = "test"
mode = "enforce"

[[packages]]
name = "distro-docker-packages"
packages = ["containerd", "runc"]

[[packages]]
name = "ce"
mode = "audit"
packages = ["docker-ce*"]
"#;

    const NOW: OffsetDateTime = time::macros::datetime!(2026-11-26 14:00:00 UTC);

    fn policy() -> Policy {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.toml");
        std::fs::write(&path, POLICY).unwrap();
        crate::policy::load(&path).unwrap()
    }

    fn plan(text: &str) -> Vec<PackageAction> {
        apt::parse(format!("VERSION 3\n\n{text}").as_bytes()).unwrap()
    }

    #[test]
    fn a_conflicting_install_that_removes_a_protected_package_is_refused() {
        let review = review(
            &policy(),
            &MaintenanceState::default(),
            NOW,
            &plan(
                "containerd 1.6.20 amd64 same > - - none **REMOVE**\n\
                 containerd.io - - none < 1.7.24 amd64 same /tmp/containerd.io.deb\n\
                 docker-ce-cli 1.0 amd64 same > - - none **REMOVE**\n",
            ),
        );
        assert_eq!(
            review.refused,
            [ProtectedRemoval {
                package: "containerd".into(),
                rule: "distro-docker-packages".into(),
                mode: Mode::Enforce,
            }]
        );
        assert_eq!(review.reported.len(), 1, "docker-ce* is an audit-mode rule");
        assert_eq!(
            review.message(),
            [
                "refusing this apt transaction before dpkg runs: it removes containerd (rule \
                 distro-docker-packages)",
                "this apt transaction removes docker-ce-cli (rule ce, audit mode: let through)",
                "apt removes it to install containerd.io, which conflicts with it, breaks it or \
                 replaces it",
                "nothing was changed",
                "to remove it on purpose: rtguard maintenance open --package containerd \
                 --allow-removal --for 30m --reason \"…\"",
            ]
        );
    }

    #[test]
    fn upgrades_reinstalls_and_removals_in_a_removal_window_pass() {
        let upgrade = plan(
            "containerd 1.6.20 amd64 same < 1.6.21 amd64 same /tmp/containerd.deb\n\
             containerd 1.6.20 amd64 same < 1.6.21 amd64 same **CONFIGURE**\n\
             runc 1.1 amd64 same = 1.1 amd64 same /tmp/runc.deb\n",
        );
        let r = review(&policy(), &MaintenanceState::default(), NOW, &upgrade);
        assert!(r.refused.is_empty() && r.message().is_empty(), "{r:?}");

        let removal = plan("containerd 1.6.20 amd64 same > - - none **REMOVE**\n");
        let window = |allow_removal| MaintenanceState {
            windows: vec![MaintenanceWindow {
                package: "containerd".into(),
                allow_removal,
                opened: NOW - time::Duration::minutes(5),
                expires: NOW + time::Duration::minutes(25),
                reason: "replace with containerd.io".into(),
                opened_by: "alice".into(),
            }],
        };
        assert!(review(&policy(), &window(true), NOW, &removal)
            .refused
            .is_empty());
        let upgrade_only = review(&policy(), &window(false), NOW, &removal);
        assert_eq!(
            upgrade_only.refused.len(),
            1,
            "an upgrade window does not remove"
        );
        assert!(upgrade_only.message()[1].starts_with("no package is installed"));
    }
}
