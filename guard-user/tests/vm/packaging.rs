//! The Debian package: what `dpkg -i` puts on a host.

use crate::common::*;

#[test]
fn the_deb_installs_the_binary_unit_and_policies() {
    expect_allowed("dpkg -i /root/debs/rtguard.deb");
    assert_eq!(dpkg_status("rtguard"), "install ok installed");
    let listed = sh("dpkg -L rtguard");
    let listed = String::from_utf8_lossy(&listed.stdout);
    for path in [
        "/usr/bin/rtguard",
        "/lib/systemd/system/rtguard.service",
        "/etc/apt/apt.conf.d/50rtguard",
        "/etc/rtguard/production.toml",
        "/etc/rtguard/staging.toml",
        "/etc/rtguard/development.toml",
        "/usr/share/doc/rtguard/audit-schema.md",
    ] {
        assert!(
            listed.lines().any(|l| l == path),
            "{path} not in the package:\n{listed}"
        );
    }
    let conffiles = std::fs::read_to_string("/var/lib/dpkg/info/rtguard.conffiles").unwrap();
    assert!(
        conffiles.contains("/etc/rtguard/production.toml"),
        "policies are conffiles: {conffiles}"
    );
    expect_verified(&["rtguard"]);
    expect_allowed("systemd-analyze verify /lib/systemd/system/rtguard.service");
    // The packaged binary checks the packaged policy.
    expect_allowed("/usr/bin/rtguard check /etc/rtguard/production.toml");
}
