//! What the overhead benchmark reports: one JSON object per console line, after
//! [`MARKER`]. The guest runner (guard-user's `overhead` bench) prints them; `cargo xtask
//! bench` reads them off the VM's console. Both compile this one file.
#![allow(dead_code)] // each side uses its half

use serde::{Deserialize, Serialize};

/// Starts every result line on the console.
pub const MARKER: &str = "RTGUARD-BENCH ";

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "record", rename_all = "kebab-case")]
pub enum Record {
    /// Once, before the first run: what is measured and where.
    Setup(Setup),
    /// One timed run of one workload.
    Run(Run),
    /// From `rtguard run` to its READY=1.
    Start(Start),
    /// One run of one workload with the kernel counting the programs' runs and time.
    Accounting(Accounting),
    /// The daemon's memory and its maps', with a policy loaded.
    Memory(Memory),
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Setup {
    /// `uname -r`.
    pub kernel: String,
    pub cpus: u32,
    pub rounds: u32,
    pub workloads: Vec<Workload>,
    /// What each policy resolves to on the guest: (policy, protected file objects).
    pub policies: Vec<(String, usize)>,
    /// Whether the workloads' directory is on the filesystem of a protected tree, so the
    /// file hooks walk up the parent chain on every write (the costly case).
    pub workdir_on_tree_device: bool,
    /// The hooks the programs that decide nothing attach to ([`Guard::HooksOnly`]); none
    /// where BPF LSM is not active (rtguard's programs run as fmod_ret there).
    #[serde(default)]
    pub hook_floor: Vec<String>,
    /// The active LSMs (`/sys/kernel/security/lsm`).
    #[serde(default)]
    pub lsm: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Workload {
    pub name: String,
    /// What one run does, in a few words.
    pub description: String,
}

/// What ran during a measurement.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Guard {
    /// Nothing: the baseline.
    Off,
    /// Programs that decide nothing, on the hooks rtguard attaches to: what the hooks
    /// themselves cost.
    HooksOnly,
    /// rtguard, enforcing.
    On,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Run {
    pub workload: String,
    pub round: u32,
    pub guard: Guard,
    pub wall_ns: u64,
    /// System time of the runner and its children during the run.
    pub sys_ns: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Start {
    pub policy: String,
    pub ready_ns: u64,
    /// The daemon's own account of its start: (step, microseconds).
    pub steps: Vec<(String, u64)>,
    /// Instructions the kernel's verifier processed for all of the daemon's programs.
    #[serde(default)]
    pub verified_insns: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Accounting {
    pub workload: String,
    pub wall_ns: u64,
    pub sys_ns: u64,
    /// CPU time the daemon itself used during the run.
    pub daemon_cpu_ns: u64,
    /// Per program name (the kernel keeps 15 bytes of it, so programs whose names only
    /// differ after that are counted together): what the kernel counted during this run.
    pub programs: Vec<ProgramRuns>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ProgramRuns {
    pub name: String,
    pub run_count: u64,
    pub run_time_ns: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Memory {
    pub policy: String,
    pub protected_objects: usize,
    pub rss_bytes: u64,
    pub maps: Vec<MapMemory>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MapMemory {
    pub name: String,
    pub max_entries: u32,
    pub memlock_bytes: u64,
}

impl Record {
    /// The console line for this record.
    pub fn line(&self) -> String {
        format!(
            "{MARKER}{}",
            serde_json::to_string(self).expect("records serialize")
        )
    }

    /// The record on a console line, if the line carries one.
    pub fn parse(line: &str) -> Option<Result<Self, serde_json::Error>> {
        let json = line.trim_end().strip_prefix(MARKER)?;
        Some(serde_json::from_str(json))
    }
}
