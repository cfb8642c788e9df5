#!/bin/sh
# Writes the fuzz seed corpus tests/fuzz/corpus/gossip/ from vectors.inc: every message that
# Go's memberlist/serf encoded, as a file of its bytes (go_NAME).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
out="$here/../fuzz/corpus/gossip"
mkdir -p "$out"
sed -n 's/^VEC(\([a-z0-9_]*\), "\([0-9a-f]*\)")$/\1 \2/p' "$here/vectors.inc" |
while read -r name hex; do
    printf '%s' "$hex" | xxd -r -p > "$out/go_$name"
done
ls "$out" | wc -l
