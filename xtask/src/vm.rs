//! The VM test rig: one initramfs with the test binaries, booted once per Debian kernel
//! under qemu, with the guest's test results mapped to our exit status.
//!
//! qemu runs with TCG (`-accel tcg -cpu max`): KVM is not available everywhere these tests
//! run, and a TCG boot of a cloud kernel takes a few seconds.

use std::{
    collections::BTreeSet,
    fs,
    io::{BufRead as _, BufReader, Write as _},
    os::unix::fs::symlink,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

use anyhow::{bail, Context as _, Result};
use clap::ValueEnum;

use crate::{
    build, output,
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

pub fn test(root: &Path, choice: KernelChoice) -> Result<()> {
    let rtguard = build::rtguard(root)?;
    let tests = build::vm_tests()?;
    step("assemble VM initramfs");
    let initramfs = initramfs(root, &rtguard, &tests)?;

    let mut results = Vec::new();
    for series in KERNELS.iter().filter(|k| choice.includes(k.name)) {
        let kernel = setup::kernel(root, *series)?;
        step(&format!("VM tests on {}", kernel.package));
        let outcome = boot(root, &kernel, &initramfs)?;
        results.push((kernel.package, outcome));
    }

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

/// Builds `target/vm/initramfs.cpio`: busybox, rtguard, the test binary and the shared
/// libraries they load, with an /init that runs the tests and powers off.
fn initramfs(root: &Path, rtguard: &Path, tests: &Path) -> Result<PathBuf> {
    let vm = setup::vm_dir(root);
    let tree = vm.join("initramfs");
    if tree.exists() {
        fs::remove_dir_all(&tree)?;
    }
    for dir in [
        "bin", "sbin", "dev", "proc", "sys", "tmp", "run", "etc", "root", "tests", "usr/bin",
        "usr/sbin",
    ] {
        fs::create_dir_all(tree.join(dir))?;
    }

    copy_executable(Path::new("/bin/busybox"), &tree.join("bin/busybox"))?;
    for applet in output(Command::new("/bin/busybox").arg("--list-full"))?.lines() {
        let link = tree.join(applet);
        if !link.exists() {
            fs::create_dir_all(link.parent().expect("applet path has a parent"))?;
            symlink("/bin/busybox", &link)?;
        }
    }
    copy_executable(rtguard, &tree.join("bin/rtguard"))?;
    copy_executable(tests, &tree.join("tests/vm"))?;
    for lib in shared_libraries(&[rtguard, tests])? {
        let dest = tree.join(lib.strip_prefix("/").expect("ldd paths are absolute"));
        fs::create_dir_all(dest.parent().expect("library path has a parent"))?;
        fs::copy(&lib, &dest).with_context(|| format!("copying {}", lib.display()))?;
    }
    fs::write(
        tree.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n",
    )?;
    fs::write(tree.join("etc/group"), "root:x:0:\nnogroup:x:65534:\n")?;

    let init = tree.join("init");
    fs::write(&init, INIT_SCRIPT)?;
    copy_mode(&init, 0o755)?;

    let cpio = vm.join("initramfs.cpio");
    let file = fs::File::create(&cpio)?;
    let mut find = Command::new("sh")
        .args([
            "-c",
            "find . -print0 | sort -z | cpio --null -o -H newc --quiet",
        ])
        .current_dir(&tree)
        .stdout(file)
        .spawn()?;
    if !find.wait()?.success() {
        bail!("cpio failed");
    }
    println!(
        "initramfs: {} ({} MiB)",
        cpio.display(),
        fs::metadata(&cpio)?.len() >> 20
    );
    Ok(cpio)
}

/// The guest's /init. It mounts what rtguard and the tests need, shows what the kernel
/// offers, runs the tests one at a time (the kernel is shared state), and powers off.
const INIT_SCRIPT: &str = r#"#!/bin/sh
export PATH=/bin:/sbin:/usr/bin:/usr/sbin HOME=/root
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t tmpfs tmpfs /tmp
mount -t tmpfs tmpfs /run
mount -t securityfs securityfs /sys/kernel/security
mount -t bpf bpf /sys/fs/bpf
mount -t tracefs tracefs /sys/kernel/tracing 2>/dev/null
echo "guest: kernel $(uname -r), LSMs $(cat /sys/kernel/security/lsm)"
/bin/rtguard probe
cd /tmp
RTGUARD_BIN=/bin/rtguard RUST_BACKTRACE=1 /tests/vm --test-threads=1
echo "RTGUARD-VM-EXIT=$?"
poweroff -f
"#;

fn boot(root: &Path, kernel: &VmKernel, initramfs: &Path) -> Result<GuestOutcome> {
    let log_path = setup::vm_dir(root).join(format!("guest-{}.log", kernel.series.name));
    let mut log = fs::File::create(&log_path)?;
    let started = Instant::now();
    let mut child = Command::new("qemu-system-x86_64")
        .args(["-accel", "tcg", "-cpu", "max", "-smp", "2", "-m", "2048"])
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
        .args(["-append", "console=ttyS0 panic=-1 rdinit=/init loglevel=4"])
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

    let tag = kernel.series.name;
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
                println!("[{tag}] {line}");
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
                println!("[{tag}] guest timed out after {GUEST_TIMEOUT:?}; killing qemu");
                child.kill().ok();
                break;
            }
        }
    }
    let status = child.wait()?;
    outcome.elapsed = started.elapsed();
    if outcome.exit.is_none() {
        println!(
            "[{tag}] guest ended without reporting ({status}); log: {}",
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

/// The shared libraries (and the dynamic loader) the binaries load, as `ldd` lists them.
fn shared_libraries(binaries: &[&Path]) -> Result<BTreeSet<PathBuf>> {
    let mut libs = BTreeSet::new();
    for bin in binaries {
        for line in output(Command::new("ldd").arg(bin))?.lines() {
            // "libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x...)" or "/lib64/ld-linux-x86-64.so.2 (0x...)"
            let path = match line.split_once("=>") {
                Some((_, rhs)) => rhs.split_whitespace().next(),
                None => line.split_whitespace().next(),
            };
            if let Some(path) = path.filter(|p| p.starts_with('/')) {
                libs.insert(PathBuf::from(path));
            }
        }
    }
    Ok(libs)
}

fn copy_executable(from: &Path, to: &Path) -> Result<()> {
    fs::copy(from, to)
        .with_context(|| format!("copying {} to {}", from.display(), to.display()))?;
    copy_mode(to, 0o755)
}

fn copy_mode(path: &Path, mode: u32) -> Result<()> {
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
