//! `rtguard status`: what the running daemon enforces, from the status file it publishes.

use std::path::{Path, PathBuf};

use clap::Args;

use super::exit;
use crate::{
    daemon::status::{default_path, is_rtguard, DaemonStatus, GuardState},
    host::paths,
    host::usage::{self, Usage},
    loader::PinDir,
};

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Print the status as JSON.
    #[arg(long)]
    pub json: bool,

    /// The daemon's status file [default: /run/rtguard/status.json].
    #[arg(long, value_name = "FILE")]
    pub status_file: Option<PathBuf>,

    /// Where a daemon started with --pin pins its programs.
    #[arg(long, value_name = "DIR", default_value = paths::BPFFS_DIR)]
    pub pin_dir: PathBuf,
}

/// With no daemon running, programs an earlier one pinned may still enforce: say so.
fn report_pins(dir: &Path) {
    match PinDir::new(dir).pinned_links() {
        Ok(0) | Err(_) => {}
        Ok(n) => eprintln!(
            "{n} program(s) pinned under {} still enforce the policy the last daemon loaded, \
             without recording or re-protecting after upgrades; start rtguard to take them over, \
             or `rtguard unload` to remove them",
            dir.display()
        ),
    }
}

/// Exit status when the daemon runs but does not enforce (degraded or audit mode).
pub const NOT_ENFORCING: u8 = exit::ENFORCEMENT_UNAVAILABLE;
/// Exit status when no daemon is running.
pub const NOT_RUNNING: u8 = exit::FAILURE;

pub fn status(args: StatusArgs) -> u8 {
    let path = args.status_file.unwrap_or_else(default_path);
    let status = match DaemonStatus::read(&path) {
        Ok(status) => status,
        Err(e) => {
            eprintln!(
                "rtguard is not running (no readable status at {}: {e})",
                path.display()
            );
            report_pins(&args.pin_dir);
            return NOT_RUNNING;
        }
    };
    if !is_rtguard(status.pid) {
        eprintln!(
            "rtguard is not running (stale status from pid {}, last updated {})",
            status.pid, status.updated
        );
        report_pins(&args.pin_dir);
        return NOT_RUNNING;
    }
    // What the guard costs, read live from the kernel (needs root; left out otherwise).
    let usage = usage::of_process(status.pid).ok();
    if args.json {
        let mut json = serde_json::to_value(&status).unwrap_or_default();
        if let (Some(object), Some(usage)) = (json.as_object_mut(), &usage) {
            object.insert(
                "usage".to_owned(),
                serde_json::to_value(usage).unwrap_or_default(),
            );
        }
        println!(
            "{}",
            serde_json::to_string_pretty(&json).unwrap_or_default()
        );
    } else {
        print!("{}", render(&status));
        if let Some(usage) = &usage {
            print!("{}", render_usage(usage));
        }
    }
    if let Some(proof) = status.proof.as_ref().filter(|p| !p.passed) {
        eprintln!(
            "rtguard: the proof of enforcement at {} failed: {}",
            proof.at, proof.detail
        );
        return NOT_ENFORCING;
    }
    if let Some(proof) = status
        .proof
        .as_ref()
        .filter(|p| p.overdue(time::OffsetDateTime::now_utc()))
    {
        eprintln!(
            "rtguard: no proof of enforcement since {} (one is due every {} s): the daemon \
             is not proving what it claims",
            proof.at, proof.interval_secs
        );
        return NOT_ENFORCING;
    }
    match status.state {
        GuardState::Enforcing => exit::OK,
        GuardState::Auditing | GuardState::Degraded => NOT_ENFORCING,
    }
}

fn render(s: &DaemonStatus) -> String {
    let mut out = String::new();
    let mut line = |k: &str, v: String| out.push_str(&format!("{k:<14} {v}\n"));
    line("state:", format!("{} ({})", s.state.as_str(), s.reason));
    line("pid:", format!("{} (since {})", s.pid, s.started));
    line("environment:", s.environment.clone());
    line(
        "policy:",
        format!("{} (sha256 {})", s.policy, short(&s.policy_sha256)),
    );
    for (layer, programs) in &s.layers {
        line(&format!("{layer} layer:"), programs.join(", "));
    }
    if let Some(mechanism) = &s.mechanism {
        line("mechanism:", mechanism.clone());
    }
    if let Some(hooks) = &s.file_hooks {
        line("file hooks:", hooks.clone());
    }
    if let Some(cache) = &s.tree_cache {
        line("tree cache:", cache.clone());
    }
    if let Some(sysctls) = &s.sysctls {
        line("sysctls:", sysctls.clone());
    }
    if let Some(netfilter) = &s.netfilter {
        line("netfilter:", netfilter.clone());
    }
    line(
        "persistence:",
        match &s.pinned {
            Some(dir) => format!("pinned under {dir}: enforcement outlives the daemon"),
            None => "not pinned: enforcement ends with the daemon".to_owned(),
        },
    );
    for check in &s.identities {
        let verdict = if check.passed { "ok" } else { "MISMATCH" };
        line("identity:", format!("{verdict} {check}"));
    }
    line(
        "protected:",
        format!(
            "{} inodes (objects and ancestors), {} trees, {} trusted executables, {} rules",
            s.protected.inodes,
            s.protected.trees,
            s.protected.trusted_executables,
            s.protected.rules
        ),
    );
    for t in &s.self_test {
        line(
            "self-test:",
            format!(
                "{} {}: {}",
                t.layer,
                if t.passed { "passed" } else { "FAILED" },
                t.detail
            ),
        );
    }
    if let Some(p) = &s.proof {
        line(
            "last proof:",
            format!(
                "{} {} (every {} s): {}",
                p.at,
                if p.passed { "passed" } else { "FAILED" },
                p.interval_secs,
                p.detail
            ),
        );
    }
    line(
        "events:",
        format!(
            "{} blocked, {} would-block, {} allowed-upgrade, {} allowed-edit, {} dropped",
            s.events.blocked,
            s.events.would_block,
            s.events.allowed_upgrade,
            s.events.allowed_edit,
            s.events.dropped
        ),
    );
    if s.events.not_judged > 0 {
        line(
            "NOT JUDGED:",
            format!(
                "{} operations: the kernel skipped the guard's programs on a CPU where one \
                 was already running (fmod_ret on a preemptible kernel; booting with bpf \
                 in the LSM list avoids it)",
                s.events.not_judged
            ),
        );
    }
    if s.maintenance.is_empty() {
        line("maintenance:", "no window open".to_owned());
    }
    for w in &s.maintenance {
        line(
            "maintenance:",
            format!(
                "{} until {} ({}; removal {})",
                w.package,
                w.expires,
                w.reason,
                w.removal()
            ),
        );
    }
    if !s.startup.is_empty() {
        let ms = |micros: u64| micros / 1000;
        let steps: Vec<String> = s
            .startup
            .iter()
            .map(|st| format!("{} {} ms", st.step, ms(st.micros)))
            .collect();
        line(
            "ready after:",
            format!(
                "{} ms ({})",
                ms(s.startup.iter().map(|st| st.micros).sum()),
                steps.join(", ")
            ),
        );
    }
    line("updated:", s.updated.clone());
    out
}

fn render_usage(u: &Usage) -> String {
    let mib = |bytes: u64| bytes as f64 / (1024.0 * 1024.0);
    let mut out = format!(
        "{:<14} {:.1} MiB resident, {:.1} MiB in {} BPF maps\n",
        "memory:",
        mib(u.rss_bytes),
        mib(u.map_bytes()),
        u.maps.len()
    );
    let verified: u64 = u.programs.iter().map(|p| p.verified_insns).sum();
    if verified > 0 {
        out.push_str(&format!(
            "{:<14} {verified} instructions verified to load {} programs\n",
            "verifier:",
            u.programs.len()
        ));
    }
    if !u.bpf_stats_enabled {
        out.push_str(&format!(
            "{:<14} not counted (sysctl kernel.bpf_stats_enabled=1 counts runs and time)\n",
            "bpf runs:"
        ));
    }
    for p in u.programs.iter().filter(|p| p.recursion_misses > 0) {
        out.push_str(&format!(
            "{:<14} {:<16} {:>10} calls skipped by the kernel (already running on that CPU)\n",
            "bpf skipped:", p.name, p.recursion_misses
        ));
    }
    for p in u.programs.iter().filter(|p| p.run_count > 0) {
        out.push_str(&format!(
            "{:<14} {:<16} {:>10} runs, {:>8.0} ns/run\n",
            "bpf runs:",
            p.name,
            p.run_count,
            p.mean_ns().unwrap_or_default()
        ));
    }
    out
}

fn short(hash: &str) -> &str {
    hash.get(..12).unwrap_or(hash)
}
