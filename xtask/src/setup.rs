//! `cargo xtask setup`: idempotent installation of the toolchain and the VM kernels.
//!
//! Each step checks first and does nothing when its result is already there, so a second
//! run takes seconds.

use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{bail, Context as _, Result};

use crate::{output, run, step};

/// Debian packages: LLVM 22 for bpf-linker (it must match rustc's LLVM), qemu for the
/// VM tests, debootstrap and cpio for the VM's Debian rootfs, and the font the benchmark
/// chart is drawn with.
const DEBIAN_PACKAGES: &[&str] = &[
    "llvm-22-dev",
    "libclang-22-dev",
    "libpolly-22-dev",
    "libzstd-dev",
    "zlib1g-dev",
    "qemu-system-x86",
    "cpio",
    "debootstrap",
    "fonts-dejavu-core",
];

const BPF_LINKER_VERSION: &str = "0.13.0";
/// Builds the .deb (`cargo xtask deb`); 3.x builds with rustc 1.95.
const CARGO_DEB_VERSION: &str = "3.8.0";
const LLVM_PREFIX: &str = "/usr/lib/llvm-22";

/// A Debian kernel series the VM tests boot.
#[derive(Clone, Copy, Debug)]
pub struct KernelSeries {
    /// Short name used on the command line and in directory names.
    pub name: &'static str,
    /// Package name prefix; the newest `<prefix>*<suffix>` in the archive is used.
    prefix: &'static str,
    suffix: &'static str,
}

pub const KERNELS: &[KernelSeries] = &[
    KernelSeries {
        name: "6.1",
        prefix: "linux-image-6.1.0-",
        suffix: "-cloud-amd64",
    },
    KernelSeries {
        name: "6.12",
        prefix: "linux-image-6.12.",
        suffix: "+deb12-cloud-amd64",
    },
];

/// An unpacked kernel package.
pub struct VmKernel {
    pub series: KernelSeries,
    pub package: String,
    /// The unpacked package: boot/vmlinuz-*, lib/modules/*.
    pub dir: PathBuf,
}

impl VmKernel {
    pub fn vmlinuz(&self) -> Result<PathBuf> {
        let boot = self.dir.join("boot");
        for entry in fs::read_dir(&boot).with_context(|| format!("reading {}", boot.display()))? {
            let path = entry?.path();
            if path
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("vmlinuz-"))
            {
                return Ok(path);
            }
        }
        bail!("no vmlinuz in {}", boot.display())
    }
}

pub fn vm_dir(root: &Path) -> PathBuf {
    root.join("target/vm")
}

pub fn ensure(root: &Path) -> Result<()> {
    step("setup");
    debian_packages()?;
    rust_src()?;
    bpf_linker()?;
    cargo_deb()?;
    for series in KERNELS {
        kernel(root, *series)?;
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

fn debian_packages() -> Result<()> {
    let missing: Vec<&str> = DEBIAN_PACKAGES
        .iter()
        .copied()
        .filter(|p| !is_installed(p))
        .collect();
    if missing.is_empty() {
        println!("debian packages: all {} present", DEBIAN_PACKAGES.len());
        return Ok(());
    }
    println!("debian packages: installing {}", missing.join(" "));
    run(Command::new("apt-get").arg("update").arg("-q"))?;
    run(Command::new("apt-get")
        .args(["install", "-y", "-q", "--no-install-recommends"])
        .args(&missing)
        .env("DEBIAN_FRONTEND", "noninteractive"))
}

fn rust_src() -> Result<()> {
    let installed = output(Command::new("rustup").args([
        "component",
        "list",
        "--installed",
        "--toolchain",
        "nightly",
    ]))
    .unwrap_or_default();
    if installed.lines().any(|l| l.starts_with("rust-src")) {
        println!("nightly rust-src: present");
        return Ok(());
    }
    println!("nightly rust-src: installing");
    run(Command::new("rustup").args([
        "toolchain",
        "install",
        "nightly",
        "--profile",
        "minimal",
        "--component",
        "rust-src",
    ]))
}

fn bpf_linker() -> Result<()> {
    let version = Command::new("bpf-linker").arg("--version").output();
    if let Ok(out) = &version {
        if String::from_utf8_lossy(&out.stdout).contains(BPF_LINKER_VERSION) {
            println!("bpf-linker {BPF_LINKER_VERSION}: present");
            return Ok(());
        }
    }
    println!("bpf-linker {BPF_LINKER_VERSION}: building against {LLVM_PREFIX} (a few minutes)");
    run(Command::new("cargo")
        .args([
            "install",
            "bpf-linker",
            "--locked",
            "--version",
            BPF_LINKER_VERSION,
            "--no-default-features",
            "--features",
            "llvm-22",
        ])
        .env("LLVM_PREFIX", LLVM_PREFIX))
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

/// The unpacked kernel for `series`, downloading it on first use.
pub fn kernel(root: &Path, series: KernelSeries) -> Result<VmKernel> {
    let dir = vm_dir(root).join("kernels").join(series.name);
    let stamp = dir.join(".package");
    if let Ok(package) = fs::read_to_string(&stamp) {
        println!("kernel {}: {} (cached)", series.name, package.trim());
        return Ok(VmKernel {
            series,
            package: package.trim().to_owned(),
            dir,
        });
    }
    let package = newest_kernel_package(series)?;
    println!("kernel {}: downloading {package}", series.name);
    let debs = vm_dir(root).join("debs");
    fs::create_dir_all(&debs)?;
    run(Command::new("apt-get")
        .args(["download", "-q", &package])
        .current_dir(&debs))?;
    let deb = fs::read_dir(&debs)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with(&format!("{package}_")))
        })
        .with_context(|| format!("apt-get download left no {package}_*.deb"))?;
    if dir.exists() {
        fs::remove_dir_all(&dir)?;
    }
    fs::create_dir_all(&dir)?;
    run(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&dir))?;
    fs::write(&stamp, &package)?;
    Ok(VmKernel {
        series,
        package,
        dir,
    })
}

fn newest_kernel_package(series: KernelSeries) -> Result<String> {
    let mut names = candidates(series)?;
    if names.is_empty() {
        run(Command::new("apt-get").arg("update").arg("-q"))?;
        names = candidates(series)?;
    }
    names.sort_by_key(|n| version_key(n));
    names.pop().with_context(|| {
        format!(
            "no {}*{} package in the archive",
            series.prefix, series.suffix
        )
    })
}

fn candidates(series: KernelSeries) -> Result<Vec<String>> {
    let names = output(Command::new("apt-cache").args(["pkgnames", series.prefix]))?;
    Ok(names
        .lines()
        .filter(|n| {
            n.ends_with(series.suffix)
                && n[series.prefix.len()..n.len() - series.suffix.len()]
                    .bytes()
                    .all(|b| b.is_ascii_digit())
        })
        .map(str::to_owned)
        .collect())
}

/// Orders `linux-image-6.1.0-56-…` after `linux-image-6.1.0-9-…`.
fn version_key(name: &str) -> Vec<u64> {
    name.split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty())
        .filter_map(|s| s.parse().ok())
        .collect()
}
