//! Builds the kernel programs (guard-ebpf) for the BPF target and leaves the object in
//! OUT_DIR, where `include_bytes_aligned!` embeds it into `rtguard`.

fn main() -> anyhow::Result<()> {
    let root_dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../guard-ebpf");
    aya_build::build_ebpf(
        [aya_build::Package {
            name: "guard-ebpf",
            root_dir,
            ..Default::default()
        }],
        aya_build::Toolchain::default(),
    )
}
