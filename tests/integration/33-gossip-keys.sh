#!/usr/bin/env bash
# Gossip key rotation by reload, as `serf keys -install / -use / -remove` does it: three nodus
# processes on loopback share keyring {K1}; every node reloads with {K1, K2} (K2 installed), then
# one after the other with {K2, K1} (K2 primary), then with {K2} (K1 removed). After each step
# every node sees all three alive and no node counted a packet it could not open. A reload that
# would turn encryption off is refused with a warning and the node keeps gossiping encrypted.
# Last, a fourth node with only the removed K1 cannot join: its packets are refused.
# shellcheck disable=SC1091
. "$(dirname "$0")/lib.sh"

need_cmd curl jq

K1=$(head -c 16 /dev/urandom | base64) K2=$(head -c 32 /dev/urandom | base64)
declare -A GP AP PID
for n in a b c d; do GP[$n]=$(free_port) AP[$n]=$(free_port); done

cfg() { # NODE KEYRING-LIST ("" for none)
    local join="" ring=""
    [ "$1" = a ] || join="join = { \"127.0.0.1:${GP[a]}\" },"
    [ -n "$2" ] && ring="keyring = { $2 },"
    cat >"$T/$1.lua" <<LUA
node { name = "$1", workers = 1 }
admin { listen = "127.0.0.1:${AP[$1]}" }
gossip { bind = "127.0.0.1:${GP[$1]}", $join $ring profile = "fast" }
LUA
}

alive() { # NODE: how many members its /members shows alive
    curl -s --max-time 2 "http://127.0.0.1:${AP[$1]}/members" |
        jq '[.members[] | select(.status == "alive")] | length' 2>/dev/null || echo 0
}
all_alive() { [ "$(alive a)" = 3 ] && [ "$(alive b)" = 3 ] && [ "$(alive c)" = 3 ]; }
decrypt_errors() { # sum over the three nodes
    local n s=0 v
    for n in a b c; do
        v=$(curl -s --max-time 2 "http://127.0.0.1:${AP[$n]}/stats/prometheus" |
            awk '$1 == "nodus_gossip_decrypt_errors_total" { print $2 }')
        s=$((s + ${v:-0}))
    done
    echo "$s"
}
# settle STEP: 3 s of gossip (probes every 200 ms, push/pull), then all alive and nothing dropped
settle() {
    local i
    sleep 3
    for ((i = 0; i < 50; i++)); do all_alive && break; sleep 0.2; done
    all_alive || die "$1: not all alive (a sees $(alive a), b $(alive b), c $(alive c))"
    [ "$(decrypt_errors)" = 0 ] || die "$1: $(decrypt_errors) packet(s) no key could open"
    log "$1: all three alive, no packet refused"
}
reload() { # NODE KEYRING-LIST
    cfg "$1" "$2"
    kill -HUP "${PID[$1]}"
}

for n in a b c; do
    cfg "$n" "\"$K1\""
    start_nodus "$T/$n.lua"
    PID[$n]=$NODUS_PID
    wait_http "http://127.0.0.1:${AP[$n]}/ready" 15 || die "node $n not ready"
done
settle "keyring {K1}"

for n in a b c; do reload "$n" "\"$K1\", \"$K2\""; done
settle "K2 installed everywhere {K1, K2}"

for n in a b c; do
    reload "$n" "\"$K2\", \"$K1\""
    settle "node $n sends with K2 {K2, K1}"
done

for n in a b c; do reload "$n" "\"$K2\""; done
settle "K1 removed everywhere {K2}"

reload b ""
settle "node b's reload without a keyring refused"
grep -q 'gossip keyring did not change' "$T"/nodus*.log || die "no warning for the refused keyring change"

# the rotation took effect: a new node that only has K1 cannot join (its packets are refused)
cfg d "\"$K1\""
start_nodus "$T/d.lua"
wait_http "http://127.0.0.1:${AP[d]}/ready" 15 || die "node d not ready"
sleep 3
[ "$(decrypt_errors)" -gt 0 ] || die "a node with the removed key K1 was not refused"
curl -s --max-time 2 "http://127.0.0.1:${AP[a]}/members" | jq -e '[.members[] | select(.name == "d")] | length == 0' >/dev/null ||
    die "node a lists d, whose key was removed"
log "a node with only the removed key K1: refused ($(decrypt_errors) packets), not a member"

pass "gossip key rotation by reload: install, use, remove; no member lost, no packet refused"
