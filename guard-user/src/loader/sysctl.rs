//! The sysctls the programs depend on (`kernel.ftrace_enabled`): a cgroup sysctl program
//! on the root of the cgroup v2 hierarchy refuses writes that change them (see
//! guard-ebpf's `sysctl.rs` for why that hook). It is not one of the layers: where it
//! cannot attach (no cgroup v2 mounted, a kernel without cgroup BPF), the layers still
//! enforce, and `rtguard status` says the sysctls are not protected and why.

use std::path::{Path, PathBuf};

use std::os::fd::{AsFd as _, OwnedFd};

use aya::{programs::CgroupSysctl, Ebpf};
use aya_obj::generated::bpf_attach_type;
use nix::sys::statfs::{statfs, CGROUP2_SUPER_MAGIC};
use tracing::{info, warn};

use super::attach::program_mut;

/// The program, named after what it guards.
pub const PROGRAM: &str = "sysctl_write";
/// Where the cgroup v2 hierarchy is mounted: systemd's unified layout, then its hybrid one.
const CGROUP2: &[&str] = &["/sys/fs/cgroup", "/sys/fs/cgroup/unified"];

/// Whether writes to the sysctls the programs depend on are refused.
#[derive(Debug)]
pub enum SysctlGuard {
    On {
        /// The cgroup v2 root the program is attached to.
        cgroup: PathBuf,
        /// Until [`super::Guard::pin_links`] pins it.
        link: Option<OwnedFd>,
    },
    Off {
        reason: String,
    },
}

impl std::fmt::Display for SysctlGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<String> = guard_common::sysctl::GUARD_SYSCTLS
            .iter()
            .map(|n| n.replace('/', "."))
            .collect();
        match self {
            SysctlGuard::On { cgroup, .. } => write!(
                f,
                "{} protected (cgroup sysctl program on {})",
                names.join(", "),
                cgroup.display()
            ),
            SysctlGuard::Off { reason } => {
                write!(f, "{} NOT protected: {reason}", names.join(", "))
            }
        }
    }
}

/// Loads the program, where there is a cgroup v2 root to attach it to: returns that
/// root, or why not.
pub(super) fn load(ebpf: &mut Ebpf) -> Result<PathBuf, String> {
    let cgroup = cgroup2_root()?;
    let program: &mut CgroupSysctl = program_mut(ebpf, PROGRAM).map_err(|e| e.to_string())?;
    program
        .load()
        .map_err(|e| format!("the kernel refused the cgroup sysctl program: {e}"))?;
    Ok(cgroup)
}

/// Attaches the program [`load`] loaded to the root cgroup, or says why not.
pub(super) fn attach(ebpf: &mut Ebpf, loaded: Result<PathBuf, String>) -> SysctlGuard {
    let guard = loaded.and_then(|cgroup| {
        let dir = std::fs::File::open(&cgroup)
            .map_err(|e| format!("opening {}: {e}", cgroup.display()))?;
        let program: &mut CgroupSysctl = program_mut(ebpf, PROGRAM).map_err(|e| e.to_string())?;
        // A BPF link attaches as one of several: no program attached below the root can
        // replace it.
        let prog = program.fd().map_err(|e| e.to_string())?;
        let link = super::modify_return::attach_cgroup(
            prog.as_fd(),
            dir.as_fd(),
            bpf_attach_type::BPF_CGROUP_SYSCTL,
        )
        .map_err(|e| format!("attaching to {}: {e}", cgroup.display()))?;
        Ok(SysctlGuard::On {
            cgroup,
            link: Some(link),
        })
    });
    match guard {
        Ok(on) => {
            info!("{on}");
            on
        }
        Err(reason) => {
            let off = SysctlGuard::Off { reason };
            warn!("{off}");
            off
        }
    }
}

/// The mounted root of the cgroup v2 hierarchy.
fn cgroup2_root() -> Result<PathBuf, String> {
    CGROUP2
        .iter()
        .map(Path::new)
        .find(|dir| statfs(*dir).is_ok_and(|fs| fs.filesystem_type() == CGROUP2_SUPER_MAGIC))
        .map(Path::to_owned)
        .ok_or_else(|| {
            format!(
                "no cgroup v2 hierarchy is mounted at {}",
                CGROUP2.join(" or ")
            )
        })
}
