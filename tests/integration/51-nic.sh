#!/usr/bin/env bash
# `nodus nic` on this host, read-only: the list shows the PCI NICs with their drivers, binding
# the NIC that carries the host's default route is refused (and leaves it on its driver), an
# absent device and a bad address are refused with what to do; with NODUS_SYSFS_ROOT on an
# empty tree the list says there are none. (Binding itself is covered by the unit test against
# a fake sysfs and by 50-appliance inside the VM: this machine has no spare NIC.)
# shellcheck disable=SC1091
. "$(dirname "$0")/lib.sh"

[ -d /sys/bus/pci/devices ] || skip "no PCI bus in /sys"

out=$("$NODUS" nic list)
log "nodus nic list:"$'\n'"$out"
assert_contains "$(head -1 <<<"$out")" "PCI           ID         DRIVER" "list header"
default=$(awk '/default route/ { print $1; exit }' <<<"$out")
if [ -n "$default" ]; then
    driver=$(awk -v a="$default" '$1 == a { print $3 }' <<<"$out")
    rc=0
    msg=$("$NODUS" nic bind "$default" 2>&1) || rc=$?
    assert_eq 1 "$rc" "bind of the default-route NIC exits 1"
    assert_contains "$msg" "carries this host's default route" "refusal says why"
    assert_contains "$msg" "--force" "refusal says how to override"
    after=$("$NODUS" nic list | awk -v a="$default" '$1 == a { print $3 }')
    assert_eq "$driver" "$after" "the NIC stays on its driver"
else
    log "no NIC carries the default route here: refusal path not checked on the host"
fi

rc=0
msg=$("$NODUS" nic bind 0000:ff:1f.7 2>&1) || rc=$?
assert_eq 1 "$rc" "absent device"
assert_contains "$msg" "no PCI device 0000:ff:1f.7 (nodus nic list shows the NICs)"
rc=0
msg=$("$NODUS" nic bind eth0 2>&1) || rc=$?
assert_eq 1 "$rc" "bad address"
assert_contains "$msg" "is not a PCI address"
rc=0
"$NODUS" nic frobnicate >/dev/null 2>&1 || rc=$?
assert_eq 2 "$rc" "unknown subcommand"

mkdir -p "$T/sys/bus/pci/devices"
assert_contains "$(NODUS_SYSFS_ROOT=$T/sys "$NODUS" nic list)" "(no PCI network devices)"
rc=0
msg=$(NODUS_SYSFS_ROOT=$T/nowhere "$NODUS" nic list 2>&1) || rc=$?
assert_eq 1 "$rc" "list without sysfs"
assert_contains "$msg" "is sysfs mounted?"
pass "list, default-route refusal${default:+ ($default)}, bad input"
