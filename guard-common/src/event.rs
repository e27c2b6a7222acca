//! Records the programs send to userspace over the event ring buffer.

pub const COMM_LEN: usize = 16;

/// A file operation the file layer decides on.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileOp {
    Unlink = 1,
}

impl FileOp {
    pub const fn from_u32(raw: u32) -> Option<Self> {
        match raw {
            1 => Some(Self::Unlink),
            _ => None,
        }
    }

    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Unlink => "unlink",
        }
    }
}

/// What the kernel did about a matching operation.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Denied with -EPERM.
    Blocked = 1,
    /// Audit mode: allowed, but it would have been denied.
    WouldBlock = 2,
}

impl Decision {
    pub const fn from_u32(raw: u32) -> Option<Self> {
        match raw {
            1 => Some(Self::Blocked),
            2 => Some(Self::WouldBlock),
            _ => None,
        }
    }

    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Blocked => "blocked",
            Self::WouldBlock => "would-block",
        }
    }
}

/// A file-layer decision, as written to the ring buffer.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct FileEvent {
    pub target: crate::InodeKey,
    /// [`FileOp`] as u32.
    pub op: u32,
    /// [`Decision`] as u32.
    pub decision: u32,
    pub pid: u32,
    pub tgid: u32,
    pub uid: u32,
    pub _pad: u32,
    pub comm: [u8; COMM_LEN],
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_has_no_implicit_padding() {
        // 16 (key) + 6 * 4 + 16 (comm)
        assert_eq!(core::mem::size_of::<FileEvent>(), 56);
    }

    #[test]
    fn enums_round_trip() {
        assert_eq!(
            FileOp::from_u32(FileOp::Unlink as u32),
            Some(FileOp::Unlink)
        );
        assert_eq!(Decision::from_u32(2), Some(Decision::WouldBlock));
        assert_eq!(Decision::from_u32(0), None);
    }
}
