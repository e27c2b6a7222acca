//! What a running guard costs the host: the kernel's run counts and run times of its BPF
//! programs (counted only while `kernel.bpf_stats_enabled` is 1), the memory its maps
//! hold, and its resident memory.
//!
//! Everything is read from outside the daemon, as `rtguard status` (or a benchmark) sees
//! it: the daemon's file descriptors in `/proc/<pid>/fdinfo` say which programs and maps
//! it holds and what they cost, and the kernel's program and map lists give their names.

use std::{
    collections::{BTreeMap, BTreeSet},
    io,
    os::fd::{AsFd, AsRawFd},
    path::{Path, PathBuf},
};

use serde::{Deserialize, Serialize};

use crate::host::paths;

/// The switch for the kernel's per-program run counters.
pub const BPF_STATS_SYSCTL: &str = "/proc/sys/kernel/bpf_stats_enabled";

#[derive(Debug, thiserror::Error)]
pub enum UsageError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// One loaded program and what the kernel counted for it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProgramUsage {
    /// The kernel's name for it (at most 15 bytes: `bprm_check_secu`).
    pub name: String,
    pub id: u32,
    pub run_count: u64,
    pub run_time_ns: u64,
    /// Instructions the verifier processed to load it (Linux 5.16 and later): what the
    /// program cost at start-up.
    #[serde(default)]
    pub verified_insns: u64,
    /// Calls the kernel did not run it for, because it was already running on that CPU
    /// (counted whether or not runs are). Only trampoline programs of the tracing type
    /// (fmod_ret) are skipped so; on a preemptible kernel, a task preempted inside one
    /// makes every other task on that CPU skip it until it resumes.
    #[serde(default)]
    pub recursion_misses: u64,
}

impl ProgramUsage {
    /// Mean time per run, if it ran while counted.
    pub fn mean_ns(&self) -> Option<f64> {
        (self.run_count > 0).then(|| self.run_time_ns as f64 / self.run_count as f64)
    }
}

/// One map and the memory the kernel charges for it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MapUsage {
    pub name: String,
    pub id: u32,
    /// The kernel's `bpf_map_type` number.
    pub map_type: u32,
    pub max_entries: u32,
    /// What fdinfo reports as `memlock`: the map's memory as the kernel accounts it.
    pub memlock_bytes: u64,
}

/// A process's BPF programs and maps, and its resident memory.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    pub pid: u32,
    pub rss_bytes: u64,
    /// CPU time (user and system) the process has used since it started.
    pub cpu_ns: u64,
    /// Whether the kernel counts program runs now; counts stop (and stay) when it doesn't.
    pub bpf_stats_enabled: bool,
    pub programs: Vec<ProgramUsage>,
    pub maps: Vec<MapUsage>,
}

impl Usage {
    /// Hook calls the kernel ran none of the programs for (see
    /// [`ProgramUsage::recursion_misses`]): operations that were not judged.
    pub fn skipped_runs(&self) -> u64 {
        self.programs.iter().map(|p| p.recursion_misses).sum()
    }

    /// Memory held by all the maps.
    pub fn map_bytes(&self) -> u64 {
        self.maps.iter().map(|m| m.memlock_bytes).sum()
    }

    /// The program named `name`, if the process holds it.
    pub fn program(&self, name: &str) -> Option<&ProgramUsage> {
        self.programs.iter().find(|p| p.name == name)
    }
}

/// Reads what process `pid` holds. Needs root (or the process's own uid) for fdinfo.
pub fn of_process(pid: u32) -> Result<Usage, UsageError> {
    let proc_dir = Path::new(paths::PROC_ROOT).join(pid.to_string());
    let status = read(&proc_dir.join("status"))?;
    let stat = read(&proc_dir.join("stat"))?;
    let fdinfo = proc_dir.join("fdinfo");
    let mut programs = BTreeMap::new();
    let mut maps = BTreeMap::new();
    let mut linked = BTreeSet::new();
    let entries = std::fs::read_dir(&fdinfo).map_err(|source| UsageError::Io {
        path: fdinfo.clone(),
        source,
    })?;
    for entry in entries.flatten() {
        // An fd closed since the listing is not an error.
        let Ok(text) = std::fs::read_to_string(entry.path()) else {
            continue;
        };
        match parse_fdinfo(&text) {
            Some(Held::Program(p)) => {
                programs.insert(p.id, p);
            }
            Some(Held::Map(m)) => {
                maps.insert(m.id, m);
            }
            Some(Held::Link { prog_id }) => {
                linked.insert(prog_id);
            }
            None => {}
        }
    }
    name_programs(&mut programs, &linked);
    name_maps(&mut maps);
    Ok(Usage {
        pid,
        rss_bytes: vm_rss(&status).unwrap_or(0),
        cpu_ns: cpu_ticks(&stat).map_or(0, ticks_to_ns),
        bpf_stats_enabled: stats_enabled(),
        programs: programs.into_values().collect(),
        maps: maps.into_values().collect(),
    })
}

/// Whether `kernel.bpf_stats_enabled` is on.
pub fn stats_enabled() -> bool {
    std::fs::read_to_string(BPF_STATS_SYSCTL).is_ok_and(|s| s.trim() == "1")
}

/// Turns the kernel's run counters on or off (root only).
pub fn set_stats_enabled(on: bool) -> Result<(), UsageError> {
    std::fs::write(BPF_STATS_SYSCTL, if on { "1\n" } else { "0\n" }).map_err(|source| {
        UsageError::Io {
            path: BPF_STATS_SYSCTL.into(),
            source,
        }
    })
}

fn read(path: &Path) -> Result<String, UsageError> {
    std::fs::read_to_string(path).map_err(|source| UsageError::Io {
        path: path.to_owned(),
        source,
    })
}

/// What one file descriptor holds.
#[derive(Debug, PartialEq, Eq)]
enum Held {
    Program(ProgramUsage),
    Map(MapUsage),
    Link { prog_id: u32 },
}

/// The counters of a loaded program, read through an fd this process opens for it.
fn program_counters(info: &aya::programs::ProgramInfo) -> Option<ProgramUsage> {
    let fd = info.fd().ok()?;
    let text =
        std::fs::read_to_string(format!("/proc/self/fdinfo/{}", fd.as_fd().as_raw_fd())).ok()?;
    match parse_fdinfo(&text)? {
        Held::Program(p) => Some(p),
        _ => None,
    }
}

/// Reads a BPF program, map or link fd's fdinfo; every other kind of fd is skipped. A
/// link names its program but carries no run counters.
fn parse_fdinfo(text: &str) -> Option<Held> {
    let field = |key: &str| -> Option<u64> {
        text.lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
            .and_then(|v| v.trim().parse().ok())
    };
    if let (Some(_), Some(prog_id)) = (field("link_id"), field("prog_id")) {
        return Some(Held::Link {
            prog_id: prog_id as u32,
        });
    }
    if let (Some(id), Some(run_time_ns), Some(run_count)) =
        (field("prog_id"), field("run_time_ns"), field("run_cnt"))
    {
        return Some(Held::Program(ProgramUsage {
            name: String::new(),
            id: id as u32,
            run_count,
            run_time_ns,
            verified_insns: field("verified_insns").unwrap_or(0),
            recursion_misses: field("recursion_misses").unwrap_or(0),
        }));
    }
    let id = field("map_id")?;
    Some(Held::Map(MapUsage {
        name: String::new(),
        id: id as u32,
        map_type: field("map_type").unwrap_or(0) as u32,
        max_entries: field("max_entries").unwrap_or(0) as u32,
        memlock_bytes: field("memlock").unwrap_or(0),
    }))
}

/// Names the programs held, in one pass over the kernel's program list. Programs held
/// only through a link (`linked`: fmod_ret's) are added on the way, their counters read
/// through an fd of this process's own.
fn name_programs(programs: &mut BTreeMap<u32, ProgramUsage>, linked: &BTreeSet<u32>) {
    for info in aya::programs::loaded_programs().flatten() {
        let id = info.id();
        if !programs.contains_key(&id) && linked.contains(&id) {
            if let Some(p) = program_counters(&info) {
                programs.insert(id, p);
            }
        }
        if let Some(p) = programs.get_mut(&id) {
            p.name = info.name_as_str().unwrap_or_default().to_owned();
        }
    }
}

fn name_maps(maps: &mut BTreeMap<u32, MapUsage>) {
    for info in aya::maps::loaded_maps().flatten() {
        if let Some(m) = maps.get_mut(&info.id()) {
            m.name = info.name_as_str().unwrap_or_default().to_owned();
        }
    }
}

/// `VmRSS:` from /proc/<pid>/status, in bytes.
fn vm_rss(status: &str) -> Option<u64> {
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .trim()
        .strip_suffix("kB")?
        .trim()
        .parse()
        .ok()?;
    Some(kib * 1024)
}

/// utime + stime from /proc/<pid>/stat, in clock ticks. The fields are counted after
/// the command name, which is in parentheses and may hold spaces.
fn cpu_ticks(stat: &str) -> Option<u64> {
    let mut fields = stat.rsplit_once(')')?.1.split_whitespace();
    // After the name: state is field 3; utime and stime are fields 14 and 15.
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

fn ticks_to_ns(ticks: u64) -> u64 {
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    ticks * 1_000_000_000 / hz
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_program_fd() {
        let text = "pos:\t0\nflags:\t02000002\nmnt_id:\t15\nino:\t1057\nprog_type:\t29\n\
                    prog_jited:\t1\nprog_tag:\t0123456789abcdef\nmemlock:\t4096\nprog_id:\t42\n\
                    run_time_ns:\t123456\nrun_cnt:\t789\nrecursion_misses:\t3\nverified_insns:\t900\n";
        assert_eq!(
            parse_fdinfo(text),
            Some(Held::Program(ProgramUsage {
                name: String::new(),
                id: 42,
                run_count: 789,
                run_time_ns: 123456,
                verified_insns: 900,
                recursion_misses: 3,
            }))
        );
    }

    #[test]
    fn reads_a_map_fd() {
        let text = "pos:\t0\nflags:\t02000002\nmnt_id:\t15\nino:\t1057\nmap_type:\t1\n\
                    key_size:\t16\nvalue_size:\t16\nmax_entries:\t65536\nmap_flags:\t0x0\n\
                    map_extra:\t0x0\nmemlock:\t5767168\nmap_id:\t7\nfrozen:\t0\n";
        assert_eq!(
            parse_fdinfo(text),
            Some(Held::Map(MapUsage {
                name: String::new(),
                id: 7,
                map_type: 1,
                max_entries: 65536,
                memlock_bytes: 5767168,
            }))
        );
    }

    #[test]
    fn reads_links_and_skips_other_fds() {
        let link = "pos:\t0\nflags:\t02000000\nmnt_id:\t15\nino:\t1057\nlink_type:\ttracing\n\
                    link_id:\t3\nprog_tag:\t0123456789abcdef\nprog_id:\t42\nattach_type:\t27\n";
        assert_eq!(parse_fdinfo(link), Some(Held::Link { prog_id: 42 }));
        assert_eq!(parse_fdinfo("pos:\t0\nflags:\t02\nmnt_id:\t21\n"), None);
    }

    #[test]
    fn reads_resident_memory() {
        let status = "Name:\trtguard\nVmPeak:\t  20000 kB\nVmRSS:\t   12345 kB\nRssAnon:\t 1 kB\n";
        assert_eq!(vm_rss(status), Some(12345 * 1024));
        assert_eq!(vm_rss("Name:\tkthreadd\n"), None);
    }

    #[test]
    fn reads_cpu_time_past_a_name_with_spaces() {
        let stat = "1234 (rt guard) S 1 1234 1234 0 -1 4194560 900 0 0 0 250 75 0 0 20 0 3 0";
        assert_eq!(cpu_ticks(stat), Some(325));
        assert_eq!(cpu_ticks("garbage"), None);
    }

    #[test]
    fn mean_time_needs_runs() {
        let mut p = ProgramUsage {
            run_count: 4,
            run_time_ns: 1000,
            ..Default::default()
        };
        assert_eq!(p.mean_ns(), Some(250.0));
        p.run_count = 0;
        assert_eq!(p.mean_ns(), None);
    }
}
