//! Records the programs send to userspace over the event ring buffer.
//!
//! Every record starts with an [`EventHeader`]: its [`EventKind`], which says what follows,
//! the [`Decision`], and the acting task ([`EventActor`]). Userspace reads the header first
//! and decodes the rest by its kind.

use num_enum::TryFromPrimitive;
use strum::IntoStaticStr;

use crate::InodeKey;

pub const COMM_LEN: usize = 16;
/// Path components the kernel reports between a tree root and the target.
pub const EVENT_PATH_COMPONENTS: usize = 8;
/// Bytes kept of each component (NUL-terminated; longer names are cut).
pub const EVENT_NAME_LEN: usize = 48;

/// What the kernel did about a matching operation. The strings are the audit log's.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, TryFromPrimitive, IntoStaticStr)]
#[cfg_attr(test, derive(strum::EnumCount))]
#[strum(serialize_all = "kebab-case")]
pub enum Decision {
    /// Denied with -EPERM.
    Blocked = 1,
    /// Audit mode: allowed, but it would have been denied.
    WouldBlock = 2,
    /// Allowed because the package manager replaced a file it may upgrade.
    AllowedUpgrade = 3,
    /// Allowed: a configuration file was opened for writing, truncated or replaced.
    AllowedEdit = 4,
}

impl Decision {
    pub fn from_u32(raw: u32) -> Option<Self> {
        Self::try_from(raw).ok()
    }

    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

/// What a ring-buffer record is: the first field of its [`EventHeader`].
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, TryFromPrimitive)]
pub enum EventKind {
    /// A [`FileEvent`].
    File = 1,
    /// An [`ExecEvent`].
    Exec = 2,
    /// A [`ProcessEvent`](crate::ProcessEvent).
    Process = 3,
    /// A [`SysctlEvent`](crate::sysctl::SysctlEvent).
    Sysctl = 4,
    /// A [`NetfilterEvent`](crate::netfilter::NetfilterEvent).
    Netfilter = 5,
}

/// The task that acted, as the kernel read it in that task's own context.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EventActor {
    /// The task's executable; for an exec, the caller's (before the exec replaces it).
    pub exe: InodeKey,
    pub cgroup_id: u64,
    pub pid: u32,
    pub tgid: u32,
    pub ppid: u32,
    pub uid: u32,
    pub comm: [u8; COMM_LEN],
    /// The task's controlling terminal (the kernel's `dev_t` encoding), 0 if none.
    pub tty: u32,
    /// The task's mount namespace (its inode number): a terminal's device number names a
    /// node only in the namespace whose /dev/pts holds it.
    pub mnt_ns: u32,
}

/// The first field of every record on the event ring buffer.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EventHeader {
    /// [`EventKind`] as u32: which record follows.
    pub kind: u32,
    /// [`Decision`] as u32.
    pub decision: u32,
    pub actor: EventActor,
}

impl EventHeader {
    pub fn kind(&self) -> Option<EventKind> {
        EventKind::try_from(self.kind).ok()
    }
}

/// Bytes of the acting process's command line a file or process event carries.
pub const ACTOR_CMDLINE_LEN: usize = 256;
/// Set in [`ActorCmdline::flags`] when the command line was longer than that.
pub const CMDLINE_TRUNCATED: u32 = 1 << 0;

/// The acting process's argv as the kernel keeps it (NUL-separated, what
/// /proc/PID/cmdline shows), read in the process's own context: the audit trail can name
/// an actor that exits before userspace reads /proc (`rm` is gone in microseconds).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct ActorCmdline {
    /// Valid bytes in `bytes`; 0 when it could not be read.
    pub len: u32,
    /// `CMDLINE_*` bits.
    pub flags: u32,
    pub bytes: [u8; ACTOR_CMDLINE_LEN],
}

impl ActorCmdline {
    /// The arguments, lossily decoded, and whether the kernel had more than it copied.
    pub fn args(&self) -> (impl Iterator<Item = &[u8]>, bool) {
        let len = (self.len as usize).min(ACTOR_CMDLINE_LEN);
        let bytes = &self.bytes[..len];
        // A trailing NUL ends the last argument; it does not start an empty one.
        let bytes = bytes.strip_suffix(&[0]).unwrap_or(bytes);
        let args = bytes.split(|&b| b == 0).filter(move |_| len > 0);
        (args, self.flags & CMDLINE_TRUNCATED != 0)
    }
}

/// Set in [`FileEvent::flags`] when the tree root was more than
/// [`EVENT_PATH_COMPONENTS`] levels above the target, so the path misses components.
pub const EVENT_PATH_TRUNCATED: u32 = 1 << 0;

/// A file-layer decision, as written to the ring buffer.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct FileEvent {
    /// Kind [`EventKind::File`].
    pub header: EventHeader,
    /// The object acted on.
    pub target: InodeKey,
    /// The protected object or tree root that matched; equals `target` for objects.
    pub anchor: InodeKey,
    /// `FileOp` bit.
    pub op: u32,
    pub rule_id: u32,
    /// `EVENT_*` bits.
    pub flags: u32,
    /// Number of valid entries in `names`.
    pub name_count: u32,
    /// Path components from the target (index 0) up towards the anchor, each
    /// NUL-terminated. Empty for objects matched directly.
    pub names: [[u8; EVENT_NAME_LEN]; EVENT_PATH_COMPONENTS],
    pub cmdline: ActorCmdline,
}

/// Arguments an exec event carries verbatim (the classifier saw up to
/// `exec::MAX_ARGV_TOKENS`).
pub const EXEC_EVENT_ARGS: usize = 16;
/// Bytes kept of each of them, NUL included.
pub const EXEC_EVENT_ARG_LEN: usize = 64;
/// Bytes kept of the executed path (`bprm->filename`), NUL included.
pub const EXEC_EVENT_FILENAME_LEN: usize = 128;

/// An exec-layer decision, as written to the ring buffer.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct ExecEvent {
    /// Kind [`EventKind::Exec`]; the actor is the task calling execve.
    pub header: EventHeader,
    /// The executed file.
    pub exe: InodeKey,
    /// What the classifier said.
    pub classification: crate::exec::Classification,
    /// Arguments the kernel counted (at most `MAX_ARGV_TOKENS`).
    pub argc: u32,
    /// `exec::LINE_*` bits: `LINE_TRUNCATED` when argv had more arguments than that.
    pub line_flags: u32,
    /// Length of each reported argument as the classifier hashed it, with
    /// `exec::TOKEN_TRUNCATED` in bit 31 when it was longer still. A length of
    /// [`EXEC_EVENT_ARG_LEN`] or more means `args[i]` holds only its start.
    pub arg_lens: [u32; EXEC_EVENT_ARGS],
    pub filename: [u8; EXEC_EVENT_FILENAME_LEN],
    /// argv[0..EXEC_EVENT_ARGS], each NUL-terminated and cut to fit.
    pub args: [[u8; EXEC_EVENT_ARG_LEN]; EXEC_EVENT_ARGS],
}

/// Set in [`ExecEvent::arg_lens`] when the argument was longer than the classifier hashes.
pub const EXEC_ARG_LONGER: u32 = 1 << 31;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_has_no_implicit_padding() {
        assert_eq!(
            core::mem::size_of::<EventActor>(),
            16 + 8 + 4 * 4 + COMM_LEN + 2 * 4
        );
        assert_eq!(
            core::mem::size_of::<EventHeader>(),
            2 * 4 + core::mem::size_of::<EventActor>()
        );
        assert_eq!(core::mem::size_of::<EventHeader>() % 8, 0);
    }

    #[test]
    fn exec_event_has_no_implicit_padding_and_differs_from_file_events() {
        let fields = core::mem::size_of::<EventHeader>()
            + 16
            + core::mem::size_of::<crate::exec::Classification>()
            + 2 * 4
            + 4 * EXEC_EVENT_ARGS
            + EXEC_EVENT_FILENAME_LEN
            + EXEC_EVENT_ARG_LEN * EXEC_EVENT_ARGS;
        assert_eq!(core::mem::size_of::<ExecEvent>(), fields);
        assert_eq!(core::mem::size_of::<ExecEvent>() % 8, 0);
        // Records are told apart by their header's kind; the sizes differ all the same.
        assert_ne!(
            core::mem::size_of::<ExecEvent>(),
            core::mem::size_of::<FileEvent>()
        );
    }

    #[test]
    fn event_has_no_implicit_padding() {
        let fields = core::mem::size_of::<EventHeader>()
            + 2 * 16
            + 4 * 4
            + EVENT_NAME_LEN * EVENT_PATH_COMPONENTS
            + 8
            + ACTOR_CMDLINE_LEN;
        assert_eq!(core::mem::size_of::<FileEvent>(), fields);
        assert_eq!(core::mem::size_of::<FileEvent>() % 8, 0);
    }

    #[test]
    fn command_lines_split_into_arguments() {
        let mut c = ActorCmdline {
            len: 0,
            flags: 0,
            bytes: [0; ACTOR_CMDLINE_LEN],
        };
        assert_eq!(c.args().0.count(), 0);
        let raw = b"rm\0-rf\0/usr/bin/containerd\0";
        c.bytes[..raw.len()].copy_from_slice(raw);
        c.len = raw.len() as u32;
        let (args, truncated) = c.args();
        assert!(args.eq([&b"rm"[..], b"-rf", b"/usr/bin/containerd"]));
        assert!(!truncated);
        c.flags = CMDLINE_TRUNCATED;
        c.len = 5;
        let (args, truncated) = c.args();
        assert!(args.eq([&b"rm"[..], b"-r"]));
        assert!(truncated);
    }

    #[test]
    fn decisions_round_trip() {
        for d in [
            Decision::Blocked,
            Decision::WouldBlock,
            Decision::AllowedUpgrade,
            Decision::AllowedEdit,
        ] {
            assert_eq!(Decision::from_u32(d as u32), Some(d));
        }
        assert_eq!(Decision::from_u32(0), None);
    }

    #[test]
    fn decisions_keep_their_audit_log_words() {
        let words = [
            (Decision::Blocked, "blocked"),
            (Decision::WouldBlock, "would-block"),
            (Decision::AllowedUpgrade, "allowed-upgrade"),
            (Decision::AllowedEdit, "allowed-edit"),
        ];
        assert_eq!(words.len(), <Decision as strum::EnumCount>::COUNT);
        for (d, word) in words {
            assert_eq!(d.as_str(), word);
        }
    }
}
