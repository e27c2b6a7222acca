//! The hooks' own cost: programs that decide nothing (guard-ebpf's `hook-floor` object) on
//! every hook the enforcing guard attaches to with BPF LSM, and on its rename watcher.
//!
//! A run with them measures what any program on these hooks pays, however little it
//! does: the LSM dispatch and the BPF trampoline around each run. rtguard's overhead above
//! this floor is what its own programs add. (rtguard's cgroup sysctl program is not
//! mirrored: no workload writes a sysctl.)

use anyhow::{Context as _, Result};
use aya::{
    programs::{FExit, Lsm},
    Btf, Ebpf,
};
use guard_user::loader::{self, FileHooks};

static HOOK_FLOOR: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/hook-floor"));

/// The attached programs; dropping it detaches them.
pub struct HookFloor {
    _ebpf: Ebpf,
}

impl HookFloor {
    /// Loads and attaches a program on each hook the guard attaches to with the path
    /// hooks on this kernel, and returns those hooks. The kernel's BTF is parsed for each
    /// attach and dropped after it, so that the runner holds none of it while it measures.
    pub fn attach() -> Result<(Self, Vec<&'static str>)> {
        let btf = Btf::from_sys_fs().context("reading the kernel's BTF")?;
        let mut ebpf = Ebpf::load(HOOK_FLOOR).context("loading the hook-floor object")?;
        let mut attached = Vec::new();
        for hook in loader::lsm_hooks(FileHooks::Path) {
            let program: &mut Lsm = ebpf
                .program_mut(hook)
                .with_context(|| format!("the hook-floor object has no program {hook}"))?
                .try_into()?;
            match program.load(hook, &btf) {
                Ok(()) => {}
                // The guard leaves these out where the kernel lacks them; their loads fail
                // here for want of a `bpf_lsm_` function to attach to.
                Err(_) if loader::OPTIONAL_HOOKS.contains(&hook) => continue,
                Err(e) => return Err(e).with_context(|| format!("loading the empty {hook}")),
            }
            program
                .attach()
                .with_context(|| format!("attaching the empty {hook} program"))?;
            attached.push(hook);
        }
        let (name, function) = loader::RENAME_WATCH;
        let watch: &mut FExit = ebpf
            .program_mut(name)
            .with_context(|| format!("the hook-floor object has no program {name}"))?
            .try_into()?;
        watch.load(function, &btf)?;
        watch.attach()?;
        attached.push(name);
        Ok((Self { _ebpf: ebpf }, attached))
    }
}
