//! The overhead benchmark, guest side: what always-on protection costs a host.
//!
//! Each round runs every workload without rtguard and right after with it (the production
//! policy plus 10,000 more protected files and a tree protected as /var/lib/containerd is),
//! or the other way round: the order alternates from round to round, and each pair runs
//! back to back, so drift in the machine (the emulator shares the host) favours neither
//! side. Between the two, where BPF LSM is active, it runs with programs that decide
//! nothing on rtguard's hooks ([`floor`]): what the hooks cost by themselves. A run with
//! rtguard starts once the daemon has settled after READY=1. Then one more run of each
//! workload with the kernel counting the programs' runs and time, the daemon's memory, and
//! the time from `rtguard run` to READY=1. Results go to stdout as [`record`] lines.
//!
//! It needs root and a kernel with BPF LSM, so `cargo xtask bench` runs it inside the
//! Debian VMs (`overhead --guest [--rounds N]`); run any other way it only says so. A copy
//! of it is also the trusted writer of the bench policy's tree (`--trusted-writer DIR`).

#[path = "../../tests/common/mod.rs"]
mod common;
mod floor;
mod record;
mod workloads;

use std::{
    collections::{BTreeMap, BTreeSet},
    fs,
    os::unix::fs::MetadataExt as _,
    path::{Path, PathBuf},
    process::ExitCode,
    time::{Duration, Instant},
};

use anyhow::{bail, Context as _, Result};
use guard_user::{
    daemon::status::DaemonStatus,
    host::usage::{self, Usage},
    loader, policy,
    resolve::{self, ResolveOptions},
};

use common::RunningGuard;
use floor::HookFloor;
use record::{Accounting, Guard, MapMemory, Memory, ProgramRuns, Record, Run, Setup, Start};
use workloads::{Workdir, Workload, WriterTree, TRUSTED_WRITER_MODE};

const DEFAULT_ROUNDS: u32 = 7;
/// The shipped production policy with this runner as a supervisor of the rtguard daemon:
/// the policy refuses fatal signals to rtguard from anyone else, and the runner stops the
/// daemon after each run.
const PRODUCTION_POLICY: &str = "/etc/rtguard/bench-production.toml";
/// The production policy plus a rule protecting every file under [`PROTECTED_DIR`] and the
/// tree [`WRITER_TREE`].
const BENCH_POLICY: &str = "/etc/rtguard/bench-10k.toml";
const PROTECTED_DIR: &str = "/srv/rtguard-bench";
/// 100 directories of 100 files: the 10,000 extra protected objects.
const PROTECTED_DIRS: u32 = 100;
const PROTECTED_FILES_PER_DIR: u32 = 100;
/// On the root filesystem, which holds protected trees (/var/lib/containerd): every write
/// there makes the file hooks walk the parent chain looking for a tree.
const WORKDIR: &str = "/var/tmp/rtguard-bench";
/// A directory on the filesystem of the protected trees (the guest's root filesystem).
const TREE_ROOT: &str = "/etc/containerd";
/// The bench policy's tree, protected as /var/lib/containerd is in production: with
/// [`TRUSTED_WRITER`] as its trusted writer (containerd there) and [`EXCLUDED_SUBTREE`]
/// left to whoever writes it (the overlayfs snapshotter's layers there).
const WRITER_TREE: &str = "/srv/rtguard-bench-tree";
const EXCLUDED_SUBTREE: &str = "/srv/rtguard-bench-tree/snapshots";
/// A copy of this runner, outside the tree.
const TRUSTED_WRITER: &str = "/usr/local/libexec/rtguard-bench/writer";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    if let [_, mode, dir] = args.as_slice() {
        if mode == TRUSTED_WRITER_MODE {
            return match workloads::churn(Path::new(dir)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("trusted writer in {dir}: {e}");
                    ExitCode::FAILURE
                }
            };
        }
    }
    if !args.iter().any(|a| a == "--guest") {
        eprintln!("the overhead benchmark runs as root in the VMs: cargo xtask bench");
        return ExitCode::SUCCESS;
    }
    let rounds = args
        .iter()
        .position(|a| a == "--rounds")
        .and_then(|i| args.get(i + 1))
        .and_then(|n| n.parse().ok())
        .unwrap_or(DEFAULT_ROUNDS);
    match bench(rounds) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn bench(rounds: u32) -> Result<()> {
    usage::set_stats_enabled(false)?;
    let tree = WriterTree {
        root: PathBuf::from(WRITER_TREE),
        excluded: PathBuf::from(EXCLUDED_SUBTREE),
        writer: PathBuf::from(TRUSTED_WRITER),
    };
    let workdir = Workdir::prepare(Path::new(WORKDIR), tree).context("preparing the workloads")?;
    let workloads = workloads::all(&workdir);
    workloads::write_tree(
        Path::new(PROTECTED_DIR),
        PROTECTED_DIRS,
        PROTECTED_FILES_PER_DIR,
        64,
    )?;
    write_bench_policy()?;
    // The programs loaded before any of the bench's: each measurement waits until the
    // kernel has unloaded those of the run before it.
    let baseline = loaded_programs();
    let lsms = loader::active_lsms().context("reading the active LSMs")?;
    // Without BPF LSM among the active LSMs, programs on its hooks never run: rtguard
    // runs as fmod_ret there, and the floor is not measured.
    let hook_floor = if loader::bpf_lsm_inactive(&lsms).is_none() {
        HookFloor::attach().context("attaching the hook floor")?.1
    } else {
        Vec::new()
    };
    wait_unloaded(&baseline)?;
    let policies = [PRODUCTION_POLICY, BENCH_POLICY]
        .into_iter()
        .map(|p| Ok((p.to_owned(), protected_objects(p)?)))
        .collect::<Result<Vec<_>>>()?;
    emit(Record::Setup(Setup {
        kernel: fs::read_to_string("/proc/sys/kernel/osrelease")?
            .trim()
            .to_owned(),
        cpus: std::thread::available_parallelism().map_or(1, |n| n.get() as u32),
        rounds,
        workloads: workloads
            .iter()
            .map(|w| record::Workload {
                name: w.name.to_owned(),
                description: w.description.clone(),
            })
            .collect(),
        policies,
        workdir_on_tree_device: fs::metadata(WORKDIR)?.dev() == fs::metadata(TREE_ROOT)?.dev(),
        hook_floor: hook_floor.iter().map(|&h| h.to_owned()).collect(),
        lsm: lsms.join(","),
    }));

    // A first pass, not recorded, so no round pays for cold caches.
    for w in &workloads {
        w.run(&workdir)
            .with_context(|| format!("warming up {}", w.name))?;
    }
    for round in 0..rounds {
        for w in &workloads {
            // The floor runs between the other two, which alternate.
            let phases = if round % 2 == 0 {
                [Guard::Off, Guard::HooksOnly, Guard::On]
            } else {
                [Guard::On, Guard::HooksOnly, Guard::Off]
            };
            let floor_measured = !hook_floor.is_empty();
            for phase in phases {
                if phase == Guard::HooksOnly && !floor_measured {
                    continue;
                }
                let guard = (phase == Guard::On)
                    .then(|| start(BENCH_POLICY))
                    .transpose()?;
                let floor = (phase == Guard::HooksOnly)
                    .then(HookFloor::attach)
                    .transpose()?;
                let (wall, sys) = measure(w, &workdir)?;
                emit(Record::Run(Run {
                    workload: w.name.to_owned(),
                    round,
                    guard: phase,
                    wall_ns: nanos(wall),
                    sys_ns: nanos(sys),
                }));
                if let Some(guard) = guard {
                    stop(guard)?;
                }
                drop(floor);
                wait_unloaded(&baseline)?;
            }
        }
    }

    account(&workloads, &workdir)?;

    // Start to ready with the production policy alone, as a host starts it.
    for i in 0..rounds {
        let guard = start(PRODUCTION_POLICY)?;
        if i == 0 {
            emit_memory(PRODUCTION_POLICY, &usage::of_process(guard.pid())?)?;
        }
        let log = stop(guard)?;
        if i + 1 == rounds {
            println!("rtguard's log of its last start:");
            for line in log.lines() {
                println!("  {line}");
            }
        }
    }
    workdir.remove().ok();
    Ok(())
}

/// One run of each workload with the kernel counting every program's runs and time, and
/// the daemon's memory with the bench policy loaded.
fn account(workloads: &[Workload], workdir: &Workdir) -> Result<()> {
    let guard = start(BENCH_POLICY)?;
    usage::set_stats_enabled(true)?;
    let pid = guard.pid();
    for w in workloads {
        let before = usage::of_process(pid)?;
        let (wall, sys) = measure(w, workdir)?;
        let after = usage::of_process(pid)?;
        emit(Record::Accounting(Accounting {
            workload: w.name.to_owned(),
            wall_ns: nanos(wall),
            sys_ns: nanos(sys),
            daemon_cpu_ns: after.cpu_ns - before.cpu_ns,
            programs: program_deltas(&before, &after),
        }));
    }
    usage::set_stats_enabled(false)?;
    emit_memory(BENCH_POLICY, &usage::of_process(pid)?)?;
    stop(guard)?;
    Ok(())
}

/// What the kernel counted between two readings, summed per program name.
fn program_deltas(before: &Usage, after: &Usage) -> Vec<ProgramRuns> {
    let earlier: BTreeMap<u32, _> = before.programs.iter().map(|p| (p.id, p)).collect();
    let mut by_name: BTreeMap<&str, ProgramRuns> = BTreeMap::new();
    for p in &after.programs {
        let (count, time) = earlier
            .get(&p.id)
            .map_or((0, 0), |b| (b.run_count, b.run_time_ns));
        let sum = by_name.entry(&p.name).or_insert_with(|| ProgramRuns {
            name: p.name.clone(),
            run_count: 0,
            run_time_ns: 0,
        });
        sum.run_count += p.run_count - count;
        sum.run_time_ns += p.run_time_ns - time;
    }
    by_name.into_values().collect()
}

fn emit_memory(policy: &str, u: &Usage) -> Result<()> {
    emit(Record::Memory(Memory {
        policy: policy.to_owned(),
        protected_objects: protected_objects(policy)?,
        rss_bytes: u.rss_bytes,
        maps: u
            .maps
            .iter()
            .map(|m| MapMemory {
                name: m.name.clone(),
                max_entries: m.max_entries,
                memlock_bytes: m.memlock_bytes,
            })
            .collect(),
    }));
    Ok(())
}

/// Starts `rtguard run --policy POLICY`, records the time to READY=1 and the daemon's
/// own account of it, and checks that it enforces.
fn start(policy: &str) -> Result<RunningGuard> {
    let started = Instant::now();
    let guard = match common::start_guard(&["--policy", policy]) {
        common::Started::Ready(guard) => guard,
        common::Started::Exited { status, stderr } => {
            bail!("rtguard exited before ready ({status}):\n{stderr}")
        }
    };
    let ready = started.elapsed();
    if guard.status != common::enforcing_status() {
        bail!("rtguard is ready but not enforcing: {}", guard.status);
    }
    settle(guard.pid())?;
    let steps = DaemonStatus::read(&guard.status_file)?
        .startup
        .into_iter()
        .map(|s| (s.step, s.micros))
        .collect();
    let verified_insns = usage::of_process(guard.pid())?
        .programs
        .iter()
        .map(|p| p.verified_insns)
        .sum();
    emit(Record::Start(Start {
        policy: policy.to_owned(),
        ready_ns: nanos(ready),
        steps,
        verified_insns,
    }));
    Ok(guard)
}

/// The ids of the BPF programs loaded now.
fn loaded_programs() -> BTreeSet<u32> {
    aya::programs::loaded_programs()
        .filter_map(Result::ok)
        .map(|p| p.id())
        .collect()
}

/// Waits until every BPF program loaded since `baseline` was read is gone. The kernel
/// frees a program after its last link and file are closed, after a grace period, and a
/// run that followed too soon would pay for that.
fn wait_unloaded(baseline: &BTreeSet<u32>) -> Result<()> {
    let deadline = Instant::now() + SETTLE_LIMIT;
    while !loaded_programs().is_subset(baseline) {
        if Instant::now() > deadline {
            bail!("the previous run's programs were still loaded after {SETTLE_LIMIT:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    Ok(())
}

/// Waits until the daemon has done what it does once after READY=1 (its first census of
/// the cgroups, the configuration watch, the first netfilter sync): a host runs it once,
/// not at every workload. It has settled when a whole [`SETTLE_STEP`] passes with less
/// than [`SETTLE_CPU`] of CPU used by its threads.
fn settle(pid: u32) -> Result<()> {
    let deadline = Instant::now() + SETTLE_LIMIT;
    let mut before = cpu_on(pid)?;
    loop {
        std::thread::sleep(SETTLE_STEP);
        let now = cpu_on(pid)?;
        // A thread that exited takes its time out of the sum: not settled yet.
        if now
            .checked_sub(before)
            .is_some_and(|used| used < SETTLE_CPU)
        {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("rtguard kept using the CPU for {SETTLE_LIMIT:?} after it was ready");
        }
        before = now;
    }
}

/// Longer than the daemon's one-off delays after a start (its resyncs wait 200 and
/// 500 ms), shorter than its census interval (2 s). Under `-icount` with `sleep=off` an
/// idle guest's clock jumps ahead, so waiting costs no host time.
const SETTLE_STEP: Duration = Duration::from_secs(1);
const SETTLE_CPU: Duration = Duration::from_millis(1);
const SETTLE_LIMIT: Duration = Duration::from_secs(30);

/// Time the process's threads have been on a CPU: the first field of each thread's
/// `schedstat`, in nanoseconds (finer than the ticks of `stat`).
fn cpu_on(pid: u32) -> Result<Duration> {
    let (mut total, mut read) = (0, 0);
    for thread in fs::read_dir(format!("/proc/{pid}/task"))? {
        let Ok(schedstat) = fs::read_to_string(thread?.path().join("schedstat")) else {
            continue; // the thread exited
        };
        total += schedstat
            .split_whitespace()
            .next()
            .and_then(|ns| ns.parse::<u64>().ok())
            .context("an unreadable schedstat")?;
        read += 1;
    }
    if read == 0 {
        bail!("no schedstat for any thread of {pid} (a kernel without CONFIG_SCHED_INFO?)");
    }
    Ok(Duration::from_nanos(total))
}

/// Stops the guard and returns its log.
fn stop(guard: RunningGuard) -> Result<String> {
    let (status, log) = guard.stop();
    if !status.success() {
        bail!("rtguard ended with {status}:\n{log}");
    }
    Ok(log)
}

/// Wall time and system time (the runner's and its children's) of one run.
fn measure(w: &Workload, dir: &Workdir) -> Result<(Duration, Duration)> {
    // The runner's size is what each of exec-heavy's `fork`s copies: heap freed since the
    // last run (a BTF parse, a policy resolved) goes back to the kernel first, so that
    // every run starts from the same.
    // SAFETY: only returns free heap memory to the kernel.
    unsafe { libc::malloc_trim(0) };
    let sys = system_time();
    let started = Instant::now();
    w.run(dir).with_context(|| format!("running {}", w.name))?;
    Ok((started.elapsed(), system_time() - sys))
}

fn system_time() -> Duration {
    let of = |who| {
        // SAFETY: getrusage fills the struct it is given.
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        unsafe { libc::getrusage(who, &mut usage) };
        Duration::new(
            usage.ru_stime.tv_sec as u64,
            usage.ru_stime.tv_usec as u32 * 1000,
        )
    };
    of(libc::RUSAGE_SELF) + of(libc::RUSAGE_CHILDREN)
}

/// Protected file objects the policy resolves to on this host.
fn protected_objects(path: &str) -> Result<usize> {
    let policy = policy::load(Path::new(path)).map_err(|e| anyhow::anyhow!(e.render()))?;
    let options = ResolveOptions {
        root: PathBuf::from("/"),
        ..Default::default()
    };
    Ok(resolve::resolve(&policy, &options)?.objects.len())
}

fn write_bench_policy() -> Result<()> {
    let production = common::supervised_production_policy();
    fs::write(PRODUCTION_POLICY, &production)?;
    fs::write(
        BENCH_POLICY,
        format!(
            "{production}\n\
             # The benchmark's 10,000 extra protected objects.\n\
             [[paths]]\n\
             name = \"bench-objects\"\n\
             paths = [\"{PROTECTED_DIR}/*/*\"]\n\
             \n\
             # The benchmark's tree, protected as runtime-state protects /var/lib/containerd.\n\
             [[trees]]\n\
             name = \"bench-tree\"\n\
             paths = [\"{WRITER_TREE}\"]\n\
             trusted_writers = [\"{TRUSTED_WRITER}\"]\n\
             exclude = [\"{EXCLUDED_SUBTREE}\"]\n"
        ),
    )?;
    Ok(())
}

fn emit(record: Record) {
    println!("{}", record.line());
}

fn nanos(d: Duration) -> u64 {
    d.as_nanos() as u64
}
