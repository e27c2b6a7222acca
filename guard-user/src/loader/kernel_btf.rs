//! The running kernel's BTF, read once per start into each form the loader needs, then
//! shared by every step (and by both attempts when BPF LSM is refused and fmod_ret is
//! tried).
//!
//! Two forms, because neither library answers everything: aya's [`aya::Btf`] is what
//! aya's program loads take, and it keeps its type lookups private, so the struct
//! offsets and hook arities come from btf-rs. vmlinux's BTF is several MiB. aya parses
//! all of it; btf-rs maps it instead and reads only the types the offsets name, found in
//! one pass ([`IndexedBtf`]), which costs a fraction of a parse.

use std::path::Path;

use aya::{Btf, Endianness};

use super::{
    offsets::{mapped, read_error, IndexedBtf},
    LoadError, OffsetError, KERNEL_BTF,
};

/// The kernel's BTF in both forms.
pub struct KernelBtf {
    /// btf-rs's form: struct members and function prototypes, for the offsets.
    pub types: IndexedBtf,
    /// aya's form: the BTF ids program loads and attaches resolve.
    pub aya: Btf,
}

impl KernelBtf {
    /// Reads [`KERNEL_BTF`] once into both forms.
    pub fn read() -> Result<Self, LoadError> {
        let path = Path::new(KERNEL_BTF);
        let bytes = std::fs::read(path).map_err(|e| read_error(path, e.into()))?;
        let types = IndexedBtf::kernel(mapped(path, Some(&bytes))?)?;
        let aya = Btf::parse(&bytes, Endianness::default())?;
        Ok(Self { types, aya })
    }
}

/// btf-rs's form of the kernel's BTF alone, for what loads no program: degraded mode and
/// `rtguard probe`.
pub fn kernel_types() -> Result<IndexedBtf, OffsetError> {
    IndexedBtf::kernel(mapped(Path::new(KERNEL_BTF), None)?)
}
