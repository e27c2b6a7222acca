//! Best-effort process details from procfs, for the actor part of audit records.
//!
//! The kernel event carries what the hook saw (pid, uid, comm); everything else about the
//! actor (parent chain, executable, command line, cgroup) is looked up here after the fact.
//! By then the process may have exited, in which case the lookups fail with
//! [`ProcError::Gone`] and the record keeps what the kernel gave. The pids are those of the
//! initial pid namespace (what `bpf_get_current_pid_tgid` returns), so the procfs read must
//! be the host's: the daemon must not run in a private pid namespace.

use std::{
    fs::File,
    io::{self, Read as _},
    path::{Path, PathBuf},
};

use crate::host::paths::PROC_ROOT;

#[derive(Debug, thiserror::Error)]
pub enum ProcError {
    #[error("process {pid} is gone")]
    Gone { pid: u32 },
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot parse {path}: {what}")]
    Malformed { path: PathBuf, what: &'static str },
}

/// The fields of `/proc/<pid>/stat` an audit record uses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProcStat {
    pub pid: u32,
    /// `task->comm`: at most 15 bytes, set from the executable's basename at exec and
    /// writable by the process itself (`prctl(PR_SET_NAME)`), so it is a hint, not proof.
    pub comm: String,
    pub ppid: u32,
    /// Start time in clock ticks after boot; with the pid, it tells a reused pid apart.
    pub start_time: u64,
}

/// A command line read from `/proc/<pid>/cmdline`, bounded in size.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Cmdline {
    pub args: Vec<String>,
    /// The process's command line was longer than the bound and was cut.
    pub truncated: bool,
}

/// One process as procfs shows it now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProcessInfo {
    pub stat: ProcStat,
    /// Real uid, the one `bpf_get_current_uid_gid` reports.
    pub uid: Option<u32>,
    /// Target of `/proc/<pid>/exe`. A binary replaced or removed since it started shows
    /// as `… (deleted)`, which is worth keeping in an audit record.
    pub exe: Option<String>,
    pub cmdline: Cmdline,
    /// The cgroup v2 path (`0::/system.slice/containerd.service` → `/system.slice/…`), or
    /// the first v1 hierarchy's path where there is no v2 entry.
    pub cgroup: Option<String>,
}

/// A process table to read: `/proc` on a host, a fixture directory in tests.
#[derive(Clone, Debug)]
pub struct Procfs {
    root: PathBuf,
}

impl Default for Procfs {
    fn default() -> Self {
        Self::new(PROC_ROOT)
    }
}

impl Procfs {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn file(&self, pid: u32, name: &str) -> PathBuf {
        self.root.join(pid.to_string()).join(name)
    }

    fn read(&self, pid: u32, name: &str, limit: usize) -> Result<Vec<u8>, ProcError> {
        let path = self.file(pid, name);
        let read = File::open(&path).and_then(|f| {
            let mut buf = Vec::new();
            f.take(limit as u64).read_to_end(&mut buf)?;
            Ok(buf)
        });
        // ESRCH: the process exited between open and read.
        read.map_err(|source| match source.raw_os_error() {
            Some(libc::ENOENT) | Some(libc::ESRCH) => ProcError::Gone { pid },
            _ => ProcError::Read { path, source },
        })
    }

    /// Parses `/proc/<pid>/stat`.
    pub fn stat(&self, pid: u32) -> Result<ProcStat, ProcError> {
        let raw = self.read(pid, "stat", 4096)?;
        let text = String::from_utf8_lossy(&raw);
        parse_stat(&text).ok_or_else(|| ProcError::Malformed {
            path: self.file(pid, "stat"),
            what: "expected `pid (comm) state ppid …`",
        })
    }

    /// The real uid from `/proc/<pid>/status`.
    pub fn uid(&self, pid: u32) -> Result<u32, ProcError> {
        let raw = self.read(pid, "status", 16 * 1024)?;
        String::from_utf8_lossy(&raw)
            .lines()
            .find_map(|l| l.strip_prefix("Uid:"))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|real| real.parse().ok())
            .ok_or_else(|| ProcError::Malformed {
                path: self.file(pid, "status"),
                what: "no Uid: line",
            })
    }

    /// Where `/proc/<pid>/exe` points. Kernel threads and zombies have none.
    pub fn exe(&self, pid: u32) -> Result<String, ProcError> {
        let path = self.file(pid, "exe");
        match std::fs::read_link(&path) {
            Ok(target) => Ok(target.to_string_lossy().into_owned()),
            Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT) | Some(libc::ESRCH)) => {
                Err(ProcError::Gone { pid })
            }
            Err(source) => Err(ProcError::Read { path, source }),
        }
    }

    /// The command line, cut after `max_bytes` bytes. Empty for kernel threads and zombies.
    pub fn cmdline(&self, pid: u32, max_bytes: usize) -> Result<Cmdline, ProcError> {
        let raw = self.read(pid, "cmdline", max_bytes + 1)?;
        Ok(split_cmdline(&raw, max_bytes))
    }

    /// The cgroup path from `/proc/<pid>/cgroup`.
    pub fn cgroup(&self, pid: u32) -> Result<String, ProcError> {
        let raw = self.read(pid, "cgroup", 16 * 1024)?;
        parse_cgroup(&String::from_utf8_lossy(&raw)).ok_or_else(|| ProcError::Malformed {
            path: self.file(pid, "cgroup"),
            what: "no cgroup entry",
        })
    }

    /// Everything procfs still knows about `pid`. Fails only if the process is gone (or
    /// its stat is unreadable); the other fields are `None` or empty when unreadable.
    pub fn process(&self, pid: u32, max_cmdline_bytes: usize) -> Result<ProcessInfo, ProcError> {
        let stat = self.stat(pid)?;
        Ok(ProcessInfo {
            uid: self.uid(pid).ok(),
            exe: self.exe(pid).ok(),
            cmdline: self.cmdline(pid, max_cmdline_bytes).unwrap_or_default(),
            cgroup: self.cgroup(pid).ok(),
            stat,
        })
    }

    /// The parent chain above `ppid`, nearest first: `ppid` itself, its parent, and so on,
    /// at most `max` entries. Stops early at pid 0 (above init and kthreadd) or at a process
    /// that is gone.
    pub fn ancestry(&self, ppid: u32, max: usize) -> Vec<(ProcStat, Option<String>)> {
        let mut chain = Vec::new();
        let mut pid = ppid;
        while pid != 0 && chain.len() < max {
            let Ok(stat) = self.stat(pid) else { break };
            let next = stat.ppid;
            chain.push((stat, self.exe(pid).ok()));
            pid = next;
        }
        chain
    }
}

/// `pid (comm) state ppid pgrp session tty_nr tpgid flags minflt cminflt majflt cmajflt
/// utime stime cutime cstime priority nice num_threads itrealvalue starttime …`.
/// comm may itself contain spaces and parentheses, so it ends at the *last* `)`.
fn parse_stat(text: &str) -> Option<ProcStat> {
    let open = text.find('(')?;
    let close = text.rfind(')')?;
    let pid = text[..open].trim().parse().ok()?;
    let comm = text.get(open + 1..close)?.to_owned();
    let rest: Vec<&str> = text[close + 1..].split_whitespace().collect();
    // rest[0] is the state, rest[1] the ppid, rest[19] the start time (field 22).
    let ppid = rest.get(1)?.parse().ok()?;
    let start_time = rest.get(19).and_then(|s| s.parse().ok()).unwrap_or(0);
    Some(ProcStat {
        pid,
        comm,
        ppid,
        start_time,
    })
}

fn split_cmdline(raw: &[u8], max_bytes: usize) -> Cmdline {
    let truncated = raw.len() > max_bytes;
    let raw = &raw[..raw.len().min(max_bytes)];
    // Arguments end in NUL; a process that rewrote its argv area (setproctitle) may have
    // replaced them with spaces, and then there is one argument, which is what ps shows too.
    let raw = raw.strip_suffix(b"\0").unwrap_or(raw);
    let args = if raw.is_empty() {
        Vec::new()
    } else {
        raw.split(|&b| b == 0)
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect()
    };
    Cmdline { args, truncated }
}

fn parse_cgroup(text: &str) -> Option<String> {
    let mut first_v1 = None;
    for line in text.lines() {
        let mut parts = line.splitn(3, ':');
        let (Some(id), Some(_controllers), Some(path)) = (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        if id == "0" {
            return Some(path.to_owned());
        }
        first_v1.get_or_insert_with(|| path.to_owned());
    }
    first_v1
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fake procfs: 300 (rm) ← 200 (bash) ← 1 (systemd).
    fn fixture() -> (tempfile::TempDir, Procfs) {
        let dir = tempfile::tempdir().unwrap();
        let add = |pid: u32, comm: &str, ppid: u32, exe: Option<&str>, cmdline: &[u8]| {
            let p = dir.path().join(pid.to_string());
            std::fs::create_dir(&p).unwrap();
            std::fs::write(
                p.join("stat"),
                format!("{pid} ({comm}) S {ppid} 1 1 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 4242 1000 10 18446744073709551615"),
            )
            .unwrap();
            std::fs::write(
                p.join("status"),
                "Name:\tx\nUid:\t1000\t0\t0\t0\nGid:\t0\t0\t0\t0\n",
            )
            .unwrap();
            if let Some(exe) = exe {
                std::os::unix::fs::symlink(exe, p.join("exe")).unwrap();
            }
            std::fs::write(p.join("cmdline"), cmdline).unwrap();
            std::fs::write(p.join("cgroup"), "0::/system.slice/ssh.service\n").unwrap();
        };
        add(
            1,
            "systemd",
            0,
            Some("/usr/lib/systemd/systemd"),
            b"/sbin/init\0",
        );
        add(200, "bash", 1, Some("/usr/bin/bash"), b"-bash\0");
        add(
            300,
            "rm (x) y",
            200,
            Some("/usr/bin/rm"),
            b"rm\0-rf\0/usr/bin/containerd\0",
        );
        let procfs = Procfs::new(dir.path());
        (dir, procfs)
    }

    #[test]
    fn reads_a_process_with_an_awkward_comm() {
        let (_dir, procfs) = fixture();
        let p = procfs.process(300, 4096).unwrap();
        assert_eq!(p.stat.comm, "rm (x) y");
        assert_eq!(
            (p.stat.pid, p.stat.ppid, p.stat.start_time),
            (300, 200, 4242)
        );
        assert_eq!(p.uid, Some(1000));
        assert_eq!(p.exe.as_deref(), Some("/usr/bin/rm"));
        assert_eq!(p.cmdline.args, ["rm", "-rf", "/usr/bin/containerd"]);
        assert!(!p.cmdline.truncated);
        assert_eq!(p.cgroup.as_deref(), Some("/system.slice/ssh.service"));
    }

    #[test]
    fn walks_the_parent_chain_up_to_init() {
        let (_dir, procfs) = fixture();
        let chain = procfs.ancestry(200, 8);
        let got: Vec<_> = chain
            .iter()
            .map(|(s, exe)| (s.pid, s.comm.as_str(), exe.as_deref()))
            .collect();
        assert_eq!(
            got,
            [
                (200, "bash", Some("/usr/bin/bash")),
                (1, "systemd", Some("/usr/lib/systemd/systemd"))
            ]
        );
        assert_eq!(procfs.ancestry(200, 1).len(), 1);
        assert!(procfs.ancestry(0, 8).is_empty());
    }

    #[test]
    fn a_gone_process_says_so() {
        let (_dir, procfs) = fixture();
        assert!(matches!(
            procfs.process(999, 4096),
            Err(ProcError::Gone { pid: 999 })
        ));
        // A chain that reaches a vanished parent stops there.
        assert!(procfs.ancestry(999, 8).is_empty());
    }

    #[test]
    fn cuts_long_command_lines() {
        let c = split_cmdline(b"apt-get\0remove\0containerd.io\0", 16);
        assert_eq!(c.args, ["apt-get", "remove", "c"]);
        assert!(c.truncated);
        let c = split_cmdline(b"", 15);
        assert!(c.args.is_empty() && !c.truncated);
        let c = split_cmdline(b"nginx: worker process", 4096);
        assert_eq!(c.args, ["nginx: worker process"]);
    }

    #[test]
    fn prefers_the_unified_cgroup() {
        let v1_and_v2 =
            "12:pids:/user.slice\n1:name=systemd:/user.slice/x\n0::/system.slice/docker.service\n";
        assert_eq!(
            parse_cgroup(v1_and_v2).as_deref(),
            Some("/system.slice/docker.service")
        );
        assert_eq!(
            parse_cgroup("4:memory:/docker/abc\n").as_deref(),
            Some("/docker/abc")
        );
        assert_eq!(parse_cgroup(""), None);
    }

    #[test]
    fn reads_this_very_process() {
        let me = std::process::id();
        let p = Procfs::default().process(me, 4096).unwrap();
        assert_eq!(p.stat.pid, me);
        assert!(p.exe.is_some());
        assert!(!p.cmdline.args.is_empty());
        assert_eq!(p.uid, Some(nix::unistd::getuid().as_raw()));
    }
}
