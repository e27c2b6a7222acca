//! The classifier itself: [`classify`], and [`Classifier`], the same work split into
//! steps the kernel can call one BPF function at a time.

use super::{
    removal_script_rule,
    scan::{Hit, Scan},
    ClassEntry, Classification, CommandLine, CommandTables, ObjectEntry, Reason, Verdict, WordKey,
    BINARY_LOADER, BINARY_MULTICALL, CLASS_REMOVE_SUFFIX, LINE_KERNEL_EXEC, LINE_TRUNCATED,
    MAX_ARGV_TOKENS, MAX_CLASSES, MAX_PREFIX_LENS, MODIFIER_FLAGS, NO_CLASS, NO_TOKEN,
    OBJECTS_AFTER_VERB, OBJECTS_LAST, OBJECT_WINDOW_OPEN, TOKEN_END_OF_OPTIONS, TOKEN_HAS_VALUE,
    TOKEN_HEAD_BYTES, TOKEN_LONG_OPTION, TOKEN_OPTION, UPGRADE_ALLOW, UPGRADE_DENY, UPGRADE_WINDOW,
    VERB_FLAGS, WORD_ALL_OBJECTS, WORD_BARE, WORD_DESTRUCTIVE, WORD_DRY_RUN, WORD_HITS_ALL,
    WORD_INSTALL, WORD_REPORT_ONLY, WORD_SAFE_TARGET, WORD_SWITCH, WORD_TAKES_VALUE, WORD_UPGRADE,
};
use crate::{
    hash::{fnv1a, short_option_hash},
    rule::NO_RULE,
};

/// Options of the dynamic loader (glibc's and musl's `ld.so`) that take the next
/// argument as their value. Any other option is a flag; the first argument that is not an
/// option is the program.
const LOADER_VALUE_OPTIONS: [u64; 7] = [
    fnv1a(b"--argv0"),
    fnv1a(b"--library-path"),
    fnv1a(b"--preload"),
    fnv1a(b"--audit"),
    fnv1a(b"--inhibit-rpath"),
    fnv1a(b"--glibc-hwcaps-prefix"),
    fnv1a(b"--glibc-hwcaps-mask"),
];
const LOADER_ARGV0: u64 = fnv1a(b"--argv0");
/// Loader options read before its program; a program further out is not found, and the
/// exec is not guarded (see policy/README.md, "Exec identity").
const MAX_LOADER_OPTIONS: usize = 8;
/// The loader's arguments read, argv[0] aside: its options, each with a value, then its
/// program.
pub const LOADER_ARGUMENTS: usize = 2 * MAX_LOADER_OPTIONS + 1;
/// No `--argv0` given to the loader. (Not an `Option`: for `None` the compiler leaves the
/// payload's register unset, and the BPF verifier refuses to read it.)
const NO_ARGV0: usize = usize::MAX;

/// A dynamic loader's command line, read so far ([`Classifier::loader_argument`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct LoaderScan {
    /// The next argument is the value of a loader option.
    value_next: bool,
    /// Loader options seen.
    options: usize,
    /// The argument `--argv0` gave, or [`NO_ARGV0`].
    argv0: usize,
}

/// Where the program an exec runs is named, and its file's class
/// ([`Classifier::start`], [`Classifier::loader_argument`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Located {
    /// The argument that is the program's argv[0].
    name: usize,
    /// The program's first own argument.
    args: usize,
    /// The class of the program's file, or [`NO_CLASS`].
    file: u32,
}

/// `i`, or [`MAX_ARGV_TOKENS`] past the last slot, with a bound the BPF verifier sees.
///
/// An index read back from the classifier's state is any number to the verifier, and
/// Linux 6.1's learns no bound from comparing it with the argument count (a register).
/// Called after that comparison, next to the access: the optimiser would drop a plain
/// comparison with the constant as implied by it, so the index is read as if it could
/// have changed.
#[inline(always)]
fn argument_index(i: usize) -> usize {
    // SAFETY: a read of a local.
    let i = unsafe { core::ptr::read_volatile(&i) };
    if i < MAX_ARGV_TOKENS {
        i
    } else {
        MAX_ARGV_TOKENS
    }
}

/// The arguments the capture holds.
fn argument_count(line: &CommandLine) -> usize {
    if (line.count as usize) < MAX_ARGV_TOKENS {
        line.count as usize
    } else {
        MAX_ARGV_TOKENS
    }
}

/// The class a file of this basename belongs to, if it is one program (not a multi-call
/// binary or a loader).
fn class_of_file<T: CommandTables + ?Sized>(tables: &T, base: u64) -> u32 {
    match tables.binary(base) {
        Some(b) if b.flags & (BINARY_MULTICALL | BINARY_LOADER) == 0 => b.class,
        _ => NO_CLASS,
    }
}

/// The class of a program whose argv[0] is argument `name` and whose own arguments start
/// at `args`, given the class of its file (`file`, or [`NO_CLASS`]).
/// A protected package's removal script ([`EXE_REMOVAL_SCRIPT`]): destructive when dpkg
/// runs it to remove the package (`prerm remove …`, `prerm purge`), charged to `rule`;
/// not guarded when it runs for an upgrade (`prerm upgrade 1.7`) or anything else. When
/// its argument could not be read, it is judged as a removal (`Reason::ArgvOverflow`).
fn removal_script(line: &CommandLine, count: usize, rule: u32) -> Classification {
    const REMOVE: u64 = fnv1a(b"remove");
    const PURGE: u64 = fnv1a(b"purge");
    let verb = if count > 1 { line.tokens.get(1) } else { None };
    let (reason, verb_token) = match verb {
        Some(token) if token.whole == REMOVE || token.whole == PURGE => (Reason::RemovalScript, 1),
        None if line.flags & LINE_TRUNCATED != 0 => (Reason::ArgvOverflow, NO_TOKEN),
        _ => return Classification::new(Verdict::Allowed, Reason::NotGuarded, NO_CLASS),
    };
    let mut c = Classification::new(Verdict::Destructive, reason, NO_CLASS);
    c.rule = rule;
    c.verb_token = verb_token;
    c
}

fn named_or_file<T: CommandTables + ?Sized>(
    tables: &T,
    line: &CommandLine,
    count: usize,
    name: usize,
    args: usize,
    file: u32,
) -> (u32, usize) {
    let mut named = (NO_CLASS, args);
    // Both indexes come back from the classifier's state: see `argument_index`.
    let first = if name < count {
        line.tokens.get(argument_index(name))
    } else {
        None
    };
    if let Some(first) = first {
        if let Some(b) = tables.binary(first.base) {
            if b.flags & (BINARY_MULTICALL | BINARY_LOADER) == 0 {
                named = (b.class, args);
            } else if b.flags & BINARY_MULTICALL != 0 && args < count {
                if let Some(applet) = line.tokens.get(argument_index(args)) {
                    let class = class_of_file(tables, applet.base);
                    if class != NO_CLASS {
                        named = (class, args + 1);
                    }
                }
            }
        }
    }
    if file != NO_CLASS && file != named.0 {
        return (file, args);
    }
    named
}

impl Located {
    /// No program found (a loader with nothing to run): no class.
    const NOTHING: Self = Self {
        name: MAX_ARGV_TOKENS,
        args: 0,
        file: NO_CLASS,
    };
}

/// Classifies one exec against the compiled tables. Never panics, allocates nothing, and
/// every loop has a constant bound.
///
/// This is [`Classifier::start`] (and one [`Classifier::loader_argument`] per argument of a
/// dynamic loader) and [`Classifier::select`], one [`Classifier::step`] per
/// argument (and one [`Classifier::letter`] per letter of a short-option cluster), and
/// [`Classifier::finish`]. The kernel makes the same calls, each from its own BPF
/// function, so the verifier checks the per-argument and per-letter work once rather
/// than once per argument and letter.
pub fn classify<T: CommandTables + ?Sized>(tables: &T, line: &CommandLine) -> Classification {
    let mut classifier = Classifier::IDLE;
    if classifier.start(tables, line) {
        for j in 1..=LOADER_ARGUMENTS {
            if !classifier.loader_argument(tables, line, j) {
                break;
            }
        }
    }
    if let Some(done) = classifier.select(tables, line) {
        return done;
    }
    for i in 0..MAX_ARGV_TOKENS {
        match classifier.step(tables, line, i) {
            Step::End => break,
            Step::Next => {}
            Step::Letters => {
                if !read_cluster(|j| classifier.letter(tables, line, i, j)) {
                    classifier.cluster_unread(line, i);
                }
            }
        }
    }
    classifier.finish(tables, line)
}

/// What [`Classifier::step`] read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(i32)]
pub enum Step {
    /// Past the last argument.
    End = 0,
    /// Go on with the next argument.
    Next = 1,
    /// A cluster of short options: read its letters, then go on.
    Letters = 2,
}

/// Reads a short-option cluster: `letter(j)` for j = 1, 2, … until it returns false (the
/// cluster ended). Returns false if the token's head ran out first.
#[inline(always)]
pub fn read_cluster(mut letter: impl FnMut(usize) -> bool) -> bool {
    for j in 1..TOKEN_HEAD_BYTES {
        if !letter(j) {
            return true;
        }
    }
    false
}

/// The classifier between arguments: what the arguments seen so far say, and where the
/// parse stands. Kernel and userspace drive it the same way (see [`classify`]).
pub struct Classifier {
    scan: Scan,
    start: usize,
    count: usize,
    skip_next: bool,
    options_done: bool,
    positional: u32,
    expecting_object: bool,
    /// The previous argument was an option the class does not know: it may have taken this
    /// argument as its value.
    maybe_value: bool,
    last_candidate: u32,
    located: Located,
    loader: LoaderScan,
}

impl Classifier {
    pub const IDLE: Self = Self {
        scan: Scan {
            class: NO_CLASS,
            entry: ClassEntry {
                flags: 0,
                verb_position: 0,
                objects: 0,
                without_verb: 0,
                bare_rule: NO_RULE,
                bare_upgrade: 0,
            },
            prefix_lens: [0; MAX_PREFIX_LENS],
            verbs: 0,
            bare_verbs: 0,
            modifiers: 0,
            verb_token: NO_TOKEN,
            destructive_token: NO_TOKEN,
            upgrade_token: NO_TOKEN,
            install_token: NO_TOKEN,
            report_token: NO_TOKEN,
            hits_all_token: NO_TOKEN,
            all_objects_token: NO_TOKEN,
            bare_token: NO_TOKEN,
            bare_pending: false,
            bare_hit: false,
            objects_named: 0,
            first_hit: None,
            removal_hit: None,
            strictest: None,
            suffix_hit: None,
            suffix_removal: None,
            pattern_token: NO_TOKEN,
            switch_targets: 0,
            unsafe_target: NO_TOKEN,
            unparsed: false,
        },
        start: 0,
        count: 0,
        skip_next: false,
        options_done: false,
        positional: 0,
        expecting_object: false,
        maybe_value: false,
        last_candidate: NO_TOKEN,
        located: Located::NOTHING,
        loader: LoaderScan {
            value_next: false,
            options: 0,
            argv0: NO_ARGV0,
        },
    };

    /// Resets the state and finds where the program is named, the first half of finding
    /// its class ([`Classifier::select`] is the second). Returns true for a dynamic
    /// loader, whose arguments the caller then reads with [`Classifier::loader_argument`]
    /// (from 1 to [`LOADER_ARGUMENTS`]). The kernel makes each of these a BPF function, so
    /// the verifier checks the class choice once, not once per place a loader's options
    /// can end.
    ///
    /// The executed file decides when it is known: by its inode (`exe_class`), else by the
    /// basename of the path the kernel executed. argv[0] only chooses among the
    /// personalities of one file (a multi-call binary, `telinit` for systemctl) or names
    /// the class when the file is unknown; a program ignores an argv[0] that names another
    /// class (`exec -a apt-get /usr/bin/dpkg --remove x` is dpkg). A dynamic loader hands
    /// the choice to the program it runs.
    pub fn start<T: CommandTables + ?Sized>(&mut self, tables: &T, line: &CommandLine) -> bool {
        *self = Self::IDLE;
        if tables
            .binary(line.filename_base)
            .is_some_and(|file| file.flags & BINARY_LOADER != 0)
        {
            return true;
        }
        let file = if line.exe_class != NO_CLASS {
            line.exe_class
        } else {
            class_of_file(tables, line.filename_base)
        };
        self.located = Located {
            name: 0,
            args: 1,
            file,
        };
        false
    }

    /// Reads argument `j` of a dynamic loader's command line (callers go from 1 upwards):
    /// the program it runs is its first argument that is not an option, with the loader's
    /// own options (and their values) skipped. `--argv0 NAME` is the argv[0] the program
    /// sees, which matters to a multi-call binary. Returns false once the program is found,
    /// or can't be (nothing is then located, and the exec is not guarded).
    pub fn loader_argument<T: CommandTables + ?Sized>(
        &mut self,
        tables: &T,
        line: &CommandLine,
        j: usize,
    ) -> bool {
        if j >= argument_count(line) {
            return false;
        }
        let Some(token) = line.tokens.get(j) else {
            return false;
        };
        let loader = &mut self.loader;
        if loader.value_next {
            loader.value_next = false;
            return true;
        }
        if token.flags & TOKEN_OPTION == 0 {
            self.located = Located {
                name: if loader.argv0 == NO_ARGV0 {
                    j
                } else {
                    loader.argv0
                },
                args: j + 1,
                file: class_of_file(tables, token.base),
            };
            return false;
        }
        if loader.options == MAX_LOADER_OPTIONS {
            return false;
        }
        loader.options += 1;
        if LOADER_VALUE_OPTIONS.contains(&token.whole) {
            loader.value_next = true;
            if token.whole == LOADER_ARGV0 {
                loader.argv0 = j + 1;
            }
        }
        true
    }

    /// Selects the class of what [`Classifier::start`] located. Returns the final answer
    /// when there is nothing to scan (the program belongs to no class).
    pub fn select<T: CommandTables + ?Sized>(
        &mut self,
        tables: &T,
        line: &CommandLine,
    ) -> Option<Classification> {
        let count = argument_count(line);
        let Located { name, args, file } = self.located;
        if let Some(rule) = removal_script_rule(file) {
            return Some(removal_script(line, count, rule));
        }
        let (class_id, start) = named_or_file(tables, line, count, name, args, file);
        let entry = match (class_id != NO_CLASS).then(|| tables.class(class_id)) {
            Some(Some(entry)) => entry,
            _ => {
                return Some(Classification::new(
                    Verdict::Allowed,
                    Reason::NotGuarded,
                    NO_CLASS,
                ))
            }
        };
        self.scan.class = class_id;
        self.scan.entry = entry;
        self.scan.prefix_lens = tables.config().prefix_lens;
        self.start = start;
        self.count = count;
        None
    }

    /// Reads argument `i` (callers go from 0 upwards). Returns [`Step::End`] once past the
    /// last argument, and [`Step::Letters`] for a cluster of short options (`-rf`), whose
    /// letters the caller then reads with [`Classifier::letter`] ([`read_cluster`]).
    pub fn step<T: CommandTables + ?Sized>(
        &mut self,
        tables: &T,
        line: &CommandLine,
        i: usize,
    ) -> Step {
        if i >= self.count {
            return Step::End;
        }
        if i < self.start {
            return Step::Next;
        }
        let Some(token) = line.tokens.get(i) else {
            return Step::End;
        };
        let class_id = self.scan.class;
        let entry = self.scan.entry;
        let scan = &mut self.scan;
        let index = i as u32;
        let consumed = self.skip_next;
        self.skip_next = false;
        let free = !self.options_done && !consumed;
        let is_end = free && token.flags & TOKEN_END_OF_OPTIONS != 0;
        let is_option = free && !is_end && token.flags & TOKEN_OPTION != 0;
        let is_positional = !consumed && !is_end && !is_option;

        let expecting = self.expecting_object;
        self.expecting_object = false;
        let maybe_value = self.maybe_value;
        self.maybe_value = false;
        if expecting && !is_positional {
            if scan.bare_pending {
                scan.bare_hit = true;
            }
            scan.bare_pending = false;
        }
        if consumed {
            return Step::Next;
        }
        if is_end {
            self.options_done = true;
            return Step::Next;
        }

        if is_option {
            let long = token.flags & TOKEN_LONG_OPTION != 0;
            if long || token.len <= 2 {
                let mut word = tables.word(&WordKey::new(class_id, token.whole));
                let mut attached = false;
                if word.is_none() && token.flags & TOKEN_HAS_VALUE != 0 {
                    word = tables.word(&WordKey::new(class_id, token.stem));
                    attached = true;
                }
                match word {
                    Some(word) => {
                        if word.flags & WORD_TAKES_VALUE != 0 && !attached {
                            self.skip_next = true;
                        }
                        scan.word(word.flags, index);
                        self.expecting_object = scan.expect_object(word.flags, index);
                    }
                    None => self.maybe_value = token.flags & TOKEN_HAS_VALUE == 0,
                }
            } else {
                return Step::Letters;
            }
            return Step::Next;
        }

        self.positional += 1;
        let word = tables.word(&WordKey::new(class_id, token.whole));
        if entry.verb_position != 0 && self.positional == entry.verb_position {
            match word {
                Some(word) if word.flags & (VERB_FLAGS | MODIFIER_FLAGS) != 0 => {
                    scan.word(word.flags, index)
                }
                // After an option the class does not know, this may be that option's value
                // (`systemctl --legend no mask x`): the next argument may still be the verb.
                // Reading a flag's neighbour as a value can only find a verb later, never
                // lose one.
                _ if maybe_value => self.positional -= 1,
                _ => {}
            }
            return Step::Next;
        }
        if scan.verbs & WORD_SWITCH != 0 {
            scan.switch_targets += 1;
            let safe = word.is_some_and(|w| w.flags & WORD_SAFE_TARGET != 0);
            if !safe && scan.unsafe_target == NO_TOKEN {
                scan.unsafe_target = index;
            }
        }
        if let Some(word) = word {
            if word.flags & MODIFIER_FLAGS != 0 {
                scan.word(word.flags, index);
                return Step::Next;
            }
            if entry.verb_position == 0 && word.flags & VERB_FLAGS != 0 {
                scan.word(word.flags, index);
                self.expecting_object = scan.expect_object(word.flags, index);
                return Step::Next;
            }
        }
        match entry.objects {
            OBJECTS_AFTER_VERB => {
                if expecting {
                    scan.bare_pending = false;
                    scan.candidate(tables, token, index);
                }
            }
            OBJECTS_LAST => self.last_candidate = index,
            _ => scan.candidate(tables, token, index),
        }
        Step::Next
    }

    /// Reads letter `j` (from 1) of the short-option cluster that is argument `i`. Returns
    /// false once the cluster has ended: past its last letter, or at a letter that takes a
    /// value or an object (the rest of the cluster is that value).
    pub fn letter<T: CommandTables + ?Sized>(
        &mut self,
        tables: &T,
        line: &CommandLine,
        i: usize,
        j: usize,
    ) -> bool {
        let Some(token) = line.tokens.get(i) else {
            return false;
        };
        let len = token.len as usize;
        if j >= len {
            return false;
        }
        let Some(&c) = token.head.get(j) else {
            return false;
        };
        let class_id = self.scan.class;
        let prefix_lens = self.scan.prefix_lens;
        let index = i as u32;
        let scan = &mut self.scan;
        let Some(word) = tables.word(&WordKey::new(class_id, short_option_hash(c))) else {
            // An option letter the class does not know; if it is the last, it may take the
            // next argument.
            self.maybe_value = j + 1 == len;
            return true;
        };
        self.maybe_value = false;
        let rest = j + 1 < len;
        if word.flags & WORD_TAKES_VALUE != 0 {
            if !rest {
                self.skip_next = true;
            }
            scan.word(word.flags, index);
            return false;
        }
        scan.word(word.flags, index);
        if !scan.expect_object(word.flags, index) {
            return true;
        }
        if rest {
            scan.bare_pending = false;
            if let Some(bytes) = token.head.get(j + 1..len.min(TOKEN_HEAD_BYTES)) {
                let object = tables.attached_token(bytes, len > TOKEN_HEAD_BYTES, &prefix_lens);
                scan.candidate(tables, &object, index);
            }
        } else {
            self.expecting_object = true;
        }
        false
    }

    /// After a cluster whose letters ran past the token's head without ending: the rest
    /// was not read, so the command can't be shown harmless.
    pub fn cluster_unread(&mut self, line: &CommandLine, i: usize) {
        if line
            .tokens
            .get(i)
            .is_some_and(|t| t.len as usize > TOKEN_HEAD_BYTES)
        {
            self.scan.unparsed = true;
        }
    }

    /// The decision, once every argument has been read. `tables` is needed again for an
    /// object named by the last argument (`OBJECTS_LAST`).
    pub fn finish<T: CommandTables + ?Sized>(
        &mut self,
        tables: &T,
        line: &CommandLine,
    ) -> Classification {
        if self.last_candidate != NO_TOKEN {
            if let Some(token) = line.tokens.get(self.last_candidate as usize) {
                self.scan.candidate(tables, token, self.last_candidate);
            }
            self.last_candidate = NO_TOKEN;
        }
        self.conclude(line)
    }

    fn conclude(&mut self, line: &CommandLine) -> Classification {
        let class_id = self.scan.class;
        let entry = self.scan.entry;
        let scan = &mut self.scan;
        if self.expecting_object && scan.bare_pending {
            scan.bare_hit = true;
        }
        let verb_seen =
            scan.verbs != 0 || (entry.verb_position != 0 && self.positional >= entry.verb_position);
        if scan.verbs == 0 {
            scan.verbs = entry.without_verb & VERB_FLAGS;
            if entry.without_verb & WORD_BARE != 0 {
                scan.bare_verbs = scan.verbs;
                scan.bare_hit = true;
            }
        }
        if line.flags & LINE_KERNEL_EXEC != 0 && entry.bare_rule != NO_RULE {
            // No argv to read: whatever it was told to do, it can't be shown harmless.
            let mut c = Classification::new(Verdict::Destructive, Reason::KernelExec, class_id);
            c.rule = entry.bare_rule;
            return c;
        }
        let truncated = line.flags & LINE_TRUNCATED != 0 || scan.unparsed;
        let decision = decide(scan, &entry, truncated, verb_seen);
        let trusted = class_id < MAX_CLASSES && line.trusted_classes & (1 << class_id) != 0;
        match decision.verdict() {
            Some(Verdict::Destructive) | Some(Verdict::ReportOnly) if trusted => Classification {
                verdict: Verdict::Allowed as u32,
                reason: Reason::TrustedCaller as u32,
                ..decision
            },
            _ => decision,
        }
    }
}

fn decide(scan: &Scan, entry: &ClassEntry, truncated: bool, verb_seen: bool) -> Classification {
    let class = scan.class;
    let bare_rule = entry.bare_rule;
    let destructive = |reason: Reason, rule: u32, verb: u32, hit: Option<Hit>| {
        charge(Verdict::Destructive, reason, class, rule, verb, hit)
    };
    let removal_in_window = |verb: u32, hit: Hit| {
        charge(
            Verdict::AllowedAsUpgrade,
            Reason::RemovalInWindow,
            class,
            hit.entry.rule,
            verb,
            Some(hit),
        )
    };

    if scan.modifiers & WORD_DRY_RUN != 0 {
        return Classification::new(Verdict::Allowed, Reason::DryRun, class);
    }
    if scan.modifiers & WORD_HITS_ALL != 0 && bare_rule != NO_RULE {
        return destructive(Reason::HitsAll, bare_rule, scan.hits_all_token, None);
    }
    if scan.verbs & WORD_SWITCH != 0
        && bare_rule != NO_RULE
        && (scan.switch_targets == 0 || scan.unsafe_target != NO_TOKEN)
    {
        let mut c = destructive(Reason::StopsEverything, bare_rule, scan.verb_token, None);
        c.object_token = scan.unsafe_target;
        return c;
    }
    if scan.verbs & WORD_DESTRUCTIVE != 0 {
        let verb = scan.destructive_token;
        if let Some(hit) = scan.first_hit {
            return destructive(Reason::ProtectedObject, hit.entry.rule, verb, Some(hit));
        }
        if bare_rule != NO_RULE {
            if scan.modifiers & WORD_ALL_OBJECTS != 0 {
                let mut c = destructive(Reason::AllObjects, bare_rule, verb, None);
                c.object_token = scan.all_objects_token;
                return c;
            }
            if scan.pattern_token != NO_TOKEN {
                let mut c = destructive(Reason::Pattern, bare_rule, verb, None);
                c.object_token = scan.pattern_token;
                return c;
            }
            if scan.bare_verbs & WORD_DESTRUCTIVE != 0
                && (scan.bare_hit
                    || (entry.objects != OBJECTS_AFTER_VERB && scan.objects_named == 0))
            {
                return destructive(Reason::BareVerb, bare_rule, verb, None);
            }
            if truncated {
                return destructive(Reason::ArgvOverflow, bare_rule, verb, None);
            }
        }
        // Every protected object it names has a window open for its removal (and nothing
        // above reads as "everything"): allowed, and reported.
        if let Some(hit) = scan.removal_hit {
            return removal_in_window(verb, hit);
        }
    }
    if scan.verbs & WORD_REPORT_ONLY != 0 && bare_rule != NO_RULE {
        return charge(
            Verdict::ReportOnly,
            Reason::ContentNotVisible,
            class,
            bare_rule,
            scan.report_token,
            None,
        );
    }
    if scan.verbs & (WORD_UPGRADE | WORD_INSTALL) != 0 {
        let replaces = scan.verbs & WORD_UPGRADE != 0;
        let verb = if replaces {
            scan.upgrade_token
        } else {
            scan.install_token
        };
        if entry.flags & CLASS_REMOVE_SUFFIX != 0 {
            if let Some(hit) = scan.suffix_hit {
                return destructive(Reason::RemoveSuffix, hit.entry.rule, verb, Some(hit));
            }
            if truncated && bare_rule != NO_RULE {
                return destructive(Reason::ArgvOverflow, bare_rule, verb, None);
            }
        }
        let installs = if let Some(hit) = scan.strictest {
            if !replaces && hit.entry.upgrade == UPGRADE_ALLOW {
                Some(charge(
                    Verdict::Allowed,
                    Reason::Install,
                    class,
                    hit.entry.rule,
                    verb,
                    Some(hit),
                ))
            } else {
                Some(upgrade(hit.entry, hit.entry.rule, class, verb, Some(hit)))
            }
        } else if scan.bare_verbs & WORD_UPGRADE != 0
            && scan.objects_named == 0
            && bare_rule != NO_RULE
        {
            // Which packages a bare upgrade replaces is not on the command line: only a
            // group that allows upgrades outright lets it through, never a window.
            let strictest = ObjectEntry {
                upgrade: entry.bare_upgrade,
                ..ObjectEntry::default()
            };
            Some(upgrade(strictest, bare_rule, class, verb, None))
        } else {
            None
        };
        match installs {
            Some(c) if c.verdict == Verdict::Destructive as u32 => return c,
            _ => {}
        }
        // What it removes (`pkg-` in a window that allows it) matters more to a reviewer
        // than what it installs.
        if let Some(hit) = scan.suffix_removal {
            return removal_in_window(verb, hit);
        }
        if let Some(c) = installs {
            return c;
        }
    }
    if truncated && !verb_seen && bare_rule != NO_RULE {
        // The verb, if any, lies beyond what the kernel copied.
        return destructive(Reason::ArgvOverflow, bare_rule, NO_TOKEN, None);
    }
    Classification::new(Verdict::Allowed, Reason::NoDestructiveVerb, class)
}

/// A classification charged to `rule`, naming the deciding verb and object.
fn charge(
    verdict: Verdict,
    reason: Reason,
    class: u32,
    rule: u32,
    verb: u32,
    hit: Option<Hit>,
) -> Classification {
    let mut c = Classification::new(verdict, reason, class);
    c.rule = rule;
    c.verb_token = verb;
    if let Some(hit) = hit {
        c.object_token = hit.token;
        c.object = hit.entry.object;
    }
    c
}

/// An install, reinstall or upgrade of the package `object` describes (its group's
/// `UPGRADE_*` and its window bits).
fn upgrade(
    object: ObjectEntry,
    rule: u32,
    class: u32,
    verb: u32,
    hit: Option<Hit>,
) -> Classification {
    let (verdict, reason) = match object.upgrade {
        UPGRADE_ALLOW => (Verdict::AllowedAsUpgrade, Reason::Upgrade),
        UPGRADE_WINDOW if object.flags & OBJECT_WINDOW_OPEN != 0 => {
            (Verdict::AllowedAsUpgrade, Reason::UpgradeInWindow)
        }
        UPGRADE_WINDOW => (Verdict::Destructive, Reason::UpgradeOutsideWindow),
        UPGRADE_DENY => (Verdict::Destructive, Reason::UpgradeDenied),
        // Not a package (a unit or chain named by an install-like verb): nothing replaced.
        _ => return Classification::new(Verdict::Allowed, Reason::NoDestructiveVerb, class),
    };
    charge(verdict, reason, class, rule, verb, hit)
}
