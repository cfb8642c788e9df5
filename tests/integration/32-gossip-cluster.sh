#!/usr/bin/env bash
# A gossip cluster of 20 nodus processes (docs/gossip.md, "Running it"), profile "fast":
#   - join: node 1 starts alone, every other node joins through one or two seeds; every node's
#     GET /members shows all 20 alive;
#   - kill: SIGKILL one node; every other node marks it failed within a stated bound;
#   - partition: the two halves of the cluster cannot reach each other; each half marks the
#     other half failed and stays alive itself; heal: all 19 alive everywhere again;
#   - leave: SIGTERM one node (graceful leave); every other node shows it left.
#
# Where the nodes run: the partition needs a way to cut traffic between two groups of processes.
# The sandbox has neither iptables nor nft, the gossip driver has no "drop from these peers"
# switch, and its outgoing TCP connections are not bound to the gossip address (so a policy
# route cannot tell the groups apart on one loopback). So the test builds two network
# namespaces of its own joined by a veth pair on 198.18.60.0/24 (RFC 2544 range): half A
# (nodes 1-10) binds 198.18.60.1, half B (nodes 11-20) 198.18.60.2, distinct ports. Inside a
# half, nodes talk over that namespace's loopback; across, over the veth. The partition is a
# "prohibit" route to the other half's address in each namespace (datagrams and connections to
# it fail at the sender), the heal deletes it.
# shellcheck disable=SC1091
. "$(dirname "$0")/lib.sh"

need_root
need_cmd curl jq ip

N=20
HALF=10
PFX=$(netns_prefix)g
NSA=$PFX-a NSB=$PFX-b
IPA=198.18.60.1 IPB=198.18.60.2
KILL_BOUND=15 # s: every survivor marks a SIGKILLed node failed (fast profile, 19 observers)
PART_BOUND=30 # s: each half marks the whole other half failed
HEAL_BOUND=30 # s: all alive everywhere after the heal
T_START=$SECONDS
PIDS=()

cleanup ip netns del "$NSB"
cleanup ip netns del "$NSA"
ip netns add "$NSA" || die "cannot create namespace $NSA"
ip netns add "$NSB" || die "cannot create namespace $NSB"
ip -n "$NSA" link set lo up
ip -n "$NSB" link set lo up
ip link add "$PFX-va" netns "$NSA" type veth peer name "$PFX-vb" netns "$NSB" ||
    die "cannot create the veth pair"
ip -n "$NSA" addr add "$IPA/24" dev "$PFX-va"
ip -n "$NSB" addr add "$IPB/24" dev "$PFX-vb"
ip -n "$NSA" link set "$PFX-va" up
ip -n "$NSB" link set "$PFX-vb" up

ns_of() { if (($1 <= HALF)); then echo "$NSA"; else echo "$NSB"; fi; }
ip_of() { if (($1 <= HALF)); then echo "$IPA"; else echo "$IPB"; fi; }
gport() { echo $((7900 + $1)); }
aport() { echo $((8900 + $1)); }

# members I: node I's /members as "name status" lines, sorted (empty if it does not answer)
members() {
    ip netns exec "$(ns_of "$1")" curl -s --max-time 2 "http://$(ip_of "$1"):$(aport "$1")/members" |
        jq -r '.members[] | "\(.name) \(.status)"' 2>/dev/null | sort || true
}
# count I STATUS [NAMES-REGEX]: members of node I's view with STATUS (among NAMES)
count() {
    members "$1" | awk -v s="$2" -v re="^(${3:-.*})\$" '$2 == s && $1 ~ re { n++ } END { print n + 0 }'
}
# every NODES CHECK...: CHECK I true for every node I in NODES (a space-separated list)
every() {
    local nodes=$1 i
    shift
    for i in $nodes; do
        "$@" "$i" || return 1
    done
}
# wait_for SECS WHAT CMD...: until CMD succeeds; prints how long it took (s)
wait_for() {
    local secs=$1 what=$2 t0 i
    shift 2
    t0=${EPOCHREALTIME/,/.}
    for ((i = 0; i < secs * 4; i++)); do
        if "$@"; then
            awk -v a="$t0" -v b="${EPOCHREALTIME/,/.}" 'BEGIN { printf "%.1f\n", b - a }'
            return 0
        fi
        sleep 0.25
    done
    show_views >&2
    die "timed out after ${secs}s waiting for: $what"
}
show_views() {
    local i
    for i in $LIVE; do
        echo "  n$i sees: $(members "$i" | awk '{ c[$2]++ } END { for (s in c) printf "%s=%d ", s, c[s] }')"
    done
}

# node I, seeds: node 1 starts the cluster; the others join node 1 and node 11 (two seeds, one
# in each half; node 11 joins node 1 only)
for ((i = 1; i <= N; i++)); do
    join=""
    if ((i > 1)); then
        join="\"$(ip_of 1):$(gport 1)\""
        ((i != 11)) && join="$join, \"$(ip_of 11):$(gport 11)\""
        join="join = { $join },"
    fi
    cfg=$(write_file "n$i.lua" <<LUA
node { name = "n$i", workers = 1 }
admin { listen = "$(ip_of "$i"):$(aport "$i")" }
gossip { bind = "$(ip_of "$i"):$(gport "$i")", $join profile = "fast", tags = { half = "$((i <= HALF ? 1 : 2))" } }
LUA
    )
    IN_NETNS=$(ns_of "$i") start_nodus "$cfg" 2>/dev/null
    PIDS[i]=$NODUS_PID
done
ALL=$(seq -s ' ' 1 $N)
LIVE=$ALL
# ready I: node I's admin answers /ready with 200 (curl inside the node's namespace)
ready() {
    [ "$(ip netns exec "$(ns_of "$1")" curl -s -o /dev/null -w '%{http_code}' --max-time 1 \
        "http://$(ip_of "$1"):$(aport "$1")/ready")" = 200 ]
}
wait_for 30 "every node ready" every "$ALL" ready >/dev/null
log "20 nodes started and ready after $((SECONDS - T_START))s"

# 1. join: all 20 alive everywhere
all_alive() { [ "$(count "$1" alive)" -eq "$N" ]; }
t=$(wait_for 30 "all 20 alive in every node's /members" every "$ALL" all_alive)
log "join: all 20 alive in all 20 views ${t}s after the last node was ready"
view=$(members 7)
assert_contains "$view" "n20 alive" "n7 sees n20 alive"
tags=$(ip netns exec "$NSA" curl -s "http://$IPA:$(aport 3)/members" | jq -r '.members[] | select(.name == "n15") | .tags.half')
assert_eq 2 "$tags" "n3 sees n15's tags"

# 2. kill: SIGKILL n5; the 19 others mark it failed
kill -KILL "${PIDS[5]}"
wait "${PIDS[5]}" 2>/dev/null || true
LIVE=$(tr ' ' '\n' <<<"$ALL" | grep -vx 5 | tr '\n' ' ')
n5_failed() { [ "$(count "$1" failed n5)" -eq 1 ]; }
t=$(wait_for "$KILL_BOUND" "every survivor marks n5 failed" every "$LIVE" n5_failed)
log "kill: all 19 survivors mark n5 failed ${t}s after SIGKILL (bound ${KILL_BOUND}s)"
alive19() { [ "$(count "$1" alive)" -eq 19 ]; }
every "$LIVE" alive19 || die "a survivor does not see the 19 others alive after the kill"

# 3. partition: A = 1-4,6-10 (9 live), B = 11-20 (10)
A_LIVE="1 2 3 4 6 7 8 9 10"
B_LIVE=$(seq -s ' ' 11 20)
ip -n "$NSA" route add prohibit "$IPB/32"
ip -n "$NSB" route add prohibit "$IPA/32"
a_view() { # node of A: 9 alive (A), 10 failed (B)
    [ "$(count "$1" alive 'n([1-9]|10)')" -eq 9 ] && [ "$(count "$1" failed 'n(1[1-9]|20)')" -eq 10 ]
}
b_view() { # node of B: 10 alive (B), 9 failed (A's live nodes)
    [ "$(count "$1" alive 'n(1[1-9]|20)')" -eq 10 ] && [ "$(count "$1" failed 'n([1-4]|[6-9]|10)')" -eq 9 ]
}
t=$(wait_for "$PART_BOUND" "each half marks the other failed" every "$A_LIVE" a_view)
t2=$(wait_for "$PART_BOUND" "each half marks the other failed" every "$B_LIVE" b_view)
log "partition: A marks B failed after ${t}s, B marks A failed ${t2}s later (bound ${PART_BOUND}s)"

# heal: everyone alive again (n5 stays failed)
ip -n "$NSA" route del prohibit "$IPB/32"
ip -n "$NSB" route del prohibit "$IPA/32"
healed() { alive19 "$1" && n5_failed "$1"; }
t=$(wait_for "$HEAL_BOUND" "all 19 alive everywhere after the heal" every "$LIVE" healed)
log "heal: all 19 alive in all 19 views ${t}s after the heal (bound ${HEAL_BOUND}s)"

# 4. leave: SIGTERM n12 (graceful): the others show it left
kill -TERM "${PIDS[12]}"
n12_left() { [ "$(count "$1" left n12)" -eq 1 ]; }
LIVE=$(tr ' ' '\n' <<<"$LIVE" | grep -vx 12 | tr '\n' ' ')
t=$(wait_for 10 "every node shows n12 left" every "$LIVE" n12_left)
log "leave: all 18 others show n12 left ${t}s after SIGTERM"
wait "${PIDS[12]}" || die "n12 exited with an error after SIGTERM"

for i in $LIVE; do
    kill -0 "${PIDS[i]}" 2>/dev/null || die "node n$i exited during the test"
done
pass "20 nodes: join, kill, partition and heal, leave ($((SECONDS - T_START))s)"
