//! What an operation was aimed at: the [`Target`] of a record, and the device number
//! ([`DevId`]) it names a filesystem object by.

use std::{fmt, str::FromStr};

use serde::{Deserialize, Serialize};

/// What the operation was aimed at. Every member is best effort and `null` when unknown.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Target {
    /// A path to the object. The kernel decides on (dev, ino), so this is the path the
    /// policy resolved for that identity, or the one the operation used; with hard links
    /// and bind mounts there can be several.
    pub path: Option<String>,
    /// The device of the filesystem holding the object, `"major:minor"` as `stat(1)`
    /// writes it (on btrfs, the subvolume's; elsewhere also what `/proc/self/mountinfo`
    /// shows).
    pub dev: Option<DevId>,
    pub ino: Option<u64>,
    /// The package owning the object, where the resolver knows it.
    pub package: Option<String>,
    /// Process layer: the process the signal was aimed at.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    /// Process layer: that process's comm.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comm: Option<String>,
    /// Netfilter layer: the chain, set or table, as nft names it (`chain ip nat DOCKER`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub netfilter: Option<String>,
}

/// A device number as major and minor, written `"254:1"`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DevId {
    pub major: u32,
    pub minor: u32,
}

impl Target {
    /// A filesystem object by the kernel's identity for it.
    pub fn inode(key: guard_common::InodeKey) -> Self {
        Self {
            dev: Some(DevId {
                major: key.major(),
                minor: key.minor(),
            }),
            ino: Some(key.ino),
            ..Self::default()
        }
    }

    /// A package, for records about a package rather than one of its files.
    pub fn package(package: impl Into<String>) -> Self {
        Self {
            package: Some(package.into()),
            ..Self::default()
        }
    }

    pub fn with_path(mut self, path: impl Into<String>) -> Self {
        self.path = Some(path.into());
        self
    }

    pub fn with_package(mut self, package: impl Into<String>) -> Self {
        self.package = Some(package.into());
        self
    }

    /// A netfilter object, as nft names it.
    pub fn netfilter(object: impl Into<String>) -> Self {
        Self {
            netfilter: Some(object.into()),
            ..Self::default()
        }
    }

    pub fn with_process(mut self, pid: u32, comm: impl Into<String>) -> Self {
        self.pid = Some(pid);
        self.comm = Some(comm.into());
        self
    }

    /// What a person calls the target: its path, else its package, else `dev:ino`.
    pub fn describe(&self) -> String {
        let mut out = if let Some(object) = &self.netfilter {
            object.clone()
        } else if let Some(path) = &self.path {
            path.clone()
        } else if let Some(package) = &self.package {
            package.clone()
        } else if let (Some(dev), Some(ino)) = (self.dev, self.ino) {
            format!("{dev} ino {ino}")
        } else {
            String::new()
        };
        if let Some(pid) = self.pid {
            if !out.is_empty() {
                out.push(' ');
            }
            out.push_str(&format!("[{pid}]"));
        }
        out
    }
}

impl fmt::Display for DevId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.major, self.minor)
    }
}

impl FromStr for DevId {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (major, minor) = s
            .split_once(':')
            .ok_or_else(|| format!("device '{s}' is not major:minor"))?;
        let num = |n: &str| {
            n.parse::<u32>()
                .map_err(|_| format!("device '{s}' is not major:minor"))
        };
        Ok(DevId {
            major: num(major)?,
            minor: num(minor)?,
        })
    }
}

impl Serialize for DevId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for DevId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}
