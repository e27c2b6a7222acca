//! The rpm database, read through the host's `rpm --root` when there is one. rpm's
//! database formats (bdb, ndb, sqlite) are rpm's business; rtguard does not parse them.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use super::Root;

/// Where rpm keeps its database, old and new layout.
const DB_DIRS: &[&str] = &["/var/lib/rpm", "/usr/lib/sysimage/rpm"];
/// Where the `rpm` binary is looked for on the host.
const BIN_DIRS: &[&str] = &["/usr/bin", "/bin", "/usr/local/bin"];

/// Which rpm binary resolution may run.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum RpmTool {
    /// The host's `rpm`, if installed.
    #[default]
    Auto,
    /// This program, called like rpm.
    Path(PathBuf),
    /// Never run rpm.
    Disabled,
}

/// Whether and how rpm packages can be resolved under a root.
#[derive(Clone, Debug)]
pub enum RpmDb {
    /// The root has no rpm database.
    Absent,
    /// There is a database but nothing to read it with.
    Unavailable(String),
    Available {
        bin: PathBuf,
        root: PathBuf,
    },
}

/// An installed rpm package.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RpmPackage {
    pub name: String,
    pub version: String,
    pub arch: String,
}

impl RpmDb {
    pub fn open(root: &Root, tool: &RpmTool) -> Self {
        let has_db = DB_DIRS
            .iter()
            .any(|d| root.resolve(Path::new(d), true).is_ok_and(|p| p.is_dir()));
        if !has_db {
            return RpmDb::Absent;
        }
        let bin = match tool {
            RpmTool::Disabled => return RpmDb::Unavailable("rpm is disabled".to_owned()),
            RpmTool::Path(p) => Some(p.clone()),
            RpmTool::Auto => BIN_DIRS
                .iter()
                .map(|d| Path::new(d).join("rpm"))
                .find(|p| p.is_file()),
        };
        match bin {
            Some(bin) => RpmDb::Available {
                bin,
                root: root.dir().to_owned(),
            },
            None => RpmDb::Unavailable(
                "the root has an rpm database but this host has no `rpm` to read it".to_owned(),
            ),
        }
    }

    /// Installed packages matching a name (or a name prefix for `wildcard`).
    pub fn find(&self, name: &str, wildcard: bool) -> Result<Vec<RpmPackage>, String> {
        let RpmDb::Available { bin, root } = self else {
            return Ok(Vec::new());
        };
        let pattern = if wildcard {
            format!("{name}*")
        } else {
            name.to_owned()
        };
        let out = Command::new(bin)
            .arg("--root")
            .arg(root)
            .args([
                "-qa",
                "--qf",
                "%{NAME}\\t%{VERSION}-%{RELEASE}\\t%{ARCH}\\n",
            ])
            .arg(&pattern)
            .output()
            .map_err(|e| format!("cannot run {}: {e}", bin.display()))?;
        if !out.status.success() {
            return Err(format!(
                "{} -qa {pattern} failed: {}",
                bin.display(),
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| {
                let mut f = l.split('\t');
                Some(RpmPackage {
                    name: f.next()?.to_owned(),
                    version: f.next()?.to_owned(),
                    arch: f.next()?.to_owned(),
                })
            })
            .collect())
    }

    /// Files an installed package owns.
    pub fn files(&self, package: &RpmPackage) -> Result<Vec<PathBuf>, String> {
        let RpmDb::Available { bin, root } = self else {
            return Ok(Vec::new());
        };
        let out = Command::new(bin)
            .arg("--root")
            .arg(root)
            .arg("-ql")
            .arg(format!(
                "{}-{}.{}",
                package.name, package.version, package.arch
            ))
            .output()
            .map_err(|e| format!("cannot run {}: {e}", bin.display()))?;
        if !out.status.success() {
            return Err(format!(
                "{} -ql {} failed: {}",
                bin.display(),
                package.name,
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| l.starts_with('/'))
            .map(PathBuf::from)
            .collect())
    }
}
