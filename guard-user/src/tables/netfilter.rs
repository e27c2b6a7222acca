//! The netfilter layer's share of the tables: the protected names as the kernel compares
//! them, and which protected chains and sets exist now (the kernel's own state, mirrored).

use guard_common::netfilter::{
    name_words, LiveObject, NamePattern, NetfilterConfig, MAX_LIVE_OBJECTS, MAX_NAME_PATTERNS,
    PATTERN_CHAIN, PATTERN_SET,
};

use crate::{
    host::nftables::{NftKind, NftObject},
    resolve::RuleSet,
};

/// The patterns and trusted classes of a resolved policy. The host's network namespace
/// and the live objects are the loader's to fill. Patterns past [`MAX_NAME_PATTERNS`] are
/// refused by the policy's validation before this point.
pub fn config(set: &RuleSet) -> NetfilterConfig {
    let mut config = NetfilterConfig {
        trusted_classes: set.netfilter_classes,
        active: u32::from(!set.netfilter_names.is_empty()),
        ..NetfilterConfig::default()
    };
    let patterns = set
        .netfilter_names
        .iter()
        .filter_map(|n| NamePattern::new(n.kind, n.literal.as_bytes(), n.wildcard, n.rule));
    for (slot, pattern) in config.patterns.iter_mut().zip(patterns) {
        *slot = pattern;
    }
    config.ipset_rule_id = set
        .netfilter_names
        .iter()
        .find(|n| n.kind == PATTERN_SET)
        .map_or(0, |n| n.rule);
    debug_assert!(set.netfilter_names.len() <= MAX_NAME_PATTERNS);
    config
}

/// The protected chains and sets among `objects`, as the kernel's array holds them, and
/// whether there were more than it holds.
pub fn live_objects(config: &NetfilterConfig, objects: &[NftObject]) -> (Vec<LiveObject>, bool) {
    // Every table's highest handle, over all its chains and sets.
    let mut max_handles: std::collections::HashMap<(u8, &[u8]), u64> =
        std::collections::HashMap::new();
    for o in objects {
        let max = max_handles.entry((o.family, &o.table)).or_default();
        *max = (*max).max(o.handle);
    }
    let mut live = Vec::new();
    for o in objects {
        let kind = match o.kind {
            NftKind::Chain => PATTERN_CHAIN,
            NftKind::Set => PATTERN_SET,
        };
        let name = name_words(&o.name);
        if let Some(p) = config.pattern_for(kind, &name) {
            live.push(LiveObject {
                table: name_words(&o.table),
                name,
                kind,
                rule_id: p.rule_id,
                family: u32::from(o.family),
                _pad: 0,
                handle: o.handle,
                table_max_handle: max_handles[&(o.family, &o.table[..])],
            });
        }
    }
    let overflow = live.len() > MAX_LIVE_OBJECTS as usize;
    live.truncate(MAX_LIVE_OBJECTS as usize);
    (live, overflow)
}

#[cfg(test)]
mod tests {
    use guard_common::netfilter::family;

    use super::*;

    fn object(table: &str, name: &str, kind: NftKind) -> NftObject {
        NftObject {
            family: family::IPV4,
            table: table.as_bytes().to_vec(),
            name: name.as_bytes().to_vec(),
            kind,
            handle: 0,
        }
    }

    #[test]
    fn only_protected_names_are_mirrored_with_their_rule() {
        let mut config = NetfilterConfig::default();
        config.patterns[0] = NamePattern::new(PATTERN_CHAIN, b"DOCKER", true, 3).unwrap();
        config.patterns[1] = NamePattern::new(PATTERN_SET, b"docker-ext", true, 4).unwrap();
        let objects = [
            object("nat", "DOCKER", NftKind::Chain),
            object("nat", "POSTROUTING", NftKind::Chain),
            object("filter", "DOCKER-USER", NftKind::Chain),
            object("filter", "docker-ext-bridges-v4", NftKind::Set),
            object("filter", "DOCKER", NftKind::Set),
        ];
        let (live, overflow) = live_objects(&config, &objects);
        assert!(!overflow);
        let names: Vec<(u32, u32)> = live.iter().map(|o| (o.kind, o.rule_id)).collect();
        assert_eq!(
            names,
            [(PATTERN_CHAIN, 3), (PATTERN_CHAIN, 3), (PATTERN_SET, 4)]
        );
        assert_eq!(live[0].table, name_words(b"nat"));
        assert!(live.iter().all(|o| o.table_max_handle == 0));
    }

    #[test]
    fn more_than_the_array_holds_is_an_overflow() {
        let mut config = NetfilterConfig::default();
        config.patterns[0] = NamePattern::new(PATTERN_CHAIN, b"D", true, 1).unwrap();
        let objects: Vec<NftObject> = (0..=MAX_LIVE_OBJECTS)
            .map(|i| object("filter", &format!("D{i}"), NftKind::Chain))
            .collect();
        let (live, overflow) = live_objects(&config, &objects);
        assert!(overflow);
        assert_eq!(live.len(), MAX_LIVE_OBJECTS as usize);
    }
}
