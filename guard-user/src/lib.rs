//! rtguard's userspace: it resolves what to protect into kernel object identities, loads and
//! attaches the kernel programs, fills their maps, and turns their events into records.
//!
//! Data flows through the modules in this order:
//! `policy` (TOML → checked rules) → `resolve` (names → (dev, ino)) → `tables` (rules and
//! maintenance windows → the kernel maps' contents) → `loader` (BTF offsets, programs, maps)
//! → kernel → `events` (ring buffer → decisions) → `audit` (decisions → records). `daemon`
//! runs that flow and `cli` is what the operator types; `host` is what both read from the
//! machine. `preflight` judges a package manager's whole plan before it runs. docs/architecture.md maps each layer to its files.

pub mod audit;
pub mod cli;
pub mod daemon;
pub mod events;
pub mod host;
pub mod loader;
pub mod policy;
pub mod preflight;
pub mod resolve;
pub mod tables;

/// The kernel programs, built from guard-ebpf by build.rs.
pub static EBPF_OBJECT: &[u8] =
    aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/guard-ebpf"));
