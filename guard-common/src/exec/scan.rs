//! The scan state: what the arguments read so far say, and how an argument is matched
//! against the protected objects of its class.

use super::{
    ArgToken, ClassEntry, CommandTables, ObjectEntry, ObjectKey, CLASS_PATTERNS,
    CLASS_REMOVE_SUFFIX, MAX_PREFIX_LENS, MODIFIER_FLAGS, NO_TOKEN, OBJECTS_AFTER_VERB,
    OBJECT_NAME, OBJECT_PREFIX, OBJECT_REMOVAL_OPEN, OBJECT_WINDOW_OPEN, TOKEN_PATTERN,
    TOKEN_REMOVE_SUFFIX, UPGRADE_ALLOW, UPGRADE_DENY, UPGRADE_WINDOW, VERB_FLAGS, WORD_ALL_OBJECTS,
    WORD_BARE, WORD_DESTRUCTIVE, WORD_HITS_ALL, WORD_INSTALL, WORD_REPORT_ONLY, WORD_UPGRADE,
};

/// A protected object an argument matched.
#[derive(Clone, Copy)]
pub(super) struct Hit {
    pub(super) entry: ObjectEntry,
    pub(super) token: u32,
}

/// Scan state: what the arguments seen so far say.
pub(super) struct Scan {
    pub(super) class: u32,
    pub(super) entry: ClassEntry,
    pub(super) prefix_lens: [u32; MAX_PREFIX_LENS],
    pub(super) verbs: u32,
    pub(super) bare_verbs: u32,
    pub(super) modifiers: u32,
    pub(super) verb_token: u32,
    pub(super) destructive_token: u32,
    pub(super) upgrade_token: u32,
    pub(super) install_token: u32,
    pub(super) report_token: u32,
    pub(super) hits_all_token: u32,
    pub(super) all_objects_token: u32,
    pub(super) bare_token: u32,
    pub(super) bare_pending: bool,
    pub(super) bare_hit: bool,
    pub(super) objects_named: u32,
    /// The first protected object named that no removal window covers.
    pub(super) first_hit: Option<Hit>,
    /// The first protected object named that a removal window covers.
    pub(super) removal_hit: Option<Hit>,
    /// Among the objects an install or upgrade would put in place (not apt's `pkg-`
    /// removals), the one whose group is strictest about it.
    pub(super) strictest: Option<Hit>,
    /// The first `pkg-` removal in an install that no removal window covers.
    pub(super) suffix_hit: Option<Hit>,
    /// The first `pkg-` removal in an install that a removal window covers.
    pub(super) suffix_removal: Option<Hit>,
    pub(super) pattern_token: u32,
    /// Targets named after a [`WORD_SWITCH`](super::WORD_SWITCH) verb, and the first of
    /// them that is not a safe target.
    pub(super) switch_targets: u32,
    pub(super) unsafe_target: u32,
    pub(super) unparsed: bool,
}

impl Scan {
    pub(super) fn word(&mut self, flags: u32, token: u32) {
        let verb = flags & VERB_FLAGS;
        if verb != 0 {
            self.verbs |= verb;
            if flags & WORD_BARE != 0 {
                self.bare_verbs |= verb;
            }
            if self.verb_token == NO_TOKEN {
                self.verb_token = token;
            }
            if verb & WORD_DESTRUCTIVE != 0 && self.destructive_token == NO_TOKEN {
                self.destructive_token = token;
            }
            if verb & WORD_UPGRADE != 0 && self.upgrade_token == NO_TOKEN {
                self.upgrade_token = token;
            }
            if verb & WORD_INSTALL != 0 && self.install_token == NO_TOKEN {
                self.install_token = token;
            }
            if verb & WORD_REPORT_ONLY != 0 && self.report_token == NO_TOKEN {
                self.report_token = token;
            }
        }
        self.modifiers |= flags & MODIFIER_FLAGS;
        if flags & WORD_HITS_ALL != 0 && self.hits_all_token == NO_TOKEN {
            self.hits_all_token = token;
        }
        if flags & WORD_ALL_OBJECTS != 0 && self.all_objects_token == NO_TOKEN {
            self.all_objects_token = token;
        }
    }

    /// After a verb in an OBJECTS_AFTER_VERB class, the next argument names its object.
    pub(super) fn expect_object(&mut self, flags: u32, token: u32) -> bool {
        if self.entry.objects != OBJECTS_AFTER_VERB || flags & VERB_FLAGS == 0 {
            return false;
        }
        if flags & WORD_BARE != 0 {
            self.bare_pending = true;
            self.bare_token = token;
        }
        true
    }

    pub(super) fn candidate<T: CommandTables + ?Sized>(
        &mut self,
        tables: &T,
        token: &ArgToken,
        index: u32,
    ) {
        self.objects_named += 1;
        if token.flags & TOKEN_PATTERN != 0
            && self.entry.flags & CLASS_PATTERNS != 0
            && self.pattern_token == NO_TOKEN
        {
            self.pattern_token = index;
        }
        let Some(entry) = lookup_object(tables, self.class, token, &self.prefix_lens) else {
            return;
        };
        let hit = Hit {
            entry,
            token: index,
        };
        // Under a destructive verb every object named is destroyed: one a removal window
        // does not cover is enough to refuse the command.
        let covered = entry.flags & OBJECT_REMOVAL_OPEN != 0;
        if !covered && self.first_hit.is_none() {
            self.first_hit = Some(hit);
        }
        if covered && self.removal_hit.is_none() {
            self.removal_hit = Some(hit);
        }
        if token.flags & TOKEN_REMOVE_SUFFIX != 0 && self.entry.flags & CLASS_REMOVE_SUFFIX != 0 {
            // `apt-get install containerd-` removes containerd: never an install of it.
            if !covered && self.suffix_hit.is_none() {
                self.suffix_hit = Some(hit);
            }
            if covered && self.suffix_removal.is_none() {
                self.suffix_removal = Some(hit);
            }
            return;
        }
        match self.strictest {
            Some(s) if upgrade_rank(&s.entry) >= upgrade_rank(&entry) => {}
            _ => self.strictest = Some(hit),
        }
    }
}

/// How strict a package's group is about replacing it, with the object's open windows
/// taken into account: of several packages an install names, the strictest decides.
const fn upgrade_rank(entry: &ObjectEntry) -> u32 {
    match entry.upgrade {
        UPGRADE_ALLOW => 1,
        UPGRADE_WINDOW if entry.flags & OBJECT_WINDOW_OPEN != 0 => 2,
        UPGRADE_WINDOW => 3,
        UPGRADE_DENY => 4,
        _ => 0,
    }
}

fn lookup_object<T: CommandTables + ?Sized>(
    tables: &T,
    class: u32,
    token: &ArgToken,
    prefix_lens: &[u32; MAX_PREFIX_LENS],
) -> Option<ObjectEntry> {
    let names = [token.whole, token.stem, token.base_stem];
    for (i, &hash) in names.iter().enumerate() {
        // The stems usually equal the whole hash; don't look the same key up twice.
        if i > 0 && (hash == token.whole || (i == 2 && hash == token.stem)) {
            continue;
        }
        if let Some(entry) = tables.object(&ObjectKey::new(class, OBJECT_NAME, hash)) {
            return Some(entry);
        }
    }
    for (&len, &hash) in prefix_lens.iter().zip(token.prefix.iter()) {
        if len == 0 || hash == 0 {
            continue;
        }
        if let Some(entry) = tables.object(&ObjectKey::new(class, OBJECT_PREFIX, hash)) {
            return Some(entry);
        }
    }
    None
}
