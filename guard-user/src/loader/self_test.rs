//! The startup self-test: before rtguard says it enforces, it proves it on a canary.
//!
//! A canary file in a private directory is protected under a synthetic rule
//! ([`SELF_TEST_RULE`]), a child process tries to unlink it, and the kernel's answer and
//! its event are checked. Only then does the daemon report "enforcing".

use std::{path::Path, time::Duration};

use aya::maps::{MapData, RingBuf};
use guard_common::{
    file::OPS_ALL,
    rule::{RuleEntry, RuleKind, RULE_ENFORCE, SELF_TEST_RULE},
    Decision, FileProtection,
};
use nix::{
    errno::Errno,
    sys::wait::{waitpid, WaitStatus},
    unistd::{fork, ForkResult},
};

use super::{Guard, LoadError, Mode};
use crate::{events, resolve::inode_key};

/// How long the self-test waits for the kernel's event about the canary.
const EVENT_WAIT: Duration = Duration::from_secs(5);

/// What the self-test found for one layer.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SelfTestResult {
    pub layer: String,
    pub passed: bool,
    pub detail: String,
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

/// Protects a canary in `dir`, has a child process unlink it, and checks that the kernel
/// refused it (enforce mode) or let it through and reported it (audit mode). Runs before
/// the policy's tables are installed, so every event on `ring` is the canary's.
pub fn file_layer(
    guard: &mut Guard,
    ring: &mut RingBuf<MapData>,
    dir: &Path,
) -> Result<SelfTestResult, SelfTestError> {
    let io = |source| SelfTestError::Canary {
        dir: dir.display().to_string(),
        source,
    };
    std::fs::create_dir_all(dir).map_err(io)?;
    let scratch = tempfile::Builder::new()
        .prefix("self-test-")
        .tempdir_in(dir)
        .map_err(io)?;
    let canary = scratch.path().join("canary");
    std::fs::write(&canary, b"rtguard self-test canary\n").map_err(io)?;
    let key = inode_key(&std::fs::metadata(&canary).map_err(io)?);

    guard.set_rule(
        SELF_TEST_RULE,
        RuleEntry {
            flags: RULE_ENFORCE,
            kind: RuleKind::Paths as u32,
        },
    )?;
    guard.insert_inode(
        key,
        FileProtection {
            rule_id: SELF_TEST_RULE,
            ops: OPS_ALL,
            flags: 0,
            _pad: 0,
        },
    )?;
    let attempt = unlink_in_child(&canary);
    guard.remove_inode(key)?;
    guard.set_rule(SELF_TEST_RULE, RuleEntry::default())?;
    let errno = attempt?;

    let expected = match guard.mode() {
        Mode::Enforce => Decision::Blocked,
        Mode::Audit => Decision::WouldBlock,
    };
    let event = wait_for_event(ring, key);
    let still_there = canary.exists();
    let (passed, detail) = match (guard.mode(), errno, event) {
        (Mode::Enforce, Some(Errno::EPERM), Some(d)) if d == expected && still_there => (
            true,
            "unlink of the canary was refused (EPERM) and reported".to_owned(),
        ),
        (Mode::Audit, None, Some(d)) if d == expected => (
            true,
            "unlink of the canary was let through and reported as would-block".to_owned(),
        ),
        (_, errno, event) => (
            false,
            format!(
                "unlink of the canary {}; kernel event: {}",
                match errno {
                    Some(e) => format!("failed with {e}"),
                    None => "succeeded".to_owned(),
                },
                event.map_or("none".to_owned(), |d| d.as_str().to_owned())
            ),
        ),
    };
    Ok(SelfTestResult {
        layer: "file".to_owned(),
        passed,
        detail,
    })
}

/// Unlinks `path` in a forked child and returns the child's errno (None on success).
/// A child, because the daemon's own exe could one day be a trusted writer.
fn unlink_in_child(path: &Path) -> Result<Option<Errno>, SelfTestError> {
    let path = std::ffi::CString::new(path.as_os_str().as_encoded_bytes())
        .expect("temp paths have no NUL");
    // SAFETY: the daemon is single-threaded at this point (no runtime yet), and the child
    // only calls async-signal-safe functions (unlink, _exit).
    match unsafe { fork() }? {
        ForkResult::Child => {
            let code = match nix::unistd::unlink(path.as_c_str()) {
                Ok(()) => 0,
                Err(e) => e as i32,
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

/// The decision the kernel reported for the canary, if it arrives in time.
fn wait_for_event(ring: &mut RingBuf<MapData>, key: guard_common::InodeKey) -> Option<Decision> {
    let deadline = std::time::Instant::now() + EVENT_WAIT;
    while std::time::Instant::now() < deadline {
        while let Some(item) = ring.next() {
            if let Ok(ev) = events::decode(&item) {
                if ev.target == key && ev.rule_id == SELF_TEST_RULE {
                    return Some(ev.decision);
                }
            }
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    None
}
