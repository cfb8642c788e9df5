#!/usr/bin/env bash
# The proxy on DPDK through another PMD: net_tap instead of net_af_packet. nodus in mid (raw
# topology) creates two tap devices, t0 and t1, which the test bridges to mid's veths m0 and m1
# once they exist: cli -> m0 -> br0 -> t0 -> nodus -> t1 -> br1 -> m1 -> up. Checked: ping of
# both node addresses, a GET and a 20 MB download through the node to nginx in up (sha256), and
# the port counters. Skips when not root, without /dev/net/tun, or when the EAL cannot start.
# shellcheck disable=SC1091
. "$(dirname "$0")/lib.sh"

need_root
need_cmd ip curl nginx ping sha256sum
[ -c /dev/net/tun ] || skip "no /dev/net/tun"

P=$(netns_prefix)
netns_topology "$P" raw
CLI=$P-cli MID=$P-mid UP=$P-up
NODE=198.18.0.2 UPIP=198.18.1.1
ADMIN=127.0.0.1:15000 # mid's loopback
export ASAN_OPTIONS=${ASAN_OPTIONS:-}:detect_leaks=0 # DPDK keeps allocations until exit

in_cli() { ip netns exec "$CLI" "$@"; }
in_mid() { ip netns exec "$MID" "$@"; }
metric() {
    in_mid curl -s --max-time 5 "http://$ADMIN/stats/prometheus" |
        awk -v k="$1" '$1 == k { print $2; f = 1 } END { if (f) print 0 }' | head -1
}

head -c 20000000 /dev/urandom >"$T/big"
SHA=$(sha256sum "$T/big" | cut -d' ' -f1)
mkdir -p "$T/www/files"
ln "$T/big" "$T/www/files/big"
IN_NETNS=$UP NGINX_FILES=$T/www/files start_nginx_upstream 80 "hello from nginx" "$UPIP"

cat >"$T/tap.lua" <<LUA
node { name = "dpdk-tap", workers = 1, io = "dpdk" }
dpdk {
  args = { "--no-huge", "-m", "256", "--no-pci", "--no-shconf", "-l", "0", "--log-level=notice" },
  ports = { { dev = "net_tap0,iface=t0", ip = "198.18.0.2/24" },
            { dev = "net_tap1,iface=t1", ip = "198.18.1.2/24" } },
}
admin { listen = "$ADMIN" }
cluster "nginx" { endpoints = { "$UPIP:80" } }
listener "ingress" {
  listen = "0.0.0.0:8080", protocol = "http",
  plugins = { router { { match = { prefix = "/" }, cluster = "nginx", timeout = "60s" } } },
}
LUA
start_dpdk_node "$T/tap.lua" "$ADMIN"
grep 'dpdk port' "$NODUS_LOG" >&2
# the taps exist now: bridge each to its veth (no address on either: layer 2 only). The PMD
# gives the kernel's side of its tap the port's own MAC; a bridge takes frames for the MAC of one
# of its ports as its own and would never pass them to the tap, so that side gets another MAC.
for k in 0 1; do
    in_mid ip link add "br$k" type bridge
    in_mid ip link set "m$k" master "br$k"
    in_mid ip link set "t$k" address "02:00:00:00:00:1$k"
    in_mid ip link set "t$k" master "br$k"
    in_mid ip link set "t$k" up
    in_mid ip link set "br$k" up
done

for ((i = 0; i < 50; i++)); do in_cli ping -c1 -W1 "$NODE" >/dev/null 2>&1 && break; sleep 0.2; done
in_cli ping -c3 -i0.2 -W2 "$NODE" >/dev/null || die "no ping to $NODE through the tap"
ip netns exec "$UP" ping -c3 -i0.2 -W2 198.18.1.2 >/dev/null || die "no ping to 198.18.1.2 from up"
got=$(in_cli curl -sS --max-time 10 "http://$NODE:8080/hello")
assert_eq "hello from nginx" "$got" "GET through nodus on net_tap"
t0=$EPOCHREALTIME
got=$(in_cli curl -sS --max-time 60 "http://$NODE:8080/files/big" | sha256sum | cut -d' ' -f1)
assert_eq "$SHA" "$got" "20 MB download through net_tap"
log "20 MB through net_tap in $(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.2f", b - a }') s"
rx=$(metric 'nodus_dpdk_port_rx_packets_total{port="0"}')
[ "${rx:-0}" -gt 1000 ] || die "port 0 counted $rx frames"
pass "nodus on net_tap: ping, GET, 20 MB intact"
