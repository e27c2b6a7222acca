//! The workloads: what a host does all day that rtguard's hooks see. The first four touch
//! no protected object; the last two work inside a protected tree the way the runtime does,
//! as its trusted writer and in an excluded subtree. Each run leaves its directory as it
//! found it.

use std::{
    ffi::CString,
    fs,
    io::{self, Read as _, Write as _},
    path::{Path, PathBuf},
    process::Command,
};

/// fork and exec of /bin/true, one at a time.
const EXECS: u32 = 500;
/// Files created, written, renamed and unlinked per churn run.
const CHURN_FILES: u32 = 20_000;
/// Bytes written to each churned file.
const CHURN_BYTES: usize = 256;
/// Existing files opened and read, and how many times over.
const READ_FILES: u32 = 1_000;
const READ_PASSES: u32 = 20;
const READ_BYTES: usize = 4096;
/// The package-like tree: directories × files per directory, and each file's size.
const PACKAGE_DIRS: u32 = 100;
const PACKAGE_FILES_PER_DIR: u32 = 100;
const PACKAGE_FILE_BYTES: usize = 512;

/// Runs this executable as the trusted writer: `overhead --trusted-writer DIR` churns files
/// in DIR (which it creates and removes) and exits.
pub const TRUSTED_WRITER_MODE: &str = "--trusted-writer";

/// Where the workloads work. `root` is unprotected; `tree` is a protected tree.
pub struct Workdir {
    pub root: PathBuf,
    pub tree: WriterTree,
}

/// A protected tree the way the production policy protects /var/lib/containerd: one
/// executable is its trusted writer (containerd there) and one subdirectory directly below
/// its root is excluded (the snapshotter's layers there).
pub struct WriterTree {
    pub root: PathBuf,
    /// The excluded subdirectory, directly below `root`.
    pub excluded: PathBuf,
    /// A copy of this executable, which the policy names the tree's trusted writer.
    pub writer: PathBuf,
}

pub struct Workload {
    pub name: &'static str,
    pub description: String,
    run: fn(&Workdir) -> io::Result<()>,
}

impl Workload {
    pub fn run(&self, dir: &Workdir) -> io::Result<()> {
        (self.run)(dir)
    }
}

pub fn all(dir: &Workdir) -> Vec<Workload> {
    vec![
        Workload {
            name: "exec-heavy",
            description: format!("fork and exec /bin/true {EXECS} times"),
            run: exec_heavy,
        },
        Workload {
            name: "file-churn",
            description: format!(
                "create and write ({CHURN_BYTES} B), rename, unlink {CHURN_FILES} files"
            ),
            run: file_churn,
        },
        Workload {
            name: "open-heavy",
            description: format!(
                "open and read {READ_FILES} existing {} KiB files, {READ_PASSES} times over",
                READ_BYTES / 1024
            ),
            run: open_heavy,
        },
        Workload {
            name: "package-manager",
            description: format!(
                "tar -x a tree of {} files in {PACKAGE_DIRS} directories, then rm -rf it",
                PACKAGE_DIRS * PACKAGE_FILES_PER_DIR
            ),
            run: package_manager,
        },
        Workload {
            name: "trusted-writer",
            description: format!(
                "the protected tree's trusted writer ({}, started once per run) creates and \
                 writes ({CHURN_BYTES} B), renames, unlinks {CHURN_FILES} files in a new \
                 directory of the tree {}, then removes it: the trust walk on every operation",
                dir.tree.writer.display(),
                dir.tree.root.display()
            ),
            run: trusted_writer,
        },
        Workload {
            name: "image-extract",
            description: format!(
                "tar -x package-manager's tree of {} files into {} inside the tree's excluded \
                 subtree {}, then rm -rf it, as a snapshotter unpacks an image layer",
                PACKAGE_DIRS * PACKAGE_FILES_PER_DIR,
                dir.layer().display(),
                dir.tree.excluded.display()
            ),
            run: image_extract,
        },
    ]
}

impl Workdir {
    /// Creates the directory and what the workloads read: the files to open and the
    /// package tarball; and the tree, its excluded subdirectory and its writer (before any
    /// policy naming them is resolved).
    pub fn prepare(root: &Path, tree: WriterTree) -> io::Result<Self> {
        for old in [root, &tree.root] {
            if old.exists() {
                fs::remove_dir_all(old)?;
            }
        }
        fs::create_dir_all(&tree.excluded)?;
        if let Some(parent) = tree.writer.parent() {
            fs::create_dir_all(parent)?;
        }
        fs::copy(std::env::current_exe()?, &tree.writer)?;
        let dir = Workdir {
            root: root.to_owned(),
            tree,
        };
        fs::create_dir_all(dir.read_dir())?;
        let block = vec![b'r'; READ_BYTES];
        for i in 0..READ_FILES {
            fs::write(dir.read_dir().join(format!("f{i:05}")), &block)?;
        }
        let src = root.join("package-src");
        write_tree(
            &src,
            PACKAGE_DIRS,
            PACKAGE_FILES_PER_DIR,
            PACKAGE_FILE_BYTES,
        )?;
        run(Command::new("tar")
            .arg("-cf")
            .arg(dir.tarball())
            .arg("-C")
            .arg(&src)
            .arg("."))?;
        fs::remove_dir_all(&src)?;
        Ok(dir)
    }

    fn read_dir(&self) -> PathBuf {
        self.root.join("read")
    }

    fn tarball(&self) -> PathBuf {
        self.root.join("package.tar")
    }

    /// Unpacks the package tarball into `dest`, with `tar`, as a package manager or a
    /// snapshotter would.
    fn untar_into(&self, dest: &Path) -> io::Result<()> {
        run(Command::new("tar")
            .arg("-xf")
            .arg(self.tarball())
            .arg("-C")
            .arg(dest))
    }

    /// Where image-extract unpacks, as containerd's overlayfs snapshotter unpacks a layer
    /// into `snapshots/N/fs`.
    fn layer(&self) -> PathBuf {
        self.tree.excluded.join("1").join("fs")
    }

    /// Removes the directory, the tree and the writer.
    pub fn remove(self) -> io::Result<()> {
        fs::remove_dir_all(&self.root)?;
        fs::remove_dir_all(&self.tree.root)?;
        fs::remove_file(&self.tree.writer)
    }
}

/// `dirs` directories of `files` files of `bytes` bytes each: `d000/f000`, ….
pub fn write_tree(root: &Path, dirs: u32, files: u32, bytes: usize) -> io::Result<()> {
    let content = vec![b'p'; bytes];
    for d in 0..dirs {
        let dir = root.join(format!("d{d:03}"));
        fs::create_dir_all(&dir)?;
        for f in 0..files {
            fs::write(dir.join(format!("f{f:03}")), &content)?;
        }
    }
    Ok(())
}

fn exec_heavy(_: &Workdir) -> io::Result<()> {
    let path = CString::new("/bin/true").expect("no NUL");
    let argv = [path.as_ptr(), std::ptr::null()];
    for _ in 0..EXECS {
        // SAFETY: the runner is single-threaded; the child only calls execv and _exit.
        match unsafe { libc::fork() } {
            -1 => return Err(io::Error::last_os_error()),
            0 => unsafe {
                libc::execv(path.as_ptr(), argv.as_ptr());
                libc::_exit(127);
            },
            child => {
                let mut status = 0;
                if unsafe { libc::waitpid(child, &mut status, 0) } < 0 {
                    return Err(io::Error::last_os_error());
                }
                if !libc::WIFEXITED(status) || libc::WEXITSTATUS(status) != 0 {
                    return Err(io::Error::other(format!(
                        "/bin/true ended with status {status:#x}"
                    )));
                }
            }
        }
    }
    Ok(())
}

fn file_churn(dir: &Workdir) -> io::Result<()> {
    churn(&dir.root.join("churn"))
}

/// Creates `dir`, creates, writes, renames and unlinks [`CHURN_FILES`] files in it, and
/// removes it: file-churn's work, and the trusted writer's.
pub fn churn(dir: &Path) -> io::Result<()> {
    fs::create_dir(dir)?;
    let content = [b'c'; CHURN_BYTES];
    for i in 0..CHURN_FILES {
        let mut file = fs::File::create(dir.join(format!("new{i:05}")))?;
        file.write_all(&content)?;
    }
    for i in 0..CHURN_FILES {
        fs::rename(
            dir.join(format!("new{i:05}")),
            dir.join(format!("old{i:05}")),
        )?;
    }
    for i in 0..CHURN_FILES {
        fs::remove_file(dir.join(format!("old{i:05}")))?;
    }
    fs::remove_dir(dir)
}

fn open_heavy(dir: &Workdir) -> io::Result<()> {
    let mut buf = Vec::with_capacity(READ_BYTES);
    let read_dir = dir.read_dir();
    let names: Vec<PathBuf> = (0..READ_FILES)
        .map(|i| read_dir.join(format!("f{i:05}")))
        .collect();
    for _ in 0..READ_PASSES {
        for name in &names {
            buf.clear();
            fs::File::open(name)?.read_to_end(&mut buf)?;
        }
    }
    Ok(())
}

fn package_manager(dir: &Workdir) -> io::Result<()> {
    let unpacked = dir.root.join("package");
    fs::create_dir(&unpacked)?;
    dir.untar_into(&unpacked)?;
    run(Command::new("rm").arg("-rf").arg(&unpacked))
}

fn trusted_writer(dir: &Workdir) -> io::Result<()> {
    run(Command::new(&dir.tree.writer)
        .arg(TRUSTED_WRITER_MODE)
        .arg(dir.tree.root.join("churn")))
}

fn image_extract(dir: &Workdir) -> io::Result<()> {
    let layer = dir.layer();
    fs::create_dir_all(&layer)?;
    dir.untar_into(&layer)?;
    let snapshot = layer
        .parent()
        .expect("the layer is in a snapshot directory");
    run(Command::new("rm").arg("-rf").arg(snapshot))
}

fn run(cmd: &mut Command) -> io::Result<()> {
    let status = cmd.status()?;
    if status.success() {
        Ok(())
    } else {
        Err(io::Error::other(format!("{cmd:?}: {status}")))
    }
}
