#!/usr/bin/env bash
# The ends of an mTLS connection, with real peers (python sockets and ssl, curl, openssl):
# handshake_timeout closes a client that connects and says nothing, or stops half way through its
# ClientHello, while verified clients keep being served; an upstream (tls = "mutual") that
# accepts TCP and never answers the ClientHello fails as a connect failure (503, UF) within the
# cluster's handshake_timeout; every connection the node ends (Connection: close, idle timeout)
# gets a TLS close_notify before the FIN (python's ssl sees a clean shutdown, not "EOF in
# violation of protocol"); upstream connections resume their TLS session (tickets), counted on
# both nodes.
# shellcheck disable=SC1091
. "$(dirname "$0")/lib.sh"

need_cmd curl openssl python3
up=$(free_port)
bport=$(free_port)
aport=$(free_port)
silent=$(free_port)
badmin=$(free_port)
aadmin=$(free_port)
start_nginx_upstream "$up" "hello"

cd "$T"
"$NODUS" ca init ca --trust-domain mesh.local >/dev/null
"$NODUS" ca issue ca --id spiffe://mesh.local/ns/edge/sa/node-b --dns localhost --out b >/dev/null
"$NODUS" ca issue ca --id spiffe://mesh.local/ns/edge/sa/node-a --out a >/dev/null
"$NODUS" ca issue ca --id spiffe://mesh.local/ns/test/sa/client --out client >/dev/null

# a server that accepts TCP connections and never says a word
cat >silent.py <<'PY'
import socket, sys, time
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1])))
s.listen(64)
held = []
while True:
    c, _ = s.accept()
    held.append(c)
PY
bg silent python3 silent.py "$silent"

# ---- node B: an mtls listener with a short handshake_timeout -----------------------------------
cat >b.lua <<LUA
node { name = "node-b", workers = 2 }
identity { ca = "ca/ca.pem", cert = "b.pem", key = "b.key" }
admin { listen = "127.0.0.1:$badmin" }
cluster "web" { endpoints = { "127.0.0.1:$up" } }
listener "mesh" {
  listen = "127.0.0.1:$bport", idle_timeout = "2s",
  plugins = {
    mtls { mode = "strict", handshake_timeout = "1s" },
    router { { match = { prefix = "/" }, cluster = "web" } },
  },
}
LUA
"$NODUS" check b.lua >/dev/null || die "b.lua refused: $("$NODUS" check b.lua 2>&1)"
start_nodus b.lua
bpid=$NODUS_PID
blog=$NODUS_LOG
wait_http "http://127.0.0.1:$badmin/ready" 15 || die "node b not ready"
metric() { curl -s "http://127.0.0.1:$1/stats/prometheus" | awk -v n="$2" '$1 == n { print $2 }'; }

# silent clients, and one that stops after part of a ClientHello: closed after ~1 s
cat >raw.py <<'PY'
import socket, sys, time
port, what = int(sys.argv[1]), sys.argv[2]
s = socket.create_connection(("127.0.0.1", port), timeout=20)
if what == "partial":
    s.sendall(bytes([0x16, 3, 1, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 3, 3]) + bytes(32))
t = time.time()
try:
    while s.recv(4096):
        pass
except (ConnectionResetError, socket.timeout):
    pass
print("%.2f" % (time.time() - t))
PY
python3 raw.py "$bport" silent >t1 &
p1=$!
python3 raw.py "$bport" partial >t2 &
p2=$!
sleep 0.3
# meanwhile a verified client is served, several times
for i in 1 2 3; do
    out=$(curl -sS --max-time 5 --cacert ca/ca.pem --cert client.pem --key client.key \
        "https://localhost:$bport/")
    assert_eq hello "$out" "verified client while silent ones wait ($i)"
done
wait "$p1" "$p2"
log "silent client closed after $(cat t1)s, half ClientHello after $(cat t2)s (handshake_timeout 1s, idle_timeout 2s)"
awk -v a="$(cat t1)" -v b="$(cat t2)" 'BEGIN { exit !(a >= 0.6 && a < 1.9 && b >= 0.6 && b < 1.9) }' ||
    die "handshake_timeout not enforced: $(cat t1)s, $(cat t2)s"
assert_eq 2 "$(metric "$badmin" nodus_plugin_mtls_refused_timeout_total)" "refused_timeout"
assert_eq 2 "$(metric "$badmin" nodus_stream_timeouts_total)" "nodus_stream_timeouts_total"
grep -q "mtls: refused 127.0.0.1 (strict): timeout: no byte within handshake_timeout" "$blog" ||
    die "silent client's timeout not logged"
grep -q "mtls: refused 127.0.0.1 (strict): timeout: the TLS handshake did not finish" "$blog" ||
    die "stalled handshake's timeout not logged"

# ---- close_notify before the FIN: Connection: close, and the idle timeout -----------------------
cat >shut.py <<'PY'
import socket, ssl, sys, time
port, how = int(sys.argv[1]), sys.argv[2]
ctx = ssl.create_default_context(cafile="ca/ca.pem")
ctx.load_cert_chain("client.pem", "client.key")
raw = socket.create_connection(("127.0.0.1", port), timeout=10)
s = ctx.wrap_socket(raw, server_hostname="localhost", suppress_ragged_eofs=False)
req = "GET / HTTP/1.1\r\nHost: localhost\r\n%s\r\n" % ("Connection: close\r\n" if how == "close" else "")
s.sendall(req.encode())
data = b""
t = time.time()
try:
    while True:
        chunk = s.recv(4096)
        if not chunk:
            break  # close_notify received: a clean TLS end of stream
        data += chunk
except ssl.SSLEOFError as e:
    print("unclean: %s" % e)
    sys.exit(1)
assert data.startswith(b"HTTP/1.1 200"), data[:40]
print("clean shutdown after %.1fs" % (time.time() - t))
PY
python3 shut.py "$bport" close >o1 || die "Connection: close without close_notify: $(cat o1)"
python3 shut.py "$bport" idle >o2 || die "idle timeout without close_notify: $(cat o2)"
log "Connection: close: $(cat o1); idle timeout: $(cat o2)"
s_out=$(printf 'GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n' |
    timeout 10 openssl s_client -connect "127.0.0.1:$bport" -cert client.pem -key client.key \
        -CAfile ca/ca.pem -ign_eof 2>&1 || true)
assert_contains "$s_out" "hello"
case "$s_out" in *"unexpected eof"*) die "openssl saw an unexpected EOF: $s_out" ;; esac

# ---- node A: upstream mutual TLS, to node B (resumption) and to the silent server ---------------
cat >a.lua <<LUA
node { name = "node-a", workers = 1 }
identity { ca = "ca/ca.pem", cert = "a.pem", key = "a.key" }
admin { listen = "127.0.0.1:$aadmin" }
cluster "b" { endpoints = { "127.0.0.1:$bport" }, tls = "mutual", idle_timeout = "100ms" }
cluster "mute" { endpoints = { "127.0.0.1:$silent" }, tls = "mutual", handshake_timeout = "1s" }
listener "in" {
  listen = "127.0.0.1:$aport",
  plugins = { router {
    { match = { prefix = "/mute" }, cluster = "mute" },
    { match = { prefix = "/" }, cluster = "b" },
  } },
}
LUA
"$NODUS" check a.lua >/dev/null || die "a.lua refused: $("$NODUS" check a.lua 2>&1)"
start_nodus a.lua
wait_http "http://127.0.0.1:$aadmin/ready" 15 || die "node a not ready"

# five requests, each on a new upstream connection (the pooled one is closed after 100 ms)
b0=$(metric "$badmin" nodus_plugin_mtls_resumed_total)
for i in 1 2 3 4 5; do
    assert_eq hello "$(curl -sS --max-time 5 "http://127.0.0.1:$aport/r$i")" "request $i through a -> b"
    sleep 0.3
done
full=$(metric "$aadmin" nodus_plugin_mtls_upstream_handshakes_total)
resumed=$(metric "$aadmin" nodus_plugin_mtls_upstream_resumed_total)
bres=$(($(metric "$badmin" nodus_plugin_mtls_resumed_total) - ${b0:-0}))
log "upstream handshakes on node a: $full full, $resumed resumed; node b counted $bres resumed"
assert_eq 1 "$full" "full upstream handshakes"
assert_eq 4 "$resumed" "resumed upstream handshakes"
assert_eq 4 "$bres" "resumptions seen by node b"

# an upstream that never answers the ClientHello: 503 UF, within the retries' handshake timeouts
t0=$(date +%s.%N)
code=$(curl -s -o body -w '%{http_code}' --max-time 20 "http://127.0.0.1:$aport/mute" || true)
took=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.2f", b - a }')
log "silent upstream: $code after ${took}s (handshake_timeout 1s, 3 attempts)"
assert_eq 503 "$code" "silent upstream"
awk -v t="$took" 'BEGIN { exit !(t >= 0.9 && t < 4.5) }' || die "silent upstream answered after ${took}s"
curl -s "http://127.0.0.1:$aadmin/stats/prometheus" >am
grep -q 'destination_cluster="mute",.*response_code="503",response_flags="UF"' am || die "503 UF not counted"
grep -q 'cluster mute: TLS to 127.0.0.1:[0-9]* failed: no handshake within 1000 ms' "$NODUS_LOG" ||
    die "upstream handshake timeout not logged"
[ "$(metric "$aadmin" nodus_plugin_mtls_upstream_handshake_timeouts_total)" -ge 1 ] ||
    die "upstream handshake timeouts not counted"

stop_pid "$NODUS_PID"
stop_pid "$bpid"
for f in "$NODUS_LOG" "$blog"; do
    ! grep -Eq "ERROR: (Address|Leak)Sanitizer|runtime error" "$f" || die "sanitizer report in $f"
done
pass "handshake_timeout both ways, close_notify before FIN, upstream session resumption"
