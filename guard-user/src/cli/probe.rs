//! `rtguard probe`: what this kernel offers rtguard, without loading anything.

use std::path::Path;

use clap::Args;

use super::exit;
use crate::loader::{
    active_lsms,
    fs_layout::{btrfs_layout, BTRFS_BTF},
    resolve_offsets, KERNEL_BTF,
};

#[derive(Debug, Args)]
pub struct ProbeArgs {}

pub fn probe(_args: ProbeArgs) -> u8 {
    let release = nix::sys::utsname::uname()
        .map(|u| u.release().to_string_lossy().into_owned())
        .unwrap_or_else(|e| format!("unknown ({e})"));
    println!("kernel:        {release}");
    match active_lsms() {
        Ok(lsms) => println!("active LSMs:   {}", lsms.join(",")),
        Err(e) => println!("active LSMs:   unreadable ({e})"),
    }
    let code = match resolve_offsets(Path::new(KERNEL_BTF)) {
        Ok(o) => {
            // Every offset the programs will read, as this kernel's BTF gives them.
            println!("BTF offsets:   {o:?}");
            exit::OK
        }
        Err(e) => {
            println!("BTF offsets:   {e}");
            exit::FAILURE
        }
    };
    // Split BTF, present only while the module is loaded.
    let btrfs = btf_rs::Btf::from_file(KERNEL_BTF)
        .map_err(|e| e.to_string())
        .and_then(|base| btrfs_layout(&base, Path::new(BTRFS_BTF)).map_err(|e| e.to_string()));
    match btrfs {
        Ok(Some(layout)) => println!("btrfs layout:  {layout:?}"),
        Ok(None) => println!("btrfs layout:  module not loaded ({BTRFS_BTF} absent)"),
        Err(e) => println!("btrfs layout:  {e}"),
    }
    code
}
