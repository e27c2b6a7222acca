//! The legend of the kernel tables: what the numbers in the maps, and so in the kernel's
//! events, stand for. The kernel knows objects by (dev, ino), rules by id and exec objects
//! by index; the audit trail and the logs name them by path, rule name and package or unit
//! name. Built with the tables, in one place, and installed with them, so an event is
//! always read with the legend of the tables that decided it.

use std::{
    collections::{BTreeMap, HashMap},
    path::{Path, PathBuf},
};

use guard_common::InodeKey;

use crate::policy::commands::ObjectName;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Legend {
    /// Where each object, ancestor, tree root and protected executable was found.
    pub paths: HashMap<InodeKey, PathBuf>,
    /// Rule names by rule id.
    pub rules: BTreeMap<u32, String>,
    /// The exec layer's protected names (packages, units, chains), with their kind, by
    /// `ObjectEntry::object`.
    pub objects: Vec<ObjectName>,
}

impl Legend {
    /// The name of rule `id`.
    pub fn rule(&self, id: u32) -> Option<&str> {
        self.rules.get(&id).map(String::as_str)
    }

    /// The exec layer's protected name with index `object`.
    pub fn object(&self, object: u32) -> Option<&ObjectName> {
        self.objects.get(object as usize)
    }

    /// Where the object `key` was found.
    pub fn path(&self, key: &InodeKey) -> Option<&Path> {
        self.paths.get(key).map(PathBuf::as_path)
    }
}
