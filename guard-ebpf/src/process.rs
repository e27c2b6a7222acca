//! Process layer: a signal that would end or stop a protected daemon (containerd, dockerd,
//! the shims, rtguard) is refused unless it comes from pid 1, from the process itself, or
//! from a supervisor the policy names. Whether it would is read from the target's own
//! dispositions (`ProcessProtection::refusal` in guard-common decides). A ptrace attach to
//! one, which lets the tracer kill or rewrite it, is refused the same way, and so is
//! writing its `/proc/PID/oom_score_adj` (the file layer's `file_open` finds the process).

use aya_ebpf::{
    bindings::BPF_F_NO_PREALLOC,
    helpers::{bpf_get_current_pid_tgid, bpf_probe_read_kernel},
    macros::{lsm, map},
    maps::{HashMap, PerCpuArray},
    programs::LsmContext,
};
use guard_common::{
    event::EventKind,
    process::{
        ProcessReason, MAX_PROTECTED_CGROUPS, MAX_PROTECTED_PROCESSES, MAX_SIGNAL, OP_OOM_ADJUST,
        OP_PTRACE_ATTACH, PTRACE_MODE_ATTACH,
    },
    Decision, ProcessEvent, ProcessProtection, TrustKey,
};

use crate::{
    chain::{after_previous, restated, EPERM},
    kernel::{
        arg_scalar, current_cmdline, current_task, fill_header, resolved_offsets, task_disposition,
        task_exe, task_tgid, KernelPtr,
    },
    maps::{count_dropped_event, rule_enforces, EVENTS, TRUSTED_EXES},
};

/// Protected executables by identity → rule, listed signals, and the signals their runtime
/// ends them on.
#[map]
pub static PROTECTED_PROCESSES: HashMap<guard_common::InodeKey, ProcessProtection> =
    HashMap::with_max_entries(MAX_PROTECTED_PROCESSES, BPF_F_NO_PREALLOC);

/// The cgroups that hold protected processes, and their ancestors, by the cgroup
/// directory's identity → rule id: `cgroup.kill` or `cgroup.freeze` there would end or
/// stop them. The daemon keeps it to a census of `/proc`, as membership changes with no
/// hook of ours.
#[map]
pub static PROTECTED_CGROUPS: HashMap<guard_common::InodeKey, u32> =
    HashMap::with_max_entries(MAX_PROTECTED_CGROUPS, BPF_F_NO_PREALLOC);

/// One process event under construction per CPU.
#[map]
pub static PROCESS_EVENT_SCRATCH: PerCpuArray<ProcessEvent> = PerCpuArray::with_max_entries(1, 0);

/// `security_task_kill(struct task_struct *p, struct kernel_siginfo *info, int sig,
/// const struct cred *cred)`: signals sent by user space (kill, tgkill, pidfd_send_signal).
/// Signals the kernel raises itself (the OOM killer, SIGPIPE) don't come through here.
#[lsm(hook = "task_kill")]
pub fn task_kill(ctx: LsmContext) -> i32 {
    after_previous(&ctx, 4, || {
        let sig: i32 = ctx.arg(2);
        restated(rtguard_process_decide(
            arg_scalar(&ctx, 0) as u64,
            sig as u32,
        ))
    })
}

/// `security_ptrace_access_check(struct task_struct *child, unsigned int mode)`: every
/// access to another process that needs ptrace rights, from `PTRACE_ATTACH`/`PTRACE_SEIZE`
/// to reading `/proc/PID/environ`. Only attach-mode access is refused: it is what lets a
/// tracer kill, stop or rewrite the process. The kernel lets a thread group at itself
/// before asking the LSMs.
#[lsm(hook = "ptrace_access_check")]
pub fn ptrace_access_check(ctx: LsmContext) -> i32 {
    after_previous(&ctx, 2, || {
        let mode: u32 = ctx.arg(1);
        if mode & PTRACE_MODE_ATTACH == 0 {
            return 0;
        }
        restated(rtguard_process_decide(
            arg_scalar(&ctx, 0) as u64,
            OP_PTRACE_ATTACH,
        ))
    })
}

/// Decides a signal `op` (1 to 64) or a ptrace attach (`OP_PTRACE_ATTACH`) aimed at
/// `target`.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn rtguard_process_decide(target: u64, op: u32) -> i32 {
    // Signal 0 only probes for existence; real signals are 1..=64.
    if op == 0 || (op > MAX_SIGNAL && op != OP_PTRACE_ATTACH && op != OP_OOM_ADJUST) {
        return 0;
    }
    let Some(off) = resolved_offsets() else {
        return 0;
    };
    let target = target as KernelPtr;
    let Some(target_exe) = task_exe(off, target) else {
        return 0;
    };
    let Some(p) = (unsafe { PROTECTED_PROCESSES.get(target_exe) }).copied() else {
        return 0;
    };
    // The dispositions are the thread group's (`sighand` is shared by its threads), so a
    // signal aimed at one thread (tgkill) is judged as one aimed at the process. A fatal
    // signal to one thread kills the whole group.
    let reason = if op == OP_PTRACE_ATTACH {
        ProcessReason::PtraceAttach
    } else if op == OP_OOM_ADJUST {
        ProcessReason::OomAdjust
    } else {
        match p.refusal(op, task_disposition(off, target, op)) {
            Some(reason) => reason,
            None => return 0,
        }
    };
    let task = current_task();
    let tgid = (bpf_get_current_pid_tgid() >> 32) as u32;
    // pid 1 supervises everything; a process may signal itself (its own shutdown path).
    if tgid == 1 || task_tgid(off, target) == Some(tgid) {
        return 0;
    }
    let actor_exe = task_exe(off, task).unwrap_or_default();
    if unsafe { TRUSTED_EXES.get(TrustKey::new(actor_exe, p.rule_id)) }.is_some() {
        return 0;
    }
    // The runtime sets its own daemons' OOM scores: containerd sets each shim's right
    // after starting it (the shim is no longer its child by then), dockerd containerd's.
    if op == OP_OOM_ADJUST && unsafe { PROTECTED_PROCESSES.get(actor_exe) }.is_some() {
        return 0;
    }
    let enforce = rule_enforces(p.rule_id);
    let decision = if enforce {
        Decision::Blocked
    } else {
        Decision::WouldBlock
    };
    if let Some(ev) = PROCESS_EVENT_SCRATCH.get_ptr_mut(0) {
        unsafe {
            (*ev).target_exe = target_exe;
            (*ev).rule_id = p.rule_id;
            (*ev).signal = if op > MAX_SIGNAL { 0 } else { op };
            (*ev).target_pid = task_tgid(off, target).unwrap_or(0);
            (*ev).reason = reason as u32;
            fill_header(
                &mut (*ev).header,
                EventKind::Process,
                decision,
                off,
                task,
                actor_exe,
            );
            (*ev).target_comm = bpf_probe_read_kernel(
                target
                    .cast::<u8>()
                    .add(off.task_comm as usize)
                    .cast::<[u8; 16]>(),
            )
            .unwrap_or_default();
            current_cmdline(off, task, &mut (*ev).cmdline);
        }
        if EVENTS.output::<ProcessEvent>(unsafe { &*ev }, 0).is_err() {
            count_dropped_event();
        }
    } else {
        count_dropped_event();
    }
    if enforce {
        EPERM
    } else {
        0
    }
}
