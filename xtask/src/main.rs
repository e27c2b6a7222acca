//! `cargo xtask`: everything a developer or CI runs, from a fresh machine on.
//!
//! Every command first runs `setup`, which is idempotent and takes seconds once done, so
//! `cargo xtask test` and `cargo xtask run` work on a machine that has nothing installed.

mod bench;
mod build;
mod host_guest;
mod kernels;
mod rootfs;
mod setup;
mod toolchain;
mod vm;

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{bail, Context as _, Result};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "cargo xtask", about = "rtguard developer tasks")]
struct Cli {
    #[command(subcommand)]
    command: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Install what building and testing need: nightly rust-src, LLVM 22 and bpf-linker,
    /// qemu, debootstrap, the Debian VM kernels and rootfs (cached under target/vm).
    Setup,
    /// Build the release `rtguard` binary with the kernel programs embedded.
    Build,
    /// Build the Debian package (target/debian/rtguard_*.deb).
    Deb,
    /// Run the guard in the foreground on this host. Where the kernel cannot enforce it
    /// says so and keeps running degraded. Extra arguments go to `rtguard run`.
    Run {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Boot each VM kernel once and run the enforcement tests inside it.
    VmTest {
        #[arg(long, value_enum, default_value_t = vm::KernelChoice::All)]
        kernel: vm::KernelChoice,
        /// Run only the tests whose names contain this (libtest's filter), e.g. `exec_layer`.
        filter: Option<String>,
    },
    /// Boot the host guest (systemd as pid 1, Docker running a container, rtguard from
    /// its .deb) and run its tests: the seed incident against the running stack, before
    /// and after a reboot.
    HostTest {
        #[arg(long, value_enum, default_value_t = host_guest::DEFAULT_KERNEL)]
        kernel: vm::KernelChoice,
    },
    /// Unit and host tests, then the VM tests on every kernel and the host guest on one.
    Test,
    /// Replay the seed incident (the uninstaller) in the VM against rtguard with the
    /// production policy, step by step, with each audit record.
    Demo {
        #[arg(long, value_enum, default_value_t = vm::KernelChoice::V6_12)]
        kernel: vm::KernelChoice,
    },
    /// Measure what rtguard costs in the VMs: each workload without and with it, the
    /// kernel's per-program accounting, memory and start-up time. Writes
    /// docs/benchmarks.md, docs/benchmarks.png and docs/benchmarks.json.
    Bench {
        /// The boots to measure on: one, several (`--kernel 6.1 --kernel 6.12`), or all.
        #[arg(long, value_enum, default_values_t = [vm::KernelChoice::All])]
        kernel: Vec<vm::KernelChoice>,
        /// Rounds per workload; each runs it without rtguard, with programs that decide
        /// nothing on its hooks, and with it.
        #[arg(long, default_value_t = 7)]
        rounds: u32,
        /// Only render the report and chart again from docs/benchmarks.json.
        #[arg(long)]
        render: bool,
    },
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    let root = workspace_root();
    std::env::set_current_dir(&root)?;
    match cli.command {
        Task::Setup => setup::ensure(&root),
        Task::Build => {
            setup::ensure(&root)?;
            build::rtguard(&root).map(drop)
        }
        Task::Deb => {
            setup::ensure(&root)?;
            let deb = build::deb(&root)?;
            println!("{}", deb.display());
            Ok(())
        }
        Task::Run { args } => {
            setup::ensure(&root)?;
            let rtguard = build::rtguard(&root)?;
            let mut cmd = Command::new(rtguard);
            cmd.arg("run");
            if args.is_empty() {
                cmd.args(build::default_run_args(&root));
            } else {
                cmd.args(args);
            }
            let status = cmd.status().context("starting rtguard")?;
            std::process::exit(status.code().unwrap_or(1));
        }
        Task::VmTest { kernel, filter } => {
            setup::ensure(&root)?;
            vm::test(&root, kernel, filter.as_deref())
        }
        Task::HostTest { kernel } => {
            setup::ensure(&root)?;
            host_guest::test(&root, kernel)
        }
        Task::Demo { kernel } => {
            setup::ensure(&root)?;
            vm::demo(&root, kernel)
        }
        Task::Bench { render: true, .. } => bench::render_saved(&root),
        Task::Bench { kernel, rounds, .. } => {
            setup::ensure(&root)?;
            let command = std::iter::once("cargo xtask".to_owned())
                .chain(std::env::args().skip(1))
                .collect::<Vec<_>>()
                .join(" ");
            bench::bench(&root, &kernel, rounds, command)
        }
        Task::Test => {
            setup::ensure(&root)?;
            step("unit and host tests");
            run(Command::new("cargo").args(["test", "--workspace", "--release"]))?;
            vm::test(&root, vm::KernelChoice::All, None)?;
            host_guest::test(&root, host_guest::DEFAULT_KERNEL)
        }
    }
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .to_owned()
}

/// Prints a section header, so a long CI log reads as a list of steps.
pub fn step(what: &str) {
    println!("\n==> {what}");
}

/// Runs a command to completion, failing with the command line if it fails.
pub fn run(cmd: &mut Command) -> Result<()> {
    let status = cmd.status().with_context(|| format!("starting {cmd:?}"))?;
    if !status.success() {
        bail!("{cmd:?} failed: {status}");
    }
    Ok(())
}

/// Runs a command and returns its stdout; fails with its stderr.
pub fn output(cmd: &mut Command) -> Result<String> {
    let out = cmd.output().with_context(|| format!("starting {cmd:?}"))?;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed: {}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8(out.stdout)?)
}
