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

say "A Debian host with containerd and runc from the archive"
dpkg-query -W -f='    ${Package} ${Version} ${db:Status-Abbrev}\n' containerd runc
ls -l /usr/bin/containerd /usr/sbin/runc /lib/systemd/system/containerd.service | sed 's/^/    /'

say "rtguard starts with the production policy"
rtguard run --policy /etc/rtguard/production.toml > /var/log/rtguard.stderr 2>&1 &
i=0
until rtguard status > /dev/null 2>&1 || [ $i -ge 600 ]; do sleep 0.2; i=$((i + 1)); done
rtguard status | sed 's/^/    /'
seen=$(wc -l < "$LOG")

say "The uninstaller runs, as root"
step 'rm -rf /usr/bin/containerd* /usr/bin/ctr'
step 'rm -rf /lib/systemd/system/containerd.service'
step 'rm -rf /etc/containerd'
step 'mv /usr/sbin/runc /tmp/runc.bak'
step 'systemctl disable containerd'
step 'cp /bin/true /usr/bin/containerd'

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
