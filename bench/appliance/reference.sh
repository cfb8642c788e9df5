#!/usr/bin/env bash
# The reference bench/appliance/run measures the appliance against (issue 8): a plain initramfs
# from Debian packages, the same cloud kernel, whose init is a busybox script that binds the
# VM's virtio NICs to uio_pci_generic, reserves hugepages and starts DPDK's testpmd on them.
# Its console line "reference: port ready N s after the kernel started" is the moment testpmd
# has started its ports and waits for Enter (its main thread blocked reading standard input),
# with N from /proc/uptime (the kernel's CLOCK_BOOTTIME, as nodus's init reports "serving").
# Not part of the appliance image: only the benchmark boots it.
#
#   OUT/ref-initrd.img   busybox (busybox-static), dpdk-testpmd (dpdk-dev) and its ldd closure,
#                        the same four DPDK plugins as the appliance, uio and uio_pci_generic
#                        of the kernel package; lz4 cpio as the appliance's (images/lib.sh)
#
# usage: bench/appliance/reference.sh [--out DIR] [--cache DIR] [--hugepages N]
#   --out        where ref-initrd.img goes (default build/images)
#   --cache      where downloaded .deb files are kept (default OUT/cache)
#   --hugepages  2 MiB pages to reserve (default 20: what the appliance's init reserves for one
#                worker; testpmd's pool is sized as nodus's, 8191 mbufs)
# Boot it with the appliance's kernel (build/images/nodus-vmlinuz) and two virtio-net NICs at
# 00:04.0 and 00:05.0; testpmd forwards between them (io mode, one forwarding core).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
OUT=$ROOT/build/images
CACHE=""
HUGEPAGES=20
# shellcheck source=images/lib.sh
. "$ROOT/images/lib.sh"
PLUGINS="librte_bus_pci librte_bus_vdev librte_mempool_ring librte_net_virtio"

die() { echo "bench/appliance/reference.sh: $*" >&2; exit 1; }
while [ $# -gt 0 ]; do
    case "$1" in
    --out) OUT=$2; shift 2 ;;
    --cache) CACHE=$2; shift 2 ;;
    --hugepages) HUGEPAGES=$2; shift 2 ;;
    -h | --help) sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown option '$1' (--help)" ;;
    esac
done
[[ "$HUGEPAGES" =~ ^[0-9]+$ ]] || die "--hugepages $HUGEPAGES: not a number"
for c in apt-get dpkg dpkg-query ldd modinfo objdump cpio lz4; do
    command -v "$c" >/dev/null || die "$c is missing (scripts/deps.sh build image)"
done
CACHE=${CACHE:-$OUT/cache}
mkdir -p "$OUT" "$CACHE"
OUT=$(cd "$OUT" && pwd)
CACHE=$(cd "$CACHE" && pwd)
WORK=$(mktemp -d "$OUT/.ref.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

# testpmd's libraries are this machine's (libdpdk-dev installs them): the package it comes in
# must be the same DPDK version
DPDK_VER=$(dpkg-query -W -f '${Version}' librte-eal23 2>/dev/null) ||
    die "librte-eal23 is not installed (scripts/deps.sh build)"
fetch() { # PACKAGE[=VERSION]: its .deb in CACHE, downloaded once; prints the path
    local name=${1%%=*} f
    f=$(ls "$CACHE/${name}_"*.deb 2>/dev/null | tail -1 || true)
    if [ -z "$f" ] || { [ "$1" != "$name" ] && [ "$(dpkg-deb -f "$f" Version)" != "${1#*=}" ]; }; then
        (cd "$CACHE" && apt-get download -o APT::Sandbox::User=root "$1" </dev/null >&2) ||
            die "apt-get download $1 failed"
        f=$(ls -t "$CACHE/${name}_"*.deb | head -1)
    fi
    echo "$f"
}
dpkg -x "$(fetch busybox-static)" "$WORK/pkg"
dpkg -x "$(fetch "dpdk-dev=$DPDK_VER")" "$WORK/pkg"
TESTPMD=$WORK/pkg/usr/bin/dpdk-testpmd
[ -x "$TESTPMD" ] || die "dpdk-dev $DPDK_VER has no usr/bin/dpdk-testpmd"
kernel_fetch "$CACHE" || die "no kernel package"
dpkg -x "$KERNEL_DEB" "$WORK/kernel"

R=$WORK/root
initrd_tree "$R" || die "initramfs tree"
ln -s usr/bin "$R/bin"
install -m 755 "$WORK/pkg/bin/busybox" "$R/usr/bin/busybox"
for a in sh mount mkdir mkfifo cat insmod sleep awk; do ln -s busybox "$R/usr/bin/$a"; done
install -m 755 "$TESTPMD" "$R/usr/bin/dpdk-testpmd"
initrd_libs "$R" "$TESTPMD" || die "libraries of dpdk-testpmd"
# shellcheck disable=SC2086
initrd_dpdk_plugins "$R" $PLUGINS || die "DPDK plugins"
initrd_modules "$R" "$WORK/kernel/lib/modules/$KERNEL_VER" "" uio_pci_generic || die "modules"

cat >"$R/init" <<INIT
#!/bin/sh
# bench/appliance/reference.sh: testpmd on the VM's virtio NICs
export PATH=/usr/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs -o mode=0755 devtmpfs /dev
read -r up rest </proc/uptime
echo "reference: busybox init, \$up s after the kernel started"
# every NIC to uio_pci_generic, before it loads (it takes them as it loads)
for d in /sys/bus/pci/devices/*; do
    case \$(cat "\$d/class") in 0x02*) echo uio_pci_generic >"\$d/driver_override" ;; esac
done
while read -r m; do insmod "/lib/modules/\$m.ko"; done </lib/modules/modules.load
echo $HUGEPAGES >/sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages
mkdir -p /dev/hugepages
mount -t hugetlbfs -o pagesize=2M hugetlbfs /dev/hugepages
# standard input: a FIFO nobody writes, so testpmd's "Press enter to exit" waits; another one
# to wait 10 ms on without forking (read -t)
mkfifo /run/stdin /run/tick
exec 3<>/run/stdin 4<>/run/tick
dpdk-testpmd --in-memory -l 0-1 --log-level=notice -a 0000:00:04.0 -a 0000:00:05.0 -- \\
    --total-num-mbufs=8191 --nb-cores=1 <&3 &
pid=\$!
# ready: testpmd's main thread blocked in read(0, ...) (/proc/PID/syscall "0 0x0 ..."), which
# it reaches after starting its ports and checking their links
while :; do
    read -r nr fd rest <"/proc/\$pid/syscall" || break
    [ "\$nr \$fd" = "0 0x0" ] && break
    read -r -t 0.01 tick <&4
done
awk -v h=\$(cat /sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages) \\
    -v f=\$(cat /sys/kernel/mm/hugepages/hugepages-2048kB/free_hugepages) '
    FILENAME == "/proc/uptime" { up = \$1; next }
    \$1 == "MemTotal:" { t = \$2 } \$1 == "MemAvailable:" { a = \$2 }
    END { printf "reference: port ready %.3f s after the kernel started; memory used %d MiB of %d MiB (MemTotal - MemAvailable, %d MiB of it hugepages, %d MiB of those in use)\n",
                 up, (t - a) / 1024, t / 1024, h * 2, (h - f) * 2 }' /proc/uptime /proc/meminfo
wait \$pid
echo "reference: testpmd exited"
while :; do sleep 3600; done
INIT
chmod 755 "$R/init"
initrd_pack "$R" "$WORK/initrd" || die "packing the initramfs"
mv "$WORK/initrd" "$OUT/ref-initrd.img"
echo "bench/appliance/reference.sh: $OUT/ref-initrd.img ($(stat -c %s "$OUT/ref-initrd.img") bytes;" \
    "dpdk-testpmd $DPDK_VER, $(ls "$R/usr/lib/$MULTIARCH" | wc -l) libraries, kernel $KERNEL_VER)" >&2
