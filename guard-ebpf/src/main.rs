//! rtguard's kernel programs.
//!
//! These programs only decide: userspace resolves policy into (dev, ino) keys and fills the
//! maps; the programs look the acting object up and answer -EPERM or 0. One module per layer.
//!
//! Built for the BPF target by guard-user's build script. A host build (clippy, tests)
//! links std and gets an empty `main`, so the same code is linted everywhere.
#![cfg_attr(target_arch = "bpf", no_std)]
#![cfg_attr(target_arch = "bpf", no_main)]
// The BPF target has atomic adds but no compare-and-swap, so core's atomic types lack
// `fetch_add` there; the intrinsic is what `kernel::atomic_add` uses instead.
#![cfg_attr(target_arch = "bpf", feature(core_intrinsics))]
#![cfg_attr(target_arch = "bpf", allow(internal_features))]

mod chain;
mod degraded;
mod exec;
mod fast_path;
mod file;
mod kernel;
mod maps;
mod netfilter;
mod process;
mod sysctl;
mod tree_cache;

#[cfg(target_arch = "bpf")]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    // The verifier rejects any path that could reach here.
    loop {}
}

#[cfg(not(target_arch = "bpf"))]
fn main() {}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 4] = *b"GPL\0";
