#!/usr/bin/env bash
# nodus demo: two versions of a service behind one nodus node, traffic split 90/10; then two
# nodus nodes with mutual TLS between them.
#
# usage: examples/demo.sh NODUS_BIN        (./dev demo builds nodus and runs this)
#
#   nginx "v1" on 127.0.0.1:18081, nginx "v2" on 127.0.0.1:18082   (upstream-nginx.conf.in)
#   nodus run examples/demo.lua: listener 127.0.0.1:18080, admin 127.0.0.1:15000
#     /api/...  -> split 90% cluster v1, 10% cluster v2
#     /health   -> answered by nodus itself: 200 "ok"
#
#   mesh: nodus ca makes a CA and two node certificates; node A (examples/mesh-a.lua, plain HTTP
#     on 127.0.0.1:18090) sends over mutual TLS to node B (examples/mesh-b.lua, strict mtls on
#     127.0.0.1:18443), which proxies to v1. B logs A's SPIFFE id; A checks B's. Both trace every
#     request to an OTLP collector on 127.0.0.1:14318 (tests/peers/collector.py): one trace per
#     request spans both nodes.
#   gossip: three nodes (examples/gossip-1..3.lua) find each other by gossip; node 3 advertises
#     the service "catalog" (v2's nginx); nodes 1 and 2 route to it (127.0.0.1:18101, :18102)
#     without being told where it is.
#
# Sends DEMO_REQUESTS (200) requests over one keep-alive connection, prints the status codes,
# the observed split, latency percentiles and nodus's istio_requests_total metrics. Everything
# runs on loopback, stops by itself within 60 s and is cleaned up on exit. Exits non-zero if
# nodus does not become ready or does not route the traffic.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
REQUESTS=${DEMO_REQUESTS:-200}
HEALTH_REQUESTS=5
LISTEN=127.0.0.1:18080
ADMIN=127.0.0.1:15000
MESH_A=127.0.0.1:18090
MESH_B=127.0.0.1:18443
MESH_REQUESTS=20
V1=127.0.0.1:18081
V2=127.0.0.1:18082
DEADLINE=60

say() { echo "demo: $*"; }
fail() { echo "demo: FAILED: $*" >&2; exit 1; }

[ $# -eq 1 ] || { echo "usage: $0 NODUS_BIN" >&2; exit 2; }
NODUS=$1
case "$NODUS" in /*) ;; *) NODUS=$PWD/$NODUS ;; esac
[ -x "$NODUS" ] || fail "$NODUS is not an executable (./dev build)"
for c in curl nginx ss awk sort python3; do
    command -v "$c" >/dev/null || fail "$c is not installed (scripts/deps.sh test, or ./dev demo)"
done
for a in "$LISTEN" "$ADMIN" "$V1" "$V2" "$MESH_A" "$MESH_B" 127.0.0.1:15010 127.0.0.1:15011 \
    127.0.0.1:15021 127.0.0.1:15022 127.0.0.1:15023 127.0.0.1:18101 127.0.0.1:18102 \
    127.0.0.1:17946 127.0.0.1:17947 127.0.0.1:17948 127.0.0.1:14318; do
    if [ -n "$(ss -Hltn "sport = :${a##*:}" 2>/dev/null)" ]; then
        fail "port ${a##*:} is already in use (another demo running?)"
    fi
done

TMP=$(mktemp -d /tmp/nodus-demo.XXXXXX)
PIDS=()
WATCHDOG=""
NODUS_PID=""

stop() { # PID: SIGTERM, up to 3 s, then SIGKILL
    kill -TERM "$1" 2>/dev/null || return 0
    local i
    for ((i = 0; i < 30; i++)); do
        kill -0 "$1" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$1" 2>/dev/null || true
    wait "$1" 2>/dev/null || true
}

cleanup() {
    local rc=$? p
    set +e
    trap - EXIT INT TERM
    for p in "${PIDS[@]}"; do stop "$p"; done
    [ -n "$WATCHDOG" ] && kill -TERM "$WATCHDOG" 2>/dev/null && wait "$WATCHDOG" 2>/dev/null
    rm -rf "$TMP"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'echo "demo: FAILED: did not finish within ${DEADLINE}s" >&2; exit 124' TERM

# The whole demo is bounded: after DEADLINE seconds the watchdog stops it (and cleanup runs).
(
    trap 'kill "$s" 2>/dev/null; exit 0' TERM
    sleep "$DEADLINE" &
    s=$!
    wait "$s"
    kill -TERM $$ 2>/dev/null
) &
WATCHDOG=$!

start_upstream() { # NAME ADDR BODY
    local dir=$TMP/$1
    mkdir -p "$dir/tmp"
    sed -e "s|@PREFIX@|$dir|g" -e "s|@LISTEN@|$2|g" -e "s|@BODY@|$3|g" \
        "$ROOT/examples/upstream-nginx.conf.in" >"$dir/nginx.conf"
    nginx -p "$dir" -c "$dir/nginx.conf" -e "$dir/error.log" >"$dir/stdout.log" 2>&1 </dev/null &
    PIDS+=($!)
}

wait_200() { # URL SECS PID: until URL answers 200, while PID lives
    local i
    for ((i = 0; i < $2 * 10; i++)); do
        [ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 1 "$1" || true)" = 200 ] && return 0
        kill -0 "$3" 2>/dev/null || return 1
        sleep 0.1
    done
    return 1
}

say "upstreams: v1 on $V1, v2 on $V2 (nginx)"
start_upstream v1 "$V1" v1
start_upstream v2 "$V2" v2
wait_200 "http://$V1/" 5 "${PIDS[0]}" || fail "upstream v1 did not start: $(tail -n 3 "$TMP/v1/error.log" 2>/dev/null)"
wait_200 "http://$V2/" 5 "${PIDS[1]}" || fail "upstream v2 did not start: $(tail -n 3 "$TMP/v2/error.log" 2>/dev/null)"

say "starting: $NODUS run examples/demo.lua"
cd "$ROOT"
"$NODUS" run examples/demo.lua >"$TMP/nodus.log" 2>&1 </dev/null &
NODUS_PID=$!
PIDS+=("$NODUS_PID")
if ! wait_200 "http://$ADMIN/ready" 10 "$NODUS_PID"; then
    echo "---- nodus log (last 30 lines) ----" >&2
    tail -n 30 "$TMP/nodus.log" >&2
    if kill -0 "$NODUS_PID" 2>/dev/null; then
        fail "nodus did not answer 200 on http://$ADMIN/ready within 10 s"
    else
        fail "nodus exited before it was ready"
    fi
fi
say "nodus is ready (pid $NODUS_PID)"

# All requests on one keep-alive connection: one curl, many URLs; -w appends a marker line
# with the status and the total time of each transfer after its body.
for ((i = 1; i <= REQUESTS; i++)); do
    echo "url = \"http://$LISTEN/api/items/$i\""
done >"$TMP/urls"
timeout 40 curl -s --max-time 5 -K "$TMP/urls" -w '\n@@ %{http_code} %{time_total}\n' \
    >"$TMP/api.out" 2>/dev/null || true
awk '/^@@ / { print $2, $3, (body == "" ? "-" : body); body = ""; next }
     length($0) { body = (body == "" ? $0 : body "|" $0) }' "$TMP/api.out" >"$TMP/api"

for ((i = 1; i <= HEALTH_REQUESTS; i++)); do echo "url = \"http://$LISTEN/health\""; done >"$TMP/hurls"
timeout 20 curl -s --max-time 5 -K "$TMP/hurls" -w '\n@@ %{http_code} %{time_total}\n' \
    >"$TMP/health.out" 2>/dev/null || true
awk '/^@@ / { print $2, $3, (body == "" ? "-" : body); body = ""; next }
     length($0) { body = (body == "" ? $0 : body "|" $0) }' "$TMP/health.out" >"$TMP/health"

mesh_node=$(curl -s -D - -o /dev/null --max-time 5 "http://$LISTEN/api/header-check" |
    tr -d '\r' | awk -F': ' 'tolower($1) == "x-mesh-node" { print $2 }' || true)

answered=$(awk '$1 != "000"' "$TMP/api" | wc -l)
ok=$(awk '$1 == 200' "$TMP/api" | wc -l)
v1=$(awk '$1 == 200 && $3 == "v1"' "$TMP/api" | wc -l)
v2=$(awk '$1 == 200 && $3 == "v2"' "$TMP/api" | wc -l)
health_ok=$(awk '$1 == 200 && $3 == "ok"' "$TMP/health" | wc -l)
codes=$(awk '{ n[$1]++ } END { for (c in n) printf "%s x %d, ", c, n[c] }' "$TMP/api" | sed 's/, $//')
read -r p50 p99 < <(awk '$1 == 200 { print $2 * 1000 }' "$TMP/api" | sort -n | awk '
    { t[NR] = $1 }
    END {
        if (NR == 0) { print "- -"; exit }
        i50 = int(NR * 0.50 + 0.999999); i99 = int(NR * 0.99 + 0.999999)
        printf "%.2f %.2f\n", t[i50], t[i99]
    }')
pct() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.1f%%", 100 * a / b; else print "-" }'; }

echo
echo "== nodus demo summary"
printf '%-22s %s\n' "requests sent:" "$REQUESTS to http://$LISTEN/api/..., $HEALTH_REQUESTS to /health (one keep-alive connection each)"
printf '%-22s %s\n' "answered:" "$answered of $REQUESTS"
printf '%-22s %s\n' "status codes:" "${codes:-none}"
printf '%-22s %s\n' "split (configured):" "v1 90% / v2 10%"
printf '%-22s %s\n' "split (observed):" "v1 $v1 ($(pct "$v1" "$ok")) / v2 $v2 ($(pct "$v2" "$ok"))"
printf '%-22s %s\n' "latency (curl total):" "p50 ${p50} ms, p99 ${p99} ms"
printf '%-22s %s\n' "/health:" "$health_ok of $HEALTH_REQUESTS answered 200 \"ok\" by nodus"
printf '%-22s %s\n' "x-mesh-node header:" "${mesh_node:-(missing)}"
echo
echo "== curl -s http://$ADMIN/stats/prometheus | grep istio_requests_total"
metrics=$(curl -s --max-time 5 "http://$ADMIN/stats/prometheus" | grep istio_requests_total || true)
if [ -n "$metrics" ]; then
    grep -v '^#' <<<"$metrics" | head -n 10
else
    echo "(no istio_requests_total series)"
fi
echo

# ---- two nodes over mutual TLS -----------------------------------------------------------------
mkdir -p "$TMP/mesh/pki"
cp examples/mesh-a.lua examples/mesh-b.lua "$TMP/mesh/"
(
    cd "$TMP/mesh/pki"
    "$NODUS" ca init ca --trust-domain mesh.local >/dev/null
    "$NODUS" ca issue ca --id spiffe://mesh.local/ns/demo/sa/node-a --out node-a >/dev/null
    "$NODUS" ca issue ca --id spiffe://mesh.local/ns/demo/sa/node-b --out node-b >/dev/null
) || fail "nodus ca could not make the demo certificates"
python3 "$ROOT/tests/peers/collector.py" 14318 127.0.0.1 >"$TMP/collector.log" 2>&1 </dev/null &
PIDS+=("$!")
for ((i = 0; i < 50; i++)); do grep -q ready "$TMP/collector.log" && break; sleep 0.1; done
for n in b a; do
    (cd "$TMP/mesh" && exec "$NODUS" run "mesh-$n.lua" >"$TMP/node-$n.log" 2>&1 </dev/null) &
    PIDS+=("$!")
    port=15011
    [ "$n" = a ] && port=15010
    wait_200 "http://127.0.0.1:$port/ready" 10 "$!" ||
        { tail -n 20 "$TMP/node-$n.log" >&2; fail "node $n did not become ready"; }
done
for ((i = 1; i <= MESH_REQUESTS; i++)); do echo "url = \"http://$MESH_A/mesh/$i\""; done >"$TMP/murls"
timeout 20 curl -s --max-time 5 -K "$TMP/murls" -w '\n@@ %{http_code}\n' >"$TMP/mesh.out" 2>/dev/null || true
mesh_ok=$(grep -c '^@@ 200' "$TMP/mesh.out" || true)
mesh_v1=$(grep -c '^v1$' "$TMP/mesh.out" || true)
peer_a=$(sed -n 's/.*mtls: [^ ]* is \(spiffe:[^ ]*\) (\(TLSv1\.[0-9]\).*/\1 (\2)/p' "$TMP/node-b.log" | head -n 1)
mtls_reqs=$(curl -s --max-time 5 http://127.0.0.1:15011/stats/prometheus |
    awk '/^istio_requests_total\{.*connection_security_policy="mutual_tls"/ { n += $NF } END { print n + 0 }')
echo "== two nodes over mutual TLS, traced"
printf '%-22s %s\n' "path:" "curl -> node-a $MESH_A -> mTLS -> node-b $MESH_B -> v1"
printf '%-22s %s\n' "answered:" "$mesh_ok of $MESH_REQUESTS (from v1: $mesh_v1)"
printf '%-22s %s\n' "node-b saw peer:" "${peer_a:-(nothing logged)}"
printf '%-22s %s\n' "node-a expected:" "spiffe://mesh.local/ns/demo/sa/node-b (verified, or no answer)"
printf '%-22s %s\n' "node-b metrics:" "istio_requests_total{connection_security_policy=\"mutual_tls\"} = $mtls_reqs"
sleep 0.5 # the nodes' exporters flush every 100 ms
curl -s --max-time 5 http://127.0.0.1:14318/spans >"$TMP/spans.json" || true
python3 - "$TMP/spans.json" <<'PY' || true
import json, sys
try:
    spans = json.load(open(sys.argv[1]))
except (OSError, ValueError):
    spans = []
traces = {}
for s in spans:
    traces.setdefault(s["traceId"], []).append(s)
both = [t for t, ss in traces.items() if {s["service"] for s in ss} >= {"node-a", "node-b"}]
print("%-22s %d spans, %d traces, %d of them through both nodes" % ("traces:", len(spans), len(traces), len(both)))
if both:
    ss = sorted(traces[both[0]], key=lambda s: s["start_us"])
    ids = {s["spanId"]: s for s in ss}
    print("%-22s %s" % ("one trace:", both[0]))
    for s in ss:
        parent = ids.get(s["parentSpanId"])
        print("%-22s %s %s span %s, parent %s" % ("", s["service"], s["kind"].lower(), s["spanId"],
              (parent["service"] + " " + parent["spanId"]) if parent else (s["parentSpanId"] or "none (root)")))
PY
echo

# ---- three nodes by gossip ----------------------------------------------------------------------
for n in 1 2 3; do
    [ "$n" = 3 ] && t0=${EPOCHREALTIME/,/.} # node 3 brings the service
    "$NODUS" run "examples/gossip-$n.lua" >"$TMP/gossip-$n.log" 2>&1 </dev/null &
    PIDS+=("$!")
    wait_200 "http://127.0.0.1:1502$n/ready" 10 "$!" ||
        { tail -n 20 "$TMP/gossip-$n.log" >&2; fail "gossip node $n did not become ready"; }
done
gossip_ok=0 gossip_t=-
for ((i = 0; i < 100; i++)); do # up to 10 s for nodes 1 and 2 to learn the service from node 3
    b1=$(curl -s --max-time 1 http://127.0.0.1:18101/ || true)
    b2=$(curl -s --max-time 1 http://127.0.0.1:18102/ || true)
    if [ "$b1" = v2 ] && [ "$b2" = v2 ]; then
        gossip_ok=1
        gossip_t=$(awk -v a="$t0" -v b="${EPOCHREALTIME/,/.}" 'BEGIN { printf "%.1f s", b - a }')
        break
    fi
    sleep 0.1
done
echo "== three nodes by gossip"
echo "\$ nodus members --admin 127.0.0.1:15021"
"$NODUS" members --admin 127.0.0.1:15021 2>&1 | sed 's/^/  /' || true
printf '%-22s %s\n' "service catalog:" "advertised by gossip-3 (v2's nginx), reachable through gossip-1 and gossip-2 ${gossip_t} after gossip-3 started"
echo

problems=()
[ "$gossip_ok" = 1 ] || problems+=("gossip: nodes 1 and 2 did not reach the service advertised by node 3 within 10 s")
[ "$mesh_ok" -eq "$MESH_REQUESTS" ] || problems+=("mesh: $((MESH_REQUESTS - mesh_ok)) of $MESH_REQUESTS requests through node-a -> node-b failed")
[ -n "$peer_a" ] || problems+=("mesh: node-b did not log node-a's identity")
[ "$ok" -eq "$REQUESTS" ] || problems+=("$((REQUESTS - ok)) of $REQUESTS /api requests did not get 200")
[ "$((v1 + v2))" -eq "$ok" ] || problems+=("$((ok - v1 - v2)) /api answers came from neither v1 nor v2")
[ "$v1" -gt 0 ] && [ "$v2" -gt 0 ] || problems+=("traffic was not split (v1 $v1, v2 $v2)")
[ "$health_ok" -eq "$HEALTH_REQUESTS" ] || problems+=("/health: only $health_ok of $HEALTH_REQUESTS answered 200 \"ok\"")
kill -0 "$NODUS_PID" 2>/dev/null || problems+=("nodus exited during the demo")
[ -n "$mesh_node" ] || say "note: the x-mesh-node response header (headers plugin) was missing"
[ -n "$metrics" ] || say "note: /stats/prometheus had no istio_requests_total"
if [ ${#problems[@]} -gt 0 ]; then
    printf 'demo: %s\n' "${problems[@]}" >&2
    echo "---- nodus log (last 20 lines) ----" >&2
    tail -n 20 "$TMP/nodus.log" >&2
    fail "nodus did not route the demo traffic as configured"
fi
say "OK"
