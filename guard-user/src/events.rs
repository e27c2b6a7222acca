//! Event pipeline: decodes the records the kernel programs put on the ring buffer.

use guard_common::{Decision, FileEvent, FileOp, InodeKey};

/// A decoded file-layer decision.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileDecision {
    pub op: FileOp,
    pub decision: Decision,
    pub target: InodeKey,
    pub pid: u32,
    pub tgid: u32,
    pub uid: u32,
    pub comm: String,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    #[error("event record of {0} bytes, expected {1}")]
    Size(usize, usize),
    #[error("unknown {field} {value} in event record")]
    Unknown { field: &'static str, value: u32 },
}

/// Decodes one ring buffer record.
pub fn decode(bytes: &[u8]) -> Result<FileDecision, DecodeError> {
    let expected = std::mem::size_of::<FileEvent>();
    if bytes.len() != expected {
        return Err(DecodeError::Size(bytes.len(), expected));
    }
    // SAFETY: FileEvent is plain old data of exactly this size; read_unaligned copes with
    // the ring buffer's 8-byte alignment.
    let raw: FileEvent = unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast()) };
    let op = FileOp::from_u32(raw.op).ok_or(DecodeError::Unknown {
        field: "op",
        value: raw.op,
    })?;
    let decision = Decision::from_u32(raw.decision).ok_or(DecodeError::Unknown {
        field: "decision",
        value: raw.decision,
    })?;
    let comm_len = raw
        .comm
        .iter()
        .position(|&b| b == 0)
        .unwrap_or(raw.comm.len());
    Ok(FileDecision {
        op,
        decision,
        target: raw.target,
        pid: raw.pid,
        tgid: raw.tgid,
        uid: raw.uid,
        comm: String::from_utf8_lossy(&raw.comm[..comm_len]).into_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(op: u32, decision: u32) -> Vec<u8> {
        let mut comm = [0u8; guard_common::COMM_LEN];
        comm[..2].copy_from_slice(b"rm");
        let ev = FileEvent {
            target: InodeKey::new(0x0fe0_0001, 77),
            op,
            decision,
            pid: 10,
            tgid: 11,
            uid: 0,
            _pad: 0,
            comm,
        };
        // SAFETY: FileEvent is repr(C) without padding.
        unsafe {
            std::slice::from_raw_parts(
                (&ev as *const FileEvent).cast::<u8>(),
                std::mem::size_of::<FileEvent>(),
            )
        }
        .to_vec()
    }

    #[test]
    fn decodes_a_blocked_unlink() {
        let got = decode(&record(1, 1)).unwrap();
        assert_eq!(got.op, FileOp::Unlink);
        assert_eq!(got.decision, Decision::Blocked);
        assert_eq!(
            (got.target.major(), got.target.minor(), got.target.ino),
            (254, 1, 77)
        );
        assert_eq!((got.pid, got.tgid, got.comm.as_str()), (10, 11, "rm"));
    }

    #[test]
    fn rejects_short_and_unknown_records() {
        assert_eq!(decode(&[0u8; 3]), Err(DecodeError::Size(3, 56)));
        assert_eq!(
            decode(&record(99, 1)),
            Err(DecodeError::Unknown {
                field: "op",
                value: 99
            })
        );
        assert_eq!(
            decode(&record(1, 0)),
            Err(DecodeError::Unknown {
                field: "decision",
                value: 0
            })
        );
    }
}
