//! Paths inside a root directory. Resolution is a pure function of the root (`--root`),
//! so a symlink inside it (`/lib -> usr/lib`, `/var/run -> /run`) must be followed as if
//! the root were `/`, never out into the host.

use std::{
    collections::VecDeque,
    ffi::OsString,
    io,
    path::{Component, Path, PathBuf},
};

use guard_common::InodeKey;

use super::inode_key;

/// Symlinks followed before giving up, as the kernel's MAXSYMLINKS.
const MAX_SYMLINKS: u32 = 40;

/// A root directory that policy paths are read under.
#[derive(Clone, Debug)]
pub struct Root {
    dir: PathBuf,
}

impl Root {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The host path of `path` (absolute inside the root), following symlinks in every
    /// component, and in the last one too when `follow_last` is set.
    pub fn resolve(&self, path: &Path, follow_last: bool) -> io::Result<PathBuf> {
        let mut pending: VecDeque<OsString> = components(path).collect();
        let mut inside: Vec<OsString> = Vec::new();
        let mut links = 0;
        while let Some(part) = pending.pop_front() {
            if part == ".." {
                inside.pop();
                continue;
            }
            let candidate = self.host(&inside).join(&part);
            let is_last = pending.is_empty();
            let meta = std::fs::symlink_metadata(&candidate)?;
            if meta.file_type().is_symlink() && (!is_last || follow_last) {
                links += 1;
                if links > MAX_SYMLINKS {
                    return Err(io::Error::other(format!(
                        "too many levels of symbolic links at {}",
                        candidate.display()
                    )));
                }
                let target = std::fs::read_link(&candidate)?;
                if target.is_absolute() {
                    inside.clear();
                }
                for part in components(&target).collect::<Vec<_>>().into_iter().rev() {
                    pending.push_front(part);
                }
                continue;
            }
            inside.push(part);
        }
        Ok(self.host(&inside))
    }

    /// The in-root path a host path under this root stands for.
    pub fn inside(&self, host: &Path) -> PathBuf {
        match host.strip_prefix(&self.dir) {
            Ok(rest) => Path::new("/").join(rest),
            Err(_) => host.to_owned(),
        }
    }

    fn host(&self, inside: &[OsString]) -> PathBuf {
        let mut p = self.dir.clone();
        p.extend(inside);
        p
    }

    /// lstat of `path` inside the root (parents followed, the last component not).
    pub fn lstat(&self, path: &Path) -> io::Result<(PathBuf, std::fs::Metadata)> {
        let host = self.resolve(path, false)?;
        let meta = std::fs::symlink_metadata(&host)?;
        Ok((host, meta))
    }

    /// stat of `path` inside the root, following every symlink within the root.
    pub fn stat(&self, path: &Path) -> io::Result<(PathBuf, InodeKey)> {
        let host = self.resolve(path, true)?;
        let meta = std::fs::metadata(&host)?;
        Ok((host, inode_key(&meta)))
    }
}

fn components(path: &Path) -> impl Iterator<Item = OsString> + '_ {
    path.components().filter_map(|c| match c {
        Component::Normal(p) => Some(p.to_owned()),
        Component::ParentDir => Some(OsString::from("..")),
        Component::RootDir | Component::CurDir | Component::Prefix(_) => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn absolute_links_stay_inside_the_root() {
        let dir = tempfile::tempdir().unwrap();
        let root = Root::new(dir.path());
        std::fs::create_dir_all(dir.path().join("usr/lib/systemd/system")).unwrap();
        std::fs::write(dir.path().join("usr/lib/systemd/system/x.service"), "").unwrap();
        symlink("/usr/lib", dir.path().join("lib")).unwrap();
        symlink(
            "../x.service",
            dir.path().join("usr/lib/systemd/system/alias.service"),
        )
        .unwrap();
        let host = root
            .resolve(Path::new("/lib/systemd/system/x.service"), true)
            .unwrap();
        assert_eq!(host, dir.path().join("usr/lib/systemd/system/x.service"));
        // The last component is kept as a link unless asked to follow it.
        let link = root
            .resolve(Path::new("/lib/systemd/system/alias.service"), false)
            .unwrap();
        assert_eq!(
            link,
            dir.path().join("usr/lib/systemd/system/alias.service")
        );
        assert!(root
            .resolve(Path::new("/lib/systemd/system/alias.service"), true)
            .is_err());
        assert_eq!(
            root.inside(&host),
            Path::new("/usr/lib/systemd/system/x.service")
        );
    }

    #[test]
    fn link_loops_end() {
        let dir = tempfile::tempdir().unwrap();
        symlink("/a", dir.path().join("a")).unwrap();
        assert!(Root::new(dir.path())
            .resolve(Path::new("/a/b"), true)
            .is_err());
    }
}
