//! The LSM chain: what a program answers is 0 or -EPERM, and never an allow over an
//! earlier denial.
//! Every layer's hooks answer through these.

use aya_ebpf::programs::LsmContext;
use guard_common::KernelOffsets;

use crate::kernel::{offsets_resolved, resolved_offsets};

/// -EPERM: "Operation not permitted" to the shell, `rm` or `kill`; a refused exec exits 126.
pub const EPERM: i32 = -1;

/// BPF LSM programs get the previous program's verdict as an extra last argument
/// (`ret_arg`); an earlier denial is passed on, never turned into an allow. Otherwise the
/// answer is `check`'s.
#[inline(always)]
pub fn after_previous(ctx: &LsmContext, ret_arg: usize, check: impl FnOnce() -> i32) -> i32 {
    match previous_denial(ctx, ret_arg) {
        Some(previous) => previous,
        None => check(),
    }
}

/// [`after_previous`] for a check that reads kernel structs: it runs once the loader has
/// resolved their offsets, and everything is allowed until then.
#[inline(always)]
pub fn chained(ctx: &LsmContext, ret_arg: usize, check: impl FnOnce(&KernelOffsets) -> i32) -> i32 {
    if let Some(previous) = previous_denial(ctx, ret_arg) {
        return previous;
    }
    match resolved_offsets() {
        Some(off) => check(off),
        None => 0,
    }
}

/// [`chained`] with the file layer's fast path first: `unprotected` answers the common
/// case from the hook's own arguments, without copying the offsets block, and `check`
/// (the full decision) runs only when it cannot.
#[inline(always)]
pub fn chained_fast(
    ctx: &LsmContext,
    ret_arg: usize,
    unprotected: impl FnOnce() -> bool,
    check: impl FnOnce(&KernelOffsets) -> i32,
) -> i32 {
    if let Some(previous) = previous_denial(ctx, ret_arg) {
        return previous;
    }
    if !offsets_resolved() || unprotected() {
        return 0;
    }
    match resolved_offsets() {
        Some(off) => check(off),
        None => 0,
    }
}

/// The previous program's verdict, if it was not 0.
#[inline(always)]
fn previous_denial(ctx: &LsmContext, ret_arg: usize) -> Option<i32> {
    let previous: i32 = ctx.arg(ret_arg);
    (previous != 0).then_some(previous)
}

/// A global function's result restated as 0 or -EPERM (for any negative verdict). The
/// verifier knows nothing of what a global function returns, and an LSM program must
/// provably return 0 or an errno. LLVM does know what the function can return, and
/// without the volatile read it may return the verdict's own register, which the
/// verifier still sees as unknown.
#[inline(always)]
pub fn restated(verdict: i32) -> i32 {
    // SAFETY: a read of a local.
    if unsafe { core::ptr::read_volatile(&verdict) } < 0 {
        EPERM
    } else {
        0
    }
}
