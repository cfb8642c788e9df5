#!/usr/bin/env bash
# Two workers on DPDK ports that have fewer queues than workers, or no RSS of their own: nodus
# with node.io = "dpdk" and node.workers = 2 in mid of the raw namespace topology, on
# net_af_packet, curl and Python in cli, nginx in up.
#   1. One queue pair per port (af_packet's default): worker 0 polls both ports and hands the
#      frames of worker 1's flows over, worker 1 sends through worker 0's TX queues, ARP answers
#      reach both. 400 short connections and 16 held ones are all served, by both workers (their
#      accept counters, `nodus sockets`), upstream connections from both (their source ports
#      steer the replies back), a 100 MB download intact on a flow of worker 1 (the client picks
#      its source port by the node's hash), ping, the hand-over counters, and a drain (SIGTERM)
#      while worker 1 serves a slow download.
#   2. Mixed: qpairs=2 on the client side (two queue pairs, but af_packet spreads frames by the
#      kernel's hash, not by ours: each worker polls its queue and hands over what belongs to the
#      other) and one queue pair on the upstream side. The same checks, shorter. One worker on
#      qpairs=2 is refused with a clear message.
# Skips when not root, or when the EAL cannot start here (nodus exits 3).
# shellcheck disable=SC1091
. "$(dirname "$0")/lib.sh"

need_root
need_cmd ip curl nginx python3 sha256sum ethtool ping

P=$(netns_prefix)
netns_topology "$P" raw
CLI=$P-cli MID=$P-mid UP=$P-up
NODE=198.18.0.2 UPIP=198.18.1.1
ADMIN=127.0.0.1:15000
export ASAN_OPTIONS=${ASAN_OPTIONS:-}:detect_leaks=0 # the EAL keeps some memory until exit

in_cli() { ip netns exec "$CLI" "$@"; }
in_mid() { ip netns exec "$MID" "$@"; }
scrape() { in_mid curl -s --max-time 5 "http://$ADMIN/stats/prometheus" >"$T/scrape"; }
metric() { # SERIES: its value in the last scrape (0 when absent)
    awk -v k="$1" '$1 == k { print $2; f = 1 } END { if (!f) print 0 }' "$T/scrape"
}
elapsed() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.2f", b - a }'; }

head -c 100000000 /dev/urandom >"$T/big"
BIG_SHA=$(sha256sum "$T/big" | cut -d' ' -f1)
mkdir -p "$T/www/files"
ln "$T/big" "$T/www/files/big"
IN_NETNS=$UP NGINX_FILES=$T/www/files start_nginx_upstream 80 "hello from nginx" "$UPIP"

write_cfg() { # NAME PORT0-OPTIONS PORT1-OPTIONS: two workers on both veths
    cat >"$T/$1.lua" <<LUA
node { name = "dpdk-mid", workers = 2, io = "dpdk" }
dpdk {
  args = { "--no-huge", "-m", "256", "--no-pci", "--no-shconf", "-l", "0", "--log-level=notice" },
  ports = { { dev = "net_af_packet0,iface=m0$2", ip = "198.18.0.2/24" },
            { dev = "net_af_packet1,iface=m1$3", ip = "198.18.1.2/24" } },
}
admin { listen = "$ADMIN" }
cluster "nginx" { endpoints = { "$UPIP:80" } }
listener "ingress" {
  listen = "0.0.0.0:8080", protocol = "http",
  plugins = { router { { match = { prefix = "/" }, cluster = "nginx", timeout = "60s" } } },
}
LUA
    echo "$T/$1.lua"
}

start_node() { start_dpdk_node "$1" "$ADMIN" "$MID"; }

short_connections() { # N: N requests, each on a new connection, 8 at a time; prints the 200s
    in_cli python3 - "$NODE" "$1" <<'PY'
import http.client, sys, concurrent.futures as cf
def one(i):
    c = http.client.HTTPConnection(sys.argv[1], 8080, timeout=10)
    c.request("GET", "/short/%d" % i, headers={"Connection": "close"})
    r = c.getresponse()
    ok = r.status == 200 and r.read() == b"hello from nginx\n"
    c.close()
    return ok
with cf.ThreadPoolExecutor(8) as ex:
    print(sum(ex.map(one, range(int(sys.argv[2])))))
PY
}

check_workers() { # LABEL: both workers accepted and connected upstream
    local w
    scrape
    for w in 0 1; do
        log "$1: worker $w: accepted $(metric "nodus_dpdk_tcp_opens_total{worker=\"$w\",side=\"passive\"}"), connected $(metric "nodus_dpdk_tcp_opens_total{worker=\"$w\",side=\"active\"}"), handed rx $(metric "nodus_dpdk_handoff_frames_total{worker=\"$w\",dir=\"rx_out\"}")/$(metric "nodus_dpdk_handoff_frames_total{worker=\"$w\",dir=\"rx_in\"}") tx $(metric "nodus_dpdk_handoff_frames_total{worker=\"$w\",dir=\"tx_out\"}")/$(metric "nodus_dpdk_handoff_frames_total{worker=\"$w\",dir=\"tx_in\"}"), dropped rx $(metric "nodus_dpdk_handoff_drops_total{worker=\"$w\",reason=\"rx_ring_full\"}") tx $(metric "nodus_dpdk_handoff_drops_total{worker=\"$w\",reason=\"tx_ring_full\"}")"
        [ "$(metric "nodus_dpdk_tcp_opens_total{worker=\"$w\",side=\"passive\"}")" -gt 20 ] ||
            die "$1: worker $w accepted $(metric "nodus_dpdk_tcp_opens_total{worker=\"$w\",side=\"passive\"}") connection(s)"
        [ "$(metric "nodus_dpdk_tcp_opens_total{worker=\"$w\",side=\"active\"}")" -ge 1 ] ||
            die "$1: worker $w opened no upstream connection"
    done
    [ "$(metric 'nodus_dpdk_port_drops_total{port="0",reason="tcp_no_stack"}')" = 0 ] || die "frames without a stack"
}

# A client port whose flow to NODE:8080 belongs to worker W of 2: the Toeplitz hash of the 4-tuple
# as it arrives, with the symmetric key 0x6d5a... (dpdk/net/port.c), modulo 2, as the node
# computes it (rte_softrss).
port_for_worker() { # W [FROM]: the first such port from FROM (default 20000)
    python3 - "$1" "${2:-20000}" <<'PY'
import ipaddress, sys
key = int.from_bytes(bytes([0x6d, 0x5a] * 20), "big")
def toeplitz(data):
    h = 0
    for i, byte in enumerate(data):
        for b in range(8):
            if byte & (0x80 >> b):
                h ^= (key >> (320 - 32 - (i * 8 + b))) & 0xffffffff
    return h
src, dst = ipaddress.ip_address("198.18.0.1").packed, ipaddress.ip_address("198.18.0.2").packed
for port in range(int(sys.argv[2]), 65536):
    if toeplitz(src + dst + port.to_bytes(2, "big") + (8080).to_bytes(2, "big")) % 2 == int(sys.argv[1]):
        print(port)
        break
PY
}

download() { # LABEL [CURL ARGS...]
    local t0 got label=$1
    shift
    t0=$EPOCHREALTIME
    got=$(in_cli curl -sS --max-time 60 "$@" "http://$NODE:8080/files/big" 2>"$T/curl.err" |
        sha256sum | cut -d' ' -f1) || die "$label: download failed after $(elapsed "$t0") s: $(cat "$T/curl.err")"
    assert_eq "$BIG_SHA" "$got" "$label: 100 MB download"
    log "$label: 100 MB download in $(elapsed "$t0") s"
}

# ---- 1. one queue pair per port: worker 0 polls, hands over ----
start_node "$(write_cfg single "" "")"
grep 'dpdk port' "$NODUS_LOG" >&2
grep -q 'dpdk port 0: .* queues rx 1/1 tx 1/1 steering software' "$NODUS_LOG" ||
    die "port 0 not software-steered on one queue pair: $(grep 'dpdk port 0' "$NODUS_LOG")"
t0=$EPOCHREALTIME
assert_eq 400 "$(short_connections 400)" "short connections answered (one queue pair)"
log "400 short connections in $(elapsed "$t0") s"
check_workers "one queue pair"
[ "$(metric 'nodus_dpdk_handoff_frames_total{worker="0",dir="rx_out"}')" -gt 0 ] || die "worker 0 handed no frame over"
[ "$(metric 'nodus_dpdk_handoff_frames_total{worker="1",dir="rx_in"}')" -gt 0 ] || die "worker 1 took no frame"
[ "$(metric 'nodus_dpdk_handoff_frames_total{worker="1",dir="tx_out"}')" -gt 0 ] || die "worker 1 sent nothing through worker 0"
[ "$(metric 'nodus_dpdk_handoff_frames_total{worker="0",dir="tx_in"}')" -gt 0 ] || die "worker 0 sent nothing for worker 1"
[ "$(metric 'nodus_dpdk_handoff_arp_total{worker="0"}')" -gt 0 ] || die "no ARP entry passed on"

# 16 connections held open: `nodus sockets` shows them on both workers
in_cli python3 - "$NODE" "$T/held.ok" <<'PY' &
import socket, sys, time
socks = []
for i in range(16):
    s = socket.create_connection((sys.argv[1], 8080), timeout=10)
    s.sendall(b"GET /held HTTP/1.1\r\nHost: x\r\n\r\n")
    assert s.recv(4096).startswith(b"HTTP/1.1 200")
    socks.append(s)
open(sys.argv[2], "w").write("ok\n")
time.sleep(4)
PY
held=$!
for ((i = 0; i < 100; i++)); do [ -s "$T/held.ok" ] && break; sleep 0.1; done
[ -s "$T/held.ok" ] || die "16 held connections not answered"
socks=$(in_mid "$NODUS" sockets --admin "$ADMIN")
for w in 0 1; do
    n=$(grep -Ec "^$w +dpdk +ESTABLISHED .* 198\.18\.0\.2:8080 +198\.18\.0\.1:" <<<"$socks" || true)
    log "nodus sockets: worker $w holds $n client connection(s)"
    [ "$n" -ge 1 ] || die "nodus sockets: no client connection on worker $w"
    grep -Eq "^$w +dpdk +LISTEN .* 0\.0\.0\.0:8080 " <<<"$socks" || die "nodus sockets: no listener on worker $w"
done
[ "$(grep -Ec '^[01] +dpdk +ESTABLISHED .* 198\.18\.0\.2:8080 +198\.18\.0\.1:' <<<"$socks")" = 16 ] ||
    die "nodus sockets: $(grep -Ec '^[01] +dpdk +ESTABLISHED .* 198\.18\.0\.1:' <<<"$socks") client connections, not 16"
wait "$held" || true

# 100 MB on a flow of worker 1 (its client connection and its upstream connection): every frame
# of it is received by worker 0 and handed over, every frame it sends goes out through worker 0
rx0=$(metric 'nodus_dpdk_handoff_frames_total{worker="1",dir="rx_in"}')
tx0=$(metric 'nodus_dpdk_handoff_frames_total{worker="1",dir="tx_out"}')
download "one queue pair, worker 1's flow" --local-port "$(port_for_worker 1)"
scrape
rx=$(($(metric 'nodus_dpdk_handoff_frames_total{worker="1",dir="rx_in"}') - rx0))
tx=$(($(metric 'nodus_dpdk_handoff_frames_total{worker="1",dir="tx_out"}') - tx0))
log "worker 1's download: $rx frames handed to it, $tx sent through worker 0"
{ [ "$rx" -gt 60000 ] && [ "$tx" -gt 60000 ]; } || die "the download did not run on worker 1 through the hand-over"
# the same on a flow of worker 0, which needs no hand-over: the difference is its cost
download "one queue pair, worker 0's flow (no hand-over)" --local-port "$(port_for_worker 0 26000)"
out=$(in_cli ping -c 5 -i 0.05 -W 1 "$NODE") || die "ping failed: $out"
scrape
log "ring drops: rx $(metric 'nodus_dpdk_handoff_drops_total{worker="0",reason="rx_ring_full"}'), tx $(metric 'nodus_dpdk_handoff_drops_total{worker="1",reason="tx_ring_full"}'), port 0 $(metric 'nodus_dpdk_port_drops_total{port="0",reason="handoff_ring_full"}')"

# SIGTERM while worker 1 serves a slow download: worker 0, whose queues worker 1 depends on,
# keeps polling until worker 1 has finished, and the download completes intact
want=$(head -c 20000000 "$T/big" | sha256sum | cut -d' ' -f1)
lport=$(port_for_worker 1 25000)
in_cli curl -sS --max-time 30 --limit-rate 8M -r 0-19999999 --local-port "$lport" \
    "http://$NODE:8080/files/big" 2>"$T/slow.err" | sha256sum | cut -d' ' -f1 >"$T/slow.sha" &
slow=$!
# in flight on worker 1 before the SIGTERM (a busy machine may start curl late)
for ((i = 0; i < 100; i++)); do
    in_mid "$NODUS" sockets --admin "$ADMIN" 2>/dev/null |
        grep -Eq "^1 +dpdk +ESTABLISHED .* 198\.18\.0\.2:8080 +198\.18\.0\.1:$lport( |$)" && break
    sleep 0.1
done
[ "$i" -lt 100 ] || die "the slow download did not start on worker 1 within 10 s"
sleep 0.5
t0=$EPOCHREALTIME
stop_node
wait "$slow" || true
assert_eq "$want" "$(cat "$T/slow.sha")" "a download on worker 1 across SIGTERM ($(cat "$T/slow.err"))"
grep -q 'drain timeout' "$NODUS_LOG" && die "the drain timed out"
log "drained with worker 1's download in flight in $(elapsed "$t0") s"

# ---- 2. mixed: two queue pairs without RSS of ours on the client side (each worker polls one
# and hands the other's frames over), one on the upstream side ----
start_node "$(write_cfg qpairs ",qpairs=2" "")"
grep 'dpdk port' "$NODUS_LOG" >&2
grep -q 'dpdk port 0: .* queues rx 2/2 tx 2/2 steering software' "$NODUS_LOG" ||
    die "port 0 not on two software-steered queue pairs: $(grep 'dpdk port 0' "$NODUS_LOG")"
grep -q 'dpdk port 1: .* queues rx 1/1 tx 1/1 steering software' "$NODUS_LOG" ||
    die "port 1 not on one queue pair: $(grep 'dpdk port 1' "$NODUS_LOG")"
assert_eq 200 "$(short_connections 200)" "short connections answered (qpairs=2 and 1)"
check_workers "qpairs=2 and 1"
[ "$(metric 'nodus_dpdk_handoff_frames_total{worker="1",dir="rx_out"}')" -gt 0 ] ||
    die "worker 1 polls port 0's second queue, yet handed no frame over"
download "qpairs=2 and 1, worker 1's flow" --local-port "$(port_for_worker 1 27000)"
stop_node

# more af_packet queue pairs than workers: refused at start, with what to do (a queue nobody
# polls would swallow the flows the kernel hashes to it)
sed -i 's/workers = 2,/workers = 1,/' "$T/qpairs.lua"
out=$(in_mid "$NODUS" run "$T/qpairs.lua" 2>&1) && die "one worker on qpairs=2 started"
assert_contains "$out" "qpairs.lua:2: dpdk: ports[1]: net_af_packet0,iface=m0,qpairs=2 has qpairs=2, more than node.workers = 1" "qpairs over workers"

pass "two DPDK workers on one queue pair per port, and on two and one (af_packet): connections on both, hand-over, 100 MB intact, drain"
