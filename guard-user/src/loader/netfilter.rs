//! The netfilter layer's maps: the protected names with the host's network namespace,
//! and the protected chains and sets that exist, read from nf_tables whenever the policy
//! is installed and whenever nf_tables announces a change.

use std::os::unix::fs::MetadataExt;

use aya::{
    maps::{Array, MapData},
    Ebpf,
};
use guard_common::{
    names,
    netfilter::{
        LiveObject, NamePattern, NetfilterConfig, CANARY_CHAIN, CANARY_PATTERN, PATTERN_CHAIN,
    },
};
use tracing::{debug, warn};

use super::{
    sync::{array_mut, map_err},
    Guard, LoadError,
};
use crate::{host::nftables, tables::netfilter::live_objects};

/// What the mirror of protected chains and sets holds, for `rtguard status`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum NetfilterMirror {
    /// No rule protects chains or sets.
    #[default]
    Off,
    /// This many protected chains and sets exist; `overflow` when there were more than
    /// the kernel's array holds.
    Live { objects: usize, overflow: bool },
    /// nf_tables could not be read: named chains and sets are still refused by name,
    /// but a table or ruleset flush is judged as if they held none.
    Unknown(String),
}

impl NetfilterMirror {
    /// The same for degraded mode, where batches are judged at the syscall and nothing is
    /// refused.
    fn observed(&self) -> String {
        const OBSERVED: &str = "observed, not enforced, at sendmsg and sendto";
        const NOT: &str = "write(2), sendmmsg(2) and 32-bit senders not observed; \
                           iptables-legacy not covered";
        match self {
            NetfilterMirror::Off => self.to_string(),
            NetfilterMirror::Live {
                objects,
                overflow: false,
            } => format!("{OBSERVED}: {objects} protected chains and sets exist; {NOT}"),
            NetfilterMirror::Live {
                objects,
                overflow: true,
            } => format!(
                "{OBSERVED}: more than {objects} protected chains and sets exist: flushes of \
                 their tables are reported; {NOT}"
            ),
            NetfilterMirror::Unknown(e) => format!(
                "{OBSERVED}: nf_tables unreadable ({e}): flushes of tables and the ruleset \
                 are reported; {NOT}"
            ),
        }
    }
}

impl std::fmt::Display for NetfilterMirror {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        const COVERED: &str = "nf_tables batches judged (nft, iptables-nft, iptables-restore, \
                               firewalld, ipset); iptables-legacy not covered";
        match self {
            NetfilterMirror::Off => f.write_str("off (no chains or sets protected)"),
            NetfilterMirror::Live {
                objects,
                overflow: false,
            } => {
                write!(f, "{objects} protected chains and sets exist; {COVERED}")
            }
            NetfilterMirror::Live {
                objects,
                overflow: true,
            } => write!(
                f,
                "more than {objects} protected chains and sets exist: flushes of their \
                 tables are refused; {COVERED}"
            ),
            NetfilterMirror::Unknown(e) => write!(
                f,
                "nf_tables unreadable ({e}): chains and sets refused by name, flushes of \
                 tables and the ruleset refused; {COVERED}"
            ),
        }
    }
}

/// The netfilter layer's two maps in one loaded object (the enforcing programs', or
/// degraded mode's), and what was last written to them.
#[derive(Debug, Default)]
pub struct NetfilterMaps {
    written: NetfilterConfig,
    mirror: NetfilterMirror,
    /// The namespace judged is rtguard's own: init's could not be read.
    own_namespace: bool,
}

impl NetfilterMaps {
    /// Writes `config` (the policy's names) with the live protected objects read from
    /// nf_tables now. Entries are written before a larger count and after a smaller one,
    /// so the programs never read an entry that is not there.
    pub fn sync(&mut self, ebpf: &mut Ebpf, mut config: NetfilterConfig) -> Result<(), LoadError> {
        let protects = config.patterns.iter().any(|p| p.kind != 0);
        let (live, overflow) = if protects {
            (config.host_net_ns, self.own_namespace) = host_net_ns();
            match nftables::list_objects() {
                Ok(objects) => {
                    let (live, overflow) = live_objects(&config, &objects);
                    self.mirror = NetfilterMirror::Live {
                        objects: live.len(),
                        overflow,
                    };
                    (live, overflow)
                }
                // Not knowing what a table holds, a flush of a table or of the ruleset is
                // refused, as when there are more objects than the array holds.
                Err(e) => {
                    warn!("nf_tables' chains and sets could not be read: {e}");
                    self.mirror = NetfilterMirror::Unknown(e.to_string());
                    (Vec::new(), true)
                }
            }
        } else {
            self.mirror = NetfilterMirror::Off;
            (Vec::new(), false)
        };
        config.live_count = live.len() as u32;
        config.live_overflow = u32::from(overflow);
        let shrinking = config.live_count < self.written.live_count;
        if shrinking {
            self.write_config(ebpf, &config)?;
        }
        {
            let mut array: Array<&mut MapData, LiveObject> =
                array_mut(ebpf, names::NETFILTER_LIVE)?;
            for (i, object) in live.iter().enumerate() {
                array
                    .set(i as u32, object, 0)
                    .map_err(map_err(names::NETFILTER_LIVE))?;
            }
        }
        if !shrinking {
            self.write_config(ebpf, &config)?;
        }
        debug!(live = live.len(), overflow, "netfilter mirror written");
        Ok(())
    }

    fn write_config(&mut self, ebpf: &mut Ebpf, config: &NetfilterConfig) -> Result<(), LoadError> {
        let mut array: Array<&mut MapData, NetfilterConfig> =
            array_mut(ebpf, names::NETFILTER_CONFIG)?;
        array
            .set(0, config, 0)
            .map_err(map_err(names::NETFILTER_CONFIG))?;
        self.written = *config;
        Ok(())
    }

    /// Protects (or no longer) the self-test's canary chain name under `rule`, with the
    /// layer on for the host's network namespace meanwhile, whatever the policy says.
    fn canary(&mut self, ebpf: &mut Ebpf, rule: Option<u32>) -> Result<(), LoadError> {
        let mut config = self.written;
        if let Some(rule) = rule {
            config.patterns[CANARY_PATTERN] =
                NamePattern::new(PATTERN_CHAIN, CANARY_CHAIN, false, rule).unwrap_or_default();
            if config.host_net_ns == 0 {
                config.host_net_ns = host_net_ns().0;
            }
            config.active = 1;
            let mut array: Array<&mut MapData, NetfilterConfig> =
                array_mut(ebpf, names::NETFILTER_CONFIG)?;
            array
                .set(0, config, 0)
                .map_err(map_err(names::NETFILTER_CONFIG))
        } else {
            self.write_config(ebpf, &config)
        }
    }

    /// What `rtguard status` says of the layer: `observed` in degraded mode.
    pub fn status(&self, observed: bool) -> String {
        let mut text = if observed {
            self.mirror.observed()
        } else {
            self.mirror.to_string()
        };
        if self.own_namespace && self.mirror != NetfilterMirror::Off {
            text.push_str("; in rtguard's own network namespace (/proc/1/ns/net unreadable)");
        }
        text
    }
}

impl Guard {
    /// Writes the netfilter layer's config and the live protected objects (see
    /// [`NetfilterMaps::sync`]).
    pub fn sync_netfilter(&mut self) -> Result<(), LoadError> {
        self.netfilter
            .sync(&mut self.ebpf, self.installed.netfilter)
    }

    /// See [`NetfilterMaps::canary`].
    pub(crate) fn netfilter_canary(&mut self, rule: Option<u32>) -> Result<(), LoadError> {
        self.netfilter.canary(&mut self.ebpf, rule)
    }

    /// What `rtguard status` says of the netfilter layer.
    pub fn netfilter_status(&self) -> String {
        self.netfilter.status(false)
    }
}

/// The host's network namespace, as its init process has it. Where init's can't be read
/// (rtguard in a container that hides it), rtguard's own, which the container shares
/// with the host for rtguard to guard it (then `true`); 0 (the layer off) if neither can
/// be read.
fn host_net_ns() -> (u32, bool) {
    let init = match std::fs::metadata("/proc/1/ns/net") {
        Ok(meta) => return (meta.ino() as u32, false),
        Err(e) => e,
    };
    match std::fs::metadata("/proc/self/ns/net") {
        Ok(meta) => {
            warn!("/proc/1/ns/net: {init}: judging netfilter batches in rtguard's own network namespace");
            (meta.ino() as u32, true)
        }
        Err(e) => {
            warn!("the host's network namespace is unknown (/proc/1/ns/net: {init}; /proc/self/ns/net: {e}): netfilter batches are not judged");
            (0, false)
        }
    }
}
