#!/usr/bin/env bash
# A drain (SIGTERM) finishes what the user-space TCP still has to send: nodus on DPDK
# (af_packet) in mid of the raw namespace topology, nginx in up, a Python client in cli, 2% of the
# frames dropped on every port (fault injection) so that the tail needs retransmissions.
#   1. The client asks for 900 KB with "Connection: close", reads 64 KiB and stops reading (a
#      64 KiB receive buffer: its window closes). The node has the whole response queued on the
#      client connection, the session ends (the proxy's linger bound passes with no FIN from the
#      client) and the engine keeps the connection as an orphan with ~800 KB unsent. SIGTERM
#      comes meanwhile; the client reads on 4 s after the request. The worker must not stop before
#      the peer has acknowledged all of it: the 900 KB arrive intact (before, the worker stopped
#      when its last session ended and the stack went with the tail: the client got ~100 KB).
#   2. The same client never reads again: the drain timeout (3 s) ends the wait, and the node
#      says what it left (a warning with the connections and bytes).
# Skips when not root, or when the EAL cannot start here (nodus exits 3).
# shellcheck disable=SC1091
. "$(dirname "$0")/lib.sh"

need_root
need_cmd ip nginx python3 sha256sum ethtool

P=$(netns_prefix)
netns_topology "$P" raw
CLI=$P-cli MID=$P-mid UP=$P-up
NODE=198.18.0.2 UPIP=198.18.1.1
ADMIN=127.0.0.1:15000
export ASAN_OPTIONS=${ASAN_OPTIONS:-}:detect_leaks=0 # the EAL keeps some memory until exit

mkdir -p "$T/www/files"
head -c 900000 /dev/urandom >"$T/www/files/tail"
WANT=$(sha256sum "$T/www/files/tail" | cut -d' ' -f1)
IN_NETNS=$UP NGINX_FILES=$T/www/files start_nginx_upstream 80 "hello from nginx" "$UPIP"

write_cfg() { # DRAIN-TIMEOUT
    cat >"$T/drain.lua" <<LUA
node { name = "dpdk-drain", workers = 1, io = "dpdk", drain_timeout = "$1" }
dpdk {
  args = { "--no-huge", "-m", "256", "--no-pci", "--no-shconf", "-l", "0", "--log-level=notice" },
  ports = { { dev = "net_af_packet0,iface=m0", ip = "198.18.0.2/24" },
            { dev = "net_af_packet1,iface=m1", ip = "198.18.1.2/24" } },
  fault = { drop = 0.02, seed = 11 },
}
admin { listen = "$ADMIN" }
cluster "nginx" { endpoints = { "$UPIP:80" } }
listener "ingress" {
  listen = "0.0.0.0:8080", protocol = "http",
  plugins = { router { { match = { prefix = "/" }, cluster = "nginx" } } },
}
LUA
    echo "$T/drain.lua"
}

# client RESUME-AFTER OUT: the request, 64 KiB read (then OUT.ready), then nothing until
# RESUME-AFTER s after the request (never when 0); writes the body's sha256 and length to OUT
client() {
    ip netns exec "$CLI" python3 - "$NODE" "$1" "$2" <<'PY' &
import hashlib, socket, sys, time
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
s.settimeout(20)
s.connect((sys.argv[1], 8080))
t0 = time.monotonic()
s.sendall(b"GET /files/tail HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
data = b""
while len(data) < 65536:
    b = s.recv(65536)
    if not b:
        break
    data += b
open(sys.argv[3] + ".ready", "w").write("ok\n")
resume = float(sys.argv[2])
if resume:
    time.sleep(max(0, t0 + resume - time.monotonic()))
    try:
        while True:
            b = s.recv(65536)
            if not b:
                break
            data += b
    except OSError:
        pass
else:
    time.sleep(8)
body = data.split(b"\r\n\r\n", 1)[1] if b"\r\n\r\n" in data else b""
open(sys.argv[3], "w").write("%s %d\n" % (hashlib.sha256(body).hexdigest(), len(body)))
PY
    CLIENT_PID=$!
}
# client_started OUT: waits (at most 20 s) until the client has read its first 64 KiB
client_started() {
    local i
    for ((i = 0; i < 200; i++)); do [ -s "$1.ready" ] && return 0; sleep 0.1; done
    die "the client did not get its first 64 KiB"
}

# 1. the tail of an orphaned connection is delivered and acknowledged before the worker stops
start_dpdk_node "$(write_cfg 8s)" "$ADMIN" "$MID"
client 4 "$T/c1"
client_started "$T/c1"
t0=$EPOCHREALTIME
stop_node
wait "$CLIENT_PID" || die "client failed"
assert_eq "$WANT 900000" "$(cat "$T/c1")" "900 KB across SIGTERM, the client reading again after 4 s"
grep -q 'drain timeout' "$NODUS_LOG" && die "the drain timed out: $(grep 'drain timeout' "$NODUS_LOG")"
grep -q 'had not acknowledged' "$NODUS_LOG" && die "$(grep 'had not acknowledged' "$NODUS_LOG")"
log "drained in $(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.2f", b - a }') s with the tail delivered"

# 2. a client that never reads: the drain timeout ends the wait, and says so
start_dpdk_node "$(write_cfg 3s)" "$ADMIN" "$MID"
client 0 "$T/c2"
client_started "$T/c2"
stop_node
grep -q 'drain timeout: closing 1 worker' "$NODUS_LOG" || die "no drain timeout logged"
grep -Eq 'dpdk worker 0: stopped with 1 closed connection\(s\) whose peers had not acknowledged all data \([1-9][0-9]* bytes' "$NODUS_LOG" ||
    die "what the drain left is not logged: $(grep -i 'drain' "$NODUS_LOG")"
kill "$CLIENT_PID" 2>/dev/null || true
wait "$CLIENT_PID" 2>/dev/null || true
pass "a drain finishes the orphaned tail (900 KB intact with 2% drop), bounded by the drain timeout (logged)"
