//! What changes while the daemon runs: SIGHUP reloads the policy and the maintenance
//! windows, and windows expire on their own. A policy that does not load or resolve is
//! refused and the running one stays in force.

use std::time::Duration;

use tracing::{error, info};

use super::{notice::Notices, Daemon, Source};
use crate::{
    loader::Guard,
    policy,
    tables::maintenance::{MaintenanceState, MaintenanceWindow},
};

impl Daemon {
    /// SIGHUP: reads the policy and the maintenance windows again. A policy that does
    /// not parse or resolve is refused with its error and the running one stays in force;
    /// window changes apply either way.
    pub(super) fn reload(&mut self, guard: &mut Guard) -> anyhow::Result<()> {
        self.reload_windows();
        if let Source::Policy { path, .. } = &self.source {
            let path = path.clone();
            match policy::load(&path) {
                Ok(policy) => {
                    // Trees the running policy already had keep their baseline.
                    let candidate = Source::policy(path.clone(), policy, self.source.baseline());
                    match candidate.resolve(&self.windows) {
                        Ok(tables) => {
                            self.install(guard, tables)?;
                            self.source = candidate;
                            self.trail.context = self.source.audit_context();
                            if self.source.terminal_notices() != self.notices.is_some() {
                                self.notices = self
                                    .source
                                    .terminal_notices()
                                    .then(Notices::for_this_namespace);
                            }
                            self.published.policy_sha256 = self.trail.context.policy.sha256.clone();
                            info!(policy = %path.display(), "reloaded the policy");
                            self.trail
                                .notice("reload", &format!("policy {} reloaded", path.display()));
                            self.publish();
                            return Ok(());
                        }
                        Err(e) => {
                            error!("reload refused, the running policy stays in force: {e}");
                            self.trail.notice("reload-refused", &e.to_string());
                        }
                    }
                }
                Err(e) => {
                    error!(
                        "reload refused, the running policy stays in force:\n{}",
                        e.render()
                    );
                    self.trail.notice("reload-refused", &e.render());
                }
            }
        }
        // The running policy (or command line) with the current windows.
        match self.source.resolve(&self.windows) {
            Ok(tables) => self.install(guard, tables)?,
            Err(e) => error!("re-resolving with the current maintenance windows: {e}"),
        }
        self.publish();
        Ok(())
    }

    /// Re-reads the maintenance state and records what opened and closed since.
    pub(super) fn reload_windows(&mut self) {
        let mut fresh = match MaintenanceState::load(&self.windows_file) {
            Ok(state) => state,
            Err(e) => {
                error!("maintenance windows unchanged: {e}");
                return;
            }
        };
        for (change, w) in
            window_changes(&self.windows, &mut fresh, time::OffsetDateTime::now_utc())
        {
            match change {
                WindowChange::Opened => {
                    info!(package = w.package, expires = %w.expires, reason = w.reason, "maintenance window opened")
                }
                WindowChange::Closed => info!(package = w.package, "maintenance window closed"),
                WindowChange::Expired => {}
            }
            self.trail.window_notice(change.op(), &w);
        }
        self.windows = fresh;
        self.published.maintenance = self.windows.windows.clone();
    }

    /// Closes windows whose time is up, in the kernel, the state file and the audit log.
    pub(super) fn expire_windows(&mut self, guard: &mut Guard) -> anyhow::Result<()> {
        let expired = self.windows.expire(time::OffsetDateTime::now_utc());
        for w in &expired {
            info!(package = w.package, "maintenance window expired");
            self.trail.window_notice("maintenance-expired", w);
        }
        if let Err(e) = self.windows.save(&self.windows_file) {
            error!("{e}");
        }
        self.published.maintenance = self.windows.windows.clone();
        match self.source.resolve(&self.windows) {
            Ok(tables) => self.install(guard, tables)?,
            Err(e) => error!("re-resolving after a window expired: {e}"),
        }
        self.publish();
        Ok(())
    }
}

/// A maintenance window's change, as the audit trail names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum WindowChange {
    Expired,
    Opened,
    Closed,
}

impl WindowChange {
    fn op(self) -> &'static str {
        match self {
            WindowChange::Expired => "maintenance-expired",
            WindowChange::Opened => "maintenance-open",
            WindowChange::Closed => "maintenance-close",
        }
    }
}

/// What happened to the windows between the `running` state and a `fresh` read of the
/// state file, in order: windows in `fresh` already expired at
/// `now` (and taken out of it), windows opened (or reopened with other terms), windows
/// closed.
fn window_changes(
    running: &MaintenanceState,
    fresh: &mut MaintenanceState,
    now: time::OffsetDateTime,
) -> Vec<(WindowChange, MaintenanceWindow)> {
    let mut changes: Vec<(WindowChange, MaintenanceWindow)> = fresh
        .expire(now)
        .into_iter()
        .map(|w| (WindowChange::Expired, w))
        .collect();
    for w in &fresh.windows {
        if !running.windows.contains(w) {
            changes.push((WindowChange::Opened, w.clone()));
        }
    }
    for w in &running.windows {
        if !fresh.windows.iter().any(|f| f.package == w.package) {
            changes.push((WindowChange::Closed, w.clone()));
        }
    }
    changes
}

/// Sleeps until `at` (a window's expiry), or forever.
pub(super) async fn until(at: Option<time::OffsetDateTime>) {
    match at {
        Some(at) => {
            let left = at - time::OffsetDateTime::now_utc();
            tokio::time::sleep(left.try_into().unwrap_or(Duration::ZERO)).await
        }
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    const NOW: time::OffsetDateTime = datetime!(2026-11-26 14:00:00 UTC);

    fn window(
        package: &str,
        expires: time::OffsetDateTime,
        allow_removal: bool,
    ) -> MaintenanceWindow {
        MaintenanceWindow {
            package: package.to_owned(),
            allow_removal,
            opened: NOW - time::Duration::hours(1),
            expires,
            reason: "upgrade".to_owned(),
            opened_by: "alice".to_owned(),
        }
    }

    fn state(windows: &[MaintenanceWindow]) -> MaintenanceState {
        MaintenanceState {
            windows: windows.to_vec(),
        }
    }

    #[test]
    fn a_reload_reports_expired_opened_and_closed_windows_in_that_order() {
        let later = NOW + time::Duration::hours(1);
        let running = state(&[
            window("containerd", later, false),
            window("runc", later, false),
        ]);
        let mut fresh = state(&[
            // Still open, same terms: nothing to say.
            window("containerd", later, false),
            // Reopened with removal allowed: a new window.
            window("runc", later, true),
            window("docker.io", later, false),
            // Written by `maintenance open` before the daemon read it, and over by now.
            window("iptables", NOW - time::Duration::minutes(1), false),
        ]);
        let ops: Vec<(&str, String)> = window_changes(&running, &mut fresh, NOW)
            .into_iter()
            .map(|(change, w)| (change.op(), w.package))
            .collect();
        assert_eq!(
            ops,
            [
                ("maintenance-expired", "iptables".to_owned()),
                ("maintenance-open", "runc".to_owned()),
                ("maintenance-open", "docker.io".to_owned()),
            ]
        );
        assert_eq!(fresh.windows.len(), 3, "the expired window is taken out");

        let mut none = state(&[]);
        let ops: Vec<&str> = window_changes(&running, &mut none, NOW)
            .into_iter()
            .map(|(change, _)| change.op())
            .collect();
        assert_eq!(ops, ["maintenance-close", "maintenance-close"]);
    }
}
