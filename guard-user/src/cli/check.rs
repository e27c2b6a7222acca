//! `rtguard check POLICY`: validate a policy, resolve it against a root, and show what it
//! protects there.

use std::path::PathBuf;

use clap::Args;

use super::exit;
use crate::{
    policy::{self, PolicyError},
    resolve::{self, ItemState, ResolveError, ResolveOptions, RuleSet},
};

#[derive(Debug, Args)]
#[command(
    long_about = "Validates a policy and resolves it against a root directory: for every rule, \
                  the packages that are or aren't installed, the files, trees, units and \
                  executables it protects here, and a warning for each rule that resolves to \
                  nothing. Errors are reported as `file:line:col: message` with the offending \
                  line, and exit with status 2.",
    after_help = "The policy format (every key, its meaning and the shipped policies) is \
                  documented in policy/README.md."
)]
pub struct CheckArgs {
    /// The policy file to check.
    #[arg(value_name = "POLICY")]
    pub policy: PathBuf,

    /// Resolve against this root directory instead of the running system (a VM image, a
    /// container rootfs, a test fixture).
    #[arg(long, value_name = "DIR", default_value = "/")]
    pub root: PathBuf,

    /// Print machine-readable JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

pub fn check(args: CheckArgs) -> u8 {
    let policy = match policy::load(&args.policy) {
        Ok(policy) => policy,
        Err(e) => return report_policy_error(&e, args.json),
    };
    let options = ResolveOptions {
        root: args.root.clone(),
        ..Default::default()
    };
    let set = match resolve::resolve(&policy, &options) {
        Ok(set) => set,
        Err(ResolveError::Policy(e)) => return report_policy_error(&e, args.json),
        Err(e) => {
            eprintln!("rtguard: {e}");
            return exit::USAGE;
        }
    };
    if args.json {
        let value = serde_json::json!({
            "ok": true,
            "ruleset": set,
            "commands": command_summary(&policy),
        });
        println!(
            "{}",
            serde_json::to_string_pretty(&value).unwrap_or_default()
        );
    } else {
        print!("{}", render(&policy, &set));
    }
    exit::OK
}

fn report_policy_error(e: &PolicyError, json: bool) -> u8 {
    if json {
        let errors: Vec<_> = e
            .diagnostics()
            .iter()
            .map(|d| {
                serde_json::json!({
                    "file": d.file, "line": d.line(), "col": d.col(), "message": d.message,
                })
            })
            .collect();
        let value = serde_json::json!({ "ok": false, "error": e.to_string(), "errors": errors });
        println!(
            "{}",
            serde_json::to_string_pretty(&value).unwrap_or_default()
        );
    } else {
        eprintln!("{}", e.render());
    }
    exit::USAGE
}

fn command_summary(policy: &policy::Policy) -> serde_json::Value {
    policy
        .commands
        .iter()
        .enumerate()
        .map(|(id, c)| {
            serde_json::json!({
                "id": id,
                "name": c.name,
                "binaries": c.binaries,
                "objects": c.objects,
            })
        })
        .collect()
}

/// The human report.
pub fn render(policy: &policy::Policy, set: &RuleSet) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{}: environment `{}`, default mode {}",
        set.policy.file,
        set.policy.environment,
        set.policy.mode.as_str()
    );
    let dbs = if set.package_databases.is_empty() {
        "none".to_owned()
    } else {
        set.package_databases.join(", ")
    };
    let _ = writeln!(
        out,
        "  root {}, package databases: {dbs}, sha256 {}",
        set.root.display(),
        &set.policy.sha256[..16]
    );
    for (rule, report) in set.rules.iter().zip(&set.reports) {
        let mut header = format!(
            "\n#{} {} [{} {}",
            rule.id,
            rule.name,
            rule.kind.as_str(),
            rule.mode.as_str()
        );
        if let Some(upgrade) = rule.upgrade {
            let _ = write!(header, ", upgrade {}", upgrade.as_str());
        }
        let _ = writeln!(
            out,
            "{header}]: {} protected here",
            count(report.objects, "object")
        );
        let width = report.items.iter().map(|i| i.name.len()).max().unwrap_or(0);
        for item in &report.items {
            let state = match item.state {
                ItemState::Present => "",
                other => other.as_str(),
            };
            let sep = if state.is_empty() || item.detail.is_empty() {
                ""
            } else {
                ": "
            };
            let _ = writeln!(out, "    {:width$}  {state}{sep}{}", item.name, item.detail);
        }
    }
    let _ = writeln!(out, "\ncommand classes (exec layer):");
    for (id, class) in policy.commands.iter().enumerate() {
        let objects: Vec<_> = class.objects.iter().map(|o| o.as_str()).collect();
        let _ = writeln!(
            out,
            "    {} [{}]: {}  (names {})",
            class.name,
            id,
            class.binaries.join(", "),
            objects.join(", ")
        );
    }
    let c = &set.commands;
    let lens: Vec<_> = c.config.prefix_lens.iter().filter(|&&l| l != 0).collect();
    let _ = writeln!(
        out,
        "    tables: {} binaries, {} words, {} protected names, prefix lengths {:?}; {} binaries bound by inode, {} trusted callers; {} unit names refused in the override directories",
        c.binaries.len(),
        c.words.len(),
        c.objects.len(),
        lens,
        set.exe_classes.len(),
        set.trusted_callers.len(),
        set.protected_names.len()
    );
    let _ = writeln!(
        out,
        "\nsummary: {}, {}, {}, {}; {}",
        count(set.objects.len(), "file object"),
        count(set.trees.len(), "tree"),
        count(set.trusted_writers.len(), "trusted writer"),
        count(set.processes.len(), "protected executable"),
        count(set.warnings.len(), "warning")
    );
    for w in &set.warnings {
        let _ = writeln!(out, "{w}");
    }
    out
}

fn count(n: usize, what: &str) -> String {
    format!("{n} {what}{}", if n == 1 { "" } else { "s" })
}
