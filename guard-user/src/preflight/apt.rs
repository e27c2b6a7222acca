//! apt's `DPkg::Pre-Install-Pkgs` hook protocol, version 3 (apt.conf(5)): before apt runs
//! dpkg, it writes `VERSION 3`, its configuration as `Key=Value` lines up to an empty line,
//! then one line per package action of the whole transaction:
//!
//! ```text
//! name old-version old-arch old-multiarch direction new-version new-arch new-multiarch action
//! containerd 1.6.20~ds1-1+b1 amd64 none > - - none **REMOVE**
//! x - - none < 1.0 all none /var/cache/apt/archives/x_1.0_all.deb
//! ```
//!
//! A version that is not there is `-` (and its arch `-`, its multi-arch `none`); the action
//! is a `.deb` path (unpack), `**CONFIGURE**` or `**REMOVE**` (removal or purge).

use std::io::BufRead;

/// What apt is about to do to one package.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PackageAction {
    /// The package name, without an architecture.
    pub package: String,
    /// The installed version, if any.
    pub installed: Option<String>,
    /// The version being installed, if any.
    pub candidate: Option<String>,
    pub action: Action,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Unpack this `.deb` (an install, upgrade, downgrade or reinstall).
    Unpack(String),
    Configure,
    /// Removal or purge.
    Remove,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum HookError {
    #[error("apt's hook input does not start with `VERSION 3` (got {0:?}); set DPkg::Tools::Options::<hook>::Version \"3\"")]
    Version(String),
    #[error("apt's hook input line {line}: {text:?} is not a package action")]
    Malformed { line: usize, text: String },
    #[error("reading apt's hook input: {0}")]
    Read(String),
}

/// Reads a version 3 hook input: the package actions, in apt's order.
pub fn parse(input: impl BufRead) -> Result<Vec<PackageAction>, HookError> {
    let mut lines = input.lines().enumerate();
    let mut next = || -> Result<Option<(usize, String)>, HookError> {
        match lines.next() {
            Some((n, Ok(text))) => Ok(Some((n + 1, text))),
            Some((_, Err(e))) => Err(HookError::Read(e.to_string())),
            None => Ok(None),
        }
    };
    match next()? {
        Some((_, first)) if first.trim() == "VERSION 3" => {}
        Some((_, first)) => return Err(HookError::Version(first)),
        None => return Err(HookError::Version(String::new())),
    }
    // The configuration space, up to an empty line.
    loop {
        match next()? {
            Some((_, text)) if text.is_empty() => break,
            Some(_) => continue,
            None => return Ok(Vec::new()),
        }
    }
    let mut actions = Vec::new();
    while let Some((line, text)) = next()? {
        if text.trim().is_empty() {
            continue;
        }
        let fields: Vec<&str> = text.split_whitespace().collect();
        let [name, old, _, _, _, new, _, _, action] = fields[..] else {
            return Err(HookError::Malformed { line, text });
        };
        let version = |v: &str| (v != "-").then(|| v.to_owned());
        actions.push(PackageAction {
            package: name.split(':').next().unwrap_or(name).to_owned(),
            installed: version(old),
            candidate: version(new),
            action: match action {
                "**REMOVE**" => Action::Remove,
                "**CONFIGURE**" => Action::Configure,
                path => Action::Unpack(path.to_owned()),
            },
        });
    }
    Ok(actions)
}

#[cfg(test)]
mod tests {
    use super::*;

    const INPUT: &str = "VERSION 3\n\
        APT::Architecture=amd64\n\
        DPkg::Pre-Install-Pkgs::=/usr/bin/rtguard apt-hook\n\
        \n\
        containerd 1.6.20~ds1-1+b1 amd64 same > - - none **REMOVE**\n\
        runc:amd64 1.1.5+ds1-1+deb12u1 amd64 same > - - none **REMOVE**\n\
        x - - none < 1.0 all none /tmp/x_1.0_all.deb\n\
        x - - none < 1.0 all none **CONFIGURE**\n";

    #[test]
    fn reads_every_action_of_the_plan() {
        let actions = parse(INPUT.as_bytes()).unwrap();
        assert_eq!(
            actions,
            [
                PackageAction {
                    package: "containerd".into(),
                    installed: Some("1.6.20~ds1-1+b1".into()),
                    candidate: None,
                    action: Action::Remove,
                },
                PackageAction {
                    package: "runc".into(),
                    installed: Some("1.1.5+ds1-1+deb12u1".into()),
                    candidate: None,
                    action: Action::Remove,
                },
                PackageAction {
                    package: "x".into(),
                    installed: None,
                    candidate: Some("1.0".into()),
                    action: Action::Unpack("/tmp/x_1.0_all.deb".into()),
                },
                PackageAction {
                    package: "x".into(),
                    installed: None,
                    candidate: Some("1.0".into()),
                    action: Action::Configure,
                },
            ]
        );
    }

    #[test]
    fn another_protocol_version_or_a_broken_line_is_an_error() {
        assert!(matches!(
            parse("VERSION 2\n\n".as_bytes()),
            Err(HookError::Version(_))
        ));
        assert!(matches!(
            parse("/var/cache/apt/archives/x.deb\n".as_bytes()),
            Err(HookError::Version(_))
        ));
        assert_eq!(
            parse("VERSION 3\n\ncontainerd 1.0 amd64\n".as_bytes()),
            Err(HookError::Malformed {
                line: 3,
                text: "containerd 1.0 amd64".into()
            })
        );
    }
}
