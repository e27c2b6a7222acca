//! How the enforcing programs reach the kernel's security checks.
//!
//! Two ways in, one set of programs. A BPF LSM program runs from an LSM hook, which the
//! kernel calls only when `bpf` is in its active LSM list (`lsm=` on the command line, or
//! `CONFIG_LSM`). Ubuntu, WSL2 and Azure Linux boot without it. There the same programs
//! are attached as `BPF_MODIFY_RETURN` (fmod_ret) tracing programs to the `security_*`
//! functions that call the hooks: the verifier allows fmod_ret on any function whose
//! name starts with `security_`, whatever LSMs are active. A `security_*` function takes
//! the hook's arguments, and both program types see them followed by the previous
//! program's return value, so the bytecode is the same; only the arities of two
//! `inode_*` hooks differ, and those come from BTF ([`super::offsets`]).

use std::{fmt, io};

/// The mechanism the enforcing programs are attached with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mechanism {
    /// BPF LSM programs on the LSM hooks.
    BpfLsm,
    /// fmod_ret tracing programs on the `security_*` functions.
    ModifyReturn,
}

impl Mechanism {
    /// The name used on the command line and in `status --json`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Mechanism::BpfLsm => "bpf-lsm",
            Mechanism::ModifyReturn => "fmod-ret",
        }
    }

    /// How the programs are attached, in words.
    pub const fn describe(self) -> &'static str {
        match self {
            Mechanism::BpfLsm => "BPF LSM",
            Mechanism::ModifyReturn => "fmod_ret on security_* functions",
        }
    }

    /// The kernel function, named as in BTF, whose prototype the program for `hook` is
    /// verified against: `bpf_lsm_<hook>` (the LSM attach point) or `security_*`.
    pub fn attach_function(self, hook: &str) -> String {
        match self {
            Mechanism::BpfLsm => format!("{}{hook}", self.function_prefix()),
            Mechanism::ModifyReturn => security_function(hook),
        }
    }

    /// How the name of every function this mechanism attaches to begins.
    pub const fn function_prefix(self) -> &'static str {
        match self {
            Mechanism::BpfLsm => "bpf_lsm_",
            Mechanism::ModifyReturn => "security_",
        }
    }
}

impl fmt::Display for Mechanism {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.describe())
    }
}

/// The `security_*` function that calls an LSM hook. One hook is named differently
/// from its caller.
pub fn security_function(hook: &str) -> String {
    match hook {
        "bprm_check_security" => "security_bprm_check".to_owned(),
        hook => format!("security_{hook}"),
    }
}

/// The operator's choice (`--mechanism`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MechanismChoice {
    /// BPF LSM where `bpf` is an active LSM, fmod_ret elsewhere.
    Auto,
    Only(Mechanism),
}

/// Why a mechanism was picked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Why {
    /// `--mechanism`.
    Forced,
    BpfActive,
    /// The active LSMs, without `bpf`.
    BpfInactive(Vec<String>),
    /// Reading the list failed.
    ListUnreadable(String),
    /// `bpf` is listed, but the kernel refused the LSM programs (the reason).
    LsmRefused(String),
}

impl Why {
    /// The few words `rtguard status` puts after the mechanism ("fmod_ret on security_*
    /// functions; bpf is not an active LSM").
    pub fn short(&self) -> &'static str {
        match self {
            Why::Forced => "forced with --mechanism",
            Why::BpfActive => "bpf is an active LSM",
            Why::BpfInactive(_) => "bpf is not an active LSM",
            Why::ListUnreadable(_) => "the active LSM list is unreadable",
            Why::LsmRefused(_) => "the kernel refused BPF LSM programs",
        }
    }
}

impl fmt::Display for Why {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Why::BpfInactive(lsms) => write!(
                f,
                "bpf is not an active LSM (active: {}); the same programs run on the \
                 security_* functions instead",
                lsms.join(",")
            ),
            Why::ListUnreadable(e) => {
                write!(
                    f,
                    "the active LSM list is unreadable ({e}); fmod_ret needs none"
                )
            }
            Why::LsmRefused(reason) => write!(f, "{reason}; fmod_ret instead"),
            other => f.write_str(other.short()),
        }
    }
}

/// The mechanism for `choice` on a kernel whose active LSM list is `lsms`, and why.
///
/// BPF LSM comes first where it is active: the hooks are the kernel's interface for
/// exactly this, and they run in order with the other LSMs (AppArmor, SELinux).
/// fmod_ret is the way in everywhere else; it needs only BPF trampolines, which the
/// self-test then proves like any other attachment. An unreadable list says nothing
/// about `bpf`, so fmod_ret, which does not depend on it, is taken.
pub fn choose(choice: MechanismChoice, lsms: &io::Result<Vec<String>>) -> (Mechanism, Why) {
    match (choice, lsms) {
        (MechanismChoice::Only(m), _) => (m, Why::Forced),
        (MechanismChoice::Auto, Ok(lsms)) if lsms.iter().any(|l| l == "bpf") => {
            (Mechanism::BpfLsm, Why::BpfActive)
        }
        (MechanismChoice::Auto, Ok(lsms)) => {
            (Mechanism::ModifyReturn, Why::BpfInactive(lsms.clone()))
        }
        (MechanismChoice::Auto, Err(e)) => {
            (Mechanism::ModifyReturn, Why::ListUnreadable(e.to_string()))
        }
    }
}

/// Where the kernel lists its active LSMs.
const ACTIVE_LSMS: &str = "/sys/kernel/security/lsm";

/// Why BPF LSM programs cannot enforce on a kernel whose active LSMs are `lsms`, and the
/// boot parameter that would fix it; `None` when `bpf` is among them. The kernel still
/// loads and attaches BPF LSM programs there, but never calls them.
pub fn bpf_lsm_inactive(lsms: &[String]) -> Option<String> {
    if lsms.iter().any(|l| l == "bpf") {
        return None;
    }
    let mut with_bpf = lsms.to_vec();
    with_bpf.push("bpf".to_owned());
    Some(format!(
        "BPF LSM is not active (active LSMs: {}): its programs attach but the kernel never \
         runs them; add `lsm={}` to the kernel command line (GRUB_CMDLINE_LINUX in \
         /etc/default/grub, then update-grub) and reboot",
        lsms.join(","),
        with_bpf.join(",")
    ))
}

/// The kernel's active LSMs, in order (needs securityfs mounted).
pub fn active_lsms() -> io::Result<Vec<String>> {
    Ok(parse_lsm_list(&std::fs::read_to_string(ACTIVE_LSMS)?))
}

fn parse_lsm_list(list: &str) -> Vec<String> {
    list.trim()
        .split(',')
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(s: &str) -> io::Result<Vec<String>> {
        Ok(s.split(',').map(str::to_owned).collect())
    }

    #[test]
    fn every_attach_function_has_its_mechanism_s_prefix() {
        for m in [Mechanism::BpfLsm, Mechanism::ModifyReturn] {
            for hook in ["path_unlink", "bprm_check_security", "inode_setattr"] {
                let function = m.attach_function(hook);
                assert!(function.starts_with(m.function_prefix()), "{function}");
            }
        }
    }

    #[test]
    fn bpf_lsm_where_active_fmod_ret_elsewhere() {
        let debian = list("lockdown,capability,landlock,yama,apparmor,tomoyo,bpf");
        let ubuntu = list("landlock,lockdown,yama,integrity,apparmor");
        assert_eq!(choose(MechanismChoice::Auto, &debian).0, Mechanism::BpfLsm);
        let (m, why) = choose(MechanismChoice::Auto, &ubuntu);
        assert_eq!(m, Mechanism::ModifyReturn);
        assert_eq!(why.short(), "bpf is not an active LSM");
        let long = why.to_string();
        assert!(
            long.contains("active: landlock,lockdown,yama,integrity,apparmor"),
            "{long}"
        );
        let unreadable = Err(io::Error::from(io::ErrorKind::NotFound));
        assert_eq!(
            choose(MechanismChoice::Auto, &unreadable).0,
            Mechanism::ModifyReturn
        );
        let forced = MechanismChoice::Only(Mechanism::ModifyReturn);
        assert_eq!(choose(forced, &debian).0, Mechanism::ModifyReturn);
    }

    #[test]
    fn hooks_map_to_the_functions_that_call_them() {
        let m = Mechanism::ModifyReturn;
        assert_eq!(m.attach_function("path_unlink"), "security_path_unlink");
        assert_eq!(m.attach_function("file_open"), "security_file_open");
        assert_eq!(m.attach_function("task_kill"), "security_task_kill");
        assert_eq!(
            m.attach_function("bprm_check_security"),
            "security_bprm_check"
        );
        assert_eq!(
            Mechanism::BpfLsm.attach_function("inode_rename"),
            "bpf_lsm_inode_rename"
        );
    }

    #[test]
    fn an_inactive_bpf_lsm_is_explained_with_the_boot_parameter_that_adds_it() {
        let ubuntu: Vec<String> = "landlock,lockdown,yama,integrity,apparmor"
            .split(',')
            .map(str::to_owned)
            .collect();
        let why = bpf_lsm_inactive(&ubuntu).unwrap();
        assert!(
            why.starts_with(
                "BPF LSM is not active (active LSMs: landlock,lockdown,yama,integrity,apparmor)"
            ),
            "{why}"
        );
        assert!(
            why.contains("`lsm=landlock,lockdown,yama,integrity,apparmor,bpf`"),
            "{why}"
        );
        let debian = parse_lsm_list("lockdown,capability,landlock,yama,apparmor,tomoyo,bpf\n");
        assert_eq!(bpf_lsm_inactive(&debian), None);
    }

    #[test]
    fn lsm_list_is_split_into_whole_names() {
        assert_eq!(
            parse_lsm_list("lockdown,capability,bpf\n"),
            ["lockdown", "capability", "bpf"]
        );
        assert!(!parse_lsm_list("capability,bpffs").contains(&"bpf".to_owned()));
        assert!(parse_lsm_list("").is_empty());
    }
}
