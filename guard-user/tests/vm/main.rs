//! Enforcement tests. They run as root inside the Debian VMs (`cargo xtask vm-test`), and
//! assert both the errno and what is left on disk. Each boot enforces with the mechanism
//! its LSM list allows: BPF LSM on Debian's, fmod_ret on Ubuntu's; the suite is the same.

#[path = "../common/mod.rs"]
mod common;

mod apt_hook;
mod attributes;
mod basics;
mod configuration;
mod daemon;
mod exec_identity;
mod exec_layer;
mod fast_path;
mod file_layer;
mod filesystems;
mod host_guest;
mod liveness;
mod mechanism;
mod mounts;
mod netfilter_layer;
mod notices;
mod package_manager;
mod packaging;
mod persistence;
mod policy;
mod process_layer;
