//! `rtguard run`: the daemon's arguments. The daemon itself is [`crate::daemon`].

use std::path::PathBuf;

use clap::{Args, ValueEnum};

use super::exit;
use crate::{
    daemon::{self, Options, Outcome},
    host::paths,
    loader::{FileHooks, HookChoice, Mechanism, MechanismChoice, Mode},
    tables::CommandLinePaths,
};

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

    /// How often to prove enforcement again on the canaries while running (and after
    /// every reload), e.g. 60s, 5m. A failed proof turns `rtguard status` non-zero.
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = proof_interval)]
    pub proof_interval: std::time::Duration,
}

/// `--proof-interval`: a duration of at least one second.
fn proof_interval(text: &str) -> Result<std::time::Duration, String> {
    let interval = humantime::parse_duration(text).map_err(|e| e.to_string())?;
    if interval < std::time::Duration::from_secs(1) {
        return Err("at least 1s".to_owned());
    }
    Ok(interval)
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

impl From<RunArgs> for Options {
    fn from(args: RunArgs) -> Self {
        let package_managers = if args.package_manager.is_empty() {
            CommandLinePaths::default_package_managers()
        } else {
            args.package_manager
        };
        Options {
            policy: args.policy,
            command_line: CommandLinePaths {
                objects: args.protect,
                upgradable: args.upgradable,
                trees: args.protect_tree,
                trusted: args.trust,
                package_managers,
            },
            mode: match args.mode {
                ModeArg::Enforce => Mode::Enforce,
                ModeArg::Audit => Mode::Audit,
            },
            file_hooks: args.file_hooks.into(),
            mechanism: args.mechanism.into(),
            allow_degraded: args.allow_degraded,
            audit_log: args.audit_log,
            syslog: args.syslog,
            state_dir: args.state_dir,
            pin: args.pin,
            pin_dir: args.pin_dir,
            status_file: args.status_file,
            proof_interval: args.proof_interval,
        }
    }
}

pub fn run(args: RunArgs) -> u8 {
    match daemon::run(args.into()) {
        Outcome::Stopped => exit::OK,
        Outcome::BadInput => exit::USAGE,
        Outcome::Failed => exit::FAILURE,
        Outcome::EnforcementUnavailable => exit::ENFORCEMENT_UNAVAILABLE,
    }
}
