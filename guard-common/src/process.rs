//! Process layer: signals that would end or stop a protected daemon, and the other ways to
//! end one.
//!
//! A signal is judged by its effect on the target, not by its name: what the target does
//! with it (its disposition, read from the kernel at `task_kill`) and what the signal's
//! default action is. [`ProcessProtection::refusal`] is that judgement; the kernel program
//! runs it, and the tests here pin it down.

use num_enum::TryFromPrimitive;
use strum::IntoStaticStr;

use crate::InodeKey;

/// Capacity of the protected-process map (executables by identity).
pub const MAX_PROTECTED_PROCESSES: u32 = 256;
/// Capacity of the map of cgroups that hold protected processes (each one's cgroup and
/// its ancestors), by the cgroup directory's identity → rule id.
pub const MAX_PROTECTED_CGROUPS: u32 = 1_024;

pub const SIGKILL: u32 = 9;
pub const SIGSTOP: u32 = 19;
/// The highest signal number (`_NSIG` on x86-64 and arm64; the real-time signals end there).
pub const MAX_SIGNAL: u32 = 64;

/// The process decision's operation for a ptrace attach, where a signal's number goes
/// otherwise (above every signal).
pub const OP_PTRACE_ATTACH: u32 = 0x100;
/// The process decision's operation for opening `/proc/PID/oom_score_adj` (or the older
/// `oom_adj`) for writing.
pub const OP_OOM_ADJUST: u32 = 0x101;
/// `PTRACE_MODE_ATTACH` in the mode `ptrace_access_check` is given (`PTRACE_MODE_READ` is
/// 1: reading `/proc/PID/environ`, `kcmp`, which change nothing).
pub const PTRACE_MODE_ATTACH: u32 = 0x02;

/// Signal `sig` as a bit of a mask (bit n is signal n). Signal 64 has no bit: the masks
/// are 64 bits wide and start at bit 1; it is a real-time signal, whose default is to
/// terminate, and no list names it.
pub const fn signal_bit(sig: u32) -> u64 {
    if sig < 64 {
        1 << sig
    } else {
        0
    }
}

const fn mask(signals: &[u32]) -> u64 {
    let mut m = 0;
    let mut i = 0;
    while i < signals.len() {
        m |= signal_bit(signals[i]);
        i += 1;
    }
    m
}

/// Signals whose default action does nothing: CHLD, CONT, URG, WINCH (the kernel's
/// `SIG_KERNEL_IGNORE_MASK`). Every other signal left at its default ends or stops the
/// process.
pub const DEFAULT_IGNORE: u64 = mask(&[17, 18, 23, 28]);
/// Default action stop: STOP, TSTP, TTIN, TTOU (`SIG_KERNEL_STOP_MASK`).
pub const DEFAULT_STOP: u64 = mask(&[19, 20, 21, 22]);
/// Default action terminate with a core dump: QUIT, ILL, TRAP, ABRT, BUS, FPE, SEGV, XCPU,
/// XFSZ, SYS (`SIG_KERNEL_COREDUMP_MASK`).
pub const DEFAULT_CORE: u64 = mask(&[3, 4, 5, 6, 7, 8, 11, 24, 25, 31]);

/// Signals the Go runtime ends a program on although it catches them. A Go program
/// installs one handler for nearly every signal, so the kernel sees them all caught; the
/// runtime then exits on HUP, INT and TERM, and crashes with a stack dump on QUIT, ILL,
/// TRAP, ABRT, STKFLT and SYS, and on BUS, FPE and SEGV sent by another process, unless
/// the program asked for the signal (`os/signal.Notify`), which only the program's memory
/// says. The rest it catches and drops (USR1, USR2, PIPE, ALRM, XCPU, …), and the stop
/// signals it leaves at their default (`sigtable` in the runtime's `sigtab_linux_*.go`).
pub const GO_RUNTIME_FATAL: u64 = mask(&[1, 2, 15, 3, 4, 5, 6, 16, 31, 7, 8, 11]);

/// What the target does with a signal: `sighand->action[sig - 1].sa.sa_handler`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Disposition {
    /// `SIG_DFL`: the signal's default action.
    Default,
    /// `SIG_IGN`: discarded on arrival.
    Ignore,
    /// A handler of the process's own.
    Handler,
}

impl Disposition {
    /// From `sa_handler` as the kernel keeps it: `SIG_DFL` is 0, `SIG_IGN` is 1, anything
    /// else is the address of a handler.
    pub const fn from_handler(handler: u64) -> Self {
        match handler {
            0 => Disposition::Default,
            1 => Disposition::Ignore,
            _ => Disposition::Handler,
        }
    }
}

/// Why the process layer refuses an operation on a protected process. The strings are the
/// audit log's (`signal.reason`).
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, TryFromPrimitive, IntoStaticStr)]
#[cfg_attr(test, derive(strum::EnumCount))]
#[strum(serialize_all = "kebab-case")]
pub enum ProcessReason {
    /// SIGKILL or SIGSTOP: no process can catch, block or ignore them.
    Uncatchable = 1,
    /// Named in the rule's `signals` list: refused whatever the process does with it (a
    /// daemon that handles TERM shuts down on it all the same).
    Listed = 2,
    /// Left at its default action, which terminates the process.
    DefaultTerminate = 3,
    /// Left at its default action, which terminates the process with a core dump.
    DefaultCore = 4,
    /// Left at its default action, which stops the process.
    DefaultStop = 5,
    /// Caught by a runtime that ends the program on it ([`GO_RUNTIME_FATAL`]).
    RuntimeExits = 6,
    /// Not a signal: a ptrace attach (`PTRACE_ATTACH`, `PTRACE_SEIZE`, and what needs the
    /// same access: writing `/proc/PID/mem`, `process_vm_writev`, `pidfd_getfd`). A
    /// tracer may kill, stop or rewrite the process at will (`PTRACE_KILL`, `PTRACE_POKE*`).
    PtraceAttach = 7,
    /// Not a signal: opening its `/proc/PID/oom_score_adj` (or `oom_adj`) for writing, by
    /// a process that is not itself protected (the runtime sets its own daemons' scores).
    /// The value is written later and no hook sees it, so lowering is refused as raising
    /// is: at 1000 the OOM killer takes the runtime first.
    OomAdjust = 8,
}

impl ProcessReason {
    pub fn from_u32(raw: u32) -> Option<Self> {
        Self::try_from(raw).ok()
    }

    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

/// What the kernel knows about one protected executable: the rule and the signals it
/// refuses.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProcessProtection {
    /// Bit n set: signal n is refused whatever the process does with it (the rule's
    /// `signals` list).
    pub signals: u64,
    /// Bit n set: signal n ends the process although it has a handler for it. For a Go
    /// program, [`GO_RUNTIME_FATAL`] less the rule's `handles`; 0 for a program whose
    /// handlers are its own.
    pub runtime_fatal: u64,
    pub rule_id: u32,
    pub _pad: u32,
}

impl ProcessProtection {
    /// Why signal `sig` (1 to [`MAX_SIGNAL`]) would end or stop a process of this
    /// executable whose disposition for it is `disposition`, or `None` when it passes: a
    /// signal the process handles or ignores, or whose default is to do nothing.
    #[inline(always)]
    pub fn refusal(&self, sig: u32, disposition: Disposition) -> Option<ProcessReason> {
        if sig == SIGKILL || sig == SIGSTOP {
            return Some(ProcessReason::Uncatchable);
        }
        let bit = signal_bit(sig);
        if self.signals & bit != 0 {
            return Some(ProcessReason::Listed);
        }
        match disposition {
            Disposition::Ignore => None,
            Disposition::Handler if self.runtime_fatal & bit != 0 => {
                Some(ProcessReason::RuntimeExits)
            }
            Disposition::Handler => None,
            Disposition::Default => default_action(sig),
        }
    }
}

/// What signal `sig`'s default action does to a process, as a refusal; `None` for the
/// signals whose default is to do nothing.
#[inline(always)]
pub fn default_action(sig: u32) -> Option<ProcessReason> {
    let bit = signal_bit(sig);
    if DEFAULT_IGNORE & bit != 0 {
        None
    } else if DEFAULT_STOP & bit != 0 {
        Some(ProcessReason::DefaultStop)
    } else if DEFAULT_CORE & bit != 0 {
        Some(ProcessReason::DefaultCore)
    } else {
        Some(ProcessReason::DefaultTerminate)
    }
}

/// A process-layer decision, as written to the ring buffer.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct ProcessEvent {
    /// Kind [`EventKind::Process`](crate::event::EventKind::Process); the actor is the
    /// sender (or the tracer).
    pub header: crate::event::EventHeader,
    /// The signalled (or traced) process's executable.
    pub target_exe: InodeKey,
    pub rule_id: u32,
    /// The signal; 0 for a ptrace attach.
    pub signal: u32,
    pub target_pid: u32,
    /// Why it counts as ending the process: a [`ProcessReason`].
    pub reason: u32,
    pub target_comm: [u8; crate::COMM_LEN],
    /// The sender's command line.
    pub cmdline: crate::event::ActorCmdline,
}

#[cfg(test)]
mod tests {
    use super::*;

    const SIGHUP: u32 = 1;
    const SIGINT: u32 = 2;
    const SIGUSR1: u32 = 10;
    const SIGSEGV: u32 = 11;
    const SIGTERM: u32 = 15;
    const SIGCHLD: u32 = 17;
    const SIGCONT: u32 = 18;
    const SIGTSTP: u32 = 20;
    const SIGXCPU: u32 = 24;
    const SIGWINCH: u32 = 28;
    const SIGSYS: u32 = 31;

    fn listing(signals: &[u32]) -> ProcessProtection {
        ProcessProtection {
            signals: mask(signals),
            ..Default::default()
        }
    }

    #[test]
    fn a_signal_left_at_its_default_is_refused_when_the_default_ends_or_stops() {
        let p = ProcessProtection::default();
        use Disposition::Default as D;
        assert_eq!(p.refusal(SIGHUP, D), Some(ProcessReason::DefaultTerminate));
        assert_eq!(p.refusal(SIGUSR1, D), Some(ProcessReason::DefaultTerminate));
        assert_eq!(p.refusal(SIGSEGV, D), Some(ProcessReason::DefaultCore));
        assert_eq!(p.refusal(SIGSYS, D), Some(ProcessReason::DefaultCore));
        assert_eq!(p.refusal(SIGXCPU, D), Some(ProcessReason::DefaultCore));
        assert_eq!(p.refusal(SIGTSTP, D), Some(ProcessReason::DefaultStop));
        // Real-time signals terminate by default, the last one included.
        assert_eq!(p.refusal(34, D), Some(ProcessReason::DefaultTerminate));
        assert_eq!(
            p.refusal(MAX_SIGNAL, D),
            Some(ProcessReason::DefaultTerminate)
        );
        for harmless in [SIGCHLD, SIGCONT, 23, SIGWINCH] {
            assert_eq!(p.refusal(harmless, D), None, "signal {harmless}");
        }
    }

    #[test]
    fn a_handled_or_ignored_signal_passes_unless_listed() {
        let p = listing(&[SIGINT, SIGTERM]);
        for d in [Disposition::Handler, Disposition::Ignore] {
            assert_eq!(p.refusal(SIGHUP, d), None);
            assert_eq!(p.refusal(SIGUSR1, d), None);
            assert_eq!(p.refusal(SIGSEGV, d), None);
            // A daemon that handles TERM shuts down on it: the list is the override.
            assert_eq!(p.refusal(SIGTERM, d), Some(ProcessReason::Listed));
        }
    }

    #[test]
    fn kill_and_stop_are_refused_whatever_the_list_says() {
        let p = ProcessProtection::default();
        for d in [
            Disposition::Default,
            Disposition::Ignore,
            Disposition::Handler,
        ] {
            assert_eq!(p.refusal(SIGKILL, d), Some(ProcessReason::Uncatchable));
            assert_eq!(p.refusal(SIGSTOP, d), Some(ProcessReason::Uncatchable));
        }
    }

    #[test]
    fn a_go_programs_handler_does_not_save_it_from_the_signals_its_runtime_exits_on() {
        let p = ProcessProtection {
            runtime_fatal: GO_RUNTIME_FATAL,
            ..Default::default()
        };
        let h = Disposition::Handler;
        assert_eq!(p.refusal(SIGHUP, h), Some(ProcessReason::RuntimeExits));
        assert_eq!(p.refusal(SIGSEGV, h), Some(ProcessReason::RuntimeExits));
        assert_eq!(p.refusal(SIGSYS, h), Some(ProcessReason::RuntimeExits));
        // Go catches and drops these when the program did not ask for them.
        assert_eq!(p.refusal(SIGUSR1, h), None);
        assert_eq!(p.refusal(SIGXCPU, h), None);
        assert_eq!(p.refusal(SIGWINCH, h), None);
        // The stop signals it leaves at their default.
        assert_eq!(
            p.refusal(SIGTSTP, Disposition::Default),
            Some(ProcessReason::DefaultStop)
        );
    }

    #[test]
    fn dispositions_are_read_from_sa_handler() {
        assert_eq!(Disposition::from_handler(0), Disposition::Default);
        assert_eq!(Disposition::from_handler(1), Disposition::Ignore);
        assert_eq!(Disposition::from_handler(0x4a_1f20), Disposition::Handler);
    }

    #[test]
    fn reasons_have_the_audit_logs_words() {
        use strum::EnumCount as _;
        let words = [
            (1, "uncatchable"),
            (2, "listed"),
            (3, "default-terminate"),
            (4, "default-core"),
            (5, "default-stop"),
            (6, "runtime-exits"),
            (7, "ptrace-attach"),
            (8, "oom-adjust"),
        ];
        assert_eq!(words.len(), ProcessReason::COUNT);
        for (raw, word) in words {
            assert_eq!(ProcessReason::from_u32(raw).unwrap().as_str(), word);
        }
        assert_eq!(ProcessReason::from_u32(0), None);
    }

    #[test]
    fn process_event_has_no_implicit_padding_and_a_size_of_its_own() {
        let fields = core::mem::size_of::<crate::event::EventHeader>()
            + 16
            + 4 * 4
            + crate::COMM_LEN
            + 8
            + crate::event::ACTOR_CMDLINE_LEN;
        assert_eq!(core::mem::size_of::<ProcessEvent>(), fields);
        assert_eq!(core::mem::size_of::<ProcessEvent>() % 8, 0);
        // Records are told apart by their header's kind; the sizes differ all the same.
        for other in [
            core::mem::size_of::<crate::FileEvent>(),
            core::mem::size_of::<crate::ExecEvent>(),
        ] {
            assert_ne!(core::mem::size_of::<ProcessEvent>(), other);
        }
    }
}
