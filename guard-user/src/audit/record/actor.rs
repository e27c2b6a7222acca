//! Who did it: the [`Actor`] of a record, with its command line, ancestry and cgroup,
//! as the kernel reported it at the hook and procfs completes it.

use serde::{Deserialize, Serialize};

use crate::host::proc::{ProcError, Procfs};

/// How many ancestors `actor.ancestry` holds at most.
pub const ANCESTRY_MAX: usize = 8;

/// Bounds on `actor.argv`: enough for any package or service command worth reviewing,
/// small enough that a record stays one syslog datagram.
pub const ARGV_MAX_ARGS: usize = 64;
pub const ARGV_MAX_BYTES: usize = 4096;

/// Who did it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    /// Thread group id (what userspace calls the pid) in the initial pid namespace.
    pub pid: u32,
    pub ppid: Option<u32>,
    /// Real uid.
    pub uid: Option<u32>,
    /// The kernel's comm for the task when the hook ran (at most 15 bytes).
    pub comm: String,
    /// The actor's executable. For exec-layer records this is the image that called
    /// execve, not the one being executed (that is the target).
    pub exe: Option<String>,
    /// The command line. For exec-layer records it is the command line being executed, as
    /// captured at execve entry; otherwise the actor's own. At most [`ARGV_MAX_ARGS`]
    /// arguments and [`ARGV_MAX_BYTES`] bytes.
    pub argv: Vec<String>,
    /// `argv` was cut to fit the bounds, or the kernel could not copy all of it.
    pub argv_truncated: bool,
    /// Parent, grandparent, …: at most [`ANCESTRY_MAX`], nearest first.
    pub ancestry: Vec<Ancestor>,
    pub cgroup: Cgroup,
}

/// One step up the parent chain.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ancestor {
    pub pid: u32,
    pub comm: String,
    pub exe: Option<String>,
}

/// The actor's cgroup: the kernel's id (`bpf_get_current_cgroup_id`), the path procfs
/// shows, or both.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cgroup {
    pub id: Option<u64>,
    pub path: Option<String>,
}

impl Actor {
    /// What the kernel reported at the hook. Complete it with [`Actor::fill_from_proc`].
    pub fn new(pid: u32, uid: u32, comm: impl Into<String>) -> Self {
        Self {
            pid,
            uid: Some(uid),
            comm: comm.into(),
            ..Self::default()
        }
    }

    /// This process, for the daemon's own records.
    pub fn this_process(procfs: &Procfs) -> Self {
        let mut actor = Self {
            pid: std::process::id(),
            uid: Some(nix::unistd::getuid().as_raw()),
            ..Self::default()
        };
        actor.fill_from_proc(procfs).ok();
        actor
    }

    /// Sets the command line, cut to [`ARGV_MAX_ARGS`] arguments and [`ARGV_MAX_BYTES`]
    /// bytes. `truncated` says the source already cut it (the kernel's copy is bounded too).
    pub fn with_argv<S: Into<String>>(
        mut self,
        args: impl IntoIterator<Item = S>,
        truncated: bool,
    ) -> Self {
        self.set_argv(args, truncated);
        self
    }

    pub fn set_argv<S: Into<String>>(
        &mut self,
        args: impl IntoIterator<Item = S>,
        truncated: bool,
    ) {
        let mut argv = Vec::new();
        let mut bytes = 0;
        let mut cut = false;
        for arg in args {
            let mut arg: String = arg.into();
            if argv.len() == ARGV_MAX_ARGS || bytes >= ARGV_MAX_BYTES {
                cut = true;
                break;
            }
            if bytes + arg.len() > ARGV_MAX_BYTES {
                let mut end = ARGV_MAX_BYTES - bytes;
                while !arg.is_char_boundary(end) {
                    end -= 1;
                }
                arg.truncate(end);
                argv.push(arg);
                cut = true;
                break;
            }
            bytes += arg.len();
            argv.push(arg);
        }
        self.argv = argv;
        self.argv_truncated = truncated || cut;
    }

    pub fn with_cgroup_id(mut self, id: u64) -> Self {
        self.cgroup.id = Some(id);
        self
    }

    pub fn with_ppid(mut self, ppid: u32) -> Self {
        self.ppid = Some(ppid);
        self
    }

    /// Fills what the kernel did not report from procfs: ppid, uid, comm, exe, argv,
    /// cgroup path and the ancestry. What is already set (the kernel's view at the hook)
    /// is kept. Fails with [`ProcError::Gone`] when the process has exited; the ancestry is
    /// still walked from a known ppid then.
    ///
    /// Best effort by nature: the process may exec or exit between the event and this
    /// call, and its pid may even have been reused, so keep kernel-captured fields (argv at
    /// execve entry above all) in the record rather than relying on this.
    pub fn fill_from_proc(&mut self, procfs: &Procfs) -> Result<(), ProcError> {
        let found = procfs.process(self.pid, ARGV_MAX_BYTES);
        if let Ok(p) = &found {
            self.ppid.get_or_insert(p.stat.ppid);
            if self.uid.is_none() {
                self.uid = p.uid;
            }
            if self.comm.is_empty() {
                self.comm = p.stat.comm.clone();
            }
            if self.exe.is_none() {
                self.exe = p.exe.clone();
            }
            if self.argv.is_empty() {
                self.set_argv(p.cmdline.args.iter().cloned(), p.cmdline.truncated);
            }
            if self.cgroup.path.is_none() {
                self.cgroup.path = p.cgroup.clone();
            }
        }
        if self.ancestry.is_empty() {
            if let Some(ppid) = self.ppid {
                self.ancestry = procfs
                    .ancestry(ppid, ANCESTRY_MAX)
                    .into_iter()
                    .map(|(stat, exe)| Ancestor {
                        pid: stat.pid,
                        comm: stat.comm,
                        exe,
                    })
                    .collect();
            }
        }
        found.map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argv_is_bounded() {
        let many = Actor::default().with_argv((0..100).map(|i| i.to_string()), false);
        assert_eq!(many.argv.len(), ARGV_MAX_ARGS);
        assert!(many.argv_truncated);

        let long = "é".repeat(ARGV_MAX_BYTES); // 2 bytes each
        let big = Actor::default().with_argv(["x".to_owned(), long], false);
        assert_eq!(
            big.argv.iter().map(String::len).sum::<usize>(),
            ARGV_MAX_BYTES - 1
        );
        assert!(big.argv_truncated);

        let exact = Actor::default().with_argv(["a".repeat(ARGV_MAX_BYTES)], false);
        assert!(!exact.argv_truncated);
        let kernel_cut = Actor::default().with_argv(["dpkg"], true);
        assert!(kernel_cut.argv_truncated);
    }

    #[test]
    fn fills_the_actor_from_procfs() {
        // This test process, as the kernel would report it.
        let me = std::process::id();
        let mut actor = Actor::new(me, 12345, "from-kernel");
        actor.fill_from_proc(&Procfs::default()).unwrap();
        assert_eq!(actor.uid, Some(12345), "kernel fields are kept");
        assert_eq!(actor.comm, "from-kernel");
        assert!(actor.exe.is_some());
        assert!(!actor.argv.is_empty());
        assert!(actor.ppid.is_some());
        assert!(!actor.ancestry.is_empty() && actor.ancestry.len() <= ANCESTRY_MAX);
        assert_eq!(Some(actor.ancestry[0].pid), actor.ppid);

        let mut gone = Actor::new(u32::MAX - 1, 0, "rm").with_ppid(me);
        assert!(matches!(
            gone.fill_from_proc(&Procfs::default()),
            Err(ProcError::Gone { .. })
        ));
        assert_eq!(
            gone.ancestry[0].pid, me,
            "ancestry is walked from a known ppid"
        );
    }
}
