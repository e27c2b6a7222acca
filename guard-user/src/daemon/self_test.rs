//! The startup self-test: before rtguard says it enforces, it proves it on canaries, one
//! per layer, each under a synthetic rule ([`SELF_TEST_RULE`]):
//!
//! - file: a canary file in a private directory is protected, and a child process tries
//!   to unlink it;
//! - exec: a canary script is classed as a command that is destructive whatever its
//!   arguments, and a child process tries to execute it;
//! - process: rtguard's own executable is protected against SIGTERM for a moment, and one
//!   child process tries to terminate another;
//! - netfilter: a chain name no tool makes is protected, and a child process sends an
//!   nf_tables batch deleting it.
//!
//! Each check needs the kernel's answer (EPERM in enforce mode, success in audit mode)
//! and its event naming the synthetic rule. The canaries are removed from the maps
//! before the policy's tables go in.
//!
//! The same checks run again while the daemon serves, at a fixed interval and after
//! every reload (the continuous proof): enforcement can stop under a running guard (the
//! `kernel.ftrace_enabled` sysctl turns off the trampolines BPF LSM and fmod_ret programs
//! run on). Then the policy's tables are in the maps: the canaries borrow only what the
//! policy does not use (a class slot past its classes) or put back what they borrowed
//! (rtguard's own process protection), and the policy's events that arrive meanwhile are
//! handed back to the caller to be recorded.
//!
//! The canaries live on the daemon's own filesystem, so they prove the mechanism, not
//! the identities on the filesystems the policy's objects are on. [`identities`] proves
//! those, each time the tables are installed: for one protected object per filesystem,
//! the key the kernel computes when the daemon opens it must be the key userspace
//! resolved.

use std::{
    collections::BTreeMap,
    ffi::CString,
    os::{fd::AsRawFd as _, unix::fs::PermissionsExt as _},
    path::{Path, PathBuf},
    time::Duration,
};

use aya::maps::{MapData, RingBuf};
use guard_common::{
    exec::{ClassEntry, CommandConfig, MAX_CLASSES, OBJECTS_ANY, WORD_BARE, WORD_DESTRUCTIVE},
    file::OPS_ALL,
    names,
    netfilter::{
        family, nft_msg, nfta, CANARY_CHAIN, NFNL_MSG_BATCH_BEGIN, NFNL_MSG_BATCH_END,
        NFNL_SUBSYS_NFTABLES,
    },
    rule::{RuleEntry, RuleKind, RULE_ENFORCE, SELF_TEST_RULE},
    Decision, FileProtection, InodeKey, ProcessProtection,
};
use nix::{
    errno::Errno,
    sys::{
        signal::Signal,
        wait::{waitpid, WaitPidFlag, WaitStatus},
    },
    unistd::{fork, ForkResult},
};

use crate::{
    events::{self, Event},
    loader::{Guard, LoadError, Mode},
    resolve::inode_key,
    tables::KernelTables,
};

/// How long the start's self-test waits for the kernel's event about a canary. The
/// kernel queues it before the attempt's system call returns, so it is there when the
/// child has exited; the wait only bounds a ring buffer that is slow to show it.
pub const EVENT_WAIT: Duration = Duration::from_secs(5);

/// What the self-test found for one layer.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SelfTestResult {
    pub layer: String,
    pub passed: bool,
    pub detail: String,
}

/// One filesystem's identity check.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct IdentityCheck {
    /// The protected object opened.
    pub path: String,
    /// Its key as userspace resolved it, `major:minor/ino`.
    pub resolved: String,
    /// The key the kernel computed for the open; `None` if it reported none.
    pub kernel: Option<String>,
    pub passed: bool,
}

impl std::fmt::Display for IdentityCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: resolved {}, kernel {}",
            self.path,
            self.resolved,
            self.kernel.as_deref().unwrap_or("reported nothing")
        )
    }
}

/// Compares the kernel's identity of one protected object per device in the installed
/// tables (a regular file or directory that still has the key it was resolved with) with
/// the resolved one. btrfs subvolumes are devices of their own to `stat(2)`, so each is
/// checked.
pub fn identities(guard: &mut Guard) -> Result<Vec<IdentityCheck>, LoadError> {
    let samples = identity_samples(guard.installed());
    let mut checks = Vec::with_capacity(samples.len());
    for (path, key) in samples {
        let kernel = guard.kernel_identity(&path)?;
        checks.push(IdentityCheck {
            path: path.display().to_string(),
            resolved: key.to_string(),
            kernel: kernel.as_ref().map(InodeKey::to_string),
            passed: kernel == Some(key),
        });
    }
    Ok(checks)
}

/// One protected object per device, by path order, for [`identities`].
fn identity_samples(tables: &KernelTables) -> Vec<(PathBuf, InodeKey)> {
    let mut samples: BTreeMap<u32, (&Path, InodeKey)> = BTreeMap::new();
    let mut paths: Vec<(&InodeKey, &PathBuf)> = tables.legend.paths.iter().collect();
    paths.sort_by(|a, b| a.1.cmp(b.1));
    for (key, path) in paths {
        if samples.contains_key(&key.dev) {
            continue;
        }
        let Ok(meta) = std::fs::symlink_metadata(path) else {
            continue;
        };
        if (meta.is_file() || meta.is_dir()) && inode_key(&meta) == *key {
            samples.insert(key.dev, (path.as_path(), *key));
        }
    }
    samples
        .into_values()
        .map(|(path, key)| (path.to_owned(), key))
        .collect()
}

#[derive(Debug, thiserror::Error)]
pub enum SelfTestError {
    #[error("self-test canary in {dir}: {source}")]
    Canary {
        dir: String,
        #[source]
        source: std::io::Error,
    },
    #[error("self-test child: {0}")]
    Child(#[from] Errno),
    #[error(transparent)]
    Load(#[from] LoadError),
}

/// Runs every layer's check. Events on `ring` that are not a canary's (the policy's
/// decisions, when the tables are installed) are returned in `passed_over`, in order.
/// (An earlier daemon's pinned programs, still attached during a takeover, write to their
/// own generation's ring, not to this one.)
pub fn run(
    guard: &mut Guard,
    ring: &mut RingBuf<MapData>,
    dir: &Path,
    wait: Duration,
    passed_over: &mut Vec<Event>,
) -> Result<Vec<SelfTestResult>, SelfTestError> {
    let mut events = Events {
        ring,
        wait,
        passed_over,
    };
    let ring = &mut events;
    let io = |source| SelfTestError::Canary {
        dir: dir.display().to_string(),
        source,
    };
    std::fs::create_dir_all(dir).map_err(io)?;
    let scratch = tempfile::Builder::new()
        .prefix("self-test-")
        .tempdir_in(dir)
        .map_err(io)?;
    let rule = |kind: RuleKind| RuleEntry {
        flags: RULE_ENFORCE,
        kind: kind as u32,
    };
    let mut results = Vec::new();

    guard.canary_set(names::RULES, SELF_TEST_RULE, rule(RuleKind::Paths))?;
    results.push(file_layer(guard, ring, scratch.path())?);
    guard.canary_set(names::RULES, SELF_TEST_RULE, rule(RuleKind::Packages))?;
    results.push(exec_layer(guard, ring, scratch.path())?);
    guard.canary_set(names::RULES, SELF_TEST_RULE, rule(RuleKind::Processes))?;
    results.push(process_layer(guard, ring)?);
    guard.canary_set(names::RULES, SELF_TEST_RULE, rule(RuleKind::Netfilter))?;
    results.push(netfilter_layer(guard, ring)?);
    guard.canary_set(names::RULES, SELF_TEST_RULE, RuleEntry::default())?;
    Ok(results)
}

/// What an attempt on a canary came to, judged against the mode.
struct Attempt {
    /// The child's errno, None if the operation succeeded.
    errno: Option<Errno>,
    /// The kernel's reported decision for the synthetic rule.
    event: Option<Decision>,
    /// The canary is intact afterwards (the file still there, the process alive).
    intact: bool,
}

fn verdict(layer: &str, mode: Mode, what: &str, a: Attempt) -> SelfTestResult {
    let expected = match mode {
        Mode::Enforce => Decision::Blocked,
        Mode::Audit => Decision::WouldBlock,
    };
    let (passed, detail) = match (mode, a.errno, a.event) {
        (Mode::Enforce, Some(Errno::EPERM), Some(d)) if d == expected && a.intact => {
            (true, format!("{what} was refused (EPERM) and reported"))
        }
        (Mode::Audit, None, Some(d)) if d == expected => (
            true,
            format!("{what} was let through and reported as would-block"),
        ),
        (_, errno, event) => (
            false,
            format!(
                "{what} {}; kernel event: {}",
                match errno {
                    Some(e) => format!("failed with {e}"),
                    None => "succeeded".to_owned(),
                },
                event.map_or("none".to_owned(), |d| d.as_str().to_owned())
            ),
        ),
    };
    SelfTestResult {
        layer: layer.to_owned(),
        passed,
        detail,
    }
}

/// File layer: a child process unlinks a protected canary file.
fn file_layer(
    guard: &mut Guard,
    ring: &mut Events<'_>,
    dir: &Path,
) -> Result<SelfTestResult, SelfTestError> {
    let canary = dir.join("canary");
    let key = write_canary(&canary, b"rtguard self-test canary\n", 0o644)?;
    guard.canary_insert(
        names::PROTECTED_INODES,
        key,
        FileProtection {
            rule_id: SELF_TEST_RULE,
            ops: OPS_ALL,
            flags: 0,
            package: guard_common::file::NO_PACKAGE,
        },
    )?;
    let path = c_path(&canary);
    // SAFETY: only async-signal-safe calls in the child.
    let errno = in_child(|| unsafe { libc::unlink(path.as_ptr()) });
    guard.canary_remove::<InodeKey, FileProtection>(names::PROTECTED_INODES, key)?;
    let errno = errno?;
    let event = ring.wait_for(|ev| match ev {
        Event::File(f) if f.target == key && f.rule_id == SELF_TEST_RULE => Some(f.decision),
        _ => None,
    });
    let intact = canary.exists();
    Ok(verdict(
        "file",
        guard.mode(),
        "unlink of the canary",
        Attempt {
            errno,
            event,
            intact,
        },
    ))
}

/// Exec layer: a child process executes a canary script whose identity is classed as a
/// command that destroys everything of its class, whatever its arguments. The class is
/// the first slot past the policy's classes, so the policy's stay as they are.
fn exec_layer(
    guard: &mut Guard,
    ring: &mut Events<'_>,
    dir: &Path,
) -> Result<SelfTestResult, SelfTestError> {
    let installed = guard.installed().exec.commands.config;
    let class = installed.classes;
    if class >= MAX_CLASSES {
        return Ok(SelfTestResult {
            layer: "exec".to_owned(),
            passed: false,
            detail: format!(
                "not proven: the policy uses every one of the {MAX_CLASSES} command class slots"
            ),
        });
    }
    let canary = dir.join("canary-exec");
    let key = write_canary(&canary, b"#!/bin/sh\nexit 0\n", 0o755)?;
    guard.canary_set(
        names::COMMAND_CLASSES,
        class,
        ClassEntry {
            flags: 0,
            verb_position: 0,
            objects: OBJECTS_ANY,
            without_verb: WORD_DESTRUCTIVE | WORD_BARE,
            bare_rule: SELF_TEST_RULE,
            bare_upgrade: 0,
        },
    )?;
    guard.canary_insert(names::EXE_CLASSES, key, class)?;
    guard.canary_set(
        names::COMMAND_CONFIG,
        0,
        CommandConfig {
            classes: class + 1,
            ..installed
        },
    )?;
    let path = c_path(&canary);
    let argv = [path.as_ptr(), std::ptr::null()];
    let envp = [std::ptr::null()];
    // SAFETY: execve is async-signal-safe; it only returns on failure.
    let errno = in_child(|| unsafe { libc::execve(path.as_ptr(), argv.as_ptr(), envp.as_ptr()) });
    guard.canary_set(names::COMMAND_CONFIG, 0, installed)?;
    guard.canary_remove::<InodeKey, u32>(names::EXE_CLASSES, key)?;
    guard.canary_set(names::COMMAND_CLASSES, class, ClassEntry::default())?;
    let errno = errno?;
    let event = ring.wait_for(|ev| match ev {
        Event::Exec(e) if e.exe == key && e.rule_id() == SELF_TEST_RULE => Some(e.decision),
        _ => None,
    });
    Ok(verdict(
        "exec",
        guard.mode(),
        "execution of the canary command",
        Attempt {
            errno,
            event,
            intact: true,
        },
    ))
}

/// Process layer: rtguard's own executable is protected against SIGTERM under the
/// synthetic rule, and one child process sends SIGTERM to another. Where the policy
/// protects rtguard's process itself, its signals stay refused meanwhile (under the
/// synthetic rule), and its entry is put back afterwards.
fn process_layer(
    guard: &mut Guard,
    ring: &mut Events<'_>,
) -> Result<SelfTestResult, SelfTestError> {
    let exe = std::fs::metadata("/proc/self/exe").map_err(|source| SelfTestError::Canary {
        dir: "/proc/self/exe".to_owned(),
        source,
    })?;
    let key = inode_key(&exe);
    let policy = guard.installed().processes.get(&key).copied();
    // The target leaves by itself once the write end of this pipe closes: with an
    // earlier daemon's programs still attached, even the daemon's own SIGKILL to it could
    // be refused.
    let (hold, release) = nix::unistd::pipe()?;
    // SAFETY: the child only reads and exits, both async-signal-safe.
    let target = match unsafe { fork() }? {
        ForkResult::Child => {
            drop(release);
            let mut byte = [0u8; 1];
            unsafe { libc::read(hold.as_raw_fd(), byte.as_mut_ptr().cast(), 1) };
            unsafe { libc::_exit(0) }
        }
        ForkResult::Parent { child } => child,
    };
    drop(hold);
    let outcome = (|| {
        guard.canary_insert(
            names::PROTECTED_PROCESSES,
            key,
            ProcessProtection {
                signals: 1 << Signal::SIGTERM as u32 | policy.map_or(0, |p| p.signals),
                runtime_fatal: policy.map_or(0, |p| p.runtime_fatal),
                rule_id: SELF_TEST_RULE,
                _pad: 0,
            },
        )?;
        let pid = target.as_raw();
        // SAFETY: kill is async-signal-safe.
        let errno = in_child(|| unsafe { libc::kill(pid, libc::SIGTERM) });
        match policy {
            Some(entry) => guard.canary_insert(names::PROTECTED_PROCESSES, key, entry)?,
            None => guard
                .canary_remove::<InodeKey, ProcessProtection>(names::PROTECTED_PROCESSES, key)?,
        }
        let intact = matches!(
            waitpid(target, Some(WaitPidFlag::WNOHANG)),
            Ok(WaitStatus::StillAlive)
        );
        Ok::<_, SelfTestError>((errno?, intact))
    })();
    drop(release);
    waitpid(target, None).ok();
    let (errno, intact) = outcome?;
    let event = ring.wait_for(|ev| match ev {
        Event::Process(p) if p.target_exe == key && p.rule_id == SELF_TEST_RULE => Some(p.decision),
        _ => None,
    });
    Ok(verdict(
        "process",
        guard.mode(),
        "SIGTERM to a protected process",
        Attempt {
            errno,
            event,
            intact,
        },
    ))
}

/// Netfilter layer: a child process sends an nf_tables batch deleting a chain whose name
/// is protected under the synthetic rule. The chain does not exist: a protected name the
/// daemon has not seen is refused as such, so nothing on the host is touched either way
/// (let through, the batch fails in nf_tables with ENOENT, after the send).
fn netfilter_layer(
    guard: &mut Guard,
    ring: &mut Events<'_>,
) -> Result<SelfTestResult, SelfTestError> {
    guard.netfilter_canary(Some(SELF_TEST_RULE))?;
    let batch = canary_batch();
    // SAFETY: socket, sendto and close are async-signal-safe; `batch` outlives the child.
    let errno = in_child(|| unsafe {
        let fd = libc::socket(libc::AF_NETLINK, libc::SOCK_RAW, libc::NETLINK_NETFILTER);
        if fd < 0 {
            return -1;
        }
        let mut addr: libc::sockaddr_nl = std::mem::zeroed();
        addr.nl_family = libc::AF_NETLINK as u16;
        let sent = libc::sendto(
            fd,
            batch.as_ptr().cast(),
            batch.len(),
            0,
            (&raw const addr).cast(),
            size_of::<libc::sockaddr_nl>() as u32,
        );
        if sent < 0 {
            return -1;
        }
        libc::close(fd)
    });
    guard.netfilter_canary(None)?;
    let event = ring.wait_for(|ev| match ev {
        Event::Netfilter(n) if n.rule_id == SELF_TEST_RULE => Some(n.decision),
        _ => None,
    });
    Ok(verdict(
        "netfilter",
        guard.mode(),
        "an nf_tables batch deleting a protected chain",
        Attempt {
            errno: errno?,
            event,
            intact: true,
        },
    ))
}

/// `NFT_MSG_DELCHAIN` of [`CANARY_CHAIN`] in table `inet rtguard`, framed as a batch.
fn canary_batch() -> Vec<u8> {
    fn attr(out: &mut Vec<u8>, kind: u16, value: &[u8]) {
        out.extend((4 + value.len() as u16 + 1).to_ne_bytes());
        out.extend(kind.to_ne_bytes());
        out.extend(value);
        out.push(0);
        out.resize(out.len().next_multiple_of(4), 0);
    }
    fn message(out: &mut Vec<u8>, kind: u16, family: u8, res_id: u16, attrs: &[u8]) {
        out.extend((20 + attrs.len() as u32).to_ne_bytes());
        out.extend(kind.to_ne_bytes());
        out.extend((libc::NLM_F_REQUEST as u16).to_ne_bytes());
        out.extend(0u32.to_ne_bytes());
        out.extend(0u32.to_ne_bytes());
        out.extend([family, 0]);
        out.extend(res_id.to_be_bytes());
        out.extend(attrs);
    }
    let mut attrs = Vec::new();
    attr(&mut attrs, nfta::CHAIN_TABLE, b"rtguard");
    attr(&mut attrs, nfta::CHAIN_NAME, CANARY_CHAIN);
    let mut out = Vec::new();
    let subsystem = u16::from(NFNL_SUBSYS_NFTABLES);
    message(&mut out, NFNL_MSG_BATCH_BEGIN, 0, subsystem, &[]);
    let delchain = subsystem << 8 | u16::from(nft_msg::DELCHAIN);
    message(&mut out, delchain, family::INET, 0, &attrs);
    message(&mut out, NFNL_MSG_BATCH_END, 0, subsystem, &[]);
    out
}

/// Writes a canary file and returns its identity.
fn write_canary(path: &Path, bytes: &[u8], mode: u32) -> Result<InodeKey, SelfTestError> {
    let io = |source| SelfTestError::Canary {
        dir: path.display().to_string(),
        source,
    };
    std::fs::write(path, bytes).map_err(io)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).map_err(io)?;
    Ok(inode_key(&std::fs::metadata(path).map_err(io)?))
}

fn c_path(path: &Path) -> CString {
    CString::new(PathBuf::from(path).into_os_string().into_encoded_bytes())
        .expect("temp paths have no NUL")
}

/// Runs `attempt` in a forked child and returns its errno (None if it returned 0). A
/// child, because the daemon's own executable could one day be trusted by a rule, and
/// because the process layer never refuses a process's signals to itself.
fn in_child(attempt: impl FnOnce() -> libc::c_int) -> Result<Option<Errno>, SelfTestError> {
    // SAFETY: every `attempt` makes one async-signal-safe call before `_exit`, so the
    // child needs nothing another thread of the daemon may have held at the fork.
    match unsafe { fork() }? {
        ForkResult::Child => {
            let code = match attempt() {
                0 => 0,
                _ => Errno::last_raw(),
            };
            unsafe { libc::_exit(code) }
        }
        ForkResult::Parent { child } => match waitpid(child, None)? {
            WaitStatus::Exited(_, 0) => Ok(None),
            WaitStatus::Exited(_, code) => Ok(Some(Errno::from_raw(code))),
            other => Err(SelfTestError::Canary {
                dir: String::new(),
                source: std::io::Error::other(format!("child ended as {other:?}")),
            }),
        },
    }
}

/// The ring buffer as the self-test reads it.
struct Events<'a> {
    ring: &'a mut RingBuf<MapData>,
    /// How long to wait for a canary's event.
    wait: Duration,
    /// Events that are not a canary's, for the caller.
    passed_over: &'a mut Vec<Event>,
}

impl Events<'_> {
    /// The decision the kernel reported for a canary, if it arrives in time. Anything
    /// else on the ring is kept in `passed_over`.
    fn wait_for(
        &mut self,
        mut matches: impl FnMut(&Event) -> Option<Decision>,
    ) -> Option<Decision> {
        let deadline = std::time::Instant::now() + self.wait;
        loop {
            while let Some(item) = self.ring.next() {
                let Ok(event) = events::decode_record(&item) else {
                    continue;
                };
                if let Some(d) = matches(&event) {
                    return Some(d);
                }
                self.passed_over.push(event);
            }
            if std::time::Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_child_reports_its_errno() {
        let dir = tempfile::tempdir().unwrap();
        let missing = c_path(&dir.path().join("missing"));
        let errno = in_child(|| unsafe { libc::unlink(missing.as_ptr()) }).unwrap();
        assert_eq!(errno, Some(Errno::ENOENT));
        let present = dir.path().join("present");
        std::fs::write(&present, b"x").unwrap();
        let path = c_path(&present);
        assert_eq!(
            in_child(|| unsafe { libc::unlink(path.as_ptr()) }).unwrap(),
            None
        );
        assert!(!present.exists());
    }

    #[test]
    fn only_the_expected_answer_passes() {
        let refused = || Attempt {
            errno: Some(Errno::EPERM),
            event: Some(Decision::Blocked),
            intact: true,
        };
        assert!(verdict("file", Mode::Enforce, "x", refused()).passed);
        let no_event = Attempt {
            event: None,
            ..refused()
        };
        assert!(!verdict("file", Mode::Enforce, "x", no_event).passed);
        let damaged = Attempt {
            intact: false,
            ..refused()
        };
        assert!(!verdict("file", Mode::Enforce, "x", damaged).passed);
        let let_through = Attempt {
            errno: None,
            event: Some(Decision::WouldBlock),
            intact: true,
        };
        assert!(verdict("exec", Mode::Audit, "x", let_through).passed);
        let eacces = Attempt {
            errno: Some(Errno::EACCES),
            ..refused()
        };
        let r = verdict("exec", Mode::Enforce, "x", eacces);
        assert!(!r.passed);
        assert!(r.detail.contains("EACCES"), "{}", r.detail);
    }
}
