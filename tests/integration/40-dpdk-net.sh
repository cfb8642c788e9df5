#!/usr/bin/env bash
# The DPDK packet path (dpdk/net/) against Linux peers: three namespaces (tests/lib/netns.sh,
# raw mode), nd-netd in mid owning both veths through net_af_packet (offloads off, no kernel
# address). Checked: gratuitous ARP at start, ping from cli and up (both of mid's addresses),
# arping, UDP echo, ICMP port unreachable for a closed port, the counters, and the fault
# injector's drop rate (and duplicates seen by ping). Skips when not root or when the EAL
# cannot start here.
. "$(dirname "$0")/lib.sh"

need_root
need_cmd ip ping arping ethtool
PY=/usr/bin/python3
[ -x "$PY" ] || skip "python3 is not installed"
NETD=${NETD:-$BUILD_DIR/dpdk/net/nd-netd}
[ -x "$NETD" ] || skip "nd-netd not built ($NETD)"

P=$(netns_prefix)
netns_topology "$P" raw
CLI=$P-cli MID=$P-mid UP=$P-up
# Linux takes gratuitous ARP into a new neighbour entry only with arp_accept
ip netns exec "$CLI" sysctl -qw net.ipv4.conf.c0.arp_accept=1

EAL=(--no-shconf --no-pci --no-huge -m 256 -l 0 --log-level=notice)
# DPDK keeps some allocations until exit: leak reports there are not ours to fix
export ASAN_OPTIONS=${ASAN_OPTIONS:-}:detect_leaks=0

# start_netd NAME [nd-netd options...]: runs nd-netd in mid, waits for "ready"; sets NETD_PID,
# NETD_LOG, STATS.
start_netd() {
    local name=$1 i
    shift
    STATS=$T/$name.stats
    IN_NETNS=$MID bg "$name" "$NETD" -p "net_af_packet0,iface=m0@198.18.0.2/24" \
        -p "net_af_packet1,iface=m1@198.18.1.2/24" -u 7 -s "$STATS" -t 120 "$@" -- "${EAL[@]}"
    NETD_PID=$BG_PID
    NETD_LOG=$T/$name.log
    for ((i = 0; i < 150; i++)); do
        grep -q '^ready' "$NETD_LOG" 2>/dev/null && return 0
        if ! kill -0 "$NETD_PID" 2>/dev/null; then
            wait "$NETD_PID" && rc=0 || rc=$?
            # exit 3: the EAL or a port did not start (no af_packet, no memory...)
            [ "$rc" = 3 ] && skip "DPDK cannot start here: $(grep -m1 'nd-netd:' "$NETD_LOG")"
            die "nd-netd exited ($rc)"
        fi
        sleep 0.1
    done
    die "nd-netd not ready within 15 s"
}

stop_netd() {
    kill -TERM "$NETD_PID"
    for ((i = 0; i < 50; i++)); do kill -0 "$NETD_PID" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$NETD_PID" 2>/dev/null && die "nd-netd did not stop on SIGTERM"
    grep -q '^stopped' "$NETD_LOG" || die "nd-netd did not stop cleanly"
}

counter() { awk -v k="$1" '$1 == k { print $2; f = 1 } END { if (!f) print 0 }' "$STATS"; }

start_netd plain
grep '^port' "$NETD_LOG" >&2
MAC0=$(awk '/^port 0:/ { for (i = 1; i <= NF; i++) if ($i == "mac") print tolower($(i + 1)) }' "$NETD_LOG")
[ -n "$MAC0" ] || die "no MAC for port 0 in the log"

# gratuitous ARP at start made cli's neighbour entry, before any traffic
sleep 0.3
neigh=$(ip -n "$CLI" neigh show 198.18.0.2)
assert_contains "$neigh" "$MAC0" "gratuitous ARP"

out=$(ip netns exec "$CLI" ping -c 20 -i 0.05 -W 1 198.18.0.2) || die "ping cli -> 198.18.0.2 failed: $out"
assert_contains "$out" " 0% packet loss"
log "cli -> 198.18.0.2: $(tail -1 <<<"$out")"
out=$(ip netns exec "$UP" ping -c 10 -i 0.05 -W 1 198.18.1.2) || die "ping up -> 198.18.1.2 failed: $out"
assert_contains "$out" " 0% packet loss"
log "up -> 198.18.1.2: $(tail -1 <<<"$out")"
# mid's other address, through the port facing the pinger
out=$(ip netns exec "$UP" ping -c 5 -i 0.05 -W 1 198.18.0.2) || die "ping up -> 198.18.0.2 failed: $out"
assert_contains "$out" " 0% packet loss"
out=$(ip netns exec "$CLI" ping -c 5 -i 0.05 -W 1 198.18.1.2) || die "ping cli -> 198.18.1.2 failed: $out"
assert_contains "$out" " 0% packet loss"
# a large echo (1472 bytes of data: a full 1500-byte packet)
out=$(ip netns exec "$CLI" ping -c 3 -i 0.05 -W 1 -s 1472 -M do 198.18.0.2) || die "ping -s 1472 failed: $out"
assert_contains "$out" " 0% packet loss"

out=$(ip netns exec "$CLI" arping -c 3 -w 5 -I c0 198.18.0.2) || die "arping failed: $out"
assert_contains "${out,,}" "$MAC0" "arping reply MAC"
log "arping: $(grep -c -i 'reply from' <<<"$out") replies"

# UDP echo on port 7 from both sides, then a closed port
udp_check() { # NS DST
    ip netns exec "$1" "$PY" - "$2" <<'PYEOF'
import socket, sys
dst = sys.argv[1]
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(2)
for i in range(20):
    msg = b"nodus-%d-" % i + bytes(range(i * 10 % 256)) * 3
    s.sendto(msg, (dst, 7))
    data, addr = s.recvfrom(4096)
    assert data == msg and addr == (dst, 7), (data, addr)
c = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
c.settimeout(2)
c.connect((dst, 9))
c.send(b"anyone?")
try:
    c.recv(100)
    print("closed port answered")
    sys.exit(1)
except ConnectionRefusedError:
    print("udp echo 20/20, closed port refused")
PYEOF
}
out=$(udp_check "$CLI" 198.18.0.2) || die "UDP from cli: $out"
log "cli -> 198.18.0.2 udp: $out"
out=$(udp_check "$UP" 198.18.1.2) || die "UDP from up: $out"
log "up -> 198.18.1.2 udp: $out"

stop_netd
for k in port0.icmp_echo_replies port0.udp_in port0.udp_out port0.icmp_unreachable_out \
    port0.arp_replies_out port0.arp_gratuitous_out port1.icmp_echo_replies port1.udp_in \
    port0.drop.udp_no_socket port0.drop.ip_checksum port0.drop.tx_queue_full port0.rx_pkts \
    port0.tx_pkts port0.hw_ipackets port0.hw_opackets port0.drop.eth_type; do
    log "  $k = $(counter "$k")"
done
[ "$(counter port0.icmp_echo_replies)" -ge 28 ] || die "port0 echo replies: $(counter port0.icmp_echo_replies)"
[ "$(counter port1.icmp_echo_replies)" -ge 15 ] || die "port1 echo replies: $(counter port1.icmp_echo_replies)"
[ "$(counter port0.udp_out)" -ge 20 ] || die "port0 udp_out"
[ "$(counter port0.icmp_unreachable_out)" -ge 1 ] || die "no port unreachable sent"
[ "$(counter port0.arp_gratuitous_out)" = 1 ] || die "gratuitous ARP count"
[ "$(counter port0.drop.ip_checksum)" = 0 ] || die "IP checksum drops with offloads off"
[ "$(counter port0.drop.tx_queue_full)" = 0 ] || die "TX queue full"

# Fault injection: drop 10% each way. A ping is lost when either its request or its reply
# is dropped: 1 - 0.9^2 = 19% expected.
start_netd drop -f drop=0.1,seed=7
out=$(ip netns exec "$CLI" ping -q -c 300 -i 0.01 -W 1 198.18.0.2 || true)
loss=$(sed -n 's/.* \([0-9.]*\)% packet loss.*/\1/p' <<<"$out")
log "drop=0.1: ping loss ${loss}% (expected ~19%)"
awk -v l="$loss" 'BEGIN { exit !(l >= 9 && l <= 30) }' || die "ping loss $loss% outside 9..30%"
stop_netd
rxd=$(counter port0.drop.fault_rx_drop) rxp=$(counter port0.rx_pkts)
txd=$(counter port0.drop.fault_tx_drop) txp=$(counter port0.tx_pkts)
rate() { awk -v d="$1" -v p="$2" 'BEGIN { printf "%.3f", d / (d + p) }'; }
log "drop=0.1: rx dropped $rxd of $((rxd + rxp)) ($(rate "$rxd" "$rxp")), tx dropped $txd of $((txd + txp)) ($(rate "$txd" "$txp"))"
awk -v r="$(rate "$rxd" "$rxp")" 'BEGIN { exit !(r >= 0.05 && r <= 0.15) }' || die "RX drop rate outside 0.05..0.15"
awk -v r="$(rate "$txd" "$txp")" 'BEGIN { exit !(r >= 0.05 && r <= 0.15) }' || die "TX drop rate outside 0.05..0.15"

# Duplication and reordering: ping sees the duplicates, nothing is lost
start_netd dup -f duplicate=0.2,reorder=0.2,seed=3
out=$(ip netns exec "$CLI" ping -c 100 -i 0.01 -W 1 198.18.0.2 || true)
dups=$(grep -c 'DUP!' <<<"$out" || true)
log "duplicate=0.2 reorder=0.2: $(tail -2 <<<"$out" | head -1), $dups duplicate replies"
assert_contains "$out" " 0% packet loss"
[ "$dups" -ge 10 ] || die "expected duplicates, ping saw $dups"
stop_netd
log "fault_duplicated rx+tx: $(counter port0.fault_duplicated), fault_reordered: $(counter port0.fault_reordered)"
[ "$(counter port0.fault_reordered)" -ge 5 ] || die "no reordering"

pass "ping, arping, UDP echo, port unreachable, GARP, fault injection on net_af_packet"
