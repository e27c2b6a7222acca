//! Types shared by the kernel programs (`guard-ebpf`) and userspace (`guard-user`).
//!
//! Every type here is `#[repr(C)]` with explicit padding fields, so the bytes one side
//! writes mean the same thing to the other. Flags are `u32`, never `bool`.
#![no_std]

pub mod degraded;
pub mod event;
pub mod exec;
pub mod file;
pub mod fs_layout;
pub mod hash;
pub mod inode;
pub mod netfilter;
pub mod offsets;
pub mod process;
pub mod rule;
pub mod sysctl;

pub use event::{Decision, EventActor, EventHeader, EventKind, ExecEvent, FileEvent, COMM_LEN};
pub use file::{FileOp, FileProtection, TrustKey};
pub use fs_layout::FsLayout;
pub use inode::{IdentityProbe, InodeKey};
pub use offsets::KernelOffsets;
pub use process::{ProcessEvent, ProcessProtection};

/// Names of the maps and globals, shared so the loader and the programs can't drift apart.
pub mod names {
    pub const PROTECTED_INODES: &str = "PROTECTED_INODES";
    pub const PROTECTED_TREES: &str = "PROTECTED_TREES";
    pub const TREE_DEVICES: &str = "TREE_DEVICES";
    pub const FS_LAYOUT: &str = "FS_LAYOUT";
    pub const TRUSTED_EXES: &str = "TRUSTED_EXES";
    pub const RULES: &str = "RULES";
    pub const EVENTS: &str = "EVENTS";
    pub const DROPPED_EVENTS: &str = "DROPPED_EVENTS";
    pub const OFFSETS: &str = "OFFSETS";
    pub const GUARD_CONFIG: &str = "GUARD_CONFIG";
    pub const SYSCALL_EVENTS: &str = "SYSCALL_EVENTS";
    pub const TRACEPOINT_LAYOUT: &str = "TRACEPOINT_LAYOUT";
    pub const COMMAND_CONFIG: &str = "COMMAND_CONFIG";
    pub const COMMAND_BINARIES: &str = "COMMAND_BINARIES";
    pub const COMMAND_CLASSES: &str = "COMMAND_CLASSES";
    pub const COMMAND_WORDS: &str = "COMMAND_WORDS";
    pub const COMMAND_OBJECTS: &str = "COMMAND_OBJECTS";
    pub const EXE_CLASSES: &str = "EXE_CLASSES";
    pub const TRUSTED_CALLERS: &str = "TRUSTED_CALLERS";
    pub const PROTECTED_PROCESSES: &str = "PROTECTED_PROCESSES";
    pub const TREE_EPOCHS: &str = "TREE_EPOCHS";
    pub const EXCLUDED_CHILDREN: &str = "EXCLUDED_CHILDREN";
    pub const PROTECTED_NAMES: &str = "PROTECTED_NAMES";
    pub const NAME_DIRECTORIES: &str = "NAME_DIRECTORIES";
    pub const IDENTITY_PROBE: &str = "IDENTITY_PROBE";
    pub const PROTECTED_SYSCTLS: &str = "PROTECTED_SYSCTLS";
    pub const PROTECTED_CGROUPS: &str = "PROTECTED_CGROUPS";
    pub const NETFILTER_CONFIG: &str = "NETFILTER_CONFIG";
    pub const NETFILTER_LIVE: &str = "NETFILTER_LIVE";
}

/// Capacity of the protected-inode hash map (objects and their ancestor directories).
pub const MAX_PROTECTED_INODES: u32 = 65_536;
/// Capacity of the tree-root map.
pub const MAX_PROTECTED_TREES: u32 = 1_024;
/// Capacity of the trusted-executable map.
pub const MAX_TRUSTED_EXES: u32 = 1_024;
/// Capacity of the executable → command class map, and of the trusted-caller map.
pub const MAX_EXE_CLASSES: u32 = 1_024;
/// Size of the event ring buffer in bytes (a power of two, a multiple of the page size).
pub const EVENT_RING_BYTES: u32 = 256 * 1024;

/// Run-time switches handed to the programs as a read-only global at load.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GuardConfig {
    /// 1: deny matching operations (-EPERM). 0: let them through and report "would block".
    pub enforce: u32,
    /// The mount namespace the runtime runs in (the inode number of `/proc/1/ns/mnt`):
    /// mounts over protected objects are refused there only, since mounts in other
    /// namespaces (containers, `unshare -m`, systemd's `ProtectSystem=`) change nothing
    /// the runtime sees. 0: unknown, and no mount is refused.
    pub runtime_mnt_ns: u32,
}

#[cfg(feature = "user")]
mod user {
    // SAFETY: all of these are #[repr(C)], contain only integers and have no implicit padding.
    unsafe impl aya::Pod for super::InodeKey {}
    unsafe impl aya::Pod for super::IdentityProbe {}
    unsafe impl aya::Pod for super::KernelOffsets {}
    unsafe impl aya::Pod for super::FsLayout {}
    unsafe impl aya::Pod for super::GuardConfig {}
    unsafe impl aya::Pod for super::EventHeader {}
    unsafe impl aya::Pod for super::FileEvent {}
    unsafe impl aya::Pod for super::ExecEvent {}
    unsafe impl aya::Pod for super::ProcessEvent {}
    unsafe impl aya::Pod for super::ProcessProtection {}
    unsafe impl aya::Pod for super::FileProtection {}
    unsafe impl aya::Pod for super::TrustKey {}
    unsafe impl aya::Pod for super::file::ExcludedChildKey {}
    unsafe impl aya::Pod for super::degraded::SyscallEvent {}
    unsafe impl aya::Pod for super::degraded::TracepointLayout {}
    unsafe impl aya::Pod for super::rule::RuleEntry {}
    unsafe impl aya::Pod for super::exec::ArgToken {}
    unsafe impl aya::Pod for super::exec::CommandLine {}
    unsafe impl aya::Pod for super::exec::CommandConfig {}
    unsafe impl aya::Pod for super::exec::BinaryEntry {}
    unsafe impl aya::Pod for super::exec::ClassEntry {}
    unsafe impl aya::Pod for super::exec::WordKey {}
    unsafe impl aya::Pod for super::exec::WordEntry {}
    unsafe impl aya::Pod for super::exec::ObjectKey {}
    unsafe impl aya::Pod for super::exec::ObjectEntry {}
    unsafe impl aya::Pod for super::exec::Classification {}
    unsafe impl aya::Pod for super::sysctl::SysctlKey {}
    unsafe impl aya::Pod for super::sysctl::SysctlEvent {}
    unsafe impl aya::Pod for super::netfilter::NetfilterConfig {}
    unsafe impl aya::Pod for super::netfilter::LiveObject {}
    unsafe impl aya::Pod for super::netfilter::NetfilterEvent {}
}
