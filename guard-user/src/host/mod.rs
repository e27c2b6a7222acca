//! What rtguard reads from and tells the host it runs on, outside the policy's flow:
//! where it keeps things (`paths`), process details from procfs (`proc`), the mount table
//! (`mount_table`), nf_tables' chains and sets (`nftables`), systemd's readiness protocol (`notify`) and what a running guard
//! costs (`usage`).

pub mod mount_table;
pub mod nftables;
pub mod notify;
pub mod paths;
pub mod proc;
pub mod usage;
