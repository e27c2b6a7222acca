//! Degraded mode: what the syscall tracepoints report where the kernel refuses BPF LSM
//! programs. Nothing is decided in the kernel; userspace matches the paths against the
//! policy and records "would block" with `enforced: false`.

/// Bytes kept of each path argument (NUL-terminated).
pub const SYSCALL_PATH_LEN: usize = 256;
/// Arguments of an execve kept for the actor's command line, and bytes kept of each.
pub const EXEC_ARGS: usize = 4;
pub const EXEC_ARG_LEN: usize = 64;

/// The syscall a [`SyscallEvent`] reports.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, num_enum::TryFromPrimitive)]
pub enum Syscall {
    Unlinkat = 1,
    Unlink = 2,
    Rmdir = 3,
    Renameat2 = 4,
    Renameat = 5,
    Rename = 6,
    /// openat with O_WRONLY, O_RDWR or O_TRUNC.
    OpenatWrite = 7,
    Truncate = 8,
    Execve = 9,
}

impl Syscall {
    pub fn from_u32(raw: u32) -> Option<Self> {
        Self::try_from(raw).ok()
    }
}

/// One observed syscall entry.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct SyscallEvent {
    /// [`Syscall`] as u32.
    pub syscall: u32,
    pub pid: u32,
    pub tgid: u32,
    pub uid: u32,
    /// Directory fd the first path is relative to (AT_FDCWD = -100).
    pub dfd: i64,
    /// Directory fd of the second path (renames).
    pub dfd2: i64,
    /// `flag`/`flags` argument (unlinkat's AT_REMOVEDIR, openat's O_* flags).
    pub flags: u64,
    pub comm: [u8; crate::COMM_LEN],
    /// The (first) path argument; for execve, the filename.
    pub path: [u8; SYSCALL_PATH_LEN],
    /// The second path (renames), or for execve the first [`EXEC_ARGS`] arguments in
    /// slots of [`EXEC_ARG_LEN`] bytes.
    pub path2: [u8; SYSCALL_PATH_LEN],
}

const _: () = assert!(EXEC_ARGS * EXEC_ARG_LEN == SYSCALL_PATH_LEN);

/// Where the syscall arguments start in a `syscalls/sys_enter_*` tracepoint record,
/// read by userspace from the tracepoint's format file and handed to the programs.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TracepointLayout {
    /// Offset of the first argument; each argument takes 8 bytes.
    pub args_offset: u32,
    pub _pad: u32,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn syscalls_round_trip() {
        for raw in 1..=9 {
            assert_eq!(Syscall::from_u32(raw).map(|s| s as u32), Some(raw));
        }
        assert_eq!(Syscall::from_u32(0), None);
    }

    #[test]
    fn event_has_no_implicit_padding() {
        assert_eq!(
            core::mem::size_of::<SyscallEvent>(),
            4 * 4 + 3 * 8 + crate::COMM_LEN + 2 * SYSCALL_PATH_LEN
        );
    }
}
