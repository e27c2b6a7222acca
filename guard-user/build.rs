//! Builds the kernel programs (guard-ebpf) for the BPF target and leaves the object in
//! OUT_DIR, where `include_bytes_aligned!` embeds it into `rtguard`.
//!
//! The eBPF object is built with the nightly pinned in guard-ebpf/rust-toolchain.toml,
//! named explicitly, never with whatever `nightly` means on this machine: bpf-linker can
//! only link bitcode from the LLVM it was built against (`cargo xtask setup` keeps the two
//! in step).

use std::process::Command;

use anyhow::{bail, Context as _};

const EBPF_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../guard-ebpf");
/// The kernel programs are built from guard-common too; aya-build only watches guard-ebpf.
const COMMON_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../guard-common");

fn main() -> anyhow::Result<()> {
    let pin_file = format!("{EBPF_DIR}/rust-toolchain.toml");
    println!("cargo:rerun-if-changed={pin_file}");
    println!("cargo:rerun-if-changed={COMMON_DIR}");
    let pin = std::fs::read_to_string(&pin_file).with_context(|| format!("reading {pin_file}"))?;
    let pin: toml::Table = toml::from_str(&pin).with_context(|| format!("parsing {pin_file}"))?;
    let channel = pin
        .get("toolchain")
        .and_then(|t| t.get("channel"))
        .and_then(|c| c.as_str())
        .with_context(|| format!("{pin_file}: no [toolchain] channel"))?
        .to_owned();

    let installed = Command::new("rustup")
        .args(["run", &channel, "rustc", "--version"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !installed {
        bail!("the eBPF toolchain {channel} (pinned in {pin_file}) is not installed: run `cargo xtask setup`");
    }

    aya_build::build_ebpf(
        [aya_build::Package {
            name: "guard-ebpf",
            root_dir: EBPF_DIR,
            ..Default::default()
        }],
        aya_build::Toolchain::Custom(&channel),
    )
}
