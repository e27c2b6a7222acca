//! The two pinned Rust toolchains, read from their `rust-toolchain.toml` files and
//! installed by name, whatever `stable` and `nightly` mean on this machine.
//!
//! - `rust-toolchain.toml`: the stable toolchain for userspace, xtask and the lints.
//! - `guard-ebpf/rust-toolchain.toml`: the nightly that builds the kernel programs. Its
//!   LLVM major version decides which LLVM bpf-linker is built against.

use std::{collections::HashMap, path::Path, process::Command};

use anyhow::{bail, Context as _, Result};
use serde::Deserialize;

use crate::{output, run};

/// Where the stable pin lives, relative to the workspace root.
pub const STABLE_PIN: &str = "rust-toolchain.toml";
/// Where the eBPF pin lives, relative to the workspace root.
pub const EBPF_PIN: &str = "guard-ebpf/rust-toolchain.toml";

/// One `rust-toolchain.toml`.
#[derive(Debug, Deserialize)]
pub struct Pin {
    pub channel: String,
    #[serde(default)]
    pub components: Vec<String>,
}

#[derive(Deserialize)]
struct ToolchainFile {
    toolchain: Pin,
}

pub struct Pins {
    pub stable: Pin,
    pub ebpf: Pin,
}

impl Pins {
    pub fn read(root: &Path) -> Result<Self> {
        Ok(Self {
            stable: read_pin(&root.join(STABLE_PIN))?,
            ebpf: read_pin(&root.join(EBPF_PIN))?,
        })
    }
}

fn read_pin(path: &Path) -> Result<Pin> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let file: ToolchainFile =
        toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
    Ok(file.toolchain)
}

/// An installed pinned toolchain, as its rustc describes itself.
pub struct Installed {
    pub channel: String,
    /// `rustc -vV`'s `release:` line, e.g. `1.97.0-nightly`.
    pub release: String,
    pub llvm_major: u32,
}

/// Installs the stable pin with its components if it is missing, and checks that it is
/// the toolchain this checkout runs.
pub fn ensure_stable(pin: &Pin) -> Result<Installed> {
    let installed = ensure(pin)?;
    // rustup picks the toolchain from rust-toolchain.toml unless RUSTUP_TOOLCHAIN or
    // `cargo +name` overrides it; say so rather than lint with another rustc.
    let active = output(Command::new("rustc").arg("-vV"))?;
    let active_release = field(&active, "release").unwrap_or_default();
    if active_release != installed.release {
        bail!(
            "this checkout runs rustc {active_release}, not the pinned {} ({STABLE_PIN}); \
             unset RUSTUP_TOOLCHAIN and run cargo without +toolchain",
            pin.channel
        );
    }
    Ok(installed)
}

/// Installs a pinned toolchain with its components if it is missing, and says which
/// rustc and LLVM it is.
pub fn ensure(pin: &Pin) -> Result<Installed> {
    let have = output(Command::new("rustup").args([
        "component",
        "list",
        "--installed",
        "--toolchain",
        &pin.channel,
    ]))
    .unwrap_or_default();
    let complete = !have.is_empty()
        && pin
            .components
            .iter()
            .all(|c| have.lines().any(|l| l.starts_with(c.as_str())));
    if !complete {
        println!("toolchain {}: installing", pin.channel);
        let mut cmd = Command::new("rustup");
        cmd.args(["toolchain", "install", &pin.channel, "--profile", "minimal"]);
        for component in &pin.components {
            cmd.args(["--component", component]);
        }
        run(&mut cmd)?;
    }
    let version = output(Command::new("rustup").args(["run", &pin.channel, "rustc", "-vV"]))?;
    let release = field(&version, "release").context("rustc -vV printed no release")?;
    let llvm = field(&version, "LLVM version").context("rustc -vV printed no LLVM version")?;
    let llvm_major = llvm
        .split('.')
        .next()
        .and_then(|m| m.parse().ok())
        .with_context(|| format!("unreadable LLVM version {llvm:?}"))?;
    let commit = field(&version, "commit-date").unwrap_or("?");
    println!(
        "toolchain {}: rustc {release} ({commit}), LLVM {llvm}",
        pin.channel
    );
    Ok(Installed {
        channel: pin.channel.clone(),
        release: release.to_owned(),
        llvm_major,
    })
}

/// A `key: value` line of `rustc -vV`.
fn field<'a>(version: &'a str, key: &str) -> Option<&'a str> {
    version
        .lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .map(str::trim)
}

/// The version and features `cargo install` recorded for an installed binary crate
/// (`$CARGO_HOME/.crates2.json`), if it is installed and its binary is still there.
pub fn installed_crate_features(name: &str) -> Result<Option<(String, Vec<String>)>> {
    #[derive(Deserialize)]
    struct Crates2 {
        installs: HashMap<String, Install>,
    }
    #[derive(Deserialize)]
    struct Install {
        #[serde(default)]
        features: Vec<String>,
        #[serde(default)]
        bins: Vec<String>,
    }

    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(Into::into)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cargo")))
        .context("neither CARGO_HOME nor HOME is set")?;
    let path = cargo_home.join(".crates2.json");
    let Ok(text) = std::fs::read_to_string(&path) else {
        return Ok(None);
    };
    let crates: Crates2 =
        serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
    for (key, install) in crates.installs {
        // Keys read "bpf-linker 0.13.0 (registry+https://…)".
        let mut words = key.split(' ');
        if words.next() != Some(name) {
            continue;
        }
        let present = install
            .bins
            .iter()
            .all(|bin| cargo_home.join("bin").join(bin).exists());
        if !present {
            return Ok(None);
        }
        let version = words.next().unwrap_or_default().to_owned();
        return Ok(Some((version, install.features)));
    }
    Ok(None)
}
