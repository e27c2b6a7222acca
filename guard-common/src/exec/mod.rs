//! The exec-layer command classifier: one function, two callers.
//!
//! The kernel program, at `bprm_check_security`, reads the caller's argv, reduces every
//! argument to an [`ArgToken`] (a handful of hashes plus the first bytes) with
//! [`ArgToken::new`], and decides with [`classify`]. `rtguard explain` and the degraded
//! (audit-only) mode build the same [`CommandLine`] from a real argv and call the same
//! [`classify`] over the same compiled tables. There is no second implementation of the
//! matching logic anywhere.
//!
//! Everything here is `no_std`, allocates nothing, and loops only over constant bounds, so
//! the verifier can prove termination. Table access goes through [`CommandTables`]: the
//! kernel implements it over BPF maps, userspace over in-memory maps filled with exactly
//! the key/value pairs the loader writes into those BPF maps.
//!
//! # How a command line is read
//!
//! 1. **Class.** The basename of argv[0] selects a command class (apt, dpkg, systemctl, …);
//!    if it is unknown, the basename of the executed file; if that is unknown too, the class
//!    the executable's inode was resolved to. A multi-call binary (busybox,
//!    xtables-nft-multi) hands the choice to argv[1].
//! 2. **Words.** Each argument is looked up as a word of that class: a verb (destructive,
//!    upgrade, report-only), a modifier (hits-all, all-objects, dry-run) or an option that
//!    consumes the next argument as its value (`iptables -t nat`, `dpkg --status-fd 23`),
//!    so that a value is never mistaken for an object. Short options may be clustered
//!    (`-vF`), as getopt allows.
//! 3. **Objects.** The remaining positional arguments name objects (packages, units,
//!    chains): any of them, only the one right after the verb (iptables), or only the last
//!    (nft). Each is matched by its whole hash, its stem, the stem of its basename and its
//!    literal prefixes, against the protected objects of the class.
//! 4. **Decision.** A destructive verb meeting a protected object, a bare verb that hits
//!    everything, a hits-all flag or a name pattern is [`Verdict::Destructive`]; an install
//!    or reinstall of a protected package is [`Verdict::AllowedAsUpgrade`] when its group
//!    allows upgrades, or allows them in a window and one is open for that package.
//! 5. **Maintenance windows** are per object ([`OBJECT_WINDOW_OPEN`],
//!    [`OBJECT_REMOVAL_OPEN`]): a destructive verb passes only when every protected object
//!    it names has a window open that allows removal, and it names them one by one (no
//!    bare verb, pattern or all-objects word).

// Arguments reduced to hashes (`ArgToken`, `CommandLine`).
mod token;
// The compiled tables and their flag bits (`CommandTables`, `WordKey`, `ObjectEntry`, …).
mod tables;
// What the classifier answers (`Verdict`, `Reason`, `Classification`, `action`).
mod outcome;
// The per-argument scan state and object matching.
mod scan;
// The classifier (`classify`, `Classifier`) and its decision.
mod classify;

pub use classify::*;
pub use outcome::*;
pub use tables::*;
pub use token::*;

#[cfg(test)]
mod tests;
