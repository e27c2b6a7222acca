//! File layer: destructive operations on protected inodes.

use aya_ebpf::{
    helpers::{bpf_get_current_comm, bpf_get_current_pid_tgid, bpf_get_current_uid_gid},
    macros::lsm,
    programs::LsmContext,
};
use core::ffi::c_void;
use guard_common::{Decision, FileEvent, FileOp, InodeKey};

use crate::{
    kernel::dentry_inode_key,
    maps::{count_dropped_event, enforcing, EVENTS, PROTECTED_INODES},
};

/// -EPERM: what a shell shows as "Operation not permitted".
const EPERM: i32 = -1;

/// `security_path_unlink(const struct path *dir, struct dentry *dentry)`.
#[lsm(hook = "path_unlink")]
pub fn path_unlink(ctx: LsmContext) -> i32 {
    // BPF LSM programs get the previous program's verdict as an extra last argument;
    // never turn an earlier denial into an allow.
    let previous: i32 = ctx.arg(2);
    if previous != 0 {
        return previous;
    }
    let dentry: *const c_void = ctx.arg(1);
    decide(FileOp::Unlink, dentry)
}

#[inline(always)]
fn decide(op: FileOp, dentry: *const c_void) -> i32 {
    let Some(target) = dentry_inode_key(dentry) else {
        return 0;
    };
    if unsafe { PROTECTED_INODES.get(target) }.is_none() {
        return 0;
    }
    let enforce = enforcing();
    let decision = if enforce {
        Decision::Blocked
    } else {
        Decision::WouldBlock
    };
    report(op, decision, target);
    if enforce {
        EPERM
    } else {
        0
    }
}

#[inline(always)]
fn report(op: FileOp, decision: Decision, target: InodeKey) {
    let Some(mut entry) = EVENTS.reserve::<FileEvent>(0) else {
        count_dropped_event();
        return;
    };
    let pid_tgid = bpf_get_current_pid_tgid();
    entry.write(FileEvent {
        target,
        op: op as u32,
        decision: decision as u32,
        pid: pid_tgid as u32,
        tgid: (pid_tgid >> 32) as u32,
        uid: bpf_get_current_uid_gid() as u32,
        _pad: 0,
        comm: bpf_get_current_comm().unwrap_or_default(),
    });
    entry.submit(0);
}
