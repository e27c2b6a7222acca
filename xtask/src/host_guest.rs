//! The host guest: a Debian host as operators run one. systemd is pid 1, `docker.io` (with
//! containerd and runc) comes from the archive and runs a container, and rtguard is
//! installed from its own .deb and enabled as the README says.
//!
//! The other guests boot from RAM with a shell as pid 1. This one needs what RAM can't
//! give: a root filesystem that survives a reboot (rtguard must be up before containerd
//! on the next boot). So the Debian tree is an ext4 disk image, built once and cached,
//! and copied for each run. A small first-stage initramfs (a static busybox, the disk
//! driver and this run's binaries) mounts the disk, puts the binaries and the kernel's
//! modules on it, and hands over to systemd.

use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{bail, Context as _, Result};

use crate::{
    build,
    kernels::{self, VmKernel},
    rootfs, run, step,
    vm::{self, Boot, VmBoot},
};

/// On top of the shell guest's packages: the Docker engine, a static busybox (the first
/// stage's shell and the test container's only binary), the system bus (`busctl`), `ip`
/// (the address the container's port is published on) and AppArmor's parser (Debian's
/// kernels enable AppArmor, and Docker then loads its container profile).
const EXTRA_PACKAGES: &[&str] = &[
    "docker.io",
    "busybox-static",
    "dbus",
    "iproute2",
    "apparmor",
];

/// Kept in the image for the reinstall test (`apt-get install --reinstall`).
const KEPT_DEBS: &[&str] = &["containerd", "runc", "docker.io"];

/// The kernel's module directories the guest needs besides the shell guest's: the disk
/// and its bus (the first stage loads them) and the virtual links Docker makes.
const EXTRA_MODULE_DIRS: &[&str] = &["kernel/drivers/virtio", "kernel/drivers/net"];

/// Loaded by the first stage, in this order, from the kernel's modules (a module built
/// into the kernel is simply absent).
const DISK_MODULES: &[&str] = &[
    "virtio",
    "virtio_ring",
    "virtio_pci_legacy_dev",
    "virtio_pci_modern_dev",
    "virtio_pci",
    "virtio_blk",
];

/// The disk image's size; the file is sparse.
const IMAGE_SIZE: &str = "4G";

/// The kernel that `cargo xtask test` boots this guest on.
pub const DEFAULT_KERNEL: vm::KernelChoice = vm::KernelChoice::V6_12;

fn tree_dir(vm: &Path) -> PathBuf {
    vm.join(format!("host-{}", rootfs::SUITE))
}

/// The cached disk image of the host: debootstrapped, configured, packed as ext4.
fn image(vm: &Path) -> Result<PathBuf> {
    let tree = tree_dir(vm);
    let image = vm.join(format!("host-{}.ext4", rootfs::SUITE));
    let stamp = vm.join(format!("host-{}.stamp", rootfs::SUITE));
    let packages: Vec<&str> = rootfs::PACKAGES
        .iter()
        .chain(EXTRA_PACKAGES)
        .copied()
        .collect();
    // Bump the layout number when `configure` changes, so a stale image is rebuilt.
    let wanted = format!("{} layout=3", packages.join(","));
    if image.exists() && fs::read_to_string(&stamp).is_ok_and(|s| s == wanted) {
        println!("host image: {} (cached)", image.display());
        return Ok(image);
    }
    step(&format!(
        "host image: debootstrap with {} (a few minutes)",
        packages.join(",")
    ));
    if tree.exists() {
        fs::remove_dir_all(&tree)?;
    }
    rootfs::debootstrap(&packages, &tree)?;
    rootfs::trim(&tree, KEPT_DEBS)?;
    configure(&tree)?;
    fs::remove_file(&image).ok();
    run(Command::new("mkfs.ext4")
        .args(["-q", "-F", "-L", "rtguard-host", "-d"])
        .arg(&tree)
        .arg(&image)
        .arg(IMAGE_SIZE))
    .context("packing the host image")?;
    fs::write(&stamp, wanted)?;
    Ok(image)
}

/// Makes the debootstrapped tree boot as a quiet, headless host that runs the tests.
fn configure(tree: &Path) -> Result<()> {
    fs::write(tree.join("etc/hostname"), "rtguard-host\n")?;
    // The first stage mounts the root file system; there is no udev to wait for devices.
    fs::write(
        tree.join("etc/fstab"),
        "# the root file system is mounted by the first stage\n",
    )?;
    // Docker publishes ports through its NAT chains only, without its userland proxy, so
    // a container that answers proves the DOCKER chain is intact.
    fs::create_dir_all(tree.join("etc/docker"))?;
    fs::write(
        tree.join("etc/docker/daemon.json"),
        "{ \"userland-proxy\": false }\n",
    )?;
    // No logins, timers or housekeeping: they only slow the boot under emulation.
    let system = tree.join("etc/systemd/system");
    for unit in [
        "serial-getty@ttyS0.service",
        "getty@tty1.service",
        "apt-daily.timer",
        "apt-daily-upgrade.timer",
        "e2scrub_all.timer",
        "e2scrub_reap.service",
        "fstrim.timer",
        "man-db.timer",
        "systemd-timesyncd.service",
    ] {
        let link = system.join(unit);
        fs::remove_file(&link).ok();
        std::os::unix::fs::symlink("/dev/null", &link)?;
    }
    let unit = system.join("rtguard-vm.service");
    fs::write(&unit, TEST_UNIT)?;
    let wants = system.join("multi-user.target.wants");
    fs::create_dir_all(&wants)?;
    let link = wants.join("rtguard-vm.service");
    fs::remove_file(&link).ok();
    std::os::unix::fs::symlink("../rtguard-vm.service", &link)?;
    Ok(())
}

/// Runs the guest's tests once the runtime is up. It is not ordered after
/// multi-user.target, which wants it: a target waits for what it wants. A simple service,
/// so the boot finishes (and `systemd-analyze` can time it) while the tests run.
const TEST_UNIT: &str = "\
[Unit]
Description=rtguard VM tests
After=docker.service containerd.service rtguard.service

[Service]
ExecStart=/root/payload/guest.sh
# Straight to the serial console, unprefixed: the runner reads the tests' summary lines.
StandardInput=null
StandardOutput=tty
StandardError=tty
TTYPath=/dev/ttyS0
";

/// The first stage: brings up the disk, refreshes this run's files on it, switches to it.
const STAGE1_INIT: &str = r#"#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
for m in $(cat /disk-modules); do
    [ -e /modules/$m.ko ] && insmod /modules/$m.ko
done
i=0
while [ ! -b /dev/vda ] && [ $i -lt 300 ]; do sleep 0.1; i=$((i + 1)); done
mkdir -p /newroot
mount -t ext4 -o rw /dev/vda /newroot || { echo "stage1: cannot mount /dev/vda"; echo o > /proc/sysrq-trigger; }
rm -rf /newroot/root/payload
cp -a /payload /newroot/root/payload
release=$(uname -r)
if [ ! -d /newroot/usr/lib/modules/$release ]; then
    mkdir -p /newroot/usr/lib/modules
    cp -a /lib/modules/$release /newroot/usr/lib/modules/$release
    chroot /newroot /usr/sbin/depmod -a $release
fi
umount /proc /sys /dev
exec switch_root /newroot /sbin/init
"#;

/// Runs the host guest's tests on one kernel: before a reboot, then after it.
pub fn test(root: &Path, choice: vm::KernelChoice) -> Result<()> {
    let rtguard = build::rtguard(root)?;
    let deb = build::deb(root)?;
    let tests = build::vm_tests()?;
    let vm_dir = kernels::vm_dir(root);
    let image = image(&vm_dir)?;
    let run_dir = vm::run_dir(root)?;
    let mut results = Vec::new();
    for vm_boot in choice.boots() {
        let kernel = kernels::kernel(root, vm_boot.series)?;
        step(&format!(
            "host guest (systemd, Docker) on {}{}",
            kernel.package, vm_boot.cmdline
        ));
        let disk = run_dir.join(format!("host-{}.ext4", vm_boot.name));
        run(Command::new("cp")
            .arg("--sparse=always")
            .arg(&image)
            .arg(&disk))?;
        let initramfs = stage1(&vm_dir, &run_dir, &kernel, &rtguard, &deb, &tests)?;
        let outcome = boot(&run_dir, &vm_boot, &kernel, &initramfs, &disk)?;
        fs::remove_file(&disk).ok();
        fs::remove_file(&initramfs).ok();
        results.push((format!("{} (host guest)", kernel.package), outcome));
    }
    vm::summarize(&results)
}

fn boot(
    run_dir: &Path,
    vm_boot: &VmBoot,
    kernel: &VmKernel,
    initramfs: &Path,
    disk: &Path,
) -> Result<vm::GuestOutcome> {
    let drive = format!("file={},format=raw,if=virtio,cache=unsafe", disk.display());
    let how = Boot {
        // The first stage is /init; systemd's own status lines would split the tests'.
        cmdline: " root=/dev/vda systemd.show_status=false",
        tag: true,
        qemu_args: &["-drive", &drive],
        cpus: vm::GUEST_CPUS,
        // The guest reboots once, into the same kernel and disk.
        reboots: true,
    };
    let host_boot = VmBoot {
        name: "host",
        ..*vm_boot
    };
    vm::boot_with(run_dir, &host_boot, kernel, initramfs, &how)
}

/// The first stage's initramfs: busybox, the disk modules, the kernel's other modules
/// (copied onto the disk on the first boot) and this run's binaries.
fn stage1(
    vm_dir: &Path,
    run_dir: &Path,
    kernel: &VmKernel,
    rtguard: &Path,
    deb: &Path,
    tests: &Path,
) -> Result<PathBuf> {
    let tree = run_dir.join("host-stage1");
    if tree.exists() {
        fs::remove_dir_all(&tree)?;
    }
    for dir in ["bin", "proc", "sys", "dev", "modules", "payload"] {
        fs::create_dir_all(tree.join(dir))?;
    }
    vm::copy_executable(
        &tree_dir(vm_dir).join("bin/busybox"),
        &tree.join("bin/busybox"),
    )?;
    let init = tree.join("init");
    fs::write(&init, STAGE1_INIT)?;
    vm::set_mode(&init, 0o755)?;
    fs::write(tree.join("disk-modules"), DISK_MODULES.join(" "))?;

    // The kernel's modules as the shell guest gets them, plus the disk and network
    // drivers; the disk's own modules also uncompressed, for busybox's insmod.
    let from = kernel.modules_dir()?;
    let release = from.file_name().context("modules dir has a name")?;
    let to = tree.join("lib/modules").join(release);
    rootfs::copy_modules(
        &from,
        &to,
        &[rootfs::MODULE_DIRS, EXTRA_MODULE_DIRS].concat(),
    )?;
    for name in DISK_MODULES {
        let Some(found) = find_module(&from, name)? else {
            continue;
        };
        let plain = tree.join("modules").join(format!("{name}.ko"));
        if found.extension().is_some_and(|e| e == "xz") {
            let out = fs::File::create(&plain)?;
            let status = Command::new("xz")
                .args(["-d", "-c"])
                .arg(&found)
                .stdout(out)
                .status()?;
            if !status.success() {
                bail!("decompressing {}", found.display());
            }
        } else {
            fs::copy(&found, &plain)?;
        }
    }

    let payload = tree.join("payload");
    vm::copy_executable(rtguard, &payload.join("rtguard"))?;
    vm::copy_executable(tests, &payload.join("vm"))?;
    fs::copy(deb, payload.join("rtguard.deb"))?;
    let guest = payload.join("guest.sh");
    fs::write(&guest, include_str!("host_guest.sh"))?;
    vm::set_mode(&guest, 0o755)?;

    let cpio = run_dir.join("initramfs-host.cpio");
    rootfs::pack(&tree, &cpio)?;
    fs::remove_dir_all(&tree)?;
    Ok(cpio)
}

/// The file of a module by name (`virtio_blk.ko` or `virtio_blk.ko.xz`), if it is one.
fn find_module(modules: &Path, name: &str) -> Result<Option<PathBuf>> {
    let out = crate::output(Command::new("find").arg(modules.join("kernel")).args([
        "-name",
        &format!("{name}.ko"),
        "-o",
        "-name",
        &format!("{name}.ko.*"),
    ]))?;
    Ok(out.lines().next().map(PathBuf::from))
}
