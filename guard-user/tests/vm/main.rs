//! Enforcement tests. They run as root inside the Debian VMs (`cargo xtask vm-test`), where
//! the kernel runs BPF LSM programs, and assert both the errno and what is left on disk.

#[path = "../common/mod.rs"]
mod common;

mod basics;
mod configuration;
mod daemon;
mod exec_layer;
mod file_layer;
mod filesystems;
mod mounts;
mod packaging;
mod persistence;
mod policy;
mod process_layer;
