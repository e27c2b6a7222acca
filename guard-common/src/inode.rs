//! Kernel object identity: (device, inode number).
//!
//! Identity by inode rather than by path is what makes the guard indifferent to symlinks,
//! hard links, bind mounts, `..`, chroots and mount namespaces.

/// Key of a protected object: the (`st_dev`, `st_ino`) `stat(2)` reports for it, which the
/// kernel programs compute the same way.
///
/// `dev` is in the kernel's *internal* encoding (`major << 20 | minor`), which is not
/// what `stat(2)` returns in `st_dev`; userspace converts with [`InodeKey::from_stat`].
/// It is the superblock's `s_dev`, except on btrfs, where `stat(2)` reports the
/// subvolume's anonymous device and inode numbers repeat from one subvolume to the next
/// (see [`crate::fs_layout`]).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct InodeKey {
    pub ino: u64,
    pub dev: u32,
    /// Always zero: the hash map compares every byte of the key.
    pub _pad: u32,
}

const MINOR_BITS: u32 = 20;
const MINOR_MASK: u32 = (1 << MINOR_BITS) - 1;

impl InodeKey {
    pub const fn new(dev: u32, ino: u64) -> Self {
        Self { ino, dev, _pad: 0 }
    }

    /// Builds a key from the major and minor numbers userspace gets from `stat(2)`.
    pub const fn from_stat(major: u32, minor: u32, ino: u64) -> Self {
        Self::new(kernel_dev(major, minor), ino)
    }

    pub const fn major(&self) -> u32 {
        kernel_dev_parts(self.dev).0
    }

    pub const fn minor(&self) -> u32 {
        kernel_dev_parts(self.dev).1
    }
}

/// `major:minor/ino`, as the daemon's logs and status name an identity.
impl core::fmt::Display for InodeKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{}:{}/{}", self.major(), self.minor(), self.ino)
    }
}

/// The identity probe's one slot: while `tid` is set, the file layer writes the key of
/// each file that thread opens into `seen`. The daemon opens a protected object and
/// compares: the kernel and userspace must agree on every filesystem that holds one.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IdentityProbe {
    /// The probing thread's id (the kernel's pid), 0 when no probe runs.
    pub tid: u32,
    pub _pad: u32,
    pub seen: InodeKey,
}

/// The kernel's internal `dev_t` encoding (`MKDEV` in include/linux/kdev_t.h).
pub const fn kernel_dev(major: u32, minor: u32) -> u32 {
    (major << MINOR_BITS) | (minor & MINOR_MASK)
}

/// (major, minor) of a device number in the kernel's internal encoding.
pub const fn kernel_dev_parts(dev: u32) -> (u32, u32) {
    (dev >> MINOR_BITS, dev & MINOR_MASK)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_dev_encoding_matches_mkdev() {
        // /dev/vda1 is 254:1; MKDEV(254, 1) = 0x0fe00001.
        assert_eq!(kernel_dev(254, 1), 0x0fe0_0001);
        let key = InodeKey::from_stat(254, 1, 42);
        assert_eq!((key.major(), key.minor(), key.ino), (254, 1, 42));
        assert_eq!(kernel_dev_parts(kernel_dev(136, 3)), (136, 3));
        extern crate std;
        assert_eq!(std::format!("{key}"), "254:1/42");
        // Anonymous devices (tmpfs, overlayfs) have major 0 and large minors.
        assert_eq!(InodeKey::from_stat(0, 300, 1).dev, 300);
    }

    #[test]
    fn key_has_no_implicit_padding() {
        assert_eq!(core::mem::size_of::<InodeKey>(), 16);
    }
}
