#!/usr/bin/env bash
# Mutual TLS as users run it, against independent peers (curl, openssl s_client, python sockets):
# `nodus ca` makes the CA and the certificates; a strict and a permissive listener in front of
# nginx; what strict refuses (plaintext, no client certificate, another CA's certificate, an
# expired one, an ID outside the allow list, garbage, a truncated or stalled ClientHello), each
# with a log line and a counter; permissive serving plaintext and TLS on one port; the node's
# certificate files replaced under a loop of requests (no failure, the new certificate served);
# a node that issues its own certificate from a CA directory and renews it; config errors.
# shellcheck disable=SC1091
. "$(dirname "$0")/lib.sh"

need_cmd curl openssl python3
up=$(free_port)
sport=$(free_port)
pport=$(free_port)
admin=$(free_port)
start_nginx_upstream "$up" "hello"

# ---- nodus ca ----------------------------------------------------------------------------------
cd "$T"
"$NODUS" ca init ca --trust-domain mesh.local >/dev/null
"$NODUS" ca issue ca --id spiffe://mesh.local/ns/edge/sa/node --dns localhost --out node >/dev/null
"$NODUS" ca issue ca --id spiffe://mesh.local/ns/test/sa/client --out client >/dev/null
"$NODUS" ca issue ca --id spiffe://mesh.local/ns/other/sa/client --out outsider >/dev/null
"$NODUS" ca issue ca --id spiffe://mesh.local/ns/test/sa/late --ttl 1s --out expired >/dev/null
"$NODUS" ca init other --trust-domain mesh.local >/dev/null
"$NODUS" ca issue other --id spiffe://mesh.local/ns/test/sa/client --out forged >/dev/null
assert_eq 600 "$(stat -c %a ca/ca.key)" "CA key mode"
assert_eq 600 "$(stat -c %a client.key)" "workload key mode"
openssl verify -CAfile ca/ca.pem client.pem >/dev/null || die "openssl does not verify client.pem"
openssl x509 -in node.pem -noout -ext subjectAltName | grep -q 'URI:spiffe://mesh.local/ns/edge/sa/node' ||
    die "node.pem lacks its SPIFFE ID"
"$NODUS" ca issue ca --ca inter >/dev/null
openssl x509 -in inter/ca.pem -noout -text | grep -q 'CA:TRUE, pathlen:0' || die "intermediate"
rc=0; "$NODUS" ca issue ca --out x 2>/dev/null || rc=$?
assert_eq 2 "$rc" "usage error exit code"
rc=0; "$NODUS" ca issue ca --id spiffe://elsewhere/ns/a/sa/b --out x 2>"$T/err" || rc=$?
assert_eq 1 "$rc" "failure exit code"
assert_contains "$(cat "$T/err")" "trust domain"
rc=0; "$NODUS" ca init ca 2>/dev/null || rc=$?
assert_eq 1 "$rc" "init refuses to replace a CA"

# ---- config errors -----------------------------------------------------------------------------
cat >bad1.lua <<LUA
cluster "up" { endpoints = { "127.0.0.1:$up" } }
listener "s" { listen = "127.0.0.1:$sport",
  plugins = { mtls { }, router { { match = { prefix = "/" }, cluster = "up" } } } }
LUA
"$NODUS" check bad1.lua >out 2>&1 && die "mtls without identity accepted"
assert_contains "$(cat out)" "bad1.lua:3: listener \"s\": mtls mode \"strict\" needs the node identity"
printf 'identity { ca = "ca/ca.pem", cert = "node.pem", key = "node.key", colour = 1 }\n' >bad2.lua
"$NODUS" check bad2.lua >out 2>&1 && die "unknown identity key accepted"
assert_contains "$(cat out)" "bad2.lua:1: identity: unknown key 'colour'"
printf 'identity { ca = "ca/ca.pem", cert = 5, key = "node.key" }\n' >bad3.lua
"$NODUS" check bad3.lua >out 2>&1 && die "wrong type accepted"
assert_contains "$(cat out)" "bad3.lua:1: identity: 'cert'"
printf 'identity { ca = "ca/ca.pem", cert = "node.pem", key = "node.key" }\nlistener "s" { listen = "127.0.0.1:1", plugins = { mtls { mode = "loose" } } }\n' >bad4.lua
"$NODUS" check bad4.lua >out 2>&1 && die "bad mode accepted"
assert_contains "$(cat out)" "bad4.lua:2: "
assert_contains "$(cat out)" "'mode' must be"
cp node.key loose.key && chmod 644 loose.key
printf 'identity { ca = "ca/ca.pem", cert = "node.pem", key = "loose.key" }\n' >bad5.lua
"$NODUS" check bad5.lua >out 2>&1 && die "a world-readable key accepted"
assert_contains "$(cat out)" "accessible by group or others"
printf 'identity { ca = "ca/ca.pem", cert = "node.pem", key = "client.key" }\n' >bad6.lua
"$NODUS" check bad6.lua >out 2>&1 && die "a key of another certificate accepted"
assert_contains "$(cat out)" "bad6.lua:1: identity: the private key does not belong"

# ---- a node with a strict and a permissive listener --------------------------------------------
cat >mtls.lua <<LUA
node { name = "mtls", workers = 2 }
admin { listen = "127.0.0.1:$admin" }
identity { ca = "ca/ca.pem", cert = "node.pem", key = "node.key" }
cluster "up" { endpoints = { "127.0.0.1:$up" } }
listener "strict" {
  listen = "127.0.0.1:$sport", idle_timeout = "3s",
  plugins = {
    mtls { mode = "strict", allow = { "spiffe://mesh.local/ns/test/*" }, alpn = "http/1.1",
           handshake_timeout = "1s", log_peers = true },
    router { { match = { prefix = "/" }, cluster = "up" } },
  },
}
listener "permissive" {
  listen = "127.0.0.1:$pport",
  plugins = { mtls { mode = "permissive" }, router { { match = { prefix = "/" }, cluster = "up" } } },
}
LUA
"$NODUS" check mtls.lua >/dev/null || die "config refused: $("$NODUS" check mtls.lua 2>&1)"
start_nodus "$T/mtls.lua"
wait_http "http://127.0.0.1:$admin/ready" 15 || die "nodus not ready"

metric() { curl -s "http://127.0.0.1:$admin/stats/prometheus" | awk -v n="$1" '$1 == n { print $2 }'; }
mc() { metric "nodus_plugin_mtls_$1_total"; }
tls_curl() { curl -sS --max-time 5 --cacert ca/ca.pem "$@"; }

# a verified client
out=$(tls_curl --cert client.pem --key client.key "https://localhost:$sport/")
assert_eq hello "$out" "curl with a client certificate"
grep -q "mtls: 127.0.0.1 is spiffe://mesh.local/ns/test/sa/client (TLSv1.3, alpn http/1.1)" "$NODUS_LOG" ||
    die "the peer's SPIFFE ID was not logged as its principal"
s_out=$(openssl s_client -connect "127.0.0.1:$sport" -cert client.pem -key client.key \
    -CAfile ca/ca.pem -verify_return_error -brief </dev/null 2>&1 || true)
assert_contains "$s_out" "Protocol version: TLSv1.3"
assert_contains "$s_out" "Verification: OK"
openssl s_client -connect "127.0.0.1:$sport" -cert client.pem -key client.key -CAfile ca/ca.pem \
    -tls1_2 </dev/null >/dev/null 2>&1 && die "TLS 1.2 accepted without tls12 = true"

# refusals: each one counted and logged with its reason and the peer
refused() { # REASON: the counter moved, and a log line says so
    local want=$1 i
    for ((i = 0; i < 30; i++)); do
        [ "$(mc "refused_$want")" -ge 1 ] 2>/dev/null && break
        sleep 0.1
    done
    [ "$(mc "refused_$want")" -ge 1 ] || die "refusal '$want' not counted"
    grep -q "mtls: refused 127.0.0.1 (strict): $want: " "$NODUS_LOG" || die "refusal '$want' not logged"
    log "refused as expected: $want"
}
code=$(http_status "http://127.0.0.1:$sport/")
assert_eq 000 "$code" "plaintext on strict gets no answer"
refused plaintext
tls_curl "https://localhost:$sport/" >/dev/null 2>&1 && die "no client certificate accepted"
refused no_client_cert
tls_curl --cert forged.pem --key forged.key "https://localhost:$sport/" >/dev/null 2>&1 &&
    die "a certificate of another CA accepted"
refused untrusted_cert
sleep 1.2 # expired.pem was valid for 1 s
tls_curl --cert expired.pem --key expired.key "https://localhost:$sport/" >/dev/null 2>&1 &&
    die "an expired certificate accepted"
refused expired_cert
tls_curl --cert outsider.pem --key outsider.key "https://localhost:$sport/" >/dev/null 2>&1 &&
    die "an ID outside the allow list accepted"
refused peer_id

# raw bytes: garbage, a truncated ClientHello (then EOF), a ClientHello that stalls
cat >raw.py <<'PY'
import socket, sys, time
port, what = int(sys.argv[1]), sys.argv[2]
s = socket.create_connection(("127.0.0.1", port), timeout=10)
hello = bytes([0x16, 3, 1, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 3, 3]) + bytes(32)
if what == "garbage":
    s.sendall(bytes([0x00, 0xff, 0x13, 0x37]) * 64)
elif what == "truncated":
    s.sendall(hello)
    s.shutdown(socket.SHUT_WR)
elif what == "stall":
    s.sendall(hello)
t = time.time()
try:
    while s.recv(4096):
        pass
except (ConnectionResetError, socket.timeout):
    pass
print("%.1f" % (time.time() - t))
PY
python3 raw.py "$sport" garbage >/dev/null
refused not_tls
python3 raw.py "$sport" truncated >/dev/null
refused truncated
took=$(python3 raw.py "$sport" stall)
log "a stalled ClientHello was closed after ${took}s (handshake_timeout 1s)"
awk -v t="$took" 'BEGIN { exit !(t < 2.5) }' || die "stalled handshake held ${took}s"
refused timeout
[ "$(mc handshakes)" -ge 2 ] || die "handshakes completed (curl, s_client): $(mc handshakes)"

# permissive: plaintext and TLS on the same port
assert_eq hello "$(curl -sS --max-time 5 "http://127.0.0.1:$pport/")" "plaintext on permissive"
assert_eq hello "$(tls_curl --cert client.pem --key client.key "https://localhost:$pport/")" \
    "TLS on permissive"
tls_curl "https://localhost:$pport/" >/dev/null 2>&1 && die "permissive accepted TLS without a client certificate"
[ "$(mc plaintext_accepted)" -ge 1 ] || die "plaintext_accepted not counted"
exp=$(metric nodus_cert_expiry_seconds)
[ "${exp:-0}" -gt 80000 ] && [ "$exp" -le 86400 ] || die "nodus_cert_expiry_seconds: $exp"

# ---- rotation: new certificate files under a loop of requests ----------------------------------
serial_of() { openssl x509 -noout -serial -in "$1" | cut -d= -f2; }
served_serial() {
    openssl s_client -connect "127.0.0.1:$sport" -cert client.pem -key client.key -CAfile ca/ca.pem \
        </dev/null 2>/dev/null | openssl x509 -noout -serial | cut -d= -f2
}
old=$(serial_of node.pem)
assert_eq "$old" "$(served_serial)" "serial served before rotation"
(
    end=$((SECONDS + 6))
    while [ $SECONDS -lt $end ]; do
        curl -s -o /dev/null -w '%{http_code}\n' --max-time 5 --cacert ca/ca.pem \
            --cert client.pem --key client.key "https://localhost:$sport/" || echo fail
    done
) >codes &
loop=$!
sleep 1.5
"$NODUS" ca issue ca --id spiffe://mesh.local/ns/edge/sa/node --dns localhost --ttl 48h --out node >/dev/null
new=$(serial_of node.pem)
wait "$loop"
total=$(wc -l <codes)
bad=$(grep -vc '^200$' codes || true)
log "rotation: $total requests during the swap, $bad failed"
[ "$total" -ge 10 ] || die "too few requests in the rotation loop ($total)"
assert_eq 0 "$bad" "failed requests during rotation"
assert_eq "$new" "$(served_serial)" "serial served after rotation"
grep -q "identity: spiffe://mesh.local/ns/edge/sa/node, certificate valid until" "$NODUS_LOG" || die "no reload line"
exp=$(metric nodus_cert_expiry_seconds)
[ "$exp" -gt 86400 ] || die "nodus_cert_expiry_seconds did not follow the new certificate: $exp"

# a broken replacement (a key that is not the certificate's) is refused, the old one kept
cp client.key node.key
sleep 2.5
grep -q "identity: the files changed but cannot be used" "$NODUS_LOG" || die "bad files not reported"
assert_eq "$new" "$(served_serial)" "the previous certificate is kept"
stop_pid "$NODUS_PID"
clean_exit() {
    ! grep -Eq "ERROR: (Address|Leak)Sanitizer|runtime error" "$NODUS_LOG" || die "sanitizer report in $NODUS_LOG"
}
clean_exit

# ---- a node that issues its own certificate and renews it at half its lifetime -----------------
cat >self.lua <<LUA
node { name = "self", workers = 1 }
admin { listen = "127.0.0.1:$admin" }
identity { ca_dir = "ca", id = "spiffe://mesh.local/ns/edge/sa/self", ttl = "12s" }
cluster "up" { endpoints = { "127.0.0.1:$up" } }
listener "strict" { listen = "127.0.0.1:$sport",
  plugins = { mtls { }, router { { match = { prefix = "/" }, cluster = "up" } } } }
LUA
start_nodus "$T/self.lua"
wait_http "http://127.0.0.1:$admin/ready" 15 || die "self-issuing nodus not ready"
first=$(served_serial)
[ -n "$first" ] || die "no certificate served"
assert_eq hello "$(tls_curl --cert client.pem --key client.key --resolve "self:$sport:127.0.0.1" \
    -k "https://self:$sport/")" "request to the self-issued node"
sleep 7.5
second=$(served_serial)
[ -n "$second" ] && [ "$second" != "$first" ] || die "not renewed at half its lifetime ($first, $second)"
[ "$(grep -c 'identity: spiffe://mesh.local/ns/edge/sa/self, certificate valid until' "$NODUS_LOG")" -ge 2 ] ||
    die "renewal not logged"
stop_pid "$NODUS_PID"
clean_exit
pass "nodus ca, strict and permissive mTLS, refusals counted and logged, rotation without failures, self-issued renewal"
