#!/usr/bin/env bash
# The foundation's HTTP integration tests (10-http, 11-bodies, 12-plugins, 13-connections,
# 14-router) once more, on io = "dpdk": each runs unchanged inside the cli namespace of a raw
# topology, with its clients and upstreams there, while start_nodus (lib.sh) turns its config into
# a DPDK one and runs nodus in mid, owning the veth m0 through net_af_packet with 198.18.0.2. So
# every request, the admin API, reloads and the drain cross the user-space TCP, twice for a
# proxied request (client -> node, node -> upstream). The IPv6 part of 14-router is skipped
# (the user-space stack is IPv4 only).
# Skips when not root, or when the EAL cannot start here.
# shellcheck disable=SC1091
. "$(dirname "$0")/lib.sh"

need_root
need_cmd ip curl nginx python3 wrk ethtool

P=$(netns_prefix)
netns_topology "$P" raw
CLI=$P-cli MID=$P-mid

# EAL first: a machine that cannot run DPDK at all skips (start_dpdk_node), as the other DPDK
# tests do
probe=$(write_file probe.lua <<LUA
node { name = "probe", io = "dpdk" }
dpdk {
  args = { "--no-huge", "-m", "256", "--no-pci", "--no-shconf", "-l", "0", "--log-level=notice" },
  ports = { { dev = "net_af_packet0,iface=m0", ip = "$NETNS_MID_IP0/24" } },
}
admin { listen = "$NETNS_MID_IP0:15000" }
LUA
)
export ASAN_OPTIONS=${ASAN_OPTIONS:-}:detect_leaks=0
start_dpdk_node "$probe" "$NETNS_MID_IP0:15000" "$CLI"
stop_node

failed=()
for t in 10-http 11-bodies 12-plugins 13-connections 14-router 15-request-head; do
    rc=0
    ip netns exec "$CLI" env NODUS_IO=dpdk NODUS_DPDK_NS="$MID" \
        NODE_IP="$NETNS_MID_IP0" PEER_IP="$NETNS_CLI_IP" KEEP_TMP="${KEEP_TMP:-0}" \
        "$LIB_DIR/$t.sh" >"$T/$t.log" 2>&1 </dev/null || rc=$?
    case "$rc" in
    0) log "$t on dpdk: $(tail -n 1 "$T/$t.log")" ;;
    77)
        # the EAL or the port cannot start here: the same for all of them
        skip "$(tail -n 1 "$T/$t.log")"
        ;;
    *)
        echo "---- $t on dpdk (exit $rc) ----" >&2
        tail -n 40 "$T/$t.log" >&2
        failed+=("$t")
        ;;
    esac
done
[ ${#failed[@]} = 0 ] || die "on io = dpdk: ${failed[*]} failed"
pass "10-http 11-bodies 12-plugins 13-connections 14-router 15-request-head on io = dpdk (af_packet, user-space TCP)"
