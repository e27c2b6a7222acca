//! `cargo xtask bench`: what always-on protection costs, measured in the VMs.
//!
//! One boot per kernel runs guard-user's `overhead` benchmark (see its main.rs for what it
//! measures), which prints [`record`] lines on the console. They are kept as they came in
//! docs/benchmarks.json, and rendered as docs/benchmarks.md and docs/benchmarks.png.

#[path = "../../../guard-user/benches/overhead/record.rs"]
pub mod record;

mod chart;
mod report;

use std::{fs, path::Path};

use anyhow::{bail, Context as _, Result};
use serde::{Deserialize, Serialize};

use crate::{
    build, step,
    vm::{self, Boot, KernelChoice, Payload},
};
use record::{Accounting, Memory, Record, Run, Setup, Start};

/// The raw results, the report and its chart, relative to the workspace root.
pub const RESULTS: &str = "docs/benchmarks.json";
pub const REPORT: &str = "docs/benchmarks.md";
pub const CHART: &str = "docs/benchmarks.png";

/// The guest's clock counts emulated instructions, one nanosecond each, instead of
/// following the host's: what the guest measures no longer moves with the host's load
/// (other VMs, builds), and a run repeats to within a fraction of a percent.
pub const ICOUNT: &[&str] = &["-icount", "shift=0,sleep=off,align=off"];
/// One vCPU: with -icount, Linux 6.1 hangs bringing up a second one.
const CPUS: u32 = 1;

/// Everything one `cargo xtask bench` measured.
#[derive(Debug, Serialize, Deserialize)]
pub struct Results {
    /// The command line that produced them.
    pub command: String,
    /// UTC, RFC 3339.
    pub date: String,
    /// Where they were measured: host CPU, qemu version and machine.
    pub machine: String,
    pub kernels: Vec<KernelResults>,
}

/// What one boot reported.
#[derive(Debug, Serialize, Deserialize)]
pub struct KernelResults {
    /// The Debian kernel package.
    pub package: String,
    pub setup: Setup,
    pub runs: Vec<Run>,
    pub starts: Vec<Start>,
    pub accounting: Vec<Accounting>,
    pub memory: Vec<Memory>,
}

impl KernelResults {
    fn from_records(package: String, records: Vec<Record>) -> Result<Self> {
        let mut setup = None;
        let (mut runs, mut starts, mut accounting, mut memory) = (vec![], vec![], vec![], vec![]);
        for r in records {
            match r {
                Record::Setup(s) => setup = Some(s),
                Record::Run(r) => runs.push(r),
                Record::Start(s) => starts.push(s),
                Record::Accounting(a) => accounting.push(a),
                Record::Memory(m) => memory.push(m),
            }
        }
        Ok(Self {
            package,
            setup: setup.context("the guest reported no setup")?,
            runs,
            starts,
            accounting,
            memory,
        })
    }
}

/// Measures on each chosen kernel, then writes the results, the report and the chart.
pub fn bench(root: &Path, choice: &[KernelChoice], rounds: u32, command: String) -> Result<()> {
    let rtguard = build::rtguard(root)?;
    let runner = build::bench_runner()?;
    step("assemble VM initramfs");
    let run_dir = vm::run_dir(root)?;
    let payload = Payload {
        rtguard: &rtguard,
        executables: vec![("bench/overhead", runner.as_path())],
        files: vec![("bench/args", format!("--rounds {rounds}"))],
        deb: None,
    };
    let overlay = vm::overlay_cpio(root, &run_dir, &payload)?;
    let kernels = boot_kernels(root, &run_dir, &overlay, choice);
    // The packed binaries are rebuilt next time; the guest logs stay.
    fs::remove_dir_all(run_dir.join("tests-overlay")).ok();
    fs::remove_file(&overlay).ok();
    let kernels = kernels?;

    let results = Results {
        command,
        date: time::OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc3339)?,
        machine: machine(),
        kernels,
    };
    fs::write(
        root.join(RESULTS),
        serde_json::to_string_pretty(&results)? + "\n",
    )?;
    render(root, &results)
}

/// One boot per chosen kernel; the records each guest printed.
fn boot_kernels(
    root: &Path,
    run_dir: &Path,
    overlay: &Path,
    choice: &[KernelChoice],
) -> Result<Vec<KernelResults>> {
    let mut kernels = Vec::new();
    let mut boots: Vec<_> = KernelChoice::All.boots();
    boots.retain(|b| {
        choice
            .iter()
            .any(|c| c.boots().iter().any(|d| d.name == b.name))
    });
    for vm_boot in boots {
        let (kernel, initramfs) = vm::initramfs(root, run_dir, &vm_boot, overlay, "bench")?;
        step(&format!("benchmark on {}", kernel.package));
        let how = Boot {
            cmdline: " rtguard.bench",
            tag: true,
            qemu_args: ICOUNT,
            cpus: CPUS,
            reboots: false,
        };
        let outcome = vm::boot_with(run_dir, &vm_boot, &kernel, &initramfs, &how)?;
        fs::remove_file(&initramfs).ok();
        if outcome.exit != Some(0) {
            bail!(
                "the benchmark on {} ended with {:?}; log: {}",
                kernel.package,
                outcome.exit,
                outcome.log.display()
            );
        }
        let console = fs::read_to_string(&outcome.log)?;
        let mut records = Vec::new();
        for line in console.lines() {
            if let Some(parsed) = Record::parse(line) {
                records.push(parsed.with_context(|| format!("unreadable record: {line}"))?);
            }
        }
        kernels.push(KernelResults::from_records(kernel.package, records)?);
    }
    Ok(kernels)
}

/// Renders the report and the chart from the saved results (after editing the notes).
pub fn render_saved(root: &Path) -> Result<()> {
    let text = fs::read_to_string(root.join(RESULTS))
        .with_context(|| format!("reading {RESULTS}; run `cargo xtask bench` first"))?;
    render(root, &serde_json::from_str(&text)?)
}

fn render(root: &Path, results: &Results) -> Result<()> {
    step("write the report");
    let report_path = root.join(REPORT);
    let previous = fs::read_to_string(&report_path).unwrap_or_default();
    let summaries = report::summarise(results);
    chart::draw(&root.join(CHART), results, &summaries)?;
    fs::write(
        &report_path,
        report::markdown(results, &summaries, &previous),
    )?;
    print!("{}", report::summary_table(&summaries));
    println!("{}, {}, {}", REPORT, CHART, RESULTS);
    Ok(())
}

/// The host CPU and the emulator, in one line.
fn machine() -> String {
    let cpu = fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|v| v.trim_start_matches([' ', '\t', ':']).to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".to_owned());
    let qemu = crate::output(std::process::Command::new("qemu-system-x86_64").arg("--version"))
        .ok()
        .and_then(|v| v.lines().next().map(str::to_owned))
        .unwrap_or_else(|| "qemu".to_owned());
    format!(
        "{qemu}, TCG (-accel tcg -cpu max, software emulation), {CPUS} vCPU (with -icount, \
         Linux 6.1 hangs bringing up a second), {} MiB; host CPU: {cpu}",
        vm::GUEST_MEMORY_MIB,
    )
}
