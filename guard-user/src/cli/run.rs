//! `rtguard run`: load, protect, report, and stay in the foreground.

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use anyhow::Context as _;
use aya::maps::{MapData, RingBuf};
use clap::{Args, ValueEnum};
use guard_common::{file::OPS_ALL, rule::RuleKind, Decision};
use tokio::{
    io::{unix::AsyncFd, Interest},
    signal::unix::{signal, SignalKind},
    time::Instant,
};
use tracing::{error, info, warn};

use super::exit;
use crate::{
    audit::{self, Actor, AuditLog, AuditLogConfig, Layer, PolicyRef, RecordContext, Target},
    events::{self, Event, ExecDecision, FileDecision, ProcessDecision},
    loader::{
        tables::PACKAGE_MANAGERS, FileHooks, Guard, HookChoice, KernelTables, LoadError, Mode,
    },
    notify::notify,
    paths,
    policy::{self, Policy},
    proc::Procfs,
    resolve::{self, ResolveError, ResolveOptions},
};

/// After the package manager replaced a protected file, wait this long for it to finish
/// the batch, then protect the new inodes. dpkg renames files one by one; waiting a
/// little lets one re-resolution cover many.
const RESYNC_DELAY: Duration = Duration::from_millis(200);

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
    Policy(Box<Policy>),
    CommandLine(CommandLineSpec),
}

impl Source {
    fn resolve(&self) -> Result<KernelTables, ResolveError> {
        match self {
            Source::Policy(policy) => {
                let options = ResolveOptions {
                    root: PathBuf::from("/"),
                    ..Default::default()
                };
                let set = resolve::resolve(policy, &options)?;
                let mut tables = KernelTables::from_rule_set(&set)?;
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
            Source::Policy(policy) => RecordContext::new(
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
    let source = match &args.policy {
        Some(path) => match policy::load(path) {
            Ok(policy) => Source::Policy(Box::new(policy)),
            Err(e) => {
                eprintln!("{}", e.render());
                return exit::USAGE;
            }
        },
        None => Source::CommandLine(CommandLineSpec::from_args(&args)),
    };
    let tables = match source.resolve() {
        Ok(tables) => tables,
        Err(e) => {
            eprintln!("rtguard: {e}");
            return exit::USAGE;
        }
    };
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
    let mode = match args.mode {
        ModeArg::Enforce => Mode::Enforce,
        ModeArg::Audit => Mode::Audit,
    };

    let guard = match Guard::load(mode, args.file_hooks.into()) {
        Ok(guard) => Some(guard),
        Err(e @ LoadError::LsmUnavailable { .. }) if args.allow_degraded => {
            eprintln!("rtguard: {e}");
            eprintln!("rtguard: running degraded (--allow-degraded): nothing is blocked");
            None
        }
        Err(e @ LoadError::LsmUnavailable { .. }) => {
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
    let trail = AuditTrail {
        log: audit_log,
        context: source.audit_context(),
        procfs: Procfs::default(),
    };
    match runtime.block_on(serve(guard, source, tables, trail)) {
        Ok(()) => exit::OK,
        Err(e) => {
            eprintln!("rtguard: {e:#}");
            exit::FAILURE
        }
    }
}

/// Fills the maps, announces readiness and streams decisions until told to stop.
async fn serve(
    guard: Option<Guard>,
    source: Source,
    tables: KernelTables,
    mut trail: AuditTrail,
) -> anyhow::Result<()> {
    let mut sigterm = signal(SignalKind::terminate()).context("installing SIGTERM handler")?;
    let mut sigint = signal(SignalKind::interrupt()).context("installing SIGINT handler")?;

    let Some(mut guard) = guard else {
        notify("READY=1\nSTATUS=degraded: enforcement unavailable").ok();
        tokio::select! {
            _ = sigterm.recv() => {}
            _ = sigint.recv() => {}
        }
        info!("stopping");
        return Ok(());
    };

    let (objects, trees) = (tables.inodes.len(), tables.trees.len());
    guard.install(tables)?;
    let verb = match guard.mode() {
        Mode::Enforce => "enforcing",
        Mode::Audit => "auditing (not blocking)",
    };
    info!(
        inodes = objects,
        trees,
        file_hooks = guard.file_hooks().as_str(),
        "{verb}: {objects} protected inode(s) (objects and their ancestors), {trees} tree(s)"
    );
    notify(&format!("READY=1\nSTATUS={verb}")).ok();

    // SAFETY: the ring buffer owns its map fd, which stays open and unchanged for as long
    // as the RingBuf lives, and the AsyncFd owns the RingBuf.
    let mut ring =
        unsafe { AsyncFd::register_with_interest(guard.take_events()?, Interest::READABLE) }
            .map_err(|e| e.into_parts().1)
            .context("polling the event ring buffer")?;
    let mut reported_drops = 0u64;
    let mut resync_at: Option<Instant> = None;
    loop {
        let resync = async {
            match resync_at {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            ready = ring.readable_mut() => {
                let mut ready = ready.context("waiting for events")?;
                if drain_events(ready.get_inner_mut(), &guard, &mut trail) {
                    resync_at.get_or_insert_with(|| Instant::now() + RESYNC_DELAY);
                }
                ready.clear_ready();
                let dropped = guard.dropped_events()?;
                if dropped > reported_drops {
                    warn!(dropped = dropped - reported_drops, "events lost: the ring buffer was full");
                    trail.log.add_dropped(dropped - reported_drops);
                    reported_drops = dropped;
                }
            }
            _ = resync => {
                resync_at = None;
                match source.resolve() {
                    Ok(tables) => {
                        guard.install(tables)?;
                        info!("re-protected after the package manager replaced protected files");
                    }
                    // Mid-upgrade a file can be briefly absent; try again shortly.
                    Err(e) => {
                        warn!("re-resolving after an upgrade: {e}; retrying");
                        resync_at = Some(Instant::now() + RESYNC_DELAY);
                    }
                }
            }
            _ = sigterm.recv() => break,
            _ = sigint.recv() => break,
        }
    }
    // Decisions made before the signal are still in the ring buffer: record them.
    drain_events(ring.get_mut(), &guard, &mut trail);
    info!("stopping: detaching programs");
    drop(guard);
    Ok(())
}

/// Logs and records every queued decision. Returns whether the package manager replaced
/// protected files, so that the new inodes must be protected.
fn drain_events(ring: &mut RingBuf<MapData>, guard: &Guard, trail: &mut AuditTrail) -> bool {
    let mut upgraded = false;
    while let Some(item) = ring.next() {
        match events::decode_record(&item) {
            Ok(Event::File(ev)) => {
                log_decision(&ev, guard.installed());
                trail.file_decision(&ev, guard.installed());
                upgraded |= ev.decision == Decision::AllowedUpgrade;
            }
            Ok(Event::Exec(ev)) => {
                log_exec_decision(&ev, guard.installed());
                trail.exec_decision(&ev, guard.installed());
            }
            Ok(Event::Process(ev)) => {
                let rule = guard.installed().rule_names.get(&ev.rule_id);
                warn!(
                    decision = ev.decision.as_str(),
                    rule = rule.map_or("?", String::as_str),
                    signal = ev.signal,
                    target_pid = ev.target_pid,
                    target_comm = ev.target_comm,
                    pid = ev.tgid,
                    comm = ev.comm,
                    "{} signal {} to {} [{}]",
                    ev.decision.as_str(),
                    ev.signal,
                    ev.target_comm,
                    ev.target_pid
                );
                trail.process_decision(&ev, guard.installed());
            }
            Err(e) => error!("undecodable event: {e}"),
        }
    }
    upgraded
}

/// The audit log and what every record says about where it came from.
struct AuditTrail {
    log: AuditLog,
    context: RecordContext,
    procfs: Procfs,
}

impl AuditTrail {
    fn process_decision(&mut self, ev: &ProcessDecision, tables: &KernelTables) {
        let mut actor = Actor::new(ev.tgid, ev.uid, ev.comm.clone())
            .with_ppid(ev.ppid)
            .with_cgroup_id(ev.cgroup_id);
        actor.fill_from_proc(&self.procfs).ok();
        let mut target =
            Target::inode(ev.target_exe).with_process(ev.target_pid, ev.target_comm.clone());
        if let Some(path) = tables.paths.get(&ev.target_exe) {
            target = target.with_path(path.display().to_string());
        }
        let decision = match ev.decision {
            Decision::Blocked => audit::Decision::Blocked,
            Decision::WouldBlock => audit::Decision::WouldBlock,
            Decision::AllowedUpgrade => audit::Decision::AllowedUpgrade,
        };
        let mut record = self
            .context
            .record(Layer::Process, "kill", decision, actor)
            .target(target)
            .signal(ev.signal);
        if let Some(rule) = tables.rule_names.get(&ev.rule_id) {
            record = record.rule(rule.clone());
        }
        if let Err(e) = self.log.append(&record) {
            error!("audit log: {e}");
        }
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
        let decision = match ev.decision {
            Decision::Blocked => audit::Decision::Blocked,
            Decision::WouldBlock => audit::Decision::WouldBlock,
            Decision::AllowedUpgrade => audit::Decision::AllowedUpgrade,
        };
        let verb = ev.verb().unwrap_or_default().to_owned();
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
        if let Err(e) = self.log.append(&record) {
            error!("audit log: {e}");
        }
    }

    fn file_decision(&mut self, ev: &FileDecision, tables: &KernelTables) {
        let mut actor = Actor::new(ev.tgid, ev.uid, ev.comm.clone())
            .with_ppid(ev.ppid)
            .with_cgroup_id(ev.cgroup_id);
        // The process may be gone already; the kernel's fields stay.
        actor.fill_from_proc(&self.procfs).ok();
        let mut target = Target::inode(ev.target);
        if let Some(path) = ev.path(tables) {
            target = target.with_path(path.display().to_string());
        }
        let decision = match ev.decision {
            Decision::Blocked => audit::Decision::Blocked,
            Decision::WouldBlock => audit::Decision::WouldBlock,
            Decision::AllowedUpgrade => audit::Decision::AllowedUpgrade,
        };
        let mut record = self
            .context
            .record(Layer::File, ev.op.as_str(), decision, actor)
            .target(target);
        if let Some(rule) = tables.rule_names.get(&ev.rule_id) {
            record = record.rule(rule.clone());
        }
        if let Err(e) = self.log.append(&record) {
            error!("audit log: {e}");
        }
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

fn log_decision(ev: &FileDecision, tables: &KernelTables) {
    let path = ev
        .path(tables)
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| "?".to_owned());
    let exe = Path::new("/proc")
        .join(ev.tgid.to_string())
        .join("exe")
        .read_link()
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    let rule = tables
        .rule_names
        .get(&ev.rule_id)
        .map(String::as_str)
        .unwrap_or("?");
    warn!(
        decision = ev.decision.as_str(),
        op = ev.op.as_str(),
        rule,
        path,
        dev = format_args!("{}:{}", ev.target.major(), ev.target.minor()),
        ino = ev.target.ino,
        pid = ev.tgid,
        ppid = ev.ppid,
        uid = ev.uid,
        comm = ev.comm,
        exe,
        cgroup = ev.cgroup_id,
        "{} {} of a protected object",
        ev.decision.as_str(),
        ev.op.as_str()
    );
}
