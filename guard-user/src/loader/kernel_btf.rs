//! The running kernel's BTF, read once per start and parsed once into each form the loader
//! needs, then shared by every step (and by both attempts when BPF LSM is refused and
//! fmod_ret is tried).
//!
//! Two forms, because neither parser answers everything: aya's [`aya::Btf`] is what aya's
//! program loads take, and it keeps its type lookups private, so the struct offsets and
//! hook arities come from btf-rs. vmlinux's BTF is several MiB, and parsing it is the
//! largest part of start-up after verification; the two parses run on two threads.

use aya::{Btf, Endianness};

use super::{LoadError, OffsetError, KERNEL_BTF};

/// The kernel's BTF in both parsed forms.
pub struct KernelBtf {
    /// btf-rs's form: struct members and function prototypes, for the offsets.
    pub types: btf_rs::Btf,
    /// aya's form: the BTF ids program loads and attaches resolve.
    pub aya: Btf,
}

impl KernelBtf {
    /// Reads [`KERNEL_BTF`] once and parses it into both forms, side by side.
    pub fn read() -> Result<Self, LoadError> {
        let read_error = |source| OffsetError::Read {
            path: KERNEL_BTF.into(),
            source,
        };
        let bytes = std::fs::read(KERNEL_BTF).map_err(|e| read_error(btf_rs::Error::from(e)))?;
        std::thread::scope(|scope| {
            let aya = scope.spawn(|| Btf::parse(&bytes, Endianness::default()));
            let types = btf_rs::Btf::from_bytes(&bytes).map_err(read_error)?;
            let aya = aya.join().expect("the BTF-parsing thread panicked")?;
            Ok(Self { types, aya })
        })
    }
}
