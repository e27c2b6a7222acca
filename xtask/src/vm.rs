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
    build,
    kernels::{self, KernelSeries, VmKernel, KERNELS},
    rootfs, step,
};

/// A whole guest run (boot, every test, poweroff) must end within this. It catches a hung
/// guest, not a slow one: under emulation a full run takes 10 to 16 minutes on an idle
/// 2-core host, and twice that when the host is shared.
const GUEST_TIMEOUT: Duration = Duration::from_secs(40 * 60);
/// A guest that has printed nothing by then hung before its init ran (seen under TCG
/// with two vCPUs on a shared host: no console output at all). The guest's init prints
/// within a minute or two of the start even then, so this only cuts a hang short, and a
/// test run boots that kernel once more.
const FIRST_OUTPUT_TIMEOUT: Duration = Duration::from_secs(10 * 60);
/// The guest machine.
pub const GUEST_CPUS: u32 = 2;
pub const GUEST_MEMORY_MIB: u32 = 3072;
/// The guest prints this with the test binary's exit status as its last act.
const EXIT_MARKER: &str = "RTGUARD-VM-EXIT=";

/// One boot of the test matrix: a Debian kernel and what is added to its command line.
#[derive(Clone, Copy, Debug)]
pub struct VmBoot {
    /// On the command line (`--kernel`), in the guest log's name and in the summary.
    pub name: &'static str,
    pub series: KernelSeries,
    /// Appended to the kernel command line.
    pub cmdline: &'static str,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum KernelChoice {
    #[value(name = "6.1")]
    V6_1,
    #[value(name = "6.12")]
    V6_12,
    /// 6.12 booted with Ubuntu's LSM list, without `bpf`: enforcement by fmod_ret.
    #[value(name = "6.12-ubuntu-lsm")]
    V6_12UbuntuLsm,
    /// Debian's newest (trixie-backports).
    #[value(name = "7.3")]
    V7_3,
    /// 7.3, a preemptible kernel, with Ubuntu's LSM list: fmod_ret where the kernel may
    /// preempt the programs. Runs the mechanism tests and the busy host's only.
    #[value(name = "7.3-ubuntu-lsm")]
    V7_3UbuntuLsm,
    All,
}

impl KernelChoice {
    /// The boots chosen: each kernel series as Debian boots it (`bpf` an active LSM), in
    /// `KERNELS` order, and 6.12 as Ubuntu boots its kernels, after plain 6.12.
    pub fn boots(self) -> Vec<VmBoot> {
        let mut boots = Vec::new();
        for &series in KERNELS {
            boots.push(VmBoot {
                name: series.name,
                series,
                cmdline: "",
            });
            // Ubuntu's `CONFIG_LSM`, without `bpf`: BPF LSM programs attach there but
            // never run, and rtguard enforces with fmod_ret.
            if series.name == "6.12" {
                boots.push(VmBoot {
                    name: "6.12-ubuntu-lsm",
                    series,
                    cmdline: " lsm=landlock,lockdown,yama,integrity,apparmor",
                });
            }
            // The same on a kernel that preempts kernel code (`full (lazy)`), where the
            // kernel may skip an fmod_ret program: a few tests, not the suite again.
            if series.name == "7.3" {
                boots.push(VmBoot {
                    name: "7.3-ubuntu-lsm",
                    series,
                    cmdline: " lsm=landlock,lockdown,yama,integrity,apparmor \
                              rtguard.only=mechanism::,while_the_host_is_busy",
                });
            }
        }
        boots.retain(|b| self.includes(b.name));
        boots
    }

    fn includes(self, name: &str) -> bool {
        match self {
            KernelChoice::V6_1 => name == "6.1",
            KernelChoice::V6_12 => name == "6.12",
            KernelChoice::V6_12UbuntuLsm => name == "6.12-ubuntu-lsm",
            KernelChoice::V7_3 => name == "7.3",
            KernelChoice::V7_3UbuntuLsm => name == "7.3-ubuntu-lsm",
            KernelChoice::All => true,
        }
    }
}

/// What one guest boot reported.
pub struct GuestOutcome {
    pub exit: Option<i32>,
    passed: u32,
    failed: u32,
    elapsed: Duration,
    /// The guest's console, line by line.
    pub log: PathBuf,
}

/// `cargo xtask demo`: the seed incident replayed in the VM on one kernel.
pub fn demo(root: &Path, choice: KernelChoice) -> Result<()> {
    let rtguard = build::rtguard(root)?;
    let deb = build::deb(root)?;
    let tests = build::vm_tests()?;
    let run_dir = run_dir(root)?;
    let overlay = overlay_cpio(
        root,
        &run_dir,
        &Payload::tests(&rtguard, &tests, &deb, None),
    )?;
    let vm_boot = choice.boots()[0];
    let (kernel, initramfs) = initramfs(root, &run_dir, &vm_boot, &overlay, "demo")?;
    step(&format!(
        "the seed incident on {}, with rtguard",
        kernel.package
    ));
    let how = Boot {
        cmdline: " rtguard.demo",
        tag: false,
        qemu_args: &[],
        cpus: GUEST_CPUS,
        reboots: false,
    };
    let outcome = boot_with(&run_dir, &vm_boot, &kernel, &initramfs, &how)?;
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
    let run_dir = run_dir(root)?;
    let overlay = overlay_cpio(
        root,
        &run_dir,
        &Payload::tests(&rtguard, &tests, &deb, filter),
    )?;

    let mut results = Vec::new();
    for vm_boot in choice.boots() {
        let (kernel, initramfs) = initramfs(root, &run_dir, &vm_boot, &overlay, "tests")?;
        let label = format!("{}{}", kernel.package, vm_boot.cmdline);
        step(&format!("VM tests on {label}"));
        let mut outcome = boot(&run_dir, &vm_boot, &kernel, &initramfs)?;
        // Under TCG a guest with two vCPUs now and then panics while the kernel patches
        // its own text at boot (an int3 hit on the other vCPU), or hangs without a word
        // (`FIRST_OUTPUT_TIMEOUT`), before any test has run. Boot that kernel once more;
        // a guest that dies again is reported as it is.
        if outcome.exit.is_none() && outcome.passed + outcome.failed == 0 {
            let first = outcome.log.with_extension("first-boot.log");
            fs::rename(&outcome.log, &first)?;
            println!(
                "the guest died before any test ran (log: {}); booting {} again",
                first.display(),
                kernel.package
            );
            outcome = boot(&run_dir, &vm_boot, &kernel, &initramfs)?;
        }
        // The initramfs is a few hundred MiB; the log is what is worth keeping.
        fs::remove_file(&initramfs).ok();
        results.push((label, outcome));
    }

    // Keep the guest logs; the packed binaries are rebuilt next time.
    fs::remove_dir_all(run_dir.join("tests-overlay")).ok();
    fs::remove_file(&overlay).ok();

    summarize(&results)
}

/// Prints one line per guest and the totals; fails if any guest failed.
pub fn summarize(results: &[(String, GuestOutcome)]) -> Result<()> {
    step("VM test summary");
    let mut ok = true;
    for (package, o) in results {
        let verdict = match o.exit {
            Some(0) if o.failed == 0 && o.passed > 0 => "ok",
            _ => {
                ok = false;
                "FAILED"
            }
        };
        println!(
            "{package:<88} {verdict:<6} {} passed, {} failed, guest exit {}, {:.0?}",
            o.passed,
            o.failed,
            o.exit.map_or("none".to_owned(), |c| c.to_string()),
            o.elapsed
        );
    }
    // One plain closing line for whoever reads the log: the totals over every guest.
    let passed: u32 = results.iter().map(|(_, o)| o.passed).sum();
    let failed: u32 = results.iter().map(|(_, o)| o.failed).sum();
    println!("vm-tests: {passed} passed, {failed} failed");
    if !ok {
        bail!("VM tests failed");
    }
    Ok(())
}

/// This run's own directory (overlay, initramfs, guest logs), apart from the shared
/// caches, so two runs on one machine can't swap each other's binaries.
pub fn run_dir(root: &Path) -> Result<PathBuf> {
    let dir = kernels::vm_dir(root)
        .join("runs")
        .join(std::process::id().to_string());
    if dir.exists() {
        fs::remove_dir_all(&dir)?;
    }
    fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// What a run puts in the guest besides the rootfs: rtguard, its unit and the shipped
/// policies always, and what the run's mode needs.
pub struct Payload<'a> {
    pub rtguard: &'a Path,
    /// Executables: (path in the guest, built file).
    pub executables: Vec<(&'static str, &'a Path)>,
    /// Small files: (path in the guest, contents).
    pub files: Vec<(&'static str, String)>,
    /// The package, for the installation test.
    pub deb: Option<&'a Path>,
}

impl<'a> Payload<'a> {
    /// The VM tests (and the demo): the test binary, its libtest filter, the package.
    fn tests(rtguard: &'a Path, tests: &'a Path, deb: &'a Path, filter: Option<&str>) -> Self {
        Payload {
            rtguard,
            executables: vec![("tests/vm", tests)],
            // The guest passes this file's words to the test binary: a libtest name filter.
            files: vec![("tests/filter", filter.unwrap_or_default().to_owned())],
            deb: Some(deb),
        }
    }
}

/// Packs this run's binaries and the guest's /init into a small archive that goes on top
/// of the cached Debian rootfs. The rootfs is the same Debian release the binaries are
/// built on, so they find the libraries they were linked against.
pub fn overlay_cpio(root: &Path, run_dir: &Path, payload: &Payload) -> Result<PathBuf> {
    let tree = run_dir.join("tests-overlay");
    if tree.exists() {
        fs::remove_dir_all(&tree)?;
    }
    // Where the package installs them (usr/lib, not lib: /lib is a symlink in the
    // merged-/usr rootfs, and an archive entry for a real lib/ would replace it).
    fs::create_dir_all(tree.join("usr/bin"))?;
    fs::create_dir_all(tree.join("usr/lib/systemd/system"))?;
    copy_executable(payload.rtguard, &tree.join("usr/bin/rtguard"))?;
    fs::copy(
        root.join("packaging/rtguard.service"),
        tree.join("usr/lib/systemd/system/rtguard.service"),
    )?;
    for (to, from) in &payload.executables {
        let to = tree.join(to);
        fs::create_dir_all(to.parent().expect("a guest path has a parent"))?;
        copy_executable(from, &to)?;
    }
    for (to, contents) in &payload.files {
        let to = tree.join(to);
        fs::create_dir_all(to.parent().expect("a guest path has a parent"))?;
        fs::write(to, contents)?;
    }
    if let Some(deb) = payload.deb {
        fs::create_dir_all(tree.join("root/debs"))?;
        fs::copy(deb, tree.join("root/debs/rtguard.deb"))?;
    }
    // The shipped policies, where a package would install them.
    let policies = tree.join("etc/rtguard");
    fs::create_dir_all(&policies)?;
    for entry in fs::read_dir(root.join("policy"))? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "toml") {
            fs::copy(&path, policies.join(path.file_name().expect("a file name")))?;
        }
    }
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

/// The initramfs for one boot: the cached rootfs, the kernel's modules and `overlay`.
/// It is a few hundred MiB; callers remove it after the boot.
pub fn initramfs(
    root: &Path,
    run_dir: &Path,
    vm_boot: &VmBoot,
    overlay: &Path,
    purpose: &str,
) -> Result<(VmKernel, PathBuf)> {
    let vm = kernels::vm_dir(root);
    let base = rootfs::base_cpio(&vm)?;
    let kernel = kernels::kernel(root, vm_boot.series)?;
    let modules = rootfs::modules_cpio(&vm, &kernel)?;
    let initramfs = run_dir.join(format!("initramfs-{purpose}-{}.cpio", vm_boot.name));
    rootfs::concat(&[&base, &modules, overlay], &initramfs)?;
    Ok((kernel, initramfs))
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
elif grep -q rtguard.bench /proc/cmdline; then
    # Only the benchmark's lines on the console: kernel messages could split them.
    dmesg -n 1
    RTGUARD_BIN=/usr/bin/rtguard /bench/overhead --guest $(cat /bench/args)
    echo "RTGUARD-VM-EXIT=$?"
else
    # The host guest's tests need systemd and Docker; they run in that guest only. A boot
    # that runs only some tests names their filters (rtguard.only=a,b), unless the run
    # has its own.
    filter=$(cat /tests/filter)
    [ -n "$filter" ] || filter=$(sed -n 's/.*rtguard\.only=\([^ ]*\).*/\1/p' /proc/cmdline | tr , ' ')
    RTGUARD_BIN=/usr/bin/rtguard RUST_BACKTRACE=1 /tests/vm --test-threads=1 --color never --show-output --skip host_guest:: $filter
    echo "RTGUARD-VM-EXIT=$?"
fi
poweroff -f -f
echo o > /proc/sysrq-trigger
"#;

fn boot(
    run_dir: &Path,
    vm_boot: &VmBoot,
    kernel: &VmKernel,
    initramfs: &Path,
) -> Result<GuestOutcome> {
    let how = Boot {
        cmdline: "",
        tag: true,
        qemu_args: &[],
        cpus: GUEST_CPUS,
        reboots: false,
    };
    boot_with(run_dir, vm_boot, kernel, initramfs, &how)
}

/// How to boot a guest.
pub struct Boot<'a> {
    /// Appended to the kernel command line: the guest's mode (`rtguard.demo`, …).
    pub cmdline: &'a str,
    /// Prefix each console line with the kernel (off for the demo, which people read).
    pub tag: bool,
    /// More qemu arguments.
    pub qemu_args: &'a [&'a str],
    pub cpus: u32,
    /// The guest reboots on its own (into the same kernel and disks) before it reports;
    /// otherwise a reboot ends the run.
    pub reboots: bool,
}

/// Boots the guest and follows its console until it powers off.
pub fn boot_with(
    run_dir: &Path,
    vm_boot: &VmBoot,
    kernel: &VmKernel,
    initramfs: &Path,
    how: &Boot,
) -> Result<GuestOutcome> {
    let log_path = run_dir.join(format!("guest-{}.log", vm_boot.name));
    let mut log = fs::File::create(&log_path)?;
    let started = Instant::now();
    let mut child = Command::new("qemu-system-x86_64")
        .args(["-accel", "tcg", "-cpu", "max"])
        .args(["-smp", &how.cpus.to_string()])
        .args(["-m", &GUEST_MEMORY_MIB.to_string()])
        .args(how.qemu_args)
        .args(["-nodefaults", "-display", "none", "-serial", "stdio"])
        .args(if how.reboots {
            &[][..]
        } else {
            &["-no-reboot"][..]
        })
        .arg("-kernel")
        .arg(kernel.vmlinuz()?)
        .arg("-initrd")
        .arg(initramfs)
        .arg("-append")
        .arg(format!(
            "console=ttyS0 panic=-1 rdinit=/init loglevel=4{}{}",
            vm_boot.cmdline, how.cmdline
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

    let name = vm_boot.name;
    let mut outcome = GuestOutcome {
        exit: None,
        passed: 0,
        failed: 0,
        elapsed: Duration::ZERO,
        log: log_path.clone(),
    };
    let mut silent = true;
    loop {
        let deadline = if silent {
            FIRST_OUTPUT_TIMEOUT
        } else {
            GUEST_TIMEOUT
        };
        let left = deadline.saturating_sub(started.elapsed());
        match rx.recv_timeout(left) {
            Ok(line) => {
                silent = false;
                let line = line.trim_end_matches('\r');
                if how.tag {
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
            Err(mpsc::RecvTimeoutError::Timeout) if silent => {
                println!(
                    "[{name}] guest printed nothing in {FIRST_OUTPUT_TIMEOUT:?}; killing qemu"
                );
                child.kill().ok();
                break;
            }
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

pub fn copy_executable(from: &Path, to: &Path) -> Result<()> {
    fs::copy(from, to)
        .with_context(|| format!("copying {} to {}", from.display(), to.display()))?;
    set_mode(to, 0o755)
}

pub fn set_mode(path: &Path, mode: u32) -> Result<()> {
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
