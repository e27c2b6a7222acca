//! Process layer: fatal signals to protected daemons.

use crate::InodeKey;

/// Capacity of the protected-process map (executables by identity).
pub const MAX_PROTECTED_PROCESSES: u32 = 256;

/// What the kernel knows about one protected executable: the rule and the signals it
/// refuses.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProcessProtection {
    /// Bit n set: signal n is refused.
    pub signals: u64,
    pub rule_id: u32,
    pub _pad: u32,
}

/// A process-layer decision, as written to the ring buffer.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct ProcessEvent {
    /// Kind [`EventKind::Process`](crate::event::EventKind::Process); the actor is the
    /// sender.
    pub header: crate::event::EventHeader,
    /// The signalled process's executable.
    pub target_exe: InodeKey,
    pub rule_id: u32,
    pub signal: u32,
    pub target_pid: u32,
    pub _pad: u32,
    pub target_comm: [u8; crate::COMM_LEN],
    /// The sender's command line.
    pub cmdline: crate::event::ActorCmdline,
}

#[cfg(test)]
mod tests {
    use super::*;

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
