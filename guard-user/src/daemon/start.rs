//! The daemon's start: resolve what to protect, open the audit log, load and prove the
//! programs, then serve (or, where the kernel cannot enforce, observe). Every step that
//! fails says why on stderr and ends the start with an [`Outcome`] the command line turns
//! into an exit status.

use std::{
    collections::BTreeSet,
    path::{Path, PathBuf},
};

use tracing::{info, warn};

use super::{
    notice::Notices,
    self_test,
    status::{self, DaemonStatus, EventCounters, GuardState, ProtectedCounts, Stopwatch},
    takeover::PendingGeneration,
    Daemon, Source,
};
use crate::{
    audit::config_history::History,
    audit::{AuditLog, AuditLogConfig, AuditTrail},
    loader::{
        active_lsms, bpf_lsm_inactive, degraded::Observer, Guard, HookChoice, LoadError, Mechanism,
        MechanismChoice, Mode, PinDir,
    },
    policy,
    resolve::EditableBaseline,
    tables::{
        maintenance::{self, MaintenanceState},
        CommandLinePaths,
    },
};

/// How `rtguard run` was asked to run.
#[derive(Clone, Debug)]
pub struct Options {
    /// The policy file; without one, `command_line` says what to protect.
    pub policy: Option<PathBuf>,
    pub command_line: CommandLinePaths,
    pub mode: Mode,
    pub file_hooks: HookChoice,
    pub mechanism: MechanismChoice,
    /// Keep running when the kernel cannot enforce.
    pub allow_degraded: bool,
    pub audit_log: PathBuf,
    /// Also send each record to syslog.
    pub syslog: bool,
    /// Where maintenance windows and configuration versions are kept.
    pub state_dir: PathBuf,
    /// Pin the programs so that enforcement outlives the daemon.
    pub pin: bool,
    pub pin_dir: PathBuf,
    /// Where to publish the status; the default under /run when `None`.
    pub status_file: Option<PathBuf>,
    /// How often enforcement is proven again on the canaries while serving.
    pub proof_interval: std::time::Duration,
}

/// How the daemon ended, for the exit status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Stopped by SIGTERM or SIGINT.
    Stopped,
    /// The policy or the command line was refused.
    BadInput,
    /// Something else failed; stderr says what.
    Failed,
    /// The kernel cannot enforce, and degraded running was not allowed.
    EnforcementUnavailable,
}

pub fn run(options: Options) -> Outcome {
    let mut stopwatch = Stopwatch::start();
    let source = match &options.policy {
        Some(path) => match policy::load(path) {
            Ok(policy) => Source::policy(path.clone(), policy, EditableBaseline::new()),
            Err(e) => {
                eprintln!("{}", e.render());
                return Outcome::BadInput;
            }
        },
        None => Source::CommandLine(options.command_line.clone()),
    };
    let windows_file = maintenance::state_file(&options.state_dir);
    let mut windows = match MaintenanceState::load(&windows_file) {
        Ok(windows) => windows,
        Err(e) => {
            eprintln!("rtguard: {e}");
            return Outcome::Failed;
        }
    };
    let expired = windows.expire(time::OffsetDateTime::now_utc());
    // The pin directory exists before the policy is resolved: the policy may protect it.
    let pins = options.pin.then(|| PinDir::new(&options.pin_dir));
    if let Some(pins) = &pins {
        if let Err(e) = pins.create() {
            eprintln!("rtguard: --pin: {e}");
            return Outcome::Failed;
        }
    }
    if !options.pin {
        // Only a daemon started with --pin takes earlier pins over; say they are there.
        if let Ok(n @ 1..) = PinDir::new(&options.pin_dir).pinned_links() {
            warn!(
                "{n} program(s) an earlier daemon pinned under {} keep enforcing its policy \
                 alongside this one; start with --pin to take them over, or stop this daemon \
                 and run `rtguard unload`",
                options.pin_dir.display()
            );
        }
    }
    let tables = match source.resolve(&windows) {
        Ok(tables) => tables,
        Err(e) => {
            eprintln!("rtguard: {e}");
            return Outcome::BadInput;
        }
    };
    stopwatch.lap("policy");
    let mut config = AuditLogConfig::new(&options.audit_log);
    if options.syslog {
        config = config.with_syslog();
    }
    let audit_log = match AuditLog::open(config) {
        Ok(log) => log,
        Err(e) => {
            eprintln!("rtguard: {e}");
            return Outcome::Failed;
        }
    };
    let mut trail = AuditTrail::new(audit_log, source.audit_context());
    let status_file = options
        .status_file
        .clone()
        .unwrap_or_else(status::default_path);
    let mut published = DaemonStatus {
        pid: std::process::id(),
        started: status::now(),
        updated: status::now(),
        state: GuardState::Degraded,
        reason: String::new(),
        environment: trail.context.environment.clone(),
        policy: trail.context.policy.name.clone(),
        policy_sha256: trail.context.policy.sha256.clone(),
        policy_file: options
            .policy
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_default(),
        layers: Vec::new(),
        mechanism: None,
        file_hooks: None,
        tree_cache: None,
        netfilter: None,
        sysctls: None,
        protected: ProtectedCounts::default(),
        self_test: Vec::new(),
        identities: Vec::new(),
        events: EventCounters::default(),
        maintenance: Vec::new(),
        pinned: None,
        startup: Vec::new(),
        proof: None,
    };

    let generation = match pins
        .as_ref()
        .map(|p| p.new_generation(&trail.context.policy.sha256))
        .transpose()
    {
        Ok(generation) => PendingGeneration(generation),
        Err(e) => {
            eprintln!("rtguard: --pin: {e}");
            return Outcome::Failed;
        }
    };
    let mut guard = match Guard::load(
        options.mode,
        options.file_hooks,
        options.mechanism,
        generation.0.as_ref(),
        &mut |step| stopwatch.lap(step),
    ) {
        Ok(guard) => Some(guard),
        Err(e @ LoadError::EnforcementUnavailable { .. }) if options.allow_degraded => {
            eprintln!("rtguard: {e}");
            eprintln!("rtguard: running degraded (--allow-degraded): nothing is blocked");
            published.reason = e.to_string();
            stopwatch.lap("enforcement refused");
            None
        }
        Err(e @ LoadError::EnforcementUnavailable { .. }) => {
            eprintln!("rtguard: {e}");
            eprintln!(
                "rtguard: refusing to run without enforcement; pass --allow-degraded to run anyway"
            );
            return Outcome::EnforcementUnavailable;
        }
        Err(e) => {
            eprintln!("rtguard: {e}");
            return Outcome::Failed;
        }
    };
    // Parsing the kernel's BTF (several MiB on recent kernels) left the heap large; the
    // daemon will not need that memory again.
    // SAFETY: malloc_trim only returns free heap memory to the kernel.
    unsafe { libc::malloc_trim(0) };

    // Prove enforcement on a canary before claiming it, with nothing else in the maps yet.
    let mut ring = None;
    let canary_dir = status_file.parent().unwrap_or(Path::new("/run")).to_owned();
    if let Some(g) = guard.as_mut() {
        let mut events = match g.take_events() {
            Ok(events) => events,
            Err(e) => {
                eprintln!("rtguard: {e}");
                return Outcome::Failed;
            }
        };
        // Nothing else is in the maps yet: every event is a canary's.
        let results = match self_test::run(
            g,
            &mut events,
            &canary_dir,
            self_test::EVENT_WAIT,
            &mut Vec::new(),
        ) {
            Ok(results) => results,
            Err(e) => {
                eprintln!("rtguard: self-test could not run: {e}");
                return Outcome::Failed;
            }
        };
        for result in &results {
            trail.self_test(&result.layer, result.passed, &result.detail);
            published.self_test.push(result.clone());
            if result.passed {
                info!(layer = result.layer, "self-test passed: {}", result.detail);
            } else {
                eprintln!(
                    "rtguard: self-test failed for the {} layer: {}",
                    result.layer, result.detail
                );
            }
        }
        published.proof = Some(status::Proof::of(
            &results,
            status::now(),
            options.proof_interval.as_secs(),
        ));
        let failed: Vec<&str> = results
            .iter()
            .filter(|r| !r.passed)
            .map(|r| r.layer.as_str())
            .collect();
        if !failed.is_empty() {
            // BPF LSM programs attach where bpf is not an active LSM, and never run:
            // say so, and the fix (--mechanism bpf-lsm on such a host gets here).
            if let Some(why) = active_lsms()
                .ok()
                .and_then(|l| bpf_lsm_inactive(&l))
                .filter(|_| g.mechanism() == Mechanism::BpfLsm)
            {
                eprintln!("rtguard: {why}");
                published.reason = why;
            }
            if !options.allow_degraded {
                eprintln!(
                    "rtguard: refusing to claim enforcement; pass --allow-degraded to run anyway"
                );
                return Outcome::EnforcementUnavailable;
            }
            eprintln!(
                "rtguard: running degraded (--allow-degraded): enforcement is not proven for the {} layer(s)",
                failed.join(", ")
            );
            if published.reason.is_empty() {
                published.reason =
                    format!("self-test failed for the {} layer(s)", failed.join(", "));
            }
        }
        ring = Some(events);
        stopwatch.lap("self-test");
    }

    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("rtguard: cannot start the runtime: {e}");
            return Outcome::Failed;
        }
    };
    for window in &expired {
        trail.window_notice("maintenance-expired", window);
    }
    if !expired.is_empty() {
        if let Err(e) = windows.save(&windows_file) {
            warn!("{e}");
        }
    }
    for window in &windows.windows {
        info!(package = window.package, expires = %window.expires, "maintenance window open");
    }
    published.maintenance = windows.windows.clone();
    let not_proven = published.reason.clone();
    let source_notices = source.terminal_notices().then(Notices::for_this_namespace);
    let mut daemon = Daemon {
        source,
        trail,
        status_file,
        published,
        windows,
        windows_file,
        pins: pins.map(|dir| (dir, generation)),
        package_operations: BTreeSet::new(),
        resolve_again: false,
        stopwatch,
        history: History::new(&options.state_dir),
        tables_generation: 0,
        not_proven,
        notices: source_notices,
        canary_dir,
        proof_interval: options.proof_interval,
    };
    // Where the kernel refuses the enforcing programs, observe the syscalls instead.
    let observer = if guard.is_none() {
        match Observer::load(&mut |step| daemon.stopwatch.lap(step)) {
            Ok(observer) => Some(observer),
            Err(e) => {
                eprintln!("rtguard: degraded mode cannot observe syscalls either: {e}");
                None
            }
        }
    } else {
        None
    };
    let result = match (guard.zip(ring), observer) {
        (Some(loaded), _) => runtime.block_on(daemon.serve(Some(loaded), tables)),
        (None, Some(observer)) => runtime.block_on(daemon.observe(observer, tables)),
        (None, None) => runtime.block_on(daemon.serve(None, tables)),
    };
    match result {
        Ok(()) => Outcome::Stopped,
        Err(e) => {
            eprintln!("rtguard: {e:#}");
            Outcome::Failed
        }
    }
}
