#!/usr/bin/env bash
# Zero-copy on io = "dpdk" (docs/dpdk.md, "Zero-copy"): nodus in mid of the raw namespace topology
# on net_af_packet, curl and Python clients in cli, nginx and tests/peers/upstream.py in up.
# Checked: heads parsed where they arrived (the counter) and heads that arrive in two segments
# (request and response), pipelined requests in one segment (with a body between them), a 100
# Continue and the final answer in one segment, a 50 MB download and a 20 MB upload intact with
# their bytes moved by reference (the engine's splice counters), the same through a TCP listener
# (protocol = "tcp"); slow readers: the mbufs in use stay bounded while a request still gets
# through, and go back down with nothing held once they are gone; more requests waiting at once
# than the budget of held mbufs: the rest are copied (counted) and answered, nothing held after.
# Skips when not root, or when the EAL cannot start here (nodus exits 3).
# shellcheck disable=SC1091
. "$(dirname "$0")/lib.sh"

need_root
need_cmd ip curl nginx python3 sha256sum ethtool

P=$(netns_prefix)
netns_topology "$P" raw
CLI=$P-cli MID=$P-mid UP=$P-up
NODE=198.18.0.2 UPIP=198.18.1.1
ADMIN=$NODE:15000
export ASAN_OPTIONS=${ASAN_OPTIONS:-}:detect_leaks=0 # DPDK keeps some allocations until exit

in_cli() { ip netns exec "$CLI" "$@"; }
metric() { # NAME: a metric's value from the node (0 when absent)
    in_cli curl -s --max-time 5 "http://$ADMIN/stats/prometheus" |
        awk -v k="$1" '$1 == k { print $2; f = 1 } END { if (!f) print 0 }'
}

head -c 50000000 /dev/urandom >"$T/big"
BIG_SHA=$(sha256sum "$T/big" | cut -d' ' -f1)
mkdir -p "$T/www/files"
ln "$T/big" "$T/www/files/big"
IN_NETNS=$UP NGINX_FILES=$T/www/files start_nginx_upstream 80 "hello from nginx" "$UPIP"
IN_NETNS=$UP start_peer_upstream 9000 "$UPIP"

cat >"$T/node.lua" <<LUA
node { name = "dpdk-zc", workers = 1, io = "dpdk" }
dpdk {
  args = { "--no-huge", "-m", "256", "--no-pci", "--no-shconf", "-l", "0", "--log-level=notice" },
  ports = { { dev = "net_af_packet0,iface=m0", ip = "198.18.0.2/24" },
            { dev = "net_af_packet1,iface=m1", ip = "198.18.1.2/24" } },
}
admin { listen = "$ADMIN" }
cluster "nginx" { endpoints = { "$UPIP:80" } }
cluster "peer" { endpoints = { "$UPIP:9000" } }
listener "ingress" {
  listen = "0.0.0.0:8080", protocol = "http",
  plugins = {
    router {
      -- requests that wait: the exchange (and the mbuf holding its head) ends at the timeout
      { match = { prefix = "/p/hang" }, cluster = "peer", rewrite_prefix = "/hang", timeout = "5s" },
      { match = { prefix = "/p/" }, cluster = "peer", rewrite_prefix = "/", timeout = "60s" },
      { match = { prefix = "/" }, cluster = "nginx", timeout = "60s" },
    },
  },
}
listener "tcp" { listen = "0.0.0.0:9090", protocol = "tcp", cluster = "nginx" }
listener "tcp-peer" { listen = "0.0.0.0:9091", protocol = "tcp", cluster = "peer" }
LUA
start_dpdk_node "$T/node.lua" "$ADMIN" "$CLI"

# ---- heads: in place, across segments, pipelined, after an interim answer ----
in0=$(metric 'nodus_dpdk_zc_heads_total{how="in_place"}')
for ((i = 0; i < 20; i++)); do
    assert_eq "hello from nginx" "$(in_cli curl -sS --max-time 5 "http://$NODE:8080/hello/$i")" "GET $i"
done
in1=$(metric 'nodus_dpdk_zc_heads_total{how="in_place"}')
# each exchange parsed two heads where they arrived: the request and nginx's answer
[ $((in1 - in0)) -ge 40 ] || die "heads parsed in place for 20 GETs: $((in1 - in0))"

out=$(in_cli python3 - "$NODE" <<'PY'
import socket, sys, time
def conn():
    s = socket.create_connection((sys.argv[1], 8080), timeout=10)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s
def answers(s, n):
    """n answers with Content-Length framing: [(head, body)]."""
    buf, out = b"", []
    while len(out) < n:
        while b"\r\n\r\n" not in buf:
            d = s.recv(65536)
            assert d, "connection closed after %d answers" % len(out)
            buf += d
        head, buf = buf.split(b"\r\n\r\n", 1)
        length = int([l.split(b":")[1] for l in head.split(b"\r\n") if l.lower().startswith(b"content-length:")][0])
        while len(buf) < length:
            buf += s.recv(65536)
        out.append((head, buf[:length]))
        buf = buf[length:]
    return out
# a request head in two segments, 200 ms apart
s = conn()
s.sendall(b"GET /split HTTP/1.1\r\nHo")
time.sleep(0.2)
s.sendall(b"st: x\r\nUser-Agent: zc-test\r\n\r\n")
(h, b), = answers(s, 1)
assert h.startswith(b"HTTP/1.1 200") and b == b"hello from nginx\n", (h, b)
# three pipelined requests in one segment, a POST body between them
s.sendall(b"GET /one HTTP/1.1\r\nHost: x\r\n\r\n"
          b"POST /p/up HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"
          b"GET /three HTTP/1.1\r\nHost: x\r\n\r\n")
a = answers(s, 3)
assert a[0][1] == b"hello from nginx\n", a[0]
assert a[1][1] == b"5 2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824\n", a[1]
assert a[2][1] == b"hello from nginx\n", a[2]
# the upstream's answer head in two segments, and a 100 Continue with the answer in one
s.sendall(b"GET /p/splithead HTTP/1.1\r\nHost: x\r\n\r\n")
(h, b), = answers(s, 1)
assert b"X-First: 1" in h and b"X-Second: 2" in h and b == b"split\n", (h, b)
s.sendall(b"GET /p/interim HTTP/1.1\r\nHost: x\r\n\r\n")
(h, b), = answers(s, 1)
assert h.startswith(b"HTTP/1.1 200") and b"X-After-Interim: yes" in h and b == b"ok\n", (h, b)
print("ok")
PY
) || die "heads: $out"
assert_eq ok "$out" "heads across segments, pipelined, after an interim answer"
log "heads: $((in1 - in0)) parsed in place for 20 GETs; split, pipelined and interim ones answered"

# ---- bodies by reference: 50 MB down, 20 MB up, then through TCP listeners ----
moved0=$(metric nodus_dpdk_tcp_splice_moved_total)
got=$(in_cli curl -sS --max-time 60 "http://$NODE:8080/files/big" | sha256sum | cut -d' ' -f1)
assert_eq "$BIG_SHA" "$got" "50 MB download"
head -c 20000000 "$T/big" >"$T/up20"
want="20000000 $(sha256sum "$T/up20" | cut -d' ' -f1)"
got=$(in_cli curl -sS --max-time 60 --data-binary @"$T/up20" -H 'Expect:' "http://$NODE:8080/p/up")
assert_eq "$want" "$got" "20 MB upload"
got=$(in_cli curl -sS --max-time 60 -T - -H 'Transfer-Encoding: chunked' "http://$NODE:8080/p/up" <"$T/up20")
assert_eq "$want" "$got" "20 MB chunked upload"
moved1=$(metric nodus_dpdk_tcp_splice_moved_total)
log "HTTP: $(((moved1 - moved0) / 1000000)) MB of 90 moved by reference, $(metric nodus_dpdk_tcp_splice_copied_total) bytes copied"
[ $((moved1 - moved0)) -ge 85000000 ] || die "bytes moved by reference for 90 MB: $((moved1 - moved0))"

got=$(in_cli curl -sS --max-time 60 "http://$NODE:9090/files/big" | sha256sum | cut -d' ' -f1)
assert_eq "$BIG_SHA" "$got" "50 MB through the TCP listener"
got=$(in_cli curl -sS --max-time 60 --data-binary @"$T/up20" -H 'Expect:' "http://$NODE:9091/up")
assert_eq "$want" "$got" "20 MB up through the TCP listener"
moved2=$(metric nodus_dpdk_tcp_splice_moved_total)
log "TCP listener: $(((moved2 - moved1) / 1000000)) MB of 70 moved by reference"
[ $((moved2 - moved1)) -ge 66000000 ] || die "bytes moved by reference through the TCP listener: $((moved2 - moved1))"

# ---- slow readers: the mbufs they hold stay bounded ----
sleep 1
base=$(metric 'nodus_dpdk_mbufs{worker="0",state="in_use"}')
pids=()
for ((i = 0; i < 4; i++)); do
    ip netns exec "$CLI" curl -s -o /dev/null --limit-rate 300k --max-time 20 "http://$NODE:8080/files/big" &
    pids+=($!) # curl itself (ip netns exec execs it): killed below
done
cleanup kill "${pids[@]}"
peak=0
for ((i = 0; i < 8; i++)); do
    sleep 0.5
    v=$(metric 'nodus_dpdk_mbufs{worker="0",state="in_use"}')
    [ "$v" -gt "$peak" ] && peak=$v
done
t0=$EPOCHREALTIME
assert_eq "hello from nginx" "$(in_cli curl -sS --max-time 5 "http://$NODE:8080/meanwhile")" "GET beside slow readers"
log "slow readers: mbufs in use $base idle, at most $peak with 4 slow readers (bound: 4 x 1 MiB of receive queue + 1024 in send queues); a GET beside them in $(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.3f", b - a }') s"
# each reader: its upstream connection's receive queue (1 MiB, ~724 mbufs), its send queue holds
# at most the worker's 1024 shared mbufs in all; the rest of the pool (8191) stays free
[ "$peak" -le $((4 * 800 + 1024 + 600)) ] || die "slow readers hold $peak mbufs"
[ "$(metric nodus_dpdk_port_hw_total'{port="1",counter="rx_nombuf"}')" = 0 ] || die "RX ran out of mbufs"
kill "${pids[@]}" 2>/dev/null || true
wait "${pids[@]}" 2>/dev/null || true
for ((i = 0; i < 50; i++)); do
    v=$(metric 'nodus_dpdk_mbufs{worker="0",state="in_use"}')
    [ "$v" -le $((base + 64)) ] && break
    sleep 0.2
done
[ "$v" -le $((base + 64)) ] || die "mbufs in use after the slow readers left: $v (idle: $base)"

# ---- more requests waiting at once than the budget of held mbufs (512) ----
ref0=$(metric 'nodus_dpdk_zc_heads_total{how="refused"}')
ip netns exec "$CLI" python3 - "$NODE" "$T/hang.ready" <<'PY' &
import resource, socket, sys, time
resource.setrlimit(resource.RLIMIT_NOFILE, (4096, 4096))
socks = []
for i in range(560):
    s = socket.create_connection((sys.argv[1], 8080), timeout=10)
    s.sendall(b"GET /p/hang HTTP/1.1\r\nHost: x\r\n\r\n")
    socks.append(s)
open(sys.argv[2], "w").close()
time.sleep(8)
PY
hang=$!
cleanup kill "$hang"
for ((i = 0; i < 100; i++)); do [ -e "$T/hang.ready" ] && break; sleep 0.1; done
for ((i = 0; i < 50; i++)); do
    held=$(metric nodus_dpdk_zc_held_mbufs)
    [ "$held" -ge 512 ] && break
    sleep 0.2
done
ref1=$(metric 'nodus_dpdk_zc_heads_total{how="refused"}')
assert_eq "hello from nginx" "$(in_cli curl -sS --max-time 5 "http://$NODE:8080/beside")" "GET while the budget is spent"
log "560 requests waiting: $held mbufs held for their heads, $((ref1 - ref0)) heads copied instead"
[ "$held" = 512 ] || die "held mbufs with 560 requests waiting: $held"
[ $((ref1 - ref0)) -ge 48 ] || die "heads copied past the budget: $((ref1 - ref0))"
wait "$hang" || true # the requests timed out (504) after 5 s, then the client went
for ((i = 0; i < 50; i++)); do
    held=$(metric nodus_dpdk_zc_held_mbufs)
    [ "$held" = 0 ] && break
    sleep 0.2
done
assert_eq 0 "$held" "mbufs held once the requests are gone"
stop_node
pass
