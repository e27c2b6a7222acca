//! rtguard's userspace: it resolves what to protect into kernel object identities, loads and
//! attaches the kernel programs, fills their maps, and turns their events into records.
//!
//! Data flows through the modules in this order:
//! `resolve` (paths → (dev, ino)) → `loader` (BTF offsets, programs, maps) → `events`
//! (ring buffer → decisions) → `cli` (what the operator sees).

pub mod audit;
pub mod cli;
pub mod config_history;
pub mod degraded;
pub mod events;
pub mod loader;
pub mod maintenance;
pub mod mount_table;
pub mod notify;
pub mod paths;
pub mod policy;
pub mod proc;
pub mod resolve;
pub mod status;
pub mod usage;

/// The kernel programs, built from guard-ebpf by build.rs.
pub static EBPF_OBJECT: &[u8] =
    aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/guard-ebpf"));
