//! `cargo xtask setup`: idempotent installation of the toolchain and the VM kernels.
//!
//! Each step checks first and does nothing when its result is already there, so a second
//! run takes seconds.

use std::{path::Path, process::Command};

use anyhow::{bail, Result};

use crate::{
    kernels::{self, vm_dir, KERNELS},
    output, run, step, toolchain,
};

/// Debian packages: qemu for the VM tests, debootstrap and cpio for the VM's Debian
/// rootfs, e2fsprogs and xz for the host guest's disk image and first stage, and the font
/// the benchmark chart is drawn with. The LLVM that bpf-linker is
/// built against follows the eBPF toolchain pin (see [`llvm_packages`]).
const DEBIAN_PACKAGES: &[&str] = &[
    "libzstd-dev",
    "zlib1g-dev",
    "qemu-system-x86",
    "cpio",
    "debootstrap",
    "e2fsprogs",
    "xz-utils",
    "fonts-dejavu-core",
];

/// bpf-linker links the eBPF object. Its `llvm-<major>` features name the LLVM versions
/// this release can be built against; the pinned nightly's LLVM must be one of them.
const BPF_LINKER_VERSION: &str = "0.13.0";
const BPF_LINKER_LLVM_MAJORS: &[u32] = &[21, 22, 23];
/// Builds the .deb (`cargo xtask deb`); 3.x builds with rustc 1.95.
const CARGO_DEB_VERSION: &str = "3.8.0";

pub fn ensure(root: &Path) -> Result<()> {
    step("setup");
    let pins = toolchain::Pins::read(root)?;
    toolchain::ensure_stable(&pins.stable)?;
    let ebpf = toolchain::ensure(&pins.ebpf)?;
    let mut packages: Vec<String> = DEBIAN_PACKAGES.iter().map(|p| p.to_string()).collect();
    packages.extend(llvm_packages(&ebpf)?);
    debian_packages(&packages)?;
    bpf_linker(&ebpf)?;
    cargo_deb()?;
    for series in KERNELS {
        kernels::kernel(root, *series)?;
    }
    crate::rootfs::base_cpio(&vm_dir(root))?;
    Ok(())
}

fn is_installed(package: &str) -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", package])
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout) == "install ok installed")
}

fn debian_packages(packages: &[String]) -> Result<()> {
    let missing: Vec<&str> = packages
        .iter()
        .map(String::as_str)
        .filter(|p| !is_installed(p))
        .collect();
    if missing.is_empty() {
        println!("debian packages: all {} present", packages.len());
        return Ok(());
    }
    println!("debian packages: installing {}", missing.join(" "));
    run(Command::new("apt-get").arg("update").arg("-q"))?;
    run(Command::new("apt-get")
        .args(["install", "-y", "-q", "--no-install-recommends"])
        .args(&missing)
        .env("DEBIAN_FRONTEND", "noninteractive"))
}

/// Debian's LLVM development packages for the pinned nightly's LLVM major version, which
/// bpf-linker is built against. Fails in one line when that LLVM cannot be had here.
fn llvm_packages(ebpf: &toolchain::Installed) -> Result<Vec<String>> {
    let major = ebpf.llvm_major;
    let packages = [
        format!("llvm-{major}-dev"),
        format!("libclang-{major}-dev"),
        format!("libpolly-{major}-dev"),
    ];
    if !BPF_LINKER_LLVM_MAJORS.contains(&major) {
        bail!(
            "the eBPF toolchain {} uses LLVM {major}, but bpf-linker {BPF_LINKER_VERSION} builds \
             only against LLVM {BPF_LINKER_LLVM_MAJORS:?}: move the pin in {} (see the README, \
             \"Moving the toolchain pin\")",
            ebpf.channel,
            toolchain::EBPF_PIN,
        );
    }
    if !packages.iter().all(|p| is_installed(p)) && !apt_has(&packages[0])? {
        bail!(
            "the eBPF toolchain {} uses LLVM {major}, but Debian's archive has no {} (it has \
             LLVM {:?}): pin a nightly with one of those in {} (see the README, \"Moving the \
             toolchain pin\")",
            ebpf.channel,
            packages[0],
            apt_llvm_majors()?,
            toolchain::EBPF_PIN,
        );
    }
    Ok(packages.into())
}

/// Whether apt can install `package` (it has a candidate version).
fn apt_has(package: &str) -> Result<bool> {
    let candidate = |package: &str| -> Result<bool> {
        let policy = output(Command::new("apt-cache").args(["policy", package]))?;
        Ok(policy
            .lines()
            .any(|l| l.trim().starts_with("Candidate:") && !l.contains("(none)")))
    };
    if candidate(package)? {
        return Ok(true);
    }
    run(Command::new("apt-get").arg("update").arg("-q"))?;
    candidate(package)
}

/// The LLVM major versions whose `llvm-N-dev` the archive offers.
fn apt_llvm_majors() -> Result<Vec<u32>> {
    let names = output(Command::new("apt-cache").args(["pkgnames", "llvm-"]))?;
    let mut majors: Vec<u32> = names
        .lines()
        .filter_map(|n| n.strip_prefix("llvm-")?.strip_suffix("-dev")?.parse().ok())
        .collect();
    majors.sort_unstable();
    Ok(majors)
}

/// bpf-linker built against the pinned nightly's LLVM. An installed bpf-linker of the
/// right version but another LLVM (a moved pin, or a machine set up by hand) is rebuilt:
/// it would fail to read the bitcode with `ERROR llvm: Invalid record`.
fn bpf_linker(ebpf: &toolchain::Installed) -> Result<()> {
    let feature = format!("llvm-{}", ebpf.llvm_major);
    match toolchain::installed_crate_features("bpf-linker")? {
        Some((version, features))
            if version == BPF_LINKER_VERSION && features.contains(&feature) =>
        {
            println!(
                "bpf-linker {BPF_LINKER_VERSION}: present, built against LLVM {} like {}",
                ebpf.llvm_major, ebpf.channel
            );
            return Ok(());
        }
        Some((version, features)) => println!(
            "bpf-linker {version} (features {features:?}) does not match {} (LLVM {}): rebuilding",
            ebpf.channel, ebpf.llvm_major
        ),
        None => {}
    }
    let llvm_prefix = format!("/usr/lib/llvm-{}", ebpf.llvm_major);
    println!("bpf-linker {BPF_LINKER_VERSION}: building against {llvm_prefix} (a few minutes)");
    run(Command::new("cargo")
        .args([
            "install",
            "bpf-linker",
            "--locked",
            "--force",
            "--version",
            BPF_LINKER_VERSION,
            "--no-default-features",
            "--features",
            &feature,
        ])
        .env("LLVM_PREFIX", &llvm_prefix))
}

fn cargo_deb() -> Result<()> {
    let version = Command::new("cargo").args(["deb", "--version"]).output();
    if let Ok(out) = &version {
        if String::from_utf8_lossy(&out.stdout).contains(CARGO_DEB_VERSION) {
            println!("cargo-deb {CARGO_DEB_VERSION}: present");
            return Ok(());
        }
    }
    println!("cargo-deb {CARGO_DEB_VERSION}: installing");
    run(Command::new("cargo").args([
        "install",
        "cargo-deb",
        "--locked",
        "--version",
        CARGO_DEB_VERSION,
    ]))
}
