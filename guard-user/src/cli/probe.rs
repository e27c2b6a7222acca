//! `rtguard probe`: what this kernel offers rtguard, without loading anything.

use std::path::Path;

use clap::Args;

use super::exit;
use crate::loader::{
    active_lsms,
    fs_layout::{btrfs_layout, BTRFS_BTF},
    has_hook,
    kernel_btf::kernel_types,
    mechanism, mounts, resolve_offsets, Mechanism, MechanismChoice, KERNEL_BTF,
};

#[derive(Debug, Args)]
pub struct ProbeArgs {}

pub fn probe(_args: ProbeArgs) -> u8 {
    let release = nix::sys::utsname::uname()
        .map(|u| u.release().to_string_lossy().into_owned())
        .unwrap_or_else(|e| format!("unknown ({e})"));
    println!("kernel:        {release}");
    if let Err(e) = mounts::securityfs() {
        println!("securityfs:    {e}");
    }
    let lsms = active_lsms();
    match &lsms {
        Ok(lsms) => println!("active LSMs:   {}", lsms.join(",")),
        Err(e) => println!("active LSMs:   unreadable ({e})"),
    }
    let (mechanism, why) = mechanism::choose(MechanismChoice::Auto, &lsms);
    println!("mechanism:     {} ({why})", mechanism.as_str());
    let btf = match kernel_types() {
        Ok(btf) => Some(btf),
        Err(e) => {
            println!("kernel BTF:    unreadable ({e})");
            None
        }
    };
    if let Some(btf) = &btf {
        // Where each mechanism would attach the file layer's first program.
        for m in [Mechanism::BpfLsm, Mechanism::ModifyReturn] {
            let function = m.attach_function("path_unlink");
            let found = if has_hook(btf, m, "path_unlink") {
                "present"
            } else {
                "absent"
            };
            println!("{:<14} {function} {found}", format!("{}:", m.as_str()));
        }
    }
    let code = match resolve_offsets(Path::new(KERNEL_BTF), mechanism) {
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
    // Split BTF on top of vmlinux's, present only while the module is loaded.
    if let Some(btf) = &btf {
        match btrfs_layout(btf.btf(), Path::new(BTRFS_BTF)) {
            Ok(Some(layout)) => println!("btrfs layout:  {layout:?}"),
            Ok(None) => println!("btrfs layout:  module not loaded ({BTRFS_BTF} absent)"),
            Err(e) => println!("btrfs layout:  {e}"),
        }
    }
    code
}
