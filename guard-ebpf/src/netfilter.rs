//! Netfilter layer: a firewall change is judged by the batch the kernel receives, whatever
//! tool built it (see `guard_common::netfilter`).
//!
//! `security_netlink_send(sk, skb)` runs in `netlink_sendmsg` before the message is handed
//! to nfnetlink, in the sender's context, with the whole `sendmsg` copied into one linear
//! buffer. nfnetlink reads a buffer that starts with `NFNL_MSG_BATCH_BEGIN` as one batch up
//! to `NFNL_MSG_BATCH_END` (anything after it is ignored), and any other buffer as single
//! messages; nf_tables changes only in a batch, ipset only outside one.
//!
//! The batch is walked with `bpf_loop`, one message per call, so its length costs the
//! verifier nothing. Each message that takes a protected chain or set away sets that
//! object's bit; a later `NEWCHAIN`/`NEWSET` declaring it again clears it
//! (`iptables-save | grep -v KUBE- | iptables-restore` flushes Docker's tables and declares
//! its chains again). A bit still set at the end of the batch refuses it.

use aya_ebpf::{
    helpers::{
        bpf_probe_read_user,
        generated::{self, bpf_loop},
    },
    macros::{lsm, map},
    maps::{Array, PerCpuArray},
    programs::LsmContext,
};
use core::ffi::c_void;
use guard_common::{
    event::EventKind,
    netfilter::{
        family, ipset, nft_msg, nfta, LiveObject, NameWords, NetfilterConfig, NetfilterEvent,
        NetfilterOp, AF_NETLINK, MAX_BATCH_MESSAGES, MAX_LIVE_OBJECTS, MAX_MESSAGE_ATTRS,
        MAX_OBSERVED_IOVECS as MAX_IOVECS, MAX_OBSERVED_LEN, NETLINK_NETFILTER, NFGENMSG_LEN,
        NFNL_MSG_BATCH_BEGIN, NFNL_MSG_BATCH_END, NFNL_SUBSYS_IPSET, NFNL_SUBSYS_NFTABLES,
        NFT_TABLE_F_DORMANT, NFT_TABLE_F_OWNER, NF_NAME_LEN, NLA_TYPE_MASK, NLMSG_HDR_LEN,
        NLM_F_REQUEST, PATTERN_CHAIN, PATTERN_SET,
    },
    rule::NO_RULE,
    Decision, InodeKey, KernelOffsets,
};

use crate::{
    chain::{after_previous, restated, EPERM},
    exec::TRUSTED_CALLERS,
    kernel::{
        arg_scalar, current_cmdline, current_task, fill_header, loop_stops, read_at, read_ptr,
        resolved_offsets, stamp_kept, stamp_take, task_exe, task_parent, verifier_bound, KernelPtr,
        S_IFMT, S_IFSOCK,
    },
    maps::{count_dropped_event, rule_enforces, EVENTS},
};

/// Slot 0: the patterns, the host's network namespace, the trusted classes.
#[map]
pub static NETFILTER_CONFIG: Array<NetfilterConfig> = Array::with_max_entries(1, 0);

/// The protected chains and sets that exist, as the daemon last read them.
#[map]
pub static NETFILTER_LIVE: Array<LiveObject> = Array::with_max_entries(MAX_LIVE_OBJECTS, 0);

/// What an attribute is to the message it is in.
const ROLE_TABLE: u32 = 1;
const ROLE_NAME: u32 = 2;
const ROLE_HANDLE: u32 = 4;
const ROLE_RULE: u32 = 8;

/// Every kind of live object.
const ALL_KINDS: u32 = PATTERN_CHAIN | PATTERN_SET;

/// What a message asks of the live objects.
const TAKE: u32 = 1;
const DECLARE: u32 = 2;
/// A deletion by handle: is anything protected where it points?
const ANY: u32 = 3;
/// Rules added to a chain: a flush of it earlier in the batch is undone (`iptables-restore
/// --noflush` flushes a chain its input declares, then adds the input's rules).
const REFILL: u32 = 4;

#[repr(C)]
#[derive(Clone, Copy)]
struct Refusal {
    /// `NetfilterOp`; 0 while nothing is refused.
    op: u32,
    rule_id: u32,
    family: u32,
    kind: u32,
    table: NameWords,
    object: NameWords,
}

/// The walk's state, one per CPU. In a map value, not on the stack: the verifier tracks
/// what a program keeps on its stack, and a `bpf_loop` callback whose stack state changes
/// every call (the offset, the count) is verified again for each state it sees. A map
/// value's contents are unknown to it, so the callback is verified once.
///
/// A task preempted mid-walk can find the slot filled by another's walk on the same CPU:
/// the walk takes a stamp first and is done again if the stamp has changed at its end.
#[repr(C)]
pub struct BatchWalk {
    stamp: u32,
    len: u32,
    /// Where the bytes are: set by each attempt after its stamp.
    source: Source,
    /// Where the next message starts.
    offset: u32,
    messages: u32,
    /// Set at the batch's end, the buffer's end, or a refusal.
    done: u32,
    /// The buffer starts a batch.
    batch: u32,
    /// Live objects (by index) the batch takes away and has not declared again.
    pending: u64,
    /// How each pending object is taken away (`NetfilterOp`), a byte each.
    ops: [u64; MAX_LIVE_OBJECTS as usize / 8],
    refusal: Refusal,
    /// The message being read: its attributes' range, what they said, and which
    /// attribute numbers name its table, its object, a handle and one rule.
    msg: Message,
    /// The live-object scan the message asks for.
    scan: Scan,
}

/// The batch's bytes, for [`BatchBytes`].
#[repr(C)]
struct Source {
    /// The skb's data ([`SkbBytes`]); the sender's iovec array, or `sendto`'s buffer
    /// ([`UserBytes`]).
    base: u64,
    /// [`UserBytes`]: how many iovecs (0 for `sendto`), which one reads are in, where it
    /// starts in the batch, its address and its length.
    count: u32,
    index: u32,
    start: u32,
    len: u32,
    at: u64,
    /// A read that spans two iovecs is put together here.
    span: [u8; SPAN_LEN],
}

#[repr(C)]
struct Message {
    attr: u32,
    end: u32,
    command: u32,
    family: u32,
    seen: u32,
    ipset: u32,
    table_attr: u32,
    name_attr: u32,
    handle_attr: u32,
    rule_attr: u32,
    /// Set when the attribute walk reached the message's end (or where nf_tables'
    /// parser stops): a message read only in part is not judged by what was read.
    complete: u32,
    /// The `rule_attr` attribute's value as a big-endian u32 (a table's flags).
    value: u32,
    table: NameWords,
    name: NameWords,
    /// The handle attribute's value, host order.
    handle: u64,
}

#[repr(C)]
struct Scan {
    /// `TAKE`, `DECLARE` or `ANY`.
    action: u32,
    kinds: u32,
    op: u32,
    by_table: u32,
    by_name: u32,
    by_handle: u32,
    /// The index of the last live object the scan matched.
    found: u32,
    /// The rule of the last live object the scan matched; 0 if none.
    found_rule: u32,
    /// By handle: the rule of a live object whose table has had objects created since
    /// the daemon looked (the handle is above its highest); 0 if none.
    unknown_rule: u32,
    _pad: u32,
}

#[map]
pub static NETFILTER_WALK: PerCpuArray<BatchWalk> = PerCpuArray::with_max_entries(1, 0);

/// Walks of one `sendmsg` before one that was overwritten every time is refused.
const WALK_ATTEMPTS: u32 = 3;
/// `CAP_NET_ADMIN`'s bit in a capability mask.
const CAP_NET_ADMIN: u32 = 12;
/// Iovecs one read may move past (see `UserBytes::fetch`).
const SEEK_IOVECS: u32 = 8;
/// [`BatchWalk::span`]'s size: a name split in two, each part's size masked to a power
/// of two above it (`UserBytes::fetch`).
const SPAN_LEN: usize = 128;

impl BatchWalk {
    #[inline(always)]
    fn set_op(&mut self, i: u32, op: u32) {
        let slot = ((i >> 3) & 7) as usize;
        let shift = (i & 7) * 8;
        self.ops[slot] = (self.ops[slot] & !(0xff << shift)) | (u64::from(op & 0xff) << shift);
    }

    #[inline(always)]
    fn op(&self, i: u32) -> u32 {
        ((self.ops[((i >> 3) & 7) as usize] >> ((i & 7) * 8)) & 0xff) as u32
    }
}

/// Whether two names are the same, word by word: compared as arrays they become a call of
/// a byte-wise `memcmp`, which the verifier walks once per byte and call.
#[inline(always)]
fn same(a: &NameWords, b: &NameWords) -> bool {
    ((a[0] ^ b[0]) | (a[1] ^ b[1]) | (a[2] ^ b[2]) | (a[3] ^ b[3])) == 0
}

/// Copies a name word by word (volatile, for the same reason as [`same`]: a `memmove`).
#[inline(always)]
fn copy(to: &mut NameWords, from: &NameWords) {
    for i in 0..4 {
        unsafe { core::ptr::write_volatile(&mut to[i], from[i]) };
    }
}

/// A zero name, stored word by word (a `memset` otherwise).
#[inline(always)]
fn clear(name: &mut NameWords) {
    for w in name.iter_mut() {
        unsafe { core::ptr::write_volatile(w, 0) };
    }
}

/// `security_netlink_send(struct sock *sk, struct sk_buff *skb)`.
#[lsm(hook = "netlink_send")]
pub fn netlink_send(ctx: LsmContext) -> i32 {
    after_previous(&ctx, 2, || {
        restated(rtguard_netfilter_decide(
            arg_scalar(&ctx, 0) as u64,
            arg_scalar(&ctx, 1) as u64,
        ))
    })
}

/// Judges one `sendmsg` on a netlink socket: 0, or `EPERM` for a netfilter batch that
/// takes a protected chain or set away.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn rtguard_netfilter_decide(sk: u64, skb: u64) -> i32 {
    let Some(off) = resolved_offsets() else {
        return 0;
    };
    let task = current_task();
    let Some(config) = judged_sender(off, sk as KernelPtr, task) else {
        return 0;
    };
    let skb = skb as KernelPtr;
    let (Some(data), Some(len)) = (
        read_ptr(skb, off.sk_buff_data),
        read_at::<u32>(skb, off.sk_buff_len),
    ) else {
        return 0;
    };
    let Some(w) = NETFILTER_WALK.get_ptr_mut(0) else {
        return 0;
    };
    let (refusal, messages) = judge_batch::<SkbBytes>(w, config, data as u64, 0, len);
    let Some((rule_id, exe)) = untrusted_refusal(off, task, &refusal) else {
        return 0;
    };
    let enforce = rule_enforces(rule_id);
    let decision = if enforce {
        Decision::Blocked
    } else {
        Decision::WouldBlock
    };
    report(off, task, exe, decision, &refusal, messages);
    if enforce {
        EPERM
    } else {
        0
    }
}

/// Degraded mode: judges a `sendmsg` (`vectored`: `buf` is its `struct user_msghdr`) or
/// a `sendto` of `len` bytes at `buf` on descriptor `fd` as [`rtguard_netfilter_decide`]
/// does, from the sender's memory at the syscall's entry, and reports what it would
/// refuse. Nothing is refused: a tracepoint cannot.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn rtguard_netfilter_observe(fd: u64, buf: u64, len: u64, vectored: u64) -> i32 {
    let Some(off) = resolved_offsets() else {
        return 0;
    };
    let task = current_task();
    let Some(sk) = fd_netlink_sock(off, task, fd) else {
        return 0;
    };
    let Some(config) = judged_sender(off, sk, task) else {
        return 0;
    };
    let Some(w) = NETFILTER_WALK.get_ptr_mut(0) else {
        return 0;
    };
    // A batch whose length can't be known (an unreadable header or iovec, more iovecs
    // than are read) is given the largest: the walk fails where the bytes end, and the
    // batch is reported as too large to judge, unless it ended before.
    let (base, count, len) = if vectored != 0 {
        // struct user_msghdr: msg_iov at 16, msg_iovlen at 24 (the syscall ABI).
        let header: Option<[u64; 4]> = unsafe { bpf_probe_read_user(buf as *const [u64; 4]) }.ok();
        match header {
            Some(h) if h[3] <= u64::from(MAX_IOVECS) => {
                (h[2], h[3] as u32, rtguard_iovec_bytes(h[2], h[3]))
            }
            Some(h) => (h[2], MAX_IOVECS, u64::MAX),
            None => (0, 0, u64::MAX),
        }
    } else {
        (buf, 0, len)
    };
    let len = len.min(u64::from(MAX_OBSERVED_LEN)) as u32;
    let (refusal, messages) = judge_batch::<UserBytes>(w, config, base, count, len);
    if let Some((_, exe)) = untrusted_refusal(off, task, &refusal) {
        report(off, task, exe, Decision::WouldBlock, &refusal, messages);
    }
    0
}

/// The bytes in the sender's `count` iovecs at `iov` (at most `MAX_IOVECS`), or
/// `u64::MAX` if one can't be read. A function of its own, verified once, not once per
/// path of its caller.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn rtguard_iovec_bytes(iov: u64, count: u64) -> u64 {
    let mut total = 0u64;
    for i in 0..u64::from(MAX_IOVECS) {
        if i >= count {
            break;
        }
        let entry: Option<[u64; 2]> =
            unsafe { bpf_probe_read_user((iov + 16 * i) as *const [u64; 2]) }.ok();
        let Some(entry) = entry else {
            return u64::MAX;
        };
        total += entry[1].min(u64::from(MAX_OBSERVED_LEN));
    }
    total
}

/// The netfilter config, if a `sendmsg` of `task` on `sk` is one to judge: nf_tables'
/// and ipset's netlink family, in the host's network namespace, from a sender nfnetlink
/// would listen to.
#[inline(always)]
fn judged_sender(
    off: &KernelOffsets,
    sk: KernelPtr,
    task: KernelPtr,
) -> Option<&'static NetfilterConfig> {
    if read_at::<u16>(sk, off.sock_sk_protocol) != Some(NETLINK_NETFILTER) {
        return None;
    }
    let config = NETFILTER_CONFIG.get(0)?;
    if config.host_net_ns == 0 {
        return None;
    }
    let net_ns = read_ptr(sk, off.sock_net).and_then(|net| read_at::<u32>(net, off.net_ns_inum));
    if net_ns != Some(config.host_net_ns) {
        return None;
    }
    // nfnetlink answers a sender without CAP_NET_ADMIN with EPERM itself.
    let caps =
        read_ptr(task, off.task_cred).and_then(|c| read_at::<u64>(c, off.cred_cap_effective));
    if caps.is_some_and(|c| c & (1 << CAP_NET_ADMIN) == 0) {
        return None;
    }
    Some(config)
}

/// The netlink socket behind `task`'s descriptor `fd`, if it is one:
/// `files->fdt->fd[fd]`, a socket file (`S_IFSOCK`), its `struct socket`'s `sk`, of
/// family `AF_NETLINK`.
#[inline(always)]
fn fd_netlink_sock(off: &KernelOffsets, task: KernelPtr, fd: u64) -> Option<KernelPtr> {
    let fdt = read_ptr(task, off.task_files).and_then(|f| read_ptr(f, off.files_struct_fdt))?;
    if fd >= u64::from(read_at::<u32>(fdt, off.fdtable_max_fds)?) {
        return None;
    }
    let files = read_ptr(fdt, off.fdtable_fd)?;
    let file = read_ptr(files.wrapping_add(8 * fd as usize), 0)?;
    let mode =
        read_ptr(file, off.file_f_inode).and_then(|i| read_at::<u16>(i, off.inode_i_mode))?;
    if mode & S_IFMT != S_IFSOCK {
        return None;
    }
    let sk = read_ptr(file, off.file_private_data).and_then(|s| read_ptr(s, off.socket_sk))?;
    (read_at::<u16>(sk, off.sock_sk_family)? == AF_NETLINK).then_some(sk)
}

/// Walks the batch of `len` bytes at `base` (see [`BatchBytes::start`]),
/// [`WALK_ATTEMPTS`] times at most while other walks on this CPU overwrite it: what it
/// refuses (`op` 0 for nothing) and how many messages it read.
#[inline(always)]
fn judge_batch<S: BatchBytes>(
    w: *mut BatchWalk,
    config: &NetfilterConfig,
    base: u64,
    count: u32,
    len: u32,
) -> (Refusal, u32) {
    // What the walk found, copied out of the shared slot before its stamp is checked.
    let mut refusal = Refusal {
        op: 0,
        rule_id: 0,
        family: 0,
        kind: 0,
        table: [0; 4],
        object: [0; 4],
    };
    let mut messages = 0;
    let mut kept = false;
    for attempt in 1..=WALK_ATTEMPTS {
        let stamp = unsafe { stamp_take(&raw mut (*w).stamp) };
        unsafe { (*w).len = len };
        S::start(unsafe { &mut (*w).source }, base, count, len);
        let w = unsafe { &mut *w };
        w.offset = 0;
        w.messages = 0;
        w.done = 0;
        w.pending = 0;
        w.refusal.op = 0;
        S::walk();
        rtguard_netfilter_settle();
        refusal.op = w.refusal.op;
        refusal.rule_id = w.refusal.rule_id;
        refusal.family = w.refusal.family;
        refusal.kind = w.refusal.kind;
        copy(&mut refusal.table, &w.refusal.table);
        copy(&mut refusal.object, &w.refusal.object);
        messages = w.messages;
        kept = unsafe { stamp_kept(&raw const w.stamp, stamp) };
        if kept || attempt == WALK_ATTEMPTS {
            break;
        }
    }
    // Every walk was overwritten by another on this CPU: what it found is not this batch's.
    if !kept && config.active != 0 {
        refusal.op = NetfilterOp::Unjudged as u32;
        refusal.rule_id = config.patterns[0].rule_id;
        refusal.family = 0;
        refusal.kind = 0;
        clear(&mut refusal.table);
        clear(&mut refusal.object);
    }
    (refusal, messages)
}

/// The refusal's rule and the sender's executable, unless there is no refusal or the
/// sender may make it (see [`trusted`]).
#[inline(always)]
fn untrusted_refusal(
    off: &KernelOffsets,
    task: KernelPtr,
    refusal: &Refusal,
) -> Option<(u32, InodeKey)> {
    if refusal.op == 0 {
        return None;
    }
    let config = NETFILTER_CONFIG.get(0)?;
    let exe = task_exe(off, task);
    if trusted(exe, config.trusted_classes)
        || trusted(
            task_parent(off, task).and_then(|p| task_exe(off, p)),
            config.trusted_classes,
        )
    {
        return None;
    }
    Some((refusal.rule_id, exe.unwrap_or_default()))
}

/// Where a batch's bytes are read from: the skb netlink copied them into (the LSM hook),
/// or the sender's own memory at the syscall (degraded mode's tracepoints). Reads within
/// one attempt go forward only; each attempt starts with [`BatchBytes::start`].
trait BatchBytes {
    /// Points `source` at the batch: `base` (the skb's data; the iovec array, or
    /// `sendto`'s buffer when `count` is 0) holding `len` bytes.
    fn start(source: &mut Source, base: u64, count: u32, len: u32);
    /// `n` bytes (at most [`NF_NAME_LEN`], a constant at every call) at `offset` of the
    /// batch, into `to`.
    fn read(source: &mut Source, offset: u32, to: *mut u8, n: u32) -> bool;
    /// `NF_NAME_LEN` bytes into `to` for a name attribute's payload of `len` bytes; the
    /// caller masks off those past `len`.
    fn read_name(source: &mut Source, offset: u32, to: *mut NameWords, len: u32) -> bool;
    /// One walk of the batch in `NETFILTER_WALK`, started by the caller ([`walk_batch`]).
    fn walk();
}

/// One walk of the batch in `NETFILTER_WALK`, a message per call of `bpf_loop`'s callback.
/// Called through a global function per source, so the verifier checks the callback
/// once, not once per attempt of [`judge_batch`]'s unrolled loop.
#[inline(always)]
fn walk_batch<S: BatchBytes>() -> i32 {
    unsafe {
        bpf_loop(
            MAX_BATCH_MESSAGES,
            walk_message::<S> as *mut c_void,
            core::ptr::null_mut(),
            0,
        );
    }
    0
}

/// [`walk_batch`] of the skb's bytes (the LSM hook).
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn rtguard_netfilter_walk_skb() -> i32 {
    walk_batch::<SkbBytes>()
}

/// [`walk_batch`] of the sender's memory (degraded mode).
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn rtguard_netfilter_walk_user() -> i32 {
    walk_batch::<UserBytes>()
}

/// The skb at `security_netlink_send`: one linear buffer at `Source::base`.
struct SkbBytes;

impl BatchBytes for SkbBytes {
    #[inline(always)]
    fn start(source: &mut Source, base: u64, _count: u32, _len: u32) {
        source.base = base;
    }

    #[inline(always)]
    fn read(source: &mut Source, offset: u32, to: *mut u8, n: u32) -> bool {
        let from = source.base + u64::from(offset);
        unsafe { generated::bpf_probe_read_kernel(to.cast(), n, from as *const c_void) == 0 }
    }

    /// A netlink buffer ends in its `skb_shared_info`, so the bytes past a short last
    /// attribute are readable.
    #[inline(always)]
    fn read_name(source: &mut Source, offset: u32, to: *mut NameWords, _len: u32) -> bool {
        Self::read(source, offset, to.cast(), NF_NAME_LEN as u32)
    }

    #[inline(always)]
    fn walk() {
        rtguard_netfilter_walk_skb();
    }
}

/// The sender's iovecs (or `sendto`'s buffer), which netlink would copy into one skb;
/// a read may span two of them.
struct UserBytes;

impl UserBytes {
    /// Moves to the next iovec; false past the last.
    #[inline(always)]
    fn next(source: &mut Source) -> bool {
        let next = source.index + 1;
        if next >= source.count || next >= MAX_IOVECS {
            return false;
        }
        let start = source.start + source.len;
        if start >= MAX_OBSERVED_LEN {
            return false;
        }
        let iov: Option<[u64; 2]> =
            unsafe { bpf_probe_read_user((source.base + 16 * u64::from(next)) as *const [u64; 2]) }
                .ok();
        let Some(iov) = iov else {
            return false;
        };
        source.start = start;
        source.index = next;
        source.at = iov[0];
        source.len = iov[1].min(u64::from(MAX_OBSERVED_LEN)) as u32;
        true
    }

    /// `n` bytes (at most `NF_NAME_LEN`) at `offset` into `Source::span`, from the
    /// iovec holding `offset` and, where they run past its end, the next one's start.
    /// Every size is masked next to its helper call, for the verifier.
    #[inline(always)]
    fn fetch(source: &mut Source, offset: u32, n: u32) -> bool {
        if n > NF_NAME_LEN as u32 {
            return false;
        }
        // Forward to the iovec holding `offset`, passing over at most a few (empty ones,
        // or ones a message's unread rest fills); past that the read fails, and the batch
        // is reported as too large to judge.
        for _ in 0..SEEK_IOVECS {
            if offset < source.start + source.len || !Self::next(source) {
                break;
            }
        }
        if offset < source.start || offset >= source.start + source.len {
            return false;
        }
        let within = offset - source.start;
        let here = source.len - within;
        let from = (source.at + u64::from(within)) as *const c_void;
        let span = source.span.as_mut_ptr();
        if n <= here {
            let n = verifier_bound::<{ NF_NAME_LEN * 2 }>(n as usize) as u32;
            return unsafe { generated::bpf_probe_read_user(span.cast(), n, from) } == 0;
        }
        // Split over this iovec's end (`here` < `n` bytes) and the next one's start.
        let first = verifier_bound::<NF_NAME_LEN>(here as usize);
        if unsafe { generated::bpf_probe_read_user(span.cast(), first as u32, from) } != 0
            || !Self::next(source)
        {
            return false;
        }
        let rest = n - first as u32;
        if rest > source.len {
            return false;
        }
        let rest = verifier_bound::<{ NF_NAME_LEN * 2 }>(rest as usize) as u32;
        let at = source.at as *const c_void;
        unsafe { generated::bpf_probe_read_user(span.add(first).cast(), rest, at) == 0 }
    }
}

impl BatchBytes for UserBytes {
    #[inline(always)]
    fn start(source: &mut Source, base: u64, count: u32, len: u32) {
        source.base = base;
        source.count = count;
        source.index = 0;
        source.start = 0;
        if count == 0 {
            // sendto: the buffer itself.
            source.at = base;
            source.len = len;
            return;
        }
        let iov: Option<[u64; 2]> = unsafe { bpf_probe_read_user(base as *const [u64; 2]) }.ok();
        let iov = iov.unwrap_or([0, 0]);
        source.at = iov[0];
        source.len = iov[1].min(u64::from(MAX_OBSERVED_LEN)) as u32;
    }

    #[inline(always)]
    fn read(source: &mut Source, offset: u32, to: *mut u8, n: u32) -> bool {
        rtguard_netfilter_fetch(u64::from(offset), u64::from(n)) != 0
            && unsafe {
                generated::bpf_probe_read_kernel(to.cast(), n, source.span.as_ptr().cast())
            } == 0
    }

    /// Only the payload is read from the sender: past a buffer's end its memory may not
    /// be mapped. The copy is the whole span's first `NF_NAME_LEN` bytes.
    #[inline(always)]
    fn read_name(source: &mut Source, offset: u32, to: *mut NameWords, len: u32) -> bool {
        rtguard_netfilter_fetch(u64::from(offset), u64::from(len.min(NF_NAME_LEN as u32))) != 0
            && unsafe {
                generated::bpf_probe_read_kernel(
                    to.cast(),
                    NF_NAME_LEN as u32,
                    source.span.as_ptr().cast(),
                )
            } == 0
    }

    #[inline(always)]
    fn walk() {
        rtguard_netfilter_walk_user();
    }
}

/// [`UserBytes::fetch`] on the walk's source, as a function of its own: verified once,
/// not at each of its five places in the callbacks. 1 if the bytes were read.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn rtguard_netfilter_fetch(offset: u64, n: u64) -> i32 {
    let Some(w) = NETFILTER_WALK.get_ptr_mut(0) else {
        return 0;
    };
    i32::from(UserBytes::fetch(
        unsafe { &mut (*w).source },
        offset as u32,
        n as u32,
    ))
}

/// A `T` at `offset` in the batch.
#[inline(always)]
fn read_value<S: BatchBytes, T: Copy>(w: *mut BatchWalk, offset: u32) -> Option<T> {
    let mut value = core::mem::MaybeUninit::<T>::uninit();
    let source = unsafe { &mut (*w).source };
    S::read(
        source,
        offset,
        value.as_mut_ptr().cast(),
        size_of::<T>() as u32,
    )
    .then(|| unsafe { value.assume_init() })
}

/// [`settle`] on this CPU's walk. A function of its own, verified once per program: inlined,
/// each of the live objects it may stop at led the verifier through the rest of the
/// batch's judgement again, half of what it checked for the netfilter program.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn rtguard_netfilter_settle() -> i32 {
    if let (Some(w), Some(config)) = (NETFILTER_WALK.get_ptr_mut(0), NETFILTER_CONFIG.get(0)) {
        // SAFETY: a per-CPU array's value, valid for the program's run.
        settle(unsafe { &mut *w }, config);
    }
    0
}

/// The walk's answer once it has stopped: a batch it could not read to the end is refused
/// while protected objects exist, and the first object still taken away is the refusal.
#[inline(always)]
fn settle(w: &mut BatchWalk, config: &NetfilterConfig) {
    if w.refusal.op != 0 {
        return;
    }
    if w.done == 0 && config.active != 0 {
        w.refusal.op = NetfilterOp::TooLarge as u32;
        w.refusal.rule_id = config.patterns[0].rule_id;
        w.refusal.family = 0;
        w.refusal.kind = 0;
        clear(&mut w.refusal.table);
        clear(&mut w.refusal.object);
        return;
    }
    if w.pending == 0 {
        return;
    }
    for i in 0..MAX_LIVE_OBJECTS {
        if w.pending & (1 << i) == 0 {
            continue;
        }
        if let Some(o) = NETFILTER_LIVE.get(i) {
            w.refusal.op = w.op(i);
            w.refusal.rule_id = o.rule_id;
            w.refusal.family = o.family;
            w.refusal.kind = o.kind;
            copy(&mut w.refusal.table, &o.table);
            copy(&mut w.refusal.object, &o.name);
        }
        break;
    }
}

/// Whether `exe` may change protected chains: it is a trusted caller of a firewall
/// command class (dockerd), or its parent is (the `iptables` dockerd runs).
#[inline(always)]
fn trusted(exe: Option<InodeKey>, classes: u32) -> bool {
    exe.and_then(|k| unsafe { TRUSTED_CALLERS.get(k) }.copied())
        .is_some_and(|c| c & classes != 0)
}

/// Attribute numbers no attribute has.
const NO_ATTR: u32 = u32::MAX;

/// One message of the buffer: `bpf_loop`'s callback. Returns 1 to stop. Its attributes
/// and the live objects are walked by callbacks of their own, each verified once.
#[inline(never)]
extern "C" fn walk_message<S: BatchBytes>(index: u64, _ctx: *mut c_void) -> i64 {
    let Some(w) = NETFILTER_WALK.get_ptr_mut(0) else {
        return 1;
    };
    let start = unsafe { (*w).offset };
    if start + NLMSG_HDR_LEN > unsafe { (*w).len } {
        unsafe { (*w).done = 1 };
        return 1;
    }
    // nlmsg_len, nlmsg_type | nlmsg_flags << 16, seq, pid, nfgenmsg.
    let header = read_value::<S, [u32; 5]>(w, start);
    let w = unsafe { &mut *w };
    // A batch that can't be read to its end is not judged by its start (`settle`).
    let Some(header) = header else {
        return 1;
    };
    let msg_len = header[0];
    let msg_type = header[1] as u16;
    let msg_flags = (header[1] >> 16) as u16;
    if index == 0 {
        w.batch = u32::from(msg_type == NFNL_MSG_BATCH_BEGIN);
    }
    // Where nfnetlink stops reading: a batch with a message shorter than its headers or
    // longer than the buffer is aborted whole; outside a batch, netlink_rcv_skb stops
    // there, after what it has processed.
    // nfnetlink_rcv() reads the first header with only nlmsg_len >= 16 (and a buffer of
    // at least 20 bytes); the batch's later messages need their nfgenmsg.
    let shortest = if w.batch != 0 && index != 0 {
        NLMSG_HDR_LEN + NFGENMSG_LEN
    } else {
        NLMSG_HDR_LEN
    };
    if w.batch != 0 && index == 0 && w.len < NLMSG_HDR_LEN + NFGENMSG_LEN {
        w.done = 1;
        return 1;
    }
    if msg_len < shortest || msg_len > w.len - start {
        w.done = 1;
        return 1;
    }
    w.offset = (start + ((msg_len + 3) & !3)).min(w.len);
    w.messages += 1;
    let subsystem = (msg_type >> 8) as u8;
    let command = msg_type as u8;
    if w.batch != 0 {
        if msg_type == NFNL_MSG_BATCH_END {
            w.done = 1;
            return 1;
        }
        if index == 0 || subsystem != NFNL_SUBSYS_NFTABLES {
            return 0;
        }
        // Rules are only read while a flush waits for them.
        if command == nft_msg::NEWRULE && w.pending == 0 {
            return 0;
        }
    } else if subsystem != NFNL_SUBSYS_IPSET
        || msg_len < NLMSG_HDR_LEN + NFGENMSG_LEN
        || msg_flags & NLM_F_REQUEST == 0
    {
        // Not ipset's, or a message nfnetlink skips (too short for its header, or no
        // request); the next one is read all the same.
        return 0;
    }
    let m = &mut w.msg;
    m.ipset = u32::from(w.batch == 0);
    m.command = u32::from(command);
    m.family = header[4] & 0xff;
    let (table_attr, name_attr, handle_attr, rule_attr) = if m.ipset != 0 {
        ipset_attrs(command)
    } else {
        nft_attrs(command)
    };
    // One store each: stored together, the four `NO_ATTR`s of a message the layer does
    // not read became a call to the compiler's byte-at-a-time `memset` (see
    // `zero_words`), which the verifier checked at every message.
    unsafe {
        core::ptr::write_volatile(&mut m.table_attr, table_attr);
        core::ptr::write_volatile(&mut m.name_attr, name_attr);
        core::ptr::write_volatile(&mut m.handle_attr, handle_attr);
        core::ptr::write_volatile(&mut m.rule_attr, rule_attr);
    }
    if m.table_attr == NO_ATTR && m.name_attr == NO_ATTR && m.handle_attr == NO_ATTR {
        return 0;
    }
    let Some(config) = NETFILTER_CONFIG.get(0) else {
        return 1;
    };
    // Attributes run to the message's unaligned end, as nlmsg_attrlen() has it.
    m.attr = start + NLMSG_HDR_LEN + NFGENMSG_LEN;
    m.end = start + msg_len;
    m.seen = 0;
    m.complete = 0;
    m.value = 0;
    m.handle = 0;
    clear(&mut m.table);
    clear(&mut m.name);
    // One more call than attributes fit, to see the end.
    let calls = ((msg_len - NLMSG_HDR_LEN - NFGENMSG_LEN) / 4 + 1).min(MAX_MESSAGE_ATTRS);
    unsafe {
        bpf_loop(
            calls,
            walk_attr::<S> as *mut c_void,
            core::ptr::null_mut(),
            0,
        );
    }
    if w.msg.complete == 0 {
        refuse(
            w,
            NetfilterOp::TooLarge,
            config.patterns[0].rule_id,
            (header[4] & 0xff) as u8,
            0,
            &[0; 4],
            &[0; 4],
        );
        return 1;
    }
    rtguard_netfilter_judge_message();
    loop_stops(w.done != 0)
}

/// What the message just read does to the protected objects ([`judge_nft`],
/// [`judge_ipset`]). A function of its own, verified once per program: inlined into the
/// message callback, its paths were verified again with each of the callback's, and
/// again for each round in which newer kernels verify a callback.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn rtguard_netfilter_judge_message() -> i32 {
    let (Some(w), Some(config)) = (NETFILTER_WALK.get_ptr_mut(0), NETFILTER_CONFIG.get(0)) else {
        return 0;
    };
    let w = unsafe { &mut *w };
    if w.msg.ipset != 0 {
        judge_ipset(w, config);
    } else {
        judge_nft(w, config);
    }
    0
}

/// One attribute of the message being read: `bpf_loop`'s callback.
#[inline(never)]
extern "C" fn walk_attr<S: BatchBytes>(_index: u64, _ctx: *mut c_void) -> i64 {
    let Some(w) = NETFILTER_WALK.get_ptr_mut(0) else {
        return 1;
    };
    let m = unsafe { &raw mut (*w).msg };
    let attr = unsafe { (*m).attr };
    // nla_ok(): a header, and a length within what is left. Where it fails, nf_tables'
    // parser stops too, and what it read so far is the message.
    if attr + 4 > unsafe { (*m).end } {
        unsafe { (*m).complete = 1 };
        return 1;
    }
    let Some(header) = read_value::<S, u32>(w, attr) else {
        return 1;
    };
    let m = unsafe { &mut *m };
    let len = header & 0xffff;
    if len < 4 || len > m.end - attr {
        m.complete = 1;
        return 1;
    }
    let kind = (header >> 16) & u32::from(NLA_TYPE_MASK);
    let payload = attr + 4;
    // A repeated attribute overwrites: nla_parse() keeps the last. A payload that can't
    // be read leaves the message incomplete, which is refused, not judged by the rest.
    if kind == m.table_attr {
        if !read_name::<S>(w, &raw mut m.table, payload, len - 4) {
            return 1;
        }
        m.seen |= ROLE_TABLE;
    } else if kind == m.name_attr {
        if !read_name::<S>(w, &raw mut m.name, payload, len - 4) {
            return 1;
        }
        m.seen |= ROLE_NAME;
    } else if kind == m.handle_attr {
        // NLA_U64 in network byte order.
        let Some(handle) = read_value::<S, u64>(w, payload) else {
            return 1;
        };
        m.handle = u64::from_be(handle);
        m.seen |= ROLE_HANDLE;
    } else if kind == m.rule_attr {
        let Some(value) = read_value::<S, u32>(w, payload) else {
            return 1;
        };
        m.value = u32::from_be(value);
        m.seen |= ROLE_RULE;
    }
    m.attr = attr + ((len + 3) & !3);
    0
}

/// The attribute numbers of an nf_tables message's table, object name, handle and rule
/// (`enum nft_*_attributes`); `NO_ATTR` for a message the layer does not read.
#[inline(always)]
fn nft_attrs(command: u8) -> (u32, u32, u32, u32) {
    let a = |n: u16| u32::from(n);
    match command {
        nft_msg::DELTABLE | nft_msg::DESTROYTABLE => {
            (a(nfta::TABLE_NAME), NO_ATTR, a(nfta::TABLE_HANDLE), NO_ATTR)
        }
        // An existing table updated: its flags (dormant).
        nft_msg::NEWTABLE => (a(nfta::TABLE_NAME), NO_ATTR, NO_ATTR, a(nfta::TABLE_FLAGS)),
        nft_msg::NEWRULE => (a(nfta::RULE_TABLE), a(nfta::RULE_CHAIN), NO_ATTR, NO_ATTR),
        // Elements listed are deleted one by one; none listed is the whole set.
        nft_msg::DELSETELEM | nft_msg::DESTROYSETELEM => (
            a(nfta::SET_ELEM_LIST_TABLE),
            a(nfta::SET_ELEM_LIST_SET),
            NO_ATTR,
            a(nfta::SET_ELEM_LIST_ELEMENTS),
        ),
        nft_msg::NEWCHAIN | nft_msg::DELCHAIN | nft_msg::DESTROYCHAIN => (
            a(nfta::CHAIN_TABLE),
            a(nfta::CHAIN_NAME),
            a(nfta::CHAIN_HANDLE),
            NO_ATTR,
        ),
        // A rule by handle or by its id in the batch is one rule; its chain is the name.
        nft_msg::DELRULE | nft_msg::DESTROYRULE => (
            a(nfta::RULE_TABLE),
            a(nfta::RULE_CHAIN),
            a(nfta::RULE_HANDLE),
            a(nfta::RULE_ID),
        ),
        nft_msg::NEWSET | nft_msg::DELSET | nft_msg::DESTROYSET => (
            a(nfta::SET_TABLE),
            a(nfta::SET_NAME),
            a(nfta::SET_HANDLE),
            NO_ATTR,
        ),
        _ => (NO_ATTR, NO_ATTR, NO_ATTR, NO_ATTR),
    }
}

/// ipset's: the set, and for a swap the other set (kept where a table name would be).
#[inline(always)]
fn ipset_attrs(command: u8) -> (u32, u32, u32, u32) {
    let a = |n: u16| u32::from(n);
    match command {
        ipset::CMD_SWAP => (
            a(ipset::ATTR_SETNAME2),
            a(ipset::ATTR_SETNAME),
            NO_ATTR,
            NO_ATTR,
        ),
        ipset::CMD_DESTROY | ipset::CMD_FLUSH | ipset::CMD_RENAME => {
            (NO_ATTR, a(ipset::ATTR_SETNAME), NO_ATTR, NO_ATTR)
        }
        _ => (NO_ATTR, NO_ATTR, NO_ATTR, NO_ATTR),
    }
}

/// A name attribute's payload (`len` bytes, NUL included) at `payload`, as NUL-padded
/// words; what was read past `len` is masked off. False if it could not be read.
#[inline(always)]
fn read_name<S: BatchBytes>(w: *mut BatchWalk, to: *mut NameWords, payload: u32, len: u32) -> bool {
    let read = S::read_name(unsafe { &mut (*w).source }, payload, to, len);
    let to = unsafe { &mut *to };
    if !read {
        clear(to);
        return false;
    }
    for (k, word) in to.iter_mut().enumerate() {
        let valid = len.saturating_sub(8 * k as u32).min(8);
        *word &= if valid >= 8 {
            u64::MAX
        } else {
            (1u64 << (8 * valid)) - 1
        };
    }
    true
}

/// What one nf_tables message does to the protected objects, as nf_tables would apply it
/// (`nf_tables_deltable`, `_delchain`, `_delrule`, `_delset`).
#[inline(always)]
fn judge_nft(w: &mut BatchWalk, config: &NetfilterConfig) {
    let m = &w.msg;
    let command = m.command as u8;
    let family = m.family as u8;
    let seen = m.seen;
    let has_table = seen & ROLE_TABLE != 0;
    let has_name = seen & ROLE_NAME != 0;
    let by_handle = seen & ROLE_HANDLE != 0;
    let kind = match command {
        nft_msg::NEWSET
        | nft_msg::DELSET
        | nft_msg::DESTROYSET
        | nft_msg::DELSETELEM
        | nft_msg::DESTROYSETELEM => PATTERN_SET,
        _ => PATTERN_CHAIN,
    };
    // (action, kinds, op, whether the table, the name and the handle narrow it)
    let (action, kinds, op, by_table, by_name, by_handle) = match command {
        nft_msg::DELTABLE | nft_msg::DESTROYTABLE => {
            // A table named by neither, or in no family, is every table there is.
            if family == family::UNSPEC || seen & (ROLE_TABLE | ROLE_HANDLE) == 0 {
                let op = if has_table {
                    NetfilterOp::DeleteTable
                } else {
                    NetfilterOp::FlushRuleset
                };
                (TAKE, ALL_KINDS, op, has_table, false, false)
            } else if by_handle {
                // Tables' handles are not mirrored: any table of the family may be it.
                (
                    ANY,
                    ALL_KINDS,
                    NetfilterOp::DeleteByHandle,
                    false,
                    false,
                    false,
                )
            } else {
                (
                    TAKE,
                    ALL_KINDS,
                    NetfilterOp::DeleteTable,
                    true,
                    false,
                    false,
                )
            }
        }
        nft_msg::DELCHAIN | nft_msg::DESTROYCHAIN | nft_msg::DELSET | nft_msg::DESTROYSET => {
            let op = if kind == PATTERN_SET {
                NetfilterOp::DeleteSet
            } else {
                NetfilterOp::DeleteChain
            };
            // nf_tables looks a handle up first, and the name only without one.
            if by_handle {
                (TAKE, kind, op, true, false, true)
            } else if has_name {
                (TAKE, kind, op, true, true, false)
            } else {
                return;
            }
        }
        nft_msg::DELRULE | nft_msg::DESTROYRULE => {
            if !has_name {
                // No chain: every rule of every chain of the table (a handle is ignored).
                (
                    TAKE,
                    PATTERN_CHAIN,
                    NetfilterOp::FlushTable,
                    true,
                    false,
                    false,
                )
            } else if seen & (ROLE_HANDLE | ROLE_RULE) != 0 {
                // One rule.
                return;
            } else {
                (
                    TAKE,
                    PATTERN_CHAIN,
                    NetfilterOp::FlushChain,
                    true,
                    true,
                    false,
                )
            }
        }
        // An existing chain named by handle is updated, and renamed to the name given. A
        // rename is refused outright: inside the batch the old name still finds the chain,
        // so a later declaration of it would only find the chain being renamed.
        nft_msg::NEWCHAIN if by_handle && has_name => (
            ANY,
            PATTERN_CHAIN,
            NetfilterOp::RenameChain,
            true,
            false,
            true,
        ),
        nft_msg::NEWCHAIN if by_handle => return,
        nft_msg::NEWCHAIN | nft_msg::NEWSET if has_table && has_name => {
            (DECLARE, kind, NetfilterOp::DeleteChain, true, true, false)
        }
        nft_msg::NEWRULE if has_table && has_name => (
            REFILL,
            PATTERN_CHAIN,
            NetfilterOp::FlushChain,
            true,
            true,
            false,
        ),
        nft_msg::DELSETELEM | nft_msg::DESTROYSETELEM if has_name && seen & ROLE_RULE == 0 => {
            (TAKE, PATTERN_SET, NetfilterOp::FlushSet, true, true, false)
        }
        nft_msg::NEWTABLE
            if has_table && m.value & (NFT_TABLE_F_DORMANT | NFT_TABLE_F_OWNER) != 0 =>
        {
            (ANY, ALL_KINDS, NetfilterOp::TableFlags, true, false, false)
        }
        _ => return,
    };
    // A named chain or set is looked at only if the policy protects its name.
    let mut named_rule = 0;
    if by_name {
        named_rule = rtguard_netfilter_pattern(kind, MESSAGE_NAME);
        if named_rule == NO_RULE {
            return;
        }
    }
    if !by_name && (action == TAKE || action == ANY) && config.live_overflow != 0 {
        let table = m.table;
        refuse(
            w,
            op,
            config.patterns[0].rule_id,
            family,
            0,
            &table,
            &[0; 4],
        );
        return;
    }
    // A volatile store of the whole: stored field by field, the zeroes at its end became a
    // `memset` call (see the message's attributes in `walk_message`).
    let scan = Scan {
        action,
        kinds,
        op: op as u32,
        by_table: u32::from(by_table),
        by_name: u32::from(by_name),
        by_handle: u32::from(by_handle),
        found: 0,
        found_rule: 0,
        unknown_rule: 0,
        _pad: 0,
    };
    unsafe { core::ptr::write_volatile(&mut w.scan, scan) };
    unsafe {
        bpf_loop(
            config.live_count.min(MAX_LIVE_OBJECTS),
            scan_live as *mut c_void,
            core::ptr::null_mut(),
            0,
        );
    }
    let (found, found_rule, unknown_rule) = (w.scan.found, w.scan.found_rule, w.scan.unknown_rule);
    let (table, name) = (w.msg.table, w.msg.name);
    if action == ANY && found_rule != 0 {
        // A rename names the chain it takes away; the other table-wide answers the table.
        match NETFILTER_LIVE.get(found) {
            Some(o) if op == NetfilterOp::RenameChain => {
                let (table, name) = (o.table, o.name);
                refuse(w, op, found_rule, family, PATTERN_CHAIN, &table, &name);
            }
            _ => refuse(w, op, found_rule, family, 0, &table, &[0; 4]),
        }
    } else if action == TAKE && by_name && found_rule == 0 {
        // A protected name the mirror does not hold (not yet, or no longer): refused as
        // such, since what it is can't be told.
        refuse(w, op, named_rule, family, kind, &table, &name);
    } else if by_handle && found_rule == 0 && unknown_rule != 0 {
        // A handle newer than anything the daemon saw in a table holding protected
        // objects (one created since, or earlier in this batch): which object it is
        // can't be told.
        refuse(w, op, unknown_rule, family, kind, &table, &[0; 4]);
    }
}

/// One live object against the message's scan: `bpf_loop`'s callback.
#[inline(never)]
extern "C" fn scan_live(index: u64, _ctx: *mut c_void) -> i64 {
    let i = (index as u32) & (MAX_LIVE_OBJECTS - 1);
    let (Some(w), Some(o)) = (NETFILTER_WALK.get_ptr_mut(0), NETFILTER_LIVE.get(i)) else {
        return 1;
    };
    let w = unsafe { &mut *w };
    let (m, scan) = (&w.msg, &w.scan);
    // Family UNSPEC means every family for what is taken away (nft_flush), and none for
    // what is declared or refilled.
    let any_family =
        m.family == u32::from(family::UNSPEC) && scan.action != DECLARE && scan.action != REFILL;
    if o.kind & scan.kinds == 0
        || (!any_family && o.family != m.family)
        || (scan.by_table != 0 && !same(&o.table, &m.table))
        || (scan.by_name != 0 && !same(&o.name, &m.name))
    {
        return 0;
    }
    if scan.by_handle != 0 && o.handle != m.handle {
        if m.handle > o.table_max_handle {
            w.scan.unknown_rule = o.rule_id;
        }
        return 0;
    }
    w.scan.found = i;
    w.scan.found_rule = o.rule_id;
    if w.scan.action == TAKE {
        w.pending |= 1 << i;
        let op = w.scan.op;
        w.set_op(i, op);
    } else if w.scan.action == DECLARE {
        // A declaration brings back what was deleted; what was only flushed needs its
        // rules back (REFILL).
        let op = w.op(i);
        if op == NetfilterOp::DeleteChain as u32
            || op == NetfilterOp::DeleteSet as u32
            || op == NetfilterOp::DeleteTable as u32
            || op == NetfilterOp::FlushRuleset as u32
        {
            w.pending &= !(1 << i);
        }
    } else if w.scan.action == REFILL {
        let op = w.op(i);
        if op == NetfilterOp::FlushChain as u32 || op == NetfilterOp::FlushTable as u32 {
            w.pending &= !(1 << i);
        }
    }
    0
}

/// One ipset command: destroy, flush, rename or swap of a protected set, or destroy or
/// flush of every set where the policy protects sets.
#[inline(always)]
fn judge_ipset(w: &mut BatchWalk, config: &NetfilterConfig) {
    let op = NetfilterOp::IpsetChange;
    let (command, family, seen) = (w.msg.command as u8, w.msg.family as u8, w.msg.seen);
    let (name, other) = (w.msg.name, w.msg.table);
    if seen & ROLE_NAME == 0 {
        if matches!(command, ipset::CMD_DESTROY | ipset::CMD_FLUSH) && config.ipset_rule_id != 0 {
            refuse(
                w,
                op,
                config.ipset_rule_id,
                family,
                PATTERN_SET,
                &[0; 4],
                &[0; 4],
            );
        }
        return;
    }
    let rule = rtguard_netfilter_pattern(PATTERN_SET, MESSAGE_NAME);
    if rule != NO_RULE {
        refuse(w, op, rule, family, PATTERN_SET, &[0; 4], &name);
    } else if seen & ROLE_TABLE != 0 {
        let rule = rtguard_netfilter_pattern(PATTERN_SET, MESSAGE_TABLE);
        if rule != NO_RULE {
            refuse(w, op, rule, family, PATTERN_SET, &[0; 4], &other);
        }
    }
}

/// [`rtguard_netfilter_pattern`]: the message's object name.
const MESSAGE_NAME: u32 = 0;
/// [`rtguard_netfilter_pattern`]: the message's table name (where ipset keeps a swap's
/// other set).
const MESSAGE_TABLE: u32 = 1;

/// The rule of the policy's pattern that names the message's object (`MESSAGE_NAME`) or
/// table (`MESSAGE_TABLE`) as a `kind`, or `NO_RULE`. A function of its own, verified once
/// per program: inline, the loop over the patterns was checked again for each way the
/// message's judgement reached it.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn rtguard_netfilter_pattern(kind: u32, field: u32) -> u32 {
    let (Some(w), Some(config)) = (NETFILTER_WALK.get_ptr(0), NETFILTER_CONFIG.get(0)) else {
        return NO_RULE;
    };
    // SAFETY: a per-CPU array's value, valid for the program's run.
    let name = unsafe {
        if field == MESSAGE_TABLE {
            &(*w).msg.table
        } else {
            &(*w).msg.name
        }
    };
    config
        .pattern_for(kind, name)
        .map_or(NO_RULE, |p| p.rule_id)
}

/// Records the batch's refusal (the first one found) and ends the walk.
#[inline(always)]
fn refuse(
    w: &mut BatchWalk,
    op: NetfilterOp,
    rule_id: u32,
    family: u8,
    kind: u32,
    table: &NameWords,
    object: &NameWords,
) {
    w.refusal.op = op as u32;
    w.refusal.rule_id = rule_id;
    w.refusal.family = u32::from(family);
    w.refusal.kind = kind;
    copy(&mut w.refusal.table, table);
    copy(&mut w.refusal.object, object);
    w.done = 1;
}

#[inline(always)]
fn report(
    off: &KernelOffsets,
    task: KernelPtr,
    exe: InodeKey,
    decision: Decision,
    refusal: &Refusal,
    messages: u32,
) {
    let Some(mut entry) = EVENTS.reserve::<NetfilterEvent>(0) else {
        count_dropped_event();
        return;
    };
    let ev = entry.as_mut_ptr();
    unsafe {
        fill_header(
            &mut (*ev).header,
            EventKind::Netfilter,
            decision,
            off,
            task,
            exe,
        );
        (*ev).rule_id = refusal.rule_id;
        (*ev).op = refusal.op;
        (*ev).family = refusal.family;
        (*ev).object_kind = refusal.kind;
        copy(&mut (*ev).table, &refusal.table);
        copy(&mut (*ev).object, &refusal.object);
        (*ev).messages = messages;
        (*ev)._pad = 0;
        current_cmdline(off, task, &mut (*ev).cmdline);
    }
    entry.submit(0);
}

const _: () = assert!(NF_NAME_LEN == 32 && MAX_LIVE_OBJECTS == 64);
