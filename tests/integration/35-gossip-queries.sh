#!/usr/bin/env bash
# serf queries in a mixed, encrypted cluster on loopback: two real `serf agent`s (Debian's serf
# 0.9.4) and two nodus nodes, all with keyring {K1}.
#   - `serf query nodus:services` from a serf agent: acks from all four, a response from each
#     nodus node listing its services; `-node` and `-tag` filters select the nodus nodes they
#     name (a tag filter is a regular expression; one that RE2 and POSIX read differently,
#     such as \pL, is refused by nodus, which counts it); with -relay-factor 2 the nodus nodes relay the replies and the
#     querier still counts each once (`nodus query --relay-factor 2` too);
#   - `serf reachability` (serf's _serf_ping query with acks) reaches all four;
#   - `nodus query uptime`: acks from all four, responses from the serf agents' query handlers;
#     `--node` limits it to one agent, `--tag KEY=REGEX` (repeated) to the members whose tags
#     match, as the serf agents read the expression with Go's regexp; an expression RE2 and
#     POSIX read differently is refused before it is sent; `nodus query` refuses _serf_ names;
#   - key rotation driven only by `serf keys -install K2 / -use K2 / -remove K1` on a serf
#     agent: every step reports success from 4/4 nodes, `serf keys -list` shows the nodus
#     nodes holding the keys, no member is lost, no packet refused; a reload of a nodus node
#     with its unchanged configuration keeps the rotated keyring;
#   - the query counters on the nodus nodes.
# shellcheck disable=SC1091
. "$(dirname "$0")/lib.sh"

need_cmd serf curl jq

K1=$(head -c 16 /dev/urandom | base64) K2=$(head -c 32 /dev/urandom | base64)
s1=$(free_port) s1rpc=$(free_port) s2=$(free_port) s2rpc=$(free_port)
declare -A GP AP PID SVC=([a]=8081 [b]=8082)
for n in a b; do GP[$n]=$(free_port) AP[$n]=$(free_port); done

# the serf agents' query handler: answers "uptime" with "up NAME PAYLOAD"
handler=$(write_file query-handler.sh <<'SH'
#!/bin/sh
printf 'up %s %s' "$SERF_SELF_NAME" "$(cat)"
SH
)
chmod +x "$handler"

start_serf() { # NAME BIND_PORT RPC_PORT [ARGS...]
    local name=$1 port=$2 rpc=$3 i
    shift 3
    bg "serf-$name" serf agent -node "$name" -bind "127.0.0.1:$port" -rpc-addr "127.0.0.1:$rpc" \
        -encrypt "$K1" -event-handler "query:uptime=$handler" -log-level debug "$@"
    for ((i = 0; i < 100; i++)); do
        serf members -rpc-addr "127.0.0.1:$rpc" >/dev/null 2>&1 && return 0
        kill -0 "$BG_PID" 2>/dev/null || die "serf agent $name exited"
        sleep 0.1
    done
    die "serf agent $name does not answer on its RPC port"
}

cfg() { # NODE
    cat >"$T/$1.lua" <<LUA
node { name = "nodus-$1", workers = 1 }
admin { listen = "127.0.0.1:${AP[$1]}" }
gossip {
  bind = "127.0.0.1:${GP[$1]}",
  join = { "127.0.0.1:$s1" },
  keyring = { "$K1" },
  tags = { role = "edge-$1" },
}
service "web-$1" { port = ${SVC[$1]} }
LUA
}

alive_serf() { serf members -rpc-addr "127.0.0.1:$1" -status alive 2>/dev/null | wc -l; }
alive_nodus() {
    curl -s --max-time 2 "http://127.0.0.1:${AP[$1]}/members" |
        jq '[.members[] | select(.status == "alive")] | length' 2>/dev/null || echo 0
}
all_alive() {
    [ "$(alive_serf "$s1rpc")" = 4 ] && [ "$(alive_serf "$s2rpc")" = 4 ] &&
        [ "$(alive_nodus a)" = 4 ] && [ "$(alive_nodus b)" = 4 ]
}
metric() { # NODE NAME: a counter of a nodus node
    curl -s --max-time 2 "http://127.0.0.1:${AP[$1]}/stats/prometheus" |
        awk -v m="$2" '$1 == m { print $2 }'
}
settle() { # STEP
    local i
    for ((i = 0; i < 100; i++)); do all_alive && break; sleep 0.2; done
    all_alive || die "$1: not all four alive (serf1 sees $(alive_serf "$s1rpc"), serf2 $(alive_serf "$s2rpc"), a $(alive_nodus a), b $(alive_nodus b))"
    for n in a b; do
        [ "$(metric "$n" nodus_gossip_decrypt_errors_total)" = 0 ] ||
            die "$1: nodus-$n refused $(metric "$n" nodus_gossip_decrypt_errors_total) packet(s)"
    done
    log "$1: all four alive everywhere, no packet refused"
}

start_serf serf1 "$s1" "$s1rpc" -tag role=db
for n in a b; do
    cfg "$n"
    start_nodus "$T/$n.lua"
    PID[$n]=$NODUS_PID
    wait_http "http://127.0.0.1:${AP[$n]}/ready" 15 || die "nodus-$n not ready"
done
start_serf serf2 "$s2" "$s2rpc" -tag role=db -join "127.0.0.1:${GP[a]}"
settle "cluster of 2 serf + 2 nodus, keyring {K1}"

# ---- serf query -> nodus ----------------------------------------------------------------------
out=$(serf query -rpc-addr "127.0.0.1:$s1rpc" -timeout 3s nodus:services 2>&1)
log "serf query nodus:services:"$'\n'"$out"
for n in serf1 serf2 nodus-a nodus-b; do assert_contains "$out" "Ack from '$n'" "serf query: ack from $n"; done
assert_contains "$out" "Response from 'nodus-a': web-a 8081" "nodus-a answers with its services"
assert_contains "$out" "Response from 'nodus-b': web-b 8082" "nodus-b answers with its services"
assert_contains "$out" "Total Acks: 4" "four acks"
assert_contains "$out" "Total Responses: 2" "two responses (serf agents do not answer nodus:services)"

out=$(serf query -rpc-addr "127.0.0.1:$s1rpc" -timeout 2s -node nodus-b nodus:services 2>&1)
assert_contains "$out" "Ack from 'nodus-b'" "-node nodus-b: nodus-b acks"
assert_contains "$out" "Total Acks: 1" "-node nodus-b: only nodus-b acks"
assert_contains "$out" "Total Responses: 1" "-node nodus-b: only nodus-b answers"
out=$(serf query -rpc-addr "127.0.0.1:$s1rpc" -timeout 2s -tag 'role=^edge-(a|x)$' nodus:services 2>&1)
assert_contains "$out" "Response from 'nodus-a'" "-tag role=^edge-(a|x)\$: nodus-a answers"
assert_contains "$out" "Total Acks: 1" "-tag role=^edge-(a|x)\$: only nodus-a acks"
# a tag filter that RE2 and POSIX read differently (\pL: a letter to RE2, "pL" to glibc): the
# serf agents answer, the nodus nodes refuse it and count it
bad0=$(metric a nodus_gossip_query_bad_filters_total)
out=$(serf query -rpc-addr "127.0.0.1:$s1rpc" -timeout 2s -tag 'role=^\pL+$' nodus:services 2>&1)
assert_contains "$out" "Total Acks: 2" "-tag role=^\\pL+\$: the serf agents ack, the nodus nodes do not"
case $out in *"Ack from 'nodus"*) die "a nodus node answered an RE2-only filter: $out" ;; esac
[ "$(metric a nodus_gossip_query_bad_filters_total)" -gt "${bad0:-0}" ] ||
    die "nodus-a did not count the RE2-only expression as a bad filter"
log "serf query filters (-node, -tag regexp) select the right nodus node; an RE2-only expression is refused"

# relay factor: every reply also comes through 2 other members (serf drops the copies)
r0=$(( $(metric a nodus_gossip_queries_relayed_total) + $(metric b nodus_gossip_queries_relayed_total) ))
out=$(serf query -rpc-addr "127.0.0.1:$s1rpc" -timeout 2s -relay-factor 2 nodus:services 2>&1)
assert_contains "$out" "Total Acks: 4" "-relay-factor 2: four acks, copies dropped"
assert_contains "$out" "Total Responses: 2" "-relay-factor 2: two responses, copies dropped"
r1=$(( $(metric a nodus_gossip_queries_relayed_total) + $(metric b nodus_gossip_queries_relayed_total) ))
[ "$r1" -gt "$r0" ] || die "the nodus nodes relayed nothing with -relay-factor 2"
log "serf query -relay-factor 2: the nodus nodes relayed $((r1 - r0)) replies"

out=$(serf reachability -rpc-addr "127.0.0.1:$s1rpc" -verbose 2>&1)
for n in serf1 serf2 nodus-a nodus-b; do assert_contains "$out" "Ack from '$n'" "serf reachability: ack from $n"; done
assert_contains "$out" "Successfully contacted all live nodes" "serf reachability (_serf_ping)"
log "serf reachability: $(echo "$out" | grep 'time to last')"

# ---- nodus query -> serf ----------------------------------------------------------------------
out=$("$NODUS" query --admin "127.0.0.1:${AP[a]}" --timeout 3s uptime now 2>&1)
log "nodus query uptime:"$'\n'"$out"
assert_contains "$out" "Query 'uptime' dispatched" "nodus query prints like serf query"
for n in serf1 serf2 nodus-a nodus-b; do assert_contains "$out" "Ack from '$n'" "nodus query: ack from $n"; done
assert_contains "$out" "Response from 'serf1': up serf1 now" "serf1's query handler answers nodus"
assert_contains "$out" "Response from 'serf2': up serf2 now" "serf2's query handler answers nodus"
assert_contains "$out" "Total Acks: 4" "nodus query: four acks"
assert_contains "$out" "Total Responses: 2" "nodus query: two responses"
out=$("$NODUS" query --admin "127.0.0.1:${AP[b]}" --timeout 2s --no-ack --node serf2 uptime x 2>&1)
assert_contains "$out" "Response from 'serf2': up serf2 x" "--node serf2: serf2 answers"
assert_contains "$out" "Total Responses: 1" "--node serf2: only serf2 answers"
case $out in *"Total Acks"*) die "--no-ack still printed acks: $out" ;; esac
# tag filters, evaluated by the serf agents with Go's regexp and by the nodus nodes with POSIX's
out=$("$NODUS" query --admin "127.0.0.1:${AP[a]}" --timeout 2s --tag 'role=^d[a-z]$' uptime t 2>&1)
assert_contains "$out" "Response from 'serf1': up serf1 t" "--tag role=^d[a-z]\$: serf1 answers"
assert_contains "$out" "Response from 'serf2': up serf2 t" "--tag role=^d[a-z]\$: serf2 answers"
assert_contains "$out" "Total Acks: 2" "--tag role=^d[a-z]\$: only the serf agents ack"
out=$("$NODUS" query --admin "127.0.0.1:${AP[a]}" --timeout 2s --tag 'role=^edge-' --tag 'zone=^$' uptime 2>&1)
assert_contains "$out" "Ack from 'nodus-b'" "--tag role=^edge- --tag zone=^\$: nodus-b acks"
assert_contains "$out" "Total Acks: 2" "--tag role=^edge- --tag zone=^\$: both nodus nodes, no serf agent"
assert_contains "$out" "Total Responses: 0" "--tag role=^edge-: no handler answers uptime on nodus"
out=$("$NODUS" query --admin "127.0.0.1:${AP[a]}" --timeout 2s --tag role=db --node serf2 uptime 2>&1)
assert_contains "$out" "Total Acks: 1" "--tag role=db --node serf2: serf2 alone"
if out=$("$NODUS" query --admin "127.0.0.1:${AP[a]}" --tag 'role=^\pL+$' uptime 2>&1); then
    die "nodus query sent a tag filter that RE2 and POSIX read differently"
fi
assert_contains "$out" "means the same to serf" "nodus query refuses an RE2-only expression"
nine=$(for _ in $(seq 9); do printf '&tag=role%%3Dx'; done)
assert_eq 400 "$(http_status "http://127.0.0.1:${AP[a]}/query?name=q$nine" -X POST)" \
    "POST /query with 9 tag filters (at most 8)"
assert_eq 400 "$(http_status "http://127.0.0.1:${AP[a]}/query?name=q&tag=role" -X POST)" \
    "POST /query with a tag filter that is not KEY=REGEX"
out=$("$NODUS" query --admin "127.0.0.1:${AP[b]}" --timeout 2s --relay-factor 2 uptime y 2>&1)
assert_contains "$out" "Total Acks: 4" "nodus query --relay-factor 2: four acks, relayed copies dropped"
assert_contains "$out" "Total Responses: 2" "nodus query --relay-factor 2: two responses"
if out=$("$NODUS" query --admin "127.0.0.1:${AP[a]}" _serf_ping 2>&1); then die "nodus query sent a _serf_ query"; fi
assert_contains "$out" "serf's own" "nodus query refuses _serf_ names"
json=$(curl -s "http://127.0.0.1:${AP[a]}/queries")
[ "$(echo "$json" | jq '.queries | length')" -ge 1 ] || die "GET /queries lists no query: $json"
log "nodus query: acks from all four, responses from both serf agents' handlers, --node and --tag filters"

# ---- key rotation through serf keys -----------------------------------------------------------
keys() { serf keys -rpc-addr "127.0.0.1:$s1rpc" "$@" 2>&1; }
on_all() { # LIST-OUTPUT KEY: `serf keys -list` says KEY is installed on all four members
    echo "$1" | awk -v k="$2" '$1 == k && $2 == "[4/4]" { f = 1 } END { exit !f }'
}
out=$(keys -install "$K2") || die "serf keys -install failed: $out"
assert_contains "$out" "Successfully installed key" "serf keys -install"
out=$(keys -list) || die "serf keys -list failed: $out"
on_all "$out" "$K1" || die "serf keys -list: K1 not on all four: $out"
on_all "$out" "$K2" || die "serf keys -list: K2 not on all four (nodus nodes included): $out"
settle "K2 installed by serf keys -install"
out=$(keys -use "$K2") || die "serf keys -use failed: $out"
assert_contains "$out" "Successfully changed primary key" "serf keys -use"
settle "K2 primary by serf keys -use"
# the old primary cannot go while it is primary somewhere: nodus answers like memberlist
out=$(serf keys -rpc-addr "127.0.0.1:$s2rpc" -remove "$K2" 2>&1) && die "removing the primary key succeeded: $out"
for n in nodus-a nodus-b serf1; do
    echo "$out" | grep -Eq "failed: +$n +Removing the primary key is not allowed" ||
        die "$n did not refuse to remove its primary key with memberlist's message: $out"
done
out=$(keys -remove "$K1") || die "serf keys -remove failed: $out"
assert_contains "$out" "Successfully removed key" "serf keys -remove"
out=$(keys -list) || die "serf keys -list failed: $out"
on_all "$out" "$K2" || die "serf keys -list: K2 not on all four: $out"
case $out in *"$K1"*) die "K1 still listed after -remove: $out" ;; esac
settle "K1 removed by serf keys -remove"
grep -q 'keyring: key removed by a serf key query' "$T"/nodus*.log || die "nodus did not log the key change"

# a reload with the configuration's (unchanged) keyring keeps the rotated keys
kill -HUP "${PID[a]}"
sleep 1
out=$(keys -list) || die "serf keys -list after nodus-a's reload failed: $out"
on_all "$out" "$K2" || die "nodus-a's reload did not keep K2: $out"
settle "nodus-a reloaded its unchanged configuration"
log "key rotation by serf keys -install/-use/-remove: no member lost, no packet refused"

# ---- counters -----------------------------------------------------------------------------------
for n in a b; do
    for m in queries_received query_acks_sent query_responses_sent keyring_changes; do
        v=$(metric "$n" "nodus_gossip_${m}_total")
        [ "${v:-0}" -gt 0 ] || die "nodus-$n: nodus_gossip_${m}_total is ${v:-absent}"
    done
done
[ "$(metric a nodus_gossip_queries_sent_total)" -ge 1 ] || die "nodus-a counted no query sent"
[ "$(metric a nodus_gossip_query_responses_received_total)" -ge 2 ] || die "nodus-a counted no response"
[ "$(metric a nodus_gossip_queries_duplicate_total)" -gt 0 ] || die "nodus-a saw no duplicate (no re-broadcast?)"
log "counters: a received $(metric a nodus_gossip_queries_received_total), duplicates $(metric a nodus_gossip_queries_duplicate_total), relayed $(metric a nodus_gossip_queries_relayed_total)"
grep -E 'serf.*(\[ERR\]|\[WARN\]).*nodus' "$T"/serf-*.log && die "a serf agent complained about a nodus node"

pass "serf queries both ways, filters, reachability, key rotation by serf keys in a mixed cluster"
