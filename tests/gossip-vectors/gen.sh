#!/bin/sh
# Regenerates vectors.inc with Go's memberlist/serf encoders (offline: Debian's gocode tree).
# usage: tests/gossip-vectors/gen.sh [HEX-OF-A-C-SEALED-STREAM]
# The optional argument is a TCP encrypt frame produced by nodus (test_gossip_go prints one):
# it is decrypted by memberlist's decryptPayload and its plaintext recorded as c_sealed_plain.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
src=/usr/share/gocode/src/github.com/hashicorp
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cp "$here/memberlist_vectors.go.txt" "$tmp/ml.go"
cp "$here/serf_vectors.go.txt" "$tmp/serf.go"
cat > "$tmp/overlay.json" <<JSON
{"Replace": {"$src/memberlist/zz_nodus_vectors.go": "$tmp/ml.go",
             "$src/serf/serf/zz_nodus_vectors.go": "$tmp/serf.go"}}
JSON
mkdir "$tmp/gen"
cp "$here/main.go" "$tmp/gen/main.go"
cd "$tmp/gen"
GO111MODULE=off GOPATH=/usr/share/gocode GOCACHE="$tmp/cache" GOFLAGS= \
    go run -overlay "$tmp/overlay.json" . "$@" > "$tmp/vectors.inc"
mv "$tmp/vectors.inc" "$here/vectors.inc"
echo "wrote $here/vectors.inc"
