//! What changes while the daemon runs: SIGHUP reloads the policy and the maintenance
//! windows, and windows expire on their own. A policy that does not load or resolve is
//! refused and the running one stays in force.

use std::time::Duration;

use tracing::{error, info};

use super::{Daemon, Source};
use crate::{loader::Guard, policy, tables::maintenance::MaintenanceState};

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
        for expired in fresh.expire(time::OffsetDateTime::now_utc()) {
            self.trail.window_notice("maintenance-expired", &expired);
        }
        for w in &fresh.windows {
            if !self.windows.windows.contains(w) {
                info!(package = w.package, expires = %w.expires, reason = w.reason, "maintenance window opened");
                self.trail.window_notice("maintenance-open", w);
            }
        }
        for w in &self.windows.windows {
            if !fresh.windows.iter().any(|f| f.package == w.package) {
                info!(package = w.package, "maintenance window closed");
                self.trail.window_notice("maintenance-close", w);
            }
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
