//! Maps and load-time globals shared by every layer.

use aya_ebpf::{
    macros::map,
    maps::{HashMap, PerCpuArray, RingBuf},
};
use guard_common::{GuardConfig, InodeKey, KernelOffsets, EVENT_RING_BYTES, MAX_PROTECTED_INODES};

/// Protected objects by identity. The value is the id of the rule that protects it.
#[map]
pub static PROTECTED_INODES: HashMap<InodeKey, u32> =
    HashMap::with_max_entries(MAX_PROTECTED_INODES, 0);

/// Decisions for userspace (blocked / would-block).
#[map]
pub static EVENTS: RingBuf = RingBuf::with_byte_size(EVENT_RING_BYTES, 0);

/// Events lost because the ring buffer was full, per CPU; userspace sums and reports them.
#[map]
pub static DROPPED_EVENTS: PerCpuArray<u64> = PerCpuArray::with_max_entries(1, 0);

/// Struct offsets of the running kernel, written by the loader from its BTF.
#[unsafe(no_mangle)]
pub static OFFSETS: KernelOffsets = KernelOffsets {
    dentry_d_inode: 0,
    inode_i_ino: 0,
    inode_i_sb: 0,
    super_block_s_dev: 0,
};

/// Mode switches, written by the loader.
#[unsafe(no_mangle)]
pub static GUARD_CONFIG: GuardConfig = GuardConfig {
    enforce: 0,
    _pad: 0,
};

/// Reads a load-time global. The volatile read keeps the compiler from folding the
/// placeholder value in; the loader rewrites the .rodata bytes before load.
#[inline(always)]
pub fn offsets() -> KernelOffsets {
    unsafe { core::ptr::read_volatile(&OFFSETS) }
}

#[inline(always)]
pub fn enforcing() -> bool {
    unsafe { core::ptr::read_volatile(&GUARD_CONFIG.enforce) != 0 }
}

pub fn count_dropped_event() {
    if let Some(counter) = DROPPED_EVENTS.get_ptr_mut(0) {
        // Per-CPU slot: no other CPU writes it, and LSM programs don't nest on one CPU.
        unsafe { *counter += 1 };
    }
}
