//! From the benchmark's records to docs/benchmarks.md: medians, ranges, ratios, the
//! kernel's own accounting, memory, start-up time, and each target met or missed.

use std::{collections::BTreeSet, fmt::Write as _};

use super::{
    record::{Guard, Memory, Start},
    KernelResults, Results, CHART, RESULTS,
};

/// The targets.
pub const TARGET_OVERHEAD: f64 = 0.02;
pub const TARGET_BPF_SHARE: f64 = 0.05;
pub const TARGET_MAP_BYTES: u64 = 8 * 1024 * 1024;
pub const TARGET_READY_MS: f64 = 300.0;
pub const TARGET_READY_LARGE_MS: f64 = 600.0;

/// The hand-written analysis between these markers survives re-rendering.
const NOTES_BEGIN: &str = "<!-- notes: kept when the report is rendered again -->";
const NOTES_END: &str = "<!-- end of notes -->";

/// Median and range of a set of measurements.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Stats {
    pub n: usize,
    pub median: f64,
    pub min: f64,
    pub max: f64,
}

impl Stats {
    pub fn of(values: impl IntoIterator<Item = f64>) -> Option<Self> {
        let mut v: Vec<f64> = values.into_iter().collect();
        if v.is_empty() {
            return None;
        }
        v.sort_by(f64::total_cmp);
        let n = v.len();
        let median = if n % 2 == 1 {
            v[n / 2]
        } else {
            (v[n / 2 - 1] + v[n / 2]) / 2.0
        };
        Some(Stats {
            n,
            median,
            min: v[0],
            max: v[n - 1],
        })
    }
}

/// One workload on one kernel: wall time without and with rtguard.
#[derive(Debug)]
pub struct WorkloadSummary {
    pub workload: String,
    /// Seconds.
    pub off: Stats,
    pub on: Stats,
    /// median(on) / median(off) - 1.
    pub overhead: f64,
    /// Seconds with programs that decide nothing on the same hooks, where the run
    /// measured it.
    pub hooks_only: Option<Stats>,
    /// with / without - 1 for each round's pair.
    pub paired: Stats,
    /// The same ratio on system time.
    pub sys_overhead: f64,
}

/// One workload's run with the kernel counting.
#[derive(Debug)]
pub struct AccountingSummary {
    pub workload: String,
    /// Program runs: hooked operations.
    pub runs: u64,
    pub bpf_ns: u64,
    pub sys_ns: u64,
    /// CPU the daemon itself used meanwhile.
    pub daemon_cpu_ns: u64,
}

impl AccountingSummary {
    pub fn mean_ns(&self) -> f64 {
        self.bpf_ns as f64 / self.runs.max(1) as f64
    }

    /// BPF time as a share of the workload's system time.
    pub fn share(&self) -> f64 {
        self.bpf_ns as f64 / self.sys_ns.max(1) as f64
    }
}

#[derive(Debug)]
pub struct KernelSummary {
    /// `6.1`, `6.12`: the series, for the chart's legend.
    pub series: String,
    pub workloads: Vec<WorkloadSummary>,
    pub accounting: Vec<AccountingSummary>,
    /// Milliseconds from `rtguard run` to READY=1, per policy.
    pub ready: Vec<(String, Stats)>,
}

pub fn summarise(results: &Results) -> Vec<KernelSummary> {
    results.kernels.iter().map(summarise_kernel).collect()
}

fn summarise_kernel(k: &KernelResults) -> KernelSummary {
    let workloads = k
        .setup
        .workloads
        .iter()
        .filter_map(|w| {
            let runs = |guard: Guard| {
                k.runs
                    .iter()
                    .filter(move |r| r.workload == w.name && r.guard == guard)
            };
            let off = Stats::of(runs(Guard::Off).map(|r| secs(r.wall_ns)))?;
            let on = Stats::of(runs(Guard::On).map(|r| secs(r.wall_ns)))?;
            let paired = Stats::of(runs(Guard::On).filter_map(|on| {
                let off = runs(Guard::Off).find(|off| off.round == on.round)?;
                Some(on.wall_ns as f64 / off.wall_ns as f64 - 1.0)
            }))?;
            let hooks_only = Stats::of(runs(Guard::HooksOnly).map(|r| secs(r.wall_ns)));
            let sys_off = Stats::of(runs(Guard::Off).map(|r| secs(r.sys_ns)))?;
            let sys_on = Stats::of(runs(Guard::On).map(|r| secs(r.sys_ns)))?;
            Some(WorkloadSummary {
                workload: w.name.clone(),
                overhead: on.median / off.median - 1.0,
                hooks_only,
                off,
                on,
                paired,
                sys_overhead: sys_on.median / sys_off.median - 1.0,
            })
        })
        .collect();
    let accounting = k
        .accounting
        .iter()
        .map(|a| AccountingSummary {
            workload: a.workload.clone(),
            runs: a.programs.iter().map(|p| p.run_count).sum(),
            bpf_ns: a.programs.iter().map(|p| p.run_time_ns).sum(),
            sys_ns: a.sys_ns,
            daemon_cpu_ns: a.daemon_cpu_ns,
        })
        .collect();
    let policies: BTreeSet<&str> = k.starts.iter().map(|s| s.policy.as_str()).collect();
    let ready = policies
        .into_iter()
        .filter_map(|p| {
            let starts = k.starts.iter().filter(|s| s.policy == p);
            Some((p.to_owned(), Stats::of(starts.map(ready_ms))?))
        })
        .collect();
    KernelSummary {
        series: series(&k.setup.kernel, &k.setup.lsm),
        workloads,
        accounting,
        ready,
    }
}

/// `6.1.0-41-cloud-amd64` → `6.1`; with ` fmod_ret` where the active LSMs (when
/// recorded) leave BPF LSM out, so rtguard's programs ran as fmod_ret.
fn series(release: &str, lsm: &str) -> String {
    let series = release.split('.').take(2).collect::<Vec<_>>().join(".");
    if lsm.is_empty() || lsm.split(',').any(|l| l == "bpf") {
        series
    } else {
        series + " fmod_ret"
    }
}

fn secs(ns: u64) -> f64 {
    ns as f64 / 1e9
}

fn ready_ms(s: &Start) -> f64 {
    s.ready_ns as f64 / 1e6
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

fn pct(ratio: f64) -> String {
    format!("{:+.1}%", ratio * 100.0)
}

fn map_bytes(m: &Memory) -> u64 {
    m.maps.iter().map(|m| m.memlock_bytes).sum()
}

/// The memory record for the policy with the most protected objects (the 10k one).
fn largest_memory(k: &KernelResults) -> Option<&Memory> {
    k.memory.iter().max_by_key(|m| m.protected_objects)
}

fn smallest_memory(k: &KernelResults) -> Option<&Memory> {
    k.memory.iter().min_by_key(|m| m.protected_objects)
}

/// The start-up time of the policy with the fewest protected objects (production).
fn production_ready<'a>(k: &KernelResults, s: &'a KernelSummary) -> Option<&'a Stats> {
    ready_of(s, &smallest_memory(k)?.policy)
}

/// The start-up time of the policy with the most protected objects (10k), and how many.
fn large_ready<'a>(k: &KernelResults, s: &'a KernelSummary) -> Option<(&'a Stats, usize)> {
    let large = largest_memory(k)?;
    Some((ready_of(s, &large.policy)?, large.protected_objects))
}

fn ready_of<'a>(s: &'a KernelSummary, policy: &str) -> Option<&'a Stats> {
    s.ready.iter().find(|(p, _)| p == policy).map(|(_, st)| st)
}

/// The headline table, also printed at the end of the command.
pub fn summary_table(summaries: &[KernelSummary]) -> String {
    let mut out = String::from(
        "| kernel | workload | without rtguard (median) | with rtguard (median) | overhead | per-round range | system time | hooks alone |\n\
         | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |\n",
    );
    for s in summaries {
        for w in &s.workloads {
            let _ = writeln!(
                out,
                "| {} | {} | {:.3} s | {:.3} s | **{}** | {} … {} | {} | {} |",
                s.series,
                w.workload,
                w.off.median,
                w.on.median,
                pct(w.overhead),
                pct(w.paired.min),
                pct(w.paired.max),
                pct(w.sys_overhead),
                w.hooks_only
                    .as_ref()
                    .map_or_else(|| "–".to_owned(), |h| pct(h.median / w.off.median - 1.0))
            );
        }
    }
    out
}

pub fn markdown(results: &Results, summaries: &[KernelSummary], previous: &str) -> String {
    let mut md = String::new();
    let date = results.date.get(..10).unwrap_or(&results.date);
    let rounds = results.kernels.first().map_or(0, |k| k.setup.rounds);
    let _ = writeln!(md, "# Benchmarks: what always-on protection costs\n");
    let _ = writeln!(
        md,
        "Generated by `{}` on {date}; every number below comes from that run \
         (raw records in [`{}`]({})). Re-render after editing the notes with \
         `cargo xtask bench --render`.\n",
        results.command,
        file_name(RESULTS),
        file_name(RESULTS)
    );
    let _ = writeln!(md, "- Machine: {}.", results.machine);
    let _ = writeln!(
        md,
        "- Clock: the guest runs with `{}`, so guest time is emulated instructions, one \
         nanosecond each. What the guest measures is the work done, not the host's load \
         (other VMs and builds share this 2-core host), and runs repeat closely. These are \
         not hardware times: a real CPU retires several instructions per nanosecond, and \
         caches and memory are not modelled. The ratios are what carries over.",
        super::ICOUNT.join(" ")
    );
    for k in &results.kernels {
        let _ = writeln!(
            md,
            "- Kernel: `{}` (`{}`); the guest sees {} CPU(s).",
            k.setup.kernel, k.package, k.setup.cpus
        );
    }
    let _ = writeln!(
        md,
        "- {rounds} rounds per workload and kernel, in one boot per kernel. In each round every \
         workload runs without rtguard and with it, or the other way round (the order \
         alternates by round), and in between, where BPF LSM is active, with programs that \
         decide nothing on rtguard's hooks (\"hooks only\"). rtguard is started for its run \
         and stopped after; its run begins once the daemon has settled after READY=1 (less \
         than 1 ms of CPU in a second), and every run waits until the programs of the run \
         before it are unloaded."
    );
    if let Some(k) = results.kernels.first() {
        for (policy, objects) in &k.setup.policies {
            let _ = writeln!(md, "- `{policy}`: {objects} protected file objects.");
        }
        let _ = writeln!(
            md,
            "- \"With rtguard\" is `rtguard run --policy {}`: the production policy plus a rule \
             protecting 10,000 more files and a tree protected as the production policy protects \
             `/var/lib/containerd` (a trusted writer, and an excluded subdirectory directly below \
             its root), enforcing, with all file, exec and process hooks attached. Both policies are the shipped `/etc/rtguard/production.toml` with the benchmark's runner \
             added as a supervisor of the daemon: the policy refuses fatal signals to rtguard from \
             anyone else, and the runner stops it after each run.",
            largest_memory(k).map_or("?", |m| m.policy.as_str())
        );
        let _ = writeln!(
            md,
            "- The file layer remembers, per directory, what the walk up to a tree root found \
             (no tree, or the tree's root: the tree-walk cache), so the walk runs once per \
             directory, not once per operation. Each run with rtguard starts a new daemon, \
             with an empty cache, and pays for filling it."
        );
        let _ = writeln!(
            md,
            "- The workloads run on the root filesystem, {} a protected tree (`/etc/containerd`), \
             so each write, rename and unlink makes the file hooks walk up the parent directories \
             looking for a protected tree: the costly case, not the cheap one.",
            if k.setup.workdir_on_tree_device {
                "the filesystem of"
            } else {
                "NOT on the filesystem of"
            }
        );
        let _ = writeln!(
            md,
            "- trusted-writer and image-extract work inside the bench policy's own tree (see \
             Workloads), as the runtime works in `/var/lib/containerd`: each of the trusted \
             writer's operations finds the tree and then looks for a trusted executable among \
             the task and its ancestors (the trust walk), as containerd's do; in the excluded \
             subdirectory the tree walk ends on the exclusion at the tree root, as for the \
             snapshotter's layers. Without rtguard the same executables do the same work in \
             the same places."
        );
    }
    let _ = writeln!(md, "\n## Summary\n");
    md.push_str(&summary_table(summaries));
    let _ = writeln!(
        md,
        "\nOverhead is median(with) / median(without) − 1 of wall time; the range is the \
         smallest and largest of the rounds' own with/without ratios; system time is the same \
         ratio of the workload's system time (its own and its children's), which the kernel \
         accounts by timer ticks and so is coarser. \"Hooks alone\" is the same overhead with \
         programs that decide nothing (return 0) on every LSM hook rtguard attaches to and \
         on its rename watcher (not its cgroup sysctl program: no workload writes a sysctl), in \
         rtguard's place, in the same rounds: what the LSM dispatch and the BPF trampoline \
         cost any guard on these hooks (BPF LSM boots only; \"–\" where not measured). The \
         kernel's own accounting below says where the rest goes.\n"
    );
    let _ = writeln!(
        md,
        "![Overhead per workload and kernel]({})\n",
        file_name(CHART)
    );

    md.push_str(&targets(results, summaries));

    let _ = writeln!(md, "\n## Workloads\n");
    if let Some(k) = results.kernels.first() {
        for w in &k.setup.workloads {
            let _ = writeln!(md, "- **{}**: {}.", w.name, w.description);
        }
    }

    let _ = writeln!(md, "\n## Wall time per workload\n");
    let _ = writeln!(
        md,
        "| kernel | workload | rtguard | runs | median | min | max |\n| --- | --- | --- | ---: | ---: | ---: | ---: |"
    );
    for s in summaries {
        for w in &s.workloads {
            let phases = [
                ("without", Some(&w.off)),
                ("hooks only", w.hooks_only.as_ref()),
                ("with", Some(&w.on)),
            ];
            for (label, st) in phases.into_iter().filter_map(|(l, st)| Some((l, st?))) {
                let _ = writeln!(
                    md,
                    "| {} | {} | {label} | {} | {:.3} s | {:.3} s | {:.3} s |",
                    s.series, w.workload, st.n, st.median, st.min, st.max
                );
            }
        }
    }

    let _ = writeln!(md, "\n## The kernel's accounting\n");
    let _ = writeln!(
        md,
        "One more run of each workload with rtguard and `kernel.bpf_stats_enabled=1`: the kernel \
         counts every run of every program and the time spent in it. \"Hooked operations\" are \
         program runs; the share is BPF time over the workload's system time; daemon CPU is \
         what rtguard's own process used meanwhile. BPF time is the programs' own: the hook \
         dispatch and trampoline around each run are not in it, but are in the wall times \
         above. (The counters are off during the timed rounds: counting costs two clock \
         reads per run.)\n"
    );
    let _ = writeln!(
        md,
        "| kernel | workload | hooked operations | BPF time | mean per operation | system time | BPF share | daemon CPU |\n| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |"
    );
    for s in summaries {
        for a in &s.accounting {
            let _ = writeln!(
                md,
                "| {} | {} | {} | {:.1} ms | {:.0} ns | {:.3} s | {:.2}% | {:.0} ms |",
                s.series,
                a.workload,
                a.runs,
                a.bpf_ns as f64 / 1e6,
                a.mean_ns(),
                secs(a.sys_ns),
                a.share() * 100.0,
                a.daemon_cpu_ns as f64 / 1e6
            );
        }
    }
    let _ = writeln!(
        md,
        "\nPer program (runs × mean per run). The kernel keeps 15 bytes of a program's name: \
         `bprm_check_secu` is `bprm_check_security`.\n"
    );
    for (k, s) in results.kernels.iter().zip(summaries) {
        let programs: Vec<&str> = {
            let mut names: Vec<&str> = k
                .accounting
                .iter()
                .flat_map(|a| a.programs.iter().map(|p| p.name.as_str()))
                .collect();
            names.sort();
            names.dedup();
            names
        };
        let _ = write!(md, "| {} program |", s.series);
        for a in &k.accounting {
            let _ = write!(md, " {} |", a.workload);
        }
        let _ = write!(md, "\n| --- |");
        for _ in &k.accounting {
            md.push_str(" ---: |");
        }
        md.push('\n');
        for name in programs {
            let _ = write!(md, "| `{name}` |");
            for a in &k.accounting {
                match a.programs.iter().find(|p| p.name == name) {
                    Some(p) if p.run_count > 0 => {
                        let _ = write!(
                            md,
                            " {} × {:.0} ns |",
                            p.run_count,
                            p.run_time_ns as f64 / p.run_count as f64
                        );
                    }
                    _ => md.push_str(" – |"),
                }
            }
            md.push('\n');
        }
        md.push('\n');
    }

    let _ = writeln!(md, "## Memory\n");
    let _ = writeln!(
        md,
        "Map memory is what the kernel charges for each of rtguard's maps (`memlock` in \
         `/proc/<pid>/fdinfo`); RSS is the daemon's resident memory (`VmRSS`). Linux 6.12 \
         reports what each map holds; Linux 6.1 reports a nominal figure, (key + value size) × \
         max entries rounded to pages, and nothing for ring buffers.\n"
    );
    let _ = writeln!(
        md,
        "| kernel | policy | protected objects | map memory | daemon RSS |\n| --- | --- | ---: | ---: | ---: |"
    );
    for (k, s) in results.kernels.iter().zip(summaries) {
        for m in &k.memory {
            let _ = writeln!(
                md,
                "| {} | `{}` | {} | {:.2} MiB | {:.1} MiB |",
                s.series,
                m.policy,
                m.protected_objects,
                mib(map_bytes(m)),
                mib(m.rss_bytes)
            );
        }
    }
    for (k, s) in results.kernels.iter().zip(summaries) {
        let Some(m) = largest_memory(k) else { continue };
        let mut maps = m.maps.clone();
        maps.sort_by_key(|m| std::cmp::Reverse(m.memlock_bytes));
        let _ = writeln!(
            md,
            "\n{} maps with `{}`, largest first:\n\n| map | max entries | memory |\n| --- | ---: | ---: |",
            s.series, m.policy
        );
        for map in maps.iter().filter(|m| m.memlock_bytes > 0) {
            let _ = writeln!(
                md,
                "| `{}` | {} | {:.0} KiB |",
                if map.name.is_empty() { "?" } else { &map.name },
                map.max_entries,
                map.memlock_bytes as f64 / 1024.0
            );
        }
    }

    let _ = writeln!(md, "\n## Start to ready\n");
    let _ = writeln!(
        md,
        "From spawning `rtguard run` to its `READY=1` on the notify socket: policy resolution, \
         BTF offsets, loading and verifying the programs, attaching them, the self-test on a \
         canary, and filling the maps.\n"
    );
    let _ = writeln!(
        md,
        "| kernel | policy | starts | median | min | max |\n| --- | --- | ---: | ---: | ---: | ---: |"
    );
    for s in summaries {
        for (policy, st) in &s.ready {
            let _ = writeln!(
                md,
                "| {} | `{policy}` | {} | {:.0} ms | {:.0} ms | {:.0} ms |",
                s.series, st.n, st.median, st.min, st.max
            );
        }
    }

    let _ = writeln!(
        md,
        "\nThe daemon's own account of its start (medians, ms), from its status file:\n"
    );
    md.push_str(&startup_steps(results, summaries));

    let _ = writeln!(md, "\n## Notes\n");
    md.push_str(&notes(previous));
    md
}

/// Per kernel and policy, the median of each start-up step the daemon reports.
fn startup_steps(results: &Results, summaries: &[KernelSummary]) -> String {
    let Some(steps) = results
        .kernels
        .iter()
        .flat_map(|k| k.starts.first())
        .map(|s| {
            s.steps
                .iter()
                .map(|(step, _)| step.as_str())
                .collect::<Vec<_>>()
        })
        .next()
    else {
        return String::new();
    };
    let mut md = String::from("| kernel | policy file |");
    for step in &steps {
        let _ = write!(md, " {step} |");
    }
    md.push_str(" instructions verified |\n| --- | --- |");
    for _ in &steps {
        md.push_str(" ---: |");
    }
    md.push_str(" ---: |\n");
    for (k, s) in results.kernels.iter().zip(summaries) {
        let policies: BTreeSet<&str> = k.starts.iter().map(|s| s.policy.as_str()).collect();
        for policy in policies {
            let _ = write!(md, "| {} | `{policy}` |", s.series);
            for step in &steps {
                let step_ms = k
                    .starts
                    .iter()
                    .filter(|s| s.policy == policy)
                    .flat_map(|s| s.steps.iter().filter(|(name, _)| name == step))
                    .map(|(_, micros)| *micros as f64 / 1000.0);
                match Stats::of(step_ms) {
                    Some(st) => {
                        let _ = write!(md, " {:.0} |", st.median);
                    }
                    None => md.push_str(" – |"),
                }
            }
            let verified = k
                .starts
                .iter()
                .find(|s| s.policy == policy)
                .map_or(0, |s| s.verified_insns);
            match verified {
                0 => md.push_str(" – |\n"),
                n => {
                    let _ = writeln!(md, " {n} |");
                }
            }
        }
    }
    md
}

/// Each target, per kernel: met, or missed by how much.
fn targets(results: &Results, summaries: &[KernelSummary]) -> String {
    let mut md = String::from(
        "## Targets\n\n| target | kernel | measured | verdict |\n| --- | --- | --- | --- |\n",
    );
    let verdict = |value: f64, target: f64, unit: &dyn Fn(f64) -> String| {
        if value <= target {
            "met".to_owned()
        } else {
            format!("**missed** by {}", unit(value - target))
        }
    };
    let points = |v: f64| format!("{:.1} points", v * 100.0);
    for (k, s) in results.kernels.iter().zip(summaries) {
        if let Some(worst) = s
            .workloads
            .iter()
            .max_by(|a, b| a.overhead.total_cmp(&b.overhead))
        {
            let _ = writeln!(
                md,
                "| median overhead ≤ 2% on each workload | {} | worst: {} ({}) | {} |",
                s.series,
                pct(worst.overhead),
                worst.workload,
                verdict(worst.overhead, TARGET_OVERHEAD, &points)
            );
        }
        if let Some(worst) = s
            .accounting
            .iter()
            .max_by(|a, b| a.share().total_cmp(&b.share()))
        {
            let _ = writeln!(
                md,
                "| BPF time ≤ 5% of the workload's system time | {} | worst: {:.2}% ({}) | {} |",
                s.series,
                worst.share() * 100.0,
                worst.workload,
                verdict(worst.share(), TARGET_BPF_SHARE, &points)
            );
        }
        if let Some(m) = largest_memory(k) {
            let bytes = map_bytes(m);
            let _ = writeln!(
                md,
                "| ≤ 8 MiB of map memory with 10k objects | {} | {:.2} MiB ({} objects) | {} |",
                s.series,
                mib(bytes),
                m.protected_objects,
                verdict(bytes as f64, TARGET_MAP_BYTES as f64, &|v| format!(
                    "{:.2} MiB",
                    v / (1024.0 * 1024.0)
                ))
            );
        }
        let ready = [
            production_ready(k, s).map(|st| (st, TARGET_READY_MS, "production policy".to_owned())),
            large_ready(k, s)
                .map(|(st, objects)| (st, TARGET_READY_LARGE_MS, format!("{objects} objects"))),
        ];
        for (st, target, policy) in ready.into_iter().flatten() {
            let _ = writeln!(
                md,
                "| ≤ {target:.0} ms from start to ready ({policy}) | {} | {:.0} ms median | {} |",
                s.series,
                st.median,
                verdict(st.median, target, &|v| format!("{v:.0} ms"))
            );
        }
    }
    md
}

/// The notes block of the previous report, or a placeholder to fill in.
fn notes(previous: &str) -> String {
    let kept = previous
        .split_once(NOTES_BEGIN)
        .and_then(|(_, rest)| rest.split_once(NOTES_END))
        .map(|(notes, _)| notes.trim().to_owned())
        .unwrap_or_else(|| "Why each target is met or missed, and what was optimised.".to_owned());
    format!("{NOTES_BEGIN}\n{kept}\n{NOTES_END}\n")
}

fn file_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_and_range() {
        let s = Stats::of([3.0, 1.0, 2.0]).unwrap();
        assert_eq!((s.n, s.median, s.min, s.max), (3, 2.0, 1.0, 3.0));
        assert_eq!(Stats::of([4.0, 1.0, 2.0, 3.0]).unwrap().median, 2.5);
        assert_eq!(Stats::of([]), None);
    }

    #[test]
    fn notes_survive_rendering() {
        let first = notes("");
        assert!(first.contains("Why each target"));
        let edited = format!("# old report\n{NOTES_BEGIN}\nThe walk costs.\n{NOTES_END}\ntrailer");
        assert_eq!(
            notes(&edited),
            format!("{NOTES_BEGIN}\nThe walk costs.\n{NOTES_END}\n")
        );
    }

    #[test]
    fn kernel_series_from_release() {
        assert_eq!(series("6.1.0-41-cloud-amd64", ""), "6.1");
        assert_eq!(
            series("6.12.57+deb12-cloud-amd64", "lockdown,capability,bpf"),
            "6.12"
        );
        assert_eq!(
            series("7.3.4+deb13-cloud-amd64", "landlock,lockdown,yama,apparmor"),
            "7.3 fmod_ret"
        );
    }
}
