//! The LSM programs, loaded and attached as fmod_ret (`BPF_MODIFY_RETURN`) programs on
//! the `security_*` functions ([`super::mechanism`] says when and why).
//!
//! aya 0.14 has no program type for fmod_ret (its `ProgramType` lists `BPF_MODIFY_RETURN`
//! as "not supported yet"), and its programs' load attributes are private. So this
//! module does for these programs what aya does for the others, with aya's own object
//! parser and relocator (aya-obj) and four bpf(2) commands:
//!
//! 1. parse the embedded object again and load its BTF (`BPF_BTF_LOAD`);
//! 2. relocate the programs' map references to the maps aya already created, so both
//!    mechanisms' programs, the self-test and the daemon share every map;
//! 3. `BPF_PROG_LOAD` each program as `BPF_PROG_TYPE_TRACING` with
//!    `expected_attach_type = BPF_MODIFY_RETURN` and the `security_*` function's BTF id;
//! 4. `BPF_LINK_CREATE` to attach it (tracing links, Linux 6.0 and later), and
//!    `BPF_OBJ_PIN` for `--pin`.
//!
//! Upstream, this becomes an `FModRet` program type in aya (section `fmod_ret/`, loaded
//! like `FExit` with `BPF_MODIFY_RETURN`); then this module shrinks to
//! `FModRet::load(function, btf)` and `attach()`.

use std::{
    collections::HashSet,
    ffi::CString,
    io, mem,
    os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd},
    os::unix::ffi::OsStrExt,
    path::Path,
};

use aya::{maps::Map, Btf, Ebpf};
use aya_obj::{
    btf::{BtfError, BtfKind, BtfRelocationError},
    generated::{bpf_attach_type, bpf_attr, bpf_cmd, bpf_prog_type},
    relocation::EbpfRelocationError,
    Object, ParseError,
};

/// Room for the verifier's log when a load is refused. The kernel keeps the log's last
/// part when it does not fit, which is where the reason is.
const VERIFIER_LOG_BYTES: usize = 1 << 20;
/// `BPF_LOG_LEVEL1`: the instructions the verifier walked, and why it stopped.
const VERIFIER_LOG_LEVEL: u32 = 1;
/// The kernel keeps 15 bytes of a program's name, plus the NUL.
const PROG_NAME_LEN: usize = 15;

#[derive(Debug, thiserror::Error)]
pub enum ModifyReturnError {
    #[error("parsing the kernel programs: {0}")]
    Parse(#[from] ParseError),
    #[error("the kernel programs' BTF: {0}")]
    ObjectBtf(#[from] BtfError),
    #[error("the kernel refused the programs' BTF: {0}")]
    LoadBtf(#[source] io::Error),
    #[error(transparent)]
    BtfRelocation(#[from] BtfRelocationError),
    #[error(transparent)]
    Relocation(#[from] EbpfRelocationError),
    #[error("map {0} was not created by the loader")]
    MissingMap(String),
    #[error("program {0} is not in the kernel object")]
    MissingProgram(String),
    #[error("kernel BTF has no function {function}: {source}")]
    NoFunction {
        function: String,
        #[source]
        source: BtfError,
    },
    #[error("the kernel refused {program} as fmod_ret on {function}: {source}{log}")]
    Load {
        program: String,
        function: String,
        #[source]
        source: io::Error,
        /// The verifier's log, when it wrote one, starting with a newline.
        log: String,
    },
    #[error("attaching {program} to {function}: {source}")]
    Attach {
        program: String,
        function: String,
        #[source]
        source: io::Error,
    },
}

impl ModifyReturnError {
    /// The errno of a refused load or attach, for telling a missing feature from a bug.
    pub fn errno(&self) -> Option<i32> {
        match self {
            ModifyReturnError::Load { source, log, .. } if log.trim().is_empty() => {
                source.raw_os_error()
            }
            ModifyReturnError::Attach { source, .. } | ModifyReturnError::LoadBtf(source) => {
                source.raw_os_error()
            }
            _ => None,
        }
    }
}

/// The kernel object, relocated against the maps of an [`Ebpf`], with its BTF loaded:
/// what every fmod_ret program load needs.
pub struct ModifyReturnObject {
    object: Object,
    btf_fd: Option<OwnedFd>,
}

impl ModifyReturnObject {
    /// Parses `elf` (the object `ebpf` was loaded from) and points its programs at the
    /// maps `ebpf` created.
    pub fn new(elf: &[u8], ebpf: &Ebpf, kernel_btf: &Btf) -> Result<Self, ModifyReturnError> {
        let mut object = Object::parse(elf)?;
        let features = aya::features();
        // The same fixups aya makes before it loads the object's BTF.
        let btf_fd = match features.btf() {
            Some(btf_features) => match object.fixup_and_sanitize_btf(btf_features)? {
                Some(btf) => Some(load_btf(&btf.to_bytes())?),
                None => None,
            },
            None => None,
        };
        object.relocate_btf(kernel_btf)?;
        // Globals (.rodata with the offsets and the mode) are maps too: the programs read
        // the ones aya created and froze, with the values the loader wrote.
        let maps: Vec<(String, aya_obj::Map)> = object.maps.drain().collect();
        let mut with_fds = Vec::with_capacity(maps.len());
        for (name, map) in &maps {
            let created = ebpf
                .map(name)
                .ok_or_else(|| ModifyReturnError::MissingMap(name.clone()))?;
            with_fds.push((name.as_str(), map_fd(created).as_raw_fd(), map));
        }
        let text_sections: HashSet<usize> = object
            .functions
            .keys()
            .map(|&(section, _)| section)
            .collect();
        object.relocate_maps(with_fds.into_iter(), &text_sections)?;
        object.relocate_calls(&text_sections)?;
        object.sanitize_functions(features);
        Ok(Self { object, btf_fd })
    }

    /// Loads `program` as an fmod_ret program on the kernel function `function`.
    pub fn load(
        &self,
        program: &str,
        function: &str,
        kernel_btf: &Btf,
    ) -> Result<OwnedFd, ModifyReturnError> {
        let prog = self
            .object
            .programs
            .get(program)
            .ok_or_else(|| ModifyReturnError::MissingProgram(program.to_owned()))?;
        let code = self
            .object
            .functions
            .get(&prog.function_key())
            .ok_or_else(|| ModifyReturnError::MissingProgram(program.to_owned()))?;
        let attach_btf_id = kernel_btf
            .id_by_type_name_kind(function, BtfKind::Func)
            .map_err(|source| ModifyReturnError::NoFunction {
                function: function.to_owned(),
                source,
            })?;
        let func_info = code.func_info.func_info_bytes();
        let line_info = code.line_info.line_info_bytes();

        let attempt = |log: &mut [u8]| {
            // SAFETY: an all-zero bpf_attr is the empty request every command starts from.
            let mut attr: bpf_attr = unsafe { mem::zeroed() };
            // SAFETY: BPF_PROG_LOAD's member of the union; every pointer stored below
            // outlives the syscall.
            let load = unsafe { &mut attr.__bindgen_anon_3 };
            load.prog_type = bpf_prog_type::BPF_PROG_TYPE_TRACING as u32;
            load.expected_attach_type = bpf_attach_type::BPF_MODIFY_RETURN as u32;
            load.attach_btf_id = attach_btf_id;
            load.insns = code.instructions.as_ptr() as u64;
            load.insn_cnt = code.instructions.len() as u32;
            load.license = prog.license.as_ptr() as u64;
            for (to, &from) in load
                .prog_name
                .iter_mut()
                .zip(program.as_bytes().iter().take(PROG_NAME_LEN))
            {
                *to = from as libc::c_char;
            }
            if let Some(btf) = &self.btf_fd {
                load.prog_btf_fd = btf.as_raw_fd() as u32;
                if code.func_info_rec_size > 0 {
                    load.func_info = func_info.as_ptr() as u64;
                    load.func_info_cnt = code.func_info.len() as u32;
                    load.func_info_rec_size = code.func_info_rec_size as u32;
                }
                if code.line_info_rec_size > 0 {
                    load.line_info = line_info.as_ptr() as u64;
                    load.line_info_cnt = code.line_info.len() as u32;
                    load.line_info_rec_size = code.line_info_rec_size as u32;
                }
            }
            if !log.is_empty() {
                load.log_level = VERIFIER_LOG_LEVEL;
                load.log_buf = log.as_mut_ptr() as u64;
                load.log_size = log.len() as u32;
            }
            bpf_fd(bpf_cmd::BPF_PROG_LOAD, &mut attr)
        };
        // Loaded without a log first: logging makes the verifier slower.
        attempt(&mut []).or_else(|_| {
            let mut log = vec![0u8; VERIFIER_LOG_BYTES];
            attempt(&mut log).map_err(|source| ModifyReturnError::Load {
                program: program.to_owned(),
                function: function.to_owned(),
                source,
                log: verifier_log(&log),
            })
        })
    }
}

/// Attaches a loaded fmod_ret program to the function it was loaded for. The program
/// stays attached for as long as the returned link is open or pinned.
pub fn attach(prog: BorrowedFd<'_>) -> io::Result<OwnedFd> {
    // SAFETY: as in `load`.
    let mut attr: bpf_attr = unsafe { mem::zeroed() };
    // SAFETY: BPF_LINK_CREATE's member of the union. The target is the function the
    // program was loaded for (target_fd and target_btf_id 0).
    let link = unsafe { &mut attr.link_create };
    link.__bindgen_anon_1.prog_fd = prog.as_raw_fd() as u32;
    link.attach_type = bpf_attach_type::BPF_MODIFY_RETURN as u32;
    bpf_fd(bpf_cmd::BPF_LINK_CREATE, &mut attr)
}

/// Attaches a loaded cgroup program to the cgroup `cgroup` (a directory of the cgroup v2
/// hierarchy) as a BPF link, which runs alongside any other program attached there or
/// below (links are always `BPF_F_ALLOW_MULTI`). Raw, like [`attach`], so that the link
/// is an fd rtguard can pin: aya's cgroup links cannot be.
pub fn attach_cgroup(
    prog: BorrowedFd<'_>,
    cgroup: BorrowedFd<'_>,
    attach_type: bpf_attach_type,
) -> io::Result<OwnedFd> {
    // SAFETY: as in `load`.
    let mut attr: bpf_attr = unsafe { mem::zeroed() };
    // SAFETY: BPF_LINK_CREATE's member of the union.
    let link = unsafe { &mut attr.link_create };
    link.__bindgen_anon_1.prog_fd = prog.as_raw_fd() as u32;
    link.__bindgen_anon_2.target_fd = cgroup.as_raw_fd() as u32;
    link.attach_type = attach_type as u32;
    bpf_fd(bpf_cmd::BPF_LINK_CREATE, &mut attr)
}

/// Pins a link in the BPF filesystem (`BPF_OBJ_PIN`).
pub fn pin(link: BorrowedFd<'_>, path: &Path) -> io::Result<()> {
    let path = CString::new(path.as_os_str().as_bytes())
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    // SAFETY: as in `load`.
    let mut attr: bpf_attr = unsafe { mem::zeroed() };
    // SAFETY: BPF_OBJ_PIN's member of the union; `path` outlives the syscall.
    let obj = unsafe { &mut attr.__bindgen_anon_4 };
    obj.pathname = path.as_ptr() as u64;
    obj.bpf_fd = link.as_raw_fd() as u32;
    sys_bpf(bpf_cmd::BPF_OBJ_PIN, &mut attr).map(drop)
}

fn load_btf(raw: &[u8]) -> Result<OwnedFd, ModifyReturnError> {
    // SAFETY: as in `load`.
    let mut attr: bpf_attr = unsafe { mem::zeroed() };
    // SAFETY: BPF_BTF_LOAD's member of the union; `raw` outlives the syscall.
    let btf = unsafe { &mut attr.__bindgen_anon_7 };
    btf.btf = raw.as_ptr() as u64;
    btf.btf_size = raw.len() as u32;
    bpf_fd(bpf_cmd::BPF_BTF_LOAD, &mut attr).map_err(ModifyReturnError::LoadBtf)
}

/// The fd of a map aya created. Every variant holds the same `MapData`.
fn map_fd(map: &Map) -> BorrowedFd<'_> {
    let data = match map {
        Map::Array(d)
        | Map::ArrayOfMaps(d)
        | Map::BloomFilter(d)
        | Map::CgroupArray(d)
        | Map::CgroupStorage(d)
        | Map::CgrpStorage(d)
        | Map::CpuMap(d)
        | Map::DevMap(d)
        | Map::DevMapHash(d)
        | Map::HashMap(d)
        | Map::HashOfMaps(d)
        | Map::InodeStorage(d)
        | Map::LpmTrie(d)
        | Map::LruHashMap(d)
        | Map::PerCpuArray(d)
        | Map::PerCpuCgroupStorage(d)
        | Map::PerCpuHashMap(d)
        | Map::PerCpuLruHashMap(d)
        | Map::PerfEventArray(d)
        | Map::ProgramArray(d)
        | Map::Queue(d)
        | Map::RingBuf(d)
        | Map::ReusePortSockArray(d)
        | Map::SockHash(d)
        | Map::SockMap(d)
        | Map::SkStorage(d)
        | Map::Stack(d)
        | Map::StackTraceMap(d)
        | Map::Unsupported(d)
        | Map::XskMap(d) => d,
    };
    data.fd().as_fd()
}

fn sys_bpf(cmd: bpf_cmd, attr: &mut bpf_attr) -> io::Result<libc::c_long> {
    // SAFETY: `attr` is a whole bpf_attr, zeroed past what the command reads, as the
    // kernel requires of the bytes it does not know.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd as libc::c_long,
            std::ptr::from_mut(attr),
            mem::size_of::<bpf_attr>(),
        )
    };
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// A bpf(2) command that returns a new file descriptor.
fn bpf_fd(cmd: bpf_cmd, attr: &mut bpf_attr) -> io::Result<OwnedFd> {
    let fd = sys_bpf(cmd, attr)?;
    // SAFETY: the kernel returned a new descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// The verifier's log up to its NUL, with a leading newline; empty when there is none.
fn verifier_log(buf: &[u8]) -> String {
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    let text = String::from_utf8_lossy(&buf[..end]);
    let text = text.trim();
    if text.is_empty() {
        String::new()
    } else {
        format!("\n{text}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verifier_log_stops_at_the_nul_and_is_empty_without_text() {
        assert_eq!(
            verifier_log(b"R1 invalid mem access\n\0garbage"),
            "\nR1 invalid mem access"
        );
        assert_eq!(verifier_log(&[0; 16]), "");
    }
}
