//! The running kernel's BTF, read once per start into each form the loader needs, then
//! shared by every step (and by both attempts when BPF LSM is refused and fmod_ret is
//! tried).
//!
//! Two forms, because neither library answers everything: aya's [`aya::Btf`] is what
//! aya's program loads take, and it keeps its type lookups private, so the struct
//! offsets and hook arities come from btf-rs. vmlinux's BTF is several MiB. aya parses
//! all of it; btf-rs maps it instead and reads only the types the offsets name, found in
//! one pass ([`IndexedBtf`]), which costs a fraction of a parse.

use std::{
    fs::File,
    io::{self, Write},
    os::fd::AsRawFd,
    path::Path,
};

use aya::{Btf, Endianness};
use btf_rs::Backend;
use nix::sys::memfd::{memfd_create, MemFdCreateFlag};

use super::{offsets::IndexedBtf, LoadError, OffsetError, KERNEL_BTF};

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

/// btf-rs's form of the BTF file at `path`, mapped rather than parsed; `bytes` are its
/// contents if they have been read already.
///
/// sysfs maps /sys/kernel/btf/vmlinux from Linux 6.16 on. Older kernels refuse, and then
/// the contents are copied into an anonymous memory file, mapped through its /proc path
/// (btf-rs maps only files it opens by path).
pub fn mapped(path: &Path, bytes: Option<&[u8]>) -> Result<btf_rs::Btf, OffsetError> {
    if let Ok(btf) = btf_rs::Btf::from_file_with_backend(path, Backend::Mmap) {
        return Ok(btf);
    }
    let read;
    let bytes = match bytes {
        Some(bytes) => bytes,
        None => {
            read = std::fs::read(path).map_err(|e| read_error(path, e.into()))?;
            &read
        }
    };
    mapped_copy(bytes).map_err(|e| read_error(path, e))
}

/// btf-rs's mapped form of a BTF held in `bytes`.
pub(super) fn mapped_copy(bytes: &[u8]) -> Result<btf_rs::Btf, btf_rs::Error> {
    let copy =
        File::from(memfd_create(c"btf", MemFdCreateFlag::MFD_CLOEXEC).map_err(io::Error::from)?);
    (&copy).write_all(bytes)?;
    let path = format!("/proc/self/fd/{}", copy.as_raw_fd());
    btf_rs::Btf::from_file_with_backend(path, Backend::Mmap)
}

fn read_error(path: &Path, source: btf_rs::Error) -> OffsetError {
    OffsetError::Read {
        path: path.to_owned(),
        source,
    }
}

/// btf-rs's form of the kernel's BTF alone, for what loads no program: degraded mode and
/// `rtguard probe`.
pub fn kernel_types() -> Result<IndexedBtf, OffsetError> {
    IndexedBtf::kernel(mapped(Path::new(KERNEL_BTF), None)?)
}
