#!/usr/bin/env bash
# Service discovery through gossip (docs/gossip.md, "Service catalog"): three nodus processes on
# loopback, gossip profile "fast".
#   - node A has cluster "web" { discover = "web" } behind a listener; with no provider it answers
#     503 (UH, "no healthy upstream");
#   - node C advertises service "web" for an nginx: A reaches it within a few seconds of C
#     joining, without a reload;
#   - node B advertises web for a second nginx: traffic spreads over both; B advertises 12 other
#     services first, so that web is beyond its 512 bytes of tags and travels in its service
#     list (user events, docs/gossip.md "Services beyond Meta");
#   - SIGTERM C (graceful leave): A stops sending to C's nginx at once (C's nginx still runs);
#   - SIGKILL B: once B is declared dead (failure detection bound), A answers 503 UH again;
#   - `nodus status` and /config_dump show the discover cluster and its endpoints;
#   - `nodus check` refuses endpoints together with discover.
# shellcheck disable=SC1091
. "$(dirname "$0")/lib.sh"

need_cmd curl nginx

gA=$(free_port) gB=$(free_port) gC=$(free_port)
adA=$(free_port) adB=$(free_port) adC=$(free_port)
lis=$(free_port) upB=$(free_port) upC=$(free_port)

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
# bodies N: the bodies of N requests through A, one per line ("503" for a 503)
bodies() {
    local i out code
    for ((i = 0; i < $1; i++)); do
        out=$(curl -s -w '\n%{http_code}' --max-time 2 "http://127.0.0.1:$lis/x") || out="fail"
        code=${out##*$'\n'}
        case "$code" in
        200) echo "${out%%$'\n'*}" ;;
        503) echo 503 ;;
        *) echo "other: $code" ;;
        esac
    done
}
only() { # WANT N: N requests all answered WANT
    [ "$(bodies "$2" | sort -u)" = "$1" ]
}
both() { # N requests reach both upstreams
    local b
    b=$(bodies "$1" | sort -u | tr '\n' ' ')
    [ "$b" = "from-b from-c " ]
}

start_nginx_upstream "$upB" "from-b"
start_nginx_upstream "$upC" "from-c"

# node_cfg NAME GOSSIP_PORT ADMIN_PORT EXTRA: a config file; B and C join A
node_cfg() {
    local join=""
    [ "$1" = a ] || join="join = { \"127.0.0.1:$gA\" },"
    write_file "$1.lua" <<LUA
node { name = "$1", workers = 2 }
admin { listen = "127.0.0.1:$3" }
gossip { bind = "127.0.0.1:$2", $join profile = "fast" }
$4
LUA
}

cfgA=$(node_cfg a "$gA" "$adA" "
cluster \"web\" { discover = \"web\", connect_timeout = \"500ms\" }
listener \"in\" {
  listen = \"127.0.0.1:$lis\",
  plugins = { router { { match = { prefix = \"/\" }, split = { { cluster = \"web\", weight = 1 } } } } },
}")
fill=""
for i in 00 01 02 03 04 05 06 07 08 09 10 11; do
    fill+="service \"filler-$i\" { port = 65535, labels = { version = \"v1-long-label-value\" } }"$'\n'
done
cfgB=$(node_cfg b "$gB" "$adB" "${fill}service \"web\" { port = $upB, labels = { version = \"v1\" } }")
cfgC=$(node_cfg c "$gC" "$adC" "service \"web\" { port = $upC }")

# nodus check: discover and endpoints are exclusive
bad=$(write_file bad.lua <<LUA
gossip { bind = "127.0.0.1:$gA" }
cluster "web" { discover = "web", endpoints = { "127.0.0.1:1" } }
LUA
)
out=$("$NODUS" check "$bad" 2>&1) && die "nodus check accepted discover with endpoints"
assert_contains "$out" "bad.lua:2:" "nodus check names the line"
assert_contains "$out" "mutually exclusive" "nodus check says why"
"$NODUS" check "$cfgA" >/dev/null || die "nodus check refused node A's config"
"$NODUS" check "$cfgB" >/dev/null || die "nodus check refused node B's config"

start_nodus "$cfgA"
pidA=$NODUS_PID
wait_http "http://127.0.0.1:$adA/ready" 15 || die "node A did not become ready"
assert_eq 503 "$(http_status "http://127.0.0.1:$lis/x")" "no provider yet: 503"
curl -s -D "$T/h503" -o "$T/b503" "http://127.0.0.1:$lis/x" >/dev/null
assert_contains "$(cat "$T/b503")" "no healthy upstream" "no provider: UH"

# C joins and advertises web
start_nodus "$cfgC"
pidC=$NODUS_PID
t=$(wait_for 10 "A reaches C's nginx" only from-c 3)
log "C joined: A sends to C's nginx after ${t}s"
"$NODUS" status --admin "127.0.0.1:$adA" >"$T/status" 2>&1 || die "nodus status failed"
assert_contains "$(cat "$T/status")" "discover \"web\": 1 endpoint(s)" "nodus status shows the discover cluster"
assert_contains "$(cat "$T/status")" "127.0.0.1:$upC" "nodus status shows the endpoint"
dump=$(curl -s "http://127.0.0.1:$adA/config_dump")
assert_contains "$dump" "\"discover\": \"web\"" "/config_dump shows discover"
assert_contains "$dump" "\"member\": \"c\"" "/config_dump shows the member"

# B joins: both
start_nodus "$cfgB"
pidB=$NODUS_PID
t=$(wait_for 10 "A spreads over B and C" both 10)
log "B joined: A spreads over both after ${t}s"
# B's web is not in its tags but in its service list: A took the list
members=$("$NODUS" members --admin "127.0.0.1:$adA")
line=$(awk '$1 == "b"' <<<"$members")
assert_contains "$line" "svc+=13:" "B's tags say it has more services than they hold"
case "$line" in *svc:web=*) die "web should be beyond B's tags: $line" ;; esac
# the catalog's metrics: web with both endpoints, B's list kept, its 12 other services
scrape=$(curl -s "http://127.0.0.1:$adA/stats/prometheus")
assert_contains "$scrape" 'nodus_catalog_endpoints{service="web"} 2' "catalog metrics: web's endpoints"
assert_contains "$scrape" 'nodus_catalog_endpoints{service="filler-11"} 1' "catalog metrics: B's list"
assert_contains "$scrape" 'nodus_catalog_lists 1' "catalog metrics: one list kept"
grep -Eq '^nodus_catalog_changes_total [1-9]' <<<"$scrape" || die "catalog metrics: no change counted"
# keep-alive across the change: pooled connections to C survive B's arrival (same worker view)
bodies 20 | sort | uniq -c | sed 's/^/    /' >&2

# B stops advertising web on a reload (SIGHUP), then advertises it again: A follows both ways
cp "$cfgB" "$T/b.with.lua"
node_cfg b "$gB" "$adB" "" >/dev/null
kill -HUP "$pidB"
t=$(wait_for 10 "A stops sending to B once B's reload drops the service" only from-c 5)
log "B dropped web on reload: A sends only to C after ${t}s"
cp "$T/b.with.lua" "$cfgB"
kill -HUP "$pidB"
t=$(wait_for 10 "A sends to B again once B's reload brings the service back" both 10)
log "B advertised web again on reload: A spreads over both after ${t}s"

# C leaves gracefully: A stops sending to C at once, curl keeps succeeding through B
kill -TERM "$pidC"
t=$(wait_for 5 "A stops sending to C after its leave" only from-b 5)
log "C left (SIGTERM): A sends only to B after ${t}s"
wait "$pidC" || die "node C exited with an error after SIGTERM"
only from-b 20 || die "a request went elsewhere than B after C left"

# B is killed: declared dead after the failure detection bound (fast profile: probes every
# 200 ms, suspicion >= 0.8 s with 2 live members left), then A has no endpoint: 503 UH
kill -KILL "$pidB"
t=$(wait_for 15 "A answers 503 after B is declared dead" only 503 2)
log "B killed (SIGKILL): A answers 503 (no endpoints) after ${t}s (bound 15s)"
scrape=$(curl -s "http://127.0.0.1:$adA/stats/prometheus")
assert_contains "$scrape" 'nodus_catalog_lists 0' "B's service list dropped with B"
curl -s -o "$T/b503" "http://127.0.0.1:$lis/x" >/dev/null
assert_contains "$(cat "$T/b503")" "no healthy upstream" "no provider left: UH"
grep -q 'discovery: service "web" now has 0 endpoint(s)' "$NODUS_LOG" ||
    grep -q 'discovery: service "web" now has 0 endpoint(s)' "$T"/nodus*.log ||
    die "node A did not log the empty set"

kill -0 "$pidA" 2>/dev/null || die "node A exited during the test"
pass "discover cluster follows the catalog: join, second provider, leave, failure"
