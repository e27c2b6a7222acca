//! Loader: resolves kernel offsets, loads the embedded programs, attaches them, and owns
//! the maps userspace writes protected objects into.

pub mod offsets;

use std::{io, path::Path};

use aya::{
    maps::{HashMap, MapData, PerCpuArray, RingBuf},
    programs::{Lsm, ProgramError},
    Btf, Ebpf, EbpfLoader,
};
use guard_common::{names, GuardConfig, InodeKey};
use tracing::{debug, info};

use crate::resolve::ProtectedObject;

pub use offsets::{resolve_offsets, OffsetError, KERNEL_BTF};

/// Where the active LSMs are listed.
const ACTIVE_LSMS: &str = "/sys/kernel/security/lsm";

/// The kernel's internal ENOTSUPP (524), which leaks to userspace from BPF attach paths
/// and has no libc name.
const KERNEL_ENOTSUPP: i32 = 524;

/// The LSM hooks rtguard attaches, each by the program of the same name in guard-ebpf.
const FILE_LAYER_HOOKS: &[&str] = &["path_unlink"];

/// Whether matching operations are denied or only reported.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Enforce,
    Audit,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Enforce => "enforce",
            Mode::Audit => "audit",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The kernel will not run BPF LSM programs; nothing can be enforced on this host.
    #[error("enforcement unavailable: {reason}; rtguard cannot block anything on this host")]
    LsmUnavailable { reason: String },
    #[error(transparent)]
    Offsets(#[from] OffsetError),
    #[error("cannot parse kernel BTF for program load: {0}")]
    Btf(#[from] aya::BtfError),
    #[error("cannot load the kernel programs: {0}")]
    Object(#[from] aya::EbpfError),
    #[error("program {hook}: {source}")]
    Program {
        hook: &'static str,
        #[source]
        source: ProgramError,
    },
    #[error("map {0} is missing from the kernel object")]
    MissingMap(&'static str),
    #[error("map {map}: {source}")]
    Map {
        map: &'static str,
        #[source]
        source: aya::maps::MapError,
    },
}

/// The loaded, attached programs and their maps. Dropping it detaches everything.
pub struct Guard {
    ebpf: Ebpf,
    mode: Mode,
    attached: Vec<&'static str>,
}

impl Guard {
    /// Loads and attaches the file layer on the running kernel.
    pub fn load(mode: Mode) -> Result<Self, LoadError> {
        let offsets = resolve_offsets(Path::new(KERNEL_BTF))?;
        debug!(?offsets, "resolved kernel struct offsets from BTF");
        let config = GuardConfig {
            enforce: u32::from(mode == Mode::Enforce),
            _pad: 0,
        };
        let mut ebpf = EbpfLoader::new()
            .override_global(names::OFFSETS, &offsets, true)
            .override_global(names::GUARD_CONFIG, &config, true)
            .load(crate::EBPF_OBJECT)?;
        let btf = Btf::from_sys_fs()?;
        let mut attached = Vec::new();
        for &hook in FILE_LAYER_HOOKS {
            let program: &mut Lsm = ebpf
                .program_mut(hook)
                .ok_or(LoadError::Program {
                    hook,
                    source: ProgramError::NotLoaded,
                })?
                .try_into()
                .map_err(|source| LoadError::Program { hook, source })?;
            program
                .load(hook, &btf)
                .map_err(|source| classify_load_error(hook, source))?;
            program
                .attach()
                .map_err(|source| LoadError::Program { hook, source })?;
            info!(hook, "attached LSM program");
            attached.push(hook);
        }
        Ok(Self {
            ebpf,
            mode,
            attached,
        })
    }

    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// LSM hooks with an attached program.
    pub fn attached(&self) -> &[&'static str] {
        &self.attached
    }

    /// Adds an object to the protected-inode map under `rule_id`.
    pub fn protect(&mut self, object: &ProtectedObject, rule_id: u32) -> Result<(), LoadError> {
        let mut map: HashMap<&mut MapData, InodeKey, u32> =
            self.map_mut(names::PROTECTED_INODES)?;
        map.insert(object.key, rule_id, 0)
            .map_err(|source| LoadError::Map {
                map: names::PROTECTED_INODES,
                source,
            })
    }

    /// Takes the event ring buffer; the caller owns reading it.
    pub fn take_events(&mut self) -> Result<RingBuf<MapData>, LoadError> {
        let map = self
            .ebpf
            .take_map(names::EVENTS)
            .ok_or(LoadError::MissingMap(names::EVENTS))?;
        RingBuf::try_from(map).map_err(|source| LoadError::Map {
            map: names::EVENTS,
            source,
        })
    }

    /// Events the kernel could not queue because the ring buffer was full, summed over CPUs.
    pub fn dropped_events(&self) -> Result<u64, LoadError> {
        let map = self
            .ebpf
            .map(names::DROPPED_EVENTS)
            .ok_or(LoadError::MissingMap(names::DROPPED_EVENTS))?;
        let counters: PerCpuArray<&MapData, u64> =
            PerCpuArray::try_from(map).map_err(|source| LoadError::Map {
                map: names::DROPPED_EVENTS,
                source,
            })?;
        let per_cpu = counters.get(&0, 0).map_err(|source| LoadError::Map {
            map: names::DROPPED_EVENTS,
            source,
        })?;
        Ok(per_cpu.iter().sum())
    }

    fn map_mut<K: aya::Pod, V: aya::Pod>(
        &mut self,
        name: &'static str,
    ) -> Result<HashMap<&mut MapData, K, V>, LoadError> {
        let map = self.ebpf.map_mut(name).ok_or(LoadError::MissingMap(name))?;
        HashMap::try_from(map).map_err(|source| LoadError::Map { map: name, source })
    }
}

/// Turns a refused program load into the reason an operator can act on.
fn classify_load_error(hook: &'static str, source: ProgramError) -> LoadError {
    let refused = match &source {
        ProgramError::LoadError { io_error, .. } => Some(io_error.raw_os_error()),
        ProgramError::SyscallError(e) => Some(e.io_error.raw_os_error()),
        _ => None,
    };
    match (refused, active_lsms()) {
        (_, Ok(lsms)) if !lsms.iter().any(|l| l == "bpf") => LoadError::LsmUnavailable {
            reason: format!(
                "BPF LSM is not active (active LSMs: {}); boot with lsm=...,bpf",
                lsms.join(",")
            ),
        },
        (Some(Some(libc::EPERM)), _) => LoadError::LsmUnavailable {
            reason: "the kernel refused BPF LSM programs (EPERM)".to_owned(),
        },
        (Some(Some(libc::EINVAL | KERNEL_ENOTSUPP | libc::EOPNOTSUPP)), _) => {
            LoadError::LsmUnavailable {
                reason: format!(
                    "the kernel does not support BPF LSM programs on {hook} ({})",
                    io::Error::from_raw_os_error(refused.flatten().unwrap_or(0))
                ),
            }
        }
        _ => LoadError::Program { hook, source },
    }
}

/// The kernel's active LSMs, in order (needs securityfs mounted).
pub fn active_lsms() -> io::Result<Vec<String>> {
    Ok(parse_lsm_list(&std::fs::read_to_string(ACTIVE_LSMS)?))
}

fn parse_lsm_list(list: &str) -> Vec<String> {
    list.trim()
        .split(',')
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lsm_list_is_split_into_whole_names() {
        assert_eq!(
            parse_lsm_list("lockdown,capability,bpf\n"),
            ["lockdown", "capability", "bpf"]
        );
        assert!(!parse_lsm_list("capability,bpffs").contains(&"bpf".to_owned()));
        assert!(parse_lsm_list("").is_empty());
    }
}
