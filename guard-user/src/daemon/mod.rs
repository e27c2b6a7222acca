//! The daemon behind `rtguard run`.

pub mod degraded;
pub mod self_test;
pub mod status;
