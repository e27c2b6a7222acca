//! Exec layer: destructive commands (package removal, service stops, firewall flushes) are
//! refused before the program runs.
//!
//! Everything happens in `bprm_check_security`. The new image's argv is not readable
//! there, but the caller's is: the old mm is still the task's until later in the exec, and
//! the registers the task entered `execve` / `execveat` with still point at its argv. It is
//! reduced to `ArgToken`s with the same function userspace uses, completed with what only
//! the kernel knows (the executed file's basename and inode class, the caller's trusted
//! classes), classified with `guard_common::exec::classify`'s parts over the command maps,
//! and answered with -EPERM or 0.
//!
//! One program run does it all. argv was once captured by a `sys_enter_execve` tracepoint
//! and handed over in task storage. On Linux 7.3, a preemptible kernel (`full (lazy)`),
//! the capture was missing at `bprm_check_security` for about one exec in five hundred
//! on a busy host, and that exec went unjudged: the kernel skips a tracepoint program
//! while the CPU's `bpf_prog_active` is held, by another BPF program or a map syscall,
//! and a task preempted on that CPU can hold it. The same preemption is why a judgement
//! is stamped and checked (see `bprm_check_security`).
//!
//! The classifier runs as `Classifier::start` and `select`, one `Classifier::step` per
//! argument (one `Classifier::letter` per letter of a `-rf` cluster) and
//! `Classifier::finish`, each in its own global function: the verifier checks the
//! per-argument and per-letter work once, not 64 or 31 times over.

use aya_ebpf::{
    bindings::BPF_F_NO_PREALLOC,
    helpers::{
        bpf_probe_read_kernel_str_bytes, bpf_probe_read_user, bpf_probe_read_user_str_bytes,
        generated::bpf_loop,
    },
    macros::{lsm, map},
    maps::{Array, HashMap, PerCpuArray},
    programs::LsmContext,
};

use core::ffi::c_void;
use guard_common::{
    event::{EventKind, EXEC_ARG_LONGER, EXEC_EVENT_ARGS},
    exec::{
        action, read_cluster, ArgToken, BinaryEntry, ClassEntry, Classification, Classifier,
        CommandConfig, CommandLine, CommandTables, ObjectEntry, ObjectKey, Step, TokenHasher,
        WordEntry, WordKey, LINE_KERNEL_EXEC, LINE_TRUNCATED, LOADER_ARGUMENTS, MAX_ARGV_TOKENS,
        MAX_CLASSES, MAX_COMMAND_BINARIES, MAX_COMMAND_OBJECTS, MAX_COMMAND_WORDS, MAX_PREFIX_LENS,
        MAX_TOKEN_BYTES, NO_CLASS, TOKEN_HEAD_BYTES, TOKEN_TRUNCATED,
    },
    hash::{basename_step, FNV_OFFSET},
    rule::Action,
    Decision, ExecEvent, InodeKey, MAX_EXE_CLASSES,
};

use crate::{
    chain::{after_previous, restated, EPERM},
    kernel::{
        arg_scalar, bprm_exe, bprm_filename, bprm_is_first_pass, current_task, exec_syscall_argv,
        fill_header, loop_stops, read_ptr, resolved_offsets, stamp_kept, stamp_take, task_exe,
        verifier_bound, KernelPtr,
    },
    maps::{count_dropped_event, EVENTS, GUARD_CONFIG, RULES},
};

/// Table-wide parameters (`CommandConfig`), one slot.
#[map]
pub static COMMAND_CONFIG: Array<CommandConfig> = Array::with_max_entries(1, 0);

/// Binary basename hash → command class.
#[map]
pub static COMMAND_BINARIES: HashMap<u64, BinaryEntry> =
    HashMap::with_max_entries(MAX_COMMAND_BINARIES, BPF_F_NO_PREALLOC);

/// Command classes by id.
#[map]
pub static COMMAND_CLASSES: Array<ClassEntry> = Array::with_max_entries(MAX_CLASSES, 0);

/// Verbs, modifiers and value-taking options of every class.
#[map]
pub static COMMAND_WORDS: HashMap<WordKey, WordEntry> =
    HashMap::with_max_entries(MAX_COMMAND_WORDS, BPF_F_NO_PREALLOC);

/// Protected names of every class, in every spelling.
#[map]
pub static COMMAND_OBJECTS: HashMap<ObjectKey, ObjectEntry> =
    HashMap::with_max_entries(MAX_COMMAND_OBJECTS, BPF_F_NO_PREALLOC);

/// Command binaries by identity → class, for an exec under another name (a hard link).
#[map]
pub static EXE_CLASSES: HashMap<InodeKey, u32> =
    HashMap::with_max_entries(MAX_EXE_CLASSES, BPF_F_NO_PREALLOC);

/// Executables → the classes whose destructive commands they may run (dockerd rebuilding
/// its own chains).
#[map]
pub static TRUSTED_CALLERS: HashMap<InodeKey, u32> =
    HashMap::with_max_entries(MAX_EXE_CLASSES, BPF_F_NO_PREALLOC);

/// What the exec being judged reduced to.
#[repr(C)]
pub struct ExecCapture {
    pub line: CommandLine,
    /// The caller's user-space argv array, still mapped at `bprm_check_security`, for
    /// the event's verbatim copy. 0 when there is none to read.
    pub argv: u64,
    /// Counts the judgements that used this CPU's scratch (see `rtguard_exec_decide`).
    pub stamp: u32,
}

/// The capture of the exec being judged, per CPU (6.7 KB: far beyond the 512-byte
/// stack). Filled and used within one `bprm_check_security` run.
#[map]
pub static CAPTURE_SCRATCH: PerCpuArray<ExecCapture> = PerCpuArray::with_max_entries(1, 0);

/// One argument's bytes: `MAX_TOKEN_BYTES` plus one to see that it is longer, plus NUL.
#[map]
pub static ARG_BYTES: PerCpuArray<[u8; MAX_TOKEN_BYTES + 2]> = PerCpuArray::with_max_entries(1, 0);

/// `ArgToken::new`'s state between bytes.
#[map]
pub static TOKEN_HASHER: PerCpuArray<TokenHasher> = PerCpuArray::with_max_entries(1, 0);

/// The classifier's state between its steps.
#[map]
pub static CLASSIFIER: PerCpuArray<Classifier> = PerCpuArray::with_max_entries(1, 0);

/// The classifier's answer.
#[map]
pub static CLASSIFICATION: PerCpuArray<Classification> = PerCpuArray::with_max_entries(1, 0);

/// One exec event under construction per CPU.
#[map]
pub static EXEC_EVENT_SCRATCH: PerCpuArray<ExecEvent> = PerCpuArray::with_max_entries(1, 0);

/// The command maps, read the way `CompiledCommands` reads its in-memory copy.
struct MapTables;

impl CommandTables for MapTables {
    fn config(&self) -> CommandConfig {
        COMMAND_CONFIG.get(0).copied().unwrap_or_default()
    }

    fn binary(&self, name_hash: u64) -> Option<BinaryEntry> {
        unsafe { COMMAND_BINARIES.get(name_hash) }.copied()
    }

    fn class(&self, class: u32) -> Option<ClassEntry> {
        // An array has every slot; only the first `classes` are classes.
        if class >= self.config().classes {
            return None;
        }
        COMMAND_CLASSES.get(class).copied()
    }

    fn word(&self, key: &WordKey) -> Option<WordEntry> {
        unsafe { COMMAND_WORDS.get(key) }.copied()
    }

    fn object(&self, key: &ObjectKey) -> Option<ObjectEntry> {
        unsafe { COMMAND_OBJECTS.get(key) }.copied()
    }

    fn attached_token(
        &self,
        bytes: &[u8],
        truncated: bool,
        _prefix_lens: &[u32; MAX_PREFIX_LENS],
    ) -> ArgToken {
        let Some(buf) = ARG_BYTES.get_ptr_mut(0) else {
            return TokenHasher::START.finish(true);
        };
        // Attached values come from a token's head: at most TOKEN_HEAD_BYTES long.
        for k in 0..TOKEN_HEAD_BYTES {
            unsafe { (*buf)[k] = bytes.get(k).copied().unwrap_or(0) };
        }
        unsafe { (*buf)[TOKEN_HEAD_BYTES] = 0 };
        token_from_scratch(truncated)
    }
}

/// `ArgToken::new` over the NUL-terminated bytes in `ARG_BYTES`, one byte per call of
/// `rtguard_token_byte`: inlined, the per-byte branches multiply into more states than
/// the verifier explores in reasonable time.
#[inline(always)]
fn token_from_scratch(truncated: bool) -> ArgToken {
    let (Some(hasher), Some(buf)) = (TOKEN_HASHER.get_ptr_mut(0), ARG_BYTES.get_ptr(0)) else {
        return TokenHasher::START.finish(true);
    };
    unsafe { *hasher = TokenHasher::START };
    // `bpf_loop`, not a loop: the verifier checks its callback once, not once per byte.
    let mut ended = 0u32;
    unsafe {
        bpf_loop(
            MAX_TOKEN_BYTES as u32,
            fold_token_byte as *mut c_void,
            (&raw mut ended).cast(),
            0,
        );
    }
    // SAFETY: a read of a local the callback wrote through its pointer.
    let ended = unsafe { core::ptr::read_volatile(&ended) } != 0;
    let longer = !ended && unsafe { (*buf)[MAX_TOKEN_BYTES] } != 0;
    unsafe { (*hasher).finish(truncated || longer) }
}

/// [`rtguard_token_byte`] of byte `index`, as `bpf_loop`'s callback: at the terminating
/// NUL, sets the flag at `ended` and stops the loop.
#[inline(never)]
extern "C" fn fold_token_byte(index: u64, ended: *mut c_void) -> i64 {
    let end = rtguard_token_byte(index as u32) == 0;
    if end {
        // SAFETY: `ended` is the caller's local, for the loop's length.
        unsafe { *ended.cast::<u32>() = 1 };
    }
    loop_stops(end)
}

/// Folds byte `i` of `ARG_BYTES` into `TOKEN_HASHER`. Returns 0 at the terminating NUL.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn rtguard_token_byte(i: u32) -> i32 {
    let (Some(hasher), Some(buf)) = (TOKEN_HASHER.get_ptr_mut(0), ARG_BYTES.get_ptr(0)) else {
        return 0;
    };
    let prefix_lens = COMMAND_CONFIG
        .get(0)
        .copied()
        .unwrap_or_default()
        .prefix_lens;
    let i = verifier_bound::<MAX_TOKEN_BYTES>(i as usize);
    let b = unsafe { (*buf)[i] };
    i32::from(unsafe { (*hasher).byte(i, b, &prefix_lens) })
}

// ---- capture ------------------------------------------------------------------------------

/// Reduces the current exec's argv into `CAPTURE_SCRATCH`. Returns the capture's stamp
/// (> 0), or 0 if there is no scratch.
///
/// - A task with no mm is the kernel itself starting a program (`kernel_execve`: a
///   usermode helper such as a `core_pattern` pipe or `modprobe`). There is no argv in
///   user memory; the line is empty and flagged `LINE_KERNEL_EXEC`.
/// - An exec entered by a syscall whose registers are not known here (a 32-bit or x32
///   caller) has an argv that cannot be read: the line is empty and flagged
///   `LINE_TRUNCATED`, which on a guarded binary counts as destructive.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn rtguard_exec_capture() -> i32 {
    let Some(off) = resolved_offsets() else {
        return 0;
    };
    let Some(cap) = CAPTURE_SCRATCH.get_ptr_mut(0) else {
        return 0;
    };
    let stamp = unsafe { stamp_take(&raw mut (*cap).stamp) };
    unsafe {
        (*cap).line.count = 0;
        (*cap).line.flags = 0;
        (*cap).line.filename_base = FNV_OFFSET;
        (*cap).line.exe_class = NO_CLASS;
        (*cap).line.trusted_classes = 0;
        (*cap).argv = 0;
    }
    if read_ptr(current_task(), off.task_mm).is_none() {
        unsafe { (*cap).line.flags = LINE_KERNEL_EXEC };
        return stamp as i32;
    }
    let Some(argv) = exec_syscall_argv(off) else {
        unsafe { (*cap).line.flags = LINE_TRUNCATED };
        return stamp as i32;
    };
    unsafe { (*cap).argv = argv };
    // One more round than there are slots: the last only looks for an argument past them.
    // `bpf_loop`, whose callback the verifier checks once, not once per argument.
    unsafe {
        bpf_loop(
            MAX_ARGV_TOKENS as u32 + 1,
            capture_arg as *mut c_void,
            core::ptr::null_mut(),
            0,
        );
    }
    stamp as i32
}

/// Argument `index` of the argv `rtguard_exec_capture` put in the capture, as
/// `bpf_loop`'s callback: stops the loop after the last.
#[inline(never)]
extern "C" fn capture_arg(index: u64, _ctx: *mut c_void) -> i64 {
    let Some(cap) = CAPTURE_SCRATCH.get_ptr(0) else {
        return 1;
    };
    // SAFETY: a per-CPU array's value, valid for the program's run.
    let argv = unsafe { (*cap).argv };
    loop_stops(rtguard_exec_arg(argv, index as u32) == 0)
}

/// How many times an exec is judged when another exec overwrites its per-CPU state
/// meanwhile, before the last judgement is kept (see `bprm_check_security`).
const JUDGE_ATTEMPTS: u32 = 4;

/// `rtguard_exec_decide`'s answer for a judgement that was overwritten.
const JUDGE_AGAIN: i32 = 1;

/// Reduces argv[i] into the capture scratch. Returns 1 if there may be more arguments, 0
/// at the end of argv, past the last slot (flagging the line truncated if there are more
/// arguments) or on a failed read.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn rtguard_exec_arg(argv: u64, i: u32) -> i32 {
    let Some(cap) = CAPTURE_SCRATCH.get_ptr_mut(0) else {
        return 0;
    };
    let Some(buf) = ARG_BYTES.get_ptr_mut(0) else {
        return 0;
    };
    let slot = (argv as *const u64).wrapping_add(i as usize);
    let ptr = match unsafe { bpf_probe_read_user(slot) } {
        Ok(0) => return 0,
        Ok(p) => p,
        Err(_) => {
            // argv itself unreadable (paged out): say so rather than read it as empty.
            unsafe { (*cap).line.flags |= LINE_TRUNCATED };
            return 0;
        }
    };
    let index = i as usize;
    if index >= MAX_ARGV_TOKENS {
        unsafe { (*cap).line.flags |= LINE_TRUNCATED };
        return 0;
    }
    let token = match unsafe { bpf_probe_read_user_str_bytes(ptr as *const u8, &mut *buf) } {
        Ok(_) => token_from_scratch(false),
        // An argument that can't be read can't be classified: a guarded binary is then
        // judged as with an over-long argv (see `Reason::ArgvOverflow`).
        Err(_) => {
            unsafe { (*cap).line.flags |= LINE_TRUNCATED };
            TokenHasher::START.finish(true)
        }
    };
    unsafe {
        (*cap).line.tokens[verifier_bound::<MAX_ARGV_TOKENS>(index)] = token;
        (*cap).line.count = i + 1;
    }
    1
}

// ---- decision at bprm_check_security -------------------------------------------------------

/// `security_bprm_check(struct linux_binprm *bprm)`: called once the executable is open
/// and before anything of the new program runs. For a `#!` script it runs again for the
/// interpreter; only the first call judges, so a command is judged once.
///
/// The judgement works in per-CPU maps, and a BPF LSM program runs with migration, not
/// preemption, disabled: on a preemptible kernel (Debian's 7.x runs `full (lazy)`) another
/// task can exec on this CPU while this one is preempted, and overwrite the capture and
/// the classifier's state. Each judgement stamps the capture (`rtguard_exec_judge`); one
/// whose stamp has changed by the time its answer is copied out (`rtguard_exec_decide`)
/// is done again. The two are called from here, not one from the other, to keep the
/// deepest call chain within the verifier's 512 bytes of stack.
#[lsm(hook = "bprm_check_security")]
pub fn bprm_check_security(ctx: LsmContext) -> i32 {
    after_previous(&ctx, 1, || {
        let bprm = arg_scalar(&ctx, 0) as u64;
        if rtguard_exec_first_pass(bprm) == 0 {
            return 0;
        }
        for attempt in 1..=JUDGE_ATTEMPTS {
            let stamp = rtguard_exec_judge(bprm);
            if stamp <= 0 {
                return 0;
            }
            // The last attempt's judgement is kept, overwritten or not.
            let expected = if attempt == JUDGE_ATTEMPTS { 0 } else { stamp };
            let verdict = rtguard_exec_decide(bprm, expected);
            if verdict != JUDGE_AGAIN {
                return restated(verdict);
            }
        }
        0
    })
}

/// Whether this `bprm_check_security` call is the exec's first (1) or one for an
/// interpreter (0).
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn rtguard_exec_first_pass(bprm: u64) -> i32 {
    resolved_offsets().map_or(0, |off| {
        i32::from(bprm_is_first_pass(off, bprm as KernelPtr))
    })
}

/// Captures the exec's argv, completes it with what the kernel knows now and classifies
/// it into `CLASSIFICATION`. Returns the capture's stamp, or 0 if it could not.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn rtguard_exec_judge(bprm: u64) -> i32 {
    let Some(off) = resolved_offsets() else {
        return 0;
    };
    let stamp = rtguard_exec_capture();
    let Some(cap) = CAPTURE_SCRATCH.get_ptr_mut(0) else {
        return 0;
    };
    if stamp <= 0 {
        return 0;
    }
    let bprm = bprm as KernelPtr;
    let exe = bprm_exe(off, bprm);
    let filename = bprm_filename(off, bprm).map_or(0, |p| p as u64);
    unsafe {
        (*cap).line.filename_base = rtguard_exec_filename_hash(filename);
        // A kernel-started program is known by the path the kernel was given, not by its
        // inode: `/sbin/poweroff` (orderly_poweroff's helper) is systemctl's inode, and
        // must keep working.
        (*cap).line.exe_class = if (*cap).line.flags & LINE_KERNEL_EXEC != 0 {
            NO_CLASS
        } else {
            exe.and_then(|k| EXE_CLASSES.get(k).copied())
                .unwrap_or(NO_CLASS)
        };
        // The caller is still the old image here: its exe is the program that called execve.
        (*cap).line.trusted_classes = task_exe(off, current_task())
            .and_then(|k| TRUSTED_CALLERS.get(k).copied())
            .unwrap_or(0);
    }
    let mut classified = rtguard_classify_start();
    if classified == 0 {
        for i in 0..MAX_ARGV_TOKENS as u32 {
            if rtguard_classify_step(i) == 0 {
                break;
            }
        }
        classified = rtguard_classify_finish();
    }
    if classified > 0 {
        stamp
    } else {
        0
    }
}

/// Acts on the judgement `rtguard_exec_judge` left in `CLASSIFICATION`: reports, and
/// returns `EPERM` or 0. Returns `JUDGE_AGAIN`, and does nothing, if `stamp` is not 0 and
/// another judgement has overwritten that one since.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn rtguard_exec_decide(bprm: u64, stamp: i32) -> i32 {
    let Some(off) = resolved_offsets() else {
        return 0;
    };
    let (Some(c), Some(cap)) = (CLASSIFICATION.get(0), CAPTURE_SCRATCH.get_ptr(0)) else {
        return 0;
    };
    let c = *c;
    if stamp != 0 && !unsafe { stamp_kept(&raw const (*cap).stamp, stamp as u32) } {
        return JUDGE_AGAIN;
    }
    // Audit mode as a whole reports what an enforcing rule would block.
    let enforce = unsafe { core::ptr::read_volatile(&GUARD_CONFIG.enforce) } != 0;
    let rule = if enforce {
        RULES.get(c.rule).copied()
    } else {
        None
    };
    let (decision, verdict) = match action(&c, rule) {
        Action::Allow => return 0,
        Action::Block => (Decision::Blocked, EPERM),
        Action::Report => (Decision::WouldBlock, 0),
        Action::AllowLogged => (Decision::AllowedUpgrade, 0),
    };
    // Only a reported exec needs its identity: most execs have left above.
    let task = current_task();
    let bprm = bprm as KernelPtr;
    let exe = bprm_exe(off, bprm);
    let filename = bprm_filename(off, bprm).map_or(0, |p| p as u64);
    report(
        &c,
        decision,
        exe.unwrap_or_default(),
        filename,
        unsafe { &*cap },
        task,
    );
    verdict
}

/// FNV-1a of the basename of the kernel string at `filename`: `ArgToken::base`, folded
/// with the same `basename_step`. Only that one hash is needed here (the full token
/// hasher, inlined into this function by the compiler, was too much for Linux 6.12's
/// verifier). The bytes are folded by `bpf_loop`, whose callback the verifier checks once,
/// not once per byte as it did a loop here: a sixth of the exec program's verification.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn rtguard_exec_filename_hash(filename: u64) -> u64 {
    let Some(buf) = ARG_BYTES.get_ptr_mut(0) else {
        return FNV_OFFSET;
    };
    if filename == 0
        || unsafe { bpf_probe_read_kernel_str_bytes(filename as *const u8, &mut *buf) }.is_err()
    {
        return FNV_OFFSET;
    }
    let mut hash = FNV_OFFSET;
    unsafe {
        bpf_loop(
            MAX_TOKEN_BYTES as u32,
            fold_filename_byte as *mut c_void,
            (&raw mut hash).cast(),
            0,
        );
    }
    // SAFETY: a read of a local the callback wrote through its pointer.
    unsafe { core::ptr::read_volatile(&hash) }
}

/// One byte of `rtguard_exec_filename_hash`'s string into the hash at `hash`:
/// `bpf_loop`'s callback. Returns 1 at the string's end.
#[inline(never)]
extern "C" fn fold_filename_byte(index: u64, hash: *mut c_void) -> i64 {
    let Some(buf) = ARG_BYTES.get_ptr(0) else {
        return 1;
    };
    // SAFETY: a per-CPU array's value, valid for the program's run; the index is masked
    // within it (MAX_TOKEN_BYTES is below its length).
    let b = unsafe { (*buf)[verifier_bound::<MAX_TOKEN_BYTES>(index as usize)] };
    if b == 0 {
        return 1;
    }
    let hash = hash.cast::<u64>();
    // SAFETY: `hash` is the caller's local, for the loop's length.
    unsafe { *hash = basename_step(*hash, b) };
    0
}

/// The exec's capture, and the classifier's per-CPU state and answer.
#[inline(always)]
fn classify_slots() -> Option<(*const ExecCapture, *mut Classifier, *mut Classification)> {
    Some((
        CAPTURE_SCRATCH.get_ptr(0)?,
        CLASSIFIER.get_ptr_mut(0)?,
        CLASSIFICATION.get_ptr_mut(0)?,
    ))
}

/// `Classifier::start`, `Classifier::loader_argument` per argument of a dynamic loader,
/// and `Classifier::select` on the current task's capture, each in its own function. Returns 0 if the arguments are to be scanned, 1 if the answer is
/// already in `CLASSIFICATION`, -1 on a missing map slot.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn rtguard_classify_start() -> i32 {
    let Some((cap, state, _)) = classify_slots() else {
        return -1;
    };
    if unsafe { (*state).start(&MapTables, &(*cap).line) } {
        for j in 1..=LOADER_ARGUMENTS as u32 {
            if rtguard_classify_loader_argument(j) == 0 {
                break;
            }
        }
    }
    // Where the program is named comes back through map memory: the verifier checks the
    // class choice once, not once per place a loader's options can end.
    rtguard_classify_select()
}

/// `Classifier::loader_argument` for argument `j` of a dynamic loader. Returns 1 while
/// the program is still to be found.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn rtguard_classify_loader_argument(j: u32) -> i32 {
    let (Some(cap), Some(state)) = (CAPTURE_SCRATCH.get_ptr(0), CLASSIFIER.get_ptr_mut(0)) else {
        return 0;
    };
    // Callers pass j up to LOADER_ARGUMENTS; the mask is what lets the verifier see it.
    let j = verifier_bound::<{ LOADER_ARGUMENTS.next_power_of_two() }>(j as usize);
    i32::from(unsafe { (*state).loader_argument(&MapTables, &(*cap).line, j) })
}

/// `Classifier::select`; returns as `rtguard_classify_start` does.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn rtguard_classify_select() -> i32 {
    let Some((cap, state, out)) = classify_slots() else {
        return -1;
    };
    match unsafe { (*state).select(&MapTables, &(*cap).line) } {
        Some(done) => {
            unsafe { *out = done };
            1
        }
        None => 0,
    }
}

/// `Classifier::step` for argument `i`, and the letters of a short-option cluster.
/// Returns 1 while there are more arguments.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn rtguard_classify_step(i: u32) -> i32 {
    let (Some(cap), Some(state)) = (CAPTURE_SCRATCH.get_ptr(0), CLASSIFIER.get_ptr_mut(0)) else {
        return 0;
    };
    // Callers pass i below MAX_ARGV_TOKENS; the mask is what lets the verifier see it.
    let index = verifier_bound::<MAX_ARGV_TOKENS>(i as usize);
    match unsafe { (*state).step(&MapTables, &(*cap).line, index) } {
        Step::End => 0,
        Step::Next => 1,
        Step::Letters => {
            if !read_cluster(|j| rtguard_classify_letter(i, j as u32) != 0) {
                rtguard_classify_cluster_unread(i);
            }
            1
        }
    }
}

/// `Classifier::letter`: letter `j` of the cluster that is argument `i`. Returns 1 while
/// the cluster goes on.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn rtguard_classify_letter(i: u32, j: u32) -> i32 {
    let (Some(cap), Some(state)) = (CAPTURE_SCRATCH.get_ptr(0), CLASSIFIER.get_ptr_mut(0)) else {
        return 0;
    };
    let i = verifier_bound::<MAX_ARGV_TOKENS>(i as usize);
    let j = verifier_bound::<TOKEN_HEAD_BYTES>(j as usize);
    i32::from(unsafe { (*state).letter(&MapTables, &(*cap).line, i, j) })
}

/// `Classifier::cluster_unread` for argument `i`.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn rtguard_classify_cluster_unread(i: u32) -> i32 {
    let (Some(cap), Some(state)) = (CAPTURE_SCRATCH.get_ptr(0), CLASSIFIER.get_ptr_mut(0)) else {
        return 0;
    };
    let i = verifier_bound::<MAX_ARGV_TOKENS>(i as usize);
    unsafe { (*state).cluster_unread(&(*cap).line, i) };
    0
}

/// `Classifier::finish` into `CLASSIFICATION`. Returns 1, or -1 on a missing map slot.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn rtguard_classify_finish() -> i32 {
    let Some((cap, state, out)) = classify_slots() else {
        return -1;
    };
    unsafe { *out = (*state).finish(&MapTables, &(*cap).line) };
    1
}

#[inline(always)]
fn report(
    c: &Classification,
    decision: Decision,
    exe: InodeKey,
    filename: u64,
    cap: &ExecCapture,
    task: KernelPtr,
) {
    let Some(off) = resolved_offsets() else {
        return;
    };
    let Some(ev) = EXEC_EVENT_SCRATCH.get_ptr_mut(0) else {
        count_dropped_event();
        return;
    };
    let count = cap.line.count;
    unsafe {
        (*ev).exe = exe;
        (*ev).classification = *c;
        (*ev).argc = count;
        (*ev).line_flags = cap.line.flags;
        let actor_exe = task_exe(off, task).unwrap_or_default();
        fill_header(
            &mut (*ev).header,
            EventKind::Exec,
            decision,
            off,
            task,
            actor_exe,
        );
        (*ev).filename[0] = 0;
        if filename != 0
            && bpf_probe_read_kernel_str_bytes(filename as *const u8, &mut (*ev).filename).is_err()
        {
            (*ev).filename[0] = 0;
        }
    }
    for slot in 0..EXEC_EVENT_ARGS as u32 {
        rtguard_exec_event_arg(cap.argv, slot, count);
    }
    if EVENTS.output::<ExecEvent>(unsafe { &*ev }, 0).is_err() {
        count_dropped_event();
    }
}

/// Copies argv[slot] into the event scratch (an empty string past `count` or on a failed
/// read), with the length the classifier saw.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn rtguard_exec_event_arg(argv: u64, slot: u32, count: u32) -> i32 {
    let Some(ev) = EXEC_EVENT_SCRATCH.get_ptr_mut(0) else {
        return 0;
    };
    let index = verifier_bound::<EXEC_EVENT_ARGS>(slot as usize);
    let arg = unsafe { &mut (*ev).args[index] };
    arg[0] = 0;
    unsafe { (*ev).arg_lens[index] = 0 };
    if slot >= count {
        return 0;
    }
    if let Some(cap) = CAPTURE_SCRATCH.get_ptr(0) {
        let token = unsafe { &(*cap).line.tokens[index] };
        let longer = if token.flags & TOKEN_TRUNCATED != 0 {
            EXEC_ARG_LONGER
        } else {
            0
        };
        unsafe { (*ev).arg_lens[index] = token.len | longer };
    }
    let ptr_slot = (argv as *const u64).wrapping_add(index);
    let Ok(ptr) = (unsafe { bpf_probe_read_user(ptr_slot) }) else {
        return 0;
    };
    if ptr == 0 || unsafe { bpf_probe_read_user_str_bytes(ptr as *const u8, arg) }.is_err() {
        arg[0] = 0;
        return 0;
    }
    1
}
