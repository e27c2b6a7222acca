//! Byte offsets of the kernel struct fields the programs read, and hook arities that
//! changed between kernel versions.
//!
//! Rust eBPF programs get no CO-RE relocations, so these are resolved by userspace from the
//! running kernel's BTF (`/sys/kernel/btf/vmlinux`) and written into the program as a
//! read-only global before load. Nothing here is ever compiled in from one kernel.

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KernelOffsets {
    pub dentry_d_inode: u32,
    pub dentry_d_parent: u32,
    /// `struct dentry` → `d_name` (a `struct qstr`).
    pub dentry_d_name: u32,
    /// `struct qstr` → `name`.
    pub qstr_name: u32,
    pub inode_i_ino: u32,
    pub inode_i_sb: u32,
    /// `struct inode` → `i_mode` (file type and permission bits).
    pub inode_i_mode: u32,
    /// `struct inode` → `i_generation`: set afresh each time an inode number is reused
    /// (randomly on ext4, xfs and tmpfs; btrfs uses the creating transaction's id).
    pub inode_i_generation: u32,
    pub super_block_s_dev: u32,
    /// `struct super_block` → `s_magic`: which filesystem it is. On btrfs the identity
    /// `stat(2)` reports is the subvolume's, not the superblock's (see `FsLayout`).
    pub super_block_s_magic: u32,
    /// `struct dentry` → `d_sb`, and `struct super_block` → `s_root`: a dentry that is
    /// its own parent is the filesystem's root only if it is `d_sb->s_root`; otherwise it
    /// is disconnected (found by file handle, not yet linked to its parent).
    pub dentry_d_sb: u32,
    pub super_block_s_root: u32,
    /// `struct path` → `dentry`.
    pub path_dentry: u32,
    /// `struct vfsmount` → `mnt_root`: the dentry a mount shows at its mount point.
    pub vfsmount_mnt_root: u32,
    pub file_f_path: u32,
    pub file_f_inode: u32,
    pub file_f_mode: u32,
    pub file_f_flags: u32,
    /// `struct iattr` → `ia_valid`.
    pub iattr_ia_valid: u32,
    pub task_real_parent: u32,
    pub task_tgid: u32,
    pub task_mm: u32,
    /// `struct task_struct` → `comm`.
    pub task_comm: u32,
    pub mm_exe_file: u32,
    /// `struct mm_struct` → `arg_start` / `arg_end`: the process's argv strings in its
    /// own memory (what /proc/PID/cmdline shows).
    pub mm_arg_start: u32,
    pub mm_arg_end: u32,
    /// `struct linux_binprm` → `file`: the file being executed.
    pub linux_binprm_file: u32,
    /// `struct linux_binprm` → `filename`: the path as execve was given it.
    pub linux_binprm_filename: u32,
    /// `struct linux_binprm` → `interp`: `filename` until a `#!` script or binfmt_misc
    /// handler names an interpreter.
    pub linux_binprm_interp: u32,
    /// Where `struct pt_regs` keeps the syscall number a task entered the kernel with
    /// (x86_64: `orig_ax`) and the argv argument of `execve` and of `execveat` (`si`,
    /// `dx`), and those two syscalls' numbers: how the exec layer finds the caller's argv.
    pub pt_regs_syscall_nr: u32,
    pub pt_regs_execve_argv: u32,
    pub pt_regs_execveat_argv: u32,
    pub execve_nr: u32,
    pub execveat_nr: u32,
    /// Parameters of the function the `inode_setattr` program is attached to. The LSM
    /// hook has 2 before Linux 6.3 and 3 after it gained a `struct mnt_idmap *` first;
    /// `security_inode_setattr` (fmod_ret) has had the namespace first since 5.12. The
    /// dentry is the one before the last.
    pub inode_setattr_args: u32,
    /// Parameters of the function the `inode_setxattr` program is attached to: 6 since
    /// Linux 5.12 (a `struct user_namespace *`, later `struct mnt_idmap *`, first), 5
    /// before. The dentry and the attribute's name follow it.
    pub inode_setxattr_args: u32,
    /// Parameters of the function the `inode_rename` program is attached to: 4 for the
    /// LSM hook, 5 for `security_inode_rename`, whose last is the rename flags (the
    /// function calls the hook twice for `RENAME_EXCHANGE`; an fmod_ret program sees the
    /// call once, with the flag).
    pub inode_rename_args: u32,
    /// `struct task_struct` → `nsproxy`, `struct nsproxy` → `mnt_ns`, and the mount
    /// namespace's inode number (`struct mnt_namespace` → `ns.inum`): which namespace a
    /// mount is made in.
    pub task_nsproxy: u32,
    pub nsproxy_mnt_ns: u32,
    pub mnt_namespace_inum: u32,
    /// `struct renamedata` → `old_dentry` / `new_dentry`: the argument of `vfs_rename`
    /// (Linux 5.12 and later). Zero when the kernel has no such struct; the tree-walk
    /// cache then stays off.
    pub renamedata_old_dentry: u32,
    pub renamedata_new_dentry: u32,
    /// `struct task_struct` → `signal`, `struct signal_struct` → `tty`, and the fields
    /// `tty_devnum()` reads: `struct tty_struct` → `index` and `driver`, `struct
    /// tty_driver` → `major` and `minor_start`. The acting task's controlling terminal,
    /// where the daemon tells the person at it what was refused.
    pub task_signal: u32,
    pub signal_struct_tty: u32,
    pub tty_struct_index: u32,
    pub tty_struct_driver: u32,
    pub tty_driver_major: u32,
    pub tty_driver_minor_start: u32,
    /// `struct task_struct` → `sighand`; where `action[0].sa.sa_handler` is in `struct
    /// sighand_struct`; and the size of a `struct k_sigaction`, the array's stride. What a
    /// signal's target does with it: the dispositions, which a thread group shares.
    pub task_sighand: u32,
    pub sighand_action_handler: u32,
    pub k_sigaction_size: u32,
    /// `struct proc_inode` → `pid` and `vfs_inode`, `struct pid` → `tasks[PIDTYPE_PID]`
    /// and `struct task_struct` → `pid_links[PIDTYPE_PID]`: the process a `/proc/PID/…`
    /// file is about, as `proc_pid()` and `pid_task()` find it. `proc_inode` is internal
    /// to procfs; where BTF lacks it these stay zero ([`KernelOffsets::proc_pid_resolved`])
    /// and writes to `/proc/PID/oom_score_adj` are not judged.
    pub proc_inode_pid: u32,
    pub proc_inode_vfs_inode: u32,
    pub pid_tasks: u32,
    pub task_pid_links: u32,
    /// `struct sock` → `sk_protocol` (a u16 since Linux 5.6), `__sk_common.skc_net.net`,
    /// `struct net` → `ns.inum`, and `struct sk_buff` → `data` and `len`: which netlink
    /// family a `sendmsg` goes to, in which network namespace, and its bytes (netlink
    /// copies a message into one linear buffer).
    pub sock_sk_protocol: u32,
    pub sock_net: u32,
    pub net_ns_inum: u32,
    pub sk_buff_data: u32,
    pub sk_buff_len: u32,
    /// `struct task_struct` → `cred` and `struct cred` → `cap_effective` (a 64-bit mask
    /// on every kernel, whether `kernel_cap_t` is a `u64` or two `u32`s): nfnetlink
    /// refuses a sender without `CAP_NET_ADMIN` itself, and its batches are not walked.
    pub task_cred: u32,
    pub cred_cap_effective: u32,
    /// Degraded mode finds the socket a `sendmsg`/`sendto` goes to from its descriptor:
    /// `struct task_struct` → `files`, `struct files_struct` → `fdt`, `struct fdtable` →
    /// `max_fds` and `fd`, `struct file` → `private_data` (a socket file's `struct
    /// socket`), `struct socket` → `sk`, and `__sk_common.skc_family`.
    pub task_files: u32,
    pub files_struct_fdt: u32,
    pub fdtable_max_fds: u32,
    pub fdtable_fd: u32,
    pub file_private_data: u32,
    pub socket_sk: u32,
    pub sock_sk_family: u32,
}

impl KernelOffsets {
    /// True once the loader has filled the block. A zero `i_sb` offset cannot be right
    /// (`i_mode` comes first in `struct inode`), so the programs refuse to act on it.
    pub const fn is_resolved(&self) -> bool {
        self.inode_i_sb != 0 && self.super_block_s_dev != 0 && self.inode_setattr_args != 0
    }

    /// True when the process behind a `/proc/PID/…` file can be found. (`pid` is the
    /// first member of `struct proc_inode`, so its offset is 0 on every kernel.)
    pub const fn proc_pid_resolved(&self) -> bool {
        self.proc_inode_vfs_inode != 0 && self.pid_tasks != 0 && self.task_pid_links != 0
    }
}
