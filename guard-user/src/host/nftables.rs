//! nf_tables' chains and sets as the kernel lists them, and a socket on nf_tables'
//! multicast group that says when they change. Both speak netlink (`NETLINK_NETFILTER`)
//! directly: what `nft list chains` and `nft monitor` ask the kernel for.

use std::{
    io,
    os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd},
};

use guard_common::netfilter::{
    nfta, NFGENMSG_LEN, NFNLGRP_NFTABLES, NFNL_SUBSYS_NFTABLES, NLA_TYPE_MASK, NLMSG_HDR_LEN,
};

/// `NFT_MSG_GETCHAIN` and `NFT_MSG_GETSET`.
const GETCHAIN: u8 = 4;
const GETSET: u8 = 10;
/// `NLMSG_ERROR`, `NLMSG_DONE`.
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;

/// What a chain or set is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum NftKind {
    Chain,
    Set,
}

/// A chain or set of the ruleset, with its table. Names are the kernel's bytes, which
/// need not be UTF-8.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct NftObject {
    /// `NFPROTO_*`.
    pub family: u8,
    pub table: Vec<u8>,
    pub name: Vec<u8>,
    pub kind: NftKind,
    /// Its handle in the table (0 if the kernel gave none).
    pub handle: u64,
}

/// Every chain and set of this network namespace. Asking loads nf_tables if it is not
/// loaded yet (the kernel does that for a netlink request, as for `nft list ruleset`).
pub fn list_objects() -> io::Result<Vec<NftObject>> {
    let mut interrupted = None;
    // A dump that the ruleset changed under says so (NLM_F_DUMP_INTR): take it again.
    for _ in 0..DUMP_ATTEMPTS {
        match list_once() {
            Err(e) if e.raw_os_error() == Some(libc::EINTR) => interrupted = Some(e),
            other => return other,
        }
    }
    Err(interrupted.unwrap_or_else(|| io::Error::from_raw_os_error(libc::EINTR)))
}

/// Dumps taken before a ruleset that keeps changing under them is given up on.
const DUMP_ATTEMPTS: usize = 5;
/// `NLM_F_DUMP_INTR`: the dump's answers may be inconsistent.
const NLM_F_DUMP_INTR: u16 = 0x10;

fn list_once() -> io::Result<Vec<NftObject>> {
    let socket = open(None)?;
    let mut objects = Vec::new();
    // NFTA_CHAIN_TABLE and NFTA_SET_TABLE are both attribute 1.
    for (command, kind, name_attr, handle_attr) in [
        (
            GETCHAIN,
            NftKind::Chain,
            nfta::CHAIN_NAME,
            nfta::CHAIN_HANDLE,
        ),
        (GETSET, NftKind::Set, nfta::SET_NAME, nfta::SET_HANDLE),
    ] {
        dump(&socket, command, |family, attrs| {
            let table = attr_bytes(attrs, nfta::CHAIN_TABLE);
            let name = attr_bytes(attrs, name_attr);
            if let (Some(table), Some(name)) = (table, name) {
                objects.push(NftObject {
                    family,
                    table,
                    name,
                    kind,
                    handle: attr_u64(attrs, handle_attr).unwrap_or(0),
                });
            }
        })?;
    }
    objects.sort();
    Ok(objects)
}

/// A socket on nf_tables' multicast group: readable after every committed change.
pub struct NftMonitor(OwnedFd);

impl NftMonitor {
    pub fn open() -> io::Result<Self> {
        open(Some(NFNLGRP_NFTABLES)).map(Self)
    }

    /// Reads what is queued without waiting; whether anything was. An overrun (the
    /// kernel dropped notifications, `ENOBUFS`) counts as a change.
    pub fn drain(&self) -> bool {
        let mut buf = vec![0u8; 64 * 1024];
        let mut changed = false;
        loop {
            // SAFETY: `buf` is writable for its length.
            let n = unsafe {
                libc::recv(
                    self.0.as_raw_fd(),
                    buf.as_mut_ptr().cast(),
                    buf.len(),
                    libc::MSG_DONTWAIT,
                )
            };
            if n > 0 {
                changed = true;
                continue;
            }
            if n < 0 && io::Error::last_os_error().raw_os_error() == Some(libc::ENOBUFS) {
                changed = true;
                continue;
            }
            return changed;
        }
    }
}

impl AsRawFd for NftMonitor {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_raw_fd()
    }
}

fn open(group: Option<u32>) -> io::Result<OwnedFd> {
    // SAFETY: plain syscalls; the descriptor is owned at once.
    let fd = unsafe {
        libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            libc::NETLINK_NETFILTER,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: an all-zero sockaddr_nl is valid; the kernel picks the port id.
    let mut addr: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
    addr.nl_family = libc::AF_NETLINK as u16;
    let bound = unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&raw const addr).cast(),
            size_of::<libc::sockaddr_nl>() as u32,
        )
    };
    if bound < 0 {
        return Err(io::Error::last_os_error());
    }
    if let Some(group) = group {
        let joined = unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_NETLINK,
                libc::NETLINK_ADD_MEMBERSHIP,
                (&raw const group).cast(),
                size_of::<u32>() as u32,
            )
        };
        if joined < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(fd)
}

/// Sends a dump request for `command` (every family) and hands each answer's family and
/// attributes to `each`.
fn dump(socket: &OwnedFd, command: u8, mut each: impl FnMut(u8, &[u8])) -> io::Result<()> {
    let mut request = Vec::with_capacity((NLMSG_HDR_LEN + NFGENMSG_LEN) as usize);
    request.extend((NLMSG_HDR_LEN + NFGENMSG_LEN).to_ne_bytes());
    request.extend((u16::from(NFNL_SUBSYS_NFTABLES) << 8 | u16::from(command)).to_ne_bytes());
    request.extend(((libc::NLM_F_REQUEST | libc::NLM_F_DUMP) as u16).to_ne_bytes());
    request.extend(1u32.to_ne_bytes()); // seq
    request.extend(0u32.to_ne_bytes()); // port: the kernel
    request.extend([libc::AF_UNSPEC as u8, 0, 0, 0]); // nfgenmsg: every family, v0
                                                      // SAFETY: `request` is readable for its length.
    let sent = unsafe {
        libc::send(
            socket.as_raw_fd(),
            request.as_ptr().cast(),
            request.len(),
            0,
        )
    };
    if sent < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        // SAFETY: `buf` is writable for its length.
        let n = unsafe { libc::recv(socket.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        let mut rest = &buf[..n as usize];
        while rest.len() >= NLMSG_HDR_LEN as usize {
            let len = u32::from_ne_bytes(rest[0..4].try_into().unwrap()) as usize;
            let kind = u16::from_ne_bytes(rest[4..6].try_into().unwrap());
            let flags = u16::from_ne_bytes(rest[6..8].try_into().unwrap());
            if flags & NLM_F_DUMP_INTR != 0 {
                return Err(io::Error::from_raw_os_error(libc::EINTR));
            }
            if len < NLMSG_HDR_LEN as usize || len > rest.len() {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "short netlink message",
                ));
            }
            let message = &rest[NLMSG_HDR_LEN as usize..len];
            match kind {
                NLMSG_DONE => return Ok(()),
                NLMSG_ERROR => {
                    let errno = message
                        .get(..4)
                        .map_or(0, |b| i32::from_ne_bytes(b.try_into().unwrap()));
                    if errno == 0 {
                        return Ok(());
                    }
                    return Err(io::Error::from_raw_os_error(-errno));
                }
                _ if message.len() >= NFGENMSG_LEN as usize => {
                    each(message[0], &message[NFGENMSG_LEN as usize..]);
                }
                _ => {}
            }
            rest = &rest[align4(len).min(rest.len())..];
        }
    }
}

/// The payload of attribute `wanted` among a message's attributes.
fn attr(mut attrs: &[u8], wanted: u16) -> Option<&[u8]> {
    while attrs.len() >= 4 {
        let len = u16::from_ne_bytes([attrs[0], attrs[1]]) as usize;
        let kind = u16::from_ne_bytes([attrs[2], attrs[3]]) & NLA_TYPE_MASK;
        if len < 4 || len > attrs.len() {
            return None;
        }
        if kind == wanted {
            return Some(&attrs[4..len]);
        }
        attrs = &attrs[align4(len).min(attrs.len())..];
    }
    None
}

/// A NUL-terminated string attribute, without its NUL.
fn attr_bytes(attrs: &[u8], wanted: u16) -> Option<Vec<u8>> {
    let value = attr(attrs, wanted)?;
    let end = value.iter().position(|&b| b == 0).unwrap_or(value.len());
    Some(value[..end].to_vec())
}

/// A u64 attribute, which netlink carries in network byte order (handles).
fn attr_u64(attrs: &[u8], wanted: u16) -> Option<u64> {
    Some(u64::from_be_bytes(
        attr(attrs, wanted)?.get(..8)?.try_into().ok()?,
    ))
}

const fn align4(n: usize) -> usize {
    (n + 3) & !3
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn string_attributes_are_found_past_others() {
        // NFTA_CHAIN_TABLE "nat", NFTA_CHAIN_HANDLE (u64), NFTA_CHAIN_NAME "DOCKER".
        let mut attrs = Vec::new();
        attrs.extend(8u16.to_ne_bytes());
        attrs.extend(1u16.to_ne_bytes());
        attrs.extend(b"nat\0");
        attrs.extend(12u16.to_ne_bytes());
        attrs.extend((2u16 | 0x4000).to_ne_bytes());
        attrs.extend(7u64.to_be_bytes());
        attrs.extend(11u16.to_ne_bytes());
        attrs.extend(3u16.to_ne_bytes());
        attrs.extend(b"DOCKER\0\0");
        assert_eq!(attr_bytes(&attrs, 1).as_deref(), Some(&b"nat"[..]));
        assert_eq!(attr_bytes(&attrs, 3).as_deref(), Some(&b"DOCKER"[..]));
        assert_eq!(attr_bytes(&attrs, 4), None);
        assert_eq!(attr_u64(&attrs, 2), Some(7));
    }
}
