//! The VM's root filesystem: a debootstrap of Debian bookworm with the real runtime
//! packages (containerd, runc, iptables, nftables, systemd), packed as initramfs pieces.
//!
//! The guest boots straight into it from RAM: the kernel unpacks concatenated cpio
//! archives, so the large, cached base and the kernel's modules are built once, and only
//! the small archive with this run's binaries is packed each time.

use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{bail, Context as _, Result};

use crate::{kernels::VmKernel, run};

pub const SUITE: &str = "bookworm";
const MIRROR: &str = "http://deb.debian.org/debian";

/// Installed on top of the minbase variant. The first five are what the guard protects
/// in the tests; the rest are the tools the tests drive (pkill, killall, modprobe, and
/// mkfs for the ext4, XFS and btrfs filesystems the file identity tests make).
pub const PACKAGES: &[&str] = &[
    "containerd",
    "runc",
    "iptables",
    "nftables",
    "systemd",
    "systemd-sysv",
    "kmod",
    "procps",
    "psmisc",
    "e2fsprogs",
    "xfsprogs",
    "btrfs-progs",
];

/// Packages whose .deb files stay in the image, for upgrade and reinstall tests.
const KEPT_DEBS: &[&str] = &["containerd", "runc"];

/// Module directories shipped into the guest: netfilter, the filesystems (XFS and btrfs
/// are modules in Debian's cloud kernels), loop devices, and what they depend on.
pub const MODULE_DIRS: &[&str] = &[
    "kernel/net",
    "kernel/lib",
    "kernel/crypto",
    "kernel/fs",
    "kernel/drivers/block",
];

fn rootfs_dir(vm: &Path) -> PathBuf {
    vm.join(format!("rootfs-{SUITE}"))
}

/// The base archive: the debootstrapped tree, trimmed. Built once, then cached.
pub fn base_cpio(vm: &Path) -> Result<PathBuf> {
    let tree = rootfs_dir(vm);
    let cpio = vm.join(format!("rootfs-{SUITE}.cpio"));
    let stamp = vm.join(format!("rootfs-{SUITE}.stamp"));
    // The stamp names the packages and the image layout version (bump it when `trim`
    // changes), so a stale cache is rebuilt.
    let wanted = format!("{} layout=2", PACKAGES.join(","));
    if cpio.exists() && fs::read_to_string(&stamp).is_ok_and(|s| s == wanted) {
        println!("rootfs {SUITE}: {} (cached)", cpio.display());
        return Ok(cpio);
    }
    println!(
        "rootfs {SUITE}: debootstrap with {} (about a minute)",
        PACKAGES.join(",")
    );
    if tree.exists() {
        fs::remove_dir_all(&tree)?;
    }
    debootstrap(PACKAGES, &tree)?;
    trim(&tree, KEPT_DEBS)?;
    fs::write(tree.join("etc/hostname"), "rtguard-vm\n")?;
    pack(&tree, &cpio)?;
    fs::write(&stamp, wanted)?;
    Ok(cpio)
}

/// Debootstraps Debian's minimal variant with `packages` into `tree`.
pub fn debootstrap(packages: &[&str], tree: &Path) -> Result<()> {
    run(Command::new("debootstrap")
        .args([
            "--variant=minbase",
            &format!("--include={}", packages.join(",")),
            SUITE,
        ])
        .arg(tree)
        .arg(MIRROR))
    .context("debootstrap")
}

/// Removes what the guest never reads, and keeps the .debs (`kept`) the tests install
/// again in /root/debs.
pub fn trim(tree: &Path, kept: &[&str]) -> Result<()> {
    let archives = tree.join("var/cache/apt/archives");
    let debs = tree.join("root/debs");
    fs::create_dir_all(&debs)?;
    for entry in fs::read_dir(&archives)? {
        let path = entry?.path();
        let name = path
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        if kept.iter().any(|p| name.starts_with(&format!("{p}_"))) {
            fs::rename(&path, debs.join(&name))?;
        }
    }
    // Only apt's caches go: package files stay, so `dpkg -V` in the tests checks what
    // dpkg installed, not what the image builder deleted.
    for dir in ["var/cache/apt", "var/lib/apt/lists"] {
        let path = tree.join(dir);
        if path.exists() {
            fs::remove_dir_all(&path)?;
            fs::create_dir_all(&path)?;
        }
    }
    fs::create_dir_all(tree.join("var/cache/apt/archives/partial"))?;
    Ok(())
}

/// The kernel's modules that the tests load (netfilter, filesystems, loop), as an archive
/// of its own.
pub fn modules_cpio(vm: &Path, kernel: &VmKernel) -> Result<PathBuf> {
    let cpio = vm.join(format!("modules-{}.cpio", kernel.series.name));
    let stamp = vm.join(format!("modules-{}.stamp", kernel.series.name));
    let wanted = format!("{} {}", kernel.package, MODULE_DIRS.join(","));
    if cpio.exists() && fs::read_to_string(&stamp).is_ok_and(|s| s == wanted) {
        return Ok(cpio);
    }
    let staging = vm.join(format!("modules-{}", kernel.series.name));
    if staging.exists() {
        fs::remove_dir_all(&staging)?;
    }
    let from = kernel.modules_dir()?;
    let release = from.file_name().context("modules dir has a name")?;
    // usr/lib, not lib: in a merged-/usr rootfs /lib is a symlink, and an archive entry
    // for a real lib/ directory would replace it.
    copy_modules(
        &from,
        &staging.join("usr/lib/modules").join(release),
        MODULE_DIRS,
    )?;
    pack(&staging, &cpio)?;
    fs::write(&stamp, wanted)?;
    Ok(cpio)
}

/// Copies the module directories `dirs` of one kernel's modules (`from`) to `to`.
pub fn copy_modules(from: &Path, to: &Path, dirs: &[&str]) -> Result<()> {
    fs::create_dir_all(to)?;
    // The split packages of 7.x ship none of these; depmod in the guest does without.
    for file in [
        "modules.order",
        "modules.builtin",
        "modules.builtin.modinfo",
    ] {
        if from.join(file).exists() {
            fs::copy(from.join(file), to.join(file))?;
        }
    }
    for dir in dirs {
        fs::create_dir_all(to.join(dir).parent().expect("module dir has a parent"))?;
        run(Command::new("cp")
            .arg("-a")
            .arg(from.join(dir))
            .arg(to.join(dir)))?;
    }
    Ok(())
}

/// Packs a directory tree as a newc cpio archive, in a stable order.
pub fn pack(tree: &Path, cpio: &Path) -> Result<()> {
    let out = fs::File::create(cpio).with_context(|| format!("creating {}", cpio.display()))?;
    let status = Command::new("sh")
        .args([
            "-c",
            "find . -print0 | LC_ALL=C sort -z | cpio --null -o -H newc --quiet",
        ])
        .current_dir(tree)
        .stdout(out)
        .status()?;
    if !status.success() {
        bail!("packing {} failed", tree.display());
    }
    Ok(())
}

/// Concatenates archives into one initramfs; the kernel unpacks them in order, later
/// files replacing earlier ones.
pub fn concat(parts: &[&Path], out: &Path) -> Result<()> {
    let mut dest = fs::File::create(out)?;
    for part in parts {
        let mut src =
            fs::File::open(part).with_context(|| format!("opening {}", part.display()))?;
        std::io::copy(&mut src, &mut dest)?;
    }
    Ok(())
}
