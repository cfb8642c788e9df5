#!/usr/bin/env bash
# Makes a config disk for the nodus appliance: a small ext4 file system (no partition table)
# holding mesh.lua at its root and whatever else it names (certificates, keys, Lua files).
# Attach it as a second virtio disk; init mounts it read-only and runs the node from it.
#
# usage: images/mkconfig.sh OUT.img MESH.lua [FILE|DIR]...
#   MESH.lua is copied as mesh.lua; each FILE or DIR is copied beside it (a DIR with its tree).
#   Relative paths in mesh.lua are relative to the disk's root (init runs the node there).
# Needs mkfs.ext4 (e2fsprogs); no root, no loop device (mkfs.ext4 -d).
set -euo pipefail

die() { echo "images/mkconfig.sh: $*" >&2; exit 1; }
[ $# -ge 2 ] || die "usage: images/mkconfig.sh OUT.img MESH.lua [FILE|DIR]..."
out=$1 mesh=$2
shift 2
[ -f "$mesh" ] || die "$mesh: no such file"
command -v mkfs.ext4 >/dev/null || die "mkfs.ext4 missing (apt-get install e2fsprogs)"
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
cp "$mesh" "$dir/mesh.lua"
for f in "$@"; do
    [ -e "$f" ] || die "$f: no such file or directory"
    cp -a "$f" "$dir/"
done
chmod -R go-w "$dir"
kb=$(du -sk "$dir" | cut -f1)
size=$((kb + 1024 < 4096 ? 4096 : kb + 1024))
rm -f "$out"
# ext4 without a journal (it is mounted read-only), labelled for people reading lsblk
mkfs.ext4 -q -F -L nodus-config -O ^has_journal -E root_owner=0:0 -d "$dir" "$out" "${size}k" >/dev/null ||
    die "mkfs.ext4 failed"
echo "$out: config disk with $(cd "$dir" && find . -type f | wc -l) file(s), ${size} KiB" >&2
