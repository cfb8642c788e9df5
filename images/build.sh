#!/usr/bin/env bash
# Builds the nodus appliance from Debian packages only (docs/appliance.md):
#
#   OUT/nodus-vmlinuz      Debian's cloud kernel (linux-image-cloud-amd64), as shipped
#   OUT/nodus-initrd.img   nodus as /init, the libraries it links (ldd closure), DPDK's bus,
#                          mempool and virtio PMD plugins, the kernel modules it loads; zstd cpio
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
KERNEL_META=linux-image-cloud-amd64
MULTIARCH=x86_64-linux-gnu
DPDK_PMD_DIR=/usr/lib/$MULTIARCH/dpdk/pmds-23.0
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
for c in apt-get dpkg ldd modinfo cpio zstd mkfs.vfat mcopy mmd syslinux; do
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
kernel_pkg() {
    apt-cache depends "$KERNEL_META" 2>/dev/null | awk '/Depends: linux-image-/ { print $2; exit }'
}
PKG=$(kernel_pkg)
if [ -z "$PKG" ]; then
    log "apt knows no $KERNEL_META: apt-get update"
    apt-get update -qq </dev/null || die "apt-get update failed"
    PKG=$(kernel_pkg)
fi
[ -n "$PKG" ] || die "cannot resolve $KERNEL_META to a kernel package"
DEB=$(ls "$CACHE/${PKG}_"*.deb 2>/dev/null | tail -1 || true)
if [ -z "$DEB" ]; then
    log "downloading $PKG"
    # _apt cannot write into a directory of root's: download as root (the package is only
    # unpacked, never installed)
    (cd "$CACHE" && apt-get download -o APT::Sandbox::User=root "$PKG" </dev/null) ||
        die "apt-get download $PKG failed"
    DEB=$(ls "$CACHE/${PKG}_"*.deb | tail -1)
fi
log "kernel package $(basename "$DEB")"
dpkg -x "$DEB" "$WORK/kernel"
KVER=${PKG#linux-image-}
KMOD=$WORK/kernel/lib/modules/$KVER
[ -d "$KMOD" ] || die "$DEB has no lib/modules/$KVER"
cp "$WORK/kernel/boot/vmlinuz-$KVER" "$OUT/nodus-vmlinuz"

# ---- the initramfs tree ----------------------------------------------------------------------
R=$WORK/root
LIBDIR=$R/usr/lib/$MULTIARCH
mkdir -p "$R"/{dev,proc,sys,run,tmp,var,etc/nodus,usr/bin,usr/lib64,lib/modules} "$LIBDIR"
chmod 755 "$R" # EAL refuses plugins under a world-writable (or private) directory
ln -s ../run "$R/var/run"
rmdir "$R/lib/modules" "$R/lib"
ln -s usr/lib "$R/lib"
ln -s usr/lib64 "$R/lib64"
mkdir -p "$R/usr/lib/modules"
chmod 1777 "$R/tmp"
install -m 755 "$NODUS_BIN" "$R/usr/bin/nodus"
ln -s usr/bin/nodus "$R/init"
# The kernel opens /dev/console for init's stdin/out/err before devtmpfs is mounted.
if [ "$(id -u)" -eq 0 ]; then
    mknod -m 600 "$R/dev/console" c 5 1
fi

# Libraries: the ldd closure of nodus and of the plugins. Each goes to usr/lib/MULTIARCH under
# the name it is asked for (its soname); the plugin directory holds symlinks to those same
# files, so that EAL's dlopen of a plugin and the dynamic linker's load of the same library by
# soname find one object (two copies would register the PCI bus twice).
copy_closure() { # FILE...
    local f lib path
    for f in "$@"; do
        ldd "$f" | awk '/=> \// { print $1, $3 } /^\t\/.*ld-linux/ { print "LD", $1 }'
    done | sort -u | while read -r lib path; do
        if [ "$lib" = LD ]; then
            cp -L "$path" "$LIBDIR/$(basename "$path")"
            ln -sf "../lib/$MULTIARCH/$(basename "$path")" "$R/usr/lib64/$(basename "$path")"
        elif [ ! -e "$LIBDIR/$lib" ]; then
            cp -L "$path" "$LIBDIR/$lib"
        fi
    done
}
plugins=()
for p in $DPDK_PLUGINS; do
    f=$DPDK_PMD_DIR/$p.so
    [ -e "$f" ] || die "DPDK plugin $f missing"
    plugins+=("$f")
done
copy_closure "$NODUS_BIN" "${plugins[@]}"
mkdir -p "$R$DPDK_PMD_DIR"
for p in $DPDK_PLUGINS; do
    soname=$(objdump -p "$DPDK_PMD_DIR/$p.so" 2>/dev/null | awk '/SONAME/ { print $2 }')
    soname=${soname:-$p.so.23}
    [ -e "$LIBDIR/$soname" ] || cp -L "$DPDK_PMD_DIR/$p.so" "$LIBDIR/$soname"
    ln -s "../../$soname" "$R$DPDK_PMD_DIR/$p.so"
done

# Kernel modules: each wanted module after its dependencies (modinfo's "depends"), flat in
# lib/modules/, listed in lib/modules/modules.load ("NAME" or "NAME iommu"). Compressed modules
# (.ko.xz, .ko.zst, as later Debian kernels ship them) are decompressed here: finit_module of a
# compressed file needs CONFIG_MODULE_DECOMPRESS, which this kernel may not have.
declare -A MOD_DONE=()
mod_file() { # NAME: the module's file in the kernel tree ('-' and '_' are the same)
    local n=$1 alt=${1//-/_} f
    f=$(find "$KMOD/kernel" \( -name "$n.ko*" -o -name "$alt.ko*" -o -name "${n//_/-}.ko*" \) \
        -print -quit)
    [ -n "$f" ] || return 1
    echo "$f"
}
mod_add() { # NAME TAG
    local name=$1 tag=$2 f dep base
    f=$(mod_file "$name") || {
        grep -qE "/${name//[-_]/[-_]}\.ko" "$KMOD/modules.builtin" && return 0
        die "kernel module $name: not in $PKG (neither a module nor built in)"
    }
    base=$(basename "$f")
    base=${base%%.ko*}
    [ -n "${MOD_DONE[$base]:-}" ] && return 0
    for dep in $(modinfo -F depends "$f" | tr ',' ' '); do
        mod_add "$dep" "$tag"
    done
    case "$f" in
    *.ko) cp "$f" "$R/usr/lib/modules/$base.ko" ;;
    *.ko.xz) xz -dc "$f" >"$R/usr/lib/modules/$base.ko" ;;
    *.ko.zst) zstd -qdc "$f" >"$R/usr/lib/modules/$base.ko" ;;
    *.ko.gz) gzip -dc "$f" >"$R/usr/lib/modules/$base.ko" ;;
    *) die "module $f: unknown compression" ;;
    esac
    MOD_DONE[$base]=1
    echo "$base${tag:+ $tag}" >>"$R/usr/lib/modules/modules.load"
}
: >"$R/usr/lib/modules/modules.load"
for m in $MODULES; do mod_add "$m" ""; done
for m in $MODULES_IOMMU; do mod_add "$m" iommu; done
echo "$KVER" >"$R/usr/lib/modules/version"

if [ -n "$CONFIG" ]; then
    install -m 644 "$CONFIG" "$R/etc/nodus/mesh.lua"
fi

# Nothing else: no shell, no busybox.
(cd "$R" && find . | LC_ALL=C sort |
    cpio --quiet -o -H newc -R 0:0 --reproducible) | zstd -q -19 -T2 >"$WORK/initrd"
mv "$WORK/initrd" "$OUT/nodus-initrd.img"

# ---- the bootable disk --------------------------------------------------------------------
CMDLINE="console=ttyS0,115200 loglevel=4 panic=10${CMDLINE_EXTRA:+ $CMDLINE_EXTRA}"
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
log "kernel $KVER, $(wc -l <"$R/usr/lib/modules/modules.load") module(s), $(ls "$LIBDIR" | wc -l) libraries"
for f in nodus-vmlinuz nodus-initrd.img nodus-disk.img nodus-disk.qcow2; do
    [ -f "$OUT/$f" ] && printf 'images: %-18s %9d bytes\n' "$f" "$(size "$OUT/$f")" >&2
done
total=$(($(size "$OUT/nodus-vmlinuz") + $(size "$OUT/nodus-initrd.img")))
log "kernel + initrd: $((total / 1024)) KiB"
