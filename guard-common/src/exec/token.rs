//! Arguments as the classifier sees them: each reduced to an [`ArgToken`] (a handful of
//! hashes and the first bytes), one exec's worth of them in a [`CommandLine`].

use super::NO_CLASS;
use crate::hash::{basename_step, fnv1a_step, FNV_OFFSET};

/// Arguments captured per exec, argv[0] included. A longer argv is flagged
/// [`LINE_TRUNCATED`]; on a guarded binary that counts as destructive unless what was seen
/// already rules it out (see [`Reason::ArgvOverflow`](super::Reason::ArgvOverflow)).
pub const MAX_ARGV_TOKENS: usize = 64;
/// Bytes of one argument that are hashed. Longer arguments are flagged
/// [`TOKEN_TRUNCATED`]; protected names must be shorter (the policy compiler checks).
pub const MAX_TOKEN_BYTES: usize = 128;
/// Leading bytes of each argument kept verbatim, for short-option clusters (`-vF`) and
/// attached values (`-tnat`, `-FDOCKER`). Netfilter chain names are at most 28 bytes, so
/// `-X` plus any valid chain name fits.
pub const TOKEN_HEAD_BYTES: usize = 32;
/// Distinct literal-prefix lengths the tables may use for wildcard objects (`DOCKER*`).
pub const MAX_PREFIX_LENS: usize = 4;

// ArgToken::flags
/// Begins with `-` and is neither `-` nor `--`.
pub const TOKEN_OPTION: u32 = 1 << 0;
/// Begins with `--` and is longer than that.
pub const TOKEN_LONG_OPTION: u32 = 1 << 1;
/// Exactly `--`: everything after it is positional.
pub const TOKEN_END_OF_OPTIONS: u32 = 1 << 2;
/// Contains `=` (`--status-fd=23`, `runc=1.1.12-1`).
pub const TOKEN_HAS_VALUE: u32 = 1 << 3;
/// Contains a pattern character (`* ? [ ~ ^ $`): it may name objects it does not spell.
pub const TOKEN_PATTERN: u32 = 1 << 4;
/// A non-option ending in `-` or `_`: apt's and aptitude's "remove this package" marker.
pub const TOKEN_REMOVE_SUFFIX: u32 = 1 << 5;
/// Longer than [`MAX_TOKEN_BYTES`]; the hashes cover only the first bytes.
pub const TOKEN_TRUNCATED: u32 = 1 << 6;
/// Contains white space or `;` (nft joins its arguments into one statement).
pub const TOKEN_HAS_SPACE: u32 = 1 << 7;

// CommandLine::flags
/// argv had more than [`MAX_ARGV_TOKENS`] arguments.
pub const LINE_TRUNCATED: u32 = 1 << 0;
/// The kernel started the program itself (a usermode helper: a `core_pattern` pipe,
/// `modprobe`, `poweroff`), with no `execve` whose argv could be read. The line holds no
/// arguments; only the executed path is known.
pub const LINE_KERNEL_EXEC: u32 = 1 << 1;

/// One argv argument, reduced to what the classifier needs. The kernel fills it while it
/// copies the argument; userspace with the same function.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ArgToken {
    /// FNV-1a of the whole argument (up to [`MAX_TOKEN_BYTES`]).
    pub whole: u64,
    /// FNV-1a of the argument up to its first `:`, `=`, `/` or `_`, or without a trailing
    /// `-` when it has none of those: `containerd.io:amd64`, `runc=1.1.12-1`,
    /// `containerd/bookworm`, `containerd-` and `--status-fd=23` all reduce to their name.
    /// ASCII letters are lower-cased first, as the package tools do with a package name.
    pub stem: u64,
    /// FNV-1a of the part after the last `/` (`/usr/sbin/iptables` → `iptables`).
    pub base: u64,
    /// FNV-1a of that basename up to its first `:`, `=` or `_`, so a package file
    /// `/var/cache/apt/archives/containerd.io_1.7.27-1_amd64.deb` reduces to its package.
    /// Lower-cased like `stem`.
    pub base_stem: u64,
    /// FNV-1a of the first `CommandConfig::prefix_lens[i]` bytes; 0 when the argument is
    /// shorter or the length is unused.
    pub prefix: [u64; MAX_PREFIX_LENS],
    /// The first bytes verbatim, zero-padded.
    pub head: [u8; TOKEN_HEAD_BYTES],
    /// Bytes hashed (at most [`MAX_TOKEN_BYTES`]).
    pub len: u32,
    /// `TOKEN_*` bits.
    pub flags: u32,
}

impl ArgToken {
    pub const EMPTY: Self = Self {
        whole: FNV_OFFSET,
        stem: FNV_OFFSET,
        base: FNV_OFFSET,
        base_stem: FNV_OFFSET,
        prefix: [0; MAX_PREFIX_LENS],
        head: [0; TOKEN_HEAD_BYTES],
        len: 0,
        flags: 0,
    };

    /// Reduces one argument. `bytes` stops at its end or at the first NUL, whichever comes
    /// first; `truncated` says the caller could not copy all of it. Anything past
    /// [`MAX_TOKEN_BYTES`] is ignored and flagged.
    ///
    /// This is [`TokenHasher::byte`] per byte and [`TokenHasher::finish`]; the kernel makes
    /// the same calls, one byte per call of a BPF function.
    pub fn new(bytes: &[u8], truncated: bool, prefix_lens: &[u32; MAX_PREFIX_LENS]) -> Self {
        let mut hasher = TokenHasher::START;
        let mut ended = false;
        for i in 0..MAX_TOKEN_BYTES {
            let more = match bytes.get(i) {
                Some(&b) => hasher.byte(i, b, prefix_lens),
                None => false,
            };
            if !more {
                ended = true;
                break;
            }
        }
        let longer = !ended && bytes.get(MAX_TOKEN_BYTES).is_some_and(|&b| b != 0);
        hasher.finish(truncated || longer)
    }
}

/// [`ArgToken::new`] one byte at a time: the state between bytes.
#[derive(Clone, Copy, Debug)]
pub struct TokenHasher {
    token: ArgToken,
    stem_open: bool,
    stem_before_last: u64,
    base_stem_open: bool,
    first: u8,
    second: u8,
    last: u8,
    len: usize,
}

impl TokenHasher {
    pub const START: Self = Self {
        token: ArgToken::EMPTY,
        stem_open: true,
        stem_before_last: FNV_OFFSET,
        base_stem_open: true,
        first: 0,
        second: 0,
        last: 0,
        len: 0,
    };

    /// Folds in byte `i` (callers go from 0 upwards, below [`MAX_TOKEN_BYTES`]). Returns
    /// false, folding nothing, at the terminating NUL.
    pub fn byte(&mut self, i: usize, b: u8, prefix_lens: &[u32; MAX_PREFIX_LENS]) -> bool {
        if b == 0 {
            return false;
        }
        let t = &mut self.token;
        t.whole = fnv1a_step(t.whole, b);
        // The stems name packages, and dpkg and apt lower-case a package name before they
        // look it up (`dpkg -r DOCKER-CE` removes docker-ce). The whole hash stays exact:
        // options (`-P` purge, `-p` print) and chains (`DOCKER`) are case-sensitive.
        let folded = b.to_ascii_lowercase();
        if self.stem_open {
            if matches!(b, b':' | b'=' | b'/' | b'_') {
                self.stem_open = false;
            } else {
                self.stem_before_last = t.stem;
                t.stem = fnv1a_step(t.stem, folded);
            }
        }
        t.base = basename_step(t.base, b);
        if b == b'/' {
            t.base_stem = FNV_OFFSET;
            self.base_stem_open = true;
        } else {
            if self.base_stem_open {
                if matches!(b, b':' | b'=' | b'_') {
                    self.base_stem_open = false;
                } else {
                    t.base_stem = fnv1a_step(t.base_stem, folded);
                }
            }
        }
        if let Some(slot) = t.head.get_mut(i) {
            *slot = b;
        }
        for (len, slot) in prefix_lens.iter().zip(t.prefix.iter_mut()) {
            if *len as usize == i + 1 {
                *slot = t.whole;
            }
        }
        match b {
            b'=' => t.flags |= TOKEN_HAS_VALUE,
            b'*' | b'?' | b'[' | b'~' | b'^' | b'$' => t.flags |= TOKEN_PATTERN,
            b' ' | b'\t' | b'\n' | b';' => t.flags |= TOKEN_HAS_SPACE,
            _ => {}
        }
        if i == 0 {
            self.first = b;
        } else if i == 1 {
            self.second = b;
        }
        self.last = b;
        self.len = i + 1;
        true
    }

    /// The token; `truncated`: the argument went on past what was folded in.
    pub fn finish(&self, truncated: bool) -> ArgToken {
        let mut token = self.token;
        let len = self.len;
        let mut flags = token.flags;
        if truncated {
            flags |= TOKEN_TRUNCATED;
        }
        if self.first == b'-' {
            if len == 2 && self.second == b'-' {
                flags |= TOKEN_END_OF_OPTIONS;
            } else if len >= 2 {
                flags |= TOKEN_OPTION;
                if self.second == b'-' {
                    flags |= TOKEN_LONG_OPTION;
                }
            }
        } else if len > 1 && (self.last == b'-' || self.last == b'_') {
            flags |= TOKEN_REMOVE_SUFFIX;
        }
        if self.stem_open && self.last == b'-' && len > 1 {
            token.stem = self.stem_before_last;
        }
        token.len = len as u32;
        token.flags = flags;
        token
    }
}

/// Everything the classifier knows about one exec.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct CommandLine {
    /// argv[0], argv[1], …; only the first `count` are meaningful.
    pub tokens: [ArgToken; MAX_ARGV_TOKENS],
    pub count: u32,
    /// `LINE_*` bits.
    pub flags: u32,
    /// FNV-1a of the basename of the executed path (`bprm->filename`).
    pub filename_base: u64,
    /// The class the executable's inode was resolved to, or [`NO_CLASS`].
    pub exe_class: u32,
    /// Bit `c` set: the calling executable is a trusted caller of class `c` (dockerd may
    /// rewrite its own iptables chains).
    pub trusted_classes: u32,
}

impl CommandLine {
    pub const EMPTY: Self = Self {
        tokens: [ArgToken::EMPTY; MAX_ARGV_TOKENS],
        count: 0,
        flags: 0,
        filename_base: FNV_OFFSET,
        exe_class: NO_CLASS,
        trusted_classes: 0,
    };

    /// Appends one argument; sets [`LINE_TRUNCATED`] once the bound is reached.
    pub fn push(&mut self, arg: &[u8], prefix_lens: &[u32; MAX_PREFIX_LENS]) {
        match self.tokens.get_mut(self.count as usize) {
            Some(slot) => {
                *slot = ArgToken::new(arg, arg.len() > MAX_TOKEN_BYTES, prefix_lens);
                self.count += 1;
            }
            None => self.flags |= LINE_TRUNCATED,
        }
    }

    /// Records the executed path; only its basename matters.
    pub fn set_filename(&mut self, path: &[u8], prefix_lens: &[u32; MAX_PREFIX_LENS]) {
        self.filename_base = ArgToken::new(path, false, prefix_lens).base;
    }
}
