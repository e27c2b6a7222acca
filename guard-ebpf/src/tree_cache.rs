//! The tree-walk cache: directories with no protecting tree above them.
//!
//! Without it, every write, rename and unlink on a filesystem that holds a tree root walks
//! the parent dentries up to the filesystem's root, a map lookup and five reads per level:
//! most of rtguard's cost on file-heavy workloads. A directory's answer only changes when
//! a directory is renamed (it may move into or out of a tree) or the tree tables change,
//! so it is kept per directory and stamped with two epochs:
//! - the *rename epoch*, bumped by `vfs_rename_done` after every rename of a directory
//!   returns. A walk that overlapped the move read the epoch before the bump, so its entry
//!   is stale from then on;
//! - the *policy epoch*, bumped by userspace after it changes the tree tables. Zero means
//!   the cache is off: userspace turns it on once `vfs_rename_done` is attached.
//!
//! Both answers are kept: "no tree denies this operation here", and "the tree rooted at T
//! denies it". A remembered root is looked up in the tree table again each time, so a
//! tree that is gone is not applied; one that is added bumps the policy epoch.
//!
//! An answer is remembered only where it depends on the directory alone. A name-based
//! exclusion directly below the tree root depends on the target's own name when the
//! directory *is* the tree root, so no answer is kept for it there (see
//! `file::find_protection`).
//!
//! In front of the map, each CPU keeps the few directories the fast path last found
//! clear ([`RECENT_DIRS`]), under the same epochs, so that work in one directory costs
//! no hash lookup per operation.

use core::ptr::{addr_of, addr_of_mut, read_volatile, write_volatile};

use aya_ebpf::{
    macros::{fexit, map},
    maps::{Array, LruHashMap, PerCpuArray},
    programs::FExitContext,
};
use guard_common::{
    file::{
        TreeCacheEntry, TreeCacheKey, FILE_TREE_EXCLUDED, MAX_TREE_CACHE, TREE_EPOCH_POLICY,
        TREE_EPOCH_RENAME, TREE_EPOCH_SLOTS,
    },
    FileOp, FileProtection, InodeKey, KernelOffsets,
};

use crate::{
    kernel::{
        atomic_add, atomic_compare_exchange, btf_inode_is_dir, btf_inode_key,
        dentry_key_generation, offset, offsets_resolved, BtfPtr, KernelPtr,
    },
    maps::PROTECTED_TREES,
};

/// Directory → the operations its walk found unprotected, as of two epochs.
#[map]
pub static TREE_CACHE: LruHashMap<TreeCacheKey, TreeCacheEntry> =
    LruHashMap::with_max_entries(MAX_TREE_CACHE, 0);

/// Per CPU, the directories the fast path last found clear in `TREE_CACHE`, one per slot,
/// the slot chosen by the directory's inode number: consecutive operations in one
/// directory (an archive being unpacked, a build's output) are answered without hashing
/// the key into `TREE_CACHE` again. Only the fast path ([`remembered`]) reads and fills
/// it: the full decision's stack has no room to spare. See [`RecentDir`].
#[map]
static RECENT_DIRS: PerCpuArray<RecentDir> = PerCpuArray::with_max_entries(RECENT_DIR_SLOTS, 0);

const RECENT_DIR_SLOTS: u32 = 4;

/// One slot of [`RECENT_DIRS`]: a directory's key and operations its `TREE_CACHE` entry
/// found clear, valid under the same epochs as the entry they were read from.
///
/// A task in a BPF program can be preempted (on kernels built or booted with full
/// preemption) by another on the same CPU, which may use the same slot, so a slot is a
/// sequence count: a writer claims it by moving `seq` from even to odd with a
/// compare-and-exchange (a claimed slot is left alone, not waited for), writes, and moves
/// it on to the next even value. A reader takes the answer only if `seq` was even and
/// unchanged across its reads. Fields are read and written one by one, never as a
/// copy: the programs' stacks have no room for one.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct RecentDir {
    seq: u64,
    ino: u64,
    dev: u32,
    generation: u32,
    rename_epoch: u64,
    policy_epoch: u64,
    clear_ops: u32,
    _pad: u32,
}

/// True when this CPU's slot for `key` holds it, whole, found clear of `op_bit` under
/// `epochs`.
#[inline(always)]
fn recently_clear(key: &TreeCacheKey, epochs: &Epochs, op_bit: u32) -> bool {
    let Some(slot) = RECENT_DIRS.get_ptr(recent_slot(key)) else {
        return false;
    };
    // SAFETY: the per-CPU slot stays mapped for the program's run; every access is
    // volatile, so none is dropped or moved across the sequence reads.
    unsafe {
        let seq = read_volatile(addr_of!((*slot).seq));
        let holds =
            holds(slot, key, epochs) && read_volatile(addr_of!((*slot).clear_ops)) & op_bit != 0;
        holds && seq & 1 == 0 && read_volatile(addr_of!((*slot).seq)) == seq
    }
}

/// Adds `op_bit` to what `key`'s slot holds as clear under `epochs` (or starts the slot
/// over with it, if it held another directory or older epochs), unless another task on
/// this CPU is writing the slot.
#[inline(always)]
fn remember_clear(key: &TreeCacheKey, epochs: &Epochs, op_bit: u32) {
    let Some(slot) = RECENT_DIRS.get_ptr_mut(recent_slot(key)) else {
        return;
    };
    // SAFETY: as in `recently_clear`; the compare-and-exchange makes this task the slot's
    // only writer until it stores the next even count.
    unsafe {
        let seq_ptr = addr_of_mut!((*slot).seq);
        let seq = read_volatile(seq_ptr);
        if seq & 1 != 0 || !atomic_compare_exchange(seq_ptr, seq, seq + 1) {
            return;
        }
        let clear_ops = if holds(slot, key, epochs) {
            read_volatile(addr_of!((*slot).clear_ops)) | op_bit
        } else {
            write_volatile(addr_of_mut!((*slot).ino), key.ino);
            write_volatile(addr_of_mut!((*slot).dev), key.dev);
            write_volatile(addr_of_mut!((*slot).generation), key.generation);
            write_volatile(addr_of_mut!((*slot).rename_epoch), epochs.rename);
            write_volatile(addr_of_mut!((*slot).policy_epoch), epochs.policy);
            op_bit
        };
        write_volatile(addr_of_mut!((*slot).clear_ops), clear_ops);
        write_volatile(seq_ptr, seq + 2);
    }
}

/// Whether `slot` holds `key` under `epochs`, read field by field.
///
/// # Safety
/// `slot` points to a slot of [`RECENT_DIRS`].
#[inline(always)]
unsafe fn holds(slot: *const RecentDir, key: &TreeCacheKey, epochs: &Epochs) -> bool {
    unsafe {
        read_volatile(addr_of!((*slot).ino)) == key.ino
            && read_volatile(addr_of!((*slot).dev)) == key.dev
            && read_volatile(addr_of!((*slot).generation)) == key.generation
            && read_volatile(addr_of!((*slot).rename_epoch)) == epochs.rename
            && read_volatile(addr_of!((*slot).policy_epoch)) == epochs.policy
    }
}

#[inline(always)]
fn recent_slot(key: &TreeCacheKey) -> u32 {
    (key.ino as u32) & (RECENT_DIR_SLOTS - 1)
}

/// `[TREE_EPOCH_RENAME]` is bumped here, `[TREE_EPOCH_POLICY]` by userspace.
#[map]
pub static TREE_EPOCHS: Array<u64> = Array::with_max_entries(TREE_EPOCH_SLOTS, 0);

/// The epochs a walk started under; read before the walk, stamped on what it finds.
#[derive(Clone, Copy)]
struct Epochs {
    rename: u64,
    policy: u64,
}

impl Epochs {
    #[inline(always)]
    fn now() -> Option<Self> {
        let policy = epoch(TREE_EPOCH_POLICY).filter(|&p| p != 0)?;
        Some(Self {
            rename: epoch(TREE_EPOCH_RENAME)?,
            policy,
        })
    }

    #[inline(always)]
    fn stamped(&self, entry: &TreeCacheEntry) -> bool {
        entry.rename_epoch == self.rename && entry.policy_epoch == self.policy
    }
}

/// The policy epoch: moves on whenever userspace has changed the tree tables; 0 while
/// the cache is off.
#[inline(always)]
pub fn policy_epoch() -> u64 {
    epoch(TREE_EPOCH_POLICY).unwrap_or(0)
}

/// One epoch slot, read once (other CPUs and userspace write it).
#[inline(always)]
fn epoch(slot: u32) -> Option<u64> {
    TREE_EPOCHS
        .get(slot)
        .map(|value| unsafe { core::ptr::read_volatile(value) })
}

/// What the tree table says of one directory, for one operation.
pub enum TreeRoot {
    /// It roots an excluded subtree: nothing at or below it is protected by a tree.
    Excluded,
    /// It roots a tree that denies the operation.
    Denies(FileProtection),
    /// Neither: the walk goes on above it.
    Not,
}

#[inline(always)]
pub fn tree_root(key: InodeKey, op_bit: u32) -> TreeRoot {
    match unsafe { PROTECTED_TREES.get(key) } {
        Some(t) if t.flags & FILE_TREE_EXCLUDED != 0 => TreeRoot::Excluded,
        Some(t) if t.ops & op_bit != 0 => TreeRoot::Denies(*t),
        _ => TreeRoot::Not,
    }
}

/// A directory the walk has yet to answer for, and what its entry already says.
pub struct Pending {
    key: TreeCacheKey,
    epochs: Epochs,
    /// The entry as it stands, if it is of these epochs (else all empty).
    known: TreeCacheEntry,
}

pub enum Probe {
    /// No tree above the directory denies the operation.
    Clear,
    /// The tree rooted here denies the operation for everything below the directory, with
    /// this protection.
    Denied(InodeKey, FileProtection),
    /// Walk, then [`record_clear`] or [`record_denied`] the answer.
    Miss(Pending),
    /// The cache is off, or this directory cannot be cached: walk.
    Uncached,
}

/// Looks the directory up. Reads the epochs first: anything that changes the answer
/// after this point also changes an epoch, so a walk that follows can only be recorded
/// as stale.
#[inline(always)]
pub fn probe(off: &KernelOffsets, dir: KernelPtr, op: FileOp) -> Probe {
    let Some(epochs) = Epochs::now() else {
        return Probe::Uncached;
    };
    // The directory's own identity: on btrfs a subvolume's root sits in a directory of
    // another subvolume, and snapshots repeat (ino, generation) pairs, so only the
    // subvolume's device tells their directories apart.
    let Some(key) = dentry_key_generation(off, dir).and_then(cache_key) else {
        return Probe::Uncached;
    };
    probe_key(key, epochs, op)
}

/// What [`remembered`] knows of a directory.
pub enum Remembered {
    /// No tree above the directory denies the operation.
    Clear,
    /// A tree above denies it, with this protection.
    Denied(FileProtection),
    /// Nothing: the full decision walks.
    Unknown,
}

/// [`probe`] for the fast path: the directory's identity by direct loads; btrfs
/// directories are left to [`probe`].
#[inline(always)]
pub fn remembered(dir: BtfPtr, op: FileOp) -> Remembered {
    let Some(epochs) = Epochs::now() else {
        return Remembered::Unknown;
    };
    let inode = dir.ptr(offset!(dentry_d_inode));
    let Some(dir_key) = btf_inode_key(inode) else {
        return Remembered::Unknown;
    };
    let Some(key) = cache_key((dir_key, inode.load(offset!(inode_i_generation)))) else {
        return Remembered::Unknown;
    };
    // This CPU's last answers first.
    if recently_clear(&key, &epochs, op.bit()) {
        return Remembered::Clear;
    }
    match probe_key(key, epochs, op) {
        Probe::Clear => {
            remember_clear(&key, &epochs, op.bit());
            Remembered::Clear
        }
        Probe::Denied(_, protection) => Remembered::Denied(protection),
        Probe::Miss(_) | Probe::Uncached => Remembered::Unknown,
    }
}

/// A directory's key in the cache, from its identity and inode generation; `None` where
/// it is not cached. A filesystem that leaves i_generation at 0 could give a removed
/// directory's number to a new one inside a tree, so its directories are not.
#[inline(always)]
fn cache_key((dir_key, generation): (InodeKey, u32)) -> Option<TreeCacheKey> {
    (generation != 0).then_some(TreeCacheKey {
        ino: dir_key.ino,
        dev: dir_key.dev,
        generation,
    })
}

#[inline(always)]
fn probe_key(key: TreeCacheKey, epochs: Epochs, op: FileOp) -> Probe {
    let mut known = TreeCacheEntry::default();
    if let Some(entry) = unsafe { TREE_CACHE.get(key) } {
        if epochs.stamped(entry) {
            if entry.clear_ops & op.bit() != 0 {
                return Probe::Clear;
            }
            // Still a root that denies the operation, as the walk would find it. Anything
            // else means the tables are changing and the policy epoch is about to move
            // on; until then the walk decides.
            if entry.denied_ops & op.bit() != 0 {
                if let TreeRoot::Denies(protection) = tree_root(entry.tree, op.bit()) {
                    return Probe::Denied(entry.tree, protection);
                }
            }
            known = *entry;
        }
    }
    Probe::Miss(Pending { key, epochs, known })
}

/// Records that the walk from the directory found nothing that denies `op`.
#[inline(always)]
pub fn record_clear(pending: &Pending, op: FileOp) {
    let known = &pending.known;
    store(
        pending,
        TreeCacheEntry {
            clear_ops: known.clear_ops | op.bit(),
            ..*known
        },
    );
}

/// Records that the walk from the directory found the tree rooted at `tree` denying `op`.
/// An entry holds one tree: finding another (nested trees that deny different
/// operations) replaces what was known of the first.
#[inline(always)]
pub fn record_denied(pending: &Pending, op: FileOp, tree: InodeKey) {
    let known = &pending.known;
    let denied_ops = if known.tree == tree {
        known.denied_ops | op.bit()
    } else {
        op.bit()
    };
    store(
        pending,
        TreeCacheEntry {
            denied_ops,
            tree,
            ..*known
        },
    );
}

#[inline(always)]
fn store(pending: &Pending, entry: TreeCacheEntry) {
    let entry = TreeCacheEntry {
        rename_epoch: pending.epochs.rename,
        policy_epoch: pending.epochs.policy,
        ..entry
    };
    // A full map evicts its least recently used entry; a failed insert costs a walk.
    let _ = TREE_CACHE.insert(pending.key, entry, 0);
}

/// After `vfs_rename(struct renamedata *)` returns: if a directory moved (either side,
/// for RENAME_EXCHANGE), everything cached may be stale. A rename that failed bumps too;
/// that only costs walks. Runs after every rename, so it reads by direct loads.
#[fexit(function = "vfs_rename")]
pub fn vfs_rename_done(ctx: FExitContext) -> i32 {
    if !offsets_resolved() || offset!(renamedata_old_dentry) == 0 {
        return 0;
    }
    let rd = BtfPtr::arg(&ctx, 0);
    if is_dir(rd.ptr(offset!(renamedata_old_dentry)))
        || is_dir(rd.ptr(offset!(renamedata_new_dentry)))
    {
        if let Some(epoch) = TREE_EPOCHS.get_ptr_mut(TREE_EPOCH_RENAME) {
            // Renames run on every CPU at once: an atomic add, so no bump is lost.
            atomic_add(epoch, 1);
        }
    }
    0
}

/// Whether the dentry is a directory; false for a negative dentry.
#[inline(always)]
pub fn is_dir(dentry: BtfPtr) -> bool {
    if dentry.is_null() {
        return false;
    }
    btf_inode_is_dir(dentry.ptr(offset!(dentry_d_inode)))
}
