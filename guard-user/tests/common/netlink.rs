//! nf_tables and ipset messages built by hand, sent as a program that speaks netlink
//! itself does.

/// One netlink attribute, padded to four bytes.
pub fn nla(kind: u16, payload: &[u8]) -> Vec<u8> {
    let mut a = Vec::new();
    a.extend(((4 + payload.len()) as u16).to_ne_bytes());
    a.extend(kind.to_ne_bytes());
    a.extend(payload);
    a.resize(a.len().next_multiple_of(4), 0);
    a
}

/// A string attribute's payload, NUL included.
pub fn string(s: &str) -> Vec<u8> {
    let mut b = s.as_bytes().to_vec();
    b.push(0);
    b
}

/// nfnetlink batch framing around one nf_tables message, as libnftnl builds it.
pub fn batch(message: &[u8]) -> Vec<u8> {
    // NFNL_MSG_BATCH_BEGIN / _END, res_id NFNL_SUBSYS_NFTABLES in network byte order.
    let frame = |kind: u16, seq: u32| {
        let mut m = Vec::new();
        m.extend(20u32.to_ne_bytes());
        m.extend(kind.to_ne_bytes());
        m.extend(1u16.to_ne_bytes()); // NLM_F_REQUEST
        m.extend(seq.to_ne_bytes());
        m.extend(0u32.to_ne_bytes());
        m.extend([0u8, 0]);
        m.extend(10u16.to_be_bytes());
        m
    };
    let mut out = frame(16, 1);
    out.extend(message);
    out.extend(frame(17, 3));
    out
}

/// An nfnetlink request of `subsystem`'s `command` in family ip around attribute bytes
/// as given.
pub fn nfnl_message(subsystem: u16, command: u8, body: &[u8]) -> Vec<u8> {
    let mut m = Vec::new();
    m.extend((20 + body.len() as u32).to_ne_bytes());
    m.extend((subsystem << 8 | u16::from(command)).to_ne_bytes());
    m.extend((1u16 | 0x4).to_ne_bytes()); // NLM_F_REQUEST | NLM_F_ACK
    m.extend(2u32.to_ne_bytes());
    m.extend(0u32.to_ne_bytes());
    m.extend([2u8, 0, 0, 0]); // NFPROTO_IPV4, v0, res_id 0
    m.extend(body);
    m
}

/// An nf_tables message `command` (`NFT_MSG_*`, `NFNL_SUBSYS_NFTABLES`).
pub fn nft_message(command: u8, body: &[u8]) -> Vec<u8> {
    nfnl_message(10, command, body)
}

/// Sends `bytes` on a `NETLINK_NETFILTER` socket in one `sendto`, as a program that
/// speaks netlink itself does; the errno of the send, if it failed.
pub fn send_netfilter(bytes: &[u8]) -> Option<i32> {
    unsafe {
        let fd = libc::socket(libc::AF_NETLINK, libc::SOCK_RAW, libc::NETLINK_NETFILTER);
        assert!(fd >= 0, "socket: {}", std::io::Error::last_os_error());
        let mut addr: libc::sockaddr_nl = std::mem::zeroed();
        addr.nl_family = libc::AF_NETLINK as u16;
        let sent = libc::sendto(
            fd,
            bytes.as_ptr().cast(),
            bytes.len(),
            0,
            (&raw const addr).cast(),
            size_of::<libc::sockaddr_nl>() as u32,
        );
        let errno = (sent < 0).then(|| std::io::Error::last_os_error().raw_os_error().unwrap());
        libc::close(fd);
        errno
    }
}

/// Sends `bytes` in one `sendmsg` cut into iovecs at `cuts` (ascending offsets), as a
/// program building its batch in pieces does; the errno of the send, if it failed.
pub fn send_netfilter_in_pieces(bytes: &[u8], cuts: &[usize]) -> Option<i32> {
    let mut bounds = vec![0];
    bounds.extend(cuts.iter().copied().filter(|&c| c <= bytes.len()));
    bounds.push(bytes.len());
    let mut iovecs: Vec<libc::iovec> = bounds
        .windows(2)
        .map(|w| libc::iovec {
            iov_base: bytes[w[0]..].as_ptr() as *mut libc::c_void,
            iov_len: w[1] - w[0],
        })
        .collect();
    unsafe {
        let fd = libc::socket(libc::AF_NETLINK, libc::SOCK_RAW, libc::NETLINK_NETFILTER);
        assert!(fd >= 0, "socket: {}", std::io::Error::last_os_error());
        let mut addr: libc::sockaddr_nl = std::mem::zeroed();
        addr.nl_family = libc::AF_NETLINK as u16;
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_name = (&raw mut addr).cast();
        msg.msg_namelen = size_of::<libc::sockaddr_nl>() as u32;
        msg.msg_iov = iovecs.as_mut_ptr();
        msg.msg_iovlen = iovecs.len();
        let sent = libc::sendmsg(fd, &msg, 0);
        let errno = (sent < 0).then(|| std::io::Error::last_os_error().raw_os_error().unwrap());
        libc::close(fd);
        errno
    }
}
