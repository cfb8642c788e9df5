#!/usr/bin/env bash
# Interop with real `serf agent` processes (Debian's serf 0.9.4, memberlist protocol 5) on
# loopback, without and with encryption:
#   - nodus joins a serf agent; `serf members` shows nodus alive with its tags; nodus's
#     /members shows the serf node alive;
#   - a serf agent joins nodus, and the first serf agent learns it through nodus;
#   - serf agent SIGKILL -> nodus marks it failed within the suspicion bound (plaintext run);
#   - `serf leave` -> nodus shows it left;
#   - user events both ways: `serf event` on a serf agent -> nodus (GET /events, `nodus events`,
#     counters), `nodus event` (with and without coalescing) -> a serf agent's event handler;
#     an event reaches nodus once however many copies gossip brings; reserved and oversized
#     events are refused by `nodus event`;
#   - nodus SIGTERM -> serf shows nodus left (a graceful leave: intent, then dead from itself).
# shellcheck disable=SC1091
. "$(dirname "$0")/lib.sh"

need_cmd serf curl

admin_port=$(free_port)
ADMIN=127.0.0.1:$admin_port

# serf_status RPC_PORT NAME: NAME's status as a serf agent sees it ("" if unknown)
serf_status() {
    serf members -rpc-addr "127.0.0.1:$1" 2>/dev/null | awk -v n="$2" '$1 == n { print $3 }'
}
serf_line() {
    serf members -rpc-addr "127.0.0.1:$1" 2>/dev/null | awk -v n="$2" '$1 == n'
}
# nodus_status NAME: NAME's status in nodus's member list
nodus_status() {
    "$NODUS" members --admin "$ADMIN" 2>/dev/null | awk -v n="$1" '$1 == n { print $3 }'
}
# wait_for SECS DESCRIPTION CMD...: until CMD succeeds; prints how long it took
wait_for() {
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
is() { [ "$("$1" "${@:3}")" = "$2" ]; } # is FUNC WANT ARGS...
# nodus_events NAME PAYLOAD: how many times nodus's recent events list NAME with PAYLOAD
nodus_events() {
    "$NODUS" events --admin "$ADMIN" 2>/dev/null | awk -v n="$1" -v p="$2" '$4 == n && $5 == p' | wc -l
}
# serf_got FILE LINE: the serf agent's event handler wrote LINE
serf_got() { grep -qxF "$2" "$1" 2>/dev/null; }

# The serf agents' event handler: one line "NAME PAYLOAD" per user event, in $T/events-NODE.txt
handler=$(write_file serf-handler.sh <<'SH'
#!/bin/sh
printf '%s %s\n' "$SERF_USER_EVENT" "$(cat)" >>"$EVENTS_DIR/events-$SERF_SELF_NAME.txt"
SH
)
chmod +x "$handler"
export EVENTS_DIR=$T

# start_serf NAME BIND_PORT RPC_PORT [ARGS...]: sets SERF_PID
start_serf() {
    local name=$1 port=$2 rpc=$3 i
    shift 3
    bg "serf-$name" serf agent -node "$name" -bind "127.0.0.1:$port" -rpc-addr "127.0.0.1:$rpc" \
        -log-level debug "$@"
    SERF_PID=$BG_PID
    for ((i = 0; i < 100; i++)); do
        serf members -rpc-addr "127.0.0.1:$rpc" >/dev/null 2>&1 && return 0
        kill -0 "$SERF_PID" 2>/dev/null || die "serf agent $name exited"
        sleep 0.1
    done
    die "serf agent $name does not answer on its RPC port"
}

run_scenario() { # MODE KEY
    local mode=$1 key=$2 enc=() keyring="" s1 s1rpc s2 s2rpc s3 s3rpc g t kill_bound
    s1=$(free_port) s1rpc=$(free_port) s2=$(free_port) s2rpc=$(free_port)
    s3=$(free_port) s3rpc=$(free_port) g=$(free_port)
    if [ -n "$key" ]; then
        enc=(-encrypt "$key")
        keyring="keyring = { \"$key\" },"
    fi
    log "== $mode: serf1 on $s1, nodus on $g"

    start_serf "serf1-$mode" "$s1" "$s1rpc" -tag role=db "${enc[@]}" -event-handler "user=$handler"
    local serf1_pid=$SERF_PID
    cfg=$(write_file "nodus-$mode.lua" <<LUA
node { name = "nodus-$mode", workers = 1 }
admin { listen = "$ADMIN" }
gossip {
  bind = "127.0.0.1:$g",
  join = { "127.0.0.1:$s1" },
  $keyring
  tags = { role = "edge", zone = "z1" },
}
LUA
)
    start_nodus "$cfg"
    wait_http "http://$ADMIN/ready" 15 || die "nodus did not become ready"

    # nodus joined serf: both sides see each other alive, serf sees nodus's tags
    t=$(wait_for 15 "serf1 sees nodus alive" is serf_status alive "$s1rpc" "nodus-$mode")
    log "serf1 sees nodus-$mode alive after ${t}s"
    line=$(serf_line "$s1rpc" "nodus-$mode")
    assert_contains "$line" "role=edge" "serf members shows nodus's tags"
    assert_contains "$line" "zone=z1" "serf members shows nodus's tags"
    assert_contains "$line" "127.0.0.1:$g" "serf members shows nodus's address"
    wait_for 10 "nodus sees serf1 alive" is nodus_status alive "serf1-$mode" >/dev/null
    json=$(curl -s "http://$ADMIN/members")
    assert_contains "$json" "\"role\": \"db\"" "GET /members carries serf1's tags"
    curl -s -o "$T/metrics" "http://$ADMIN/stats/prometheus"
    grep -Eq '^nodus_gossip_members\{state="alive"\} [2-9]' "$T/metrics" ||
        die "nodus_gossip_members{state=alive} does not count serf1: $(grep gossip_members "$T/metrics")"
    grep -Eq '^nodus_gossip_probes_total [0-9]+' "$T/metrics" || die "no gossip probe counter"

    # user events, serf -> nodus
    serf event -rpc-addr "127.0.0.1:$s1rpc" deploy "v42-$mode" >/dev/null
    t=$(wait_for 10 "nodus receives serf1's event" is nodus_events 1 deploy "v42-$mode")
    log "serf event -> nodus after ${t}s"
    curl -s -o "$T/metrics" "http://$ADMIN/stats/prometheus"
    grep -Eq '^nodus_gossip_events_received_total [1-9]' "$T/metrics" ||
        die "nodus_gossip_events_received_total does not count it: $(grep events_ "$T/metrics")"
    # nodus -> serf, without and with coalescing (serf's agent holds coalesced user events up to
    # its 3 s coalesce period)
    out=$("$NODUS" event --admin "$ADMIN" --no-coalesce release "r7-$mode")
    assert_contains "$out" "Event 'release' dispatched" "nodus event answers like serf event"
    t=$(wait_for 10 "serf1's handler runs for nodus's event" serf_got "$T/events-serf1-$mode.txt" "release r7-$mode")
    log "nodus event -> serf1's event handler after ${t}s"
    "$NODUS" event --admin "$ADMIN" rollout "batch 2 of 3" >/dev/null
    t=$(wait_for 15 "serf1's handler runs for a coalesced event" serf_got "$T/events-serf1-$mode.txt" "rollout batch 2 of 3")
    log "coalesced nodus event -> serf1's event handler after ${t}s"
    json=$(curl -s "http://$ADMIN/events")
    assert_contains "$json" '"origin": "self"' "GET /events lists nodus's own events"
    assert_contains "$json" '"payload": "batch 2 of 3"' "GET /events shows payloads"
    # refused at the source, with the reason
    if out=$("$NODUS" event --admin "$ADMIN" nodus:rl:api x 2>&1); then die "a reserved name was sent"; fi
    assert_contains "$out" "reserved" "nodus event refuses reserved names"
    if out=$("$NODUS" event --admin "$ADMIN" big "$(head -c 600 /dev/zero | tr '\0' x)" 2>&1); then
        die "a 600-byte event was sent"
    fi
    assert_contains "$out" "at most 512" "nodus event refuses events over 512 bytes"

    # serf joins nodus; serf1 hears of serf2 through nodus
    start_serf "serf2-$mode" "$s2" "$s2rpc" "${enc[@]}" -join "127.0.0.1:$g"
    local serf2_pid=$SERF_PID
    wait_for 15 "nodus sees serf2 alive" is nodus_status alive "serf2-$mode" >/dev/null
    t=$(wait_for 20 "serf1 sees serf2 alive" is serf_status alive "$s1rpc" "serf2-$mode")
    log "serf1 learnt serf2 (joined through nodus) after ${t}s"
    wait_for 10 "serf2 sees nodus alive" is serf_status alive "$s2rpc" "nodus-$mode" >/dev/null
    # an event of serf2's reaches nodus and serf1; gossip brings copies, nodus delivers it once
    serf event -rpc-addr "127.0.0.1:$s2rpc" -coalesce=false hello "from-serf2-$mode" >/dev/null
    wait_for 10 "nodus receives serf2's event" is nodus_events 1 hello "from-serf2-$mode" >/dev/null
    wait_for 10 "serf1 receives serf2's event" serf_got "$T/events-serf1-$mode.txt" "hello from-serf2-$mode" >/dev/null
    sleep 2
    [ "$(nodus_events hello "from-serf2-$mode")" = 1 ] || die "nodus delivered serf2's event more than once"

    if [ "$mode" = plain ]; then
        # SIGKILL: three live members, so memberlist's suspicion is its minimum, 4 s
        # (4 x max(1, log10 3) x 1 s), after a failed probe round (<= 2 s) and the gossip.
        kill -KILL "$serf2_pid"
        kill_bound=15
        t=$(wait_for "$kill_bound" "nodus marks serf2 failed" is nodus_status failed "serf2-$mode")
        log "serf2 killed: nodus marked it failed after ${t}s (bound ${kill_bound}s)"
        wait_for 15 "serf1 marks serf2 failed" is serf_status failed "$s1rpc" "serf2-$mode" >/dev/null
    else
        serf leave -rpc-addr "127.0.0.1:$s2rpc" >/dev/null
        wait_for 10 "nodus shows serf2 left" is nodus_status left "serf2-$mode" >/dev/null
        log "serf2 left: nodus shows it left"
    fi

    # graceful serf leave
    start_serf "serf3-$mode" "$s3" "$s3rpc" "${enc[@]}" -join "127.0.0.1:$g"
    wait_for 15 "nodus sees serf3 alive" is nodus_status alive "serf3-$mode" >/dev/null
    serf leave -rpc-addr "127.0.0.1:$s3rpc" >/dev/null
    t=$(wait_for 10 "nodus shows serf3 left" is nodus_status left "serf3-$mode")
    log "serf3 left gracefully: nodus shows it left after ${t}s"

    # nodus SIGTERM: serf1 shows it left (not failed)
    kill -TERM "$NODUS_PID"
    t=$(wait_for 15 "serf1 shows nodus left" is serf_status left "$s1rpc" "nodus-$mode")
    log "nodus stopped: serf1 shows it left after ${t}s"
    wait "$NODUS_PID" || die "nodus exited with an error after SIGTERM"
    if grep -E '\[(ERR|WARN)\]' "$T"/serf-*"$mode"*.log | grep -v -E 'Failed to (send|receive)|i/o timeout|connection refused|Refuting|EOF|timeout while waiting|reset by peer|Serf shutdown detected|Shutdown without a Leave' >"$T/serf-errors"; then
        cat "$T/serf-errors" >&2
        die "serf logged errors or warnings about nodus ($mode)"
    fi
    stop_pid "$serf1_pid"
}

run_scenario plain ""
admin_port=$(free_port)
ADMIN=127.0.0.1:$admin_port
run_scenario encrypted "$(serf keygen)"
pass "serf <-> nodus: joins both ways, tags, user events both ways, failure, leaves; plaintext and AES-GCM"
