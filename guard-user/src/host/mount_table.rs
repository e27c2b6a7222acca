//! The mount table, watched for filesystems mounted on (or unmounted from) protected paths.
//!
//! Protection is by (device, inode). A disk mounted on `/var/lib/docker` after the guard
//! resolved it, or `/etc/containerd` remounted, puts different inodes under the protected
//! path without touching the ones the maps hold. The kernel signals every change of the
//! mount namespace's table on an open `/proc/self/mountinfo` as `POLLPRI` (with
//! `POLLERR`), and the daemon resolves again when a change touches a protected path.
//!
//! Only mounts whose mount point is a protected object, tree root or one of their
//! ancestors matter. The runtime's own mounts inside its data trees (overlay snapshots,
//! shm, task rootfs), which come and go with every container, do not change what a
//! protected path resolves to, and cause no resolution.

use std::{
    collections::{BTreeSet, HashSet},
    fs::File,
    io::{self, Read as _, Seek as _},
    os::fd::{AsRawFd, RawFd},
    path::{Path, PathBuf},
};

/// The daemon's own view of the mount table (its mount namespace).
pub const MOUNTINFO: &str = "/proc/self/mountinfo";

/// One line of `/proc/<pid>/mountinfo`, the fields the watcher needs.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Mount {
    /// The mount id (what statx(2) reports as `stx_mnt_id`).
    pub id: u64,
    /// The superblock's device (`s_dev`), in the kernel's encoding. On btrfs that is not
    /// what `stat(2)` reports for the files, which is a subvolume's own device.
    pub dev: u32,
    /// The mount point, unescaped.
    pub point: PathBuf,
    /// The filesystem type (`ext4`, `btrfs`, `tmpfs`, …).
    pub fstype: String,
}

/// Parses mountinfo text. Lines that do not parse are skipped: the kernel writes this
/// format, and a line rtguard cannot read is no reason to stop guarding.
pub fn parse(text: &str) -> Vec<Mount> {
    text.lines().filter_map(parse_line).collect()
}

// `36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue`
// (proc(5)): id, parent, major:minor, root, mount point, options, optional fields up to
// "-", then the filesystem type.
fn parse_line(line: &str) -> Option<Mount> {
    let mut fields = line.split(' ');
    let id = fields.next()?.parse().ok()?;
    let (major, minor) = fields.nth(1)?.split_once(':')?;
    let dev = guard_common::inode::kernel_dev(major.parse().ok()?, minor.parse().ok()?);
    let point = unescape(fields.nth(1)?);
    let fstype = fields.skip_while(|f| *f != "-").nth(1)?.to_owned();
    Some(Mount {
        id,
        dev,
        point,
        fstype,
    })
}

/// Undoes the kernel's octal escapes in mountinfo paths (`\040` for a space, `\011`,
/// `\012`, `\134`).
fn unescape(field: &str) -> PathBuf {
    use std::os::unix::ffi::OsStringExt as _;
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes.get(i + 1..i + 4).and_then(|d| {
            d.iter()
                .all(|b| (b'0'..=b'7').contains(b))
                .then(|| d.iter().fold(0u32, |n, b| n * 8 + u32::from(b - b'0')))
        });
        match (bytes[i], octal) {
            (b'\\', Some(n)) if n <= 0xff => {
                out.push(n as u8);
                i += 4;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    PathBuf::from(std::ffi::OsString::from_vec(out))
}

/// The mounts on `protected` paths (objects, tree roots and their ancestors): when this
/// set changes, what those paths resolve to may have changed.
pub fn on_protected(mounts: &[Mount], protected: &HashSet<&Path>) -> BTreeSet<Mount> {
    mounts
        .iter()
        .filter(|m| protected.contains(m.point.as_path()))
        .cloned()
        .collect()
}

/// An open `/proc/self/mountinfo`. The kernel reports a change of the table as a
/// priority event on it (register it for `POLLPRI`); [`MountTable::read`] then gives
/// the table as it is now.
pub struct MountTable {
    file: File,
}

impl MountTable {
    pub fn open() -> io::Result<Self> {
        Ok(Self {
            file: File::open(MOUNTINFO)?,
        })
    }

    /// The whole table, read from the start.
    pub fn read(&mut self) -> io::Result<Vec<Mount>> {
        self.file.rewind()?;
        let mut text = String::new();
        self.file.read_to_string(&mut text)?;
        Ok(parse(&text))
    }
}

impl AsRawFd for MountTable {
    fn as_raw_fd(&self) -> RawFd {
        self.file.as_raw_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "\
22 1 254:1 / / rw,relatime shared:1 - ext4 /dev/vda1 rw
35 22 0:31 / /var/lib/docker rw,relatime shared:20 - xfs /dev/vdb rw,attr2
36 22 0:32 /@etc /etc/containerd rw shared:21 master:3 - btrfs /dev/vdc rw,subvolid=256
37 35 0:60 / /var/lib/docker/overlay2/abc/merged rw - overlay overlay rw,lowerdir=/x
38 22 0:33 / /srv/with\\040space rw - tmpfs none rw
";

    #[test]
    fn reads_id_mount_point_and_type_past_optional_fields() {
        let mounts = parse(SAMPLE);
        assert_eq!(mounts.len(), 5);
        assert_eq!(
            mounts[2],
            Mount {
                id: 36,
                dev: 32,
                point: PathBuf::from("/etc/containerd"),
                fstype: "btrfs".into()
            }
        );
        assert_eq!(mounts[4].point, PathBuf::from("/srv/with space"));
        assert_eq!(mounts[0].dev, guard_common::inode::kernel_dev(254, 1));
        assert!(parse("garbage\n\n").is_empty());
    }

    #[test]
    fn only_mounts_on_protected_paths_count() {
        let mounts = parse(SAMPLE);
        let protected: HashSet<&Path> = [
            Path::new("/"),
            Path::new("/var"),
            Path::new("/var/lib"),
            Path::new("/var/lib/docker"),
            Path::new("/etc/containerd"),
        ]
        .into_iter()
        .collect();
        let ids: Vec<u64> = on_protected(&mounts, &protected)
            .iter()
            .map(|m| m.id)
            .collect();
        // The container's overlay inside the data tree is not one of them.
        assert_eq!(ids, [22, 35, 36]);
    }

    #[test]
    fn unescapes_octal_and_leaves_other_backslashes() {
        assert_eq!(unescape(r"/a\040b\011c"), PathBuf::from("/a b\tc"));
        assert_eq!(unescape(r"/a\\b\9"), PathBuf::from(r"/a\\b\9"));
    }
}
