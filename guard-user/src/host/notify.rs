//! systemd's readiness protocol (`sd_notify(3)`): a datagram to `$NOTIFY_SOCKET`.
//!
//! Used by the unit (`Type=notify`) and by the tests, which wait for `READY=1` instead of
//! sleeping.

use std::{io, os::unix::net::UnixDatagram};

/// Sends `state` (e.g. `READY=1\nSTATUS=...`) if rtguard runs under a notify socket.
/// Returns Ok(false) when there is no socket to notify.
pub fn notify(state: &str) -> io::Result<bool> {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return Ok(false);
    };
    let socket = UnixDatagram::unbound()?;
    let bytes = path.as_encoded_bytes();
    if let Some(abstract_name) = bytes.strip_prefix(b"@") {
        use std::os::linux::net::SocketAddrExt as _;
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(abstract_name)?;
        socket.send_to_addr(state.as_bytes(), &addr)?;
    } else {
        socket.send_to(state.as_bytes(), &path)?;
    }
    Ok(true)
}
