//! `rtguard run`: load, protect, report, and stay in the foreground.

use std::{
    collections::BTreeSet,
    path::{Path, PathBuf},
    sync::Mutex,
    time::Duration,
};

use anyhow::Context as _;
use aya::maps::{MapData, RingBuf};
use clap::{Args, ValueEnum};
use guard_common::{
    file::{FILE_EDITABLE, OPS_ALL},
    rule::RuleKind,
    syscall::EXEC_ARGS,
    Decision, FileOp,
};
use tokio::{
    io::{unix::AsyncFd, Interest},
    signal::unix::{signal, SignalKind},
    time::Instant,
};
use tracing::{error, info, warn};

use super::exit;
use crate::{
    audit::config_history::{History, Watcher},
    audit::{
        self, Actor, AuditLog, AuditLogConfig, AuditRecord, Layer, PolicyRef, RecordContext, Target,
    },
    daemon::degraded::{self, ArgvCache, PathMatcher},
    daemon::self_test::{self, IdentityCheck, SelfTestResult},
    daemon::status::{self, DaemonStatus, EventCounters, GuardState, ProtectedCounts, Stopwatch},
    events::{self, Event, ExecDecision, FileDecision, KernelActor, ProcessDecision},
    host::mount_table::{self, Mount, MountTable},
    host::notify::notify,
    host::paths,
    host::proc::Procfs,
    loader::{
        active_lsms, bpf_lsm_inactive, observer::Observer, FileHooks, Generation, Guard,
        HookChoice, LoadError, Mechanism, MechanismChoice, Mode, PinDir,
    },
    policy::{self, Policy},
    resolve::{self, EditableBaseline, ResolveError, ResolveOptions},
    tables::maintenance::{self, MaintenanceState, MaintenanceWindow},
    tables::{KernelTables, PACKAGE_MANAGERS},
};

/// After the package manager replaced a protected file, wait this long for it to finish
/// the batch, then protect the new inodes. dpkg renames files one by one; waiting a
/// little lets one re-resolution cover many.
const RESYNC_DELAY: Duration = Duration::from_millis(200);
/// How often to look whether a package command the exec layer let through has ended. The
/// files it installs are new inodes that no event announces, so the policy is resolved
/// again once it has; not before, when half-unpacked `*.dpkg-new` files would match
/// the policy's globs and be protected in dpkg's way.
const OPERATION_POLL: Duration = Duration::from_millis(500);

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("what").required(true).multiple(true)
    .args(["policy", "protect", "protect_tree", "upgradable"])))]
pub struct RunArgs {
    /// The policy to enforce (see policy/README.md), e.g. /etc/rtguard/production.toml.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["protect", "protect_tree", "upgradable", "trust", "package_manager"])]
    pub policy: Option<PathBuf>,

    /// Protect this file or directory (repeatable). Identity is its (dev, ino), so links,
    /// bind mounts and chroots reach the same protection. Its parent directories are
    /// protected against rename and rmdir.
    #[arg(long = "protect", value_name = "PATH")]
    pub protect: Vec<PathBuf>,

    /// Protect this directory and everything below it, including files created later.
    #[arg(long = "protect-tree", value_name = "DIR")]
    pub protect_tree: Vec<PathBuf>,

    /// Protect this file like --protect, but let the package manager replace it
    /// (an upgrade); the new file is protected again once the package manager is done.
    #[arg(long = "upgradable", value_name = "PATH")]
    pub upgradable: Vec<PathBuf>,

    /// Let processes running this executable, and their children, modify what the
    /// command line protects (e.g. the runtime managing its own data directory).
    #[arg(long = "trust", value_name = "EXE")]
    pub trust: Vec<PathBuf>,

    /// Package manager executables trusted with upgrades [default: /usr/bin/dpkg and
    /// /usr/bin/rpm, where present].
    #[arg(long = "package-manager", value_name = "EXE")]
    pub package_manager: Vec<PathBuf>,

    /// enforce: deny matching operations. audit: allow them and report "would-block".
    #[arg(long, value_enum, default_value_t = ModeArg::Enforce)]
    pub mode: ModeArg,

    /// Which LSM hooks carry the file layer: path (security_path_*), inode (the fallback
    /// for kernels without CONFIG_SECURITY_PATH), or auto.
    #[arg(long, value_enum, default_value_t = HooksArg::Auto)]
    pub file_hooks: HooksArg,

    /// How the programs reach the kernel's security checks: bpf-lsm (LSM hooks; needs
    /// `bpf` among the active LSMs), fmod-ret (the same programs on the security_*
    /// functions; works whatever LSMs are active), or auto: bpf-lsm where bpf is an
    /// active LSM, fmod-ret elsewhere.
    #[arg(long, value_enum, default_value_t = MechanismArg::Auto)]
    pub mechanism: MechanismArg,

    /// If the kernel cannot enforce, keep running without enforcement instead of exiting
    /// with status 3.
    #[arg(long)]
    pub allow_degraded: bool,

    /// Where to append the audit trail (JSON lines, rotated by size).
    #[arg(long, value_name = "FILE", default_value = paths::DEFAULT_AUDIT_LOG)]
    pub audit_log: PathBuf,

    /// Also send each audit record to the local syslog socket (journald reads it).
    #[arg(long)]
    pub syslog: bool,

    /// Where maintenance windows are kept (`rtguard maintenance`), so they survive a
    /// restart.
    #[arg(long, value_name = "DIR", default_value = paths::STATE_DIR)]
    pub state_dir: PathBuf,

    /// Pin the programs under --pin-dir so that enforcement outlives the daemon (a crash,
    /// `kill -9`, a restart). A daemon started with --pin takes over what an earlier one
    /// pinned without a gap; `rtguard unload` removes the pins.
    #[arg(long)]
    pub pin: bool,

    /// Where --pin pins programs and maps (on a BPF filesystem).
    #[arg(long, value_name = "DIR", default_value = paths::BPFFS_DIR)]
    pub pin_dir: PathBuf,

    /// Where to publish the daemon's status for `rtguard status`
    /// [default: /run/rtguard/status.json]. The self-test's canary lives next to it.
    #[arg(long, value_name = "FILE")]
    pub status_file: Option<PathBuf>,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum ModeArg {
    Enforce,
    Audit,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum HooksArg {
    Auto,
    Path,
    Inode,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum MechanismArg {
    Auto,
    BpfLsm,
    FmodRet,
}

impl From<MechanismArg> for MechanismChoice {
    fn from(m: MechanismArg) -> Self {
        match m {
            MechanismArg::Auto => MechanismChoice::Auto,
            MechanismArg::BpfLsm => MechanismChoice::Only(Mechanism::BpfLsm),
            MechanismArg::FmodRet => MechanismChoice::Only(Mechanism::ModifyReturn),
        }
    }
}

impl From<HooksArg> for HookChoice {
    fn from(h: HooksArg) -> Self {
        match h {
            HooksArg::Auto => HookChoice::Auto,
            HooksArg::Path => HookChoice::Only(FileHooks::Path),
            HooksArg::Inode => HookChoice::Only(FileHooks::Inode),
        }
    }
}

/// What to protect: a policy, or paths named on the command line. Resolved again whenever
/// inodes may have changed (after an upgrade replaced protected files).
enum Source {
    Policy {
        path: PathBuf,
        policy: Box<Policy>,
        /// What the configuration trees held when this daemon first resolved them:
        /// later resolutions (reloads, upgrades, edits) protect those entries only.
        baseline: Mutex<EditableBaseline>,
    },
    CommandLine(CommandLineSpec),
}

impl Source {
    fn policy(path: PathBuf, policy: Policy, baseline: EditableBaseline) -> Self {
        Source::Policy {
            path,
            policy: Box::new(policy),
            baseline: Mutex::new(baseline),
        }
    }

    fn baseline(&self) -> EditableBaseline {
        match self {
            Source::Policy { baseline, .. } => {
                baseline.lock().unwrap_or_else(|e| e.into_inner()).clone()
            }
            Source::CommandLine(_) => EditableBaseline::new(),
        }
    }

    fn resolve(&self, windows: &MaintenanceState) -> Result<KernelTables, ResolveError> {
        match self {
            Source::Policy {
                policy, baseline, ..
            } => {
                let options = ResolveOptions {
                    root: PathBuf::from("/"),
                    editable_baseline: self.baseline(),
                    ..Default::default()
                };
                let set = resolve::resolve(policy, &options)?;
                *baseline.lock().unwrap_or_else(|e| e.into_inner()) = set.editable_baseline.clone();
                let now = time::OffsetDateTime::now_utc();
                let mut tables = KernelTables::from_rule_set(&set, windows, now)?;
                for rule in &set.rules {
                    tables.rule_names.insert(rule.id, rule.name.clone());
                }
                Ok(tables)
            }
            Source::CommandLine(spec) => spec.resolve(),
        }
    }

    fn audit_context(&self) -> RecordContext {
        match self {
            Source::Policy { policy, .. } => RecordContext::new(
                policy.environment.clone(),
                PolicyRef {
                    name: policy.source.name.clone(),
                    sha256: policy.sha256.clone(),
                },
            ),
            Source::CommandLine(_) => RecordContext::new(
                "command-line",
                PolicyRef {
                    name: "command line".to_owned(),
                    sha256: String::new(),
                },
            ),
        }
    }
}

/// Paths named on the command line.
struct CommandLineSpec {
    objects: Vec<PathBuf>,
    upgradable: Vec<PathBuf>,
    trees: Vec<PathBuf>,
    trusted: Vec<PathBuf>,
    package_managers: Vec<PathBuf>,
}

/// Rule ids for what the command line protects.
const RULE_PATHS: u32 = 1;
const RULE_TREES: u32 = 2;

impl CommandLineSpec {
    fn from_args(args: &RunArgs) -> Self {
        let package_managers = if args.package_manager.is_empty() {
            PACKAGE_MANAGERS
                .iter()
                .map(PathBuf::from)
                .filter(|p| p.exists())
                .collect()
        } else {
            args.package_manager.clone()
        };
        Self {
            objects: args.protect.clone(),
            upgradable: args.upgradable.clone(),
            trees: args.protect_tree.clone(),
            trusted: args.trust.clone(),
            package_managers,
        }
    }

    fn resolve(&self) -> Result<KernelTables, ResolveError> {
        let mut t = KernelTables::default();
        t.rule(RULE_PATHS, RuleKind::Paths, true);
        t.rule(RULE_TREES, RuleKind::Trees, true);
        t.rule_names
            .insert(RULE_PATHS, "command-line-paths".to_owned());
        t.rule_names
            .insert(RULE_TREES, "command-line-trees".to_owned());
        for path in &self.objects {
            t.protect_object(path, RULE_PATHS, OPS_ALL, false)?;
        }
        for path in &self.upgradable {
            t.protect_object(path, RULE_PATHS, OPS_ALL, true)?;
        }
        for dir in &self.trees {
            t.protect_tree(dir, RULE_TREES, OPS_ALL)?;
        }
        for exe in &self.trusted {
            t.trust(exe, RULE_PATHS)?;
            t.trust(exe, RULE_TREES)?;
        }
        for exe in &self.package_managers {
            t.package_manager(exe)?;
        }
        Ok(t)
    }
}

pub fn run(args: RunArgs) -> u8 {
    let mut stopwatch = Stopwatch::start();
    let source = match &args.policy {
        Some(path) => match policy::load(path) {
            Ok(policy) => Source::policy(path.clone(), policy, EditableBaseline::new()),
            Err(e) => {
                eprintln!("{}", e.render());
                return exit::USAGE;
            }
        },
        None => Source::CommandLine(CommandLineSpec::from_args(&args)),
    };
    let windows_file = maintenance::state_file(&args.state_dir);
    let mut windows = match MaintenanceState::load(&windows_file) {
        Ok(windows) => windows,
        Err(e) => {
            eprintln!("rtguard: {e}");
            return exit::FAILURE;
        }
    };
    let expired = windows.expire(time::OffsetDateTime::now_utc());
    // The pin directory exists before the policy is resolved: the policy may protect it.
    let pins = args.pin.then(|| PinDir::new(&args.pin_dir));
    if let Some(pins) = &pins {
        if let Err(e) = pins.create() {
            eprintln!("rtguard: --pin: {e}");
            return exit::FAILURE;
        }
    }
    if !args.pin {
        // Only a daemon started with --pin takes earlier pins over; say they are there.
        if let Ok(n @ 1..) = PinDir::new(&args.pin_dir).pinned_links() {
            warn!(
                "{n} program(s) an earlier daemon pinned under {} keep enforcing its policy \
                 alongside this one; start with --pin to take them over, or stop this daemon \
                 and run `rtguard unload`",
                args.pin_dir.display()
            );
        }
    }
    let tables = match source.resolve(&windows) {
        Ok(tables) => tables,
        Err(e) => {
            eprintln!("rtguard: {e}");
            return exit::USAGE;
        }
    };
    stopwatch.lap("policy");
    let mut config = AuditLogConfig::new(&args.audit_log);
    if args.syslog {
        config = config.with_syslog();
    }
    let audit_log = match AuditLog::open(config) {
        Ok(log) => log,
        Err(e) => {
            eprintln!("rtguard: {e}");
            return exit::FAILURE;
        }
    };
    let mut trail = AuditTrail {
        log: audit_log,
        context: source.audit_context(),
        procfs: Procfs::default(),
    };
    let mode = match args.mode {
        ModeArg::Enforce => Mode::Enforce,
        ModeArg::Audit => Mode::Audit,
    };
    let status_file = args
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
        layers: Vec::new(),
        mechanism: None,
        file_hooks: None,
        tree_cache: None,
        protected: ProtectedCounts::default(),
        self_test: Vec::new(),
        identities: Vec::new(),
        events: EventCounters::default(),
        maintenance: Vec::new(),
        pinned: None,
        startup: Vec::new(),
    };

    let generation = match pins
        .as_ref()
        .map(|p| p.new_generation(&trail.context.policy.sha256))
        .transpose()
    {
        Ok(generation) => PendingGeneration(generation),
        Err(e) => {
            eprintln!("rtguard: --pin: {e}");
            return exit::FAILURE;
        }
    };
    let mut guard = match Guard::load(
        mode,
        args.file_hooks.into(),
        args.mechanism.into(),
        generation.0.as_ref(),
    ) {
        Ok(guard) => Some(guard),
        Err(e @ LoadError::EnforcementUnavailable { .. }) if args.allow_degraded => {
            eprintln!("rtguard: {e}");
            eprintln!("rtguard: running degraded (--allow-degraded): nothing is blocked");
            published.reason = e.to_string();
            None
        }
        Err(e @ LoadError::EnforcementUnavailable { .. }) => {
            eprintln!("rtguard: {e}");
            eprintln!(
                "rtguard: refusing to run without enforcement; pass --allow-degraded to run anyway"
            );
            return exit::ENFORCEMENT_UNAVAILABLE;
        }
        Err(e) => {
            eprintln!("rtguard: {e}");
            return exit::FAILURE;
        }
    };
    stopwatch.lap("programs");
    // Parsing the kernel's BTF (several MiB on recent kernels) left the heap large; the
    // daemon will not need that memory again.
    // SAFETY: malloc_trim only returns free heap memory to the kernel.
    unsafe { libc::malloc_trim(0) };

    // Prove enforcement on a canary before claiming it, with nothing else in the maps yet.
    let mut ring = None;
    if let Some(g) = guard.as_mut() {
        let mut events = match g.take_events() {
            Ok(events) => events,
            Err(e) => {
                eprintln!("rtguard: {e}");
                return exit::FAILURE;
            }
        };
        let canary_dir = status_file.parent().unwrap_or(Path::new("/run")).to_owned();
        let results = match self_test::run(g, &mut events, &canary_dir) {
            Ok(results) => results,
            Err(e) => {
                eprintln!("rtguard: self-test could not run: {e}");
                return exit::FAILURE;
            }
        };
        for result in &results {
            trail.self_test(result);
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
            if !args.allow_degraded {
                eprintln!(
                    "rtguard: refusing to claim enforcement; pass --allow-degraded to run anyway"
                );
                return exit::ENFORCEMENT_UNAVAILABLE;
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
            return exit::FAILURE;
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
    let daemon = Daemon {
        source,
        trail,
        status_file,
        published,
        windows,
        windows_file,
        pins: pins.map(|dir| (dir, generation)),
        package_operations: BTreeSet::new(),
        stopwatch,
        history: History::new(&args.state_dir),
        tables_generation: 0,
        not_proven,
    };
    // Where the kernel refuses the enforcing programs, observe the syscalls instead.
    let observer = if guard.is_none() {
        match Observer::load() {
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
        Ok(()) => exit::OK,
        Err(e) => {
            eprintln!("rtguard: {e:#}");
            exit::FAILURE
        }
    }
}

/// This start's pin generation. It is removed again unless the daemon gets as far as
/// pinning its links, so a start that fails leaves the earlier generation in force.
struct PendingGeneration(Option<Generation>);

impl PendingGeneration {
    /// The generation now holds pinned links: it stays when the daemon exits.
    fn keep(&mut self) {
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

/// The running guard's userspace: what it protects, where it records, what it publishes.
struct Daemon {
    source: Source,
    trail: AuditTrail,
    status_file: PathBuf,
    published: DaemonStatus,
    windows: MaintenanceState,
    windows_file: PathBuf,
    /// `--pin`: the pin directory and this start's generation.
    pins: Option<(PinDir, PendingGeneration)>,
    /// Processes (tgids) running a package command the exec layer allowed as an upgrade,
    /// an install or a removal in a window: once they have ended, the tables are resolved
    /// again.
    package_operations: BTreeSet<u32>,
    /// The start's steps, published once the daemon is ready.
    stopwatch: Stopwatch,
    /// Kept versions of the configuration files (`rtguard config`).
    history: History,
    /// Counts table installs, so the configuration watch follows the tables.
    tables_generation: u64,
    /// Why the start's self-test did not prove enforcement (empty when it did).
    not_proven: String,
}

impl Daemon {
    /// Fills the maps, announces readiness and streams decisions until told to stop.
    async fn serve(
        mut self,
        loaded: Option<(Guard, RingBuf<MapData>)>,
        tables: KernelTables,
    ) -> anyhow::Result<()> {
        let mut sigterm = signal(SignalKind::terminate()).context("installing SIGTERM handler")?;
        let mut sigint = signal(SignalKind::interrupt()).context("installing SIGINT handler")?;
        let mut sighup = signal(SignalKind::hangup()).context("installing SIGHUP handler")?;

        let Some((mut guard, ring)) = loaded else {
            self.published.startup = self.stopwatch.steps.clone();
            self.publish();
            notify(&format!(
                "READY=1\nSTATUS=degraded: {}",
                self.published.reason
            ))
            .ok();
            tokio::select! {
                _ = sigterm.recv() => {}
                _ = sigint.recv() => {}
            }
            info!("stopping");
            std::fs::remove_file(&self.status_file).ok();
            return Ok(());
        };

        self.install(&mut guard, tables)?;
        self.stopwatch.lap("maps");
        self.persist(&mut guard)?;
        if self.published.pinned.is_some() {
            self.stopwatch.lap("pins");
        }
        self.published.startup = self.stopwatch.steps.clone();
        self.published.layers = layers(guard.attached());
        self.published.mechanism = Some(guard.mechanism().as_str().to_owned());
        self.published.file_hooks = Some(guard.file_hooks().as_str().to_owned());
        self.published.tree_cache = Some(guard.tree_cache().to_string());
        let verb = match self.published.state {
            GuardState::Enforcing => "enforcing",
            GuardState::Auditing => "auditing (not blocking)",
            GuardState::Degraded => "degraded",
        };
        let counts = &self.published.protected;
        info!(
            inodes = counts.inodes,
            trees = counts.trees,
            mechanism = guard.mechanism().as_str(),
            file_hooks = guard.file_hooks().as_str(),
            startup_ms = self.stopwatch.total_ms(),
            "{verb}: {} protected inode(s) (objects and their ancestors), {} tree(s)",
            counts.inodes,
            counts.trees
        );
        self.publish();
        let started = format!("{verb} ({})", guard.mechanism_summary());
        self.trail.started(
            &started,
            &guard.mechanism_why().to_string(),
            self.published.state == GuardState::Enforcing,
        );
        notify(&format!("READY=1\nSTATUS={started}")).ok();

        // SAFETY: the ring buffer owns its map fd, which stays open and unchanged for as
        // long as the RingBuf lives, and the AsyncFd owns the RingBuf.
        let mut ring = unsafe { AsyncFd::register_with_interest(ring, Interest::READABLE) }
            .map_err(|e| e.into_parts().1)
            .context("polling the event ring buffer")?;
        let mut resync_at: Option<Instant> = None;
        // What the next resync follows, for the log.
        let mut resync_cause = "";
        let mut operations_at: Option<Instant> = None;
        let mut last_publish = Instant::now();
        // Configuration files: a version is kept after every change. Without inotify
        // the guard still protects them; only the history is missing.
        // SAFETY: the watcher owns its inotify fd, which stays open and unchanged for as
        // long as the watcher lives, and the AsyncFd owns the watcher.
        let mut config_watch = match Watcher::new().map_err(std::io::Error::from).and_then(|w| {
            unsafe { AsyncFd::register_with_interest(w, Interest::READABLE) }
                .map_err(|e| e.into_parts().1)
        }) {
            Ok(watch) => Some(watch),
            Err(e) => {
                warn!("configuration edits are not kept (rtguard config): {e}");
                None
            }
        };
        // Filesystems mounted on protected paths after the start (a data disk on
        // /var/lib/docker) are resolved again within the moment.
        // SAFETY: the table owns its file, which stays open and unchanged for as long as
        // the table lives, and the AsyncFd owns the table.
        let mut mount_watch = match MountTable::open().and_then(|table| {
            unsafe { AsyncFd::register_with_interest(table, Interest::PRIORITY) }
                .map_err(|e| e.into_parts().1)
        }) {
            Ok(watch) => Some(watch),
            Err(e) => {
                warn!("filesystems mounted on protected paths after start are not noticed: {e}");
                None
            }
        };
        let mut mounts_seen = mounts_on_protected(&mut mount_watch, guard.installed());
        // Mount changes the next resolution follows, for its audit record.
        let mut mounts_pending: Vec<String> = Vec::new();
        let mut watched_generation = None;
        loop {
            if watched_generation != Some(self.tables_generation) {
                if let Some(watch) = &mut config_watch {
                    watch
                        .get_mut()
                        .watch(editable_files(guard.installed()), &self.history);
                }
                watched_generation = Some(self.tables_generation);
            }
            let config_edit = async {
                match &mut config_watch {
                    Some(watch) => watch.readable_mut().await,
                    None => std::future::pending().await,
                }
            };
            let resync = async {
                match resync_at {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            let operations = async {
                match operations_at {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            let mount_change = async {
                match &mount_watch {
                    Some(watch) => watch
                        .ready(Interest::PRIORITY)
                        .await
                        .map(|mut r| r.clear_ready()),
                    None => std::future::pending().await,
                }
            };
            let expiry = until(self.windows.next_expiry());
            tokio::select! {
                ready = ring.readable_mut() => {
                    let mut ready = ready.context("waiting for events")?;
                    if self.drain_events(ready.get_inner_mut(), guard.installed()) && resync_at.is_none() {
                        resync_at = Some(Instant::now() + RESYNC_DELAY);
                        resync_cause = "the package manager replaced protected files";
                    }
                    if !self.package_operations.is_empty() {
                        operations_at.get_or_insert_with(|| Instant::now() + OPERATION_POLL);
                    }
                    ready.clear_ready();
                    self.account_drops(&guard)?;
                    // Counters change with every event; publish them at most once a second.
                    if last_publish.elapsed() >= Duration::from_secs(1) {
                        self.publish();
                        last_publish = Instant::now();
                    }
                }
                ready = config_edit => {
                    let mut ready = ready.context("waiting for configuration edits")?;
                    ready.get_inner_mut().drain(&self.history);
                    ready.clear_ready();
                }
                changed = mount_change => {
                    changed.context("watching the mount table")?;
                    let now = mounts_on_protected(&mut mount_watch, guard.installed());
                    if now != mounts_seen {
                        let points = changed_mount_points(&mounts_seen, &now);
                        info!("mount table changed on protected paths: {}", points.join(", "));
                        mounts_pending.extend(points);
                        mounts_seen = now;
                        resync_at = Some(Instant::now());
                        resync_cause = "a mount on a protected path";
                    }
                }
                _ = expiry => self.expire_windows(&mut guard)?,
                _ = resync => {
                    resync_at = None;
                    match self.source.resolve(&self.windows) {
                        Ok(tables) => {
                            self.install(&mut guard, tables)?;
                            // The protected paths may be others now.
                            mounts_seen = mounts_on_protected(&mut mount_watch, guard.installed());
                            info!("re-protected after {resync_cause}");
                            if !mounts_pending.is_empty() {
                                self.trail.mounts_changed(&std::mem::take(&mut mounts_pending));
                            }
                        }
                        // Mid-upgrade a file can be briefly absent; try again shortly.
                        Err(e) => {
                            warn!("re-resolving after an upgrade: {e}; retrying");
                            resync_at = Some(Instant::now() + RESYNC_DELAY);
                        }
                    }
                }
                _ = operations => {
                    // A package installed from scratch (after a removal, or for the first
                    // time) brings inodes no event points at: resolve again once the
                    // command that installs it has ended.
                    self.package_operations
                        .retain(|tgid| Path::new("/proc").join(tgid.to_string()).exists());
                    operations_at = if self.package_operations.is_empty() {
                        resync_at = Some(Instant::now());
                        resync_cause = "a package command the exec layer let through ended";
                        None
                    } else {
                        Some(Instant::now() + OPERATION_POLL)
                    };
                }
                _ = sighup.recv() => self.reload(&mut guard)?,
                _ = sigterm.recv() => break,
                _ = sigint.recv() => break,
            }
        }
        // Decisions made before the signal are still in the ring buffer: record them, and
        // account for any the kernel could not queue, so the log adds up.
        self.drain_events(ring.get_mut(), guard.installed());
        self.account_drops(&guard)?;
        self.trail.flush_drops();
        match &self.published.pinned {
            Some(dir) => info!(
                "stopping: the programs stay attached, pinned under {dir}; `rtguard unload` removes them"
            ),
            None => info!("stopping: detaching programs"),
        }
        drop(guard);
        std::fs::remove_file(&self.status_file).ok();
        Ok(())
    }

    /// Degraded mode: no enforcement; syscall tracepoints report destructive file
    /// syscalls, matched against the policy by path and recorded as would-block with
    /// `enforced: false`.
    async fn observe(mut self, mut observer: Observer, tables: KernelTables) -> anyhow::Result<()> {
        let mut sigterm = signal(SignalKind::terminate()).context("installing SIGTERM handler")?;
        let mut sigint = signal(SignalKind::interrupt()).context("installing SIGINT handler")?;
        let matcher = PathMatcher::from_tables(&tables);
        self.published.layers = vec![(
            "observed (not enforced)".to_owned(),
            observer.attached().iter().map(|t| t.to_string()).collect(),
        )];
        self.published.protected = ProtectedCounts {
            inodes: tables.inodes.len(),
            trees: tables.trees.len(),
            trusted_executables: tables.trusted.len(),
            rules: tables.rules.len(),
        };
        self.published.startup = self.stopwatch.steps.clone();
        self.publish();
        notify(&format!(
            "READY=1\nSTATUS=degraded: {}; observing syscalls, nothing is blocked",
            self.published.reason
        ))
        .ok();
        // SAFETY: as in serve(): the AsyncFd owns the RingBuf, which owns its map fd.
        let mut ring =
            unsafe { AsyncFd::register_with_interest(observer.take_events()?, Interest::READABLE) }
                .map_err(|e| e.into_parts().1)
                .context("polling the syscall ring buffer")?;
        let mut argv = ArgvCache::default();
        loop {
            tokio::select! {
                ready = ring.readable_mut() => {
                    let mut ready = ready.context("waiting for syscall events")?;
                    let before = self.published.events.would_block;
                    self.drain_observed(ready.get_inner_mut(), &matcher, &tables, &mut argv);
                    ready.clear_ready();
                    if self.published.events.would_block != before {
                        self.publish();
                    }
                }
                _ = sigterm.recv() => break,
                _ = sigint.recv() => break,
            }
        }
        self.drain_observed(ring.get_mut(), &matcher, &tables, &mut argv);
        info!("stopping: detaching tracepoints");
        drop(observer);
        std::fs::remove_file(&self.status_file).ok();
        Ok(())
    }

    fn drain_observed(
        &mut self,
        ring: &mut RingBuf<MapData>,
        matcher: &PathMatcher,
        tables: &KernelTables,
        argv: &mut ArgvCache,
    ) {
        while let Some(item) = ring.next() {
            let obs = match degraded::decode(&item) {
                Ok(obs) => obs,
                Err(e) => {
                    error!("undecodable syscall event: {e}");
                    continue;
                }
            };
            if !obs.argv.is_empty() {
                argv.remember(obs.tgid, obs.argv.clone());
                continue;
            }
            for (op, raw, dfd) in obs.operations() {
                let Some(path) = degraded::absolute(obs.tgid, dfd, raw) else {
                    continue;
                };
                let Some(rule_id) = matcher.check(op, &path) else {
                    continue;
                };
                let rule = tables
                    .rule_names
                    .get(&rule_id)
                    .map(String::as_str)
                    .unwrap_or("?");
                warn!(
                    decision = "would-block",
                    enforced = false,
                    op = op.as_str(),
                    rule,
                    path = %path.display(),
                    pid = obs.tgid,
                    comm = obs.comm,
                    "would-block {} of a protected object (not enforced: degraded mode)",
                    op.as_str()
                );
                self.published.events.would_block += 1;
                self.trail
                    .observed(op, rule, &path, &obs, argv.get(obs.tgid));
            }
        }
    }

    /// `--pin`: pins this daemon's links, then retires the generations earlier daemons
    /// left. Their programs are detached only now, once this daemon's are attached, proven
    /// and filled, so there is no moment without enforcement; what they queued while no
    /// daemon was reading is recorded.
    fn persist(&mut self, guard: &mut Guard) -> anyhow::Result<()> {
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
    fn retire(&mut self, old: &Generation, guard: &Guard) {
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
                let empty = KernelTables::default();
                let tables = if same_policy {
                    guard.installed()
                } else {
                    &empty
                };
                self.drain_events(&mut events.ring, tables);
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

    /// Writes the tables into the kernel maps and the counts into the status.
    /// Puts `tables` in the maps, proves the identities on every filesystem they hold
    /// objects on, and states what that comes to.
    fn install(&mut self, guard: &mut Guard, tables: KernelTables) -> Result<(), LoadError> {
        self.published.protected = ProtectedCounts {
            inodes: tables.inodes.len(),
            trees: tables.trees.len(),
            trusted_executables: tables.trusted.len(),
            rules: tables.rules.len(),
        };
        self.tables_generation += 1;
        guard.install(tables)?;
        let checks = self_test::identities(guard)?;
        for check in checks.iter().filter(|c| !c.passed) {
            error!("identity mismatch, objects on this filesystem are not protected: {check}");
        }
        self.published.identities = checks;
        self.assess(guard);
        // After the start, a change of state must show at once.
        if self.tables_generation > 1 {
            self.publish();
        }
        Ok(())
    }

    /// The state and its reason, from the self-test, the identity checks and the mode.
    /// Never "enforcing" while the kernel cannot match objects the policy protects.
    fn assess(&mut self, guard: &Guard) {
        let self_tested = self.not_proven.is_empty();
        let mismatched: Vec<String> = self
            .published
            .identities
            .iter()
            .filter(|c| !c.passed)
            .map(IdentityCheck::to_string)
            .collect();
        self.published.state = match (guard.mode(), self_tested && mismatched.is_empty()) {
            (_, false) => GuardState::Degraded,
            (Mode::Enforce, true) => GuardState::Enforcing,
            (Mode::Audit, true) => GuardState::Auditing,
        };
        let mechanism = guard.mechanism_summary();
        self.published.reason = if !self_tested {
            self.not_proven.clone()
        } else if !mismatched.is_empty() {
            format!(
                "{mechanism}; the kernel does not match the objects rtguard resolved on {} \
                 filesystem(s): {}",
                mismatched.len(),
                mismatched.join("; ")
            )
        } else {
            match self.published.state {
                GuardState::Enforcing => format!("{mechanism}; self-test passed"),
                GuardState::Auditing => {
                    format!("{mechanism}; audit mode: matches are reported, not refused")
                }
                GuardState::Degraded => "enforcement not proven".to_owned(),
            }
        };
    }

    /// SIGHUP: reads the policy and the maintenance windows again. A policy that does
    /// not parse or resolve is refused with its error and the running one stays in force;
    /// window changes apply either way.
    fn reload(&mut self, guard: &mut Guard) -> anyhow::Result<()> {
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
    fn reload_windows(&mut self) {
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
    fn expire_windows(&mut self, guard: &mut Guard) -> anyhow::Result<()> {
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

    /// Logs and records every queued decision. Returns whether the package manager
    /// replaced protected files, so that the new inodes must be protected. Package
    /// commands the exec layer let through are added to `package_operations`.
    fn drain_events(&mut self, ring: &mut RingBuf<MapData>, tables: &KernelTables) -> bool {
        let mut upgraded = false;
        while let Some(item) = ring.next() {
            let decision = match events::decode_record(&item) {
                Ok(Event::File(ev)) => {
                    log_decision(&ev, tables);
                    self.trail.file_decision(&ev, tables);
                    // A replaced configuration file is a new inode too: the kernel gave
                    // it the old one's protection, and the tables must learn it.
                    upgraded |= ev.decision == Decision::AllowedUpgrade
                        || (ev.decision == Decision::Edited && ev.op == FileOp::Replace);
                    ev.decision
                }
                Ok(Event::Exec(ev)) => {
                    log_exec_decision(&ev, tables);
                    self.trail.exec_decision(&ev, tables);
                    if ev.decision == Decision::AllowedUpgrade {
                        self.package_operations.insert(ev.tgid);
                    }
                    ev.decision
                }
                Ok(Event::Process(ev)) => {
                    log_process_decision(&ev, tables);
                    self.trail.process_decision(&ev, tables);
                    ev.decision
                }
                Err(e) => {
                    error!("undecodable event: {e}");
                    continue;
                }
            };
            let counters = &mut self.published.events;
            match decision {
                Decision::Blocked => counters.blocked += 1,
                Decision::WouldBlock => counters.would_block += 1,
                Decision::AllowedUpgrade => counters.allowed_upgrade += 1,
                Decision::Edited => counters.allowed_edit += 1,
            }
        }
        upgraded
    }

    /// Moves the kernel's count of events it could not queue into the audit log (carried
    /// by the next record) and the published counters.
    fn account_drops(&mut self, guard: &Guard) -> Result<(), LoadError> {
        let dropped = guard.dropped_events()?;
        if dropped > self.published.events.dropped {
            let lost = dropped - self.published.events.dropped;
            warn!(dropped = lost, "events lost: the ring buffer was full");
            self.trail.log.add_dropped(lost);
            self.published.events.dropped = dropped;
        }
        Ok(())
    }

    fn publish(&mut self) {
        self.published.updated = status::now();
        if let Err(e) = self.published.write(&self.status_file) {
            warn!(
                "cannot publish status to {}: {e}",
                self.status_file.display()
            );
        }
    }
}

/// The mounts on protected paths now; empty without a mount watch.
fn mounts_on_protected(
    watch: &mut Option<AsyncFd<MountTable>>,
    installed: &KernelTables,
) -> BTreeSet<Mount> {
    let Some(watch) = watch else {
        return BTreeSet::new();
    };
    match watch.get_mut().read() {
        Ok(mounts) => {
            let protected = installed.paths.values().map(PathBuf::as_path).collect();
            mount_table::on_protected(&mounts, &protected)
        }
        Err(e) => {
            warn!("reading {}: {e}", mount_table::MOUNTINFO);
            BTreeSet::new()
        }
    }
}

/// The mount points mounted on or unmounted from between two sets, each once, as
/// "/var/lib/docker (xfs mounted)".
fn changed_mount_points(before: &BTreeSet<Mount>, after: &BTreeSet<Mount>) -> Vec<String> {
    let mounted = after
        .difference(before)
        .map(|m| format!("{} ({} mounted)", m.point.display(), m.fstype));
    let unmounted = before
        .difference(after)
        .map(|m| format!("{} ({} unmounted)", m.point.display(), m.fstype));
    mounted.chain(unmounted).collect()
}

/// The audit log and what every record says about where it came from.
struct AuditTrail {
    log: AuditLog,
    context: RecordContext,
    procfs: Procfs,
}

impl AuditTrail {
    /// Appends a record; a failing log is reported and the daemon keeps guarding.
    fn write(&mut self, record: &AuditRecord) {
        if let Err(e) = self.log.append(record) {
            error!("audit log: {e}");
        }
    }

    /// A daemon-layer notice by this process, for the caller to complete.
    fn daemon_record(&self, op: &str, decision: audit::Decision) -> AuditRecord {
        self.context.record(
            Layer::Daemon,
            op,
            decision,
            Actor::this_process(&self.procfs),
        )
    }

    /// Filesystems were mounted on or unmounted from protected paths, and what those paths
    /// hold now is protected (written once the maps are).
    fn mounts_changed(&mut self, points: &[String]) {
        let record = self
            .daemon_record("mounts-changed", audit::Decision::Notice)
            .note(format!("{}; protection resolved again", points.join(", ")));
        self.write(&record);
    }

    /// The daemon's start: what it enforces with, and why that mechanism.
    fn started(&mut self, state: &str, mechanism_reason: &str, enforcing: bool) {
        let record = self
            .daemon_record("start", audit::Decision::Notice)
            .enforced(enforcing)
            .note(format!("{state}: {mechanism_reason}"));
        self.write(&record);
    }

    fn self_test(&mut self, result: &SelfTestResult) {
        let record = self
            .daemon_record(
                &format!("self-test-{}", result.layer),
                audit::Decision::SelfTest,
            )
            .enforced(result.passed)
            .note(result.detail.clone());
        self.write(&record);
    }

    /// Writes a notice carrying lost events that no decision record has carried yet.
    fn flush_drops(&mut self) {
        let pending = self.log.pending_dropped();
        if pending == 0 {
            return;
        }
        let record = self
            .context
            .dropped_events(Actor::this_process(&self.procfs), 0);
        self.write(&record);
    }

    /// A degraded-mode observation: would-block, not enforced.
    fn observed(
        &mut self,
        op: FileOp,
        rule: &str,
        path: &Path,
        obs: &degraded::Observed,
        argv: Option<&Vec<String>>,
    ) {
        let mut actor = Actor::new(obs.tgid, obs.uid, obs.comm.clone());
        actor.fill_from_proc(&self.procfs).ok();
        if actor.argv.is_empty() {
            if let Some(argv) = argv {
                // The process is gone; its arguments as execve saw them (the first few).
                actor.set_argv(argv.clone(), argv.len() >= EXEC_ARGS);
            }
        }
        let record = self
            .context
            .record(Layer::File, op.as_str(), audit::Decision::WouldBlock, actor)
            .rule(rule.to_owned())
            .enforced(false)
            .target(Target::default().with_path(path.display().to_string()));
        self.write(&record);
    }

    /// A record about a maintenance window opening, closing or expiring.
    fn window_notice(&mut self, op: &str, w: &MaintenanceWindow) {
        let record = self
            .daemon_record(op, audit::Decision::Notice)
            .target(Target::package(w.package.clone()))
            .note(format!(
                "{}; until {}; removal {}; opened by {}",
                w.reason,
                w.expires,
                if w.allow_removal {
                    "allowed"
                } else {
                    "refused"
                },
                w.opened_by
            ));
        self.write(&record);
    }

    /// A record about the daemon itself (reloads).
    fn notice(&mut self, op: &str, note: &str) {
        let record = self
            .daemon_record(op, audit::Decision::Notice)
            .note(note.to_owned());
        self.write(&record);
    }

    /// The actor of a file or process decision: what the kernel reported, the rest from
    /// /proc. The command line the kernel copied in the actor's own context is preferred
    /// when complete: the actor may be gone, or its pid reused, by the time /proc is read.
    fn kernel_actor(&self, reported: &KernelActor) -> Actor {
        let cmdline = &reported.cmdline;
        let mut actor = Actor::new(reported.tgid, reported.uid, reported.comm.clone())
            .with_ppid(reported.ppid)
            .with_cgroup_id(reported.cgroup_id);
        if !cmdline.args.is_empty() && !cmdline.truncated {
            actor.set_argv(cmdline.args.iter().cloned(), false);
        }
        actor.fill_from_proc(&self.procfs).ok();
        if actor.argv.is_empty() && !cmdline.args.is_empty() {
            actor.set_argv(cmdline.args.iter().cloned(), true);
        }
        actor
    }

    fn process_decision(&mut self, ev: &ProcessDecision, tables: &KernelTables) {
        let actor = self.kernel_actor(&ev.actor);
        let mut target =
            Target::inode(ev.target_exe).with_process(ev.target_pid, ev.target_comm.clone());
        if let Some(path) = tables.paths.get(&ev.target_exe) {
            target = target.with_path(path.display().to_string());
        }
        let mut record = self
            .context
            .record(Layer::Process, "kill", audit_decision(ev.decision), actor)
            .target(target)
            .signal(ev.signal);
        if let Some(rule) = tables.rule_names.get(&ev.rule_id) {
            record = record.rule(rule.clone());
        }
        self.write(&record);
    }

    fn exec_decision(&mut self, ev: &ExecDecision, tables: &KernelTables) {
        // The kernel's argv is the command being executed; procfs would show the caller's.
        let mut actor = Actor::new(ev.tgid, ev.uid, ev.comm.clone())
            .with_ppid(ev.ppid)
            .with_cgroup_id(ev.cgroup_id)
            .with_argv(ev.argv.iter().cloned(), ev.argv_truncated);
        actor.fill_from_proc(&self.procfs).ok();
        let mut target = Target::inode(ev.exe);
        if !ev.filename.is_empty() {
            target = target.with_path(ev.filename.clone());
        }
        let verb = ev.verb().unwrap_or_default().to_owned();
        // What only an open maintenance window let through says so.
        let decision = match audit_decision(ev.decision) {
            audit::Decision::AllowedUpgrade if ev.in_window() => {
                audit::Decision::AllowedMaintenance
            }
            decision => decision,
        };
        let mut record = self
            .context
            .record(Layer::Exec, "exec", decision, actor)
            .target(target)
            .exec(verb, ev.object(&tables.exec.object_names));
        if let Some(reason) = ev.reason() {
            record = record.note(reason.as_str());
        }
        if let Some(rule) = tables.rule_names.get(&ev.rule_id()) {
            record = record.rule(rule.clone());
        }
        self.write(&record);
    }

    fn file_decision(&mut self, ev: &FileDecision, tables: &KernelTables) {
        // The process may be gone already; the kernel's fields stay.
        let actor = self.kernel_actor(&ev.actor);
        let mut target = Target::inode(ev.target);
        if let Some(path) = ev.path(tables) {
            target = target.with_path(path.display().to_string());
        }
        // An edit is recorded as one: the kernel's operation (a write-open, truncation or
        // replacement) goes in the note.
        let (op, note) = match ev.decision {
            Decision::Edited => ("edit", Some(ev.op.as_str())),
            _ => (ev.op.as_str(), None),
        };
        let mut record = self
            .context
            .record(Layer::File, op, audit_decision(ev.decision), actor)
            .target(target);
        if let Some(note) = note {
            record = record.note(note);
        }
        if let Some(rule) = tables.rule_names.get(&ev.rule_id) {
            record = record.rule(rule.clone());
        }
        self.write(&record);
    }
}

/// Sleeps until `at` (a window's expiry), or forever.
async fn until(at: Option<time::OffsetDateTime>) {
    match at {
        Some(at) => {
            let left = at - time::OffsetDateTime::now_utc();
            tokio::time::sleep(left.try_into().unwrap_or(Duration::ZERO)).await
        }
        None => std::future::pending().await,
    }
}

fn log_exec_decision(ev: &ExecDecision, tables: &KernelTables) {
    let rule = tables
        .rule_names
        .get(&ev.rule_id())
        .map(String::as_str)
        .unwrap_or("?");
    let mut command = audit::record::shell_join(&ev.argv);
    if ev.argv_truncated {
        command.push_str(" …");
    }
    warn!(
        decision = ev.decision.as_str(),
        rule,
        reason = ev.reason().map_or("?", |r| r.as_str()),
        verb = ev.verb().unwrap_or(""),
        object = ev.object(&tables.exec.object_names).unwrap_or_default(),
        file = ev.filename,
        pid = ev.tgid,
        ppid = ev.ppid,
        uid = ev.uid,
        comm = ev.comm,
        "{} exec: {command}",
        ev.decision.as_str()
    );
}

/// Attached LSM programs grouped by layer, as `rtguard status` lists them.
fn layers(attached: &[&'static str]) -> Vec<(String, Vec<String>)> {
    let layer_of = |hook: &str| match hook {
        "bprm_check_security" => "exec",
        "task_kill" => "process",
        _ => "file",
    };
    ["file", "exec", "process"]
        .into_iter()
        .map(|layer| {
            let hooks = attached
                .iter()
                .filter(|h| layer_of(h) == layer)
                .map(|h| h.to_string())
                .collect();
            (layer.to_owned(), hooks)
        })
        .collect()
}

/// The configuration files the tables protect: editable regular files, by path.
fn editable_files(tables: &KernelTables) -> BTreeSet<PathBuf> {
    tables
        .inodes
        .iter()
        .filter(|(_, p)| p.flags & FILE_EDITABLE != 0)
        .filter_map(|(key, _)| tables.paths.get(key))
        .filter(|path| std::fs::symlink_metadata(path).is_ok_and(|m| m.is_file()))
        .cloned()
        .collect()
}

/// The audit trail's word for a kernel decision.
fn audit_decision(decision: Decision) -> audit::Decision {
    match decision {
        Decision::Blocked => audit::Decision::Blocked,
        Decision::WouldBlock => audit::Decision::WouldBlock,
        Decision::AllowedUpgrade => audit::Decision::AllowedUpgrade,
        Decision::Edited => audit::Decision::AllowedEdit,
    }
}

fn log_process_decision(ev: &ProcessDecision, tables: &KernelTables) {
    let rule = tables.rule_names.get(&ev.rule_id);
    warn!(
        decision = ev.decision.as_str(),
        rule = rule.map_or("?", String::as_str),
        signal = ev.signal,
        target_pid = ev.target_pid,
        target_comm = ev.target_comm,
        pid = ev.actor.tgid,
        comm = ev.actor.comm,
        "{} signal {} to {} [{}]",
        ev.decision.as_str(),
        ev.signal,
        ev.target_comm,
        ev.target_pid
    );
}

fn log_decision(ev: &FileDecision, tables: &KernelTables) {
    let path = ev
        .path(tables)
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| "?".to_owned());
    let exe = Path::new("/proc")
        .join(ev.actor.tgid.to_string())
        .join("exe")
        .read_link()
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    let rule = tables
        .rule_names
        .get(&ev.rule_id)
        .map(String::as_str)
        .unwrap_or("?");
    if ev.decision == Decision::Edited {
        info!(
            op = ev.op.as_str(),
            rule,
            pid = ev.actor.tgid,
            comm = ev.actor.comm,
            exe,
            "configuration edited: {path}"
        );
        return;
    }
    warn!(
        decision = ev.decision.as_str(),
        op = ev.op.as_str(),
        rule,
        path,
        dev = format_args!("{}:{}", ev.target.major(), ev.target.minor()),
        ino = ev.target.ino,
        pid = ev.actor.tgid,
        ppid = ev.actor.ppid,
        uid = ev.actor.uid,
        comm = ev.actor.comm,
        exe,
        cgroup = ev.actor.cgroup_id,
        "{} {} of a protected object",
        ev.decision.as_str(),
        ev.op.as_str()
    );
}
