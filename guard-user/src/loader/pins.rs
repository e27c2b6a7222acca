//! Persistence: a daemon started with `--pin` pins its program links and its event maps
//! under the BPF filesystem, so enforcement outlives the daemon (a crash, `kill -9`, a
//! restart). The kernel keeps a program attached for as long as its link is pinned.
//!
//! Each daemon pins into its own *generation* directory,
//! `/sys/fs/bpf/rtguard/gen-<unix seconds>-<policy sha256 prefix>/{links,maps}`. A
//! restarted daemon adopts what an earlier one left: it loads and attaches its own
//! programs, proves them, fills their maps, pins them, and only then retires the older
//! generations: it unpins their links (detaching the old programs) and records the
//! decisions the old programs queued while no daemon was reading. There is no moment
//! without an attached program. Maps are never shared between generations, so a newer
//! rtguard with different map layouts can take over from an older one.

use std::{
    io,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use aya::{
    maps::{MapData, PerCpuArray, RingBuf},
    pin::PinError,
    programs::links::{FdLink, PinnedLink},
};
use guard_common::names;

/// A generation directory's name starts with this.
const GENERATION_PREFIX: &str = "gen-";
/// How much of the policy's sha256 a generation's name carries.
const POLICY_PREFIX_LEN: usize = 12;

/// The maps a generation pins: what a successor needs to read what the old programs
/// queued, and how many they could not queue.
pub const PINNED_MAPS: &[&str] = &[names::EVENTS, names::DROPPED_EVENTS];

#[derive(Debug, thiserror::Error)]
pub enum PinsError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(transparent)]
    Mount(#[from] super::mounts::MountError),
    #[error("{path} is not on a BPF filesystem (mount -t bpf bpf /sys/fs/bpf)")]
    NotBpffs { path: PathBuf },
    #[error("pinning {what} at {path}: {source}")]
    Pin {
        what: String,
        path: PathBuf,
        #[source]
        source: PinError,
    },
    #[error("programs {ids:?} are still loaded after their links' pins were removed: another process holds them")]
    StillAttached { ids: Vec<u32> },
    #[error("opening the pinned map {path}: {source}")]
    OpenMap {
        path: PathBuf,
        #[source]
        source: aya::maps::MapError,
    },
}

fn io_at(path: &Path) -> impl Fn(io::Error) -> PinsError + '_ {
    move |source| PinsError::Io {
        path: path.to_owned(),
        source,
    }
}

/// The pin directory, `/sys/fs/bpf/rtguard` by default.
#[derive(Clone, Debug)]
pub struct PinDir {
    root: PathBuf,
}

impl PinDir {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// Creates the directory (and checks it is on bpffs, where pins can live). Under
    /// /sys/fs/bpf, a BPF filesystem is mounted there first if there is none.
    pub fn create(&self) -> Result<(), PinsError> {
        if self.root.starts_with(super::mounts::BPFFS) {
            super::mounts::bpffs()?;
        }
        std::fs::create_dir_all(&self.root).map_err(io_at(&self.root))?;
        let fs = nix::sys::statfs::statfs(&self.root).map_err(|e| PinsError::Io {
            path: self.root.clone(),
            source: e.into(),
        })?;
        if fs.filesystem_type() != nix::sys::statfs::BPF_FS_MAGIC {
            return Err(PinsError::NotBpffs {
                path: self.root.clone(),
            });
        }
        Ok(())
    }

    /// A new generation for a daemon enforcing the policy with this sha256.
    pub fn new_generation(&self, policy_sha256: &str) -> Result<Generation, PinsError> {
        let secs = time::OffsetDateTime::now_utc().unix_timestamp();
        let sha: String = policy_sha256.chars().take(POLICY_PREFIX_LEN).collect();
        let sha = if sha.is_empty() {
            "none".to_owned()
        } else {
            sha
        };
        let mut name = format!("{GENERATION_PREFIX}{secs}-{sha}");
        // Two starts within a second with one policy: keep them apart.
        let mut n = 1;
        while self.root.join(&name).exists() {
            name = format!("{GENERATION_PREFIX}{secs}-{sha}.{n}");
            n += 1;
        }
        let generation = Generation {
            dir: self.root.join(name),
        };
        for dir in [generation.links_dir(), generation.maps_dir()] {
            std::fs::create_dir_all(&dir).map_err(io_at(&dir))?;
        }
        Ok(generation)
    }

    /// Generations found on disk, oldest first.
    pub fn generations(&self) -> Result<Vec<Generation>, PinsError> {
        let entries = match std::fs::read_dir(&self.root) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io_at(&self.root)(e)),
        };
        let mut found = Vec::new();
        for entry in entries {
            let entry = entry.map_err(io_at(&self.root))?;
            if entry
                .file_name()
                .to_string_lossy()
                .starts_with(GENERATION_PREFIX)
            {
                found.push(Generation { dir: entry.path() });
            }
        }
        found.sort_by_key(|g| (g.started(), g.dir.clone()));
        Ok(found)
    }

    /// Links pinned by every generation: the programs that stay attached without a daemon.
    pub fn pinned_links(&self) -> Result<usize, PinsError> {
        let mut n = 0;
        for g in self.generations()? {
            n += g.links()?.len();
        }
        Ok(n)
    }
}

/// One daemon's pins.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Generation {
    dir: PathBuf,
}

impl Generation {
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn name(&self) -> String {
        self.dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    }

    /// When the generation's daemon started (from its name), for ordering.
    fn started(&self) -> i64 {
        self.name()
            .strip_prefix(GENERATION_PREFIX)
            .and_then(|rest| rest.split('-').next())
            .and_then(|secs| secs.parse().ok())
            .unwrap_or(0)
    }

    /// The policy sha256 prefix the generation's daemon enforced.
    pub fn policy_prefix(&self) -> String {
        let name = self.name();
        let rest = name.strip_prefix(GENERATION_PREFIX).unwrap_or(&name);
        let sha = rest.split_once('-').map_or("", |(_, sha)| sha);
        sha.split('.').next().unwrap_or_default().to_owned()
    }

    /// Whether this generation enforced the policy with this sha256.
    pub fn enforced_policy(&self, sha256: &str) -> bool {
        let prefix = self.policy_prefix();
        !prefix.is_empty() && prefix != "none" && sha256.starts_with(&prefix)
    }

    pub fn links_dir(&self) -> PathBuf {
        self.dir.join("links")
    }

    pub fn maps_dir(&self) -> PathBuf {
        self.dir.join("maps")
    }

    pub fn map_path(&self, name: &str) -> PathBuf {
        self.maps_dir().join(name)
    }

    pub fn link_path(&self, program: &str) -> PathBuf {
        self.links_dir().join(program)
    }

    /// The pinned links by program name.
    pub fn links(&self) -> Result<Vec<String>, PinsError> {
        let dir = self.links_dir();
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io_at(&dir)(e)),
        };
        let mut names = Vec::new();
        for entry in entries {
            names.push(
                entry
                    .map_err(io_at(&dir))?
                    .file_name()
                    .to_string_lossy()
                    .into_owned(),
            );
        }
        names.sort();
        Ok(names)
    }

    /// Unpins every link and waits until the kernel has unloaded the programs (no other
    /// process may hold them). Returns how many links were unpinned.
    pub fn unpin_links(&self) -> Result<usize, PinsError> {
        let links = self.links()?;
        let mut programs = Vec::new();
        for name in &links {
            let path = self.link_path(name);
            // The linked program's id, to see it go; the fd opened for it closes here.
            if let Ok(info) = PinnedLink::from_pin(&path)
                .map(FdLink::from)
                .and_then(|l| l.info())
            {
                programs.push(info.program_id());
            }
            std::fs::remove_file(&path).map_err(io_at(&path))?;
        }
        wait_unloaded(&programs)?;
        Ok(links.len())
    }

    /// What the generation's programs queued and could not queue.
    pub fn open_events(&self) -> Result<PinnedEvents, PinsError> {
        let err = |name: &str| {
            let path = self.map_path(name);
            move |source| PinsError::OpenMap { path, source }
        };
        let open = |name: &str| MapData::from_pin(self.map_path(name)).map_err(err(name));
        let ring = RingBuf::try_from(aya::maps::Map::RingBuf(open(names::EVENTS)?))
            .map_err(err(names::EVENTS))?;
        let dropped =
            PerCpuArray::try_from(aya::maps::Map::PerCpuArray(open(names::DROPPED_EVENTS)?))
                .map_err(err(names::DROPPED_EVENTS))?;
        Ok(PinnedEvents { ring, dropped })
    }

    /// Removes what is left: the map pins and the directories.
    pub fn remove(&self) -> Result<(), PinsError> {
        match std::fs::remove_dir_all(&self.dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_at(&self.dir)(e)),
        }
    }
}

/// How long an unpinned program may take to go.
const DETACH_WAIT: Duration = Duration::from_secs(30);

/// Waits until none of the programs `ids` exists any more. The kernel releases a link
/// whose last pin went from a workqueue, after an RCU grace period, and a program keeps
/// running for a while after its link's id is gone (seconds under emulation on 6.12);
/// only a program that no longer exists surely runs no more.
fn wait_unloaded(ids: &[u32]) -> Result<(), PinsError> {
    let deadline = Instant::now() + DETACH_WAIT;
    loop {
        let remaining: Vec<u32> = aya::programs::loaded_programs()
            .filter_map(Result::ok)
            .map(|p| p.id())
            .filter(|id| ids.contains(id))
            .collect();
        if remaining.is_empty() {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(PinsError::StillAttached { ids: remaining });
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// An earlier generation's event ring and drop counter.
pub struct PinnedEvents {
    pub ring: RingBuf<MapData>,
    dropped: PerCpuArray<MapData, u64>,
}

impl PinnedEvents {
    /// Events the old programs could not queue, summed over CPUs.
    pub fn dropped(&self) -> u64 {
        self.dropped
            .get(&0, 0)
            .map(|per_cpu| per_cpu.iter().sum())
            .unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generation_names_carry_start_time_and_policy() {
        let g = Generation {
            dir: PathBuf::from("/sys/fs/bpf/rtguard/gen-1764000000-0123456789ab.2"),
        };
        assert_eq!(g.started(), 1_764_000_000);
        assert_eq!(g.policy_prefix(), "0123456789ab");
        assert!(g.enforced_policy("0123456789abcdef"));
        assert!(!g.enforced_policy("ffff"));
        let none = Generation {
            dir: PathBuf::from("/x/gen-5-none"),
        };
        assert!(!none.enforced_policy("anything"));
    }

    #[test]
    fn generations_on_a_plain_directory_are_listed_oldest_first() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["gen-20-aa", "gen-3-bb", "unrelated"] {
            std::fs::create_dir(dir.path().join(name)).unwrap();
        }
        let pins = PinDir::new(dir.path());
        let names: Vec<String> = pins
            .generations()
            .unwrap()
            .iter()
            .map(Generation::name)
            .collect();
        assert_eq!(names, ["gen-3-bb", "gen-20-aa"]);
        assert!(matches!(pins.create(), Err(PinsError::NotBpffs { .. })));
        assert!(PinDir::new(dir.path().join("missing"))
            .generations()
            .unwrap()
            .is_empty());
    }
}
