//! Present so that guard-user can name this crate as a build dependency; the programs
//! themselves are the binary target (src/main.rs).
#![no_std]
