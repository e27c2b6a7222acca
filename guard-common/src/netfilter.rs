//! The netfilter layer: firewall changes judged by their content, as the kernel receives
//! them.
//!
//! Every nftables tool (`nft`, `iptables-nft`, `iptables-restore`, firewalld, a program
//! speaking netlink itself) sends its changes as one *batch* of netlink messages on a
//! `NETLINK_NETFILTER` socket; the kernel applies a batch whole or not at all. The LSM's
//! `netlink_send` hook sees each `sendmsg` before nfnetlink reads it, so the programs walk
//! the batch and refuse one that would take away a protected chain or set and not declare
//! it again. What a batch takes away is decided message by message as nf_tables itself
//! would apply it (see [`NftMessage`]).
//!
//! Which chains and sets exist, and in which tables, is the kernel's state, not the
//! batch's: the daemon mirrors the protected ones into a [`LiveObject`] array, so that a
//! table flushed or deleted whole (or the whole ruleset) can be answered with what it
//! holds.

use crate::event::EventHeader;

/// `NETLINK_NETFILTER`: the socket protocol nfnetlink listens on.
pub const NETLINK_NETFILTER: u16 = 12;
/// nfnetlink subsystems (the high byte of a message's type).
pub const NFNL_SUBSYS_IPSET: u8 = 6;
pub const NFNL_SUBSYS_NFTABLES: u8 = 10;
/// A batch's first and last messages (`NLMSG_MIN_TYPE` and the one after).
pub const NFNL_MSG_BATCH_BEGIN: u16 = 16;
pub const NFNL_MSG_BATCH_END: u16 = 17;
/// The multicast group nf_tables announces committed changes on.
pub const NFNLGRP_NFTABLES: u32 = 7;

/// Bytes of a netlink message header and of the `struct nfgenmsg` after it.
pub const NLMSG_HDR_LEN: u32 = 16;
pub const NFGENMSG_LEN: u32 = 4;
/// `nla_type`'s flag bits (`NLA_F_NESTED`, `NLA_F_NET_BYTEORDER`).
pub const NLA_TYPE_MASK: u16 = 0x3fff;

/// Address families nf_tables keys tables by (`NFPROTO_*`).
pub mod family {
    pub const UNSPEC: u8 = 0;
    pub const INET: u8 = 1;
    pub const IPV4: u8 = 2;
    pub const ARP: u8 = 3;
    pub const NETDEV: u8 = 5;
    pub const BRIDGE: u8 = 7;
    pub const IPV6: u8 = 10;

    /// The word nft uses for a family.
    pub const fn name(family: u8) -> &'static str {
        match family {
            UNSPEC => "any",
            INET => "inet",
            IPV4 => "ip",
            ARP => "arp",
            NETDEV => "netdev",
            BRIDGE => "bridge",
            IPV6 => "ip6",
            _ => "?",
        }
    }
}

/// The nf_tables messages the layer reads (`enum nf_tables_msg_types`).
pub mod nft_msg {
    pub const NEWTABLE: u8 = 0;
    pub const DELTABLE: u8 = 2;
    pub const NEWCHAIN: u8 = 3;
    pub const DELCHAIN: u8 = 5;
    pub const NEWRULE: u8 = 6;
    pub const DELRULE: u8 = 8;
    pub const NEWSET: u8 = 9;
    pub const DELSET: u8 = 11;
    pub const DELSETELEM: u8 = 14;
    /// Linux 6.3: deletions that succeed when the object is already gone.
    pub const DESTROYTABLE: u8 = 26;
    pub const DESTROYCHAIN: u8 = 27;
    pub const DESTROYRULE: u8 = 28;
    pub const DESTROYSET: u8 = 29;
    pub const DESTROYSETELEM: u8 = 30;
}

/// `NFT_TABLE_F_DORMANT`: the table's base chains are unhooked, its rules see no packet.
pub const NFT_TABLE_F_DORMANT: u32 = 1;
/// `NFT_TABLE_F_OWNER`: the table goes when the socket that created it closes.
pub const NFT_TABLE_F_OWNER: u32 = 2;
/// `NLM_F_REQUEST`: only requests are processed outside a batch.
pub const NLM_F_REQUEST: u16 = 1;

/// Attribute numbers (`enum nft_*_attributes`) of the messages above.
pub mod nfta {
    pub const TABLE_NAME: u16 = 1;
    pub const TABLE_FLAGS: u16 = 2;
    pub const TABLE_HANDLE: u16 = 4;
    pub const CHAIN_TABLE: u16 = 1;
    pub const CHAIN_HANDLE: u16 = 2;
    pub const CHAIN_NAME: u16 = 3;
    pub const RULE_TABLE: u16 = 1;
    pub const RULE_CHAIN: u16 = 2;
    pub const RULE_HANDLE: u16 = 3;
    pub const RULE_ID: u16 = 9;
    pub const RULE_CHAIN_ID: u16 = 11;
    pub const SET_TABLE: u16 = 1;
    pub const SET_NAME: u16 = 2;
    pub const SET_HANDLE: u16 = 16;
    pub const SET_ELEM_LIST_TABLE: u16 = 1;
    pub const SET_ELEM_LIST_SET: u16 = 2;
    pub const SET_ELEM_LIST_ELEMENTS: u16 = 3;
}

/// ipset's commands and attributes (`include/uapi/linux/netfilter/ipset/ip_set.h`).
/// ipset sends one message per command, outside any batch.
pub mod ipset {
    pub const CMD_DESTROY: u8 = 3;
    pub const CMD_FLUSH: u8 = 4;
    pub const CMD_RENAME: u8 = 5;
    pub const CMD_SWAP: u8 = 6;
    pub const ATTR_SETNAME: u16 = 2;
    pub const ATTR_SETNAME2: u16 = 3;
}

/// Bytes of a table, chain or set name the layer compares. nf_tables allows 256, but
/// every name a policy can protect is shorter ([`MAX_PATTERN_LEN`]); a longer name in a
/// message is compared by its first bytes against `DOCKER*`-style patterns.
pub const NF_NAME_LEN: usize = 32;
/// Longest literal a name pattern may have, so that an exact pattern also compares the
/// NUL after it.
pub const MAX_PATTERN_LEN: usize = NF_NAME_LEN - 1;
/// Chain and set patterns the kernel compares names against, over all rules.
pub const MAX_NAME_PATTERNS: usize = 16;
/// The slot after the policy's: the self-test's canary chain ([`CANARY_CHAIN`]).
pub const CANARY_PATTERN: usize = MAX_NAME_PATTERNS;
/// A chain no tool makes, protected under the self-test's rule while it runs: a batch
/// deleting it proves the layer refuses (it need not exist).
pub const CANARY_CHAIN: &[u8] = b"rtguard-self-test-canary";
/// Protected chains and sets the daemon can mirror; one bit each in a batch's walk.
pub const MAX_LIVE_OBJECTS: u32 = 64;
/// Messages of one batch the programs read. A batch with more is not judged message by
/// message: it is refused when protected chains or sets exist (see [`NetfilterOp::TooLarge`]).
pub const MAX_BATCH_MESSAGES: u32 = 1 << 20;
/// Degraded mode reads a `sendmsg`'s batch from the sender's memory, in its first
/// `MAX_OBSERVED_IOVECS` iovecs and `MAX_OBSERVED_LEN` bytes; a batch that ends past them
/// is reported as too large to judge.
pub const MAX_OBSERVED_IOVECS: u32 = 64;
pub const MAX_OBSERVED_LEN: u32 = 1 << 30;
/// `AF_NETLINK`, a socket's family.
pub const AF_NETLINK: u16 = 16;
/// Attributes of one message the programs read, all of them as nf_tables does (the last
/// of a repeated one counts). A message the layer judges with more is refused.
pub const MAX_MESSAGE_ATTRS: u32 = 4096;

/// A name, NUL-padded, as eight-byte words: compared under a mask in four steps.
pub type NameWords = [u64; NF_NAME_LEN / 8];

/// Packs a name's first [`NF_NAME_LEN`] bytes into words, NUL-padded.
pub fn name_words(name: &[u8]) -> NameWords {
    let mut bytes = [0u8; NF_NAME_LEN];
    let n = name.len().min(NF_NAME_LEN);
    bytes[..n].copy_from_slice(&name[..n]);
    words_of(&bytes)
}

/// The words of a NUL-padded name buffer.
pub fn words_of(bytes: &[u8; NF_NAME_LEN]) -> NameWords {
    let mut words = [0u64; NF_NAME_LEN / 8];
    let mut i = 0;
    while i < words.len() {
        let mut w = [0u8; 8];
        w.copy_from_slice(&bytes[i * 8..i * 8 + 8]);
        words[i] = u64::from_le_bytes(w);
        i += 1;
    }
    words
}

/// The bytes of a name's words, up to its first NUL.
pub fn name_bytes(words: &NameWords) -> ([u8; NF_NAME_LEN], usize) {
    let mut bytes = [0u8; NF_NAME_LEN];
    for (i, w) in words.iter().enumerate() {
        bytes[i * 8..i * 8 + 8].copy_from_slice(&w.to_le_bytes());
    }
    let len = bytes.iter().position(|&b| b == 0).unwrap_or(NF_NAME_LEN);
    (bytes, len)
}

/// What a pattern names.
pub const PATTERN_CHAIN: u32 = 1;
pub const PATTERN_SET: u32 = 2;

/// A policy's `DOCKER*` or `DOCKER-USER`: the literal's bytes under a mask. An exact
/// name's mask also covers the NUL after it, so `DOCKER` does not match `DOCKER-USER`;
/// a trailing `*` leaves it open.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NamePattern {
    pub literal: NameWords,
    pub mask: NameWords,
    /// `PATTERN_*`; 0 marks an unused slot.
    pub kind: u32,
    pub rule_id: u32,
}

impl NamePattern {
    /// The pattern for `literal` (without the `*`); `None` if it is empty or too long.
    pub fn new(kind: u32, literal: &[u8], wildcard: bool, rule_id: u32) -> Option<Self> {
        if literal.is_empty() || literal.len() > MAX_PATTERN_LEN || literal.contains(&0) {
            return None;
        }
        let covered = literal.len() + usize::from(!wildcard);
        let mut mask = [0u8; NF_NAME_LEN];
        mask[..covered].fill(0xff);
        Some(Self {
            literal: name_words(literal),
            mask: words_of(&mask),
            kind,
            rule_id,
        })
    }

    /// Whether `name` (NUL-padded words) is one this pattern names.
    #[inline(always)]
    pub fn matches(&self, kind: u32, name: &NameWords) -> bool {
        self.kind == kind
            && name[0] & self.mask[0] == self.literal[0]
            && name[1] & self.mask[1] == self.literal[1]
            && name[2] & self.mask[2] == self.literal[2]
            && name[3] & self.mask[3] == self.literal[3]
    }
}

/// What the programs need besides the live objects, in one array slot written by the
/// daemon.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NetfilterConfig {
    /// The host's network namespace (the inode number of `/proc/1/ns/net`). Batches sent
    /// in other namespaces (containers, `unshare -n`) change nothing Docker's host
    /// network depends on. 0: the layer is off (no netfilter rule in the policy).
    pub host_net_ns: u32,
    /// Command classes (bits, as in `TRUSTED_CALLERS`) whose trusted callers may change
    /// protected chains: dockerd rebuilds its own.
    pub trusted_classes: u32,
    /// Entries of the live-object array in use.
    pub live_count: u32,
    /// Set when the daemon found more protected objects than the array holds: a flush
    /// of a whole table or ruleset is then refused, since it can't be told what it takes.
    pub live_overflow: u32,
    /// The first rule naming sets, 0 if none: ipset's destroy and flush of *every* set
    /// are refused under it. (ipset keeps its own state; the daemon does not mirror it.)
    pub ipset_rule_id: u32,
    /// Set while any pattern is in use (the policy's or the canary's): what can't be
    /// judged (a batch too long, a walk overwritten) is refused only then.
    pub active: u32,
    /// The policy's patterns, then the self-test's canary slot.
    pub patterns: [NamePattern; MAX_NAME_PATTERNS + 1],
}

impl NetfilterConfig {
    /// The pattern (and so the rule) naming a chain or set, if any.
    #[inline(always)]
    pub fn pattern_for(&self, kind: u32, name: &NameWords) -> Option<&NamePattern> {
        self.patterns.iter().find(|p| p.matches(kind, name))
    }
}

/// A protected chain or set that exists, with the table holding it.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LiveObject {
    pub table: NameWords,
    pub name: NameWords,
    /// `PATTERN_CHAIN` or `PATTERN_SET`.
    pub kind: u32,
    pub rule_id: u32,
    /// The table's family (`family::*`).
    pub family: u32,
    pub _pad: u32,
    /// The object's handle in its table: what a deletion or rename by handle names.
    pub handle: u64,
    /// The highest chain or set handle of its table when the daemon looked: a handle
    /// above it is an object created since, which could be a protected one.
    pub table_max_handle: u64,
}

/// What a refused batch did, as the audit log names it.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, num_enum::TryFromPrimitive)]
pub enum NetfilterOp {
    /// A `DELTABLE` without a name (`flush ruleset`, in one family or all of them).
    FlushRuleset = 1,
    /// A table deleted by name.
    DeleteTable = 2,
    /// Every rule of a table (`DELRULE` naming only the table: `nft flush table`).
    FlushTable = 3,
    DeleteChain = 4,
    /// Every rule of a chain (`DELRULE` naming the chain, no rule).
    FlushChain = 5,
    DeleteSet = 6,
    /// A table deleted by handle in a family where protected objects live: which table it
    /// is cannot be told from the message (chains and sets are known by their handles).
    DeleteByHandle = 7,
    /// More messages in the batch than the programs read.
    TooLarge = 8,
    /// ipset: destroy, flush, rename or swap of a protected set, or destroy or flush of
    /// every set.
    IpsetChange = 9,
    /// A `NEWCHAIN` naming an existing chain by handle: its new name (`nft rename chain`,
    /// `iptables -E`).
    RenameChain = 10,
    /// Every element of a set (`DELSETELEM` without elements: `nft flush set`).
    FlushSet = 11,
    /// A table holding protected chains made dormant (its base chains unhooked), or
    /// created owned by the sender's socket (destroyed when the socket closes).
    TableFlags = 12,
    /// The walk was overwritten by other walks on the same CPU on every attempt, so the
    /// batch could not be judged.
    Unjudged = 13,
}

impl NetfilterOp {
    /// The audit record's `op`.
    pub fn as_str(self) -> &'static str {
        match self {
            NetfilterOp::FlushRuleset => "flush-ruleset",
            NetfilterOp::DeleteTable => "delete-table",
            NetfilterOp::FlushTable => "flush-table",
            NetfilterOp::DeleteChain => "delete-chain",
            NetfilterOp::FlushChain => "flush-chain",
            NetfilterOp::DeleteSet => "delete-set",
            NetfilterOp::DeleteByHandle => "delete-by-handle",
            NetfilterOp::TooLarge => "batch-too-large",
            NetfilterOp::IpsetChange => "ipset-change",
            NetfilterOp::RenameChain => "rename-chain",
            NetfilterOp::FlushSet => "flush-set",
            NetfilterOp::TableFlags => "table-flags",
            NetfilterOp::Unjudged => "batch-unjudged",
        }
    }
}

/// A refused (or, in audit mode, reported) netfilter batch: the first protected object it
/// would take away, and how.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct NetfilterEvent {
    /// Kind [`EventKind::Netfilter`](crate::EventKind::Netfilter).
    pub header: EventHeader,
    pub rule_id: u32,
    /// [`NetfilterOp`] as u32.
    pub op: u32,
    /// The message's family (`family::*`).
    pub family: u32,
    /// `PATTERN_CHAIN` or `PATTERN_SET`; 0 when no one object is named.
    pub object_kind: u32,
    /// The table, and the chain or set taken away; empty where the message named none.
    pub table: NameWords,
    pub object: NameWords,
    /// Messages of the batch read before the decision.
    pub messages: u32,
    pub _pad: u32,
    /// The sender's command line (`nft -f /etc/nftables.conf`).
    pub cmdline: crate::event::ActorCmdline,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(s: &str) -> NameWords {
        name_words(s.as_bytes())
    }

    #[test]
    fn exact_patterns_compare_the_nul_and_wildcards_leave_it_open() {
        let exact = NamePattern::new(PATTERN_CHAIN, b"DOCKER", false, 1).unwrap();
        assert!(exact.matches(PATTERN_CHAIN, &words("DOCKER")));
        assert!(!exact.matches(PATTERN_CHAIN, &words("DOCKER-USER")));
        assert!(!exact.matches(PATTERN_CHAIN, &words("DOCKE")));
        assert!(!exact.matches(PATTERN_SET, &words("DOCKER")));
        let open = NamePattern::new(PATTERN_CHAIN, b"DOCKER", true, 1).unwrap();
        assert!(open.matches(PATTERN_CHAIN, &words("DOCKER")));
        assert!(open.matches(PATTERN_CHAIN, &words("DOCKER-ISOLATION-STAGE-1")));
        assert!(!open.matches(PATTERN_CHAIN, &words("docker")));
        assert!(!open.matches(PATTERN_CHAIN, &words("KUBE-SERVICES")));
        // A name longer than the compared bytes still starts with the literal.
        let mut long = [b'X'; 67];
        long[..7].copy_from_slice(b"DOCKER-");
        assert!(open.matches(PATTERN_CHAIN, &name_words(&long)));
        let longest = [b'A'; MAX_PATTERN_LEN + 1];
        assert!(NamePattern::new(PATTERN_SET, &longest[..MAX_PATTERN_LEN], false, 1).is_some());
        assert!(NamePattern::new(PATTERN_SET, &longest, false, 1).is_none());
        assert!(NamePattern::new(PATTERN_SET, b"", true, 1).is_none());
    }

    #[test]
    fn names_round_trip_through_words() {
        let (bytes, len) = name_bytes(&words("DOCKER-USER"));
        assert_eq!(&bytes[..len], b"DOCKER-USER");
    }
}
