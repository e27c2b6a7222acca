//! apt's pre-install hook (`rtguard apt-hook`, configured by the package's
//! /etc/apt/apt.conf.d/50rtguard): a transaction that removes a protected package is
//! refused before dpkg runs, whatever in the request removes it, and with no daemon running.

use std::path::{Path, PathBuf};

use crate::common::*;

/// The package's apt configuration, as shipped.
const APT_CONF: &str = include_str!("../../../packaging/apt/50rtguard");

/// The shipped hook configuration, installed for one test with the test's policy and
/// state directory, and removed again however the test ends.
struct HookInstalled(PathBuf);

impl HookInstalled {
    fn new(policy: &Path, state_dir: &Path) -> Self {
        let conf = APT_CONF.replace(
            "/usr/bin/rtguard apt-hook",
            &format!(
                "/usr/bin/rtguard apt-hook --policy {} --state-dir {}",
                policy.display(),
                state_dir.display()
            ),
        );
        assert_ne!(conf, APT_CONF, "the shipped configuration runs the hook");
        let path = PathBuf::from("/etc/apt/apt.conf.d/50rtguard-test");
        std::fs::write(&path, conf).unwrap();
        Self(path)
    }
}

impl Drop for HookInstalled {
    fn drop(&mut self) {
        std::fs::remove_file(&self.0).ok();
    }
}

/// `name`_1.0_all.deb in `dir` with the given extra control fields.
fn build_deb(dir: &Path, name: &str, fields: &str) -> PathBuf {
    TestDeb {
        fields,
        ..TestDeb::marker(name)
    }
    .build(dir)
}

/// Runs an apt command; returns (exit code, stdout and stderr).
fn apt(command: &str) -> (i32, String) {
    let out = sh(&format!("DEBIAN_FRONTEND=noninteractive {command} 2>&1"));
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

fn installed(package: &str) -> bool {
    dpkg_status(package) == "install ok installed"
}

#[test]
fn a_plan_that_removes_a_protected_package_is_refused_before_dpkg_with_no_daemon() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    std::fs::create_dir_all(&state).unwrap();
    let policy = dir.path().join("policy.toml");
    std::fs::write(
        &policy,
        "environment = \"test\"\nmode = \"enforce\"\n\n\
         [[packages]]\nname = \"victims\"\npackages = [\"rtguard-victim\"]\n",
    )
    .unwrap();
    let victim = build_deb(dir.path(), "rtguard-victim", "");
    let rival = build_deb(
        dir.path(),
        "rtguard-rival",
        "Conflicts: rtguard-victim\nReplaces: rtguard-victim\n",
    );
    expect_allowed(&format!("dpkg -i {}", victim.display()));
    let _hook = HookInstalled::new(&policy, &state);

    // A conflicting install: apt plans the removal, the hook refuses the whole plan.
    let (code, out) = apt(&format!("apt-get install -y {}", rival.display()));
    assert_eq!(code, 100, "{out}");
    assert!(
        out.contains(
            "rtguard: refusing this apt transaction before dpkg runs: it removes \
             rtguard-victim (rule victims)"
        ),
        "{out}"
    );
    assert!(
        out.contains("rtguard: apt removes it to install rtguard-rival"),
        "{out}"
    );
    assert!(
        out.contains("rtguard maintenance open --package rtguard-victim"),
        "{out}"
    );
    assert!(!out.contains("Unpacking"), "nothing reached dpkg: {out}");
    assert!(installed("rtguard-victim"));
    assert!(!installed("rtguard-rival"));
    assert!(
        !sh("dpkg -L rtguard-rival").status.success(),
        "nothing unpacked"
    );

    // A reinstall of the protected package passes the hook.
    let (code, out) = apt(&format!(
        "apt-get install -y --reinstall {}",
        victim.display()
    ));
    assert_eq!(code, 0, "{out}");
    assert!(installed("rtguard-victim"));

    // Autoremove of a protected package marked automatic: refused up front too.
    expect_allowed("apt-mark auto rtguard-victim");
    let (code, out) = apt("apt-get autoremove -y");
    assert_eq!(code, 100, "{out}");
    assert!(
        out.contains("it removes rtguard-victim (rule victims)")
            && out.contains("no package is installed in this transaction"),
        "{out}"
    );
    assert!(installed("rtguard-victim"));
    expect_allowed("apt-mark manual rtguard-victim");

    // With a removal window open, the conflicting install goes through.
    let out = sh(&format!(
        "{} maintenance open --state-dir {} --package rtguard-victim --allow-removal \
         --for 30m --reason 'replace it'",
        rtguard_bin().display(),
        state.display()
    ));
    assert!(out.status.success(), "{out:?}");
    let (code, out) = apt(&format!("apt-get install -y {}", rival.display()));
    assert_eq!(code, 0, "{out}");
    assert!(installed("rtguard-rival"));
    assert!(!installed("rtguard-victim"));

    expect_allowed("dpkg -P rtguard-rival");
}

/// The installed runtime: apt's plans that remove containerd are refused by the hook, with
/// the kernel behind it; reinstalls pass; a removal window lets the same plan through, and
/// the runtime is put back inside the window.
#[test]
fn the_real_runtime_is_refused_by_the_hook_before_the_kernel_has_to() {
    let dir = tempfile::tempdir().unwrap();
    let audit = dir.path().join("audit.jsonl");
    let state = dir.path().join("state");
    std::fs::create_dir_all(&state).unwrap();
    let rival = build_deb(
        dir.path(),
        "rtguard-containerd-rival",
        "Conflicts: containerd, runc\nReplaces: containerd, runc\nProvides: containerd\n",
    );
    let guard = start_production(&audit, &["--state-dir", state.to_str().unwrap()]);
    let _hook = HookInstalled::new(&production_policy(), &state);

    // An install that conflicts with the runtime.
    let (code, out) = apt(&format!("apt-get install -y {}", rival.display()));
    assert_eq!(code, 100, "{out}");
    assert!(
        out.contains("it removes containerd (rule distro-docker-packages)"),
        "{out}"
    );
    assert!(
        !out.contains("Could not exec dpkg"),
        "the hook refused it, not the kernel: {out}"
    );
    assert!(installed("containerd") && installed("runc"));
    assert!(!installed("rtguard-containerd-rival"));

    // A reinstall goes through the hook (and the kernel lets it through as an upgrade).
    let (code, out) = apt(&format!(
        "apt-get install -y --reinstall {}",
        containerd_deb().display()
    ));
    assert_eq!(code, 0, "{out}");
    assert!(installed("containerd"));

    // The runtime marked automatic and nothing needing it: autoremove is refused up front.
    expect_allowed("apt-mark auto containerd runc");
    let (code, out) = apt("apt-get autoremove -y");
    expect_allowed("apt-mark manual containerd runc");
    assert_eq!(code, 100, "{out}");
    assert!(
        out.contains("it removes containerd (rule distro-docker-packages)")
            && out.contains("no package is installed in this transaction"),
        "{out}"
    );
    assert!(installed("containerd") && installed("runc"));

    // Removal windows for both: the conflicting install goes through, hook and kernel.
    maintenance(
        &guard,
        &state,
        &[
            "open",
            "--package",
            "containerd",
            "--package",
            "runc",
            "--allow-removal",
            "--for",
            "30m",
            "--reason",
            "replace the runtime",
        ],
    );
    wait_for_window(&guard, "containerd", true);
    wait_for_window(&guard, "runc", true);
    let (code, out) = apt(&format!("apt-get install -y {}", rival.display()));
    assert_eq!(code, 0, "{out}");
    assert!(installed("rtguard-containerd-rival"));
    assert!(!installed("containerd"));

    // Back as it was, inside the windows; then closed.
    expect_allowed("dpkg -P rtguard-containerd-rival");
    expect_allowed(&format!(
        "dpkg -i {} {}",
        kept_deb("runc").display(),
        containerd_deb().display()
    ));
    assert!(installed("containerd") && installed("runc"));
    wait_until_protected(Path::new("/usr/bin/containerd"));
    wait_until_protected(Path::new("/usr/sbin/runc"));
    maintenance(&guard, &state, &["close", "--all"]);
    wait_for_window(&guard, "containerd", false);
    expect_verified(&["containerd", "runc"]);
    drop(guard);
}
