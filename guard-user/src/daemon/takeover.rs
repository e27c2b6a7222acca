//! `--pin`: enforcement that outlives the daemon. A daemon started with `--pin` pins its
//! links as a new generation, then retires the generations earlier daemons left, so the
//! host is never without enforcement across a restart.

use tracing::{error, info, warn};

use super::Daemon;
use crate::{
    loader::{Generation, Guard},
    tables::Legend,
};

/// This start's pin generation. It is removed again unless the daemon gets as far as
/// pinning its links, so a start that fails leaves the earlier generation in force.
pub(super) struct PendingGeneration(pub(super) Option<Generation>);

impl PendingGeneration {
    /// The generation now holds pinned links: it stays when the daemon exits.
    pub(super) fn keep(&mut self) {
        self.0 = None;
    }
}

impl Drop for PendingGeneration {
    fn drop(&mut self) {
        if let Some(g) = self.0.take() {
            g.remove().ok();
        }
    }
}

impl Daemon {
    /// `--pin`: pins this daemon's links, then retires the generations earlier daemons
    /// left. Their programs are detached only now, once this daemon's are attached, proven
    /// and filled, so there is no moment without enforcement; what they queued while no
    /// daemon was reading is recorded.
    pub(super) fn persist(&mut self, guard: &mut Guard) -> anyhow::Result<()> {
        let Some((pins, pending)) = self.pins.as_mut() else {
            return Ok(());
        };
        let Some(current) = pending.0.clone() else {
            return Ok(());
        };
        let older: Vec<Generation> = pins
            .generations()?
            .into_iter()
            .filter(|g| *g != current)
            .collect();
        let pinned = guard.pin_links(&current)?;
        pending.keep();
        info!(
            programs = pinned,
            dir = %current.dir().display(),
            "pinned: enforcement outlives this process"
        );
        self.published.pinned = Some(current.dir().display().to_string());
        for old in older {
            self.retire(&old, guard);
        }
        Ok(())
    }

    /// Detaches an earlier generation's programs and records what they queued.
    pub(super) fn retire(&mut self, old: &Generation, guard: &Guard) {
        // Rule ids name rules of the policy that generation enforced; only the same
        // policy's tables can name them.
        let same_policy = old.enforced_policy(&self.trail.context.policy.sha256);
        let events = old.open_events();
        let detached = match old.unpin_links() {
            Ok(n) => n,
            Err(e) => {
                error!(
                    "cannot detach the programs pinned in {}: {e}",
                    old.dir().display()
                );
                return;
            }
        };
        let before = self.published.events.total();
        let lost = match events {
            Ok(mut events) => {
                let unknown = Legend::default();
                let legend = if same_policy {
                    &guard.installed().legend
                } else {
                    &unknown
                };
                self.drain_events(&mut events.ring, legend);
                let lost = events.dropped();
                if lost > 0 {
                    self.trail.log.add_dropped(lost);
                }
                lost
            }
            Err(e) => {
                warn!(
                    "the events pinned in {} are unreadable: {e}",
                    old.dir().display()
                );
                0
            }
        };
        let recorded = self.published.events.total() - before;
        if let Err(e) = old.remove() {
            warn!("{e}");
        }
        info!(
            generation = old.name(),
            detached, recorded, lost, "took over from the programs an earlier daemon pinned"
        );
        self.trail.notice(
            "adopt",
            &format!(
                "took over from {}: {detached} pinned program(s) detached, {recorded} decision(s) they queued recorded, {lost} lost",
                old.name()
            ),
        );
    }
}
