//! `rtguard explain -- CMD ARGS...`: how the exec layer classifies a command line, with the
//! same compiled tables and the same classifier the kernel program uses.

use std::{
    ffi::OsString,
    os::unix::ffi::OsStrExt as _,
    path::{Path, PathBuf},
};

use clap::Args;
use guard_common::{
    exec::action,
    exec::{
        Classification, Reason, Verdict, MAX_ARGV_TOKENS, NO_CLASS, NO_TOKEN, TOKEN_HEAD_BYTES,
    },
    rule::{Action, RuleKind},
};

use super::exit;
use crate::{
    audit::record::shell_join,
    daemon::notice::file_layer_protects,
    host::paths,
    policy::{self, Policy, PolicyError},
    resolve::{self, ruleset::EXEC_PATH, ResolveError, ResolveOptions, Root, RuleSet},
    tables::maintenance::{self, state_file, MaintenanceState},
};

/// Where an installed policy lives; `explain` uses it when no `--policy` is given.
pub const INSTALLED_POLICY: &str = "/etc/rtguard/policy.toml";

/// Programs that only start other programs: each of those is classified on its own exec.
const LAUNCHERS: &[&str] = &[
    "sh",
    "bash",
    "dash",
    "zsh",
    "ksh",
    "mksh",
    "ash",
    "fish",
    "busybox",
    "sudo",
    "doas",
    "su",
    "runuser",
    "env",
    "nohup",
    "nice",
    "ionice",
    "timeout",
    "xargs",
    "setsid",
    "stdbuf",
    "chroot",
    "systemd-run",
    "flock",
    "watch",
    "time",
    "strace",
    "unshare",
    "nsenter",
];

#[derive(Debug, Args)]
#[command(
    long_about = "Classifies a command line as the exec layer would when it is executed: which \
                  command class it belongs to, whether it is destructive, and which rule it is \
                  charged to. The classifier and tables are the ones loaded into the kernel. \
                  Put the command after `--`.",
    after_help = "Without --policy, explain uses /etc/rtguard/policy.toml if present, else the \
                  shipped production policy. See policy/README.md."
)]
pub struct ExplainArgs {
    /// The policy to classify with.
    #[arg(long, value_name = "FILE")]
    pub policy: Option<PathBuf>,

    /// Resolve executables and protected files under this root.
    #[arg(long, value_name = "DIR", default_value = "/")]
    pub root: PathBuf,

    /// Print machine-readable JSON on stdout.
    #[arg(long)]
    pub json: bool,

    /// Classify as if this executable ran the command (a trusted caller such as dockerd).
    #[arg(long, value_name = "EXE")]
    pub caller: Option<PathBuf>,

    /// The daemon's state directory: the maintenance windows open there now apply, as
    /// they do in the kernel.
    #[arg(long, value_name = "DIR", default_value = paths::STATE_DIR)]
    pub state_dir: PathBuf,

    /// Classify as if a maintenance window were open for this package (repeatable).
    #[arg(long = "window", value_name = "PACKAGE")]
    pub windows: Vec<String>,

    /// The windows given with --window allow removal too.
    #[arg(long, requires = "windows")]
    pub allow_removal: bool,

    /// The command line, after `--`.
    #[arg(last = true, required = true, value_name = "CMD")]
    pub command: Vec<OsString>,
}

/// A classification with everything needed to show it.
pub struct Explanation {
    pub argv: Vec<String>,
    pub classification: Classification,
    pub action: Action,
    pub class: Option<String>,
    pub rule: Option<(u32, String, policy::Mode)>,
    pub reason: String,
    pub notes: Vec<String>,
}

pub fn explain(args: ExplainArgs) -> u8 {
    let (policy, origin) = match load_policy(args.policy.as_deref()) {
        Ok(found) => found,
        Err(e) => {
            eprintln!("{}", e.render());
            return exit::USAGE;
        }
    };
    let options = ResolveOptions {
        root: args.root.clone(),
        ..Default::default()
    };
    let mut set = match resolve::resolve(&policy, &options) {
        Ok(set) => set,
        Err(ResolveError::Policy(e)) => {
            eprintln!("{}", e.render());
            return exit::USAGE;
        }
        Err(e) => {
            eprintln!("rtguard: {e}");
            return exit::USAGE;
        }
    };
    let now = time::OffsetDateTime::now_utc();
    let mut windows = MaintenanceState::load(&state_file(&args.state_dir)).unwrap_or_else(|e| {
        eprintln!("rtguard: {e}; classifying as if no maintenance window were open");
        MaintenanceState::default()
    });
    for package in &args.windows {
        let for_now = std::time::Duration::from_secs(60);
        windows.open(
            package,
            args.allow_removal,
            for_now,
            "explain",
            "explain",
            now,
        );
    }
    set.commands = maintenance::commands_at(&set, &windows, now);
    let argv: Vec<Vec<u8>> = args.command.iter().map(|a| a.as_bytes().to_vec()).collect();
    let caller = match &args.caller {
        Some(path) => match std::fs::metadata(path) {
            Ok(meta) => Some(resolve::inode_key(&meta)),
            Err(e) => {
                eprintln!("rtguard: --caller {}: {e}", path.display());
                return exit::USAGE;
            }
        },
        None => None,
    };
    let e = explain_argv(&policy, &set, &argv, caller);
    if args.json {
        let (verb, object) = (
            token(&e, e.classification.verb_token),
            token(&e, e.classification.object_token),
        );
        let value = serde_json::json!({
            "policy": origin,
            "command": e.argv,
            "class": e.class,
            "decision": e.action.as_str(),
            "verdict": e.classification.verdict().map(Verdict::as_str),
            "reason": e.classification.reason().map(Reason::as_str),
            "explanation": e.reason,
            "rule": e.rule.as_ref().map(|(id, name, mode)| serde_json::json!({"id": id, "name": name, "mode": mode})),
            "verb": verb,
            "object": object,
            "object_name": set.commands.object_name(e.classification.object).map(|o| &o.name),
            "notes": e.notes,
        });
        println!(
            "{}",
            serde_json::to_string_pretty(&value).unwrap_or_default()
        );
    } else {
        print!("{}", render(&e, &origin));
    }
    exit::OK
}

fn token(e: &Explanation, index: u32) -> Option<serde_json::Value> {
    (index != NO_TOKEN).then(|| {
        serde_json::json!({
            "index": index,
            "text": e.argv.get(index as usize),
        })
    })
}

fn load_policy(path: Option<&Path>) -> Result<(Policy, String), PolicyError> {
    if let Some(path) = path {
        return Ok((policy::load(path)?, path.display().to_string()));
    }
    let installed = Path::new(INSTALLED_POLICY);
    if installed.exists() {
        return Ok((policy::load(installed)?, INSTALLED_POLICY.to_owned()));
    }
    let name = "built-in policy/production.toml";
    Ok((
        policy::parse(name, policy::BUILTIN_PRODUCTION)?,
        name.to_owned(),
    ))
}

/// Classifies an argv the way the kernel will: PATH lookup of argv[0] under the set's root
/// for the executed file, its inode for the class-by-identity, the caller for trust. The
/// set's command tables carry the maintenance windows to apply
/// ([`maintenance::commands_at`]).
pub fn explain_argv(
    policy: &Policy,
    set: &RuleSet,
    argv: &[Vec<u8>],
    caller: Option<guard_common::InodeKey>,
) -> Explanation {
    let commands = &set.commands;
    let mut line = commands.command_line(argv);
    let root = Root::new(&set.root);
    let executed = argv.first().and_then(|a0| find_executable(&root, a0));
    if let Some((path, key)) = &executed {
        line.set_filename(path.as_os_str().as_bytes(), &commands.config.prefix_lens);
        set.annotate(&mut line, Some(key), caller.as_ref());
    } else {
        set.annotate(&mut line, None, caller.as_ref());
    }
    let classification = commands.classify(&line);
    let rule_info = set.rule(classification.rule);
    let action = action(&classification, rule_info.map(|r| r.entry()));
    let argv_text: Vec<String> = argv
        .iter()
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    let class = commands.class_name(classification.class).map(str::to_owned);
    let reason = describe(policy, set, &argv_text, &classification, caller.is_some());
    let mut notes = Vec::new();
    let program = argv_text
        .first()
        .map(|a| a.rsplit('/').next().unwrap_or(a).to_owned())
        .unwrap_or_default();
    if classification.class == NO_CLASS && LAUNCHERS.contains(&program.as_str()) {
        notes.push(format!(
            "`{program}` itself is allowed. Each command it runs is classified when that command \
             is executed, with its own argv; rtguard does not guess what a script or a `-c` string \
             will run."
        ));
    }
    if matches!(program.as_str(), "kill" | "pkill" | "killall" | "skill") {
        for rule in set.rules.iter().filter(|r| r.kind == RuleKind::Processes) {
            notes.push(format!(
                "the process layer refuses signals that would end or stop the daemons of rule \
                 {}, and the ones it lists, from anyone but pid 1 and their supervisors, \
                 whichever program sends them",
                rule.name
            ));
        }
    }
    if argv.len() > MAX_ARGV_TOKENS {
        notes.push(format!(
            "the kernel captures the first {MAX_ARGV_TOKENS} arguments; the rest are not seen"
        ));
    }
    notes.extend(file_layer_notes(set, &argv_text));
    Explanation {
        argv: argv_text,
        classification,
        action,
        class,
        rule: rule_info.map(|r| (r.id, r.name.clone(), r.mode)),
        reason,
        notes,
    }
}

/// The executed file: argv[0] itself when it has a slash, else the first match on PATH.
fn find_executable(root: &Root, argv0: &[u8]) -> Option<(PathBuf, guard_common::InodeKey)> {
    let name = Path::new(std::ffi::OsStr::from_bytes(argv0));
    let candidates: Vec<PathBuf> = if argv0.contains(&b'/') {
        vec![name.to_owned()]
    } else {
        EXEC_PATH.iter().map(|d| Path::new(d).join(name)).collect()
    };
    candidates.into_iter().find_map(|p| {
        let (host, key) = root.stat(&p).ok()?;
        host.is_file().then_some((p, key))
    })
}

fn quoted(argv: &[String], index: u32) -> String {
    argv.get(index as usize)
        .map_or_else(String::new, |t| format!("`{t}`"))
}

fn describe(
    policy: &Policy,
    set: &RuleSet,
    argv: &[String],
    c: &Classification,
    has_caller: bool,
) -> String {
    let commands = &set.commands;
    let verb = quoted(argv, c.verb_token);
    let token = quoted(argv, c.object_token);
    let object = commands.object_name(c.object);
    let named = object.map_or_else(String::new, |o| {
        format!(
            "protected {} `{}`",
            o.kind.as_str().trim_end_matches('s'),
            o.name
        )
    });
    let kinds = policy
        .commands
        .get(c.class as usize)
        .map(|class| {
            class
                .objects
                .iter()
                .map(|k| k.as_str())
                .collect::<Vec<_>>()
                .join(" and ")
        })
        .unwrap_or_default();
    let program = argv.first().map(String::as_str).unwrap_or("");
    match c.reason() {
        Some(Reason::NotGuarded) => format!(
            "`{program}` belongs to no command class; the exec layer lets it run (the file and \
             process layers still guard what it touches)"
        ),
        Some(Reason::NoDestructiveVerb) => {
            "nothing here removes, stops, flushes or replaces a protected object".to_owned()
        }
        Some(Reason::DryRun) => "the command only simulates (dry run)".to_owned(),
        Some(Reason::ProtectedObject) => format!("{verb} acts on {named} (argv[{}] {token})", c.object_token),
        Some(Reason::BareVerb) => format!(
            "{verb} names no object, so it acts on every one of its {kinds}, the protected ones included"
        ),
        Some(Reason::AllObjects) => format!("{verb} with {token} acts on every one of its {kinds}"),
        Some(Reason::HitsAll) => format!("{verb} overrides the protection of every one of its {kinds}"),
        Some(Reason::Pattern) => format!("{verb} with the pattern {token}, which may match protected {kinds}"),
        Some(Reason::ArgvOverflow) => format!(
            "the command line is longer than the kernel reads (more than {MAX_ARGV_TOKENS} \
             arguments, or an option cluster over {TOKEN_HEAD_BYTES} bytes) and what it does read \
             doesn't rule out a destructive command; the policy treats that as destructive"
        ),
        Some(Reason::RemoveSuffix) => format!(
            "{token} in an install removes {named}: a trailing `-` (or `_`) means remove"
        ),
        Some(Reason::Upgrade) => {
            let what = if named.is_empty() {
                format!("every protected one of its {kinds} installed here")
            } else {
                named
            };
            format!(
                "{verb} installs or replaces {what}; its group allows upgrades through the package \
                 manager (removal stays blocked)"
            )
        }
        Some(Reason::Install) => format!(
            "{verb} installs {named}: a first install replaces nothing, and an upgrade is allowed \
             for its group (removal stays blocked)"
        ),
        Some(Reason::UpgradeInWindow) => format!(
            "{verb} replaces {named} inside the maintenance window open for it"
        ),
        Some(Reason::UpgradeOutsideWindow) => format!(
            "{verb} replaces {named}, whose group allows upgrades only in a maintenance window, \
             and none is open for it (`rtguard maintenance open --package …`)"
        ),
        Some(Reason::RemovalInWindow) => format!(
            "{verb} acts on {named}, and every protected object it names has a maintenance \
             window open that allows removal (`--allow-removal`); allowed and recorded"
        ),
        Some(Reason::UpgradeDenied) => format!("{verb} replaces {named}, whose group denies upgrades"),
        Some(Reason::ContentNotVisible) => format!(
            "`{program}` acts on input the exec layer cannot see (it may replace whole tables); \
             it is reported, never blocked"
        ),
        Some(Reason::StopsEverything) => {
            let target = if c.object_token == NO_TOKEN {
                "no target that keeps the runtime".to_owned()
            } else {
                token.clone()
            };
            format!(
                "{verb} switches the system to {target}, which stops every unit it does not pull \
                 in, the protected {kinds} included"
            )
        }
        Some(Reason::RemovalScript) => format!(
            "`{program}` is a protected package's pre-removal script, run with {verb}: dpkg \
             runs it first when it removes the package, whatever asked for that (`dpkg -r`, \
             an install that conflicts with it); refusing it stops the removal with the \
             package still installed"
        ),
        Some(Reason::KernelExec) => format!(
            "the kernel started `{program}` itself (a usermode helper), so its arguments were \
             never seen, and it belongs to a class that acts on protected {kinds}"
        ),
        Some(Reason::TrustedCaller) => {
            let who = if has_caller { "the caller" } else { "this executable" };
            format!(
                "destructive ({verb}), but {who} is a trusted caller of `{}`",
                commands.class_name(c.class).unwrap_or("?")
            )
        }
        None => "unknown".to_owned(),
    }
}

/// Notes for absolute paths on the command line that the file layer protects.
fn file_layer_notes(set: &RuleSet, argv: &[String]) -> Vec<String> {
    let mut notes = Vec::new();
    for arg in argv.iter().skip(1).filter(|a| a.starts_with('/')) {
        let arg_path = lexical(Path::new(arg));
        let rule_name = |id: u32| set.rule(id).map_or("?", |r| r.name.as_str()).to_owned();
        let mut hits: Vec<(PathBuf, String)> = Vec::new();
        for o in &set.objects {
            if o.path.starts_with(&arg_path) {
                hits.push((o.path.clone(), rule_name(o.rule)));
            }
        }
        for t in &set.trees {
            if t.path.starts_with(&arg_path) || arg_path.starts_with(&t.path) {
                hits.push((t.path.clone(), rule_name(t.rule)));
            }
        }
        if let Some((path, rule)) = hits.first() {
            let more = if hits.len() > 1 {
                format!(" and {} more protected objects", hits.len() - 1)
            } else {
                String::new()
            };
            notes.push(format!(
                "{}{more}: changes to it are refused whichever program makes them",
                file_layer_protects(&path.display().to_string(), rule)
            ));
        }
    }
    notes
}

fn lexical(path: &Path) -> PathBuf {
    let mut out = PathBuf::from("/");
    for c in path.components() {
        match c {
            std::path::Component::ParentDir => {
                out.pop();
            }
            std::path::Component::Normal(p) => out.push(p),
            _ => {}
        }
    }
    out
}

/// The human report.
pub fn render(e: &Explanation, policy_origin: &str) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let _ = writeln!(out, "command:  {}", shell_join(&e.argv));
    let _ = writeln!(out, "policy:   {policy_origin}");
    let _ = writeln!(out, "class:    {}", e.class.as_deref().unwrap_or("(none)"));
    let decision = match (e.action, e.classification.verdict()) {
        (Action::Block, _) => "blocked".to_owned(),
        (Action::Report, Some(Verdict::ReportOnly)) => "allowed, reported (would-block)".to_owned(),
        (Action::Report, _) => "would-block (the rule audits: reported, not blocked)".to_owned(),
        (Action::AllowLogged, _) => match e.classification.reason() {
            Some(Reason::UpgradeInWindow | Reason::RemovalInWindow) => {
                "allowed (maintenance window), recorded".to_owned()
            }
            _ => "allowed (upgrade)".to_owned(),
        },
        (Action::Allow, _) => "allowed".to_owned(),
    };
    let _ = writeln!(out, "decision: {decision}");
    let _ = writeln!(out, "reason:   {}", e.reason);
    if let Some((id, name, mode)) = &e.rule {
        let _ = writeln!(out, "rule:     {name} (#{id}, {})", mode.as_str());
    }
    for note in &e.notes {
        let _ = writeln!(out, "note:     {note}");
    }
    out
}
