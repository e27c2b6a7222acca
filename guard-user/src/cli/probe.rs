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
            // Every offset the programs will read, as this kernel's BTF gives them.
            println!("BTF offsets:   {o:?}");
            exit::OK
        }
        Err(e) => {
            println!("BTF offsets:   {e}");
            exit::FAILURE
        }
    }
}
