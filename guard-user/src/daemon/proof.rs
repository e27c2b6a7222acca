//! The continuous proof: the start's self-test on the canaries ([`self_test::run`]),
//! repeated while the daemon serves, at a fixed interval and after every reload.
//! Enforcement can stop under a running guard without anything failing: with
//! `kernel.ftrace_enabled=0` the kernel stops calling the trampolines that BPF LSM and
//! fmod_ret programs run on, and every program is still attached. Only an attempt on a
//! canary shows it. A failed proof makes the state `degraded` (so `rtguard status` exits
//! 3 with the reason), is logged as an error and audited; so is its recovery.

use std::time::Duration;

use aya::maps::{MapData, RingBuf};
use tracing::{error, info};

use super::{
    self_test,
    status::{self, Proof},
    Daemon,
};
use crate::loader::Guard;

/// How long a proof waits for a canary's event. The kernel queues it before the
/// attempt returns; a proof that waited as long as the start does would hold the serve
/// loop for seconds exactly when enforcement has stopped.
const EVENT_WAIT: Duration = Duration::from_millis(250);

impl Daemon {
    /// Proves every layer on its canary with the policy's tables in place, records the
    /// policy's decisions that arrived meanwhile, and publishes the outcome.
    pub(super) fn prove(&mut self, guard: &mut Guard, ring: &mut RingBuf<MapData>) {
        let mut passed_over = Vec::new();
        let outcome = self_test::run(guard, ring, &self.canary_dir, EVENT_WAIT, &mut passed_over);
        for event in passed_over {
            self.record_event(event, &guard.installed().legend);
        }
        let interval = self.proof_interval.as_secs();
        let proof = match outcome {
            Ok(results) => Proof::of(&results, status::now(), interval),
            Err(e) => Proof {
                at: status::now(),
                passed: false,
                detail: format!("the proof could not run: {e}"),
                interval_secs: interval,
            },
        };
        let was_failing = self.published.proof.as_ref().is_some_and(|p| !p.passed);
        if !proof.passed {
            error!(
                "ENFORCEMENT NOT PROVEN: the kernel no longer refuses the canaries ({}); \
                 protected objects may not be protected",
                proof.detail
            );
            if !was_failing {
                self.trail.proof(false, &proof.detail);
            }
        } else if was_failing {
            info!("enforcement proven again: {}", proof.detail);
            self.trail.proof(true, &proof.detail);
        }
        self.published.proof = Some(proof);
        self.account_skipped_runs();
        self.assess(guard);
        self.publish();
    }
}
