//! Which records to show: [`Filter`], and [`parse_when`] for the `--since`/`--until`
//! values it is built from.

use time::{macros::format_description, Date, OffsetDateTime, Time};

use super::ReviewError;
use crate::audit::record::{timestamp, AuditRecord, Decision, Layer};

/// Parses a `--since`/`--until` value: a duration meaning that long before `now` (`10m`,
/// `2h`, `3d`, `1h30m`), an RFC 3339 timestamp, or a date meaning its midnight UTC.
pub fn parse_when(s: &str, now: OffsetDateTime) -> Result<OffsetDateTime, ReviewError> {
    let s = s.trim();
    if let Ok(ts) = timestamp::parse(s) {
        return Ok(ts);
    }
    if let Ok(date) = Date::parse(s, format_description!("[year]-[month]-[day]")) {
        return Ok(date.with_time(Time::MIDNIGHT).assume_utc());
    }
    if s.starts_with(|c: char| c.is_ascii_digit()) {
        if let Ok(ago) = humantime::parse_duration(s) {
            if let Some(t) = time::Duration::try_from(ago)
                .ok()
                .and_then(|ago| now.checked_sub(ago))
            {
                return Ok(t);
            }
        }
    }
    Err(ReviewError::BadTime(s.to_owned()))
}

/// Which records to show. Each list is a set of alternatives (any may match); the
/// different criteria must all match. Empty lists match everything.
#[derive(Clone, Debug, Default)]
pub struct Filter {
    /// At or after.
    pub since: Option<OffsetDateTime>,
    /// At or before.
    pub until: Option<OffsetDateTime>,
    /// Rule names, exactly.
    pub rules: Vec<String>,
    pub decisions: Vec<Decision>,
    /// Operations, exactly (`unlink`, `exec`, `maintenance-open`, …).
    pub ops: Vec<String>,
    /// Package names, exactly: the target's owning package, or the object of a classified
    /// command (`apt-get remove containerd.io` is about containerd.io).
    pub packages: Vec<String>,
    /// Substrings of the actor's comm, exe or command line.
    pub actors: Vec<String>,
    pub layers: Vec<Layer>,
}

impl Filter {
    /// Whether the record falls inside `since`/`until`.
    pub fn in_window(&self, r: &AuditRecord) -> bool {
        self.since.is_none_or(|s| r.ts >= s) && self.until.is_none_or(|u| r.ts <= u)
    }

    pub fn matches(&self, r: &AuditRecord) -> bool {
        fn any<T>(wanted: &[T], hit: impl Fn(&T) -> bool) -> bool {
            wanted.is_empty() || wanted.iter().any(hit)
        }
        self.in_window(r)
            && any(&self.rules, |w| r.rule.as_deref() == Some(w.as_str()))
            && any(&self.decisions, |&d| r.decision == d)
            && any(&self.ops, |w| r.op == *w)
            && any(&self.layers, |&l| r.layer == l)
            && any(&self.packages, |w| {
                r.target.package.as_deref() == Some(w.as_str())
                    || r.exec
                        .as_ref()
                        .and_then(|e| e.object.as_deref())
                        .is_some_and(|o| o == w)
            })
            && any(&self.actors, |w| {
                let a = &r.actor;
                a.comm.contains(w.as_str())
                    || a.exe.as_deref().is_some_and(|e| e.contains(w.as_str()))
                    || a.argv.join(" ").contains(w.as_str())
            })
    }
}

#[cfg(test)]
mod tests {
    use super::{super::testing::fixture, *};
    use crate::audit::testing::{record_at, ts};

    fn matching(filter: &Filter) -> Vec<String> {
        fixture()
            .iter()
            .filter(|r| filter.matches(r))
            .map(|r| format!("{}/{}", r.layer, r.op))
            .collect()
    }

    #[test]
    fn every_filter_narrows() {
        assert_eq!(matching(&Filter::default()).len(), 6);
        let f = |build: fn(&mut Filter)| {
            let mut filter = Filter::default();
            build(&mut filter);
            matching(&filter)
        };
        assert_eq!(
            f(|f| f.since = Some(ts(30))),
            ["file/rename", "daemon/maintenance-open", "file/unlink"]
        );
        assert_eq!(f(|f| f.until = Some(ts(10))), ["file/unlink", "exec/exec"]);
        assert_eq!(
            f(|f| {
                f.since = Some(ts(10));
                f.until = Some(ts(20));
            }),
            ["exec/exec", "process/kill"]
        );
        assert_eq!(
            f(|f| f.rules = vec!["containerd-binaries".into()]),
            ["file/unlink", "file/unlink"]
        );
        assert_eq!(
            f(|f| f.rules = vec!["runc-binary".into(), "runtime-daemons".into()]),
            ["process/kill", "file/rename"]
        );
        assert!(
            f(|f| f.rules = vec!["containerd".into()]).is_empty(),
            "rules match exactly"
        );
        assert_eq!(
            f(|f| f.decisions = vec![Decision::WouldBlock]),
            ["exec/exec"]
        );
        assert_eq!(
            f(|f| f.decisions = vec![Decision::Notice, Decision::AllowedMaintenance]),
            ["file/rename", "daemon/maintenance-open"]
        );
        assert_eq!(f(|f| f.ops = vec!["kill".into()]), ["process/kill"]);
        assert_eq!(f(|f| f.layers = vec![Layer::Exec]), ["exec/exec"]);
        assert_eq!(
            f(|f| f.layers = vec![Layer::File]),
            ["file/unlink", "file/rename", "file/unlink"]
        );
        // Owning package, or the package a command is about.
        assert_eq!(
            f(|f| f.packages = vec!["runc".into()]),
            ["file/rename", "daemon/maintenance-open"]
        );
        assert_eq!(
            f(|f| f.packages = vec!["containerd.io".into()]),
            ["file/unlink", "exec/exec", "file/unlink"]
        );
        // Actor: comm, exe or command line substrings.
        assert_eq!(f(|f| f.actors = vec!["pkill".into()]), ["process/kill"]);
        assert_eq!(
            f(|f| f.actors = vec!["remove containerd".into()]),
            ["exec/exec"]
        );
        assert_eq!(f(|f| f.actors = vec!["--unpack".into()]), ["file/rename"]);
        assert_eq!(
            f(|f| f.actors = vec!["rtgu".into()]),
            ["daemon/maintenance-open"]
        );
        // Criteria combine with AND.
        assert_eq!(
            f(|f| {
                f.layers = vec![Layer::File];
                f.decisions = vec![Decision::Blocked];
                f.since = Some(ts(1));
            }),
            ["file/unlink"]
        );
    }

    #[test]
    fn actor_filter_matches_exe() {
        let mut r = record_at(ts(0), "r");
        r.actor.exe = Some("/opt/olares/uninstall".into());
        let filter = Filter {
            actors: vec!["olares".into()],
            ..Filter::default()
        };
        assert!(filter.matches(&r));
    }

    #[test]
    fn parses_durations_timestamps_and_dates() {
        let now = ts(0);
        assert_eq!(parse_when("10m", now).unwrap(), ts(-10));
        assert_eq!(parse_when("2h", now).unwrap(), ts(-120));
        assert_eq!(parse_when("3d", now).unwrap(), ts(-3 * 24 * 60));
        assert_eq!(parse_when("1h30m", now).unwrap(), ts(-90));
        assert_eq!(parse_when("2026-11-26T15:00:00+01:00", now).unwrap(), ts(0));
        assert_eq!(
            parse_when("2026-11-26T14:00:00.5Z", now).unwrap(),
            ts(0) + time::Duration::milliseconds(500)
        );
        assert_eq!(parse_when("2026-11-26", now).unwrap(), ts(-14 * 60));
        for bad in ["", "yesterday", "10", "-5m", "2026-13-01", "10 parsecs"] {
            let err = parse_when(bad, now).unwrap_err().to_string();
            assert!(err.starts_with(&format!("invalid time '{bad}'")), "{err}");
        }
    }
}
