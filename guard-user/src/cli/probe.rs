//! `rtguard probe`: what this kernel offers rtguard, without loading anything.

use std::path::Path;

use clap::Args;

use super::exit;
use crate::loader::{active_lsms, resolve_offsets, KERNEL_BTF};

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
    match resolve_offsets(Path::new(KERNEL_BTF)) {
        Ok(o) => {
            println!(
                "BTF offsets:   dentry.d_inode={} inode.i_ino={} inode.i_sb={} super_block.s_dev={}",
                o.dentry_d_inode, o.inode_i_ino, o.inode_i_sb, o.super_block_s_dev
            );
            exit::OK
        }
        Err(e) => {
            println!("BTF offsets:   {e}");
            exit::FAILURE
        }
    }
}
