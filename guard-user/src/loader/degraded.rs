//! Degraded mode: syscall tracepoints that observe destructive file syscalls where the
//! kernel refuses BPF LSM programs. They block nothing.
//!
//! `sendmsg` and `sendto` run the netfilter layer's walk: it needs the kernel's struct
//! offsets, the netfilter maps and the trusted callers, as the enforcing programs do.

use std::path::Path;

use aya::{
    maps::{MapData, RingBuf},
    programs::TracePoint,
    Ebpf, EbpfLoader,
};
use guard_common::{degraded::TracepointLayout, names, InodeKey, KernelOffsets};
use tracing::{info, warn};

use super::{
    kernel_btf, map_err, mounts, offsets_from,
    sync::{hash_mut, ring_taken},
    LoadError, Mechanism, NetfilterMaps, KERNEL_BTF,
};
use crate::tables::KernelTables;

/// The tracepoints, by program name (the `syscalls/` event of the same name).
const TRACEPOINTS: &[&str] = &[
    "sys_enter_unlinkat",
    "sys_enter_unlink",
    "sys_enter_rmdir",
    "sys_enter_renameat2",
    "sys_enter_renameat",
    "sys_enter_rename",
    "sys_enter_openat",
    "sys_enter_truncate",
    "sys_enter_execve",
];

/// The tracepoints that judge netfilter batches; attached only with the kernel's offsets.
const NETFILTER_TRACEPOINTS: &[&str] = &["sys_enter_sendmsg", "sys_enter_sendto"];

/// The loaded, attached tracepoints. Dropping it detaches them.
pub struct Observer {
    ebpf: Ebpf,
    attached: Vec<&'static str>,
    netfilter: NetfilterMaps,
    /// Why netfilter batches are not observed, if they are not.
    netfilter_off: Option<String>,
    /// Why the last write of the netfilter maps failed, if it did.
    netfilter_error: Option<String>,
}

impl Observer {
    /// Loads and attaches the tracepoints. `lap` ends each step as it completes, for the
    /// start-up report: "observer object" (the object's maps, and aya's own BTF parse),
    /// "observer verify" (every program through the verifier) and "observer attach".
    pub fn load(lap: &mut dyn FnMut(&'static str)) -> Result<Self, LoadError> {
        let tracefs = mounts::tracefs().map_err(|e| LoadError::EnforcementUnavailable {
            reason: e.to_string(),
        })?;
        let layout = TracepointLayout {
            args_offset: args_offset(&tracefs)?,
            _pad: 0,
        };
        let offsets = netfilter_offsets();
        let mut loader = EbpfLoader::new();
        loader
            // Task storage (the exec captures) has no typed aya map; it is created all
            // the same.
            .allow_unsupported_maps()
            .override_global(names::TRACEPOINT_LAYOUT, &layout, true);
        if let Ok(offsets) = &offsets {
            loader.override_global(names::OFFSETS, offsets, true);
        }
        let mut ebpf = loader.load(crate::EBPF_OBJECT)?;
        lap("observer object");
        let netfilter_off = offsets.err();
        let tracepoints = TRACEPOINTS.iter().chain(match netfilter_off {
            None => NETFILTER_TRACEPOINTS,
            Some(_) => &[],
        });
        let mut loaded = Vec::new();
        for &name in tracepoints {
            match tracepoint(&mut ebpf, name)?.load() {
                Ok(()) => loaded.push(name),
                Err(e) => warn!(tracepoint = name, "not observed: {e}"),
            }
        }
        lap("observer verify");
        let mut attached = Vec::new();
        for name in loaded {
            match tracepoint(&mut ebpf, name)?.attach("syscalls", name) {
                Ok(_) => attached.push(name),
                // Some architectures lack the legacy syscalls (unlink, rename).
                Err(e) => warn!(tracepoint = name, "not observed: {e}"),
            }
        }
        lap("observer attach");
        if attached.is_empty() {
            return Err(LoadError::EnforcementUnavailable {
                reason: "no syscall tracepoint could be attached either".to_owned(),
            });
        }
        info!(
            tracepoints = attached.len(),
            "degraded mode: observing syscalls (nothing is blocked)"
        );
        let netfilter_off = netfilter_off.or_else(|| {
            (!NETFILTER_TRACEPOINTS.iter().all(|t| attached.contains(t)))
                .then(|| "the sendmsg and sendto tracepoints did not attach".to_owned())
        });
        if let Some(why) = &netfilter_off {
            warn!("degraded mode does not observe netfilter batches: {why}");
        }
        Ok(Self {
            ebpf,
            attached,
            netfilter: NetfilterMaps::default(),
            netfilter_off,
            netfilter_error: None,
        })
    }

    /// Gives the netfilter walk what the policy says: the protected names with the live
    /// objects, and the callers trusted to change them (dockerd). Called again after
    /// nf_tables announces a change.
    pub fn sync_netfilter(&mut self, tables: &KernelTables) -> Result<(), LoadError> {
        if self.netfilter_off.is_some() {
            return Ok(());
        }
        let result = self.write_netfilter(tables);
        self.netfilter_error = result.as_ref().err().map(|e| e.to_string());
        result
    }

    fn write_netfilter(&mut self, tables: &KernelTables) -> Result<(), LoadError> {
        let mut trusted = hash_mut::<InodeKey, u32>(&mut self.ebpf, names::TRUSTED_CALLERS)?;
        for (key, classes) in &tables.exec.trusted_callers {
            trusted
                .insert(key, classes, 0)
                .map_err(map_err(names::TRUSTED_CALLERS))?;
        }
        self.netfilter.sync(&mut self.ebpf, tables.netfilter)
    }

    /// What `rtguard status` says of the netfilter layer in degraded mode.
    pub fn netfilter_status(&self) -> String {
        match (&self.netfilter_off, &self.netfilter_error) {
            (Some(why), _) => format!("not observed: {why}"),
            (None, Some(e)) => format!("not observed: the netfilter maps: {e}"),
            (None, None) => self.netfilter.status(true),
        }
    }

    /// The netfilter walk's reports, in the enforcing programs' record format.
    pub fn take_decisions(&mut self) -> Result<RingBuf<MapData>, LoadError> {
        ring_taken(&mut self.ebpf, names::EVENTS)
    }

    pub fn attached(&self) -> &[&'static str] {
        &self.attached
    }

    pub fn take_events(&mut self) -> Result<RingBuf<MapData>, LoadError> {
        ring_taken(&mut self.ebpf, names::SYSCALL_EVENTS)
    }
}

/// The object's tracepoint program `name`.
fn tracepoint<'a>(ebpf: &'a mut Ebpf, name: &'static str) -> Result<&'a mut TracePoint, LoadError> {
    ebpf.program_mut(name)
        .ok_or(LoadError::MissingMap(name))?
        .try_into()
        .map_err(|source| LoadError::Program { hook: name, source })
}

/// The kernel's struct offsets, for the netfilter walk; why not, if they can't be had.
/// The hook arities in them are the BPF LSM's where the kernel has it, and fmod_ret's
/// otherwise: no hook program runs here, but the block is only valid complete.
fn netfilter_offsets() -> Result<KernelOffsets, String> {
    let btf = kernel_btf::kernel_types().map_err(|e| format!("{KERNEL_BTF}: {e}"))?;
    offsets_from(&btf, Mechanism::BpfLsm)
        .or_else(|_| offsets_from(&btf, Mechanism::ModifyReturn))
        .map_err(|e| format!("kernel struct offsets: {e}"))
}

/// Offset of the first argument in a sys_enter record, from the running kernel's format
/// description of `sys_enter_unlinkat` (its first argument is `dfd`).
fn args_offset(tracefs: &Path) -> Result<u32, LoadError> {
    let format = tracefs.join("events/syscalls/sys_enter_unlinkat/format");
    let text = std::fs::read_to_string(&format).map_err(|e| LoadError::EnforcementUnavailable {
        reason: format!("cannot read {}: {e}", format.display()),
    })?;
    parse_field_offset(&text, "dfd").ok_or_else(|| LoadError::EnforcementUnavailable {
        reason: format!("{} has no dfd field", format.display()),
    })
}

/// `field:int dfd; offset:16; size:8; signed:0;` → 16.
fn parse_field_offset(format: &str, field: &str) -> Option<u32> {
    format.lines().find_map(|line| {
        let line = line.trim();
        let decl = line.strip_prefix("field:")?.split(';').next()?;
        if decl.split_whitespace().last()?.trim_start_matches('*') != field {
            return None;
        }
        line.split(';')
            .find_map(|part| part.trim().strip_prefix("offset:"))?
            .parse()
            .ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_argument_offsets_from_a_format_file() {
        let format = "name: sys_enter_unlinkat\nformat:\n\
            \tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;\n\
            \tfield:int __syscall_nr;\toffset:8;\tsize:4;\tsigned:1;\n\
            \tfield:int dfd;\toffset:16;\tsize:8;\tsigned:0;\n\
            \tfield:const char * pathname;\toffset:24;\tsize:8;\tsigned:0;\n";
        assert_eq!(parse_field_offset(format, "dfd"), Some(16));
        assert_eq!(parse_field_offset(format, "pathname"), Some(24));
        assert_eq!(parse_field_offset(format, "flag"), None);
    }
}
