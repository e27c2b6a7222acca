//! Programs that decide nothing, on the hooks rtguard's programs attach to with BPF LSM.
//!
//! `cargo xtask bench` attaches them in place of rtguard to measure what the hooks
//! themselves cost: the LSM dispatch and the BPF trampoline around every run, which any
//! program on these hooks pays, however little it does. rtguard's overhead over this floor
//! is what its programs add. The names are the hooks' (and the rename watcher's, as in
//! rtguard's object), so the loader's own hook lists name them.
#![cfg_attr(target_arch = "bpf", no_std)]
#![cfg_attr(target_arch = "bpf", no_main)]

use aya_ebpf::{
    macros::{fexit, lsm},
    programs::{FExitContext, LsmContext},
};

#[cfg(target_arch = "bpf")]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[cfg(not(target_arch = "bpf"))]
fn main() {}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 4] = *b"GPL\0";

#[lsm(hook = "path_unlink")]
pub fn path_unlink(_ctx: LsmContext) -> i32 {
    0
}

#[lsm(hook = "path_rmdir")]
pub fn path_rmdir(_ctx: LsmContext) -> i32 {
    0
}

#[lsm(hook = "path_rename")]
pub fn path_rename(_ctx: LsmContext) -> i32 {
    0
}

#[lsm(hook = "path_truncate")]
pub fn path_truncate(_ctx: LsmContext) -> i32 {
    0
}

#[lsm(hook = "path_chmod")]
pub fn path_chmod(_ctx: LsmContext) -> i32 {
    0
}

#[lsm(hook = "path_chown")]
pub fn path_chown(_ctx: LsmContext) -> i32 {
    0
}

#[lsm(hook = "path_symlink")]
pub fn path_symlink(_ctx: LsmContext) -> i32 {
    0
}

#[lsm(hook = "path_mknod")]
pub fn path_mknod(_ctx: LsmContext) -> i32 {
    0
}

#[lsm(hook = "path_mkdir")]
pub fn path_mkdir(_ctx: LsmContext) -> i32 {
    0
}

#[lsm(hook = "path_link")]
pub fn path_link(_ctx: LsmContext) -> i32 {
    0
}

#[lsm(hook = "file_open")]
pub fn file_open(_ctx: LsmContext) -> i32 {
    0
}

#[lsm(hook = "sb_mount")]
pub fn sb_mount(_ctx: LsmContext) -> i32 {
    0
}

#[lsm(hook = "move_mount")]
pub fn move_mount(_ctx: LsmContext) -> i32 {
    0
}

#[lsm(hook = "sb_umount")]
pub fn sb_umount(_ctx: LsmContext) -> i32 {
    0
}

#[lsm(hook = "inode_setxattr")]
pub fn inode_setxattr(_ctx: LsmContext) -> i32 {
    0
}

#[lsm(hook = "inode_set_acl")]
pub fn inode_set_acl(_ctx: LsmContext) -> i32 {
    0
}

#[lsm(hook = "file_ioctl")]
pub fn file_ioctl(_ctx: LsmContext) -> i32 {
    0
}

#[lsm(hook = "inode_file_setattr")]
pub fn inode_file_setattr(_ctx: LsmContext) -> i32 {
    0
}

#[lsm(hook = "bprm_check_security")]
pub fn bprm_check_security(_ctx: LsmContext) -> i32 {
    0
}

#[lsm(hook = "task_kill")]
pub fn task_kill(_ctx: LsmContext) -> i32 {
    0
}

#[lsm(hook = "ptrace_access_check")]
pub fn ptrace_access_check(_ctx: LsmContext) -> i32 {
    0
}

#[lsm(hook = "netlink_send")]
pub fn netlink_send(_ctx: LsmContext) -> i32 {
    0
}

#[fexit(function = "vfs_rename")]
pub fn vfs_rename_done(_ctx: FExitContext) -> i32 {
    0
}
