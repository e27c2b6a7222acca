//! Degraded mode: syscall tracepoints that report destructive file syscalls and execs
//! where the kernel refuses BPF LSM programs. They decide nothing; userspace matches the
//! paths against the policy and records "would block", marked as not enforced. Netfilter
//! batches are the exception: `sendmsg` and `sendto` run the netfilter layer's own walk
//! over the sender's memory, and report what it would refuse.

use aya_ebpf::{
    helpers::{
        bpf_get_current_comm, bpf_get_current_pid_tgid, bpf_get_current_uid_gid,
        bpf_probe_read_user, bpf_probe_read_user_str_bytes,
    },
    macros::{map, tracepoint},
    maps::{PerCpuArray, RingBuf},
    programs::TracePointContext,
};
use guard_common::degraded::{
    Syscall, SyscallEvent, TracepointLayout, EXEC_ARGS, EXEC_ARG_LEN, SYSCALL_PATH_LEN,
};

use crate::{maps::count_dropped_event, netfilter::rtguard_netfilter_observe};

/// Observed syscalls for userspace.
#[map]
static SYSCALL_EVENTS: RingBuf = RingBuf::with_byte_size(256 * 1024, 0);

/// One event under construction per CPU (larger than the BPF stack).
#[map]
static SYSCALL_SCRATCH: PerCpuArray<SyscallEvent> = PerCpuArray::with_max_entries(1, 0);

/// Where the arguments start in a sys_enter record, from the tracepoint's format file.
#[unsafe(no_mangle)]
static TRACEPOINT_LAYOUT: TracepointLayout = TracepointLayout {
    args_offset: 0,
    _pad: 0,
};

const O_WRONLY: u64 = 0o1;
const O_RDWR: u64 = 0o2;
const O_TRUNC: u64 = 0o1000;

#[inline(always)]
fn arg(ctx: &TracePointContext, n: usize) -> u64 {
    let base = unsafe { core::ptr::read_volatile(&TRACEPOINT_LAYOUT.args_offset) } as usize;
    if base == 0 {
        return 0;
    }
    unsafe { ctx.read_at::<u64>(base + 8 * n) }.unwrap_or(0)
}

/// Fills the common fields and the path arguments, then sends the event.
#[inline(always)]
fn emit(syscall: Syscall, dfd: u64, path: u64, dfd2: u64, path2: u64, flags: u64) {
    let Some(ev) = SYSCALL_SCRATCH.get_ptr_mut(0) else {
        return;
    };
    let pid_tgid = bpf_get_current_pid_tgid();
    unsafe {
        (*ev).syscall = syscall as u32;
        (*ev).pid = pid_tgid as u32;
        (*ev).tgid = (pid_tgid >> 32) as u32;
        (*ev).uid = bpf_get_current_uid_gid() as u32;
        (*ev).dfd = dfd as i64;
        (*ev).dfd2 = dfd2 as i64;
        (*ev).flags = flags;
        (*ev).comm = bpf_get_current_comm().unwrap_or_default();
        read_user_str(path, &mut (*ev).path);
        if syscall != Syscall::Execve {
            read_user_str(path2, &mut (*ev).path2);
        }
        if SYSCALL_EVENTS.output::<SyscallEvent>(&*ev, 0).is_err() {
            count_dropped_event();
        }
    }
}

#[inline(always)]
fn read_user_str(ptr: u64, dest: &mut [u8; SYSCALL_PATH_LEN]) {
    dest[0] = 0;
    if ptr != 0 && unsafe { bpf_probe_read_user_str_bytes(ptr as *const u8, dest) }.is_err() {
        dest[0] = 0;
    }
}

#[tracepoint(category = "syscalls", name = "sys_enter_unlinkat")]
pub fn sys_enter_unlinkat(ctx: TracePointContext) -> u32 {
    emit(
        Syscall::Unlinkat,
        arg(&ctx, 0),
        arg(&ctx, 1),
        0,
        0,
        arg(&ctx, 2),
    );
    0
}

#[tracepoint(category = "syscalls", name = "sys_enter_unlink")]
pub fn sys_enter_unlink(ctx: TracePointContext) -> u32 {
    emit(Syscall::Unlink, AT_FDCWD, arg(&ctx, 0), 0, 0, 0);
    0
}

#[tracepoint(category = "syscalls", name = "sys_enter_rmdir")]
pub fn sys_enter_rmdir(ctx: TracePointContext) -> u32 {
    emit(Syscall::Rmdir, AT_FDCWD, arg(&ctx, 0), 0, 0, 0);
    0
}

#[tracepoint(category = "syscalls", name = "sys_enter_renameat2")]
pub fn sys_enter_renameat2(ctx: TracePointContext) -> u32 {
    emit(
        Syscall::Renameat2,
        arg(&ctx, 0),
        arg(&ctx, 1),
        arg(&ctx, 2),
        arg(&ctx, 3),
        arg(&ctx, 4),
    );
    0
}

#[tracepoint(category = "syscalls", name = "sys_enter_renameat")]
pub fn sys_enter_renameat(ctx: TracePointContext) -> u32 {
    emit(
        Syscall::Renameat,
        arg(&ctx, 0),
        arg(&ctx, 1),
        arg(&ctx, 2),
        arg(&ctx, 3),
        0,
    );
    0
}

#[tracepoint(category = "syscalls", name = "sys_enter_rename")]
pub fn sys_enter_rename(ctx: TracePointContext) -> u32 {
    emit(
        Syscall::Rename,
        AT_FDCWD,
        arg(&ctx, 0),
        AT_FDCWD,
        arg(&ctx, 1),
        0,
    );
    0
}

#[tracepoint(category = "syscalls", name = "sys_enter_openat")]
pub fn sys_enter_openat(ctx: TracePointContext) -> u32 {
    let flags = arg(&ctx, 2);
    // Only opens that can change the file; reads are the bulk of all opens.
    if flags & (O_WRONLY | O_RDWR | O_TRUNC) != 0 {
        emit(
            Syscall::OpenatWrite,
            arg(&ctx, 0),
            arg(&ctx, 1),
            0,
            0,
            flags,
        );
    }
    0
}

#[tracepoint(category = "syscalls", name = "sys_enter_truncate")]
pub fn sys_enter_truncate(ctx: TracePointContext) -> u32 {
    emit(Syscall::Truncate, AT_FDCWD, arg(&ctx, 0), 0, 0, 0);
    0
}

/// execve: the filename, and the first arguments so the actor's command line is known
/// even when the process is gone by the time userspace looks.
#[tracepoint(category = "syscalls", name = "sys_enter_execve")]
pub fn sys_enter_execve(ctx: TracePointContext) -> u32 {
    let argv = arg(&ctx, 1);
    emit(Syscall::Execve, AT_FDCWD, arg(&ctx, 0), 0, 0, 0);
    let Some(ev) = SYSCALL_SCRATCH.get_ptr_mut(0) else {
        return 0;
    };
    // emit() already sent the filename; send the arguments as a second record in the
    // same slot layout (path2 holds EXEC_ARGS slots of EXEC_ARG_LEN bytes).
    unsafe {
        (*ev).path[0] = 0;
        let slots = &mut *(&raw mut (*ev).path2).cast::<[[u8; EXEC_ARG_LEN]; EXEC_ARGS]>();
        for slot in slots.iter_mut() {
            slot[0] = 0;
        }
        for (i, slot) in slots.iter_mut().enumerate() {
            let Ok(ptr) = bpf_probe_read_user((argv as *const u64).add(i)) else {
                break;
            };
            if ptr == 0 {
                break;
            }
            if bpf_probe_read_user_str_bytes(ptr as *const u8, slot).is_err() {
                slot[0] = 0;
            }
        }
        (*ev).flags = 1; // marks the arguments record
        if SYSCALL_EVENTS.output::<SyscallEvent>(&*ev, 0).is_err() {
            count_dropped_event();
        }
    }
    0
}

/// `sendmsg(fd, msg, flags)`: a netfilter batch, judged by the netfilter layer's walk
/// from the sender's iovecs and reported as it would be refused.
#[tracepoint(category = "syscalls", name = "sys_enter_sendmsg")]
pub fn sys_enter_sendmsg(ctx: TracePointContext) -> u32 {
    rtguard_netfilter_observe(arg(&ctx, 0), arg(&ctx, 1), 0, 1);
    0
}

/// `sendto(fd, buf, len, …)`: how libmnl sends (ipset, and single nf_tables requests).
#[tracepoint(category = "syscalls", name = "sys_enter_sendto")]
pub fn sys_enter_sendto(ctx: TracePointContext) -> u32 {
    rtguard_netfilter_observe(arg(&ctx, 0), arg(&ctx, 1), arg(&ctx, 2), 0);
    0
}

/// AT_FDCWD as the u64 the tracepoint reports it as.
const AT_FDCWD: u64 = -100i64 as u64;
