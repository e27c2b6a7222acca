//! The VM test rig: a Debian rootfs with the test binaries, booted from RAM once per
//! Debian kernel under qemu, with the guest's test results mapped to our exit status.
//!
//! qemu runs with TCG (`-accel tcg -cpu max`): KVM is not available everywhere these tests
//! run, and a TCG boot of a cloud kernel takes a few seconds.

use std::{
    fs,
    io::{BufRead as _, BufReader, Write as _},
    path::{Path, PathBuf},
    process::{Command, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

use anyhow::{bail, Context as _, Result};
use clap::ValueEnum;

use crate::{
    build, rootfs,
    setup::{self, VmKernel, KERNELS},
    step,
};

/// A whole guest run (boot, every test, poweroff) must end within this.
const GUEST_TIMEOUT: Duration = Duration::from_secs(20 * 60);
/// The guest prints this with the test binary's exit status as its last act.
const EXIT_MARKER: &str = "RTGUARD-VM-EXIT=";

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum KernelChoice {
    #[value(name = "6.1")]
    V6_1,
    #[value(name = "6.12")]
    V6_12,
    All,
}

impl KernelChoice {
    fn includes(self, name: &str) -> bool {
        match self {
            KernelChoice::V6_1 => name == "6.1",
            KernelChoice::V6_12 => name == "6.12",
            KernelChoice::All => true,
        }
    }
}

/// What one guest boot reported.
struct GuestOutcome {
    exit: Option<i32>,
    passed: u32,
    failed: u32,
    elapsed: Duration,
}

/// `cargo xtask demo`: the seed incident replayed in the VM on one kernel.
pub fn demo(root: &Path, choice: KernelChoice) -> Result<()> {
    let rtguard = build::rtguard(root)?;
    let deb = build::deb(root)?;
    let tests = build::vm_tests()?;
    let vm = setup::vm_dir(root);
    let base = rootfs::base_cpio(&vm)?;
    let run_dir = vm.join("runs").join(std::process::id().to_string());
    fs::create_dir_all(&run_dir)?;
    let overlay = tests_cpio(root, &run_dir, &rtguard, &tests, &deb, None)?;
    let series = KERNELS
        .iter()
        .find(|k| choice.includes(k.name))
        .expect("a kernel");
    let kernel = setup::kernel(root, *series)?;
    let modules = rootfs::modules_cpio(&vm, &kernel)?;
    let initramfs = run_dir.join("initramfs-demo.cpio");
    rootfs::concat(&[&base, &modules, &overlay], &initramfs)?;
    step(&format!(
        "the seed incident on {}, with rtguard",
        kernel.package
    ));
    let outcome = boot_with(&run_dir, &kernel, &initramfs, " rtguard.demo", false)?;
    fs::remove_file(&initramfs).ok();
    match outcome.exit {
        Some(0) => Ok(()),
        other => bail!("the demo ended with {other:?}"),
    }
}

pub fn test(root: &Path, choice: KernelChoice, filter: Option<&str>) -> Result<()> {
    let rtguard = build::rtguard(root)?;
    let deb = build::deb(root)?;
    let tests = build::vm_tests()?;
    step("assemble VM initramfs");
    let vm = setup::vm_dir(root);
    let base = rootfs::base_cpio(&vm)?;
    // This run's own files (overlay, initramfs, guest logs) live apart from the shared
    // caches, so two runs on one machine can't swap each other's binaries.
    let run_dir = vm.join("runs").join(std::process::id().to_string());
    if run_dir.exists() {
        fs::remove_dir_all(&run_dir)?;
    }
    fs::create_dir_all(&run_dir)?;
    let overlay = tests_cpio(root, &run_dir, &rtguard, &tests, &deb, filter)?;

    let mut results = Vec::new();
    for series in KERNELS.iter().filter(|k| choice.includes(k.name)) {
        let kernel = setup::kernel(root, *series)?;
        let modules = rootfs::modules_cpio(&vm, &kernel)?;
        let initramfs = run_dir.join(format!("initramfs-{}.cpio", series.name));
        rootfs::concat(&[&base, &modules, &overlay], &initramfs)?;
        step(&format!("VM tests on {}", kernel.package));
        let outcome = boot(&run_dir, &kernel, &initramfs)?;
        // The initramfs is a few hundred MiB; the log is what is worth keeping.
        fs::remove_file(&initramfs).ok();
        results.push((kernel.package, outcome));
    }

    // Keep the guest logs; the packed binaries are rebuilt next time.
    fs::remove_dir_all(run_dir.join("tests-overlay")).ok();
    fs::remove_file(&overlay).ok();

    step("VM test summary");
    let mut ok = true;
    for (package, o) in &results {
        let verdict = match o.exit {
            Some(0) if o.failed == 0 && o.passed > 0 => "ok",
            _ => {
                ok = false;
                "FAILED"
            }
        };
        println!(
            "{package:<40} {verdict:<6} {} passed, {} failed, guest exit {}, {:.0?}",
            o.passed,
            o.failed,
            o.exit.map_or("none".to_owned(), |c| c.to_string()),
            o.elapsed
        );
    }
    // One plain closing line for whoever reads the log: the totals over every kernel.
    let passed: u32 = results.iter().map(|(_, o)| o.passed).sum();
    let failed: u32 = results.iter().map(|(_, o)| o.failed).sum();
    println!("vm-tests: {passed} passed, {failed} failed");
    if !ok {
        bail!("VM tests failed");
    }
    Ok(())
}

/// Packs this run's binaries and the guest's /init into a small archive that goes on top
/// of the cached Debian rootfs. The rootfs is the same Debian release the binaries are
/// built on, so they find the libraries they were linked against.
fn tests_cpio(
    root: &Path,
    run_dir: &Path,
    rtguard: &Path,
    tests: &Path,
    deb: &Path,
    filter: Option<&str>,
) -> Result<PathBuf> {
    let tree = run_dir.join("tests-overlay");
    if tree.exists() {
        fs::remove_dir_all(&tree)?;
    }
    // Where the package installs them (usr/lib, not lib: /lib is a symlink in the
    // merged-/usr rootfs, and an archive entry for a real lib/ would replace it).
    fs::create_dir_all(tree.join("usr/bin"))?;
    fs::create_dir_all(tree.join("usr/lib/systemd/system"))?;
    fs::create_dir_all(tree.join("tests"))?;
    copy_executable(rtguard, &tree.join("usr/bin/rtguard"))?;
    fs::copy(
        root.join("packaging/rtguard.service"),
        tree.join("usr/lib/systemd/system/rtguard.service"),
    )?;
    copy_executable(tests, &tree.join("tests/vm"))?;
    // The package itself, for the installation test.
    fs::create_dir_all(tree.join("root/debs"))?;
    fs::copy(deb, tree.join("root/debs/rtguard.deb"))?;
    // The shipped policies, where a package would install them.
    let policies = tree.join("etc/rtguard");
    fs::create_dir_all(&policies)?;
    for entry in fs::read_dir(root.join("policy"))? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "toml") {
            fs::copy(&path, policies.join(path.file_name().expect("a file name")))?;
        }
    }
    // The guest passes this file's words to the test binary: a libtest name filter.
    fs::write(tree.join("tests/filter"), filter.unwrap_or_default())?;
    let init = tree.join("init");
    fs::write(&init, INIT_SCRIPT)?;
    set_mode(&init, 0o755)?;
    let demo = tree.join("demo.sh");
    fs::write(&demo, include_str!("demo.sh"))?;
    set_mode(&demo, 0o755)?;
    let cpio = run_dir.join("tests-overlay.cpio");
    rootfs::pack(&tree, &cpio)?;
    Ok(cpio)
}

/// The guest's /init. It mounts what rtguard and the tests need, shows what the kernel
/// offers, runs the tests one at a time (the kernel is shared state), and powers off.
const INIT_SCRIPT: &str = r#"#!/bin/sh
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /dev/shm && mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /tmp
mount -t tmpfs tmpfs /run
mount -t securityfs securityfs /sys/kernel/security
mount -t bpf bpf /sys/fs/bpf
mount -t cgroup2 cgroup2 /sys/fs/cgroup
mount -t tracefs tracefs /sys/kernel/tracing 2>/dev/null
hostname rtguard-vm
depmod -a
echo "guest: kernel $(uname -r), LSMs $(cat /sys/kernel/security/lsm)"
rtguard probe
cd /tmp
if grep -q rtguard.demo /proc/cmdline; then
    sh /demo.sh
    echo "RTGUARD-VM-EXIT=$?"
else
    RTGUARD_BIN=/usr/bin/rtguard RUST_BACKTRACE=1 /tests/vm --test-threads=1 --color never --show-output $(cat /tests/filter)
    echo "RTGUARD-VM-EXIT=$?"
fi
poweroff -f -f
echo o > /proc/sysrq-trigger
"#;

fn boot(run_dir: &Path, kernel: &VmKernel, initramfs: &Path) -> Result<GuestOutcome> {
    boot_with(run_dir, kernel, initramfs, "", true)
}

/// Boots the guest; `extra_cmdline` is appended to the kernel command line, and `tag`
/// prefixes each console line with the kernel (off for the demo, which is read by people).
fn boot_with(
    run_dir: &Path,
    kernel: &VmKernel,
    initramfs: &Path,
    extra_cmdline: &str,
    tag: bool,
) -> Result<GuestOutcome> {
    let log_path = run_dir.join(format!("guest-{}.log", kernel.series.name));
    let mut log = fs::File::create(&log_path)?;
    let started = Instant::now();
    let mut child = Command::new("qemu-system-x86_64")
        .args(["-accel", "tcg", "-cpu", "max", "-smp", "2", "-m", "3072"])
        .args([
            "-nodefaults",
            "-display",
            "none",
            "-serial",
            "stdio",
            "-no-reboot",
        ])
        .arg("-kernel")
        .arg(kernel.vmlinuz()?)
        .arg("-initrd")
        .arg(initramfs)
        .arg("-append")
        .arg(format!(
            "console=ttyS0 panic=-1 rdinit=/init loglevel=4{extra_cmdline}"
        ))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .context("starting qemu-system-x86_64")?;

    let (tx, rx) = mpsc::channel();
    let stdout = child.stdout.take().expect("piped");
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });

    let name = kernel.series.name;
    let mut outcome = GuestOutcome {
        exit: None,
        passed: 0,
        failed: 0,
        elapsed: Duration::ZERO,
    };
    loop {
        let left = GUEST_TIMEOUT.saturating_sub(started.elapsed());
        match rx.recv_timeout(left) {
            Ok(line) => {
                let line = line.trim_end_matches('\r');
                if tag {
                    println!("[{name}] {line}");
                } else if !line.starts_with('[') && !line.starts_with(EXIT_MARKER) {
                    println!("{line}");
                }
                writeln!(log, "{line}")?;
                if let Some(code) = line.strip_prefix(EXIT_MARKER) {
                    outcome.exit = code.trim().parse().ok();
                }
                if let Some((passed, failed)) = parse_test_result(line) {
                    outcome.passed += passed;
                    outcome.failed += failed;
                }
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                println!("[{name}] guest timed out after {GUEST_TIMEOUT:?}; killing qemu");
                child.kill().ok();
                break;
            }
        }
    }
    let status = child.wait()?;
    outcome.elapsed = started.elapsed();
    if outcome.exit.is_none() {
        println!(
            "[{name}] guest ended without reporting ({status}); log: {}",
            log_path.display()
        );
    }
    Ok(outcome)
}

/// Reads libtest's `test result: ok. 3 passed; 0 failed; ...` line.
fn parse_test_result(line: &str) -> Option<(u32, u32)> {
    let rest = line.strip_prefix("test result: ")?;
    let count = |word: &str| -> Option<u32> {
        let end = rest.find(&format!(" {word}"))?;
        rest[..end]
            .rsplit(|c: char| !c.is_ascii_digit())
            .next()?
            .parse()
            .ok()
    };
    Some((count("passed")?, count("failed")?))
}

fn copy_executable(from: &Path, to: &Path) -> Result<()> {
    fs::copy(from, to)
        .with_context(|| format!("copying {} to {}", from.display(), to.display()))?;
    set_mode(to, 0o755)
}

fn set_mode(path: &Path, mode: u32) -> Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    fs::set_permissions(path, fs::Permissions::from_mode(mode))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_libtest_summary() {
        assert_eq!(
            parse_test_result("test result: ok. 5 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out; finished in 3.2s"),
            Some((5, 0))
        );
        assert_eq!(
            parse_test_result("test result: FAILED. 3 passed; 2 failed; 0 ignored"),
            Some((3, 2))
        );
        assert_eq!(parse_test_result("running 5 tests"), None);
    }
}
