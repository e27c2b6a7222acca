//! Event pipeline: the kernel's decisions as userspace reads them off the ring buffer.
//! The types are here; [`decode`] reads them from a record's bytes, by the kind its
//! header names.

mod decode;

use std::path::PathBuf;

use guard_common::{
    exec::{Classification, Reason, Verdict, NO_OBJECT, NO_TOKEN},
    netfilter::NetfilterOp,
    process::ProcessReason,
    Decision, FileOp, InodeKey,
};

pub use self::decode::{
    c_string, decode_exec, decode_file, decode_netfilter, decode_process, decode_record,
    decode_sysctl, DecodeError,
};
use crate::tables::Legend;

/// A decoded file-layer decision.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileDecision {
    pub op: FileOp,
    pub decision: Decision,
    pub rule_id: u32,
    pub target: InodeKey,
    /// The protected object or tree root that matched.
    pub anchor: InodeKey,
    /// Path components from the anchor down to the target (anchor excluded).
    pub components: Vec<String>,
    /// Components between the anchor and the first one in `components` were not reported.
    pub path_truncated: bool,
    /// Who acted.
    pub actor: KernelActor,
}

/// The acting process as file and process events report it, read by the kernel in the
/// actor's own context.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KernelActor {
    pub exe: InodeKey,
    pub cgroup_id: u64,
    pub pid: u32,
    pub tgid: u32,
    pub ppid: u32,
    pub uid: u32,
    pub comm: String,
    pub cmdline: KernelCmdline,
    /// Its controlling terminal (the kernel's `dev_t` encoding), 0 if none.
    pub tty: u32,
    /// Its mount namespace (inode number), where the terminal's node is named.
    pub mnt_ns: u32,
}

/// An actor's argv as a file or process event carries it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KernelCmdline {
    pub args: Vec<String>,
    /// The command line was longer than the event holds; `args` is its start.
    pub truncated: bool,
}

impl FileDecision {
    /// The target's path: the anchor's known path plus the components the kernel
    /// reported. `None` if the anchor is not in the tables (e.g. replaced since).
    pub fn path(&self, legend: &Legend) -> Option<PathBuf> {
        let mut path = legend.paths.get(&self.anchor)?.clone();
        if self.path_truncated {
            path.push("…");
        }
        path.extend(&self.components);
        Some(path)
    }
}

/// A decoded exec-layer decision.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExecDecision {
    pub decision: Decision,
    pub classification: Classification,
    /// The executed file.
    pub exe: InodeKey,
    /// The path execve was given (`bprm->filename`).
    pub filename: String,
    /// The command line as far as the event carries it; a cut argument ends in `…`.
    pub argv: Vec<String>,
    /// Arguments are missing from `argv`, or some were cut.
    pub argv_truncated: bool,
    /// The task calling execve, as the kernel read it before the exec; its own command
    /// line is not carried (`argv` is the new one).
    pub actor: KernelActor,
}

impl ExecDecision {
    pub fn rule_id(&self) -> u32 {
        self.classification.rule
    }

    pub fn reason(&self) -> Option<Reason> {
        self.classification.reason()
    }

    pub fn verdict(&self) -> Option<Verdict> {
        self.classification.verdict()
    }

    /// Allowed only because a maintenance window is open for what it names.
    pub fn in_window(&self) -> bool {
        matches!(
            self.reason(),
            Some(Reason::UpgradeInWindow | Reason::RemovalInWindow)
        )
    }

    /// The argument that decided it (`remove`, `-r`, `-F`), if the event carries it.
    pub fn verb(&self) -> Option<&str> {
        self.arg(self.classification.verb_token)
    }

    /// What it acts on: the protected name it matched (from the legend), else the
    /// argument that named it; `None` for a command that names nothing (`iptables -F`).
    pub fn object(&self, legend: &Legend) -> Option<String> {
        if self.classification.object != NO_OBJECT {
            if let Some(name) = legend.object(self.classification.object) {
                return Some(name.name.clone());
            }
        }
        self.arg(self.classification.object_token)
            .map(str::to_owned)
    }

    fn arg(&self, token: u32) -> Option<&str> {
        if token == NO_TOKEN {
            return None;
        }
        self.argv.get(token as usize).map(String::as_str)
    }
}

/// A decoded process-layer decision: a signal to a protected daemon, or a ptrace attach to
/// one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProcessDecision {
    pub decision: Decision,
    pub rule_id: u32,
    /// The signal; 0 for a ptrace attach or an `oom_score_adj` write.
    pub signal: i32,
    /// Why the signal counts as ending or stopping the target, or that it was a ptrace
    /// attach.
    pub reason: ProcessReason,
    pub target_pid: u32,
    pub target_comm: String,
    pub target_exe: InodeKey,
    /// Who sent the signal, or attached.
    pub actor: KernelActor,
}

impl ProcessDecision {
    /// Whether a signal was sent (not a ptrace attach or an `oom_score_adj` write).
    pub fn is_signal(&self) -> bool {
        !matches!(
            self.reason,
            ProcessReason::PtraceAttach | ProcessReason::OomAdjust
        )
    }

    /// The audit record's `op`: `kill`, `ptrace` or `oom-adjust`.
    pub fn op(&self) -> &'static str {
        match self.reason {
            ProcessReason::PtraceAttach => "ptrace",
            ProcessReason::OomAdjust => "oom-adjust",
            _ => "kill",
        }
    }

    /// What was attempted, for people: `signal 1 to containerd (pid 70)`, `ptrace attach
    /// to containerd (pid 70)`, `a write to the oom_score_adj of containerd (pid 70)`.
    pub fn what(&self) -> String {
        let target = format!("{} (pid {})", self.target_comm, self.target_pid);
        match self.reason {
            ProcessReason::PtraceAttach => format!("ptrace attach to {target}"),
            ProcessReason::OomAdjust => format!("a write to the oom_score_adj of {target}"),
            _ => format!("signal {} to {target}", self.signal),
        }
    }
}

/// A decoded write to a sysctl the programs depend on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SysctlDecision {
    pub decision: Decision,
    pub rule_id: u32,
    /// As `/proc/sys` names it below itself: `kernel/ftrace_enabled`.
    pub name: String,
    /// What was written (its start).
    pub value: String,
    /// Who wrote; a cgroup program reads no task, so exe, parent, terminal and command
    /// line are empty.
    pub actor: KernelActor,
}

impl SysctlDecision {
    /// The file the write went to, as the host's procfs names it.
    pub fn path(&self) -> String {
        format!("/proc/sys/{}", self.name)
    }
}

/// A decoded netfilter batch that would take a protected chain or set away.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NetfilterDecision {
    pub decision: Decision,
    pub rule_id: u32,
    pub op: NetfilterOp,
    /// The family as nft names it (`ip`, `ip6`, `inet`, `any`).
    pub family: &'static str,
    /// `chain` or `set`; `None` when the batch named no one object (a flush of every
    /// set, a deletion by handle).
    pub object_kind: Option<&'static str>,
    /// Empty where the message named none.
    pub table: String,
    pub object: String,
    /// Messages of the batch read before the decision.
    pub messages: u32,
    /// Who sent the batch, with its command line.
    pub actor: KernelActor,
}

impl NetfilterDecision {
    /// What was taken away, as nft would name it: `chain ip nat DOCKER`, `table ip nat`,
    /// `set docker-ext-bridges-v4`, `the ruleset`.
    pub fn object_text(&self) -> String {
        if self.op == NetfilterOp::DeleteByHandle {
            return format!("a table of family {} (by handle)", self.family);
        }
        let mut words: Vec<&str> = Vec::new();
        if let Some(kind) = self.object_kind {
            words.push(kind);
        } else if !self.table.is_empty() {
            words.push("table");
        }
        if self.op == NetfilterOp::IpsetChange {
            words.push(&self.object);
        } else {
            if self.family != "any" && (!self.table.is_empty() || self.object_kind.is_some()) {
                words.push(self.family);
            }
            words.extend([self.table.as_str(), self.object.as_str()]);
        }
        let text = words
            .into_iter()
            .filter(|w| !w.is_empty())
            .collect::<Vec<_>>()
            .join(" ");
        if text.is_empty() {
            match self.op {
                NetfilterOp::IpsetChange => "every ipset".to_owned(),
                _ => format!("every table ({})", self.family),
            }
        } else {
            text
        }
    }
}

/// A decoded ring buffer record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    File(FileDecision),
    Exec(ExecDecision),
    Process(ProcessDecision),
    Sysctl(SysctlDecision),
    Netfilter(NetfilterDecision),
}
