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

use core::mem::MaybeUninit;

use aya_ebpf::{
    bindings::BPF_F_NO_PREALLOC,
    helpers::{
        bpf_get_current_cgroup_id, bpf_get_current_pid_tgid, bpf_get_current_uid_gid,
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
    Decision,
};

use crate::{
    kernel::{current_comm, zero_words, zeroed_bytes},
    maps::{count_dropped_event, rule_enforces, EVENTS},
};

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
    // Buffers are zeroed a word at a time (see `zero_words`): this program, though it runs
    // only on sysctl writes, is verified at every start like the others.
    let mut key = MaybeUninit::<SysctlKey>::uninit();
    zero_words(key.as_mut_ptr());
    // SAFETY: every byte was zeroed, and a SysctlKey is bytes.
    let key = unsafe { key.assume_init_mut() };
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
    let Some(&rule_id) = (unsafe { PROTECTED_SYSCTLS.get(*key) }) else {
        return SYSCTL_ALLOW;
    };
    let mut current = MaybeUninit::uninit();
    let current: &mut [u8; SYSCTL_VALUE_LEN] = zeroed_bytes::<VALUE_WORDS, _>(&mut current);
    let mut new = MaybeUninit::uninit();
    let new: &mut [u8; SYSCTL_VALUE_LEN] = zeroed_bytes::<VALUE_WORDS, _>(&mut new);
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
    if same_value(current, new) {
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
        key,
        new,
    );
    if enforce {
        SYSCTL_REFUSE
    } else {
        SYSCTL_ALLOW
    }
}

/// Words of a `SYSCTL_VALUE_LEN`-byte value.
const VALUE_WORDS: usize = SYSCTL_VALUE_LEN / 8;

/// Sends the event, written in place in the ring buffer.
#[inline(always)]
fn report(rule_id: u32, decision: Decision, key: &SysctlKey, value: &[u8; SYSCTL_VALUE_LEN]) {
    let Some(mut entry) = EVENTS.reserve::<SysctlEvent>(0) else {
        count_dropped_event();
        return;
    };
    let ev = entry.as_mut_ptr();
    // The fields a cgroup program cannot know (exe, parent, terminal, mount namespace)
    // stay zero.
    zero_words(ev);
    let pid_tgid = bpf_get_current_pid_tgid();
    // SAFETY: the reserved record, ours until it is submitted.
    unsafe {
        let header = &mut (*ev).header;
        header.kind = EventKind::Sysctl as u32;
        header.decision = decision as u32;
        header.actor.cgroup_id = bpf_get_current_cgroup_id();
        header.actor.pid = pid_tgid as u32;
        header.actor.tgid = (pid_tgid >> 32) as u32;
        header.actor.uid = bpf_get_current_uid_gid() as u32;
        current_comm(&mut header.actor.comm);
        (*ev).rule_id = rule_id;
        (*ev).key = *key;
        (*ev).value = *value;
    }
    entry.submit(0);
}
