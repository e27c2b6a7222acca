//! Sysctls rtguard depends on, refused like any protected object. The kernel's own hook
//! for sysctl writes is a cgroup program (`BPF_CGROUP_SYSCTL`): it names the sysctl the
//! way `/proc/sys` does below that directory (`kernel/ftrace_enabled`), whichever procfs
//! mount the write goes through, and runs whatever the LSM list says. A procfs file's
//! (dev, ino) would not do: every procfs mount is a superblock of its own, and a sysctl's
//! inode number is handed out again each time its dentry is evicted.

use crate::event::EventHeader;

/// Bytes of a sysctl's name the kernel compares, NUL included.
pub const SYSCTL_NAME_LEN: usize = 64;
/// Bytes of a written value an event carries, NUL included.
pub const SYSCTL_VALUE_LEN: usize = 16;
/// Capacity of the protected-sysctl map.
pub const MAX_PROTECTED_SYSCTLS: u32 = 64;

/// The sysctls the programs depend on, as [`SysctlKey`] names them.
///
/// `kernel/ftrace_enabled`: BPF trampolines, which carry BPF LSM and fmod_ret programs
/// alike, are ftrace direct calls on x86-64; with the sysctl at 0 the kernel stops
/// calling them, and every layer stops enforcing with its programs still attached.
pub const GUARD_SYSCTLS: &[&str] = &["kernel/ftrace_enabled"];

/// A sysctl by name, NUL-padded: the hash map compares every byte. Word-aligned, so the
/// program zeroes and copies it a word at a time.
#[repr(C, align(8))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SysctlKey {
    pub name: [u8; SYSCTL_NAME_LEN],
}

impl SysctlKey {
    /// The key for `name` (`kernel/ftrace_enabled`); `None` when it does not fit.
    pub fn new(name: &str) -> Option<Self> {
        let bytes = name.as_bytes();
        if bytes.is_empty() || bytes.len() >= SYSCTL_NAME_LEN || bytes.contains(&0) {
            return None;
        }
        let mut key = Self {
            name: [0; SYSCTL_NAME_LEN],
        };
        key.name[..bytes.len()].copy_from_slice(bytes);
        Some(key)
    }
}

/// A refused (or, in audit mode, reported) write to a protected sysctl.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct SysctlEvent {
    /// Kind [`EventKind::Sysctl`](crate::EventKind::Sysctl). A cgroup program has no
    /// task pointer to read: the actor's exe, parent, terminal and mount namespace are 0.
    pub header: EventHeader,
    pub rule_id: u32,
    pub _pad: u32,
    pub key: SysctlKey,
    /// The value written, NUL-terminated and cut to fit.
    pub value: [u8; SYSCTL_VALUE_LEN],
}

/// Whether `new` (what a writer wrote) leaves `current` (what the kernel reads back) as
/// it is, ignoring trailing whitespace and NULs: `echo 1 >` a sysctl that is 1 changes
/// nothing. Compares the first [`SYSCTL_VALUE_LEN`] bytes.
#[inline(always)]
pub fn same_value(current: &[u8; SYSCTL_VALUE_LEN], new: &[u8; SYSCTL_VALUE_LEN]) -> bool {
    let end = |b: u8| b == 0 || b == b'\n' || b == b' ' || b == b'\t';
    let mut i = 0;
    while i < SYSCTL_VALUE_LEN {
        let (a, b) = (current[i], new[i]);
        match (end(a), end(b)) {
            (true, true) => return true,
            (false, false) if a == b => {}
            _ => return false,
        }
        i += 1;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(text: &[u8]) -> [u8; SYSCTL_VALUE_LEN] {
        let mut v = [0; SYSCTL_VALUE_LEN];
        v[..text.len()].copy_from_slice(text);
        v
    }

    #[test]
    fn a_write_of_the_same_value_changes_nothing() {
        assert!(same_value(&value(b"1\n"), &value(b"1")));
        assert!(same_value(&value(b"1\n"), &value(b"1\n")));
        assert!(!same_value(&value(b"1\n"), &value(b"0")));
        assert!(!same_value(&value(b"1\n"), &value(b"10")));
        assert!(!same_value(&value(b"1\n"), &value(b"")));
    }

    #[test]
    fn keys_are_nul_padded_and_bounded() {
        let key = SysctlKey::new("kernel/ftrace_enabled").unwrap();
        assert_eq!(&key.name[..22], b"kernel/ftrace_enabled\0");
        assert!(SysctlKey::new(&"x".repeat(SYSCTL_NAME_LEN)).is_none());
        assert!(SysctlKey::new("").is_none());
    }

    #[test]
    fn the_event_has_no_implicit_padding() {
        assert_eq!(
            core::mem::size_of::<SysctlEvent>(),
            core::mem::size_of::<EventHeader>() + 8 + SYSCTL_NAME_LEN + SYSCTL_VALUE_LEN
        );
    }
}
