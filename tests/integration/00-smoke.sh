#!/usr/bin/env bash
# Smoke test: one nginx upstream, one nodus with one listener and a prefix route "/" to it.
# Checks that a request through nodus reaches the upstream (status, body, path) and that the
# admin listener answers /ready and /stats/prometheus.
# shellcheck disable=SC1091
. "$(dirname "$0")/lib.sh"

need_cmd curl nginx

up_port=$(free_port)
listen_port=$(free_port)
admin_port=$(free_port)

start_nginx_upstream "$up_port" "hello from upstream"

cfg=$(write_file smoke.lua <<LUA
node { name = "smoke", workers = 1 }
admin { listen = "127.0.0.1:$admin_port" }
cluster "backend" { endpoints = { "127.0.0.1:$up_port" } }
listener "ingress" {
  listen = "127.0.0.1:$listen_port", protocol = "http",
  plugins = {
    router {
      { match = { prefix = "/" }, split = { { cluster = "backend", weight = 100 } } },
    },
  },
}
LUA
)

start_nodus "$cfg"
wait_http "http://127.0.0.1:$admin_port/ready" 15 || die "admin GET /ready did not answer 200"

assert_eq 200 "$(http_status "http://127.0.0.1:$admin_port/ready")" "admin /ready"

resp=$T/resp
code=$(curl -s -D "$T/headers" -o "$resp" -w '%{http_code}' --max-time 5 \
    "http://127.0.0.1:$listen_port/smoke/path?q=1") || true
assert_eq 200 "$code" "status through nodus"
assert_eq "hello from upstream" "$(cat "$resp")" "body through nodus"
seen_uri=$(tr -d '\r' <"$T/headers" | awk -F': ' 'tolower($1) == "x-seen-uri" { print $2 }')
assert_eq "/smoke/path?q=1" "$seen_uri" "request path seen by the upstream"

assert_eq 200 "$(http_status "http://127.0.0.1:$admin_port/stats/prometheus")" "admin /stats/prometheus"

# keep-alive both sides: 200 requests on one client connection reuse pooled upstream connections
# (a handful of them at most, not one per request)
before=$(curl -s "http://127.0.0.1:$admin_port/stats/prometheus" | awk '$1 == "nodus_upstream_cx_total" { print $2 }')
curl -s -o /dev/null --max-time 20 "http://127.0.0.1:$listen_port/keep/[1-200]" || die "keep-alive run failed"
after=$(curl -s "http://127.0.0.1:$admin_port/stats/prometheus" | awk '$1 == "nodus_upstream_cx_total" { print $2 }')
[ $((after - before)) -le 2 ] || die "200 requests opened $((after - before)) upstream connections"

kill -0 "$NODUS_PID" 2>/dev/null || die "nodus exited during the test"
pass "request proxied to the upstream, admin ready"
