//! The workloads: what a host does all day that rtguard's hooks see, none of it touching
//! a protected object. Each run leaves its directory as it found it.

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

/// Where the workloads work. All of it is unprotected.
pub struct Workdir {
    pub root: PathBuf,
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

pub fn all() -> Vec<Workload> {
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
    ]
}

impl Workdir {
    /// Creates the directory and what the workloads read: the files to open and the
    /// package tarball.
    pub fn prepare(root: &Path) -> io::Result<Self> {
        if root.exists() {
            fs::remove_dir_all(root)?;
        }
        let dir = Workdir {
            root: root.to_owned(),
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
    let churn = dir.root.join("churn");
    fs::create_dir(&churn)?;
    let content = [b'c'; CHURN_BYTES];
    for i in 0..CHURN_FILES {
        let mut file = fs::File::create(churn.join(format!("new{i:05}")))?;
        file.write_all(&content)?;
    }
    for i in 0..CHURN_FILES {
        fs::rename(
            churn.join(format!("new{i:05}")),
            churn.join(format!("old{i:05}")),
        )?;
    }
    for i in 0..CHURN_FILES {
        fs::remove_file(churn.join(format!("old{i:05}")))?;
    }
    fs::remove_dir(&churn)
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
    run(Command::new("tar")
        .arg("-xf")
        .arg(dir.tarball())
        .arg("-C")
        .arg(&unpacked))?;
    run(Command::new("rm").arg("-rf").arg(&unpacked))
}

fn run(cmd: &mut Command) -> io::Result<()> {
    let status = cmd.status()?;
    if status.success() {
        Ok(())
    } else {
        Err(io::Error::other(format!("{cmd:?}: {status}")))
    }
}
