#!/usr/bin/env bash
# Tracing end to end: client -> nodus "edge" -> nodus "inner" -> nginx, both with the tracing plugin
# at 100% sampling, edge exporting OTLP/HTTP JSON and inner Zipkin v2 JSON to tests/peers/collector.py
# (which validates both formats). The spans of one request share one trace id and link parent ->
# child; the context nginx receives names inner's span; x-request-id is generated once and kept;
# a span has the request as its node received it (a header that a later plugin replaces keeps its
# received value in the span); W3C and B3 incoming contexts are continued, an upstream "not
# sampled" is honoured, malformed or conflicting contexts restart the trace and are counted, never
# forwarded; a bad tracestate is dropped. Then the collector is stopped mid-run: every response stays 200 and fast, and the
# failed exports are counted.
# shellcheck disable=SC1091
. "$(dirname "$0")/lib.sh"

need_cmd curl python3 nginx

up=$(free_port)
col=$(free_port)
edge=$(free_port)
inner=$(free_port)
adm_e=$(free_port)
adm_i=$(free_port)
start_nginx_upstream "$up" hello
bg collector python3 "$ROOT/tests/peers/collector.py" "$col"
COLLECTOR_PID=$BG_PID
for ((i = 0; i < 50; i++)); do
    [ "$(http_status "http://127.0.0.1:$col/stats")" = 200 ] && break
    sleep 0.1
done

cfg_inner=$(write_file inner.lua <<LUA
node { name = "inner", workers = 2 }
admin { listen = "127.0.0.1:$adm_i" }
cluster "nginx" { endpoints = { "127.0.0.1:$up" } }
cluster "echo" { endpoints = { "127.0.0.1:$col" } }
listener "in" {
  listen = "127.0.0.1:$inner",
  plugins = {
    tracing { sampling = 100, zipkin = "127.0.0.1:$col", service_name = "inner",
              flush = "50ms", timeout = "300ms", retries = 1 },
    router { { match = { prefix = "/echo" }, cluster = "echo" },
             { match = { prefix = "/" }, cluster = "nginx" } },
  },
}
LUA
)
cfg_edge=$(write_file edge.lua <<LUA
node { name = "edge", workers = 2 }
admin { listen = "127.0.0.1:$adm_e" }
cluster "inner" { endpoints = { "127.0.0.1:$inner" } }
listener "web" {
  listen = "127.0.0.1:$edge",
  plugins = {
    tracing { sampling = 100, otlp = "127.0.0.1:$col", service_name = "edge", node_id = "edge-1",
              flush = "50ms", timeout = "300ms", retries = 1 },
    headers { request_set = { ["user-agent"] = "edge-rewrote-it" } },
    router { { match = { prefix = "/" }, cluster = "inner" } },
  },
}
LUA
)
"$NODUS" check "$cfg_inner" >/dev/null || die "inner config refused"
"$NODUS" check "$cfg_edge" >/dev/null || die "edge config refused"
start_nodus "$cfg_inner"
INNER_PID=$NODUS_PID
wait_http "http://127.0.0.1:$adm_i/ready" 15 || die "inner not ready"
start_nodus "$cfg_edge"
wait_http "http://127.0.0.1:$adm_e/ready" 15 || die "edge not ready"

# bad configurations are refused with file:line
bad=$(write_file bad.lua <<LUA
cluster "c" { endpoints = { "127.0.0.1:$up" } }
listener "x" { listen = "127.0.0.1:$(free_port)", plugins = {
  tracing { sampling = 101, otlp = "localhost:4318", propagate = { "b3", "jaeger" }, kind = "proxy",
            flush = "0s" },
  router { { match = { prefix = "/" }, cluster = "c" } } } }
LUA
)
if "$NODUS" check "$bad" >"$T/check" 2>&1; then die "a bad tracing config was accepted"; fi
for m in "bad.lua:3: " "'sampling' must be an integer between 0 and 100" "'otlp' must be an address" \
    'unknown format "jaeger"'; do
    assert_contains "$(cat "$T/check")" "$m" "nodus check"
done

# req NAME [CURL ARGS...]: GET / through edge; the response headers in $T/NAME
req() {
    local name=$1
    shift
    curl -sS -D "$T/$name" -o /dev/null --max-time 5 "$@" "http://127.0.0.1:$edge/" ||
        die "request $name failed"
    tr -d '\r' <"$T/$name" >"$T/$name.h"
    grep -q '^HTTP/1.1 200' "$T/$name.h" || die "request $name: $(head -1 "$T/$name.h")"
}
seen() { awk -v n="$(echo "$1" | tr 'A-Z' 'a-z'):" 'tolower($1) == n { print $2 }' "$T/$2.h"; }
spans_of() { # TRACE_ID: the recorded spans of that trace, as JSON
    curl -s "http://127.0.0.1:$col/spans" | python3 -c '
import json, sys
print(json.dumps([s for s in json.load(sys.stdin) if s["traceId"] == sys.argv[1]]))' "$1"
}
wait_spans() { # TRACE_ID N: until the collector has N spans of that trace
    local i
    for ((i = 0; i < 50; i++)); do
        [ "$(spans_of "$1" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')" -ge "$2" ] && return 0
        sleep 0.1
    done
    die "collector: fewer than $2 spans of trace $1: $(spans_of "$1")"
}

# 1. a new trace: two spans, edge's the root (OTLP), inner's its child (Zipkin); nginx sees
#    inner's span as the parent
req fresh -H 'User-Agent: trace-test'
tp=$(seen X-Seen-Traceparent fresh)
[[ "$tp" =~ ^00-([0-9a-f]{32})-([0-9a-f]{16})-01$ ]] || die "nginx saw traceparent '$tp'"
trace=${BASH_REMATCH[1]}
inner_span=${BASH_REMATCH[2]}
rid=$(seen X-Seen-Request-Id fresh)
[[ "$rid" =~ ^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$ ]] ||
    die "x-request-id '$rid' is not a UUID v4"
wait_spans "$trace" 2
spans_of "$trace" >"$T/fresh.json"
python3 - "$T/fresh.json" "$inner_span" "$rid" <<'PY' || die "span tree of the new trace: $(cat "$T/fresh.json")"
import json, sys
spans = json.load(open(sys.argv[1]))
inner_span, rid = sys.argv[2], sys.argv[3]
assert len(spans) == 2, spans
edge = [s for s in spans if s["format"] == "otlp"][0]
inner = [s for s in spans if s["format"] == "zipkin"][0]
assert edge["parentSpanId"] is None, "edge's span is the root"
assert inner["parentSpanId"] == edge["spanId"], "inner's parent is edge's span"
assert inner["spanId"] == inner_span, "nginx got inner's span as its parent"
assert edge["service"] == "edge" and inner["service"] == "inner"
assert edge["kind"] == "SERVER" and inner["kind"] == "SERVER"
# each span has the request as its node received it: edge's plugin after tracing replaced the
# User-Agent going upstream, not in edge's span
assert edge["attributes"]["user_agent"] == "trace-test", edge
assert inner["attributes"]["user_agent"] == "edge-rewrote-it", inner
for s in spans:
    a = s["attributes"]
    assert a["component"] == "proxy", a
    assert a["http.method"] == "GET" and a["http.status_code"] == "200", a
    assert a["guid:x-request-id"] == rid, "one request id along the way"
    assert a["peer.address"] == "127.0.0.1", a
    assert a["http.url"].startswith("http://127.0.0.1:") and a["http.url"].endswith("/"), a
    assert a["response_size"] == "6" and a["request_size"] == "0", a
assert edge["resource"]["node_id"] == "edge-1"
# inner's span starts within edge's (it got the request from edge, edge got its response). Not
# "edge ends after inner": a span ends when its node has written the response, and edge may
# receive the last byte and finish before inner's thread runs again (1 run in 8 on a busy machine).
# Each node maps its monotonic clock to Unix time on its own (within a few microseconds): 100 µs
# of slack.
e0, e1, i0 = edge["start_us"], edge["start_us"] + edge["duration_us"], inner["start_us"]
assert e0 - 100 <= i0 <= e1 + 100, (edge, inner)
PY

# 2. an incoming W3C context is continued: same trace, edge's parent is the caller's span,
#    x-request-id kept; a chunked upload's request_size is its body's bytes (as Envoy counts)
in_trace=4bf92f3577b34da6a3ce929d0e0e4736
req w3c -H "traceparent: 00-$in_trace-00f067aa0ba902b7-01" -H 'tracestate: rojo=00f067aa0ba902b7,congo=t61rcWkgMzE' -H 'x-request-id: my-id-1' \
    -H 'Transfer-Encoding: chunked' --data-binary 'a chunked body'
[[ "$(seen X-Seen-Traceparent w3c)" =~ ^00-$in_trace-[0-9a-f]{16}-01$ ]] || die "W3C trace not continued: $(seen X-Seen-Traceparent w3c)"
assert_eq my-id-1 "$(seen X-Seen-Request-Id w3c)" "x-request-id kept"
wait_spans "$in_trace" 2
spans_of "$in_trace" | python3 -c '
import json, sys
s = {x["format"]: x for x in json.load(sys.stdin)}
assert s["otlp"]["parentSpanId"] == "00f067aa0ba902b7", s
assert s["zipkin"]["parentSpanId"] == s["otlp"]["spanId"], s
assert s["otlp"]["attributes"]["request_size"] == "14" == s["zipkin"]["attributes"]["request_size"], s' ||
    die "W3C continuation: $(spans_of "$in_trace")"
# tracestate travels with it (seen by the echo upstream)
curl -s --max-time 5 -H "traceparent: 00-$in_trace-00f067aa0ba902b7-01" -H 'tracestate: rojo=00f067aa0ba902b7' \
    -H 'x-b3-traceid: 80f198ee56343ba864fe8b2a57d3eff7' -H 'x-b3-spanid: e457b5a2e4d86bd1' \
    "http://127.0.0.1:$edge/echo" >"$T/echo1" || die "echo request"
python3 - "$T/echo1" "$in_trace" <<'PY' || die "tracestate/b3 upstream: $(cat "$T/echo1")"
import json, sys
h = json.load(open(sys.argv[1]))["headers"]
# W3C and B3 naming different traces: restarted, nothing of either forwarded
assert not h["traceparent"].split("-")[1] in (sys.argv[2], "80f198ee56343ba864fe8b2a57d3eff7"), h
assert "tracestate" not in h, h
assert h["x-b3-traceid"] == h["traceparent"].split("-")[1], h
assert "," not in h["x-b3-traceid"], "one x-b3-traceid only"
PY

# 3. B3 multi and single incoming: trace continued, context sent on as W3C and B3
req b3m -H 'X-B3-TraceId: 80f198ee56343ba864fe8b2a57d3eff7' -H 'X-B3-SpanId: e457b5a2e4d86bd1' -H 'X-B3-Sampled: 1'
[[ "$(seen X-Seen-Traceparent b3m)" =~ ^00-80f198ee56343ba864fe8b2a57d3eff7-[0-9a-f]{16}-01$ ]] || die "B3 not continued: $(seen X-Seen-Traceparent b3m)"
req b3s -H 'b3: a0f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1'
[[ "$(seen X-Seen-Traceparent b3s)" =~ ^00-a0f198ee56343ba864fe8b2a57d3eff7-[0-9a-f]{16}-01$ ]] || die "b3 single not continued"
wait_spans 80f198ee56343ba864fe8b2a57d3eff7 2
wait_spans a0f198ee56343ba864fe8b2a57d3eff7 2

# 4. an upstream decision "not sampled" is honoured (sampling = 100 notwithstanding): propagated
#    as -00, no span
req nos -H 'traceparent: 00-5bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00'
[[ "$(seen X-Seen-Traceparent nos)" =~ ^00-5bf92f3577b34da6a3ce929d0e0e4736-[0-9a-f]{16}-00$ ]] || die "not-sampled decision not propagated"
# ... unless forced by x-client-trace-id
req forced -H 'traceparent: 00-6bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00' -H 'x-client-trace-id: abc'
[[ "$(seen X-Seen-Traceparent forced)" =~ -01$ ]] || die "x-client-trace-id did not force sampling"
wait_spans 6bf92f3577b34da6a3ce929d0e0e4736 1

# 5. malformed contexts restart the trace, never go upstream, and are counted
for v in '00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01' \
    'ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01' \
    '00-00000000000000000000000000000000-00f067aa0ba902b7-01' \
    '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-junk'; do
    req bad -H "traceparent: $v"
    got=$(seen X-Seen-Traceparent bad)
    [[ "$got" =~ ^00-[0-9a-f]{32}-[0-9a-f]{16}-0[01]$ ]] || die "garbage forwarded: $got"
    [[ "$got" != *4bf92f3577b34da6a3ce929d0e0e4736* ]] || die "an invalid trace id was continued: $got"
done
long=$(python3 -c 'print(",".join("k%d=%s" % (i, "v" * 20) for i in range(30)))')
curl -s --max-time 5 -H "traceparent: 00-$in_trace-00f067aa0ba902b7-01" -H "tracestate: $long" \
    "http://127.0.0.1:$edge/echo" >"$T/echo2"
python3 -c 'import json,sys; h = json.load(open(sys.argv[1]))["headers"]; assert "tracestate" not in h, h' \
    "$T/echo2" || die "oversized tracestate forwarded"

sleep 0.3
metric() { curl -s "http://127.0.0.1:$1/stats/prometheus" | awk -v n="$2" '$1 == n { print $2 }'; }
assert_eq 4 "$(metric "$adm_e" nodus_plugin_tracing_invalid_context_total)" "invalid contexts counted"
assert_eq 1 "$(metric "$adm_e" nodus_plugin_tracing_conflicting_context_total)" "conflict counted"
assert_eq 1 "$(metric "$adm_e" nodus_plugin_tracing_tracestate_dropped_total)" "oversized tracestate counted"
assert_eq "[]" "$(curl -s "http://127.0.0.1:$col/errors")" "collector validation errors"

# 6. the collector stops mid-run: no response changes, none slows down
cat >"$T/load.py" <<'PY'
import http.client, sys, time
port, n, out = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
lat, bad = [], 0
for i in range(n):
    t = time.monotonic()
    c.request("GET", "/")
    r = c.getresponse()
    r.read()
    lat.append(time.monotonic() - t)
    bad += r.status != 200
    time.sleep(0.005)
lat.sort()
open(out, "w").write("%d %.4f %.4f\n" % (bad, lat[len(lat) // 2], lat[-1]))
PY
python3 "$T/load.py" "$edge" 600 "$T/load.out" &
load=$!
sleep 1
stop_pid "$COLLECTOR_PID" 2 || die "collector was not running"
wait "$load" || die "load client failed"
read -r nbad p50 pmax <"$T/load.out"
log "collector stopped mid-run: $nbad non-200 of 600, p50 ${p50}s, max ${pmax}s"
assert_eq 0 "$nbad" "responses while the collector went away"
python3 -c "import sys; sys.exit(0 if float('$pmax') < 0.5 else 1)" || die "a request took ${pmax}s with the collector down"
sleep 1.5
curl -s -o /dev/null "http://127.0.0.1:$edge/" # the counters of the exporter move in with a request
sleep 0.2
failed=$(metric "$adm_e" nodus_plugin_tracing_spans_export_failed_total)
[ "${failed:-0}" -gt 0 ] || die "no failed export counted with the collector down"
exported=$(metric "$adm_e" nodus_plugin_tracing_spans_exported_total)
log "edge: spans exported $exported, failed $failed, dropped $(metric "$adm_e" nodus_plugin_tracing_spans_dropped_total)"
kill -0 "$INNER_PID" 2>/dev/null || die "inner exited"
pass "W3C/B3 propagation, one trace across two nodes, OTLP and Zipkin spans, bad input restarted, collector down harmless"
