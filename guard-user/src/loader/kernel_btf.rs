//! The running kernel's BTF, read once per start into each form the loader needs, then
//! shared by every step (and by both attempts when BPF LSM is refused and fmod_ret is
//! tried).
//!
//! vmlinux's BTF is several MiB. btf-rs maps it and reads only the types the offsets and
//! hooks name, found in one pass ([`IndexedBtf`]). aya's program loads take an
//! [`aya::Btf`], and all they look up in it is the id of the function a program attaches
//! to, by a pass over every type. So aya gets a BTF built from the index instead of a
//! parse of vmlinux: each function a program can attach to, under its id in the kernel's
//! BTF, and an empty slot for every other id. Building it costs a fraction of a parse, and
//! each look-up in it skips the empty slots without reading a name.

use std::path::Path;

use aya::Btf;
use aya_obj::btf::{BtfType, Func, FuncLinkage};

use super::{
    offsets::{mapped, IndexedBtf},
    LoadError, OffsetError, KERNEL_BTF,
};

/// The kernel's BTF in both forms.
pub struct KernelBtf {
    /// btf-rs's form: struct members and function prototypes, for the offsets.
    pub types: IndexedBtf,
    /// aya's form, for program loads: the functions programs attach to, under their ids.
    pub aya: Btf,
}

impl KernelBtf {
    /// Reads [`KERNEL_BTF`] once into both forms.
    pub fn read() -> Result<Self, LoadError> {
        let types = kernel_types()?;
        let aya = attach_targets(&types);
        Ok(Self { types, aya })
    }
}

/// btf-rs's form of the kernel's BTF alone, for what loads no program: degraded mode and
/// `rtguard probe`.
pub fn kernel_types() -> Result<IndexedBtf, OffsetError> {
    IndexedBtf::kernel(mapped(Path::new(KERNEL_BTF), None)?)
}

/// An aya BTF that gives the same id as the kernel's for every function `types` indexed,
/// and knows nothing else.
///
/// The ids are what the kernel checks a program's attach target by, so they must be the
/// kernel's: types are numbered by their place in the BTF, and every id in between is an
/// unnamed placeholder.
fn attach_targets(types: &IndexedBtf) -> Btf {
    let mut functions: Vec<(u32, &str)> = types.functions().collect();
    functions.sort_unstable();
    let mut btf = Btf::new();
    // Id 0 is `void`, in place from the start.
    let mut next_id = 1;
    for (id, name) in functions {
        for _ in next_id..id {
            btf.add_type(BtfType::Unknown);
        }
        let name_offset = btf.add_string(name);
        let func = Func::new(name_offset, 0, FuncLinkage::Global);
        let added = btf.add_type(BtfType::Func(func));
        debug_assert_eq!(added, id, "{name} took another id than the kernel's");
        next_id = id + 1;
    }
    btf
}

#[cfg(test)]
mod tests {
    use aya_obj::btf::BtfKind;

    use super::*;
    use crate::loader::{lsm_hooks, FileHooks, Mechanism, RENAME_WATCH};

    /// Every function a program can attach to has the id a parse of the whole BTF gives
    /// it, with either mechanism and either set of file hooks.
    #[test]
    fn attach_targets_carry_the_kernels_ids() {
        let Ok(full) = Btf::from_sys_fs() else {
            eprintln!("skipping: {KERNEL_BTF} cannot be parsed on this kernel");
            return;
        };
        let targets = attach_targets(&kernel_types().unwrap());
        let mut functions = vec![RENAME_WATCH.1.to_owned()];
        for mechanism in [Mechanism::BpfLsm, Mechanism::ModifyReturn] {
            for file_hooks in [FileHooks::Path, FileHooks::Inode] {
                functions.extend(lsm_hooks(file_hooks).map(|h| mechanism.attach_function(h)));
            }
        }
        functions.sort();
        functions.dedup();
        let mut found = 0;
        for function in &functions {
            let want = full.id_by_type_name_kind(function, BtfKind::Func).ok();
            let got = targets.id_by_type_name_kind(function, BtfKind::Func).ok();
            assert_eq!(got, want, "{function}");
            found += usize::from(want.is_some());
        }
        // The host kernel has most hooks; a check that found none would prove nothing.
        assert!(found > functions.len() / 2, "{found} of {functions:?}");
    }
}
