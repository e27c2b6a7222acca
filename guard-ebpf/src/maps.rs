//! Maps and load-time globals shared by the layers: the file layer's tables (which the
//! exec and process layers' trust checks read too), the rules, the event ring buffer, the
//! offsets. A layer's own maps live in its module: the command tables in `exec.rs`, the
//! protected processes in `process.rs`, the tree cache in `tree_cache.rs`.

use aya_ebpf::{
    bindings::BPF_F_NO_PREALLOC,
    macros::map,
    maps::{Array, HashMap, LruHashMap, PerCpuArray, RingBuf},
};
use guard_common::{
    file::{
        ExcludedChildKey, UpgradeKey, MAX_EXCLUDED_CHILDREN, MAX_PROTECTED_NAMES, MAX_UPGRADES,
    },
    rule::{RuleEntry, MAX_RULES},
    FileEvent, FileProtection, FsLayout, GuardConfig, IdentityProbe, InodeKey, KernelOffsets,
    TrustKey, EVENT_RING_BYTES, MAX_PROTECTED_INODES, MAX_PROTECTED_TREES, MAX_TRUSTED_EXES,
};

// Hash maps that only userspace writes are not preallocated (`BPF_F_NO_PREALLOC`): they
// hold what the policy put in them instead of every entry's worth from the start. (A map
// the programs insert into under load would want preallocation; none of these is one.)

/// The identity probe: the daemon's thread id, and the key of the file it opened last.
#[map]
pub static IDENTITY_PROBE: Array<IdentityProbe> = Array::with_max_entries(1, 0);

/// Packages the package manager's processes are upgrading (see `file::package_manager_may`).
/// The kernel fills it on the hot path, so it is preallocated; LRU, so a process that
/// ended makes room.
#[map]
pub static UPGRADES: LruHashMap<UpgradeKey, u8> = LruHashMap::with_max_entries(MAX_UPGRADES, 0);

/// Protected objects and the ancestor directories of each, by identity. A host protects a
/// few thousand inodes; preallocated, the 65,536 entries would take 6 MiB from the start.
#[map]
pub static PROTECTED_INODES: HashMap<InodeKey, FileProtection> =
    HashMap::with_max_entries(MAX_PROTECTED_INODES, BPF_F_NO_PREALLOC);

/// Roots of protected trees. Everything below a root is protected by the parent walk.
#[map]
pub static PROTECTED_TREES: HashMap<InodeKey, FileProtection> =
    HashMap::with_max_entries(MAX_PROTECTED_TREES, BPF_F_NO_PREALLOC);

/// Subtrees excluded by name under a tree root → the rule excluding them: the walk checks
/// the child it came from when it finds a tree root, so a volume directory created after
/// the policy was resolved is excluded as soon as it exists.
#[map]
pub static EXCLUDED_CHILDREN: HashMap<ExcludedChildKey, u32> =
    HashMap::with_max_entries(MAX_EXCLUDED_CHILDREN, BPF_F_NO_PREALLOC);

/// Names no one may create in a directory (a protected unit's name in
/// /etc/systemd/system) → the rule protecting them. Keyed like [`EXCLUDED_CHILDREN`].
#[map]
pub static PROTECTED_NAMES: HashMap<ExcludedChildKey, u32> =
    HashMap::with_max_entries(MAX_PROTECTED_NAMES, BPF_F_NO_PREALLOC);

/// The directories that hold [`PROTECTED_NAMES`]: every file created anywhere is checked,
/// and only a creation in one of these pays for reading its name.
#[map]
pub static NAME_DIRECTORIES: HashMap<InodeKey, u32> =
    HashMap::with_max_entries(MAX_PROTECTED_NAMES, BPF_F_NO_PREALLOC);

/// The (directory, name) key a lookup of a child builds, one per CPU: on the stack its 80
/// bytes would take the deepest call chain (a rename's) past the verifier's 512-byte limit
/// on 6.1.
#[repr(C)]
pub struct ChildKeySlot {
    pub key: ExcludedChildKey,
    /// Counts the keys built here, so a lookup can tell that another task built one
    /// while it was preempted (see `file::child_lookup`).
    pub stamp: u32,
}

#[map]
pub static EXCLUDED_CHILD_KEY: PerCpuArray<ChildKeySlot> = PerCpuArray::with_max_entries(1, 0);

/// Superblocks (by `s_dev`) that hold a tree root: the parent walk is skipped for every
/// other filesystem, so unrelated writes pay one lookup. By superblock, not by the
/// identity's device: on btrfs a walk from a nested subvolume climbs through the
/// directories of another subvolume (another device to stat(2)) of the same superblock.
#[map]
pub static TREE_DEVICES: HashMap<u32, u32> =
    HashMap::with_max_entries(MAX_PROTECTED_TREES, BPF_F_NO_PREALLOC);

/// Offsets into filesystem modules' structs, written by userspace once it can read them
/// (see `guard_common::fs_layout`): slot 0 only.
#[map]
pub static FS_LAYOUT: Array<FsLayout> = Array::with_max_entries(1, 0);

/// Executables trusted for a rule (trees' writers) or as the package manager.
#[map]
pub static TRUSTED_EXES: HashMap<TrustKey, u32> =
    HashMap::with_max_entries(MAX_TRUSTED_EXES, BPF_F_NO_PREALLOC);

/// Rule table indexed by rule id: each rule's mode. Slot `SELF_TEST_RULE` (one past the
/// policy's ids) belongs to the self-test, slot `GUARD_DEPENDENCIES_RULE` (two past) to
/// what the programs depend on.
#[map]
pub static RULES: Array<RuleEntry> = Array::with_max_entries(MAX_RULES + 3, 0);

/// Decisions for userspace.
#[map]
pub static EVENTS: RingBuf = RingBuf::with_byte_size(EVENT_RING_BYTES, 0);

/// One event under construction per CPU. A `FileEvent` is larger than the 512-byte BPF
/// stack, so it is filled here and copied into the ring buffer with `bpf_ringbuf_output`.
#[map]
pub static EVENT_SCRATCH: PerCpuArray<FileEvent> = PerCpuArray::with_max_entries(1, 0);

/// Events lost because the ring buffer was full, per CPU; userspace sums and reports them.
#[map]
pub static DROPPED_EVENTS: PerCpuArray<u64> = PerCpuArray::with_max_entries(1, 0);

/// Struct offsets of the running kernel, written by the loader from its BTF.
#[unsafe(no_mangle)]
// SAFETY: KernelOffsets is plain u32 fields; all zero is a valid value, and `is_resolved`
// reads it as "not filled yet".
pub static OFFSETS: KernelOffsets = unsafe { core::mem::zeroed() };

/// Mode switches, written by the loader.
#[unsafe(no_mangle)]
pub static GUARD_CONFIG: GuardConfig = GuardConfig {
    enforce: 0,
    runtime_mnt_ns: 0,
};

/// The load-time offsets block. The loader rewrites its .rodata bytes before load, so the
/// compiler must not fold the all-zero placeholder into the code: the reference itself is
/// read through a volatile load, after which the compiler cannot tell what it points to,
/// and only the fields a caller uses are loaded. (A volatile read of the whole block
/// loaded all of its fields on every call.)
#[inline(always)]
pub fn offsets() -> &'static KernelOffsets {
    let block: &'static KernelOffsets = &OFFSETS;
    unsafe { core::ptr::read_volatile(&block) }
}

/// Whether a rule's matches are denied: the rule says enforce and the guard is not
/// running in audit mode as a whole.
#[inline(always)]
pub fn rule_enforces(rule_id: u32) -> bool {
    let global = unsafe { core::ptr::read_volatile(&GUARD_CONFIG.enforce) } != 0;
    global && RULES.get(rule_id).is_some_and(|r| r.enforces())
}

/// Whether `ns` is the runtime's mount namespace; false when the loader did not know it.
#[inline(always)]
pub fn is_runtime_mnt_ns(ns: u32) -> bool {
    let runtime = unsafe { core::ptr::read_volatile(&GUARD_CONFIG.runtime_mnt_ns) };
    runtime != 0 && ns == runtime
}

pub fn count_dropped_event() {
    if let Some(counter) = DROPPED_EVENTS.get_ptr_mut(0) {
        // Per-CPU slot: no other CPU writes it, and LSM programs don't nest on one CPU.
        unsafe { *counter += 1 };
    }
}
