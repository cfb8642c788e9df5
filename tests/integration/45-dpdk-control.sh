#!/usr/bin/env bash
# The control plane on the data path: nodus in mid with node.io = "dpdk" (both veths through
# net_af_packet, no kernel address) runs its admin listener and gossip (UDP and TCP on 7946) on
# the user-space stack of its ports (core/ctlsock.h, dpdk/ctl_dpdk.c). In up, on kernel sockets:
# a real `serf agent` and a second nodus that advertises service "web" (an nginx in up).
#   - nodus on DPDK joins serf (UDP probes, TCP push/pull opened by a worker): each sees the
#     other alive, serf with nodus's tags, nodus (GET /members, `nodus members` from cli) with
#     serf's; `serf join` pushes/pulls into the DPDK node's TCP listener;
#   - the kernel nodus joins the DPDK node (TCP push/pull accepted on the DPDK port); serf learns
#     it through the DPDK node;
#   - the DPDK node discovers "web" over gossip and cli's requests reach up's nginx through it;
#   - serf queries through the DPDK port: `serf reachability` gets the DPDK node's ack, and
#     `nodus query` on the DPDK node gets the acks of all three members;
#   - SIGTERM: serf and the kernel nodus see the DPDK node left (a graceful leave);
#   - the nodus_ctl_* counters of the relay.
# Skips when not root, or when the EAL cannot start here (nodus exits 3).
# shellcheck disable=SC1091
. "$(dirname "$0")/lib.sh"

need_root
need_cmd ip curl nginx serf ethtool

P=$(netns_prefix)
netns_topology "$P" raw
CLI=$P-cli MID=$P-mid UP=$P-up
NODE=198.18.0.2 NODE_UP=198.18.1.2 UPIP=198.18.1.1
ADMIN=$NODE:15000
export ASAN_OPTIONS=${ASAN_OPTIONS:-}:detect_leaks=0 # DPDK keeps some allocations until exit

in_cli() { ip netns exec "$CLI" "$@"; }
in_up() { ip netns exec "$UP" "$@"; }
metric() { # NAME: a metric's value from the DPDK node (0 when absent)
    in_cli curl -s --max-time 5 "http://$ADMIN/stats/prometheus" |
        awk -v k="$1" '$1 == k { print $2; f = 1 } END { if (!f) print 0 }'
}
serf_status() { # NAME: its status at the serf agent in up
    in_up serf members -rpc-addr 127.0.0.1:7373 2>/dev/null | awk -v n="$1" '$1 == n { print $3 }'
}
dpdk_status() { # NAME: its status at the DPDK node, asked from cli with `nodus members`
    in_cli "$NODUS" members --admin "$ADMIN" 2>/dev/null | awk -v n="$1" '$1 == n { print $3 }'
}
kernel_status() { # NAME: its status at the kernel nodus in up
    in_up "$NODUS" members --admin 127.0.0.1:15001 2>/dev/null | awk -v n="$1" '$1 == n { print $3 }'
}
is() { [ "$("$1" "${@:3}")" = "$2" ]; } # is FUNC WANT ARGS...
wait_for() { # SECS DESCRIPTION CMD...: until CMD succeeds; prints how long it took
    local secs=$1 what=$2 t0 i
    shift 2
    t0=${EPOCHREALTIME/,/.}
    for ((i = 0; i < secs * 10; i++)); do
        if "$@"; then
            awk -v a="$t0" -v b="${EPOCHREALTIME/,/.}" 'BEGIN { printf "%.1f\n", b - a }'
            return 0
        fi
        sleep 0.1
    done
    die "timed out after ${secs}s waiting for: $what"
}
through() { [ "$(in_cli curl -s --max-time 2 "http://$NODE:8080/x")" = from-up ]; }

# ---- up: serf and nginx ----
IN_NETNS=$UP bg serf-up serf agent -node serf-up -bind "$UPIP:7946" -rpc-addr 127.0.0.1:7373 \
    -tag role=db -log-level debug
SERF_PID=$BG_PID
for ((i = 0; i < 100; i++)); do
    in_up serf members -rpc-addr 127.0.0.1:7373 >/dev/null 2>&1 && break
    kill -0 "$SERF_PID" 2>/dev/null || die "serf agent exited"
    sleep 0.1
done
IN_NETNS=$UP start_nginx_upstream 9000 from-up "$UPIP"

# ---- mid: nodus on DPDK, admin and gossip on its ports ----
cfg=$(write_file dpdk.lua <<LUA
node { name = "dpdk-mid", workers = 1, io = "dpdk" }
dpdk {
  args = { "--no-huge", "-m", "256", "--no-pci", "--no-shconf", "-l", "0", "--log-level=notice" },
  ports = { { dev = "net_af_packet0,iface=m0", ip = "$NODE/24" },
            { dev = "net_af_packet1,iface=m1", ip = "$NODE_UP/24" } },
}
admin { listen = "$ADMIN" }
gossip {
  bind = "0.0.0.0:7946", advertise = "$NODE_UP:7946",
  join = { "$UPIP:7946" },
  tags = { role = "edge", io = "dpdk" },
}
cluster "web" { discover = "web", connect_timeout = "500ms" }
listener "in" {
  listen = "0.0.0.0:8080",
  plugins = { router { { match = { prefix = "/" }, cluster = "web" } } },
}
LUA
)
"$NODUS" check "$cfg" >/dev/null || die "nodus check refused the DPDK node's config"
IN_NETNS=$MID start_nodus "$cfg"
DPDK_PID=$NODUS_PID DPDK_LOG=$NODUS_LOG
for ((i = 0; i < 150; i++)); do
    [ "$(in_cli curl -s -o /dev/null -w '%{http_code}' --max-time 1 "http://$ADMIN/ready" || true)" = 200 ] && break
    if ! kill -0 "$DPDK_PID" 2>/dev/null; then
        wait "$DPDK_PID" && rc=0 || rc=$?
        [ "$rc" = 3 ] && skip "DPDK cannot start here: $(grep -m1 'dpdk:' "$DPDK_LOG")"
        die "nodus on DPDK exited ($rc)"
    fi
    sleep 0.1
done
[ "$i" -lt 150 ] || die "nodus on DPDK not ready within 15 s"
assert_contains "$(in_cli "$NODUS" status --admin "$ADMIN")" "io dpdk" "nodus status over the data path"
assert_contains "$(cat "$DPDK_LOG")" "admin on $ADMIN (dpdk)" "the log says where admin runs"
assert_contains "$(cat "$DPDK_LOG")" "gossip on 0.0.0.0:7946 (dpdk)" "the log says where gossip runs"

# nodus joined serf: both see each other alive
t=$(wait_for 15 "serf sees dpdk-mid alive" is serf_status alive dpdk-mid)
log "serf sees the DPDK node alive after ${t}s"
line=$(in_up serf members -rpc-addr 127.0.0.1:7373 | awk '$1 == "dpdk-mid"')
assert_contains "$line" "$NODE_UP:7946" "serf members shows the DPDK node's address"
assert_contains "$line" "io=dpdk" "serf members shows the DPDK node's tags"
t=$(wait_for 15 "dpdk-mid sees serf alive" is dpdk_status alive serf-up)
log "the DPDK node sees serf alive after ${t}s"
assert_contains "$(in_cli curl -s --max-time 5 "http://$ADMIN/members")" '"role": "db"' "GET /members carries serf's tags"

# ---- up: a nodus on kernel sockets joins the DPDK node and advertises web ----
cfg2=$(write_file kernel.lua <<LUA
node { name = "kernel-up", workers = 1 }
admin { listen = "127.0.0.1:15001" }
gossip { bind = "$UPIP:7947", join = { "$NODE_UP:7946" } }
service "web" { port = 9000, address = "$UPIP" }
LUA
)
IN_NETNS=$UP start_nodus "$cfg2"
KERNEL_PID=$NODUS_PID
t=$(wait_for 15 "dpdk-mid sees kernel-up alive" is dpdk_status alive kernel-up)
log "the kernel node joined the DPDK node (TCP push/pull on the DPDK port) after ${t}s"
wait_for 15 "kernel-up sees dpdk-mid alive" is kernel_status alive dpdk-mid >/dev/null
t=$(wait_for 20 "serf learns kernel-up" is serf_status alive kernel-up)
log "serf learnt the kernel node through the DPDK node after ${t}s"

# the service discovered over gossip gets cli's traffic through the DPDK node
t=$(wait_for 15 "cli reaches up's nginx through the discovered service" through)
log "service \"web\" discovered over gossip: cli's requests reach it through the DPDK node after ${t}s"
for ((i = 0; i < 20; i++)); do through || die "request $i through the discovered service failed"; done
assert_contains "$(in_cli "$NODUS" status --admin "$ADMIN")" "discover \"web\": 1 endpoint(s)" "nodus status shows the discovered endpoint"

pp=$(metric nodus_gossip_pushpulls_total)
[ "$pp" -ge 2 ] || die "push/pulls over the DPDK port: $pp (want the join's and the kernel node's)"
for m in nodus_gossip_pushpulls_total nodus_gossip_packets_in_total nodus_gossip_packets_out_total \
    'nodus_ctl_messages_in_total{sockets="dpdk"}' 'nodus_ctl_messages_out_total{sockets="dpdk"}' \
    'nodus_ctl_messages_deferred_total{sockets="dpdk"}' 'nodus_ctl_udp_dropped_total{sockets="dpdk"}' \
    'nodus_ctl_conns_refused_total{sockets="dpdk"}' 'nodus_ctl_bind_errors_total{sockets="dpdk"}'; do
    log "  $m = $(metric "$m")"
done
[ "$(metric 'nodus_ctl_messages_in_total{sockets="dpdk"}')" -gt 0 ] || die "no relay messages counted"
[ "$(metric 'nodus_ctl_bind_errors_total{sockets="dpdk"}')" = 0 ] || die "a worker could not bind"
grep -q 'control socket' "$DPDK_LOG" && die "control socket errors: $(grep 'control socket' "$DPDK_LOG")"

# serf's own push/pull into the DPDK node's TCP listener
out=$(in_up serf join -rpc-addr 127.0.0.1:7373 "$NODE_UP:7946" 2>&1) || die "serf join failed: $out"
assert_contains "$out" "Successfully joined cluster by contacting 1 nodes" "serf join over TCP to the DPDK port"

# serf queries over the DPDK port: serf's _serf_ping reaches the DPDK node, and its own query
# (sent from cli with `nodus query`) gets the acks of all three, its own included
out=$(in_up serf reachability -rpc-addr 127.0.0.1:7373 -verbose 2>&1)
assert_contains "$out" "Ack from 'dpdk-mid'" "serf reachability: the DPDK node acks"
assert_contains "$out" "Successfully contacted all live nodes" "serf reachability through the DPDK node"
out=$(in_cli "$NODUS" query --admin "$ADMIN" --timeout 2s dpdk-q 2>&1)
for n in dpdk-mid serf-up kernel-up; do
    assert_contains "$out" "Ack from '$n'" "nodus query on the DPDK node: ack from $n"
done
assert_contains "$out" "Total Acks: 3" "nodus query on the DPDK node: three acks"
log "queries over the DPDK port: serf reachability and nodus query answered by all three"

# ---- SIGTERM: a graceful leave, seen by serf and by the kernel node ----
kill -TERM "$DPDK_PID"
t=$(wait_for 15 "serf shows dpdk-mid left" is serf_status left dpdk-mid)
log "the DPDK node stopped: serf shows it left after ${t}s"
wait_for 10 "kernel-up shows dpdk-mid left" is kernel_status left dpdk-mid >/dev/null
for ((i = 0; i < 100; i++)); do kill -0 "$DPDK_PID" 2>/dev/null || break; sleep 0.1; done
wait "$DPDK_PID" || die "nodus on DPDK exited with $? on SIGTERM"
grep -q 'info \[main\] stopped' "$DPDK_LOG" || die "nodus on DPDK did not stop cleanly"
kill -0 "$KERNEL_PID" 2>/dev/null || die "the kernel node exited"
if grep -E '\[(ERR|WARN)\]' "$T"/serf-up*.log | grep -v -E 'Failed to (send|receive)|i/o timeout|connection refused|Refuting|EOF|timeout while waiting|reset by peer' >"$T/serf-errors"; then
    cat "$T/serf-errors" >&2
    die "serf logged errors or warnings about the DPDK node"
fi
pass "admin and gossip on DPDK: serf and a kernel nodus see the node, discovery through it, graceful leave"
