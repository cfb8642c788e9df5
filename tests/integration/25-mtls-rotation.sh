#!/usr/bin/env bash
# Certificate rotation under load across two nodes, and session tickets on a strict listener.
#
# Node A (plain listener, cluster tls = "mutual" to B) and node B (strict mtls listener ->
# nginx). wrk drives A for ~15 s: one run with keep-alive connections, one with
# `Connection: close` (new client connections; A's pooled upstream TLS connections to B are
# retired and re-made, so new A->B handshakes happen during the rotations). Meanwhile both
# nodes' certificate files are re-issued (`nodus ca issue`) several times. Asserts: no non-2xx
# answer and no socket error in wrk's output, B's served certificate changed (serial, openssl
# s_client), nodus_cert_expiry_seconds follows on both nodes, no mtls refusal on B.
# Then tickets: openssl s_client -sess_out / -sess_in resumes ("Reused, TLSv1.3") and the
# resumed connection still carries the client's SPIFFE ID (B's allow list admits it); a loop of
# full handshakes spread over more than 3 s passes (wolfSSL's default ticket key failed all
# handshakes about 2 s after the first ticket).
# shellcheck disable=SC1091
. "$(dirname "$0")/lib.sh"

need_cmd curl openssl wrk
up=$(free_port)
aport=$(free_port)
bport=$(free_port)
aadmin=$(free_port)
badmin=$(free_port)
start_nginx_upstream "$up" "behind-b"

cd "$T"
"$NODUS" ca init ca --trust-domain mesh.local >/dev/null
issue_a() { "$NODUS" ca issue ca --id spiffe://mesh.local/ns/edge/sa/node-a --ttl "$1" --out a >/dev/null; }
issue_b() {
    "$NODUS" ca issue ca --id spiffe://mesh.local/ns/prod/sa/node-b --dns localhost --ttl "$1" \
        --out b >/dev/null
}
issue_a 24h
issue_b 24h
"$NODUS" ca issue ca --id spiffe://mesh.local/ns/edge/sa/client --out client >/dev/null

cat >b.lua <<LUA
node { name = "node-b", workers = 2 }
identity { ca = "ca/ca.pem", cert = "b.pem", key = "b.key" }
admin { listen = "127.0.0.1:$badmin" }
cluster "web" { endpoints = { "127.0.0.1:$up" } }
listener "mesh" {
  listen = "127.0.0.1:$bport",
  plugins = {
    mtls { mode = "strict", allow = { "spiffe://mesh.local/ns/edge/*" }, tickets = true },
    router { { match = { prefix = "/" }, cluster = "web" } },
  },
}
LUA
cat >a.lua <<LUA
node { name = "node-a", workers = 2 }
identity { ca = "ca/ca.pem", cert = "a.pem", key = "a.key" }
admin { listen = "127.0.0.1:$aadmin" }
cluster "b" { endpoints = { "127.0.0.1:$bport" }, tls = "mutual",
              expect = { "spiffe://mesh.local/ns/prod/sa/node-b" } }
listener "in" {
  listen = "127.0.0.1:$aport",
  plugins = { router { { match = { prefix = "/" }, cluster = "b" } } },
}
LUA
"$NODUS" check b.lua >/dev/null || die "b.lua refused: $("$NODUS" check b.lua 2>&1)"
"$NODUS" check a.lua >/dev/null || die "a.lua refused: $("$NODUS" check a.lua 2>&1)"
start_nodus b.lua
blog=$NODUS_LOG
bpid=$NODUS_PID
wait_http "http://127.0.0.1:$badmin/ready" 15 || die "node b not ready"
start_nodus a.lua
apid=$NODUS_PID
wait_http "http://127.0.0.1:$aadmin/ready" 15 || die "node a not ready"

metric() { # ADMIN NAME
    curl -s --max-time 5 "http://127.0.0.1:$1/stats/prometheus" | awk -v n="$2" '$1 == n { print $2 }'
}
b_serial() {
    openssl s_client -connect "127.0.0.1:$bport" -cert client.pem -key client.key -CAfile ca/ca.pem \
        </dev/null 2>/dev/null | openssl x509 -noout -serial 2>/dev/null | cut -d= -f2
}
wait_expiry() { # ADMIN MAX_SECONDS: until nodus_cert_expiry_seconds <= MAX (the new files)
    local i v
    for ((i = 0; i < 50; i++)); do
        v=$(metric "$1" nodus_cert_expiry_seconds)
        [ -n "$v" ] && [ "${v%.*}" -le "$2" ] && return 0
        sleep 0.2
    done
    return 1
}

assert_eq behind-b "$(curl -sS --max-time 5 "http://127.0.0.1:$aport/")" "A -> B before rotation"
serial0=$(b_serial)
[ -n "$serial0" ] || die "no certificate served by B"
exp0=$(metric "$badmin" nodus_cert_expiry_seconds)
[ "${exp0%.*}" -gt 80000 ] || die "B's expiry gauge before rotation: $exp0"

# ---- load: keep-alive and short-lived connections, ~15 s, while both nodes rotate -----------
hs0=$(metric "$badmin" nodus_plugin_mtls_handshakes_total)
bg wrk-ka timeout 40 wrk -t1 -c4 -d15s --latency "http://127.0.0.1:$aport/ka"
wka=$BG_PID
bg wrk-close timeout 40 wrk -t1 -c2 -d15s -H 'Connection: close' "http://127.0.0.1:$aport/close"
wclose=$BG_PID
ttls=(20h 16h 12h 8h)
max=(72000 57600 43200 28800)
for ((r = 0; r < ${#ttls[@]}; r++)); do
    sleep 1.5
    issue_b "${ttls[$r]}"
    issue_a "${ttls[$r]}"
    wait_expiry "$badmin" "${max[$r]}" || die "rotation $r: B's nodus_cert_expiry_seconds did not follow"
    wait_expiry "$aadmin" "${max[$r]}" || die "rotation $r: A's nodus_cert_expiry_seconds did not follow"
    log "rotation $r: both nodes serve the ${ttls[$r]} certificate"
done
for p in "$wka" "$wclose"; do
    wait "$p" || die "wrk failed (exit $?)"
done
kill -0 "$apid" 2>/dev/null || die "node a exited"
kill -0 "$bpid" 2>/dev/null || die "node b exited"

check_wrk() { # LOGFILE NAME
    local f=$1 n
    n=$(awk '/requests in/ { print $1 }' "$f")
    [ "${n:-0}" -ge 50 ] || die "$2: too few requests ($n): $(cat "$f")"
    grep -q "Non-2xx or 3xx responses" "$f" && die "$2: non-2xx answers: $(cat "$f")"
    grep -q "Socket errors" "$f" && die "$2: socket errors: $(cat "$f")"
    log "$2: $n requests, all 2xx, no socket error"
}
check_wrk "$T/wrk-ka.log" "keep-alive"
check_wrk "$T/wrk-close.log" "connection: close"

serial1=$(b_serial)
if [ -z "$serial1" ] || [ "$serial1" = "$serial0" ]; then
    die "B's served certificate did not change ($serial0 -> $serial1)"
fi
hs1=$(metric "$badmin" nodus_plugin_mtls_handshakes_total)
# A's connections to B: new ones during the run (pool churn under Connection: close, rotation)
[ "$((${hs1:-0} - ${hs0:-0}))" -ge 2 ] || die "no new A -> B handshakes during the run ($hs0 -> $hs1)"
log "A -> B handshakes during the run: $((hs1 - hs0))"
refused=$(metric "$badmin" nodus_plugin_mtls_refused_total)
assert_eq 0 "${refused:-0}" "mtls refusals on B during the rotations"
grep -c "identity: spiffe://mesh.local/ns/prod/sa/node-b, certificate valid until" "$blog" >/dev/null ||
    die "B did not log its new certificate"

# ---- session tickets ---------------------------------------------------------------------------
req() {
    printf 'GET / HTTP/1.1\r\nHost: b\r\nConnection: close\r\n\r\n'
    sleep 0.5 # TLS 1.3 tickets arrive after the handshake
}
req | openssl s_client -connect "127.0.0.1:$bport" -cert client.pem -key client.key -CAfile ca/ca.pem \
    -sess_out sess >s1 2>&1 || true
assert_contains "$(cat s1)" "New, TLSv1.3"
[ -s sess ] || die "openssl got no session ticket: $(tail -5 s1)"
r0=$(metric "$badmin" nodus_plugin_mtls_resumed_total)
# no client certificate this time: the identity comes from the ticket
req | openssl s_client -connect "127.0.0.1:$bport" -CAfile ca/ca.pem -sess_in sess >s2 2>&1 || true
assert_contains "$(cat s2)" "Reused, TLSv1.3"
assert_contains "$(cat s2)" "behind-b"
r1=$(metric "$badmin" nodus_plugin_mtls_resumed_total)
[ "${r1:-0}" -gt "${r0:-0}" ] || die "resumed counter did not move ($r0 -> $r1)"
# curl (full handshakes, each process new) over more than 3 s on one context
start=$SECONDS
n=0
while ((SECONDS - start < 4)); do
    out=$(curl -sS --max-time 5 --cacert ca/ca.pem --cert client.pem --key client.key \
        --resolve "localhost:$bport:127.0.0.1" "https://localhost:$bport/t$n") ||
        die "handshake $n failed after $((SECONDS - start)) s (tickets)"
    assert_eq behind-b "$out" "request $n"
    n=$((n + 1))
done
log "$n full ticketed handshakes over 4 s"
pass "rotation of both nodes under load (no error, new serial, expiry gauges), tickets resume"
