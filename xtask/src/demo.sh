#!/bin/sh
# The seed incident, replayed against rtguard in the VM: what the uninstaller ran, what
# happened, and what the audit log says. Run by `cargo xtask demo` as the guest's story.

LOG=/var/log/rtguard/audit.jsonl
say() { printf '\n=== %s\n' "$*"; }
step() {
    printf '\n$ %s\n' "$1"
    sh -c "$1" > /tmp/step.out 2>&1
    status=$?
    sed 's/^/    /' /tmp/step.out | head -8
    printf '    (exit status %s)\n' "$status"
    if [ -s "$LOG" ] && [ "$(wc -l < "$LOG")" -gt "$seen" ]; then
        printf '    audit:\n'
        rtguard audit --no-rotated --since 1h "$LOG" | tail -n +2 | tail -n "$(( $(wc -l < "$LOG") - seen ))" | sed 's/^/      /'
        seen=$(wc -l < "$LOG")
    fi
}

say "A Debian host with containerd and runc from the archive, containerd running"
dpkg-query -W -f='    ${Package} ${Version} ${db:Status-Abbrev}\n' containerd runc
ls -l /usr/bin/containerd /usr/sbin/runc /lib/systemd/system/containerd.service | sed 's/^/    /'
/usr/bin/containerd > /var/log/containerd.log 2>&1 &
for m in nf_tables nft_compat nft_chain_nat iptable_nat xt_addrtype; do modprobe $m 2>/dev/null; done
iptables -t nat -N DOCKER && iptables -t nat -A DOCKER -d 172.17.0.1/32 -j RETURN
printf '    containerd pid %s; Docker NAT chain:\n' "$(pidof containerd)"
iptables -t nat -S DOCKER | sed 's/^/      /'
iptables -t nat -S DOCKER > /tmp/docker-chain.before

say "rtguard starts with the production policy, pinned (as the systemd unit runs it)"
rtguard run --policy /etc/rtguard/production.toml --pin > /var/log/rtguard.stderr 2>&1 &
i=0
until rtguard status > /dev/null 2>&1 || [ $i -ge 600 ]; do sleep 0.2; i=$((i + 1)); done
rtguard status | sed 's/^/    /'
seen=$(wc -l < "$LOG")

say "The uninstaller runs, as root: files first"
step 'rm -rf /usr/bin/containerd* /usr/bin/ctr'
step 'rm -rf /lib/systemd/system/containerd.service'
step 'rm -rf /etc/containerd'
step 'mv /usr/sbin/runc /tmp/runc.bak'
step 'cp /bin/true /usr/sbin/runc'

say "then the services, the packages, the processes and the firewall"
step 'systemctl stop containerd'
step 'systemctl disable containerd'
step 'apt-get remove -y containerd'
step 'dpkg --purge --force-all containerd runc'
step 'pkill -9 containerd'
step 'iptables -t nat -F'
step 'iptables -t nat -X DOCKER'
step 'nft flush ruleset'

say "and it tries to take the guard down first"
step 'kill -9 $(pidof rtguard)'
step 'rm -rf /sys/fs/bpf/rtguard'

say "Legitimate maintenance still works: reinstalling containerd through dpkg"
step "dpkg -i /root/debs/containerd_*.deb"
step 'rm -f /usr/bin/containerd'

say "What the audit log says"
rtguard audit --summary "$LOG" | sed 's/^/    /'

say "The runtime is intact"
report=$(dpkg -V containerd runc 2>&1)
printf '    dpkg -V containerd runc: %s\n' "${report:-nothing to report: every file is as dpkg installed it}"
dpkg-query -W -f='    ${Package} ${Version} ${db:Status-Abbrev}\n' containerd runc
ls -l /usr/bin/containerd /usr/sbin/runc /lib/systemd/system/containerd.service | sed 's/^/    /'
printf '    containerd still running: pid %s\n' "$(pidof containerd || echo NONE)"
if iptables -t nat -S DOCKER | cmp -s - /tmp/docker-chain.before; then
    echo '    the DOCKER chain is byte for byte as before'
else
    echo '    the DOCKER chain CHANGED'
fi
