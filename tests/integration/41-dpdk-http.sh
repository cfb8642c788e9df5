#!/usr/bin/env bash
# The whole proxy on DPDK: nodus with node.io = "dpdk" in mid of the raw namespace topology
# (tests/lib/netns.sh), owning both veths through net_af_packet (offloads off, no kernel
# address), with its user-space TCP towards curl in cli and nginx / tests/peers/upstream.py in up.
# Checked: GET, POST with a body (sha256 at the upstream), chunked both ways, keep-alive reuse on
# both sides, a 100 MB download and a 100 MB upload intact (sha256), 1,000 short connections in
# sequence, ping of both node addresses, the nodus_dpdk_* counters, `nodus status` and
# `nodus sockets`; then the 100 MB transfers again with fault injection (1% drop, 0.5% duplicate,
# 1% reorder) in bounded time. The admin listener is on the data path too (198.18.0.2:15000, the
# user-space TCP of the same port): every scrape, /ready, /config_dump, POST /reload, `nodus
# status` and `nodus sockets` come from cli.
# NODUS_DPDK_PMD=af_xdp runs it all on net_af_xdp ports instead (47-dpdk-afxdp does).
# Skips when not root, or when the EAL cannot start here (nodus exits 3).
# shellcheck disable=SC1091
. "$(dirname "$0")/lib.sh"

need_root
need_cmd ip curl nginx python3 sha256sum ethtool ping
PMD=${NODUS_DPDK_PMD:-af_packet}
case "$PMD" in af_packet | af_xdp) ;; *) die "NODUS_DPDK_PMD: af_packet or af_xdp, not '$PMD'" ;; esac

P=$(netns_prefix)
netns_topology "$P" raw
CLI=$P-cli MID=$P-mid UP=$P-up
NODE=198.18.0.2 UPIP=198.18.1.1
ADMIN=$NODE:15000 # on the DPDK port: reached from cli over the user-space TCP
# DPDK keeps some allocations until exit: leak reports there are not ours to fix
export ASAN_OPTIONS=${ASAN_OPTIONS:-}:detect_leaks=0

in_cli() { ip netns exec "$CLI" "$@"; }
in_mid() { ip netns exec "$MID" "$@"; }
metric() { # NAME: a metric's value from the node (0 when absent)
    in_cli curl -s --max-time 5 "http://$ADMIN/stats/prometheus" |
        awk -v k="$1" '$1 == k { print $2; f = 1 } END { if (!f) print 0 }'
}
elapsed() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.2f", b - a }'; }

# ---- upstreams in up: nginx (files, and a fixed answer) and the body-reading peer ----
head -c 100000000 /dev/urandom >"$T/big"
BIG_SHA=$(sha256sum "$T/big" | cut -d' ' -f1)
mkdir -p "$T/www/files"
ln "$T/big" "$T/www/files/big"
IN_NETNS=$UP NGINX_FILES=$T/www/files start_nginx_upstream 80 "hello from nginx" "$UPIP"
IN_NETNS=$UP start_peer_upstream 9000 "$UPIP"

# ---- the node ----
write_cfg() { # NAME [FAULT]
    cat >"$T/$1.lua" <<LUA
node { name = "dpdk-mid", workers = 1, io = "dpdk" }
dpdk {
  args = { "--no-huge", "-m", "256", "--no-pci", "--no-shconf", "-l", "0", "--log-level=notice" },
  ports = { { dev = "net_${PMD}0,iface=m0", ip = "198.18.0.2/24" },
            { dev = "net_${PMD}1,iface=m1", ip = "198.18.1.2/24" } },
  ${2:+fault = $2,}
}
admin { listen = "$ADMIN" }
cluster "nginx" { endpoints = { "$UPIP:80" } }
cluster "peer" { endpoints = { "$UPIP:9000" } }
listener "ingress" {
  listen = "0.0.0.0:8080", protocol = "http",
  plugins = {
    router {
      -- 100 MB through 1% loss takes longer than the default 15 s response timeout
      { match = { prefix = "/up" }, cluster = "peer", timeout = "120s" },
      { match = { prefix = "/chunked/" }, cluster = "peer" },
      { match = { prefix = "/" }, cluster = "nginx", timeout = "120s" },
    },
  },
}
LUA
    echo "$T/$1.lua"
}

start_node() { start_dpdk_node "$1" "$ADMIN" "$CLI"; }

transfers() { # LABEL MAXTIME: 100 MB down (nginx) and up (peer), sha256 both ends
    local label=$1 max=$2 t0 got
    t0=$EPOCHREALTIME
    got=$(in_cli curl -sS --max-time "$max" "http://$NODE:8080/files/big" 2>"$T/curl.err" |
        sha256sum | cut -d' ' -f1) || die "$label: download failed after $(elapsed "$t0") s: $(cat "$T/curl.err")"
    assert_eq "$BIG_SHA" "$got" "$label: 100 MB download"
    log "$label: 100 MB download in $(elapsed "$t0") s"
    t0=$EPOCHREALTIME
    got=$(in_cli curl -sS --max-time "$max" -T "$T/big" -H 'Expect:' "http://$NODE:8080/up" \
        2>"$T/curl.err") || die "$label: upload failed after $(elapsed "$t0") s: $(cat "$T/curl.err")"
    assert_eq "100000000 $BIG_SHA" "$got" "$label: 100 MB upload"
    log "$label: 100 MB upload in $(elapsed "$t0") s"
}

start_node "$(write_cfg clean)"
grep 'dpdk port' "$NODUS_LOG" >&2

# GET
got=$(in_cli curl -sS --max-time 5 "http://$NODE:8080/hello")
assert_eq "hello from nginx" "$got" "GET through the node"

# POST with a body, chunked upload, chunked download
head -c $((3 * 1024 * 1024 + 17)) /dev/urandom >"$T/blob"
want="$(stat -c %s "$T/blob") $(sha256sum "$T/blob" | cut -d' ' -f1)"
got=$(in_cli curl -sS --max-time 20 --data-binary @"$T/blob" -H 'Expect:' "http://$NODE:8080/up")
assert_eq "$want" "$got" "POST body"
got=$(in_cli curl -sS --max-time 20 -T - -H 'Transfer-Encoding: chunked' "http://$NODE:8080/up" <"$T/blob")
assert_eq "$want" "$got" "chunked upload"
in_cli curl -sS --max-time 20 -o "$T/dl" "http://$NODE:8080/chunked/2000000"
python3 -c 'import sys; p = bytes(range(256)) * 64; d = open(sys.argv[1], "rb").read()
sys.exit(len(d) != 2000000 or d != (p * (2000000 // len(p) + 1))[:2000000])' "$T/dl" ||
    die "chunked download corrupted or short"

# keep-alive: 100 requests on one client connection, over one pooled upstream connection
before=$(metric nodus_upstream_cx_total)
out=$(in_cli curl -s --max-time 20 -w '%{num_connects}\n' -o /dev/null "http://$NODE:8080/keep/[1-100]")
[ "$(awk '{ s += $1 } END { print s }' <<<"$out")" = 1 ] || die "client connections for 100 requests: $(awk '{ s += $1 } END { print s }' <<<"$out")"
after=$(metric nodus_upstream_cx_total)
[ $((after - before)) -le 1 ] || die "100 requests opened $((after - before)) upstream connections"
log "keep-alive: 100 requests, 1 client connection, $((after - before)) new upstream connection(s)"

# reload (SIGHUP): the new snapshot takes over the engine's listener; a client connection
# opened before it keeps working after it
in_cli python3 - "$NODE" >"$T/held.out" 2>&1 <<'PY' &
import socket, sys, time
s = socket.create_connection((sys.argv[1], 8080), timeout=10)
def get(path):
    s.sendall(b"GET " + path + b" HTTP/1.1\r\nHost: x\r\n\r\n")
    d = b""
    while not d.endswith(b"hello from nginx\n"):
        d += s.recv(4096)
    return d.startswith(b"HTTP/1.1 200")
ok = get(b"/before")
time.sleep(1.5)
print(ok and get(b"/after"))
PY
held=$!
sleep 0.5
kill -HUP "$NODUS_PID"
for ((i = 0; i < 50; i++)); do grep -q 'configuration reloaded' "$NODUS_LOG" && break; sleep 0.1; done
grep -q 'configuration reloaded' "$NODUS_LOG" || die "no reload"
got=$(in_cli curl -sS --max-time 5 "http://$NODE:8080/after-reload")
assert_eq "hello from nginx" "$got" "GET after a reload"
wait "$held" || true
assert_eq True "$(cat "$T/held.out")" "a connection opened before the reload, used after it"

# configuration errors name the file and line
bad=$(write_file bad.lua <<'LUA'
node { io = "dpdk" }
dpdk {
  ports = { { dev = "net_af_packet0,iface=m0", ip = "198.18.0.2/24" },
            { dev = "net_af_packet1,iface=m1", ip = "198.18.0.200/25" } },
}
listener "v6" { listen = "[::1]:8080", plugins = { router { { match = { prefix = "/" }, direct_response = { status = 200 } } } } }
admin { listen = "198.19.5.5:15000" }
gossip { bind = "[::]:7946", advertise = "198.18.0.2:7946" }
LUA
)
out=$("$NODUS" check "$bad" 2>&1) && die "a bad dpdk block was accepted"
assert_contains "$out" "bad.lua:2: dpdk: ports[2]: subnet 198.18.0.200/25 overlaps ports[1]'s"
assert_contains "$out" "bad.lua:6: listener \"v6\": io = \"dpdk\" listens on IPv4 addresses only"
assert_contains "$out" "bad.lua:7: admin: with io = \"dpdk\", 'listen' must be on a DPDK port (198.18.0.2, 198.18.0.200), 0.0.0.0, or a loopback address (a kernel socket), not 198.19.5.5:15000"
assert_contains "$out" "bad.lua:8: gossip: with io = \"dpdk\", 'bind' must be on a DPDK port"

# the admin listener on the data path: reached from cli, and the loopback escape hatch in mid
# is not there (nothing listens on a kernel socket)
got=$(in_cli curl -sS --max-time 5 "http://$ADMIN/config_dump")
assert_contains "$got" '"io": "dpdk"' "config dump over the data path"
assert_contains "$(in_cli curl -sS --max-time 5 -X POST "http://$ADMIN/reload")" "reloaded" "POST /reload over the data path"
for ((i = 0; i < 50; i++)); do [ "$(grep -c 'configuration reloaded' "$NODUS_LOG")" -ge 2 ] && break; sleep 0.1; done
[ "$(grep -c 'configuration reloaded' "$NODUS_LOG")" -ge 2 ] || die "POST /reload did not reload"
in_mid curl -s --max-time 2 "http://127.0.0.1:15000/ready" >/dev/null && die "an admin listener on mid's loopback"
# scrapes arrive whole (curl fails on a body shorter than its content-length), many times over
for ((i = 0; i < 20; i++)); do
    in_cli curl -sS --max-time 5 "http://$ADMIN/stats/prometheus" >"$T/scrape" || die "scrape $i failed"
    grep -q '^nodus_dpdk_workers 1$' "$T/scrape" || die "scrape $i without nodus_dpdk_workers"
done
log "admin over the data path: 20 scrapes of $(stat -c %s "$T/scrape") bytes each"

# 100 MB each way
transfers clean 60

# 1,000 short connections in sequence (a new TCP connection for each request)
t0=$EPOCHREALTIME
out=$(in_cli python3 - "$NODE" <<'PY'
import http.client, sys
ok = 0
for i in range(1000):
    c = http.client.HTTPConnection(sys.argv[1], 8080, timeout=5)
    c.request("GET", "/short/%d" % i, headers={"Connection": "close"})
    r = c.getresponse()
    ok += r.status == 200 and r.read() == b"hello from nginx\n"
    c.close()
print(ok)
PY
)
assert_eq 1000 "$out" "short connections answered"
log "1000 short connections in $(elapsed "$t0") s"

# the node's addresses still answer ping (ICMP on the same queues as TCP)
for dst in 198.18.0.2 198.18.1.2; do
    out=$(in_cli ping -c 5 -i 0.05 -W 1 "$dst") || die "ping $dst failed: $out"
    assert_contains "$out" " 0% packet loss" "ping $dst"
done
out=$(ip netns exec "$UP" ping -c 5 -i 0.05 -W 1 198.18.1.2) || die "ping from up failed: $out"

# counters and status
for m in nodus_dpdk_port_rx_packets_total{port=\"0\"} nodus_dpdk_port_tx_packets_total{port=\"1\"} \
    nodus_dpdk_port_dropped_total{port=\"0\"} nodus_dpdk_tcp_passive_opens_total \
    nodus_dpdk_tcp_active_opens_total nodus_dpdk_tcp_retransmits_total \
    nodus_dpdk_tcp_loss_probes_total nodus_dpdk_tcp_loss_probes_spurious_total \
    nodus_dpdk_tcp_drop_no_mem_total nodus_worker_busy_ratio{worker=\"0\"}; do
    log "  $m = $(metric "$m")"
done
[ "$(metric nodus_dpdk_tcp_passive_opens_total)" -ge 1005 ] || die "passive opens: $(metric nodus_dpdk_tcp_passive_opens_total)"
[ "$(metric nodus_dpdk_port_link_up{port=\"1\"})" = 1 ] || die "port 1 link down"
[ "$(metric 'nodus_dpdk_port_drops_total{port="0",reason="tcp_checksum"}')" = 0 ] || die "TCP checksum drops"
status=$(in_cli "$NODUS" status --admin "$ADMIN")
assert_contains "$status" "io dpdk" "nodus status"
assert_contains "$status" "net_${PMD}1" "nodus status ports"
assert_contains "$status" "198.18.1.2/24" "nodus status: port address"
grep -Eq "^1 +net_${PMD}1 .* up [0-9]+ Mb/s +[1-9][0-9]* +[1-9][0-9]* " <<<"$status" ||
    die "nodus status: port 1 line: $(grep -A5 '^PORT' <<<"$status")"
assert_contains "$status" "dropped " "nodus status: port drops"
[ "$(metric 'nodus_dpdk_port_hw_total{port="0",counter="ibytes"}')" -gt 0 ] || die "no hw ibytes"
grep -A5 '^PORT' <<<"$status" >&2 || true

# nodus sockets: a client connection held open shows on the user-space TCP of worker 0, with
# its peer's address and port, next to the proxy's listener and the admin listener (both on the
# user-space TCP: the admin listener is a control-plane socket on the DPDK port)
in_cli python3 - "$NODE" "$T/held.port" <<'PY' &
import socket, sys, time
s = socket.create_connection((sys.argv[1], 8080), timeout=10)
s.sendall(b"GET /held HTTP/1.1\r\nHost: x\r\n\r\n")
s.recv(4096)
open(sys.argv[2], "w").write("%d\n" % s.getsockname()[1])
time.sleep(3)
PY
held=$!
for ((i = 0; i < 50; i++)); do [ -s "$T/held.port" ] && break; sleep 0.1; done
socks=$(in_cli "$NODUS" sockets --admin "$ADMIN")
grep -E '^WORKER|LISTEN|ESTABLISHED' <<<"$socks" | head -8 >&2
grep -Eq "^0 +dpdk +ESTABLISHED +0 +0 +198\.18\.0\.2:8080 +198\.18\.0\.1:$(cat "$T/held.port") +[0-9.]+/[0-9.]+ +[0-9]+ +[0-9]+ " <<<"$socks" ||
    die "nodus sockets: no line for the held connection"
grep -Eq '^0 +dpdk +LISTEN +0 +1024 +0\.0\.0\.0:8080 ' <<<"$socks" || die "nodus sockets: no engine listener"
grep -Eq "^0 +dpdk +LISTEN .*:15000 " <<<"$socks" || die "nodus sockets: no admin listener"
grep -q ' kernel ' <<<"$socks" && die "nodus sockets: a kernel socket on a node whose admin is on DPDK"
in_cli curl -s --max-time 5 "http://$ADMIN/sockets" | python3 -c '
import json, sys
d = json.load(sys.stdin)
up = [s for s in d["sockets"] if s["stack"] == "dpdk" and s["remote"] == "198.18.1.1:80"
      and s["state"] == "ESTABLISHED"]
assert d["io"] == "dpdk" and not d["truncated"] and d["workers_not_answering"] == [], d
assert up and up[0]["mss"] == 1460 and up[0]["wscale"] and up[0]["bytes_acked"] > 0, up
' || die "GET /sockets: no pooled upstream connection to nginx"
wait "$held" || true
# an idle node does not spin: its worker sleeps between polls
sleep 1
ticks0=$(awk '{ print $14 + $15 }' "/proc/$NODUS_PID/stat")
sleep 2
ticks1=$(awk '{ print $14 + $15 }' "/proc/$NODUS_PID/stat")
log "idle: $(((ticks1 - ticks0) / 2)) CPU ticks per second (of $(getconf CLK_TCK))"
[ $((ticks1 - ticks0)) -lt $(($(getconf CLK_TCK) * 2 / 2)) ] || die "an idle node used $((ticks1 - ticks0)) ticks in 2 s"
stop_node

# ---- the same transfers through lossy, duplicating, reordering ports ----
start_node "$(write_cfg faults '{ drop = 0.01, duplicate = 0.005, reorder = 0.01, seed = 7 }')"
transfers "fault 1%/0.5%/1%" 120
for m in nodus_dpdk_tcp_retransmits_total nodus_dpdk_tcp_fast_retransmits_total \
    nodus_dpdk_tcp_rto_expiries_total 'nodus_dpdk_port_drops_total{port="0",reason="fault_rx_drop"}' \
    'nodus_dpdk_port_drops_total{port="1",reason="fault_tx_drop"}' \
    'nodus_dpdk_port_events_total{port="1",event="fault_duplicated"}' \
    'nodus_dpdk_port_events_total{port="1",event="fault_reordered"}'; do
    log "  $m = $(metric "$m")"
done
in_cli curl -s --max-time 5 "http://$ADMIN/stats/prometheus" |
    awk '/^nodus_dpdk_port_(drops|hw)_total/ && $2 > 0 && !/fault_/ { print "  " $0 }' | while read -r l; do log "$l"; done
[ "$(metric nodus_dpdk_tcp_retransmits_total)" -gt 0 ] || die "no retransmissions with 1% loss"
got=$(in_cli curl -sS --max-time 5 "http://$NODE:8080/hello")
assert_eq "hello from nginx" "$got" "GET after the lossy transfers"
stop_node

pass "HTTP through nodus on DPDK ($PMD): bodies, chunked, keep-alive, 100 MB both ways clean and lossy, 1000 connections, ping"
