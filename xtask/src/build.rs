//! Building the binaries the tasks run: `rtguard`, the VM tests and the benchmark.

use std::{
    io::{BufRead as _, BufReader},
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

use anyhow::{bail, Context as _, Result};

use crate::{run, step};

/// Builds the release `rtguard` (guard-user's build script embeds the kernel programs).
pub fn rtguard(root: &Path) -> Result<PathBuf> {
    step("build rtguard");
    run(Command::new("cargo").args([
        "build",
        "--release",
        "--package",
        "guard-user",
        "--bin",
        "rtguard",
    ]))?;
    Ok(root.join("target/release/rtguard"))
}

/// Builds the Debian package with cargo-deb and returns its path.
pub fn deb(root: &Path) -> Result<PathBuf> {
    step("build the .deb");
    let out = crate::output(Command::new("cargo").args([
        "deb",
        "--package",
        "guard-user",
        "--no-strip",
    ]))?;
    let path = out
        .lines()
        .rev()
        .find(|l| l.trim_end().ends_with(".deb"))
        .map(|l| PathBuf::from(l.trim()))
        .context("cargo deb printed no .deb path")?;
    Ok(if path.is_absolute() {
        path
    } else {
        root.join(path)
    })
}

/// Builds guard-user's `vm` integration tests and returns the test executable.
pub fn vm_tests() -> Result<PathBuf> {
    step("build VM tests");
    guard_user_target("test", "vm")
}

/// Builds guard-user's `overhead` benchmark (run in the VMs by `cargo xtask bench`).
pub fn bench_runner() -> Result<PathBuf> {
    step("build the benchmark");
    guard_user_target("bench", "overhead")
}

/// Builds one of guard-user's test or bench targets (`kind`: `test` or `bench`) without
/// running it, and returns its executable.
fn guard_user_target(kind: &str, name: &str) -> Result<PathBuf> {
    // `cargo bench` always builds optimised (the bench profile inherits release's).
    let release: &[&str] = if kind == "bench" { &[] } else { &["--release"] };
    let mut child = Command::new("cargo")
        .arg(kind)
        .args(release)
        .args(["--package", "guard-user"])
        .arg(format!("--{kind}"))
        .arg(name)
        .args(["--no-run", "--message-format=json-render-diagnostics"])
        .stdout(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting cargo {kind} --no-run"))?;
    let mut executable = None;
    for line in BufReader::new(child.stdout.take().expect("piped")).lines() {
        let line = line?;
        let Ok(msg) = serde_json::from_str::<serde_json::Value>(&line) else {
            continue;
        };
        if msg["reason"] == "compiler-artifact" && msg["target"]["name"] == name {
            if let Some(path) = msg["executable"].as_str() {
                executable = Some(PathBuf::from(path));
            }
        }
    }
    if !child.wait()?.success() {
        bail!("building guard-user's {kind} `{name}` failed");
    }
    executable.with_context(|| format!("cargo built no `{name}` {kind} executable"))
}

/// What `cargo xtask run` passes to `rtguard run` when given nothing: the development
/// policy (audit mode), with the audit log kept in the build tree.
pub fn default_run_args(root: &Path) -> Vec<String> {
    vec![
        "--policy".into(),
        root.join("policy/development.toml").display().to_string(),
        "--audit-log".into(),
        root.join("target/rtguard-audit.jsonl")
            .display()
            .to_string(),
        // A person started it to look: where the kernel can't enforce, say so and go on.
        "--allow-degraded".into(),
    ]
}
