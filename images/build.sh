#!/usr/bin/env bash
# Builds the nodus appliance from Debian packages only (docs/appliance.md):
#
#   OUT/nodus-vmlinuz      Debian's cloud kernel (linux-image-cloud-amd64), as shipped
#   OUT/nodus-initrd.img   nodus as /init, the libraries it links (ldd closure), DPDK's bus,
#                          mempool and virtio PMD plugins, the kernel modules it loads; lz4 cpio
#   OUT/nodus-cmdline      the kernel command line to boot them with (the disk's boot loader has it)
#   OUT/nodus-disk.img     a bootable disk: MBR + one FAT partition with SYSLINUX for BIOS and
#                          EFI/BOOT/BOOTX64.EFI (syslinux.efi) for UEFI, the kernel and initrd
#   OUT/nodus-disk.qcow2   the same disk as compressed qcow2 (when qemu-img is installed)
#
# usage: images/build.sh [--nodus BIN] [--out DIR] [--config FILE] [--cmdline ARGS] [--cache DIR]
#   --nodus    the binary to ship (default build/nodus: `./dev image` builds it, release)
#   --out      where the outputs go (default build/images)
#   --config   a mesh.lua baked into the image as /etc/nodus/mesh.lua (the last-resort config)
#   --cmdline  extra kernel command line for the disk's boot loader (e.g. nodus.hugepages=128)
#   --cache    where downloaded .deb files are kept (default OUT/cache)
#
# The kernel package is fetched with `apt-get download` and unpacked with `dpkg -x`: it is not
# installed on this machine. The tools come from scripts/deps.sh image.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
NODUS_BIN=$ROOT/build/nodus
OUT=$ROOT/build/images
CONFIG=""
CMDLINE_EXTRA=""
CACHE=""
# shellcheck source=images/lib.sh
. "$ROOT/images/lib.sh"
# The DPDK drivers EAL loads as plugins from DPDK_PMD_DIR: the PCI and virtual buses, the
# default mempool handler (ring_mp_mc) and the virtio-net PMD.
DPDK_PLUGINS="librte_bus_pci librte_bus_vdev librte_mempool_ring librte_net_virtio"
# Kernel modules nodus loads at boot (with their dependencies, in order). "iommu": loaded only
# when the machine has an IOMMU (vfio-pci is then used instead of uio_pci_generic).
MODULES="virtio_pci virtio_blk uio_pci_generic button evdev"
MODULES_IOMMU="vfio-pci vfio_iommu_type1"
# The whole disk and its single FAT partition (1 MiB in).
DISK_MB=40
PART_START=2048

die() { echo "images/build.sh: $*" >&2; exit 1; }
log() { echo "images: $*" >&2; }

while [ $# -gt 0 ]; do
    case "$1" in
    --nodus) NODUS_BIN=$2; shift 2 ;;
    --out) OUT=$2; shift 2 ;;
    --config) CONFIG=$2; shift 2 ;;
    --cmdline) CMDLINE_EXTRA=$2; shift 2 ;;
    --cache) CACHE=$2; shift 2 ;;
    -h | --help) sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown option '$1' (--help)" ;;
    esac
done
CACHE=${CACHE:-$OUT/cache}
for c in apt-get dpkg ldd modinfo cpio lz4 zstd mkfs.vfat mcopy mmd syslinux; do
    command -v "$c" >/dev/null || die "$c is missing (scripts/deps.sh image)"
done
[ -x "$NODUS_BIN" ] || die "no nodus binary at $NODUS_BIN (./dev build, or --nodus)"
[ -z "$CONFIG" ] || [ -f "$CONFIG" ] || die "--config $CONFIG: no such file"
[ -d "$DPDK_PMD_DIR" ] || die "$DPDK_PMD_DIR missing (libdpdk-dev: scripts/deps.sh build)"
mkdir -p "$OUT" "$CACHE"
OUT=$(cd "$OUT" && pwd)
CACHE=$(cd "$CACHE" && pwd)
WORK=$(mktemp -d "$OUT/.work.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

# ---- the kernel: the versioned package the cloud metapackage depends on, downloaded once ----
kernel_fetch "$CACHE" || die "no kernel package"
log "kernel package $(basename "$KERNEL_DEB")"
dpkg -x "$KERNEL_DEB" "$WORK/kernel"
KMOD=$WORK/kernel/lib/modules/$KERNEL_VER
[ -d "$KMOD" ] || die "$KERNEL_DEB has no lib/modules/$KERNEL_VER"
cp "$WORK/kernel/boot/vmlinuz-$KERNEL_VER" "$OUT/nodus-vmlinuz"

# ---- the initramfs tree ----------------------------------------------------------------------
R=$WORK/root
initrd_tree "$R" || die "initramfs tree"
mkdir -p "$R/etc/nodus"
install -m 755 "$NODUS_BIN" "$R/usr/bin/nodus"
ln -s usr/bin/nodus "$R/init"
# Libraries: the ldd closure of nodus and of the plugins, the plugins in DPDK_PMD_DIR.
initrd_libs "$R" "$NODUS_BIN" || die "libraries of $NODUS_BIN"
# shellcheck disable=SC2086 # word lists
initrd_dpdk_plugins "$R" $DPDK_PLUGINS || die "DPDK plugins"
# Kernel modules: "NAME" or "NAME iommu" in lib/modules/modules.load, in load order.
# shellcheck disable=SC2086
initrd_modules "$R" "$KMOD" "" $MODULES || die "kernel modules"
# shellcheck disable=SC2086
initrd_modules "$R" "$KMOD" iommu $MODULES_IOMMU || die "kernel modules"
echo "$KERNEL_VER" >"$R/usr/lib/modules/version"

if [ -n "$CONFIG" ]; then
    install -m 644 "$CONFIG" "$R/etc/nodus/mesh.lua"
fi

# Nothing else: no shell, no busybox.
initrd_pack "$R" "$WORK/initrd" || die "packing the initramfs"
mv "$WORK/initrd" "$OUT/nodus-initrd.img"

# ---- the kernel command line and the bootable disk ---------------------------------------
# cryptomgr.notests: the kernel's crypto self-tests (0.3 s under TCG) test algorithms nothing
# in the appliance uses; module signatures are still checked. OUT/nodus-cmdline is the line for
# direct kernel boots (-kernel/-initrd, PXE); the disk's boot loader passes the same.
CMDLINE="console=ttyS0,115200 loglevel=4 panic=10 cryptomgr.notests"
echo "$CMDLINE" >"$OUT/nodus-cmdline"
CMDLINE="$CMDLINE${CMDLINE_EXTRA:+ $CMDLINE_EXTRA}"
cat >"$WORK/syslinux.cfg" <<CFG
DEFAULT nodus
PROMPT 0
TIMEOUT 0
SERIAL 0 115200
LABEL nodus
  KERNEL /nodus/vmlinuz
  INITRD /nodus/initrd.img
  APPEND $CMDLINE
CFG
PART=$WORK/part.img
PART_KB=$(((DISK_MB - 1) * 1024))
mkfs.vfat -C -n NODUS-BOOT "$PART" "$PART_KB" >/dev/null
export MTOOLS_SKIP_CHECK=1
mmd -i "$PART" ::/nodus ::/syslinux ::/EFI ::/EFI/BOOT
mcopy -i "$PART" "$OUT/nodus-vmlinuz" ::/nodus/vmlinuz
mcopy -i "$PART" "$OUT/nodus-initrd.img" ::/nodus/initrd.img
mcopy -i "$PART" "$WORK/syslinux.cfg" ::/syslinux/syslinux.cfg
# UEFI: SYSLINUX's EFI loader as the removable-media path, with its ldlinux and the same menu.
mcopy -i "$PART" /usr/lib/SYSLINUX.EFI/efi64/syslinux.efi ::/EFI/BOOT/BOOTX64.EFI
mcopy -i "$PART" /usr/lib/syslinux/modules/efi64/ldlinux.e64 ::/EFI/BOOT/ldlinux.e64
mcopy -i "$PART" "$WORK/syslinux.cfg" ::/EFI/BOOT/syslinux.cfg
# BIOS: SYSLINUX's boot sector and ldlinux.sys in the partition (mtools, no loop device)
syslinux --directory /syslinux --install "$PART"

DISK=$WORK/disk.img
truncate -s "${DISK_MB}M" "$DISK"
dd if=/usr/lib/syslinux/mbr/mbr.bin of="$DISK" bs=440 count=1 conv=notrunc status=none
# One MBR entry: active, type 0xEF (EFI system partition; BIOS boots it through mbr.bin too),
# CHS fields saturated (LBA only), start and size in sectors, little-endian.
le32() { printf '\\x%02x\\x%02x\\x%02x\\x%02x' $(($1 & 255)) $(($1 >> 8 & 255)) \
    $(($1 >> 16 & 255)) $(($1 >> 24 & 255)); }
PART_SECTORS=$((PART_KB * 2))
# shellcheck disable=SC2059
printf "\\x80\\xfe\\xff\\xff\\xef\\xfe\\xff\\xff$(le32 $PART_START)$(le32 $PART_SECTORS)" |
    dd of="$DISK" bs=1 seek=446 conv=notrunc status=none
printf '\x55\xaa' | dd of="$DISK" bs=1 seek=510 conv=notrunc status=none
dd if="$PART" of="$DISK" bs=512 seek="$PART_START" conv=notrunc,sparse status=none
mv "$DISK" "$OUT/nodus-disk.img"
if command -v qemu-img >/dev/null; then
    qemu-img convert -c -O qcow2 "$OUT/nodus-disk.img" "$OUT/nodus-disk.qcow2"
else
    log "qemu-img not installed: no qcow2 (scripts/deps.sh image)"
fi

size() { stat -c %s "$1"; }
log "kernel $KERNEL_VER, $(wc -l <"$R/usr/lib/modules/modules.load") module(s), $(ls "$R/usr/lib/$MULTIARCH" | wc -l) libraries"
for f in nodus-vmlinuz nodus-initrd.img nodus-disk.img nodus-disk.qcow2; do
    [ -f "$OUT/$f" ] && printf 'images: %-18s %9d bytes\n' "$f" "$(size "$OUT/$f")" >&2
done
total=$(($(size "$OUT/nodus-vmlinuz") + $(size "$OUT/nodus-initrd.img")))
log "kernel + initrd: $((total / 1024)) KiB"
