//! The Debian kernels the VM tests boot: which series, and each one's packages, downloaded
//! once into the VM cache and unpacked there.

use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{bail, Context as _, Result};

use crate::{output, run};

/// A Debian kernel series the VM tests boot.
#[derive(Clone, Copy, Debug)]
pub struct KernelSeries {
    /// Short name used on the command line and in directory names.
    pub name: &'static str,
    /// Package name prefix; the newest `<prefix>*<suffix>` in the archive is used.
    prefix: &'static str,
    suffix: &'static str,
    /// A suite this machine's apt does not list (a newer release's backports), read
    /// through an apt configuration of the VM cache's own, so the host's apt is left
    /// alone. `None`: the host's own sources.
    suite: Option<&'static str>,
}

pub const KERNELS: &[KernelSeries] = &[
    KernelSeries {
        name: "6.1",
        prefix: "linux-image-6.1.0-",
        suffix: "-cloud-amd64",
        suite: None,
    },
    KernelSeries {
        name: "6.12",
        prefix: "linux-image-6.12.",
        suffix: "+deb12-cloud-amd64",
        suite: None,
    },
    // Debian's newest: from 7.x the image package only depends on `linux-binary-*`
    // (vmlinuz, in usr/lib/modules/<release>/) and `linux-modules-*`.
    KernelSeries {
        name: "7.3",
        prefix: "linux-image-7.3.",
        suffix: "+deb13-cloud-amd64",
        suite: Some("trixie-backports"),
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
    /// `boot/vmlinuz-<release>`, or `usr/lib/modules/<release>/vmlinuz` in the split
    /// packages of 7.x.
    pub fn vmlinuz(&self) -> Result<PathBuf> {
        let boot = self.dir.join("boot");
        if let Ok(entries) = fs::read_dir(&boot) {
            for entry in entries {
                let path = entry?.path();
                if path
                    .file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with("vmlinuz-"))
                {
                    return Ok(path);
                }
            }
        }
        let split = self.modules_dir()?.join("vmlinuz");
        if split.exists() {
            return Ok(split);
        }
        bail!("no vmlinuz in {} or {}", boot.display(), split.display())
    }

    /// `lib/modules/<release>` (or `usr/lib/modules/<release>`) of the unpacked packages.
    pub fn modules_dir(&self) -> Result<PathBuf> {
        for base in ["lib/modules", "usr/lib/modules"] {
            let modules = self.dir.join(base);
            if let Some(release) = fs::read_dir(&modules).ok().and_then(|mut d| d.next()) {
                return Ok(modules.join(release?.file_name()));
            }
        }
        bail!("no lib/modules/<release> in {}", self.dir.display())
    }
}

pub fn vm_dir(root: &Path) -> PathBuf {
    root.join("target/vm")
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
    let apt = Apt::for_series(root, series)?;
    let package = newest_kernel_package(&apt, series)?;
    println!("kernel {}: downloading {package}", series.name);
    let debs = vm_dir(root).join("debs");
    fs::create_dir_all(&debs)?;
    // The image, and where it is only a dependency package, what it depends on.
    let release = package.trim_start_matches("linux-image-");
    let mut packages = vec![package.clone()];
    if apt.has(&format!("linux-binary-{release}"))? {
        packages.push(format!("linux-binary-{release}"));
        packages.push(format!("linux-modules-{release}"));
    }
    run(apt
        .command("apt-get")
        .args(["download", "-q"])
        .args(&packages)
        .current_dir(&debs))?;
    if dir.exists() {
        fs::remove_dir_all(&dir)?;
    }
    fs::create_dir_all(&dir)?;
    for name in &packages {
        let deb = fs::read_dir(&debs)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .find(|p| {
                p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with(&format!("{name}_")))
            })
            .with_context(|| format!("apt-get download left no {name}_*.deb"))?;
        run(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&dir))?;
    }
    fs::write(&stamp, &package)?;
    Ok(VmKernel {
        series,
        package,
        dir,
    })
}

fn newest_kernel_package(apt: &Apt, series: KernelSeries) -> Result<String> {
    let mut names = candidates(apt, series)?;
    if names.is_empty() {
        run(apt.command("apt-get").arg("update").arg("-q"))?;
        names = candidates(apt, series)?;
    }
    names.sort_by_key(|n| version_key(n));
    names.pop().with_context(|| {
        format!(
            "no {}*{} package in the archive",
            series.prefix, series.suffix
        )
    })
}

fn candidates(apt: &Apt, series: KernelSeries) -> Result<Vec<String>> {
    let names = output(apt.command("apt-cache").args(["pkgnames", series.prefix]))?;
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

/// apt as the host has it, or with a sources list of the VM cache's own for one suite
/// (its package lists and cache under `target/vm/apt/<suite>`, nothing of the host's
/// touched). The suite is signed by Debian's archive keys, which the host has.
struct Apt {
    options: Vec<String>,
}

impl Apt {
    fn for_series(root: &Path, series: KernelSeries) -> Result<Self> {
        let Some(suite) = series.suite else {
            return Ok(Self {
                options: Vec::new(),
            });
        };
        let dir = vm_dir(root).join("apt").join(suite);
        for sub in ["lists/partial", "cache/archives/partial"] {
            fs::create_dir_all(dir.join(sub))?;
        }
        let sources = dir.join("sources.list");
        fs::write(
            &sources,
            format!(
                "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] \
                 http://deb.debian.org/debian {suite} main\n"
            ),
        )?;
        let options = [
            format!("Dir::Etc::SourceList={}", sources.display()),
            "Dir::Etc::SourceParts=/dev/null".to_owned(),
            format!("Dir::State::Lists={}", dir.join("lists").display()),
            format!("Dir::Cache={}", dir.join("cache").display()),
            "APT::Architecture=amd64".to_owned(),
        ]
        .into_iter()
        .flat_map(|o| ["-o".to_owned(), o])
        .collect();
        Ok(Self { options })
    }

    fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new(program);
        cmd.args(&self.options);
        cmd
    }

    /// Whether the package lists know `package`.
    fn has(&self, package: &str) -> Result<bool> {
        let names = output(self.command("apt-cache").args(["pkgnames", package]))?;
        Ok(names.lines().any(|n| n == package))
    }
}
