//! The copy of each audit record sent to the local syslog socket: its severity, from the
//! decision, and a sender that never blocks and never fails the append.

use std::{
    io,
    os::unix::net::UnixDatagram,
    path::PathBuf,
    time::{Duration, Instant},
};

use tracing::{info, warn};

use crate::audit::record::{AuditRecord, Decision};

/// Syslog severities (RFC 5424 §6.2.1).
const LOG_ERR: u8 = 3;
const LOG_WARNING: u8 = 4;
const LOG_NOTICE: u8 = 5;
/// Security/authorization messages, kept apart from general daemon chatter (and out of
/// world-readable logs) by the usual syslog configurations.
const LOG_AUTHPRIV: u8 = 10;

pub(super) fn severity(record: &AuditRecord) -> u8 {
    match record.decision {
        Decision::Blocked | Decision::WouldBlock => LOG_WARNING,
        Decision::SelfTest if !record.enforced => LOG_ERR,
        Decision::SelfTest
        | Decision::AllowedUpgrade
        | Decision::AllowedMaintenance
        | Decision::AllowedEdit
        | Decision::Notice => LOG_NOTICE,
    }
}

/// A connectionless sender to the local syslog socket, in the `<PRI>TAG[PID]: MSG` form
/// that journald, rsyslog and syslog-ng all accept (they stamp the time on receipt).
///
/// It never blocks and never fails the append: the file is the record of truth, syslog a
/// copy for log shippers. When the socket is missing, refuses, or is full, the problem is
/// logged once, the copy is dropped, and a reconnect is tried again later.
#[derive(Debug)]
pub(super) struct SyslogSink {
    path: PathBuf,
    socket: Option<UnixDatagram>,
    last_attempt: Option<Instant>,
    pub(super) failing: bool,
    pub(super) lost: u64,
}

const SYSLOG_RETRY: Duration = Duration::from_secs(10);

impl SyslogSink {
    pub(super) fn new(path: PathBuf) -> Self {
        let mut sink = Self {
            path,
            socket: None,
            last_attempt: None,
            failing: false,
            lost: 0,
        };
        sink.connect();
        sink
    }

    fn connect(&mut self) {
        self.last_attempt = Some(Instant::now());
        let socket = UnixDatagram::unbound().and_then(|s| {
            s.connect(&self.path)?;
            s.set_nonblocking(true)?;
            Ok(s)
        });
        match socket {
            Ok(s) => self.socket = Some(s),
            Err(e) => self.fail(format!("cannot connect to {}: {e}", self.path.display())),
        }
    }

    pub(super) fn send(&mut self, severity: u8, msg: &str) {
        if self.socket.is_none()
            && self
                .last_attempt
                .is_none_or(|t| t.elapsed() >= SYSLOG_RETRY)
        {
            self.connect();
        }
        let Some(socket) = &self.socket else {
            self.lost += 1;
            return;
        };
        let datagram = format!(
            "<{}>rtguard[{}]: {msg}",
            LOG_AUTHPRIV * 8 + severity,
            std::process::id()
        );
        match socket.send(datagram.as_bytes()) {
            Ok(_) => {
                if self.failing {
                    info!(
                        lost = self.lost,
                        "audit records reach syslog again at {}",
                        self.path.display()
                    );
                    self.failing = false;
                    self.lost = 0;
                }
            }
            Err(e) => {
                self.lost += 1;
                // The listener went away (journald restarted): reconnect next time.
                if e.kind() != io::ErrorKind::WouldBlock {
                    self.socket = None;
                }
                self.fail(format!("cannot send to {}: {e}", self.path.display()));
            }
        }
    }

    fn fail(&mut self, why: String) {
        if !self.failing {
            warn!(
                "audit records are not reaching syslog ({why}); the audit log file still has them"
            );
            self.failing = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::testing::{record_at, ts};

    #[test]
    fn severities_follow_the_decision() {
        assert_eq!(severity(&record_at(ts(0), "r")), LOG_WARNING);
        let mut rec = record_at(ts(0), "r");
        rec.decision = Decision::SelfTest;
        rec.enforced = false;
        assert_eq!(severity(&rec), LOG_ERR);
        rec.decision = Decision::AllowedMaintenance;
        assert_eq!(severity(&rec), LOG_NOTICE);
    }
}
