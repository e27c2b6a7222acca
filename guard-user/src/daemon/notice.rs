//! Telling the person at the terminal. When the kernel refuses a command, a file operation
//! or a signal, the refused program prints only "Operation not permitted"; the daemon adds
//! one short notice on the controlling terminal of the refused process (the kernel reads
//! it in the process's own context, so a process without one gets no notice): what was
//! refused, under which rule, where to read more, and how to proceed on purpose when there
//! is a way.
//!
//! Only a process in the daemon's own mount namespace is told: a terminal's device number
//! names a node only in the namespace whose /dev/pts holds it, and a container's
//! `/dev/pts/3` is not the host's.
//!
//! One notice per command: refusals are gathered per process and written once it has been
//! quiet for [`QUIET`], so an `rm -rf` refused 500 times gets one notice with a count. A
//! refused exec ends its command there, so its notice is written at once. The
//! daemon never waits on a terminal: the device is opened `O_NONBLOCK | O_NOCTTY` and
//! written once. A terminal another writer holds (the refused shell printing its own
//! error, at the same moment) answers `EAGAIN`, and the notice is tried again shortly,
//! [`TRIES`] times at most; a full or gone terminal loses the notice, not the daemon's
//! time.

use std::{
    collections::BTreeMap,
    fs::OpenOptions,
    io::Write as _,
    os::unix::fs::{FileTypeExt as _, MetadataExt as _, OpenOptionsExt as _},
    path::PathBuf,
    time::{Duration, Instant},
};

use guard_common::{inode::kernel_dev_parts, Decision};
use tracing::debug;

use crate::{
    audit::record::command_text,
    events::{ExecDecision, FileDecision, KernelActor, NetfilterDecision, ProcessDecision},
    policy::ObjectKind,
    tables::Legend,
};

/// A command's refusals are written once no new one has come for this long.
pub const QUIET: Duration = Duration::from_millis(300);
/// Processes with refusals not yet written; more are not noticed (the audit log has them).
const MAX_PENDING: usize = 64;
/// Writes of one notice to a terminal that was busy, [`RETRY`] apart.
pub const TRIES: u32 = 20;
pub const RETRY: Duration = Duration::from_millis(10);
/// A notice longer than this is cut.
const MAX_NOTICE_BYTES: usize = 2048;
/// The major number of pseudo-terminal slaves (`/dev/pts/N` is `136:N`).
const PTS_MAJOR: u32 = 136;
/// The major number of virtual consoles (`/dev/ttyN`) and serial ports (`/dev/ttySN`).
const TTY_MAJOR: u32 = 4;

/// What the file layer says about a protected path: the words `rtguard explain` uses too.
pub fn file_layer_protects(path: &str, rule: &str) -> String {
    format!("the file layer protects {path} (rule {rule})")
}

/// One refusal, as the notice tells it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    /// The refused process's terminal (kernel `dev_t` encoding).
    pub tty: u32,
    /// The refused process's mount namespace (inode number).
    pub mnt_ns: u32,
    pub pid: u32,
    /// Audit mode: it was let through.
    pub audit_mode: bool,
    /// The command line, as far as known.
    pub command: String,
    /// What was refused: "unlink of /var/lib/containerd/x", "`remove` of containerd".
    pub what: String,
    /// Why: "the file layer protects /var/lib/containerd (rule runtime-state)".
    pub why: String,
    /// How to do it on purpose, when there is a way.
    pub proceed: Option<String>,
    /// `rtguard explain -- …` for a refused command.
    pub explain: Option<String>,
    /// Nothing more can follow (a refused exec ends its command): write without waiting.
    pub ends_command: bool,
}

impl Refusal {
    /// A refused file operation; `None` if it was not refused or the actor has no terminal.
    pub fn file(ev: &FileDecision, legend: &Legend) -> Option<Self> {
        let audit_mode = refused(ev.decision)?;
        let rule = legend.rule(ev.rule_id).unwrap_or("?");
        let target = ev
            .path(legend)
            .map_or_else(|| ev.target.to_string(), |p| p.display().to_string());
        let anchor = legend
            .path(&ev.anchor)
            .map_or_else(|| target.clone(), |p| p.display().to_string());
        Self::by(
            &ev.actor,
            audit_mode,
            format!("{} of {target}", ev.op.as_str()),
            file_layer_protects(&anchor, rule),
        )
    }

    /// A refused command.
    pub fn exec(ev: &ExecDecision, legend: &Legend) -> Option<Self> {
        let audit_mode = refused(ev.decision)?;
        let rule = legend.rule(ev.rule_id()).unwrap_or("?");
        let verb = ev.verb().unwrap_or_default();
        let object = ev.object(legend);
        let what = match &object {
            Some(object) => format!("`{verb}` of {object}"),
            None => format!("`{verb}`"),
        };
        let package = legend
            .object(ev.classification.object)
            .filter(|o| o.kind == ObjectKind::Packages);
        let proceed = package.map(|p| {
            format!(
                "to remove it on purpose, open a window first: rtguard maintenance open \
                 --package {} --allow-removal --for 30m --reason \"…\"",
                p.name
            )
        });
        // The actor's own command line is the caller's; what was refused is the new one.
        let command = command_line(&ev.argv, ev.argv_truncated, &ev.actor.comm);
        Some(Self {
            explain: (!ev.argv.is_empty() && !ev.argv_truncated)
                .then(|| format!("rtguard explain -- {command}")),
            command,
            proceed,
            ends_command: true,
            ..Self::by(
                &ev.actor,
                audit_mode,
                what,
                format!("the exec layer refuses it (rule {rule})"),
            )?
        })
    }

    /// A refused signal or ptrace attach.
    pub fn signal(ev: &ProcessDecision, legend: &Legend) -> Option<Self> {
        let audit_mode = refused(ev.decision)?;
        let rule = legend.rule(ev.rule_id).unwrap_or("?");
        Self::by(
            &ev.actor,
            audit_mode,
            ev.what(),
            format!(
                "the process layer protects {} (rule {rule})",
                ev.target_comm
            ),
        )
    }

    /// A refused netfilter batch (`nft flush ruleset`, `iptables-restore` without
    /// Docker's chains).
    pub fn netfilter(ev: &NetfilterDecision, legend: &Legend) -> Option<Self> {
        let audit_mode = refused(ev.decision)?;
        let rule = legend.rule(ev.rule_id).unwrap_or("?");
        Self::by(
            &ev.actor,
            audit_mode,
            format!("{} taking away {}", ev.op.as_str(), ev.object_text()),
            format!(
                "the netfilter layer protects Docker's firewall state (rule {rule}); a batch \
                 that declares the chain again passes"
            ),
        )
    }

    /// A refusal of what `actor` did; `None` when it has no terminal.
    fn by(actor: &KernelActor, audit_mode: bool, what: String, why: String) -> Option<Self> {
        Some(Self {
            tty: terminal(actor.tty)?,
            mnt_ns: actor.mnt_ns,
            pid: actor.tgid,
            audit_mode,
            command: command_line(&actor.cmdline.args, actor.cmdline.truncated, &actor.comm),
            what,
            why,
            proceed: None,
            explain: None,
            ends_command: false,
        })
    }
}

/// `Some(audit_mode)` for a refusal, `None` for what was allowed.
fn refused(decision: Decision) -> Option<bool> {
    match decision {
        Decision::Blocked => Some(false),
        Decision::WouldBlock => Some(true),
        Decision::AllowedUpgrade | Decision::AllowedEdit => None,
    }
}

fn terminal(tty: u32) -> Option<u32> {
    (tty != 0).then_some(tty)
}

/// The command line, or the process's name when the event carries none.
fn command_line(argv: &[String], truncated: bool, comm: &str) -> String {
    if argv.is_empty() {
        comm.to_owned()
    } else {
        command_text(argv, truncated)
    }
}

/// A process's refusals not yet written.
#[derive(Debug)]
struct Pending {
    first: Refusal,
    count: u32,
    /// When to write: [`QUIET`] after the last refusal, or at once for one that ends its command.
    due: Instant,
}

/// A notice whose terminal was busy, to be written again.
#[derive(Debug)]
struct Busy {
    notice: Notice,
    due: Instant,
}

/// A notice to write: the terminal, the text, and how many writes it has had.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Notice {
    pub tty: u32,
    pub text: String,
    pub tries: u32,
}

/// Refusals gathered per process until each has been quiet for [`QUIET`].
#[derive(Debug)]
pub struct Notices {
    /// The mount namespace whose terminals the daemon can name: its own.
    mnt_ns: u32,
    pending: BTreeMap<u32, Pending>,
    busy: Vec<Busy>,
}

impl Notices {
    /// Notices for processes in the daemon's own mount namespace; none if it cannot
    /// tell which that is.
    pub fn for_this_namespace() -> Self {
        use std::os::unix::fs::MetadataExt as _;
        let mnt_ns = std::fs::metadata("/proc/self/ns/mnt").map_or(0, |m| m.ino() as u32);
        Self::in_namespace(mnt_ns)
    }

    pub fn in_namespace(mnt_ns: u32) -> Self {
        Self {
            mnt_ns,
            pending: BTreeMap::new(),
            busy: Vec::new(),
        }
    }

    /// Counts `refusal` for its process, if its terminal is one this daemon can name.
    pub fn add(&mut self, refusal: Refusal, now: Instant) {
        if self.mnt_ns == 0 || refusal.mnt_ns != self.mnt_ns {
            return;
        }
        let due = if refusal.ends_command {
            now
        } else {
            now + QUIET
        };
        if let Some(p) = self.pending.get_mut(&refusal.pid) {
            p.count += 1;
            p.due = p.due.max(due);
            return;
        }
        if self.pending.len() < MAX_PENDING {
            self.pending.insert(
                refusal.pid,
                Pending {
                    first: refusal,
                    count: 1,
                    due,
                },
            );
        }
    }

    /// When the next notice is due, if any is pending.
    pub fn due(&self) -> Option<Instant> {
        let pending = self.pending.values().map(|p| p.due);
        pending.chain(self.busy.iter().map(|b| b.due)).min()
    }

    /// Takes the notices due by `now`: those tried before first, then the new ones.
    pub fn take_due(&mut self, now: Instant) -> Vec<Notice> {
        let (due, later): (Vec<Busy>, Vec<Busy>) = std::mem::take(&mut self.busy)
            .into_iter()
            .partition(|b| b.due <= now);
        self.busy = later;
        let quiet: Vec<u32> = self
            .pending
            .iter()
            .filter(|(_, p)| p.due <= now)
            .map(|(pid, _)| *pid)
            .collect();
        let new = quiet
            .into_iter()
            .filter_map(|pid| self.pending.remove(&pid))
            .map(|p| Notice {
                tty: p.first.tty,
                text: text(&p.first, p.count),
                tries: 0,
            });
        due.into_iter().map(|b| b.notice).chain(new).collect()
    }

    /// Keeps `notice`, whose terminal was busy, for another write [`RETRY`] from `now`;
    /// after [`TRIES`] writes it is given up.
    pub fn busy(&mut self, mut notice: Notice, now: Instant) {
        notice.tries += 1;
        if notice.tries >= TRIES {
            debug!(
                tty = notice.tty,
                "terminal busy {TRIES} times; notice not written"
            );
            return;
        }
        self.busy.push(Busy {
            notice,
            due: now + RETRY,
        });
    }
}

/// The notice for a process's refusals: the first one and how many followed.
pub fn text(first: &Refusal, count: u32) -> String {
    let verb = if first.audit_mode {
        "would have refused (audit mode: it was let through)"
    } else {
        "refused"
    };
    let more = match count {
        0 | 1 => String::new(),
        n => format!(" and {} more", n - 1),
    };
    let mut text = format!(
        "\r\nrtguard: {verb} {}{more}, by `{}` (pid {}): {}.\r\n",
        first.what, first.command, first.pid, first.why
    );
    let mut read_more = "rtguard: see `rtguard audit --since 5m`".to_owned();
    if let Some(explain) = &first.explain {
        read_more.push_str(&format!(" and `{explain}`"));
    }
    text.push_str(&read_more);
    text.push_str(".\r\n");
    if let Some(proceed) = &first.proceed {
        text.push_str(&format!("rtguard: {proceed}\r\n"));
    }
    if text.len() > MAX_NOTICE_BYTES {
        let mut cut = MAX_NOTICE_BYTES;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
        text.push_str("…\r\n");
    }
    text
}

/// The device node of terminal `tty` (kernel `dev_t` encoding): a pseudo-terminal, a
/// virtual console or a serial port. Others are not written to.
fn device_path(tty: u32) -> Option<PathBuf> {
    let (major, minor) = kernel_dev_parts(tty);
    match major {
        PTS_MAJOR => Some(PathBuf::from(format!("/dev/pts/{minor}"))),
        TTY_MAJOR if minor < 64 => Some(PathBuf::from(format!("/dev/tty{minor}"))),
        TTY_MAJOR => Some(PathBuf::from(format!("/dev/ttyS{}", minor - 64))),
        _ => None,
    }
}

/// Writes `text` to terminal `tty` if its device node is that terminal; never blocks and
/// never makes it the daemon's controlling terminal. Failures only go to the debug log.
/// Writes `text` to terminal `tty`, once. False if the terminal was busy (`EAGAIN`: a
/// non-blocking write does not wait for another writer), and the notice is worth another
/// try; any other failure loses the notice.
pub fn write(tty: u32, text: &str) -> bool {
    let Some(path) = device_path(tty) else {
        debug!(
            tty,
            "no device node known for this terminal; notice not written"
        );
        return true;
    };
    let (major, minor) = kernel_dev_parts(tty);
    // The node must be that device: /dev/pts/N of another mount namespace's devpts, or a
    // node replaced since, is not the refused process's terminal.
    let expected = libc::makedev(major, minor);
    let result = std::fs::metadata(&path).and_then(|m| {
        if m.file_type().is_char_device() && m.rdev() == expected {
            OpenOptions::new()
                .write(true)
                .custom_flags(libc::O_NOCTTY | libc::O_NONBLOCK | libc::O_CLOEXEC)
                .open(&path)?
                .write(text.as_bytes())
                .map(drop)
        } else {
            Err(std::io::Error::other("not the refused process's terminal"))
        }
    });
    match result {
        Ok(()) => true,
        Err(e) if e.raw_os_error() == Some(libc::EAGAIN) => false,
        Err(e) => {
            debug!(path = %path.display(), "notice not written: {e}");
            true
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOST_NS: u32 = 4_026_531_841;

    fn refusal() -> Refusal {
        Refusal {
            tty: (PTS_MAJOR << 20) | 3,
            mnt_ns: HOST_NS,
            pid: 4242,
            audit_mode: false,
            command: "rm -rf /var/lib/containerd".to_owned(),
            what: "unlink of /var/lib/containerd/meta.db".to_owned(),
            why: file_layer_protects("/var/lib/containerd", "runtime-state"),
            proceed: None,
            explain: None,
            ends_command: false,
        }
    }

    #[test]
    fn a_command_refused_many_times_gets_one_notice_with_a_count() {
        let start = Instant::now();
        let mut notices = Notices::in_namespace(HOST_NS);
        for i in 0..500 {
            notices.add(refusal(), start + Duration::from_micros(i));
        }
        assert!(notices
            .take_due(start + Duration::from_millis(100))
            .is_empty());
        let due = notices.due().unwrap();
        let written = notices.take_due(due);
        assert_eq!(written.len(), 1);
        let Notice { tty, text, tries } = &written[0];
        assert_eq!(*tty, (136 << 20) | 3);
        assert_eq!(*tries, 0);
        assert_eq!(
            text,
            "\r\nrtguard: refused unlink of /var/lib/containerd/meta.db and 499 more, by `rm -rf \
             /var/lib/containerd` (pid 4242): the file layer protects /var/lib/containerd (rule \
             runtime-state).\r\nrtguard: see `rtguard audit --since 5m`.\r\n"
        );
        assert!(notices.due().is_none());

        // A refused exec is written at once.
        notices.add(
            Refusal {
                ends_command: true,
                pid: 7,
                ..refusal()
            },
            start,
        );
        assert_eq!(notices.take_due(start).len(), 1);
    }

    #[test]
    fn a_notice_to_a_busy_terminal_is_tried_again_a_few_times() {
        let start = Instant::now();
        let mut notices = Notices::in_namespace(HOST_NS);
        let exec = Refusal {
            ends_command: true,
            ..refusal()
        };
        notices.add(exec, start);
        let mut notice = notices.take_due(start).pop().unwrap();
        let mut now = start;
        for tries in 1..TRIES {
            notices.busy(notice, now);
            assert_eq!(notices.due(), Some(now + RETRY));
            assert!(notices.take_due(now).is_empty(), "not before {RETRY:?}");
            now += RETRY;
            notice = notices.take_due(now).pop().expect("tried again");
            assert_eq!(notice.tries, tries);
        }
        notices.busy(notice, now);
        assert_eq!(notices.due(), None, "given up after {TRIES} writes");
    }

    #[test]
    fn audit_mode_says_it_was_let_through_and_a_way_forward_is_offered() {
        let r = Refusal {
            audit_mode: true,
            what: "`remove` of containerd".to_owned(),
            why: "the exec layer refuses it (rule runtime-packages)".to_owned(),
            command: "apt-get remove containerd".to_owned(),
            explain: Some("rtguard explain -- apt-get remove containerd".to_owned()),
            proceed: Some("to remove it on purpose, open a window first: …".to_owned()),
            ..refusal()
        };
        let text = text(&r, 1);
        assert!(text.contains("rtguard: would have refused (audit mode: it was let through) `remove` of containerd, by `apt-get remove containerd`"), "{text}");
        assert!(
            text.contains("and `rtguard explain -- apt-get remove containerd`"),
            "{text}"
        );
        assert!(
            text.ends_with("rtguard: to remove it on purpose, open a window first: …\r\n"),
            "{text}"
        );
    }

    #[test]
    fn only_known_terminal_kinds_have_a_device_node() {
        assert_eq!(
            device_path((136 << 20) | 7),
            Some(PathBuf::from("/dev/pts/7"))
        );
        assert_eq!(device_path((4 << 20) | 1), Some(PathBuf::from("/dev/tty1")));
        assert_eq!(
            device_path((4 << 20) | 64),
            Some(PathBuf::from("/dev/ttyS0"))
        );
        assert_eq!(
            device_path(5 << 20),
            None,
            "/dev/tty itself is nobody's terminal"
        );
    }

    #[test]
    fn a_process_in_another_mount_namespace_is_not_told() {
        let now = Instant::now();
        let mut notices = Notices::in_namespace(HOST_NS);
        notices.add(
            Refusal {
                mnt_ns: HOST_NS + 7,
                ..refusal()
            },
            now,
        );
        assert!(
            notices.due().is_none(),
            "a container's /dev/pts/3 is not ours"
        );
        let mut unknown = Notices::in_namespace(0);
        unknown.add(refusal(), now);
        assert!(unknown.due().is_none());
    }

    #[test]
    fn pending_processes_are_bounded() {
        let now = Instant::now();
        let mut notices = Notices::in_namespace(HOST_NS);
        for pid in 0..1000 {
            notices.add(Refusal { pid, ..refusal() }, now);
        }
        assert_eq!(notices.take_due(now + QUIET).len(), MAX_PENDING);
    }
}
