//! Degraded mode: syscall tracepoints that observe destructive file syscalls where the
//! kernel refuses BPF LSM programs. They block nothing.

use std::path::Path;

use aya::{
    maps::{MapData, RingBuf},
    programs::TracePoint,
    Ebpf, EbpfLoader,
};
use guard_common::{degraded::TracepointLayout, names};
use tracing::{info, warn};

use super::{map_err, mounts, LoadError};

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

/// The loaded, attached tracepoints. Dropping it detaches them.
pub struct Observer {
    ebpf: Ebpf,
    attached: Vec<&'static str>,
}

impl Observer {
    pub fn load() -> Result<Self, LoadError> {
        let tracefs = mounts::tracefs().map_err(|e| LoadError::EnforcementUnavailable {
            reason: e.to_string(),
        })?;
        let layout = TracepointLayout {
            args_offset: args_offset(&tracefs)?,
            _pad: 0,
        };
        let mut ebpf = EbpfLoader::new()
            // Task storage (the exec captures) has no typed aya map; it is created all
            // the same.
            .allow_unsupported_maps()
            .override_global(names::TRACEPOINT_LAYOUT, &layout, true)
            .load(crate::EBPF_OBJECT)?;
        let mut attached = Vec::new();
        for &name in TRACEPOINTS {
            let program: &mut TracePoint = ebpf
                .program_mut(name)
                .ok_or(LoadError::MissingMap(name))?
                .try_into()
                .map_err(|source| LoadError::Program { hook: name, source })?;
            let result = program
                .load()
                .and_then(|()| program.attach("syscalls", name));
            match result {
                Ok(_) => attached.push(name),
                // Some architectures lack the legacy syscalls (unlink, rename).
                Err(e) => warn!(tracepoint = name, "not observed: {e}"),
            }
        }
        if attached.is_empty() {
            return Err(LoadError::EnforcementUnavailable {
                reason: "no syscall tracepoint could be attached either".to_owned(),
            });
        }
        info!(
            tracepoints = attached.len(),
            "degraded mode: observing syscalls (nothing is blocked)"
        );
        Ok(Self { ebpf, attached })
    }

    pub fn attached(&self) -> &[&'static str] {
        &self.attached
    }

    pub fn take_events(&mut self) -> Result<RingBuf<MapData>, LoadError> {
        let map = self
            .ebpf
            .take_map(names::SYSCALL_EVENTS)
            .ok_or(LoadError::MissingMap(names::SYSCALL_EVENTS))?;
        RingBuf::try_from(map).map_err(map_err(names::SYSCALL_EVENTS))
    }
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
