//! Reading the kernel's records: the header first, then the record its kind names. Every
//! decoder checks the size and the kind, so a record is never read as another.

use guard_common::{
    event::{
        ActorCmdline, EventActor, EventHeader, EventKind, EVENT_PATH_COMPONENTS,
        EVENT_PATH_TRUNCATED, EXEC_ARG_LONGER, EXEC_EVENT_ARGS, EXEC_EVENT_ARG_LEN,
    },
    exec::LINE_TRUNCATED,
    netfilter::{self, NetfilterEvent, NetfilterOp},
    process::ProcessReason,
    sysctl::SysctlEvent,
    Decision, ExecEvent, FileEvent, FileOp, ProcessEvent,
};

use super::{
    Event, ExecDecision, FileDecision, KernelActor, KernelCmdline, NetfilterDecision,
    ProcessDecision, SysctlDecision,
};

impl KernelActor {
    /// The actor of a file or process record: its header's actor and its command line.
    fn from_raw(actor: &EventActor, cmdline: &ActorCmdline) -> Self {
        Self {
            cmdline: KernelCmdline::from_raw(cmdline),
            ..Self::without_cmdline(actor)
        }
    }

    /// An actor whose command line the record does not carry (an exec's caller).
    fn without_cmdline(actor: &EventActor) -> Self {
        Self {
            exe: actor.exe,
            cgroup_id: actor.cgroup_id,
            pid: actor.pid,
            tgid: actor.tgid,
            ppid: actor.ppid,
            uid: actor.uid,
            comm: c_string(&actor.comm),
            cmdline: KernelCmdline::default(),
            tty: actor.tty,
            mnt_ns: actor.mnt_ns,
        }
    }
}

impl KernelCmdline {
    fn from_raw(raw: &ActorCmdline) -> Self {
        let (args, truncated) = raw.args();
        Self {
            args: args
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect(),
            truncated,
        }
    }
}

/// Decodes a process-layer record.
pub fn decode_process(bytes: &[u8]) -> Result<ProcessDecision, DecodeError> {
    let raw: ProcessEvent = read_record(bytes, EventKind::Process)?;
    let decision = decision(raw.header.decision)?;
    let reason = ProcessReason::from_u32(raw.reason).ok_or(DecodeError::Unknown {
        field: "reason",
        value: raw.reason,
    })?;
    Ok(ProcessDecision {
        decision,
        rule_id: raw.rule_id,
        signal: raw.signal as i32,
        reason,
        target_pid: raw.target_pid,
        target_comm: c_string(&raw.target_comm),
        target_exe: raw.target_exe,
        actor: KernelActor::from_raw(&raw.header.actor, &raw.cmdline),
    })
}

/// Decodes a write to a protected sysctl.
pub fn decode_sysctl(bytes: &[u8]) -> Result<SysctlDecision, DecodeError> {
    let raw: SysctlEvent = read_record(bytes, EventKind::Sysctl)?;
    Ok(SysctlDecision {
        decision: decision(raw.header.decision)?,
        rule_id: raw.rule_id,
        name: c_string(&raw.key.name),
        value: c_string(&raw.value).trim_end().to_owned(),
        actor: KernelActor::without_cmdline(&raw.header.actor),
    })
}

/// Decodes a refused (or reported) netfilter batch.
pub fn decode_netfilter(bytes: &[u8]) -> Result<NetfilterDecision, DecodeError> {
    let raw: NetfilterEvent = read_record(bytes, EventKind::Netfilter)?;
    let op = NetfilterOp::try_from(raw.op).map_err(|_| DecodeError::Unknown {
        field: "op",
        value: raw.op,
    })?;
    let name = |words: &netfilter::NameWords| {
        let (bytes, len) = netfilter::name_bytes(words);
        String::from_utf8_lossy(&bytes[..len]).into_owned()
    };
    Ok(NetfilterDecision {
        decision: decision(raw.header.decision)?,
        rule_id: raw.rule_id,
        op,
        family: netfilter::family::name(raw.family as u8),
        object_kind: match raw.object_kind {
            netfilter::PATTERN_CHAIN => Some("chain"),
            netfilter::PATTERN_SET => Some("set"),
            _ => None,
        },
        table: name(&raw.table),
        object: name(&raw.object),
        messages: raw.messages,
        actor: KernelActor::from_raw(&raw.header.actor, &raw.cmdline),
    })
}

/// Decodes one ring buffer record of any layer, by the kind its header names.
pub fn decode_record(bytes: &[u8]) -> Result<Event, DecodeError> {
    let header: EventHeader = read_prefix(bytes)?;
    match header.kind() {
        Some(EventKind::File) => decode_file(bytes).map(Event::File),
        Some(EventKind::Exec) => decode_exec(bytes).map(Event::Exec),
        Some(EventKind::Process) => decode_process(bytes).map(Event::Process),
        Some(EventKind::Sysctl) => decode_sysctl(bytes).map(Event::Sysctl),
        Some(EventKind::Netfilter) => decode_netfilter(bytes).map(Event::Netfilter),
        None => Err(DecodeError::Unknown {
            field: "kind",
            value: header.kind,
        }),
    }
}

/// Decodes an exec-layer record.
pub fn decode_exec(bytes: &[u8]) -> Result<ExecDecision, DecodeError> {
    let raw: ExecEvent = read_record(bytes, EventKind::Exec)?;
    let decision = decision(raw.header.decision)?;
    let c = raw.classification;
    if c.verdict().is_none() {
        return Err(DecodeError::Unknown {
            field: "verdict",
            value: c.verdict,
        });
    }
    let shown = (raw.argc as usize).min(EXEC_EVENT_ARGS);
    let mut truncated = raw.argc as usize > EXEC_EVENT_ARGS || raw.line_flags & LINE_TRUNCATED != 0;
    let mut argv = Vec::with_capacity(shown);
    for (bytes, &len) in raw.args[..shown].iter().zip(&raw.arg_lens) {
        let mut arg = c_string(bytes);
        let cut = len & EXEC_ARG_LONGER != 0 || (len as usize) >= EXEC_EVENT_ARG_LEN;
        if cut {
            arg.push('…');
            truncated = true;
        }
        argv.push(arg);
    }
    Ok(ExecDecision {
        decision,
        classification: c,
        exe: raw.exe,
        filename: c_string(&raw.filename),
        argv,
        argv_truncated: truncated,
        actor: KernelActor::without_cmdline(&raw.header.actor),
    })
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    #[error("event record of {0} bytes, expected {1}")]
    Size(usize, usize),
    #[error("unknown {field} {value} in event record")]
    Unknown { field: &'static str, value: u32 },
    #[error("event record of kind {found}, expected {expected:?}")]
    Kind { found: u32, expected: EventKind },
}

/// Decodes a file-layer record.
pub fn decode_file(bytes: &[u8]) -> Result<FileDecision, DecodeError> {
    let raw: FileEvent = read_record(bytes, EventKind::File)?;
    let op = FileOp::from_u32(raw.op).ok_or(DecodeError::Unknown {
        field: "op",
        value: raw.op,
    })?;
    let decision = decision(raw.header.decision)?;
    let count = (raw.name_count as usize).min(EVENT_PATH_COMPONENTS);
    // The kernel lists names from the target upwards; paths read downwards.
    let components = raw.names[..count]
        .iter()
        .rev()
        .map(|name| c_string(name))
        .collect();
    Ok(FileDecision {
        op,
        decision,
        rule_id: raw.rule_id,
        target: raw.target,
        anchor: raw.anchor,
        components,
        path_truncated: raw.flags & EVENT_PATH_TRUNCATED != 0,
        actor: KernelActor::from_raw(&raw.header.actor, &raw.cmdline),
    })
}

/// Copies a record of exactly `T`'s size out of the ring buffer, one whose header says it
/// is of `kind`.
fn read_record<T: aya::Pod>(bytes: &[u8], kind: EventKind) -> Result<T, DecodeError> {
    let expected = std::mem::size_of::<T>();
    if bytes.len() != expected {
        return Err(DecodeError::Size(bytes.len(), expected));
    }
    let header: EventHeader = read_prefix(bytes)?;
    if header.kind != kind as u32 {
        return Err(DecodeError::Kind {
            found: header.kind,
            expected: kind,
        });
    }
    read_prefix(bytes)
}

/// Copies a `T` out of the start of a ring buffer record.
fn read_prefix<T: aya::Pod>(bytes: &[u8]) -> Result<T, DecodeError> {
    let expected = std::mem::size_of::<T>();
    if bytes.len() < expected {
        return Err(DecodeError::Size(bytes.len(), expected));
    }
    // SAFETY: T is plain old data (aya::Pod), and the record holds at least its size;
    // read_unaligned copes with whatever alignment the ring buffer gives.
    Ok(unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast()) })
}

fn decision(raw: u32) -> Result<Decision, DecodeError> {
    Decision::from_u32(raw).ok_or(DecodeError::Unknown {
        field: "decision",
        value: raw,
    })
}

/// A NUL-terminated (or NUL-padded) string from a kernel record, lossily decoded; all of
/// `bytes` if there is no NUL.
pub fn c_string(bytes: &[u8]) -> String {
    let len = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    String::from_utf8_lossy(&bytes[..len]).into_owned()
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use guard_common::{
        event::EVENT_NAME_LEN,
        exec::{Classification, Reason, Verdict},
        InodeKey,
    };

    use super::*;
    use crate::{
        policy::{commands::ObjectName, ObjectKind},
        tables::Legend,
    };

    /// The bytes a kernel program would put on the ring buffer for `record`.
    fn record_bytes<T: aya::Pod>(record: &T) -> Vec<u8> {
        // SAFETY: aya::Pod types are repr(C) plain old data without padding.
        unsafe {
            std::slice::from_raw_parts((record as *const T).cast::<u8>(), std::mem::size_of::<T>())
        }
        .to_vec()
    }

    fn name(s: &str) -> [u8; EVENT_NAME_LEN] {
        let mut out = [0u8; EVENT_NAME_LEN];
        out[..s.len()].copy_from_slice(s.as_bytes());
        out
    }

    fn comm(s: &str) -> [u8; guard_common::COMM_LEN] {
        let mut out = [0u8; guard_common::COMM_LEN];
        out[..s.len()].copy_from_slice(s.as_bytes());
        out
    }

    fn header(kind: EventKind, decision: u32, actor: EventActor) -> EventHeader {
        EventHeader {
            kind: kind as u32,
            decision,
            actor,
        }
    }

    fn cmdline(argv: &[u8]) -> ActorCmdline {
        let mut cmdline = ActorCmdline {
            len: argv.len() as u32,
            flags: 0,
            bytes: [0; guard_common::event::ACTOR_CMDLINE_LEN],
        };
        cmdline.bytes[..argv.len()].copy_from_slice(argv);
        cmdline
    }

    fn record(op: u32, decision: u32, names: &[&str], flags: u32) -> Vec<u8> {
        let actor = EventActor {
            exe: InodeKey::new(0x0fe0_0001, 900),
            cgroup_id: 4242,
            pid: 10,
            tgid: 11,
            ppid: 1,
            uid: 0,
            comm: comm("rm"),
            tty: 0x0880_0003,
            mnt_ns: 0,
        };
        let mut ev = FileEvent {
            header: header(EventKind::File, decision, actor),
            target: InodeKey::new(0x0fe0_0001, 77),
            anchor: InodeKey::new(0x0fe0_0001, 5),
            op,
            rule_id: 3,
            flags,
            name_count: names.len() as u32,
            names: [[0; EVENT_NAME_LEN]; EVENT_PATH_COMPONENTS],
            cmdline: cmdline(b"rm\0-f\0meta.db\0"),
        };
        for (slot, n) in ev.names.iter_mut().zip(names) {
            *slot = name(n);
        }
        record_bytes(&ev)
    }

    #[test]
    fn decodes_a_blocked_unlink_below_a_tree_root() {
        let got = decode_file(&record(
            FileOp::Unlink.bit(),
            1,
            &["meta.db", "io.containerd"],
            0,
        ))
        .unwrap();
        assert_eq!(got.op, FileOp::Unlink);
        assert_eq!(got.decision, Decision::Blocked);
        assert_eq!(got.rule_id, 3);
        assert_eq!(
            (got.target.major(), got.target.minor(), got.target.ino),
            (254, 1, 77)
        );
        assert_eq!(
            (
                got.actor.pid,
                got.actor.tgid,
                got.actor.ppid,
                got.actor.comm.as_str()
            ),
            (10, 11, 1, "rm")
        );
        assert_eq!(got.components, ["io.containerd", "meta.db"]);
        assert_eq!(got.actor.tty, 0x0880_0003, "/dev/pts/3");
        assert_eq!(got.actor.cmdline.args, ["rm", "-f", "meta.db"]);
        assert!(!got.actor.cmdline.truncated);

        let mut legend = Legend::default();
        legend
            .paths
            .insert(got.anchor, PathBuf::from("/var/lib/containerd"));
        assert_eq!(
            got.path(&legend).unwrap(),
            PathBuf::from("/var/lib/containerd/io.containerd/meta.db")
        );
    }

    #[test]
    fn marks_truncated_paths() {
        let got = decode_file(&record(
            FileOp::Rename.bit(),
            2,
            &["x"],
            EVENT_PATH_TRUNCATED,
        ))
        .unwrap();
        let mut legend = Legend::default();
        legend.paths.insert(got.anchor, PathBuf::from("/srv"));
        assert_eq!(got.path(&legend).unwrap(), PathBuf::from("/srv/…/x"));
        assert_eq!(got.decision, Decision::WouldBlock);
    }

    fn exec_record(args: &[&str], argc: u32) -> Vec<u8> {
        let actor = EventActor {
            exe: InodeKey::new(0x0fe0_0001, 13),
            cgroup_id: 1,
            pid: 50,
            tgid: 50,
            ppid: 49,
            uid: 0,
            comm: [0; guard_common::COMM_LEN],
            tty: 0,
            mnt_ns: 0,
        };
        let mut ev = ExecEvent {
            header: header(EventKind::Exec, Decision::Blocked as u32, actor),
            exe: InodeKey::new(0x0fe0_0001, 12),
            classification: Classification {
                verdict: Verdict::Destructive as u32,
                reason: Reason::ProtectedObject as u32,
                rule: 2,
                class: 0,
                verb_token: 1,
                object_token: 3,
                object: 0,
                _pad: 0,
            },
            argc,
            line_flags: 0,
            arg_lens: [0; EXEC_EVENT_ARGS],
            filename: [0; guard_common::event::EXEC_EVENT_FILENAME_LEN],
            args: [[0; EXEC_EVENT_ARG_LEN]; EXEC_EVENT_ARGS],
        };
        ev.filename[..16].copy_from_slice(b"/usr/bin/apt-get");
        for (i, a) in args.iter().enumerate() {
            let n = a.len().min(EXEC_EVENT_ARG_LEN - 1);
            ev.args[i][..n].copy_from_slice(&a.as_bytes()[..n]);
            ev.arg_lens[i] = a.len() as u32;
        }
        record_bytes(&ev)
    }

    #[test]
    fn decodes_a_blocked_exec_with_its_verb_and_object() {
        let Event::Exec(got) = decode_record(&exec_record(
            &["apt-get", "remove", "-y", "containerd:amd64"],
            4,
        ))
        .unwrap() else {
            panic!("not an exec event")
        };
        assert_eq!(got.decision, Decision::Blocked);
        assert_eq!(got.argv, ["apt-get", "remove", "-y", "containerd:amd64"]);
        assert!(!got.argv_truncated);
        assert_eq!(got.verb(), Some("remove"));
        let mut legend = Legend::default();
        assert_eq!(got.object(&legend).as_deref(), Some("containerd:amd64"));
        legend.objects.push(ObjectName {
            name: "containerd".to_owned(),
            kind: ObjectKind::Packages,
            rule: 2,
        });
        assert_eq!(got.object(&legend).as_deref(), Some("containerd"));
        assert_eq!(got.filename, "/usr/bin/apt-get");
        assert_eq!(got.rule_id(), 2);
    }

    #[test]
    fn cut_arguments_and_missing_ones_are_marked() {
        let long = "x".repeat(100);
        let Event::Exec(got) = decode_record(&exec_record(&["dpkg", "-r", &long], 40)).unwrap()
        else {
            panic!("not an exec event")
        };
        assert!(got.argv_truncated);
        assert_eq!(got.argv.len(), EXEC_EVENT_ARGS);
        assert!(got.argv[2].ends_with('…'));
        assert_eq!(got.argv[2].chars().count(), EXEC_EVENT_ARG_LEN);
    }

    #[test]
    fn file_records_still_decode_through_the_dispatch() {
        let got = decode_record(&record(FileOp::Unlink.bit(), 1, &[], 0)).unwrap();
        assert!(matches!(got, Event::File(_)));
    }

    fn process_record() -> Vec<u8> {
        let actor = EventActor {
            exe: InodeKey::new(0x0fe0_0001, 14),
            cgroup_id: 7,
            pid: 60,
            tgid: 60,
            ppid: 59,
            uid: 0,
            comm: comm("pkill"),
            tty: 0x0880_0003,
            mnt_ns: 0,
        };
        let ev = ProcessEvent {
            header: header(EventKind::Process, Decision::WouldBlock as u32, actor),
            target_exe: InodeKey::new(0x0fe0_0001, 15),
            rule_id: 4,
            signal: 9,
            target_pid: 70,
            reason: ProcessReason::Uncatchable as u32,
            target_comm: comm("containerd"),
            cmdline: cmdline(b"pkill\0-9\0containerd\0"),
        };
        record_bytes(&ev)
    }

    #[test]
    fn decodes_a_signal_through_the_dispatch() {
        let Event::Process(got) = decode_record(&process_record()).unwrap() else {
            panic!("not a process event")
        };
        assert_eq!(got.decision, Decision::WouldBlock);
        assert_eq!((got.rule_id, got.signal, got.target_pid), (4, 9, 70));
        assert_eq!(got.reason, ProcessReason::Uncatchable);
        assert_eq!(got.target_comm, "containerd");
        assert_eq!(got.target_exe, InodeKey::new(0x0fe0_0001, 15));
        assert_eq!(
            (got.actor.pid, got.actor.ppid, got.actor.comm.as_str()),
            (60, 59, "pkill")
        );
        assert_eq!(got.actor.exe, InodeKey::new(0x0fe0_0001, 14));
        assert_eq!(got.actor.cmdline.args, ["pkill", "-9", "containerd"]);
    }

    #[test]
    fn records_are_told_apart_by_their_kind() {
        let mut bytes = process_record();
        bytes[..4].copy_from_slice(&0u32.to_ne_bytes());
        assert_eq!(
            decode_record(&bytes),
            Err(DecodeError::Unknown {
                field: "kind",
                value: 0
            })
        );
        let mut bytes = record(FileOp::Unlink.bit(), 1, &[], 0);
        bytes[..4].copy_from_slice(&(EventKind::Exec as u32).to_ne_bytes());
        assert_eq!(
            decode_record(&bytes),
            Err(DecodeError::Size(
                std::mem::size_of::<FileEvent>(),
                std::mem::size_of::<ExecEvent>()
            ))
        );
        assert_eq!(
            decode_file(&bytes),
            Err(DecodeError::Kind {
                found: EventKind::Exec as u32,
                expected: EventKind::File
            })
        );
        assert_eq!(
            decode_record(&[0u8; 3]),
            Err(DecodeError::Size(3, std::mem::size_of::<EventHeader>()))
        );
    }

    #[test]
    fn rejects_short_and_unknown_records() {
        let size = std::mem::size_of::<FileEvent>();
        assert_eq!(decode_file(&[0u8; 3]), Err(DecodeError::Size(3, size)));
        assert_eq!(
            decode_file(&record(0x300, 1, &[], 0)),
            Err(DecodeError::Unknown {
                field: "op",
                value: 0x300
            })
        );
        assert_eq!(
            decode_file(&record(1, 0, &[], 0)),
            Err(DecodeError::Unknown {
                field: "decision",
                value: 0
            })
        );
    }
}
