//! What the programs depend on themselves: writes that change a sysctl of
//! `guard_common::sysctl::GUARD_SYSCTLS` (`kernel.ftrace_enabled`) are refused like any
//! protected object's.
//!
//! A cgroup program, not an LSM hook: `BPF_CGROUP_SYSCTL` is the kernel's hook for sysctl
//! writes. It names the sysctl (whichever procfs mount the write went through), it runs
//! on every kernel rtguard supports whatever the LSM list says, and it is not a
//! trampoline, so it keeps refusing the very sysctl that would switch trampolines off.
//! Attached to the root of the cgroup v2 hierarchy (with `BPF_F_ALLOW_MULTI`, so no
//! program attached further down replaces it), it runs for every process on the host.

use aya_ebpf::{
    bindings::BPF_F_NO_PREALLOC,
    helpers::{
        bpf_get_current_cgroup_id, bpf_get_current_comm, bpf_get_current_pid_tgid,
        bpf_get_current_uid_gid,
        generated::{bpf_sysctl_get_current_value, bpf_sysctl_get_name, bpf_sysctl_get_new_value},
    },
    macros::{cgroup_sysctl, map},
    maps::HashMap,
    programs::SysctlContext,
};
use guard_common::{
    event::EventKind,
    sysctl::{
        same_value, SysctlEvent, SysctlKey, MAX_PROTECTED_SYSCTLS, SYSCTL_NAME_LEN,
        SYSCTL_VALUE_LEN,
    },
    Decision, EventActor, EventHeader,
};

use crate::maps::{count_dropped_event, rule_enforces, EVENTS};

/// Protected sysctls by name → rule id.
#[map]
pub static PROTECTED_SYSCTLS: HashMap<SysctlKey, u32> =
    HashMap::with_max_entries(MAX_PROTECTED_SYSCTLS, BPF_F_NO_PREALLOC);

/// A cgroup sysctl program's answers.
const SYSCTL_ALLOW: i32 = 1;
/// The write fails with EPERM.
const SYSCTL_REFUSE: i32 = 0;

#[cgroup_sysctl]
pub fn sysctl_write(ctx: SysctlContext) -> i32 {
    // SAFETY: the context the kernel passes; `write` is readable.
    if unsafe { (*ctx.sysctl).write } == 0 {
        return SYSCTL_ALLOW;
    }
    let mut key = SysctlKey {
        name: [0; SYSCTL_NAME_LEN],
    };
    // Flags 0: the full name below /proc/sys, `kernel/ftrace_enabled`. A longer name is
    // cut (E2BIG) and matches no key.
    if unsafe {
        bpf_sysctl_get_name(
            ctx.sysctl,
            key.name.as_mut_ptr().cast(),
            SYSCTL_NAME_LEN as u64,
            0,
        )
    } < 0
    {
        return SYSCTL_ALLOW;
    }
    let Some(&rule_id) = (unsafe { PROTECTED_SYSCTLS.get(key) }) else {
        return SYSCTL_ALLOW;
    };
    let mut current = [0u8; SYSCTL_VALUE_LEN];
    let mut new = [0u8; SYSCTL_VALUE_LEN];
    // Either may be cut (E2BIG) and still hold its start; a value that could not be read
    // at all stays empty and differs from one that could.
    unsafe {
        bpf_sysctl_get_current_value(
            ctx.sysctl,
            current.as_mut_ptr().cast(),
            SYSCTL_VALUE_LEN as u64,
        );
        bpf_sysctl_get_new_value(ctx.sysctl, new.as_mut_ptr().cast(), SYSCTL_VALUE_LEN as u64);
    }
    // Writing the value it has (`sysctl --system` applying a distribution default) changes
    // nothing the programs depend on.
    if same_value(&current, &new) {
        return SYSCTL_ALLOW;
    }
    let enforce = rule_enforces(rule_id);
    report(
        rule_id,
        if enforce {
            Decision::Blocked
        } else {
            Decision::WouldBlock
        },
        &key,
        &new,
    );
    if enforce {
        SYSCTL_REFUSE
    } else {
        SYSCTL_ALLOW
    }
}

#[inline(always)]
fn report(rule_id: u32, decision: Decision, key: &SysctlKey, value: &[u8; SYSCTL_VALUE_LEN]) {
    let Some(mut entry) = EVENTS.reserve::<SysctlEvent>(0) else {
        count_dropped_event();
        return;
    };
    let pid_tgid = bpf_get_current_pid_tgid();
    let event = SysctlEvent {
        header: EventHeader {
            kind: EventKind::Sysctl as u32,
            decision: decision as u32,
            actor: EventActor {
                cgroup_id: unsafe { bpf_get_current_cgroup_id() },
                pid: pid_tgid as u32,
                tgid: (pid_tgid >> 32) as u32,
                uid: bpf_get_current_uid_gid() as u32,
                comm: bpf_get_current_comm().unwrap_or_default(),
                ..EventActor::default()
            },
        },
        rule_id,
        _pad: 0,
        key: *key,
        value: *value,
    };
    entry.write(event);
    entry.submit(0);
}
