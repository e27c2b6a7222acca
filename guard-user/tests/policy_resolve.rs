//! Resolution against fixture roots: a Docker-CE host (Docker's packages, merged /usr) and
//! a Debian host (the distribution's packages, split /lib), each with a fake dpkg
//! database, unit directories, binaries and runtime directories under a temporary root.

use std::{
    os::unix::fs::{symlink, MetadataExt as _},
    path::{Path, PathBuf},
    time::Duration,
};

use guard_common::{
    exec::{removal_script_rule, EXE_REMOVAL_SCRIPT},
    exec::{Reason, Verdict, NO_CLASS, OBJECT_REMOVAL_OPEN, OBJECT_WINDOW_OPEN},
    file::{
        package_id, FILE_PACKAGE_RECORD, FILE_REMOVABLE, FILE_UPGRADABLE, NO_PACKAGE, OPS_ALL,
        OPS_ANCESTOR,
    },
};
use guard_user::{
    policy::{self, Policy},
    resolve::{
        self, ruleset::ResolveOptions, units::UnitRole, ItemState, Origin, RpmTool, RuleSet,
    },
    tables::{
        maintenance::{self, MaintenanceState},
        KernelTables,
    },
};

mod common;

const PRODUCTION: &str = include_str!("../../policy/production.toml");

/// A root directory being built.
struct Fixture {
    dir: tempfile::TempDir,
}

impl Fixture {
    fn new() -> Self {
        Self {
            dir: tempfile::tempdir().expect("tempdir"),
        }
    }

    fn path(&self, inside: &str) -> PathBuf {
        self.dir.path().join(inside.trim_start_matches('/'))
    }

    fn file(&self, inside: &str, content: &str) -> &Self {
        let p = self.path(inside);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, content).unwrap();
        self
    }

    fn dir(&self, inside: &str) -> &Self {
        std::fs::create_dir_all(self.path(inside)).unwrap();
        self
    }

    fn link(&self, inside: &str, target: &str) -> &Self {
        let p = self.path(inside);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        symlink(target, &p).unwrap();
        self
    }

    /// A dpkg status stanza plus its list (and conffiles) in the info directory. Files the
    /// list names are created unless listed in `missing`.
    /// `stanza` is (name, architecture, state).
    fn package(
        &self,
        (name, arch, state): (&str, &str, &str),
        list_name: &str,
        files: &[&str],
        conffiles: &[&str],
        missing: &[&str],
    ) {
        let status = self.path("/var/lib/dpkg/status");
        let mut text = std::fs::read_to_string(&status).unwrap_or_default();
        text.push_str(&format!(
            "Package: {name}\nStatus: {} {state}\nPriority: optional\nArchitecture: {arch}\nVersion: 1.0-1\nDescription: test\n multi-line\n\n",
            if state == "installed" { "install ok" } else { "deinstall ok" }
        ));
        self.file("/var/lib/dpkg/status", &text);
        let mut list = String::from("/.\n");
        for f in files {
            for ancestor in Path::new(f)
                .ancestors()
                .skip(1)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .skip(1)
            {
                let line = format!("{}\n", ancestor.display());
                if !list.contains(&line) {
                    list.push_str(&line);
                }
            }
            list.push_str(&format!("{f}\n"));
            if !missing.contains(f) && !self.path(f).exists() {
                self.file(f, name);
            }
        }
        self.file(&format!("/var/lib/dpkg/info/{list_name}.list"), &list);
        if !conffiles.is_empty() {
            self.file(
                &format!("/var/lib/dpkg/info/{list_name}.conffiles"),
                &(conffiles.join("\n") + "\n"),
            );
        }
    }

    fn key(&self, inside: &str) -> (u64, u64) {
        let m = std::fs::symlink_metadata(self.path(inside)).unwrap();
        (m.dev(), m.ino())
    }

    fn resolve(&self, policy: &Policy) -> RuleSet {
        let options = ResolveOptions {
            root: self.dir.path().to_owned(),
            rpm: RpmTool::Disabled,
            ..Default::default()
        };
        resolve::resolve(policy, &options).unwrap_or_else(|e| panic!("resolve: {e}"))
    }
}

fn production() -> Policy {
    policy::parse("policy/production.toml", PRODUCTION).unwrap_or_else(|e| panic!("{}", e.render()))
}

/// Docker's packages on a merged-/usr system (`/lib` → `usr/lib`).
fn docker_ce_host() -> Fixture {
    let f = Fixture::new();
    f.dir("/usr/lib/systemd/system")
        .link("/lib", "usr/lib")
        .dir("/etc/systemd/system");
    f.package(
        ("containerd.io", "amd64", "installed"),
        "containerd.io",
        &[
            "/usr/bin/containerd",
            "/usr/bin/containerd-shim-runc-v2",
            "/usr/bin/ctr",
            "/usr/bin/runc",
            "/lib/systemd/system/containerd.service",
            "/etc/containerd/config.toml",
        ],
        &["/etc/containerd/config.toml"],
        &[],
    );
    f.package(
        ("docker-ce", "amd64", "installed"),
        "docker-ce",
        &[
            "/usr/bin/dockerd",
            "/usr/bin/docker-proxy",
            "/usr/bin/docker-init",
            "/lib/systemd/system/docker.service",
            "/lib/systemd/system/docker.socket",
        ],
        &[],
        // Damaged: dpkg says installed, the file is gone.
        &["/usr/bin/docker-init"],
    );
    f.package(
        ("docker-ce-cli", "amd64", "installed"),
        "docker-ce-cli:amd64",
        &["/usr/bin/docker"],
        &[],
        &[],
    );
    f.package(
        ("docker-buildx-plugin", "amd64", "config-files"),
        "docker-buildx-plugin",
        &[],
        &[],
        &[],
    );
    // Enablement, a drop-in, state, config and the socket.
    f.link(
        "/etc/systemd/system/multi-user.target.wants/docker.service",
        "/lib/systemd/system/docker.service",
    )
    .link(
        "/etc/systemd/system/multi-user.target.wants/containerd.service",
        "/lib/systemd/system/containerd.service",
    )
    .link(
        "/etc/systemd/system/sockets.target.wants/docker.socket",
        "/lib/systemd/system/docker.socket",
    )
    .file(
        "/etc/systemd/system/containerd.service.d/override.conf",
        "[Service]\nLimitNOFILE=infinity\n",
    )
    .file(
        "/etc/systemd/system/containerd.service.d/README",
        "not a drop-in",
    )
    .dir("/var/lib/containerd/io.containerd.snapshotter.v1.overlayfs")
    .dir("/var/lib/docker/volumes")
    .dir("/run/containerd")
    .dir("/etc/docker")
    .file("/usr/sbin/xtables-nft-multi", "multi")
    .link("/usr/sbin/iptables", "xtables-nft-multi")
    .link("/usr/sbin/ip6tables", "xtables-nft-multi")
    .link("/usr/sbin/iptables-restore", "xtables-nft-multi")
    .file("/usr/bin/apt-get", "apt")
    .file("/usr/bin/dpkg", "dpkg");
    std::os::unix::net::UnixListener::bind(f.path("/run/docker.sock")).unwrap();
    f
}

/// Debian's own packages on a split-/usr system: /lib and /usr/lib are different dirs.
fn debian_host() -> Fixture {
    let f = Fixture::new();
    f.dir("/lib/systemd/system")
        .dir("/usr/lib/systemd/system")
        .dir("/etc/systemd/system");
    f.package(
        ("containerd", "amd64", "installed"),
        "containerd",
        &[
            "/usr/bin/containerd",
            "/usr/bin/containerd-shim-runc-v2",
            "/usr/bin/ctr",
            "/lib/systemd/system/containerd.service",
            "/etc/containerd/config.toml",
        ],
        &["/etc/containerd/config.toml"],
        &[],
    );
    f.package(
        ("runc", "amd64", "installed"),
        "runc",
        &["/usr/sbin/runc"],
        &[],
        &[],
    );
    f.package(
        ("docker.io", "amd64", "installed"),
        "docker.io",
        &[
            "/usr/sbin/dockerd",
            "/usr/bin/docker",
            "/usr/sbin/docker-proxy",
            "/lib/systemd/system/docker.service",
            "/lib/systemd/system/docker.socket",
            "/etc/default/docker",
        ],
        &["/etc/default/docker"],
        &[],
    );
    f.link(
        "/etc/systemd/system/multi-user.target.wants/docker.service",
        "/lib/systemd/system/docker.service",
    )
    .dir("/var/lib/containerd")
    .dir("/var/lib/docker")
    .dir("/etc/docker")
    // A binary installed by hand next to the packaged one.
    .file("/usr/local/bin/containerd-stress", "static");
    f
}

fn report<'a>(set: &'a RuleSet, rule: &str) -> &'a resolve::RuleReport {
    let id = set.rules.iter().find(|r| r.name == rule).unwrap().id;
    &set.reports[id as usize - 1]
}

fn item<'a>(set: &'a RuleSet, rule: &str, name: &str) -> &'a resolve::ItemReport {
    report(set, rule)
        .items
        .iter()
        .find(|i| i.name == name)
        .unwrap_or_else(|| panic!("no item {name} in {rule}: {:?}", report(set, rule).items))
}

fn object<'a>(set: &'a RuleSet, path: &str) -> Option<&'a resolve::ResolvedObject> {
    set.objects.iter().find(|o| o.path == Path::new(path))
}

fn rule_name(set: &RuleSet, id: u32) -> &str {
    &set.rule(id).unwrap().name
}

#[test]
fn docker_ce_layout_packages() {
    let f = docker_ce_host();
    let set = f.resolve(&production());

    assert_eq!(
        item(&set, "docker-ce-packages", "containerd.io:amd64").state,
        ItemState::Installed
    );
    assert_eq!(
        item(&set, "docker-ce-packages", "docker-ce-cli:amd64").state,
        ItemState::Installed
    );
    assert_eq!(
        item(&set, "docker-ce-packages", "docker-buildx-plugin:amd64").state,
        ItemState::Partial
    );
    assert_eq!(
        item(&set, "docker-ce-packages", "docker-compose-plugin").state,
        ItemState::NotInstalled
    );
    for name in ["containerd", "runc", "docker.io"] {
        assert_eq!(
            item(&set, "distro-docker-packages", name).state,
            ItemState::NotInstalled
        );
    }

    let containerd = object(&set, "/usr/bin/containerd").expect("containerd protected");
    assert_eq!(rule_name(&set, containerd.rule), "docker-ce-packages");
    assert_eq!(
        containerd.origin,
        Origin::Package {
            package: "containerd.io".into(),
            conffile: false
        }
    );
    let (dev, ino) = f.key("/usr/bin/containerd");
    assert_eq!(containerd.key.ino, ino);
    assert_eq!(
        (containerd.key.major(), containerd.key.minor()),
        (libc::major(dev), libc::minor(dev))
    );
    let config = object(&set, "/etc/containerd/config.toml").unwrap();
    assert_eq!(
        config.origin,
        Origin::Package {
            package: "containerd.io".into(),
            conffile: true
        }
    );
    // The multi-arch list file name was found, and directories from the lists are not objects.
    assert!(object(&set, "/usr/bin/docker").is_some());
    assert!(object(&set, "/usr/bin").is_none() && object(&set, "/etc/containerd").is_none());
    // A listed but missing file is reported, not fatal.
    assert!(item(&set, "docker-ce-packages", "docker-ce:amd64")
        .detail
        .contains("1 listed paths missing"));
    assert!(
        set.warnings.iter().any(|w| w.message
            == "package docker-ce is installed but 1 of its 10 listed paths are missing"),
        "{:?}",
        set.warnings
    );
    // Each inode once.
    let mut keys: Vec<_> = set.objects.iter().map(|o| o.key).collect();
    keys.sort();
    keys.dedup();
    assert_eq!(keys.len(), set.objects.len());
}

#[test]
fn docker_ce_layout_units_trees_processes_and_commands() {
    let f = docker_ce_host();
    let set = f.resolve(&production());

    // Unit files are found once although /lib and /usr/lib are the same directory here.
    let unit_files: Vec<_> = set
        .objects
        .iter()
        .filter(|o| matches!(&o.origin, Origin::Unit { unit, role: UnitRole::UnitFile } if unit == "containerd.service"))
        .collect();
    assert_eq!(
        unit_files.len(),
        0,
        "the unit file itself belongs to the package rule that came first"
    );
    let units = item(&set, "runtime-units", "containerd.service");
    assert_eq!(units.state, ItemState::Present);
    assert!(
        units
            .detail
            .contains("unit file /usr/lib/systemd/system/containerd.service"),
        "{}",
        units.detail
    );
    assert!(units
        .detail
        .contains("drop-in /etc/systemd/system/containerd.service.d/override.conf"));
    assert!(!units.detail.contains("README"));
    assert!(units.detail.contains(
        "enablement link /etc/systemd/system/multi-user.target.wants/containerd.service"
    ));
    let wants = object(
        &set,
        "/etc/systemd/system/sockets.target.wants/docker.socket",
    )
    .unwrap();
    assert_eq!(rule_name(&set, wants.rule), "runtime-units");
    assert_eq!(
        wants.origin,
        Origin::Unit {
            unit: "docker.socket".into(),
            role: UnitRole::Enablement
        }
    );
    assert_eq!(
        wants.key.ino,
        f.key("/etc/systemd/system/sockets.target.wants/docker.socket")
            .1,
        "the link itself"
    );

    let trees: Vec<_> = set.trees.iter().map(|t| t.path.to_str().unwrap()).collect();
    assert_eq!(
        trees,
        [
            "/etc/containerd",
            "/etc/docker",
            "/var/lib/containerd",
            "/var/lib/docker",
            "/run/containerd"
        ]
    );
    assert!(
        set.trees
            .iter()
            .find(|t| t.path == Path::new("/etc/docker"))
            .unwrap()
            .allow_writes
    );
    assert!(
        !set.trees
            .iter()
            .find(|t| t.path == Path::new("/var/lib/docker"))
            .unwrap()
            .allow_writes
    );
    assert_eq!(set.tree_exclusions.len(), 2);
    let writers: Vec<_> = set
        .trusted_writers
        .iter()
        .map(|w| w.path.to_str().unwrap())
        .collect();
    assert_eq!(
        writers,
        [
            "/usr/bin/containerd",
            "/usr/bin/containerd-shim-runc-v2",
            "/usr/bin/dockerd",
            "/usr/bin/runc"
        ]
    );

    let socket = object(&set, "/run/docker.sock").unwrap();
    assert_eq!(rule_name(&set, socket.rule), "docker-socket");

    let exes: Vec<_> = set
        .processes
        .iter()
        .map(|p| p.path.to_str().unwrap())
        .collect();
    assert_eq!(
        exes,
        [
            "/usr/bin/containerd",
            "/usr/bin/containerd-shim-runc-v2",
            "/usr/bin/dockerd"
        ]
    );
    // These stand-ins are not Go programs; the VM tests run the real containerd.
    assert!(set.processes.iter().all(|p| !p.go_runtime));
    let daemons = set
        .rules
        .iter()
        .find(|r| r.name == "runtime-daemons")
        .unwrap();
    assert_eq!(
        daemons.signal_mask,
        (1 << 2) | (1 << 3) | (1 << 6) | (1 << 9) | (1 << 15) | (1 << 19)
    );
    assert_eq!(daemons.handled_mask, 0, "containerd does not handle SIGHUP");
    let dockerd = set
        .rules
        .iter()
        .find(|r| r.name == "docker-daemon")
        .unwrap();
    assert_eq!(dockerd.handled_mask, 1 << 1, "dockerd reloads on SIGHUP");
    assert_eq!(dockerd.signal_mask, daemons.signal_mask);

    // Binaries bound to classes by identity; a multi-call inode behind two classes is not.
    let apt = set
        .exe_classes
        .iter()
        .find(|e| e.path == Path::new("/usr/bin/apt-get"))
        .unwrap();
    assert_eq!(set.commands.class_name(apt.class), Some("apt"));
    assert!(set
        .exe_classes
        .iter()
        .all(|e| !e.path.starts_with("/usr/sbin")));
    // dockerd may rebuild its chains.
    let dockerd = set
        .trusted_callers
        .iter()
        .find(|t| t.path == Path::new("/usr/bin/dockerd"))
        .unwrap();
    let iptables = set.commands.class_of_binary("iptables").unwrap();
    assert_eq!(dockerd.classes, 1 << iptables);

    // Rule table for the kernel.
    let entries = set.rule_entries();
    assert_eq!(entries.len(), set.rules.len());
    assert!(entries.iter().all(|(_, e)| e.enforces()));
}

#[test]
fn trusted_callers_and_hard_links_reach_the_classifier() {
    let f = docker_ce_host();
    // A renamed hard link to apt-get is still apt by identity.
    std::fs::hard_link(f.path("/usr/bin/apt-get"), f.path("/tmp/x")).unwrap_or_else(|_| {
        std::fs::create_dir_all(f.path("/tmp")).unwrap();
        std::fs::hard_link(f.path("/usr/bin/apt-get"), f.path("/tmp/x")).unwrap();
    });
    let set = f.resolve(&production());
    let tables = &set.commands;
    let exe = std::fs::metadata(f.path("/tmp/x")).unwrap();
    let mut line = tables.command_line(&["x", "remove", "containerd.io"]);
    line.set_filename(b"/tmp/x", &tables.config.prefix_lens);
    assert_eq!(tables.classify(&line).class, NO_CLASS);
    set.annotate(&mut line, Some(&resolve::inode_key(&exe)), None);
    assert_eq!(tables.classify(&line).verdict(), Some(Verdict::Destructive));

    let dockerd = std::fs::metadata(f.path("/usr/bin/dockerd")).unwrap();
    let mut line = tables.command_line(&["iptables", "-t", "nat", "-F", "DOCKER"]);
    set.annotate(&mut line, None, Some(&resolve::inode_key(&dockerd)));
    let c = tables.classify(&line);
    assert_eq!(
        (c.verdict(), c.reason()),
        (Some(Verdict::Allowed), Some(Reason::TrustedCaller))
    );
}

#[test]
fn debian_layout() {
    let f = debian_host();
    let set = f.resolve(&production());

    for name in ["containerd:amd64", "runc:amd64", "docker.io:amd64"] {
        assert_eq!(
            item(&set, "distro-docker-packages", name).state,
            ItemState::Installed,
            "{name}"
        );
    }
    for name in ["containerd.io", "docker-ce"] {
        assert_eq!(
            item(&set, "docker-ce-packages", name).state,
            ItemState::NotInstalled
        );
    }
    assert!(set
        .warnings
        .iter()
        .any(|w| w.message == "rule `docker-ce-packages` resolves to nothing on this host"));

    let dockerd = object(&set, "/usr/sbin/dockerd").unwrap();
    assert_eq!(rule_name(&set, dockerd.rule), "distro-docker-packages");
    assert_eq!(
        object(&set, "/etc/default/docker").unwrap().origin,
        Origin::Package {
            package: "docker.io".into(),
            conffile: true
        }
    );
    // Split /usr: the unit file is under /lib.
    let units = item(&set, "runtime-units", "docker.service");
    assert!(
        units
            .detail
            .contains("unit file /lib/systemd/system/docker.service"),
        "{}",
        units.detail
    );
    assert!(units
        .detail
        .contains("enablement link /etc/systemd/system/multi-user.target.wants/docker.service"));
    // The hand-installed binary is caught by the glob.
    let stress = object(&set, "/usr/local/bin/containerd-stress").unwrap();
    assert_eq!(rule_name(&set, stress.rule), "runtime-binaries");
    assert_eq!(
        stress.origin,
        Origin::Path {
            pattern: "/usr/local/bin/containerd*".into()
        }
    );
    // Debian keeps runc in /usr/sbin: a trusted writer there too.
    assert!(set
        .trusted_writers
        .iter()
        .any(|w| w.path == Path::new("/usr/sbin/runc")));
    assert!(set
        .processes
        .iter()
        .any(|p| p.path == Path::new("/usr/bin/containerd")));
}

#[test]
fn a_glob_does_not_catch_the_files_of_an_unpack_in_progress() {
    // Mid-upgrade: dpkg has unpacked the new shim beside the old one and keeps a backup
    // until the unpack ends; rpm names its temporary files NAME;<8 hex digits>. Protected
    // at a reload in that moment, the backup could not be removed and the upgrade would
    // fail half-way.
    let f = debian_host();
    f.file("/usr/bin/containerd-shim-runc-v2.dpkg-new", "new")
        .file("/usr/bin/containerd-shim-runc-v2.dpkg-tmp", "old")
        .file("/usr/bin/containerd-shim-runc-v2;6a1f00c2", "rpm's")
        .file("/usr/bin/containerd-stress", "hand-installed");
    let set = f.resolve(&production());
    for transient in [
        "/usr/bin/containerd-shim-runc-v2.dpkg-new",
        "/usr/bin/containerd-shim-runc-v2.dpkg-tmp",
        "/usr/bin/containerd-shim-runc-v2;6a1f00c2",
    ] {
        assert!(
            object(&set, transient).is_none(),
            "{transient} is protected"
        );
    }
    // The glob still catches what it is for.
    let stress = object(&set, "/usr/bin/containerd-stress").unwrap();
    assert_eq!(rule_name(&set, stress.rule), "runtime-binaries");
}

/// A glob's walk takes an entry's identity from the directory listing where the
/// filesystem's listing gives what lstat(2) does (the VM suite checks the others); every
/// kind of entry must come out as lstat finds it.
#[test]
fn a_glob_protects_each_entry_as_lstat_finds_it() {
    let dir = tempfile::tempdir().unwrap();
    common::write_glob_entries(dir.path());
    // fifo, hard (one's inode), link, sub, two, sub/three.
    assert_eq!(common::glob_objects_are_what_lstat_finds(dir.path()), 6);
}

#[test]
fn masked_units_are_reported_not_protected() {
    let f = debian_host();
    f.link("/etc/systemd/system/containerd.service", "/dev/null");
    let set = f.resolve(&production());
    assert!(object(&set, "/etc/systemd/system/containerd.service").is_none());
    assert!(set.warnings.iter().any(|w| w.message
        == "containerd.service is masked here (/etc/systemd/system/containerd.service)"));
}

#[test]
fn symlinked_paths_protect_the_link_and_its_target_inside_the_root() {
    let f = Fixture::new();
    f.file("/opt/containerd/bin/containerd", "real").link(
        "/usr/local/bin/containerd",
        "/opt/containerd/bin/containerd",
    );
    let policy = policy::parse(
        "p.toml",
        "environment = \"t\"\nmode = \"enforce\"\n[[paths]]\nname = \"bin\"\npaths = [\"/usr/local/bin/containerd\"]\n",
    )
    .unwrap();
    let set = f.resolve(&policy);
    let paths: Vec<_> = set
        .objects
        .iter()
        .map(|o| o.path.to_str().unwrap())
        .collect();
    assert_eq!(
        paths,
        [
            "/usr/local/bin/containerd",
            "/opt/containerd/bin/containerd"
        ]
    );
    assert_eq!(
        set.objects[1].key.ino,
        f.key("/opt/containerd/bin/containerd").1
    );
}

#[test]
fn an_empty_root_resolves_to_warnings_not_errors() {
    let f = Fixture::new();
    let set = f.resolve(&production());
    assert!(set.objects.is_empty() && set.trees.is_empty());
    assert!(set.package_databases.is_empty());
    let nothing: Vec<_> = set
        .warnings
        .iter()
        .filter(|w| w.message.ends_with("resolves to nothing on this host"))
        .collect();
    // Every rule but the netfilter one (exec layer only).
    assert_eq!(nothing.len(), set.rules.len() - 1);
    assert_eq!(nothing[0].location.line, 44);
}

#[test]
fn list_files_without_a_status_file_still_resolve() {
    let f = Fixture::new();
    f.file(
        "/var/lib/dpkg/info/runc.list",
        "/.\n/usr\n/usr/sbin\n/usr/sbin/runc\n",
    )
    .file("/usr/sbin/runc", "runc");
    let set = f.resolve(&production());
    assert!(set.package_databases[0].starts_with("dpkg (no status file"));
    assert_eq!(
        item(&set, "distro-docker-packages", "runc").state,
        ItemState::Installed
    );
    assert!(object(&set, "/usr/sbin/runc").is_some());
}

#[test]
fn rpm_databases_are_read_through_rpm_or_reported_unavailable() {
    let f = Fixture::new();
    f.dir("/var/lib/rpm").file("/usr/bin/containerd", "bin");
    // No rpm to read the database with: reported, not fatal.
    let set = f.resolve(&production());
    assert!(
        set.package_databases
            .iter()
            .any(|d| d.starts_with("rpm: unavailable")),
        "{:?}",
        set.package_databases
    );
    assert_eq!(
        item(&set, "docker-ce-packages", "containerd.io").state,
        ItemState::Unavailable
    );

    // A stand-in for rpm that knows one package.
    let fake = f.path("/fake-rpm");
    std::fs::write(
        &fake,
        "#!/bin/sh\ncase \"$*\" in\n*-qa*containerd.io) printf 'containerd.io\\t1.7.27-3.1.el9\\tx86_64\\n' ;;\n\
         *-qa*) ;;\n*-ql*) echo /usr/bin/containerd ;;\nesac\n",
    )
    .unwrap();
    std::fs::set_permissions(&fake, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let options = ResolveOptions {
        root: f.dir.path().to_owned(),
        rpm: RpmTool::Path(fake),
        ..Default::default()
    };
    let set = resolve::resolve(&production(), &options).unwrap();
    let found = item(&set, "docker-ce-packages", "containerd.io");
    assert_eq!(found.state, ItemState::Installed);
    assert!(
        found
            .detail
            .starts_with("rpm 1.7.27-3.1.el9.x86_64: 1 files protected"),
        "{}",
        found.detail
    );
    assert_eq!(
        item(&set, "docker-ce-packages", "docker-ce").state,
        ItemState::NotInstalled
    );
}

#[test]
fn a_missing_root_is_an_error() {
    let options = ResolveOptions {
        root: PathBuf::from("/nonexistent/rtguard-root"),
        rpm: RpmTool::Disabled,
        ..Default::default()
    };
    let err = resolve::resolve(&production(), &options).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("cannot use /nonexistent/rtguard-root as the root: "),
        "{err}"
    );
}

#[test]
fn shipped_policies_check_against_this_host() {
    for (name, text) in [
        ("policy/production.toml", PRODUCTION),
        (
            "policy/staging.toml",
            include_str!("../../policy/staging.toml"),
        ),
        (
            "policy/development.toml",
            include_str!("../../policy/development.toml"),
        ),
    ] {
        let policy = policy::parse(name, text).unwrap_or_else(|e| panic!("{}", e.render()));
        let set = resolve::resolve(&policy, &ResolveOptions::default())
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(set.rules.len(), policy.rules.len());
    }
}

#[test]
fn a_link_is_protected_with_the_directories_holding_it_even_when_it_dangles() {
    let f = debian_host();
    // An enablement link whose unit is gone (`dpkg -r` leaves it until purge).
    let link = "/etc/systemd/system/multi-user.target.wants/containerd.service";
    f.link(link, "/nonexistent/containerd.service");
    let set = f.resolve(&production());
    let tables = KernelTables::from_rule_set(
        &set,
        &MaintenanceState::default(),
        time::OffsetDateTime::now_utc(),
    )
    .unwrap_or_else(|e| panic!("a dangling link fails the tables: {e}"));
    let protection = |inside: &str| {
        let key = resolve::inode_key(&std::fs::symlink_metadata(f.path(inside)).unwrap());
        tables.inodes.get(&key).map(|p| p.ops)
    };
    assert_eq!(protection(link), Some(OPS_ALL));
    assert_eq!(
        protection("/etc/systemd/system/multi-user.target.wants"),
        Some(OPS_ANCESTOR),
        "`mv multi-user.target.wants …` would disable the unit"
    );
}

// ---- Maintenance windows on the resolved tables -------------------------------------------

const T0: time::OffsetDateTime = time::macros::datetime!(2026-11-27 10:00 UTC);

/// production.toml with one package group upgraded only in a maintenance window.
fn windowed(group_packages: &str, windowed_packages: &str) -> Policy {
    let text = PRODUCTION.replacen(
        &format!("packages = {group_packages}\nupgrade = \"allow\""),
        &format!("packages = {windowed_packages}\nupgrade = \"window\""),
        1,
    );
    assert_ne!(text, PRODUCTION, "the group is in production.toml");
    policy::parse("windowed.toml", &text).unwrap_or_else(|e| panic!("{}", e.render()))
}

/// Debian's packages (containerd, runc, docker.io) in a window group.
fn windowed_debian() -> Policy {
    let packages = r#"["containerd", "runc", "docker.io"]"#;
    windowed(packages, packages)
}

fn windows(open: &[(&str, bool)]) -> MaintenanceState {
    let mut state = MaintenanceState::default();
    for (package, allow_removal) in open {
        state.open(
            package,
            *allow_removal,
            Duration::from_secs(3600),
            "test",
            "root",
            T0,
        );
    }
    state
}

/// (verdict, reason, name of the object charged) as the kernel would classify `argv`.
fn classify_in(
    set: &RuleSet,
    windows: &MaintenanceState,
    now: time::OffsetDateTime,
    argv: &[&str],
) -> (Verdict, Reason, Option<String>) {
    let commands = maintenance::commands_at(set, windows, now);
    let c = commands.classify(&commands.command_line(argv));
    (
        c.verdict().unwrap(),
        c.reason().unwrap(),
        commands.object_name(c.object).map(|o| o.name.clone()),
    )
}

/// The window bits of every exec-table entry for `object`, per class.
fn exec_flags(tables: &KernelTables, object: &str) -> Vec<u32> {
    let flags: Vec<u32> = tables
        .exec
        .commands
        .objects
        .values()
        .filter(|e| tables.legend.objects[e.object as usize].name == object)
        .map(|e| e.flags)
        .collect();
    assert!(!flags.is_empty(), "{object} is in the exec tables");
    flags
}

/// The file-layer flags of the object at `inside` (the link itself for a symlink).
fn file_flags(f: &Fixture, tables: &KernelTables, inside: &str) -> u32 {
    let key = resolve::inode_key(&std::fs::symlink_metadata(f.path(inside)).unwrap());
    tables
        .inodes
        .get(&key)
        .unwrap_or_else(|| panic!("{inside} is protected"))
        .flags
}

#[test]
fn a_window_for_one_package_opens_its_installs_and_nothing_else() {
    use Reason::*;
    use Verdict::*;
    let f = debian_host();
    let set = f.resolve(&windowed_debian());
    let none = MaintenanceState::default();
    let runc = windows(&[("runc", false)]);

    let reinstall_runc = ["apt-get", "install", "--reinstall", "runc"];
    assert_eq!(
        classify_in(&set, &none, T0, &reinstall_runc),
        (Destructive, UpgradeOutsideWindow, Some("runc".into()))
    );
    assert_eq!(
        classify_in(&set, &runc, T0, &reinstall_runc),
        (AllowedAsUpgrade, UpgradeInWindow, Some("runc".into()))
    );
    assert_eq!(
        classify_in(
            &set,
            &runc,
            T0,
            &[
                "dpkg",
                "-i",
                "/root/debs/runc_1.1.5+ds1-1+deb12u1_amd64.deb"
            ]
        ),
        (AllowedAsUpgrade, UpgradeInWindow, Some("runc".into()))
    );
    // The window is runc's, not containerd's.
    for argv in [
        &["apt-get", "install", "--reinstall", "containerd"][..],
        &["apt-get", "install", "--reinstall", "runc", "containerd"],
        &[
            "dpkg",
            "-i",
            "runc_1.1.5_amd64.deb",
            "containerd_1.6.20_amd64.deb",
        ],
    ] {
        assert_eq!(
            classify_in(&set, &runc, T0, argv),
            (Destructive, UpgradeOutsideWindow, Some("containerd".into())),
            "{argv:?}"
        );
    }
    // An upgrade window is no removal window; bare verbs and whole-system upgrades are
    // not opened by a window for one package.
    assert_eq!(
        classify_in(&set, &runc, T0, &["dpkg", "-r", "runc"]),
        (Destructive, ProtectedObject, Some("runc".into()))
    );
    assert_eq!(
        classify_in(&set, &runc, T0, &["apt-get", "upgrade"]).1,
        UpgradeOutsideWindow
    );
    assert_eq!(
        classify_in(&set, &runc, T0, &["iptables", "-F"]),
        (Destructive, BareVerb, None)
    );
    // Expired: as without it.
    assert_eq!(
        classify_in(&set, &runc, T0 + Duration::from_secs(3600), &reinstall_runc).1,
        UpgradeOutsideWindow
    );

    // What the loader writes: runc's entries carry the bit, the others don't, and the
    // file layer lets dpkg replace runc's files only.
    let tables = KernelTables::from_rule_set(&set, &runc, T0).unwrap();
    assert!(exec_flags(&tables, "runc")
        .iter()
        .all(|&f| f == OBJECT_WINDOW_OPEN));
    for other in [
        "containerd",
        "docker.io",
        "containerd.io",
        "containerd.service",
    ] {
        assert!(
            exec_flags(&tables, other).iter().all(|&f| f == 0),
            "{other}"
        );
    }
    assert_eq!(file_flags(&f, &tables, "/usr/sbin/runc"), FILE_UPGRADABLE);
    assert_eq!(file_flags(&f, &tables, "/usr/bin/containerd"), 0);
    let closed = KernelTables::from_rule_set(&set, &none, T0).unwrap();
    assert!(exec_flags(&closed, "runc").iter().all(|&f| f == 0));
    assert_eq!(file_flags(&f, &closed, "/usr/sbin/runc"), 0);
}

#[test]
fn a_removal_window_opens_its_package_and_the_units_it_ships_only() {
    use Reason::*;
    use Verdict::*;
    let f = debian_host();
    let set = f.resolve(&windowed_debian());
    assert_eq!(
        set.unit_packages.get("containerd.service"),
        Some(&["containerd".to_owned()].into())
    );
    assert_eq!(
        set.unit_packages.get("docker.socket"),
        Some(&["docker.io".to_owned()].into())
    );
    let containerd = windows(&[("containerd", true)]);

    for argv in [
        &["dpkg", "-r", "containerd"][..],
        &[
            "dpkg",
            "--status-fd",
            "23",
            "--no-triggers",
            "--force-depends",
            "--remove",
            "containerd:amd64",
        ],
        &["apt-get", "purge", "-y", "containerd"],
    ] {
        assert_eq!(
            classify_in(&set, &containerd, T0, argv),
            (AllowedAsUpgrade, RemovalInWindow, Some("containerd".into())),
            "{argv:?}"
        );
    }
    // Its prerm stops the service it ships; Docker's stay protected.
    for argv in [
        &["deb-systemd-invoke", "stop", "containerd.service"][..],
        &["systemctl", "stop", "containerd"],
    ] {
        assert_eq!(
            classify_in(&set, &containerd, T0, argv),
            (
                AllowedAsUpgrade,
                RemovalInWindow,
                Some("containerd.service".into())
            ),
            "{argv:?}"
        );
    }
    assert_eq!(
        classify_in(
            &set,
            &containerd,
            T0,
            &["systemctl", "stop", "containerd", "docker"]
        ),
        (Destructive, ProtectedObject, Some("docker.service".into()))
    );
    // Another package on the same command line, or a word that reaches past the names.
    assert_eq!(
        classify_in(
            &set,
            &containerd,
            T0,
            &["apt-get", "remove", "containerd", "runc"]
        ),
        (Destructive, ProtectedObject, Some("runc".into()))
    );
    assert_eq!(
        classify_in(&set, &containerd, T0, &["dpkg", "--remove", "--pending"]),
        (Destructive, AllObjects, None)
    );
    assert_eq!(
        classify_in(&set, &containerd, T0, &["apt-get", "remove", "container*"]),
        (Destructive, Pattern, None)
    );
    assert_eq!(
        classify_in(
            &set,
            &containerd,
            T0,
            &["dpkg", "-r", "--force-remove-protected", "containerd"]
        ),
        (Destructive, HitsAll, None)
    );
    // The same window without --allow-removal.
    let upgrade_only = windows(&[("containerd", false)]);
    assert_eq!(
        classify_in(&set, &upgrade_only, T0, &["dpkg", "-r", "containerd"]).1,
        ProtectedObject
    );
    assert_eq!(
        classify_in(
            &set,
            &upgrade_only,
            T0,
            &["systemctl", "stop", "containerd"]
        )
        .1,
        ProtectedObject
    );

    let tables = KernelTables::from_rule_set(&set, &containerd, T0).unwrap();
    assert!(exec_flags(&tables, "containerd")
        .iter()
        .all(|&f| f == OBJECT_WINDOW_OPEN | OBJECT_REMOVAL_OPEN));
    assert!(exec_flags(&tables, "containerd.service")
        .iter()
        .all(|&f| f == OBJECT_REMOVAL_OPEN));
    for other in ["runc", "docker.io", "docker.service", "docker.socket"] {
        assert!(
            exec_flags(&tables, other).iter().all(|&f| f == 0),
            "{other}"
        );
    }
    assert_eq!(
        file_flags(&f, &tables, "/usr/bin/containerd"),
        FILE_UPGRADABLE | FILE_REMOVABLE
    );
    assert_eq!(
        file_flags(
            &f,
            &tables,
            "/etc/systemd/system/multi-user.target.wants/docker.service"
        ),
        0,
        "Docker's enablement stays protected"
    );
}

#[test]
fn a_removal_window_lets_dpkg_remove_the_files_of_a_group_that_denies_upgrades() {
    let f = debian_host();
    let text = PRODUCTION.replacen(
        "packages = [\"containerd\", \"runc\", \"docker.io\"]\nupgrade = \"allow\"",
        "packages = [\"containerd\", \"runc\", \"docker.io\"]\nupgrade = \"deny\"",
        1,
    );
    let set = f.resolve(&policy::parse("deny.toml", &text).unwrap());
    let tables = KernelTables::from_rule_set(&set, &windows(&[("runc", false)]), T0).unwrap();
    assert_eq!(
        file_flags(&f, &tables, "/usr/sbin/runc"),
        0,
        "upgrades are denied"
    );
    let removal = windows(&[("runc", true)]);
    let tables = KernelTables::from_rule_set(&set, &removal, T0).unwrap();
    assert_eq!(
        file_flags(&f, &tables, "/usr/sbin/runc"),
        FILE_UPGRADABLE | FILE_REMOVABLE
    );
    assert_eq!(
        classify_in(&set, &removal, T0, &["dpkg", "-r", "runc"]).1,
        Reason::RemovalInWindow
    );
    assert_eq!(
        classify_in(&set, &removal, T0, &["dpkg", "-i", "runc_1.1.5_amd64.deb"]).1,
        Reason::UpgradeDenied
    );
}

#[test]
fn a_window_for_a_package_under_a_wildcard_opens_that_package_only() {
    use Reason::*;
    use Verdict::*;
    let f = docker_ce_host();
    let policy = windowed(
        r#"[
    "containerd.io",
    "docker-ce",
    "docker-ce-cli",
    "docker-buildx-plugin",
    "docker-compose-plugin",
]"#,
        r#"["containerd.io", "docker-*"]"#,
    );
    let set = f.resolve(&policy);
    let docker_ce = windows(&[("docker-ce:amd64", true)]);
    assert_eq!(
        classify_in(
            &set,
            &docker_ce,
            T0,
            &["apt-get", "install", "--reinstall", "docker-ce"]
        ),
        (AllowedAsUpgrade, UpgradeInWindow, Some("docker-ce".into()))
    );
    assert_eq!(
        classify_in(&set, &docker_ce, T0, &["dpkg", "-r", "docker-ce:amd64"]),
        (AllowedAsUpgrade, RemovalInWindow, Some("docker-ce".into()))
    );
    for argv in [
        &["apt-get", "install", "--reinstall", "docker-ce-cli"][..],
        &["dpkg", "-r", "docker-ce", "docker-compose-plugin"],
    ] {
        let (verdict, _, object) = classify_in(&set, &docker_ce, T0, argv);
        assert_eq!(
            (verdict, object),
            (Destructive, Some("docker-*".into())),
            "{argv:?}"
        );
    }
    let none = MaintenanceState::default();
    assert_eq!(
        classify_in(
            &set,
            &none,
            T0,
            &["apt-get", "install", "--reinstall", "docker-ce"]
        ),
        (Destructive, UpgradeOutsideWindow, Some("docker-*".into()))
    );
    // docker.service ships in docker-ce: its window lets the prerm stop it.
    assert_eq!(
        classify_in(
            &set,
            &docker_ce,
            T0,
            &["systemctl", "stop", "docker.service"]
        )
        .1,
        RemovalInWindow
    );
}

fn inode(f: &Fixture, tables: &KernelTables, inside: &str) -> Option<guard_common::FileProtection> {
    let key = resolve::inode_key(&std::fs::symlink_metadata(f.path(inside)).unwrap());
    tables.inodes.get(&key).copied()
}

#[test]
fn configuration_is_editable_and_only_what_was_there_at_first_is_kept() {
    use guard_common::file::{FILE_EDITABLE, OPS_REMOVE};

    let f = debian_host();
    f.dir("/etc/containerd/certs.d/registry")
        .file(
            "/etc/containerd/certs.d/registry/hosts.toml",
            "server = \"x\"\n",
        )
        .file("/etc/docker/daemon.json", "{}\n");
    let set = f.resolve(&production());
    let tables = KernelTables::from_rule_set(
        &set,
        &MaintenanceState::default(),
        time::OffsetDateTime::now_utc(),
    )
    .unwrap();

    // The conffile and the files present are editable: removal refused, edits pass.
    for file in [
        "/etc/containerd/config.toml",
        "/etc/containerd/certs.d/registry/hosts.toml",
        "/etc/docker/daemon.json",
    ] {
        let p = inode(&f, &tables, file).unwrap_or_else(|| panic!("{file} is protected"));
        assert_eq!(p.ops, OPS_REMOVE, "{file}");
        assert_ne!(p.flags & FILE_EDITABLE, 0, "{file}");
    }
    // Directories present can't be removed or moved; the roots neither, and no walk runs.
    let certs = inode(&f, &tables, "/etc/containerd/certs.d").unwrap();
    assert_eq!(certs.ops & OPS_ANCESTOR, OPS_ANCESTOR);
    let root = inode(&f, &tables, "/etc/containerd").unwrap();
    assert_eq!(root.ops, OPS_ANCESTOR);
    let root_key = resolve::inode_key(&std::fs::metadata(f.path("/etc/containerd")).unwrap());
    assert!(
        !tables.trees.contains_key(&root_key),
        "a config tree is not walked"
    );
    assert!(
        item(&set, "runtime-config", "/etc/containerd")
            .detail
            .starts_with("configuration: 4 entries present"),
        "{}",
        item(&set, "runtime-config", "/etc/containerd").detail
    );

    // Later: a swap file appears and config.toml is replaced (a new inode). Resolving with
    // the first baseline protects the new config.toml but not the swap file.
    f.file("/etc/containerd/.config.toml.swp", "swap");
    let config = f.path("/etc/containerd/config.toml");
    std::fs::remove_file(&config).unwrap();
    std::fs::write(&config, "version = 3\n").unwrap();
    let options = ResolveOptions {
        root: f.dir.path().to_owned(),
        rpm: RpmTool::Disabled,
        editable_baseline: set.editable_baseline.clone(),
    };
    let again = resolve::resolve(&production(), &options).unwrap();
    let tables = KernelTables::from_rule_set(
        &again,
        &MaintenanceState::default(),
        time::OffsetDateTime::now_utc(),
    )
    .unwrap();
    assert!(inode(&f, &tables, "/etc/containerd/config.toml").is_some());
    assert!(inode(&f, &tables, "/etc/containerd/.config.toml.swp").is_none());
    assert_eq!(again.editable_baseline, set.editable_baseline);

    // Resolved afresh (a new daemon), the swap file is configuration too.
    let fresh = f.resolve(&production());
    assert!(object(&fresh, "/etc/containerd/.config.toml.swp").is_some());
}

#[test]
fn exclusions_below_a_tree_hold_by_name_even_before_they_exist() {
    let f = debian_host();
    let set = f.resolve(&production());
    let names: Vec<_> = set
        .excluded_children
        .iter()
        .map(|c| c.path.to_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "/var/lib/docker/volumes",
            "/var/lib/docker/overlay2",
            "/var/lib/containerd/io.containerd.snapshotter.v1.overlayfs"
        ]
    );
    let docker = resolve::inode_key(&std::fs::metadata(f.path("/var/lib/docker")).unwrap());
    assert!(set
        .excluded_children
        .iter()
        .all(|c| c.path.parent().unwrap() != Path::new("/var/lib/docker") || c.tree == docker));
    assert_eq!(
        item(&set, "runtime-state", "/var/lib/docker/volumes (excluded)").detail,
        "excluded by name: holds once it exists"
    );
    let tables = KernelTables::from_rule_set(
        &set,
        &MaintenanceState::default(),
        time::OffsetDateTime::now_utc(),
    )
    .unwrap();
    let key = guard_common::file::ExcludedChildKey::new(docker, b"volumes").unwrap();
    assert!(tables.excluded_children.contains_key(&key));
}

/// dpkg's records of a protected package and the status file are protected with it:
/// the records carry the package, so an upgrade and a removal window treat them as its
/// files; the status file is always dpkg's to rewrite and never to remove. The package's
/// `prerm` is a removal script, until a window allows the package's removal.
#[test]
fn the_dpkg_database_is_protected_with_the_packages() {
    let f = debian_host();
    f.file("/var/lib/dpkg/info/containerd.prerm", "#!/bin/sh\n");
    f.file("/var/lib/dpkg/info/containerd.io.list", "/.\n");
    let text = PRODUCTION.replacen(
        "packages = [\"containerd\", \"runc\", \"docker.io\"]\nupgrade = \"allow\"",
        "packages = [\"containerd\", \"runc\", \"docker.io\"]\nupgrade = \"deny\"",
        1,
    );
    let set = f.resolve(&policy::parse("deny.toml", &text).unwrap());
    let origin = |inside: &str| {
        set.objects
            .iter()
            .find(|o| o.path == Path::new(inside))
            .map(|o| o.origin.clone())
    };
    assert_eq!(
        origin("/var/lib/dpkg/status"),
        Some(Origin::PackageRecord { package: None })
    );
    assert_eq!(
        origin("/var/lib/dpkg/info/containerd.list"),
        Some(Origin::PackageRecord {
            package: Some("containerd".to_owned())
        })
    );
    assert_eq!(origin("/var/lib/dpkg/info/containerd.io.list"), None);

    let protection = |tables: &KernelTables, inside: &str| {
        let key = resolve::inode_key(&std::fs::symlink_metadata(f.path(inside)).unwrap());
        tables.inodes[&key]
    };
    let none = MaintenanceState::default();
    let tables = KernelTables::from_rule_set(&set, &none, T0).unwrap();
    let status = protection(&tables, "/var/lib/dpkg/status");
    assert_eq!(status.flags, FILE_UPGRADABLE | FILE_PACKAGE_RECORD);
    assert_eq!(status.package, NO_PACKAGE);
    let list = protection(&tables, "/var/lib/dpkg/info/containerd.list");
    assert_eq!(list.flags, FILE_PACKAGE_RECORD, "upgrades are denied");
    assert_eq!(list.package, package_id(b"containerd"));
    assert_eq!(
        protection(&tables, "/usr/bin/containerd").package,
        package_id(b"containerd")
    );
    let prerm = resolve::inode_key(
        &std::fs::metadata(f.path("/var/lib/dpkg/info/containerd.prerm")).unwrap(),
    );
    let class = tables.exec.exe_classes[&prerm];
    assert_eq!(class & EXE_REMOVAL_SCRIPT, EXE_REMOVAL_SCRIPT);
    assert!(removal_script_rule(class).is_some());

    let removal = windows(&[("containerd", true)]);
    let tables = KernelTables::from_rule_set(&set, &removal, T0).unwrap();
    assert_eq!(
        protection(&tables, "/var/lib/dpkg/info/containerd.list").flags,
        FILE_UPGRADABLE | FILE_REMOVABLE | FILE_PACKAGE_RECORD
    );
    assert_eq!(
        protection(&tables, "/var/lib/dpkg/status").flags,
        FILE_UPGRADABLE | FILE_PACKAGE_RECORD,
        "never removable"
    );
    assert!(!tables.exec.exe_classes.contains_key(&prerm));
}
