//! rtguard's kernel programs.
//!
//! These programs only decide: userspace resolves policy into (dev, ino) keys and fills the
//! maps; the programs look the acting object up and answer -EPERM or 0. One module per layer.
#![no_std]
#![no_main]

mod file;
mod kernel;
mod maps;

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    // The verifier rejects any path that could reach here.
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 4] = *b"GPL\0";
