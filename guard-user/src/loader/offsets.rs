//! Kernel struct offsets, resolved from the running kernel's BTF at load time.
//!
//! The layouts of `struct inode` and friends change between kernel versions and configs;
//! reading them here, per boot, is what lets one rtguard binary run on every kernel.

use std::{
    borrow::Cow,
    collections::HashMap,
    fs::File,
    io::{self, Write},
    os::fd::AsRawFd,
    path::{Path, PathBuf},
};

use btf_rs::{Backend, Btf, Type};
use guard_common::KernelOffsets;
use nix::sys::memfd::{memfd_create, MemFdCreateFlag};
use regex::Regex;

use super::Mechanism;

/// Where the kernel exposes its own BTF.
pub const KERNEL_BTF: &str = "/sys/kernel/btf/vmlinux";

#[derive(Debug, thiserror::Error)]
pub enum OffsetError {
    #[error("cannot read kernel BTF from {path}: {source} (rtguard needs a kernel built with CONFIG_DEBUG_INFO_BTF)")]
    Read {
        path: PathBuf,
        #[source]
        source: btf_rs::Error,
    },
    #[error("kernel BTF has no struct {0}")]
    NoStruct(&'static str),
    #[error("kernel BTF: struct {strukt} has no member {member}")]
    NoMember {
        strukt: &'static str,
        member: &'static str,
    },
    #[error("kernel BTF: {strukt}.{member} is a bitfield; rtguard cannot read it")]
    Bitfield {
        strukt: &'static str,
        member: &'static str,
    },
    #[error("kernel BTF has no function {function} to attach the {hook} program to")]
    NoHook {
        hook: &'static str,
        function: String,
    },
    #[error("kernel BTF: {0}")]
    Btf(#[from] btf_rs::Error),
}

/// The structs [`offsets_from`] reads members of, indexed up front. One missing here is
/// still found, by a pass of its own over every type.
const STRUCTS: &[&str] = &[
    "dentry",
    "qstr",
    "inode",
    "super_block",
    "path",
    "vfsmount",
    "file",
    "iattr",
    "task_struct",
    "mm_struct",
    "linux_binprm",
    "pt_regs",
    "nsproxy",
    "mnt_namespace",
    "ns_common",
    "renamedata",
    "signal_struct",
    "tty_struct",
    "tty_driver",
    "sighand_struct",
    "k_sigaction",
    "sigaction",
    "proc_inode",
    "pid",
    "sock",
    "sock_common",
    "net",
    "sk_buff",
    "cred",
    "files_struct",
    "fdtable",
    "socket",
];

/// The functions indexed up front besides the hooks: what the rename watcher attaches to.
const FUNCTIONS: &[&str] = &[super::RENAME_WATCH.1];

/// A BTF, with the ids of the names that will be looked up in it found beforehand.
///
/// btf-rs keeps a mapped BTF as it is and finds a name by reading every type's, a pass
/// over all of vmlinux's types; by id it reads one type. So the names a caller needs,
/// those the index's pattern matches, are found together in one pass, and each look-up
/// after that is by id. A name outside the pattern is still found, by a pass of its own.
pub struct IndexedBtf {
    btf: Btf,
    pattern: Regex,
    ids: HashMap<String, Vec<u32>>,
}

impl IndexedBtf {
    /// Indexes the names in `btf` that `pattern` matches.
    pub fn new(btf: Btf, pattern: Regex) -> Result<Self, OffsetError> {
        let mut ids: HashMap<String, Vec<u32>> = HashMap::new();
        for id in btf.resolve_ids_by_regex(&pattern)? {
            if let Some(ty) = btf.resolve_type_by_id(id)?.as_btf_type() {
                ids.entry(btf.resolve_name(ty)?).or_default().push(id);
            }
        }
        Ok(Self { btf, pattern, ids })
    }

    /// Indexes what [`offsets_from`], [`hook_arity`] and [`has_hook`] look up in the
    /// kernel's BTF, and what programs attach to: the structs, the rename watcher's
    /// function, and every function a hook program can attach to with either mechanism.
    pub fn kernel(btf: Btf) -> Result<Self, OffsetError> {
        let exact: Vec<String> = STRUCTS
            .iter()
            .chain(FUNCTIONS)
            .map(|s| regex::escape(s))
            .collect();
        let functions = [Mechanism::BpfLsm, Mechanism::ModifyReturn]
            .map(|m| regex::escape(m.function_prefix()));
        let pattern = format!("^(?:{})$|^(?:{})", exact.join("|"), functions.join("|"));
        Self::new(
            btf,
            Regex::new(&pattern).expect("escaped names make a valid pattern"),
        )
    }

    /// Indexes `names`, looked up exactly.
    pub fn names(btf: Btf, names: &[&str]) -> Result<Self, OffsetError> {
        let names: Vec<String> = names.iter().map(|s| regex::escape(s)).collect();
        let pattern = format!("^(?:{})$", names.join("|"));
        Self::new(
            btf,
            Regex::new(&pattern).expect("escaped names make a valid pattern"),
        )
    }

    /// The BTF itself.
    pub fn btf(&self) -> &Btf {
        &self.btf
    }

    /// The functions among the indexed names, with their ids.
    pub fn functions(&self) -> impl Iterator<Item = (u32, &str)> {
        self.ids
            .iter()
            .flat_map(|(name, ids)| ids.iter().map(move |&id| (id, name.as_str())))
            .filter(|&(id, _)| matches!(self.btf.resolve_type_by_id(id), Ok(Type::Func(_))))
    }

    /// The types named `name`, in btf-rs's order (by id; a split BTF's own first).
    fn types(&self, name: &str) -> Result<Vec<Type>, btf_rs::Error> {
        let ids = if self.pattern.is_match(name) {
            Cow::Borrowed(self.ids.get(name).map_or(&[][..], Vec::as_slice))
        } else {
            Cow::Owned(self.btf.resolve_ids_by_name(name)?)
        };
        ids.iter()
            .map(|&id| self.btf.resolve_type_by_id(id))
            .collect()
    }
}

/// btf-rs's form of the BTF file at `path`, mapped rather than parsed; `bytes` are its
/// contents if they have been read already.
///
/// sysfs maps /sys/kernel/btf/vmlinux from Linux 6.16 on. Older kernels refuse, and then
/// the contents are copied into an anonymous memory file, mapped through its /proc path
/// (btf-rs maps only files it opens by path).
pub fn mapped(path: &Path, bytes: Option<&[u8]>) -> Result<Btf, OffsetError> {
    if let Ok(btf) = Btf::from_file_with_backend(path, Backend::Mmap) {
        return Ok(btf);
    }
    let read;
    let bytes = match bytes {
        Some(bytes) => bytes,
        None => {
            read = std::fs::read(path).map_err(|e| read_error(path, e.into()))?;
            &read
        }
    };
    mapped_copy(bytes).map_err(|e| read_error(path, e))
}

/// btf-rs's mapped form of a BTF held in `bytes`.
pub(super) fn mapped_copy(bytes: &[u8]) -> Result<Btf, btf_rs::Error> {
    let copy =
        File::from(memfd_create(c"btf", MemFdCreateFlag::MFD_CLOEXEC).map_err(io::Error::from)?);
    (&copy).write_all(bytes)?;
    let path = format!("/proc/self/fd/{}", copy.as_raw_fd());
    Btf::from_file_with_backend(path, Backend::Mmap)
}

pub(super) fn read_error(path: &Path, source: btf_rs::Error) -> OffsetError {
    OffsetError::Read {
        path: path.to_owned(),
        source,
    }
}

/// Reads the offsets the kernel programs need, attached with `mechanism`, from a BTF
/// file.
pub fn resolve_offsets(path: &Path, mechanism: Mechanism) -> Result<KernelOffsets, OffsetError> {
    let btf = IndexedBtf::kernel(mapped(path, None)?)?;
    offsets_from(&btf, mechanism)
}

/// The offsets, from an already indexed BTF. The arities are those of the functions the
/// programs attach to with `mechanism`.
pub fn offsets_from(btf: &IndexedBtf, mechanism: Mechanism) -> Result<KernelOffsets, OffsetError> {
    Ok(KernelOffsets {
        dentry_d_inode: member_offset(btf, "dentry", "d_inode")?,
        dentry_d_parent: member_offset(btf, "dentry", "d_parent")?,
        dentry_d_name: member_offset(btf, "dentry", "d_name")?,
        qstr_name: member_offset(btf, "qstr", "name")?,
        inode_i_ino: member_offset(btf, "inode", "i_ino")?,
        inode_i_sb: member_offset(btf, "inode", "i_sb")?,
        inode_i_mode: member_offset(btf, "inode", "i_mode")?,
        inode_i_generation: member_offset(btf, "inode", "i_generation")?,
        super_block_s_dev: member_offset(btf, "super_block", "s_dev")?,
        super_block_s_magic: member_offset(btf, "super_block", "s_magic")?,
        dentry_d_sb: member_offset(btf, "dentry", "d_sb")?,
        super_block_s_root: member_offset(btf, "super_block", "s_root")?,
        path_dentry: member_offset(btf, "path", "dentry")?,
        vfsmount_mnt_root: member_offset(btf, "vfsmount", "mnt_root")?,
        file_f_path: member_offset(btf, "file", "f_path")?,
        file_f_inode: member_offset(btf, "file", "f_inode")?,
        file_f_mode: member_offset(btf, "file", "f_mode")?,
        file_f_flags: member_offset(btf, "file", "f_flags")?,
        iattr_ia_valid: member_offset(btf, "iattr", "ia_valid")?,
        task_real_parent: member_offset(btf, "task_struct", "real_parent")?,
        task_tgid: member_offset(btf, "task_struct", "tgid")?,
        task_mm: member_offset(btf, "task_struct", "mm")?,
        task_comm: member_offset(btf, "task_struct", "comm")?,
        mm_exe_file: member_offset(btf, "mm_struct", "exe_file")?,
        mm_arg_start: member_offset(btf, "mm_struct", "arg_start")?,
        mm_arg_end: member_offset(btf, "mm_struct", "arg_end")?,
        linux_binprm_file: member_offset(btf, "linux_binprm", "file")?,
        linux_binprm_filename: member_offset(btf, "linux_binprm", "filename")?,
        linux_binprm_interp: member_offset(btf, "linux_binprm", "interp")?,
        pt_regs_syscall_nr: member_offset(btf, "pt_regs", syscall_abi::NR)?,
        pt_regs_execve_argv: member_offset(btf, "pt_regs", syscall_abi::EXECVE_ARGV)?,
        pt_regs_execveat_argv: member_offset(btf, "pt_regs", syscall_abi::EXECVEAT_ARGV)?,
        execve_nr: syscall_abi::EXECVE,
        execveat_nr: syscall_abi::EXECVEAT,
        inode_setattr_args: hook_arity(btf, mechanism, "inode_setattr")?,
        inode_setxattr_args: hook_arity(btf, mechanism, "inode_setxattr")?,
        inode_rename_args: hook_arity(btf, mechanism, "inode_rename")?,
        task_nsproxy: member_offset(btf, "task_struct", "nsproxy")?,
        nsproxy_mnt_ns: member_offset(btf, "nsproxy", "mnt_ns")?,
        mnt_namespace_inum: member_offset(btf, "mnt_namespace", "ns")?
            + member_offset(btf, "ns_common", "inum")?,
        renamedata_old_dentry: optional(member_offset(btf, "renamedata", "old_dentry"))?,
        renamedata_new_dentry: optional(member_offset(btf, "renamedata", "new_dentry"))?,
        task_signal: member_offset(btf, "task_struct", "signal")?,
        signal_struct_tty: member_offset(btf, "signal_struct", "tty")?,
        tty_struct_index: member_offset(btf, "tty_struct", "index")?,
        tty_struct_driver: member_offset(btf, "tty_struct", "driver")?,
        tty_driver_major: member_offset(btf, "tty_driver", "major")?,
        tty_driver_minor_start: member_offset(btf, "tty_driver", "minor_start")?,
        task_sighand: member_offset(btf, "task_struct", "sighand")?,
        sighand_action_handler: member_offset(btf, "sighand_struct", "action")?
            + member_offset(btf, "k_sigaction", "sa")?
            + member_offset(btf, "sigaction", "sa_handler")?,
        k_sigaction_size: struct_size(btf, "k_sigaction")?,
        proc_inode_pid: optional(member_offset(btf, "proc_inode", "pid"))?,
        proc_inode_vfs_inode: optional(member_offset(btf, "proc_inode", "vfs_inode"))?,
        pid_tasks: optional(member_offset(btf, "pid", "tasks"))?,
        task_pid_links: optional(member_offset(btf, "task_struct", "pid_links"))?,
        sock_sk_protocol: member_offset(btf, "sock", "sk_protocol")?,
        // `possible_net_t`, an anonymous struct's typedef, holds the pointer as its only
        // member.
        sock_net: member_offset(btf, "sock", "__sk_common")?
            + member_offset(btf, "sock_common", "skc_net")?,
        net_ns_inum: member_offset(btf, "net", "ns")? + member_offset(btf, "ns_common", "inum")?,
        sk_buff_data: member_offset(btf, "sk_buff", "data")?,
        sk_buff_len: member_offset(btf, "sk_buff", "len")?,
        task_cred: member_offset(btf, "task_struct", "cred")?,
        cred_cap_effective: member_offset(btf, "cred", "cap_effective")?,
        task_files: member_offset(btf, "task_struct", "files")?,
        files_struct_fdt: member_offset(btf, "files_struct", "fdt")?,
        fdtable_max_fds: member_offset(btf, "fdtable", "max_fds")?,
        fdtable_fd: member_offset(btf, "fdtable", "fd")?,
        file_private_data: member_offset(btf, "file", "private_data")?,
        socket_sk: member_offset(btf, "socket", "sk")?,
        sock_sk_family: member_offset(btf, "sock", "__sk_common")?
            + member_offset(btf, "sock_common", "skc_family")?,
    })
}

/// How this architecture enters a syscall: the `struct pt_regs` members with the number
/// and with argv of `execve(filename, argv, envp)` and `execveat(dirfd, filename, argv,
/// envp, flags)`, and their numbers.
#[cfg(target_arch = "x86_64")]
mod syscall_abi {
    pub const NR: &str = "orig_ax";
    pub const EXECVE_ARGV: &str = "si";
    pub const EXECVEAT_ARGV: &str = "dx";
    pub const EXECVE: u32 = 59;
    pub const EXECVEAT: u32 = 322;
}

#[cfg(not(target_arch = "x86_64"))]
compile_error!("rtguard knows where execve's arguments are in struct pt_regs on x86_64 only");

/// An offset only an optional feature needs: 0 when the kernel lacks the struct or
/// member, any other error as it is.
fn optional(offset: Result<u32, OffsetError>) -> Result<u32, OffsetError> {
    match offset {
        Err(OffsetError::NoStruct(_) | OffsetError::NoMember { .. }) => Ok(0),
        other => other,
    }
}

/// Number of parameters of the function the program for `hook` attaches to with
/// `mechanism` (`bpf_lsm_<hook>` or `security_*`).
pub fn hook_arity(
    btf: &IndexedBtf,
    mechanism: Mechanism,
    hook: &'static str,
) -> Result<u32, OffsetError> {
    let function = mechanism.attach_function(hook);
    let no_hook = || OffsetError::NoHook {
        hook,
        function: function.clone(),
    };
    let ty = btf
        .types(&function)
        .map_err(|_| no_hook())?
        .into_iter()
        .find_map(|ty| match ty {
            Type::Func(f) => Some(f),
            _ => None,
        })
        .ok_or_else(no_hook)?;
    match btf.btf.resolve_chained_type(&ty)? {
        Type::FuncProto(proto) => Ok(proto.parameters.len() as u32),
        _ => Err(no_hook()),
    }
}

/// Whether the kernel has the function the program for `hook` attaches to with
/// `mechanism`. The `path_*` hooks exist only with CONFIG_SECURITY_PATH.
pub fn has_hook(btf: &IndexedBtf, mechanism: Mechanism, hook: &str) -> bool {
    btf.types(&mechanism.attach_function(hook))
        .is_ok_and(|types| types.iter().any(|t| matches!(t, Type::Func(_))))
}

/// Byte offset of `strukt.member`, looking through anonymous structs and unions the way
/// C field access does.
pub fn member_offset(
    btf: &IndexedBtf,
    strukt: &'static str,
    member: &'static str,
) -> Result<u32, OffsetError> {
    let ty = find_struct(btf, strukt)?;
    let bits =
        find_member_bits(&btf.btf, &ty, member)?.ok_or(OffsetError::NoMember { strukt, member })?;
    if bits % 8 != 0 {
        return Err(OffsetError::Bitfield { strukt, member });
    }
    Ok(bits / 8)
}

/// Size in bytes of `struct strukt`.
pub fn struct_size(btf: &IndexedBtf, strukt: &'static str) -> Result<u32, OffsetError> {
    Ok(find_struct(btf, strukt)?.size() as u32)
}

fn find_struct(btf: &IndexedBtf, strukt: &'static str) -> Result<btf_rs::Struct, OffsetError> {
    // Several types can share a name (a struct and a same-named typedef, or a forward
    // declaration); take the first one that is a complete struct.
    btf.types(strukt)
        .map_err(|_| OffsetError::NoStruct(strukt))?
        .into_iter()
        .find_map(|ty| match ty {
            Type::Struct(s) if !s.members.is_empty() => Some(s),
            _ => None,
        })
        .ok_or(OffsetError::NoStruct(strukt))
}

fn find_member_bits(
    btf: &Btf,
    ty: &btf_rs::Struct,
    wanted: &str,
) -> Result<Option<u32>, OffsetError> {
    for m in &ty.members {
        let name = btf.resolve_name(m).unwrap_or_default();
        if name == wanted {
            if m.bitfield_size().is_some_and(|size| size != 0) {
                return Ok(Some(u32::MAX)); // not byte aligned; reported as a bitfield
            }
            return Ok(Some(m.bit_offset()));
        }
        if name.is_empty() {
            if let Type::Struct(inner) | Type::Union(inner) = btf.resolve_chained_type(m)? {
                if let Some(bits) = find_member_bits(btf, &inner, wanted)? {
                    return Ok(Some(m.bit_offset() + bits));
                }
            }
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host_btf() -> Option<&'static Path> {
        let path = Path::new(KERNEL_BTF);
        if path.exists() {
            Some(path)
        } else {
            eprintln!("skipping: {KERNEL_BTF} is absent on this kernel");
            None
        }
    }

    /// The host kernel's BTF as the loader indexes it.
    fn host_types() -> Option<IndexedBtf> {
        let path = host_btf()?;
        Some(IndexedBtf::kernel(mapped(path, None).unwrap()).unwrap())
    }

    #[test]
    fn resolves_every_offset_on_the_host_kernel() {
        let Some(path) = host_btf() else { return };
        let off = resolve_offsets(path, Mechanism::BpfLsm).unwrap();
        assert!(off.is_resolved());
        // Invariants that hold on every kernel: i_mode leads struct inode, d_inode and
        // i_sb are pointers (8-byte aligned), s_dev is a 4-byte dev_t.
        assert!(off.inode_i_ino > 0 && off.inode_i_sb > 0);
        assert_eq!(off.dentry_d_inode % 8, 0);
        assert_eq!(off.inode_i_sb % 8, 0);
        assert_eq!(off.super_block_s_dev % 4, 0);
        // s_magic is an unsigned long, read as 64 bits.
        assert_eq!(off.super_block_s_magic % 8, 0);
        assert!(off.super_block_s_magic > off.super_block_s_dev);
        assert_eq!(off.dentry_d_sb % 8, 0);
        assert_eq!(off.super_block_s_root % 8, 0);
        assert!(off.dentry_d_sb > 0 && off.super_block_s_root > 0);
        assert_eq!(off.dentry_d_parent % 8, 0);
        assert_eq!(off.task_mm % 8, 0);
        assert!(off.task_tgid > 0 && off.task_real_parent > 0 && off.mm_exe_file > 0);
        assert_eq!(off.mm_arg_end, off.mm_arg_start + 8);
        // struct qstr is { hash_len; name }.
        assert_eq!(off.qstr_name, 8);
        // struct path is { mnt; dentry }.
        assert_eq!(off.path_dentry, 8);
        assert_eq!(off.inode_i_mode, 0);
        assert!(off.inode_i_generation > 0);
        // The host's kernel is newer than 5.12: vfs_rename takes a struct renamedata.
        assert!(off.renamedata_old_dentry > 0);
        assert_eq!(off.renamedata_old_dentry % 8, 0);
        assert!(off.renamedata_new_dentry > off.renamedata_old_dentry);
        // sa_handler leads struct sigaction, which leads struct k_sigaction; 64 of those
        // follow the sighand_struct's count and lock.
        assert_eq!(off.task_sighand % 8, 0);
        assert!(off.sighand_action_handler > 0);
        assert_eq!(off.sighand_action_handler % 8, 0);
        assert!(off.k_sigaction_size >= 32);
        assert!(off.proc_pid_resolved(), "{off:?}");
        assert_eq!(off.k_sigaction_size % 8, 0);
        // x86_64's pt_regs is the entry code's stack frame: r15 … r8, ax, cx, dx, si, di,
        // orig_ax, ip, … in 8-byte slots.
        assert_eq!(
            (
                off.pt_regs_execveat_argv,
                off.pt_regs_execve_argv,
                off.pt_regs_syscall_nr
            ),
            (12 * 8, 13 * 8, 15 * 8)
        );
        assert_eq!(off.linux_binprm_interp % 8, 0);
        assert_ne!(off.linux_binprm_interp, off.linux_binprm_filename);
    }

    /// Everything the loader reads, as each form of the host kernel's BTF gives it.
    fn reading(btf: &IndexedBtf) -> Vec<String> {
        use super::super::{lsm_hooks, FileHooks};
        let hooks: Vec<&str> = lsm_hooks(FileHooks::Path)
            .chain(lsm_hooks(FileHooks::Inode))
            .chain(["no_such_hook"])
            .collect();
        let mut read = Vec::new();
        for m in [Mechanism::BpfLsm, Mechanism::ModifyReturn] {
            read.push(format!("{m:?}: {:?}", offsets_from(btf, m)));
            for &hook in &hooks {
                read.push(format!(
                    "{m:?} {hook}: {} {:?}",
                    has_hook(btf, m, hook),
                    hook_arity(btf, m, hook).map_err(|e| e.to_string())
                ));
            }
        }
        read
    }

    #[test]
    fn the_index_reads_what_the_whole_parse_reads() {
        let Some(path) = host_btf() else { return };
        // The whole BTF parsed, each name looked up in the parse's own table (the
        // pattern matches nothing).
        let parsed = Btf::from_file(path).unwrap();
        let nothing = Regex::new(r"[^\x00-\x{10FFFF}]").unwrap();
        let parsed = IndexedBtf::new(parsed, nothing).unwrap();
        let expected = reading(&parsed);
        assert!(expected[0].starts_with("BpfLsm: Ok("), "{}", expected[0]);
        // Mapped as the loader maps it, from sysfs where the kernel allows it.
        assert_eq!(reading(&host_types().unwrap()), expected);
        // Mapped from a copy in memory, as on kernels that do not.
        let copy = mapped_copy(&std::fs::read(path).unwrap()).unwrap();
        assert_eq!(reading(&IndexedBtf::kernel(copy).unwrap()), expected);
    }

    #[test]
    fn hook_arity_tracks_the_running_kernel() {
        let Some(btf) = host_types() else { return };
        for m in [Mechanism::BpfLsm, Mechanism::ModifyReturn] {
            assert_eq!(hook_arity(&btf, m, "path_unlink").unwrap(), 2);
            assert_eq!(hook_arity(&btf, m, "file_open").unwrap(), 1);
            assert_eq!(hook_arity(&btf, m, "bprm_check_security").unwrap(), 1);
            assert_eq!(hook_arity(&btf, m, "task_kill").unwrap(), 4);
            assert!(!has_hook(&btf, m, "no_such_hook"));
            assert!(has_hook(&btf, m, "file_open"));
        }
        // (dentry, attr) before 6.3, (idmap, dentry, attr) since; the function has had
        // the namespace first since 5.12.
        let lsm = Mechanism::BpfLsm;
        assert!(matches!(
            hook_arity(&btf, lsm, "inode_setattr").unwrap(),
            2 | 3
        ));
        let fmod_ret = Mechanism::ModifyReturn;
        assert_eq!(hook_arity(&btf, fmod_ret, "inode_setattr").unwrap(), 3);
        // The hook has no flags; the function takes them.
        assert_eq!(hook_arity(&btf, lsm, "inode_rename").unwrap(), 4);
        assert_eq!(hook_arity(&btf, fmod_ret, "inode_rename").unwrap(), 5);
    }

    #[test]
    fn looks_through_anonymous_members() {
        let Some(btf) = host_types() else { return };
        // struct file's f_inode and i_nlink (inside an anonymous union in struct inode)
        // exist on every kernel rtguard supports.
        let nlink = member_offset(&btf, "inode", "i_nlink").unwrap();
        let raw = member_offset(&btf, "inode", "__i_nlink").unwrap();
        assert_eq!(
            nlink, raw,
            "both members of the anonymous union share an offset"
        );
    }

    #[test]
    fn names_what_is_missing() {
        let Some(btf) = host_types() else { return };
        let err = member_offset(&btf, "inode", "no_such_member").unwrap_err();
        assert_eq!(
            err.to_string(),
            "kernel BTF: struct inode has no member no_such_member"
        );
        let err = member_offset(&btf, "no_such_struct_rtguard", "x").unwrap_err();
        assert_eq!(
            err.to_string(),
            "kernel BTF has no struct no_such_struct_rtguard"
        );
    }

    #[test]
    fn an_optional_offset_is_zero_when_absent_and_other_errors_stay() {
        assert_eq!(optional(Ok(24)).unwrap(), 24);
        assert_eq!(
            optional(Err(OffsetError::NoStruct("renamedata"))).unwrap(),
            0
        );
        let missing = OffsetError::NoMember {
            strukt: "renamedata",
            member: "old_dentry",
        };
        assert_eq!(optional(Err(missing)).unwrap(), 0);
        let bitfield = OffsetError::Bitfield {
            strukt: "renamedata",
            member: "old_dentry",
        };
        assert!(optional(Err(bitfield)).is_err());
    }

    #[test]
    fn unreadable_btf_is_reported_with_its_path() {
        let err =
            resolve_offsets(Path::new("/nonexistent/vmlinux"), Mechanism::BpfLsm).unwrap_err();
        assert!(err
            .to_string()
            .starts_with("cannot read kernel BTF from /nonexistent/vmlinux"));
    }
}
