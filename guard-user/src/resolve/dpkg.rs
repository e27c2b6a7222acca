//! The dpkg database under a root: `var/lib/dpkg/status` for what is installed, and
//! `var/lib/dpkg/info/<pkg>[:<arch>].list` / `.conffiles` for the files each package owns.

use std::{
    io,
    path::{Path, PathBuf},
};

use super::Root;
use crate::policy::PackageSpec;

const ADMIN_DIR: &str = "/var/lib/dpkg";

/// One package stanza of the status file (or, without a status file, one list file).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DpkgPackage {
    pub name: String,
    pub arch: Option<String>,
    pub version: Option<String>,
    /// The third word of `Status:` (`installed`, `config-files`, `half-installed`, …), or
    /// `unknown` when the status file is missing.
    pub state: String,
}

impl DpkgPackage {
    /// Installed and working as far as dpkg is concerned.
    pub fn is_installed(&self) -> bool {
        matches!(
            self.state.as_str(),
            "installed" | "triggers-awaited" | "triggers-pending"
        )
    }
}

#[derive(Debug)]
pub struct DpkgDb {
    info: PathBuf,
    pub packages: Vec<DpkgPackage>,
    /// False when the root has list files but no status file.
    pub has_status: bool,
}

impl DpkgDb {
    /// Opens the database of a root; `None` when the root has no dpkg database at all.
    pub fn open(root: &Root) -> io::Result<Option<Self>> {
        let admin = match root.resolve(Path::new(ADMIN_DIR), true) {
            Ok(dir) if dir.is_dir() => dir,
            Ok(_) => return Ok(None),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let info = admin.join("info");
        match std::fs::read_to_string(admin.join("status")) {
            Ok(text) => Ok(Some(Self {
                info,
                packages: parse_status(&text),
                has_status: true,
            })),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let packages = packages_from_lists(&info)?;
                Ok(Some(Self {
                    info,
                    packages,
                    has_status: false,
                }))
            }
            Err(e) => Err(e),
        }
    }

    /// Stanzas a policy package name refers to: every architecture unless one is given,
    /// every matching name for a trailing `*`. Packages dpkg only remembers as
    /// `not-installed` are left out.
    pub fn find(&self, spec: &PackageSpec) -> Vec<&DpkgPackage> {
        self.packages
            .iter()
            .filter(|p| {
                let name_matches = spec.names(&p.name);
                let arch_matches = match (&spec.arch, &p.arch) {
                    (Some(want), Some(have)) => want == have || have == "all",
                    _ => true,
                };
                name_matches && arch_matches && p.state != "not-installed"
            })
            .collect()
    }

    /// Paths the package's list file names (directories included, as dpkg lists them).
    pub fn files(&self, package: &DpkgPackage) -> io::Result<Vec<PathBuf>> {
        Ok(self
            .read_info(package, "list")?
            .lines()
            .filter(|l| l.starts_with('/') && *l != "/.")
            .map(PathBuf::from)
            .collect())
    }

    /// The package's conffiles.
    pub fn conffiles(&self, package: &DpkgPackage) -> io::Result<Vec<PathBuf>> {
        Ok(self
            .read_info(package, "conffiles")?
            .lines()
            // Newer dpkg may prefix flags (`remove-on-upgrade /etc/x`): the path is last.
            .filter_map(|l| l.split_whitespace().last())
            .filter(|p| p.starts_with('/'))
            .map(PathBuf::from)
            .collect())
    }

    /// The status file, as a path inside the root.
    pub fn status_file() -> PathBuf {
        Path::new(ADMIN_DIR).join("status")
    }

    /// dpkg's records of the package, as paths inside the root: `info/<pkg>.<ext>` and
    /// `info/<pkg>:<arch>.<ext>` (the file list, checksums, conffiles, maintainer scripts).
    pub fn records(&self, package: &DpkgPackage) -> io::Result<Vec<PathBuf>> {
        let plain = format!("{}.", package.name);
        let with_arch = package
            .arch
            .as_ref()
            .map(|arch| format!("{}:{arch}.", package.name));
        let mut out = Vec::new();
        for entry in std::fs::read_dir(&self.info)? {
            let name = entry?.file_name();
            let Some(name) = name.to_str() else { continue };
            let ours = name.strip_prefix(&plain).or_else(|| {
                with_arch
                    .as_deref()
                    .and_then(|prefix| name.strip_prefix(prefix))
            });
            // `<pkg>.<ext>`, with no further dot: `containerd.list`, not `containerd.io.list`.
            if ours.is_some_and(|ext| !ext.is_empty() && !ext.contains('.')) {
                out.push(Path::new(ADMIN_DIR).join("info").join(name));
            }
        }
        out.sort();
        Ok(out)
    }

    /// Reads `info/<pkg>:<arch>.<ext>` (Multi-Arch: same) or `info/<pkg>.<ext>`; a missing
    /// file reads as empty.
    fn read_info(&self, package: &DpkgPackage, ext: &str) -> io::Result<String> {
        let mut candidates = Vec::new();
        if let Some(arch) = &package.arch {
            candidates.push(self.info.join(format!("{}:{arch}.{ext}", package.name)));
        }
        candidates.push(self.info.join(format!("{}.{ext}", package.name)));
        for path in candidates {
            match std::fs::read_to_string(&path) {
                Ok(text) => return Ok(text),
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            }
        }
        Ok(String::new())
    }
}

/// Parses the stanzas of a dpkg status file.
pub fn parse_status(text: &str) -> Vec<DpkgPackage> {
    let mut out = Vec::new();
    for stanza in text.split("\n\n") {
        let mut name = None;
        let mut arch = None;
        let mut version = None;
        let mut state = None;
        for line in stanza.lines() {
            if line.starts_with([' ', '\t']) {
                continue;
            }
            let Some((key, value)) = line.split_once(':') else {
                continue;
            };
            let value = value.trim();
            match key {
                "Package" => name = Some(value.to_owned()),
                "Architecture" => arch = Some(value.to_owned()),
                "Version" => version = Some(value.to_owned()),
                "Status" => state = value.split_whitespace().nth(2).map(str::to_owned),
                _ => {}
            }
        }
        if let Some(name) = name {
            out.push(DpkgPackage {
                name,
                arch,
                version,
                state: state.unwrap_or_else(|| "unknown".to_owned()),
            });
        }
    }
    out
}

fn packages_from_lists(info: &Path) -> io::Result<Vec<DpkgPackage>> {
    let entries = match std::fs::read_dir(info) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut out = Vec::new();
    for entry in entries {
        let file = entry?.file_name().to_string_lossy().into_owned();
        let Some(stem) = file.strip_suffix(".list") else {
            continue;
        };
        let (name, arch) = match stem.split_once(':') {
            Some((n, a)) => (n.to_owned(), Some(a.to_owned())),
            None => (stem.to_owned(), None),
        };
        out.push(DpkgPackage {
            name,
            arch,
            version: None,
            state: "unknown".to_owned(),
        });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_status_stanzas() {
        let text = "Package: containerd.io\nStatus: install ok installed\nArchitecture: amd64\n\
                    Version: 1.7.27-1\nDescription: x\n more\n\n\
                    Package: runc\nStatus: deinstall ok config-files\nArchitecture: amd64\n";
        let p = parse_status(text);
        assert_eq!(p.len(), 2);
        assert!(p[0].is_installed());
        assert_eq!(p[0].version.as_deref(), Some("1.7.27-1"));
        assert_eq!(p[1].state, "config-files");
        assert!(!p[1].is_installed());
    }

    #[test]
    fn records_are_the_packages_own_info_files() {
        let dir = tempfile::tempdir().unwrap();
        for name in [
            "docker.list",
            "docker.io.list",
            "docker.io.md5sums",
            "docker.io.postinst",
            "containerd:amd64.list",
            "containerd.io.list",
        ] {
            std::fs::write(dir.path().join(name), "").unwrap();
        }
        let db = DpkgDb {
            info: dir.path().to_owned(),
            packages: Vec::new(),
            has_status: true,
        };
        let package = |name: &str, arch: Option<&str>| DpkgPackage {
            name: name.to_owned(),
            arch: arch.map(str::to_owned),
            version: None,
            state: "installed".to_owned(),
        };
        let info = |name: &str| Path::new("/var/lib/dpkg/info").join(name);
        assert_eq!(
            db.records(&package("docker.io", None)).unwrap(),
            [
                info("docker.io.list"),
                info("docker.io.md5sums"),
                info("docker.io.postinst")
            ]
        );
        assert_eq!(
            db.records(&package("docker", None)).unwrap(),
            [info("docker.list")]
        );
        assert_eq!(
            db.records(&package("containerd", Some("amd64"))).unwrap(),
            [info("containerd:amd64.list")]
        );
    }
}
