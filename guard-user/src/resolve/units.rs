//! systemd units under a root: the unit file in every search path, its drop-ins, and the
//! enablement symlinks that `systemctl enable` creates and `disable` removes.

use std::{
    io,
    path::{Path, PathBuf},
};

use super::Root;

/// systemd's system unit search path, highest priority first.
pub const UNIT_DIRS: &[&str] = &[
    "/etc/systemd/system",
    "/run/systemd/system",
    "/lib/systemd/system",
    "/usr/lib/systemd/system",
];

/// What a unit-related file is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum UnitRole {
    /// The unit file itself (or a symlink to it).
    UnitFile,
    /// `<unit>.d/*.conf`.
    DropIn,
    /// `<target>.wants/<unit>` or `.requires/`: the unit is enabled.
    Enablement,
    /// A symlink to /dev/null: the unit is masked here.
    Mask,
}

impl UnitRole {
    pub fn as_str(self) -> &'static str {
        match self {
            UnitRole::UnitFile => "unit file",
            UnitRole::DropIn => "drop-in",
            UnitRole::Enablement => "enablement link",
            UnitRole::Mask => "mask",
        }
    }
}

/// One file that belongs to a unit, as a path inside the root.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnitEntry {
    pub path: PathBuf,
    pub role: UnitRole,
}

/// Every file of `unit` in the search path. Each search directory is visited once even
/// when two names reach it (`/lib` → `/usr/lib`).
pub fn unit_entries(root: &Root, unit: &str) -> io::Result<Vec<UnitEntry>> {
    let mut out = Vec::new();
    let mut seen_dirs = Vec::new();
    for dir in UNIT_DIRS {
        let dir = Path::new(dir);
        let host = match root.resolve(dir, true) {
            Ok(host) if host.is_dir() => host,
            Ok(_) => continue,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        if seen_dirs.contains(&host) {
            continue;
        }
        seen_dirs.push(host.clone());
        // The directory as the unit's files are reported under: its real place in the root.
        let dir = root.inside(&host);

        let file = host.join(unit);
        if let Ok(meta) = std::fs::symlink_metadata(&file) {
            let role = if meta.file_type().is_symlink()
                && std::fs::read_link(&file).is_ok_and(|t| t == Path::new("/dev/null"))
            {
                UnitRole::Mask
            } else {
                UnitRole::UnitFile
            };
            out.push(UnitEntry {
                path: dir.join(unit),
                role,
            });
        }

        let dropins = host.join(format!("{unit}.d"));
        if let Ok(entries) = std::fs::read_dir(&dropins) {
            let mut names: Vec<_> = entries
                .filter_map(Result::ok)
                .map(|e| e.file_name())
                .filter(|n| n.to_string_lossy().ends_with(".conf"))
                .collect();
            names.sort();
            for name in names {
                out.push(UnitEntry {
                    path: dir.join(format!("{unit}.d")).join(name),
                    role: UnitRole::DropIn,
                });
            }
        }

        let mut wants: Vec<_> = std::fs::read_dir(&host)?
            .filter_map(Result::ok)
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| {
                n.ends_with(".wants") || n.ends_with(".requires") || n.ends_with(".upholds")
            })
            .collect();
        wants.sort();
        for target in wants {
            let link = host.join(&target).join(unit);
            if std::fs::symlink_metadata(&link).is_ok() {
                out.push(UnitEntry {
                    path: dir.join(&target).join(unit),
                    role: UnitRole::Enablement,
                });
            }
        }
    }
    Ok(out)
}
