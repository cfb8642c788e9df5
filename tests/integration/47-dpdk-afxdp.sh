#!/usr/bin/env bash
# The proxy on net_af_xdp: nodus with io = "dpdk" in mid of the raw namespace topology, its ports
# AF_XDP sockets on the veths m0 and m1 (DPDK 22.11's af_xdp PMD; libxdp attaches its XDP
# program, native mode on veth). Checked: the XDP program on both veths, ping of both node
# addresses, a GET, a 100 MB download and a 100 MB upload through the node intact (sha256) in
# bounded time; then that no frame was lost between the PMD and the kernel (each veth counts
# exactly the frames the PMD sent on it, the PMD plus its drop counters exactly the frames the
# peer sent), that the kernel refused no descriptor (xsk_*_invalid_descs 0) and that no mbuf
# leaked (nodus_dpdk_mbufs in_use back where it was). Then a node paused under a flood of 6000
# datagrams: the fill ring takes 2048, the rest are counted (xsk_fill_ring_empty, also in
# `nodus status`), and the node serves again; SIGTERM takes the XDP programs off the veths.
# Last, 41-dpdk-http's checks once more on af_xdp (NODUS_DPDK_PMD=af_xdp).
# Skips when not root or when this kernel cannot make AF_XDP sockets; once it can, a node that
# does not start on af_xdp is a failure.
# shellcheck disable=SC1091
. "$(dirname "$0")/lib.sh"

need_root
need_cmd ip curl nginx python3 sha256sum ethtool ping
python3 -c 'import socket; socket.socket(44, socket.SOCK_RAW, 0)' 2>/dev/null ||
    skip "this kernel cannot make AF_XDP sockets (CONFIG_XDP_SOCKETS)"
export DPDK_MUST_START=1

P=$(netns_prefix)
netns_topology "$P" raw
CLI=$P-cli MID=$P-mid UP=$P-up
NODE=198.18.0.2 UPIP=198.18.1.1
ADMIN=127.0.0.1:15000 # mid's loopback: scrapes must not add frames to the ports' counts
export ASAN_OPTIONS=${ASAN_OPTIONS:-}:detect_leaks=0 # DPDK keeps allocations until exit

in_cli() { ip netns exec "$CLI" "$@"; }
in_mid() { ip netns exec "$MID" "$@"; }
in_up() { ip netns exec "$UP" "$@"; }
scrape() { in_mid curl -sS --max-time 5 "http://$ADMIN/stats/prometheus"; }
value() { # NAME{LABELS} TEXT: a series' value (0 when absent)
    awk -v k="$1" '$1 == k { print $2; f = 1 } END { if (!f) print 0 }' <<<"$2"
}
hw() { value "nodus_dpdk_port_hw_total{port=\"$1\",counter=\"$2\"}" "$3"; }
link_count() { # NS DEV rx|tx packets|dropped
    ip -n "$1" -s -j link show "$2" |
        python3 -c 'import json, sys; print(json.load(sys.stdin)[0]["stats64"][sys.argv[1]][sys.argv[2]])' "$3" "$4"
}
elapsed() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.2f", b - a }'; }

head -c 100000000 /dev/urandom >"$T/big"
BIG_SHA=$(sha256sum "$T/big" | cut -d' ' -f1)
mkdir -p "$T/www/files"
ln "$T/big" "$T/www/files/big"
IN_NETNS=$UP NGINX_FILES=$T/www/files start_nginx_upstream 80 "hello from nginx" "$UPIP"
IN_NETNS=$UP start_peer_upstream 9000 "$UPIP"

cat >"$T/xdp.lua" <<LUA
node { name = "dpdk-afxdp", workers = 1, io = "dpdk" }
dpdk {
  args = { "--no-huge", "-m", "256", "--no-pci", "--no-shconf", "-l", "0", "--log-level=notice" },
  ports = { { dev = "net_af_xdp0,iface=m0", ip = "198.18.0.2/24" },
            { dev = "net_af_xdp1,iface=m1", ip = "198.18.1.2/24" } },
}
admin { listen = "$ADMIN" }
cluster "nginx" { endpoints = { "$UPIP:80" } }
cluster "peer" { endpoints = { "$UPIP:9000" } }
listener "ingress" {
  listen = "0.0.0.0:8080", protocol = "http",
  plugins = {
    router {
      { match = { prefix = "/up" }, cluster = "peer", timeout = "60s" },
      { match = { prefix = "/" }, cluster = "nginx", timeout = "60s" },
    },
  },
}
LUA
start_dpdk_node "$T/xdp.lua" "$ADMIN"
grep 'dpdk port' "$NODUS_LOG" >&2
grep -q 'dpdk port 1: net_af_xdp1 (net_af_xdp)' "$NODUS_LOG" || die "no af_xdp port in the log"
for m in m0 m1; do
    in_mid ip link show "$m" | grep -q 'prog/xdp' || die "no XDP program on $m"
done

# Every frame accounted for: the kernel has no address on m0/m1 and sends nothing there, so
# what each veth transmits is what the PMD sends, and what its peer transmits is what the PMD
# receives (the kernel counts drops on the way: the peer's TX drops, the XSK's). Counted from
# here: the peers' IPv6 chatter at link up came before the XDP programs.
veth_counts() { # frames and drops each end transmitted: m0 m1 (mid), c0 (cli), u0 (up)
    local l
    for l in "$MID m0" "$MID m1" "$CLI c0" "$UP u0"; do
        # shellcheck disable=SC2086
        set -- $l
        printf '%s %s ' "$(link_count "$1" "$2" tx packets)" "$(link_count "$1" "$2" tx dropped)"
    done
}
settled() { # VETH=veth_counts and SCRAPED=a scrape, while nothing moves (an ARP refresh may come)
    local i
    for ((i = 0; i < 10; i++)); do
        sleep 0.3
        VETH=$(veth_counts)
        SCRAPED=$(scrape)
        [ "$VETH" = "$(veth_counts)" ] && break
    done
}
settled
read -r b_m0tx b_m0txd b_m1tx b_m1txd b_c0tx b_c0txd b_u0tx b_u0txd <<<"$VETH"
base=$SCRAPED

for dst in 198.18.0.2 198.18.1.2; do
    out=$(in_cli ping -c 3 -i 0.1 -W 1 "$dst") || die "ping $dst failed: $out"
done
out=$(in_up ping -c 3 -i 0.1 -W 1 198.18.1.2) || die "ping from up failed: $out"
assert_eq "hello from nginx" "$(in_cli curl -sS --max-time 5 "http://$NODE:8080/hello")" "GET"

mbufs0=$(value 'nodus_dpdk_mbufs{worker="0",state="in_use"}' "$base")
t0=$EPOCHREALTIME
got=$(in_cli curl -sS --max-time 60 "http://$NODE:8080/files/big" | sha256sum | cut -d' ' -f1)
assert_eq "$BIG_SHA" "$got" "100 MB download"
log "100 MB download in $(elapsed "$t0") s"
t0=$EPOCHREALTIME
got=$(in_cli curl -sS --max-time 60 -T "$T/big" -H 'Expect:' "http://$NODE:8080/up")
assert_eq "100000000 $BIG_SHA" "$got" "100 MB upload"
log "100 MB upload in $(elapsed "$t0") s"

settled
read -r m0tx m0txd m1tx m1txd c0tx c0txd u0tx u0txd <<<"$VETH"
after=$SCRAPED
d() { echo $(($1 - $2)); } # AFTER BEFORE
for p in 0 1; do
    for c in xsk_tx_invalid_descs xsk_rx_invalid_descs xsk_rx_dropped oerrors; do
        assert_eq 0 "$(hw "$p" "$c" "$after")" "port $p $c"
    done
done
for p in 0 1; do
    pout[p]=$(d "$(hw $p opackets "$after")" "$(hw $p opackets "$base")")
    pin[p]=$(d "$(hw $p ipackets "$after")" "$(hw $p ipackets "$base")")
done
assert_eq "${pout[0]} 0" "$(d "$m0tx" "$b_m0tx") $(d "$m0txd" "$b_m0txd")" "frames the PMD sent on port 0 / m0 transmitted, dropped"
assert_eq "${pout[1]} 0" "$(d "$m1tx" "$b_m1tx") $(d "$m1txd" "$b_m1txd")" "frames the PMD sent on port 1 / m1 transmitted, dropped"
assert_eq "${pin[0]} 0" "$(d "$c0tx" "$b_c0tx") $(d "$c0txd" "$b_c0txd")" "frames the PMD received on port 0 / c0 sent, dropped"
assert_eq "${pin[1]} 0" "$(d "$u0tx" "$b_u0tx") $(d "$u0txd" "$b_u0txd")" "frames the PMD received on port 1 / u0 sent, dropped"
log "frames: port 0 out ${pout[0]} in ${pin[0]}, port 1 out ${pout[1]} in ${pin[1]}, none lost"
mbufs1=$(value 'nodus_dpdk_mbufs{worker="0",state="in_use"}' "$after")
size=$(value 'nodus_dpdk_mbufs{worker="0",state="size"}' "$after")
log "mbufs in use: $mbufs0 before, $mbufs1 after, of $size (2 x 2048 in the fill rings)"
[ "$mbufs0" -ge 4096 ] || die "only $mbufs0 mbufs out at rest: the fill rings should hold 4096"
[ "$((mbufs1 - mbufs0))" -le 300 ] || die "mbufs in use went from $mbufs0 to $mbufs1: a leak"
for m in nodus_dpdk_tcp_retransmits_total nodus_dpdk_tcp_rto_expiries_total; do
    log "  $m = $(value "$m" "$after")"
done

# A paused node under a flood: the fill ring holds 2048 buffers, the kernel drops the rest and
# counts them; the node takes up where it was.
kill -STOP "$NODUS_PID"
in_up python3 -c '
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for i in range(6000):
    s.sendto(b"x" * 100, ("198.18.1.2", 9))' || { kill -CONT "$NODUS_PID"; die "flood failed"; }
kill -CONT "$NODUS_PID"
sleep 1
flood=$(scrape)
empty=$(hw 1 xsk_fill_ring_empty "$flood")
took=$(($(hw 1 ipackets "$flood") - $(hw 1 ipackets "$after")))
log "paused under 6000 datagrams: $took frames taken, $empty counted as xsk_fill_ring_empty"
[ "$empty" -ge 3000 ] || die "xsk_fill_ring_empty = $empty after 6000 datagrams to a paused node"
[ "$(hw 1 xsk_rx_dropped "$flood")" = "$empty" ] || die "xsk_rx_dropped != xsk_fill_ring_empty"
[ "$(hw 1 imissed "$flood")" -ge "$empty" ] || die "imissed does not hold the XSK's drops"
status=$(in_mid "$NODUS" status --admin "$ADMIN")
grep -A2 '^1 ' <<<"$status" >&2
grep -Eq "^ +kernel: .*xsk_fill_ring_empty $empty" <<<"$status" || die "nodus status: no kernel drops line"
assert_eq "hello from nginx" "$(in_cli curl -sS --max-time 5 "http://$NODE:8080/after")" "GET after the flood"

stop_node
for m in m0 m1; do
    in_mid ip link show "$m" | grep -q 'prog/xdp' && die "the XDP program stayed on $m after SIGTERM"
done

log "41-dpdk-http on af_xdp"
NODUS_DPDK_PMD=af_xdp "$(dirname "$0")/41-dpdk-http.sh" || die "41-dpdk-http on af_xdp failed ($?)"

pass "nodus on af_xdp: ping, GET, 100 MB both ways intact, every frame accounted for, drops counted, 41-dpdk-http"
