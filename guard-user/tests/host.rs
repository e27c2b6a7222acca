//! Honest degradation, on the kernel `cargo test` runs on.
//!
//! rtguard must never claim to enforce what the kernel doesn't enforce. On a kernel that
//! refuses BPF LSM programs (such as a locked-down host) it must say so in one line and
//! exit 3, or run degraded when asked. On a kernel that accepts them, the claim is checked
//! against the kernel: the protected file really can't be removed.

mod common;

use common::{
    netlink::{batch, nft_message, nla, send_netfilter, send_netfilter_in_pieces, string},
    *,
};

#[test]
fn rtguard_claims_enforcement_only_when_the_kernel_enforces() {
    if !is_root() {
        eprintln!("skipping: loading BPF programs needs root");
        return;
    }
    let s = scratch();
    let target = s.protected.to_str().unwrap();
    let audit = s.dir.path().join("audit.jsonl");
    let audit = audit.to_str().unwrap();
    match start_guard(&["--protect", target, "--audit-log", audit]) {
        Started::Ready(guard) => {
            assert_eq!(guard.status, "enforcing");
            let err = std::fs::remove_file(&s.protected)
                .expect_err("rtguard said enforcing, yet the protected file could be removed");
            assert_eq!(err.raw_os_error(), Some(1));
            assert_eq!(sha256(&s.protected), s.protected_sha256);
        }
        Started::Exited { status, stderr } => {
            assert_eq!(
                status.code(),
                Some(3),
                "exit status for unavailable enforcement\n{stderr}"
            );
            let first = stderr
                .lines()
                .find(|l| l.starts_with("rtguard: "))
                .unwrap_or_default();
            assert!(
                first.starts_with("rtguard: enforcement unavailable: "),
                "first line must say enforcement is unavailable, got:\n{stderr}"
            );
            assert!(
                !stderr.contains("enforcing"),
                "claimed to enforce:\n{stderr}"
            );
            degraded_run_is_honest(&s, audit);
            degraded_mode_judges_netfilter_batches(&s);
        }
    }
}

/// With --allow-degraded rtguard keeps running, says it is degraded, blocks nothing, and
/// records what it would have blocked, observed through syscall tracepoints.
fn degraded_run_is_honest(s: &Scratch, audit: &str) {
    let target = s.protected.to_str().unwrap();
    let guard = start_ready_guard(&[
        "--protect",
        target,
        "--allow-degraded",
        "--audit-log",
        audit,
    ]);
    assert!(
        guard.status.starts_with("degraded: "),
        "readiness status: {}",
        guard.status
    );
    // `rtguard status` says so too, with its "not enforcing" exit status.
    let (code, json) = guard.status_cmd();
    assert_eq!(code, 3, "{json}");
    assert!(json.contains(r#""state": "degraded""#), "{json}");

    // Nothing is blocked, but the attempt is observed and recorded as not enforced.
    let rm = sh(&format!("rm -f {target}"));
    assert!(rm.status.success(), "degraded mode must not block");
    assert!(!s.protected.exists());
    let record = || {
        std::fs::read_to_string(audit)
            .unwrap_or_default()
            .lines()
            .find(|l| l.contains(r#""decision":"would-block""#))
            .map(str::to_owned)
    };
    eventually("a would-block record for the rm", || record().is_some());
    let record: serde_json::Value = serde_json::from_str(&record().unwrap()).unwrap();
    assert_eq!(record["enforced"], false, "{record}");
    assert_eq!(record["op"], "unlink", "{record}");
    assert_eq!(record["rule"], "command-line-paths", "{record}");
    assert_eq!(record["target"]["path"], target, "{record}");
    let argv: Vec<&str> = record["actor"]["argv"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert_eq!(argv, ["rm", "-f", target], "{record}");

    let (status, log) = guard.stop();
    assert!(status.success(), "{log}");
    assert!(log.contains("running degraded"), "{log}");
    assert!(!log.contains("enforcing"), "claimed to enforce:\n{log}");
}

/// Degraded mode runs the netfilter layer's walk on the sender's memory at `sendmsg` and
/// `sendto`: a batch deleting a protected chain is recorded as it would be refused,
/// however its iovecs cut it, and nothing is refused. The table doesn't exist, so the
/// host's firewall is not touched: nf_tables answers ENOENT.
fn degraded_mode_judges_netfilter_batches(s: &Scratch) {
    let probe = unsafe { libc::socket(libc::AF_NETLINK, libc::SOCK_RAW, libc::NETLINK_NETFILTER) };
    if probe < 0 {
        eprintln!(
            "skipping the netfilter check: no NETLINK_NETFILTER here ({})",
            std::io::Error::last_os_error()
        );
        return;
    }
    unsafe { libc::close(probe) };
    let policy = s.dir.path().join("policy.toml");
    std::fs::write(
        &policy,
        format!(
            r#"environment = "host-test"
mode = "enforce"
description = "degraded mode's netfilter walk"

[[paths]]
name = "files"
description = "the scratch file"
paths = ["{}"]

[[netfilter]]
name = "docker-netfilter"
description = "Docker's chains"
chains = ["DOCKER*"]
tables = ["nat", "filter"]
"#,
            s.protected.display()
        ),
    )
    .unwrap();
    let audit = s.dir.path().join("netfilter-audit.jsonl");
    let guard = start_ready_guard(&[
        "--policy",
        policy.to_str().unwrap(),
        "--allow-degraded",
        "--audit-log",
        audit.to_str().unwrap(),
    ]);
    let (_, json) = guard.status_cmd();
    let status: serde_json::Value = serde_json::from_str(&json).unwrap();
    let netfilter = status["netfilter"].as_str().unwrap_or_default();
    assert!(
        netfilter.starts_with("observed, not enforced"),
        "status says of the netfilter layer: {netfilter:?}"
    );

    let table = format!("rtguard-host-test-{}", std::process::id());
    // NFT_MSG_DELCHAIN, NFTA_CHAIN_TABLE and NFTA_CHAIN_NAME.
    let delchain = |chain: &str| {
        let body: Vec<u8> = [(1u16, table.as_str()), (3, chain)]
            .iter()
            .flat_map(|(kind, value)| nla(*kind, &string(value)))
            .collect();
        batch(&nft_message(5, &body))
    };
    let docker = delchain("DOCKER");
    // Batch begin, the message's header, the table attribute, the chain's attribute
    // header, and two bytes into "DOCKER".
    let name = 20 + 20 + (4 + table.len() + 1).next_multiple_of(4) + 4 + 2;
    // One buffer (sendto); iovecs cut in a message header and in an attribute; one cut
    // in the protected name itself. None is refused.
    assert_eq!(send_netfilter(&docker), None);
    assert_eq!(send_netfilter_in_pieces(&docker, &[30, 45]), None);
    assert_eq!(send_netfilter_in_pieces(&docker, &[name]), None);
    // The user's own chain: no record.
    assert_eq!(send_netfilter_in_pieces(&delchain("mine"), &[30]), None);
    let records = || -> Vec<serde_json::Value> {
        std::fs::read_to_string(&audit)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains(r#""layer":"netfilter""#))
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    };
    eventually("three netfilter records", || records().len() >= 3);
    let (status, log) = guard.stop();
    assert!(status.success(), "{log}");
    let records = records();
    assert_eq!(records.len(), 3, "{records:#?}");
    for record in &records {
        assert_eq!(record["decision"], "would-block", "{record}");
        assert_eq!(record["enforced"], false, "{record}");
        assert_eq!(record["op"], "delete-chain", "{record}");
        assert_eq!(record["rule"], "docker-netfilter", "{record}");
        assert_eq!(
            record["target"]["netfilter"],
            format!("chain ip {table} DOCKER"),
            "{record}"
        );
    }
}
