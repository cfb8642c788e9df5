#!/usr/bin/env bash
# A large request head (curl with long header fields) to an nginx upstream that echoes what it
# got: a head that still fits in the 16 KiB buffer with the x-forwarded-* fields the node adds
# goes upstream whole; one that fits the listener's max_request_headers_kb but not that buffer
# with those fields is answered 431, counted (nodus_request_head_too_large_total) and logged, and
# nothing of it reaches the upstream (before, the fields that did not fit were left out and the
# rest went upstream: a head without its x-forwarded-for). A listener whose
# max_request_headers_kb (32) is over that buffer answers a 20 KB head 431 at once (it waited
# for the header timeout before, then 408). The listeners keep serving.
# shellcheck disable=SC1091
. "$(dirname "$0")/lib.sh"

need_cmd curl nginx

up_port=$(free_port)
port=$(free_port)
port32=$(free_port)
admin=$(free_port)
start_nginx_upstream "$up_port" "up"

cfg=$(write_file head.lua <<LUA
node { name = "head-test", workers = 1 }
admin { listen = "$NODE_IP:$admin" }
cluster "up" { endpoints = { "$PEER_IP:$up_port" } }
listener "ingress" {
  listen = "$NODE_IP:$port", protocol = "http", max_request_headers_kb = 16,
  plugins = { router { { match = { prefix = "/" }, cluster = "up" } } },
}
listener "kb32" {
  listen = "$NODE_IP:$port32", protocol = "http", max_request_headers_kb = 32,
  request_header_timeout = "5s",
  plugins = { router { { match = { prefix = "/" }, cluster = "up" } } },
}
LUA
)
start_nodus "$cfg"
wait_http "http://$NODE_IP:$admin/ready" 15 || die "nodus not ready"

# What the node adds upstream: "x-forwarded-for: <client>\r\n" and "x-forwarded-proto: http\r\n".
# curl sends "GET /head HTTP/1.1", "Host: NODE:PORT", our fields, an empty line (no User-Agent,
# no Accept): a head of exactly TOTAL bytes, its last field x-user: marker.
hostline="Host: $NODE_IP:$port"
added=$((${#PEER_IP} + 19 + 25)) # x-forwarded-for (17 + 2 + CRLF) and x-forwarded-proto lines
request() { # TOTAL: prints "STATUS SEEN-USER SEEN-XFF"
    local total=$1 fixed pad
    # request line + CRLF, host + CRLF, "x-user: marker" + CRLF, final CRLF, 4 x "x-padN: " + CRLF
    fixed=$((18 + 2 + ${#hostline} + 2 + 14 + 2 + 2 + 4 * (8 + 2)))
    pad=$(((total - fixed) / 4))
    local rest=$((total - fixed - 4 * pad)) v args=()
    for i in 1 2 3 4; do
        v=$(head -c $((pad + (i == 4 ? rest : 0))) /dev/zero | tr '\0' v)
        args+=(-H "x-pad$i: $v")
    done
    curl -sS --max-time 10 -o "$T/body" -D "$T/hdrs" -H 'User-Agent:' -H 'Accept:' \
        "${args[@]}" -H 'x-user: marker' "http://$NODE_IP:$port/head" >/dev/null
    awk -v RS='\r\n' 'NR == 1 { s = $2 } tolower($1) == "x-seen-user:" { u = $2 }
        tolower($1) == "x-seen-xff:" { x = $2 } END { printf "%s %s %s\n", s, u ? u : "-", x ? x : "-" }' "$T/hdrs"
}
scrape() {
    curl -s --max-time 5 "http://$NODE_IP:$admin/stats/prometheus" |
        awk '$1 == "nodus_request_head_too_large_total" { print $2; f = 1 } END { if (!f) print 0 }'
}

# 1. fits with the added fields (16384 is the buffer): whole upstream, every field seen
assert_eq "200 marker $PEER_IP" "$(request $((16384 - added)))" "a head that fits with x-forwarded-*"
# 2. within max_request_headers_kb (16 KiB), over the buffer with the added fields: 431
assert_eq "431 - -" "$(request $((16384 - added + 1)))" "a head one byte over with x-forwarded-*"
# 16380 bytes: x-forwarded-for did not fit, x-forwarded-proto and the empty line did: this one went
# upstream without its x-forwarded-for before (200 marker -)
assert_eq "431 - -" "$(request 16380)" "a head with room for all but x-forwarded-for"
assert_eq 2 "$(scrape)" "nodus_request_head_too_large_total"
grep -q "request from $PEER_IP refused: its head for the upstream (16380 bytes received, 6 fields) is over 16384 bytes" "$NODUS_LOG" ||
    die "no log line for the refused head: $(grep -i 'head' "$NODUS_LOG" | tail -3)"
# 3. over max_request_headers_kb itself: the listener's own 431, before any upstream
assert_eq "431 - -" "$(request 16500)" "a head over max_request_headers_kb"
# 4. max_request_headers_kb = 32 but a 16 KiB buffer: a 20 KB head is answered 431 at once (it
# waited for the header timeout before, then 408)
t0=$EPOCHREALTIME
assert_eq 431 "$(curl -s -o /dev/null -w '%{http_code}' --max-time 10 \
    -H "x-big: $(head -c 20000 /dev/zero | tr '\0' v)" "http://$NODE_IP:$port32/big")" "a 20 KB head, max_request_headers_kb = 32"
took=$(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { print (b - a < 3) ? "fast" : b - a " s" }')
assert_eq fast "$took" "the 431 for a head over the buffer"
grep -q "kb32: bad request from $PEER_IP: header section over the 16384-byte buffer" "$NODUS_LOG" ||
    die "no log line for the head over the buffer"
# the listeners keep serving
assert_eq 200 "$(http_status "http://$NODE_IP:$port/after")" "a request after the refused ones"
assert_eq 200 "$(http_status "http://$NODE_IP:$port32/after")" "kb32: a request after the refused one"
pass "request heads: whole upstream when they fit with x-forwarded-*, else 431 (counted, logged), never cut"
