#!/usr/bin/env bash
# Many connections: 10,000 idle client connections held at once by a node with 2 workers, then
# a request on every 100th of them answered; node.max_connections refuses what is over it (closed
# at once, counted) while the connections it holds keep working; memory returns near its level
# once they close; `nodus sockets` stays bounded over them. Reports the resident memory of each phase (figures for bench/RESULTS.md come
# from the release build: the sanitizers of the test build inflate memory).
# shellcheck disable=SC1091
. "$(dirname "$0")/lib.sh"

need_cmd curl python3 nginx
[ "$(ulimit -Hn)" -ge 12000 ] || skip "open-file hard limit $(ulimit -Hn) < 12000"
ulimit -n "$(ulimit -Hn)"

up=$(free_port)
port=$(free_port)
lim_port=$(free_port)
admin=$(free_port)
start_nginx_upstream "$up" "ok"

cfg=$(write_file conns.lua <<LUA
node { name = "conns", workers = 2, max_connections = 10100 }
admin { listen = "$NODE_IP:$admin" }
cluster "up" { endpoints = { "$PEER_IP:$up" } }
listener "web" {
  listen = "$NODE_IP:$port", protocol = "http", idle_timeout = "120s",
  plugins = { router { { match = { prefix = "/" }, cluster = "up" } } },
}
LUA
)
start_nodus "$cfg"
wait_http "http://$NODE_IP:$admin/ready" 15 || die "nodus not ready"
elapsed() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.2f", b - a }'; }
rss() { awk '/^VmRSS/ { print int($2 / 1024) }' "/proc/$NODUS_PID/status"; }
gauge() {
    curl -s "http://$NODE_IP:$admin/stats/prometheus" | awk -v n="$1" '$1 == n { print $2 }'
}
rss0=$(rss)

# hold 10,000 connections; when $T/go appears, send a request on every 100th and count the 200s
python3 - "$port" 10000 "$T/go" >"$T/held.out" 2>&1 <<'PY' &
import os, resource, socket, sys, time
hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
port, n, go = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
socks = []
for i in range(n):
    socks.append(socket.create_connection((os.environ["NODE_IP"], port), timeout=10))
print("held", len(socks), flush=True)
deadline = time.time() + 120
while not os.path.exists(go) and time.time() < deadline:
    time.sleep(0.1)
ok = 0
for s in socks[::100]:
    s.sendall(b"GET /x HTTP/1.1\r\nHost: t\r\n\r\n")
for s in socks[::100]:
    data = b""
    while b"\r\n\r\n" not in data:
        b = s.recv(4096)
        if not b:
            break
        data += b
    ok += data.startswith(b"HTTP/1.1 200")
print("answered", ok, flush=True)
for s in socks:
    s.close()
PY
client=$!
cleanup kill "$client"
for i in $(seq 600); do
    grep -q '^held' "$T/held.out" && break
    kill -0 "$client" 2>/dev/null || die "client failed: $(cat "$T/held.out")"
    sleep 0.1
done
assert_eq "held 10000" "$(head -1 "$T/held.out")" "client connections opened"
for i in $(seq 50); do [ "$(gauge nodus_downstream_cx_active)" = 10000 ] && break; sleep 0.1; done
assert_eq 10000 "$(gauge nodus_downstream_cx_active)" "connections held by the node"
rss1=$(rss)

# nodus sockets over 10,000 connections: a bounded answer that says it is cut, both workers'
t0=$EPOCHREALTIME
curl -s --max-time 30 "http://$NODE_IP:$admin/sockets" >"$T/socks.json"
python3 - "$T/socks.json" "$port" <<'PY' || die "GET /sockets with 10,000 connections: $(head -c 300 "$T/socks.json")"
import json, os, sys
d = json.load(open(sys.argv[1]))
assert d["truncated"] and d["limit"] == 8192 and len(d["sockets"]) == 8192, d["limit"]
assert d["total"] >= 10003, d["total"]  # + 2 listeners, the admin listener and this request
ours = [s for s in d["sockets"] if s["local"] == os.environ["NODE_IP"] + ":" + sys.argv[2]]
assert {s["worker"] for s in ours if s["state"] == "ESTABLISHED"} == {0, 1}
assert sorted(s["worker"] for s in ours if s["state"] == "LISTEN") == [0, 1]
PY
out=$("$NODUS" sockets --admin "$NODE_IP:$admin" | tail -1)
assert_contains "$out" "truncated: 8192 of" "nodus sockets with 10,000 connections"
log "nodus sockets over 10,000 connections: $(elapsed "$t0") s ($(stat -c %s "$T/socks.json") bytes of JSON)"

# over the limit (10,100): of 200 more connections, 100 are held and 100 closed at once
python3 - "$port" >"$T/extra" <<'PY'
import os, socket, sys
served = closed = 0
held = []
for _ in range(200):
    try:
        s = socket.create_connection((os.environ["NODE_IP"], int(sys.argv[1])), timeout=5)
        held.append(s)
        s.sendall(b"GET /y HTTP/1.1\r\nHost: t\r\n\r\n")
        data = s.recv(4096)
    except OSError:
        data = b""
    if data.startswith(b"HTTP/1.1 200"):
        served += 1
    else:
        closed += 1
print(served, closed)
PY
assert_eq "100 100" "$(cat "$T/extra")" "connections over node.max_connections refused"
grep -Eq '^nodus_overload_rejects_total 100$' <(curl -s "http://$NODE_IP:$admin/stats/prometheus") ||
    die "refusals not counted"
grep -q "connection limit reached" "$NODUS_LOG" || die "refusal not logged"

touch "$T/go"
wait "$client" || die "client failed: $(cat "$T/held.out")"
assert_eq "answered 100" "$(sed -n 2p "$T/held.out")" "requests on held connections"
for i in $(seq 50); do [ "$(gauge nodus_downstream_cx_active)" = 0 ] && break; sleep 0.1; done
assert_eq 0 "$(gauge nodus_downstream_cx_active)" "connections after the client left"
rss2=$(rss)
log "resident memory: idle ${rss0} MB, 10,000 connections ${rss1} MB, after ${rss2} MB"
pass "10,000 idle connections held and served, limit enforced (RSS ${rss0}/${rss1}/${rss2} MB)"
