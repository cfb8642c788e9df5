# shellcheck shell=bash disable=SC2034 # sourced; sets variables for its caller
# What images/build.sh (the appliance) and bench/appliance/reference.sh (the testpmd reference
# it is measured against) share: the kernel package and the making of an initramfs from this
# machine's Debian packages. Sourced (bash); each function returns non-zero with a message on
# stderr when it cannot do its job.
MULTIARCH=x86_64-linux-gnu
# DPDK's compiled-in plugin directory (RTE_EAL_PMD_PATH): EAL loads every .so in it at start
DPDK_PMD_DIR=/usr/lib/$MULTIARCH/dpdk/pmds-23.0
KERNEL_META=linux-image-cloud-amd64

_lib_err() { echo "images/lib.sh: $*" >&2; }

_kernel_pkg() {
    apt-cache depends "$KERNEL_META" 2>/dev/null | awk '/Depends: linux-image-/ { print $2; exit }'
}

# kernel_fetch CACHE: resolves linux-image-cloud-amd64 to the versioned package it depends on,
# downloads that .deb into CACHE once (apt-get download: it is only unpacked, never installed
# here) and sets KERNEL_PKG (linux-image-6.1.0-NN-cloud-amd64), KERNEL_VER and KERNEL_DEB.
kernel_fetch() {
    local cache=$1
    KERNEL_PKG=$(_kernel_pkg)
    if [ -z "$KERNEL_PKG" ]; then
        _lib_err "apt knows no $KERNEL_META: apt-get update"
        apt-get update -qq </dev/null || { _lib_err "apt-get update failed"; return 1; }
        KERNEL_PKG=$(_kernel_pkg)
    fi
    [ -n "$KERNEL_PKG" ] || { _lib_err "cannot resolve $KERNEL_META to a kernel package"; return 1; }
    KERNEL_DEB=$(ls "$cache/${KERNEL_PKG}_"*.deb 2>/dev/null | tail -1 || true)
    if [ -z "$KERNEL_DEB" ]; then
        _lib_err "downloading $KERNEL_PKG"
        # _apt cannot write into a directory of root's: download as root
        (cd "$cache" && apt-get download -o APT::Sandbox::User=root "$KERNEL_PKG" </dev/null) ||
            { _lib_err "apt-get download $KERNEL_PKG failed"; return 1; }
        KERNEL_DEB=$(ls "$cache/${KERNEL_PKG}_"*.deb | tail -1)
    fi
    KERNEL_VER=${KERNEL_PKG#linux-image-}
}

# initrd_tree ROOT: the skeleton (usr-merged: /lib -> usr/lib), 0755 at the top (EAL refuses
# plugins under a world-writable or private directory), /dev/console (the kernel opens it for
# init's stdin/out/err before devtmpfs is mounted; needs root).
initrd_tree() {
    local r=$1
    mkdir -p "$r"/{dev,proc,sys,run,tmp,var,etc,usr/bin,usr/lib64,usr/lib/modules} \
        "$r/usr/lib/$MULTIARCH" || return
    chmod 755 "$r"
    chmod 1777 "$r/tmp"
    ln -s ../run "$r/var/run"
    ln -s usr/lib "$r/lib"
    ln -s usr/lib64 "$r/lib64"
    if [ "$(id -u)" -eq 0 ]; then
        mknod -m 600 "$r/dev/console" c 5 1
    fi
}

# initrd_libs ROOT FILE...: the ldd closure of the files. Each library goes to
# usr/lib/MULTIARCH under the name it is asked for (its soname), the dynamic linker too.
initrd_libs() {
    local r=$1 f lib path libdir=$1/usr/lib/$MULTIARCH
    shift
    for f in "$@"; do
        ldd "$f" | awk '/=> \// { print $1, $3 } /not found/ { print "MISSING", $1 }
                        /^\t\/.*ld-linux/ { print "LD", $1 }'
    done | sort -u | while read -r lib path; do
        if [ "$lib" = MISSING ]; then
            _lib_err "$path: not installed (a library of $*)"
            return 1
        elif [ "$lib" = LD ]; then
            cp -L "$path" "$libdir/$(basename "$path")"
            ln -sf "../lib/$MULTIARCH/$(basename "$path")" "$r/usr/lib64/$(basename "$path")"
        elif [ ! -e "$libdir/$lib" ]; then
            cp -L "$path" "$libdir/$lib"
        fi
    done
}

# initrd_dpdk_plugins ROOT NAME...: DPDK's plugins (librte_net_virtio...) with their closure.
# The plugin directory holds symlinks to the libraries in usr/lib/MULTIARCH, so that EAL's
# dlopen of a plugin and the dynamic linker's load of the same library by soname find one
# object (two copies would register the PCI bus twice).
initrd_dpdk_plugins() {
    local r=$1 p f soname files=()
    shift
    for p in "$@"; do
        f=$DPDK_PMD_DIR/$p.so
        [ -e "$f" ] || { _lib_err "DPDK plugin $f missing (libdpdk-dev)"; return 1; }
        files+=("$f")
    done
    initrd_libs "$r" "${files[@]}" || return
    mkdir -p "$r$DPDK_PMD_DIR"
    for p in "$@"; do
        soname=$(objdump -p "$DPDK_PMD_DIR/$p.so" 2>/dev/null | awk '/SONAME/ { print $2 }')
        soname=${soname:-$p.so.23}
        [ -e "$r/usr/lib/$MULTIARCH/$soname" ] || cp -L "$DPDK_PMD_DIR/$p.so" "$r/usr/lib/$MULTIARCH/$soname"
        ln -s "../../$soname" "$r$DPDK_PMD_DIR/$p.so"
    done
}

# initrd_modules ROOT KMOD TAG NAME...: kernel modules from the unpacked tree KMOD
# (lib/modules/VERSION), each after its dependencies (modinfo's "depends"), flat in
# usr/lib/modules/ and listed in its modules.load as "NAME" or "NAME TAG". Built-in ones are
# skipped. Compressed modules (.ko.xz, .ko.zst, as later Debian kernels ship them) are
# decompressed: finit_module of a compressed file needs CONFIG_MODULE_DECOMPRESS.
declare -gA _MOD_DONE=()
_mod_add() { # ROOT KMOD TAG NAME
    local r=$1 kmod=$2 tag=$3 name=$4 f dep base alt=${4//-/_}
    f=$(find "$kmod/kernel" \( -name "$name.ko*" -o -name "$alt.ko*" -o -name "${name//_/-}.ko*" \) \
        -print -quit)
    if [ -z "$f" ]; then
        grep -qE "/${name//[-_]/[-_]}\.ko" "$kmod/modules.builtin" && return 0
        _lib_err "kernel module $name: not in $kmod (neither a module nor built in)"
        return 1
    fi
    base=$(basename "$f")
    base=${base%%.ko*}
    [ -n "${_MOD_DONE[$r/$base]:-}" ] && return 0
    for dep in $(modinfo -F depends "$f" | tr ',' ' '); do
        _mod_add "$r" "$kmod" "$tag" "$dep" || return
    done
    case "$f" in
    *.ko) cp "$f" "$r/usr/lib/modules/$base.ko" ;;
    *.ko.xz) xz -dc "$f" >"$r/usr/lib/modules/$base.ko" ;;
    *.ko.zst) zstd -qdc "$f" >"$r/usr/lib/modules/$base.ko" ;;
    *.ko.gz) gzip -dc "$f" >"$r/usr/lib/modules/$base.ko" ;;
    *) _lib_err "module $f: unknown compression"; return 1 ;;
    esac
    _MOD_DONE[$r/$base]=1
    echo "$base${tag:+ $tag}" >>"$r/usr/lib/modules/modules.load"
}
initrd_modules() {
    local r=$1 kmod=$2 tag=$3 m
    shift 3
    touch "$r/usr/lib/modules/modules.load"
    for m in "$@"; do
        _mod_add "$r" "$kmod" "$tag" "$m" || return
    done
}

# initrd_pack ROOT OUT: the tree as a newc cpio (owned by root, sorted, reproducible), lz4 in
# the legacy frame the kernel reads. Unpacking is on the boot's critical path (the kernel's
# crypto init waits for it): under TCG lz4 unpacks 8 MiB in a quarter of zstd -19's time, for
# 35% more bytes (bench/RESULTS.md).
initrd_pack() {
    (cd "$1" && find . | LC_ALL=C sort | cpio --quiet -o -H newc -R 0:0 --reproducible) |
        lz4 -q -l -12 >"$2"
}
