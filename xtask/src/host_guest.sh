#!/bin/sh
# The host guest's test driver, run by rtguard-vm.service once Docker is up. The first
# boot runs the tests against the running stack and reboots; the second checks that
# rtguard came up before the runtime, then powers off with the combined status.

export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root
export RTGUARD_BIN=/usr/bin/rtguard RUST_BACKTRACE=1
state=/var/lib/rtguard-vm
mkdir -p "$state"
tests() {
    /root/payload/vm --test-threads=1 --color never --show-output "$@"
}

echo "guest: kernel $(uname -r), $(systemctl --version | head -1), LSMs $(cat /sys/kernel/security/lsm)"
systemctl is-system-running --wait > /dev/null
echo "guest: boot: $(systemd-analyze time 2>&1 | head -1)"
echo "guest: slowest units: $(systemd-analyze blame 2>/dev/null | head -5 | tr -s ' ' | paste -sd ',')"

if [ ! -e "$state/first-boot" ]; then
    tests host_guest::first_boot::
    echo $? > "$state/first-boot"
    sync
    systemctl reboot
else
    tests host_guest::after_reboot::
    status=$?
    first=$(cat "$state/first-boot")
    [ "$first" -ne 0 ] && status=$first
    echo "RTGUARD-VM-EXIT=$status"
    sync
    systemctl poweroff
fi
