#!/usr/bin/env bash
# Per-route rate limits (ratelimit = { ... } on router routes and virtual hosts, as Envoy's
# per-route local rate limit), 2 workers:
#   - curl: two routes with limits of their own and a route without, which falls back to the
#     listener's limit; each has its own buckets; 429 headers of the limit that refused;
#     rate headers of a route that asks for them; a virtual host's limit for its routes, a route's
#     own overriding it; a listener whose ratelimit has no limit of its own (routes only);
#   - a plugin between ratelimit and the router that edits the request: the router routes the
#     edited request (the match made for ratelimit is dropped);
#   - wrk: admitted rates of two routes (200 and 500 req/s) and of the fallback (100 req/s) under
#     about 1,000 req/s offered to each at once, within 10%;
#   - /config_dump: each ratelimit lists the limits of its routes;
#   - nodus check: bad per-route limits refused with file:line.
# shellcheck disable=SC1091
. "$(dirname "$0")/lib.sh"

need_cmd curl wrk nginx

up=$(free_port)
main=$(free_port)
vh=$(free_port)
only=$(free_port)
edit=$(free_port)
rate=$(free_port)
admin=$(free_port)
start_nginx_upstream "$up" hello

cfg=$(write_file routes.lua <<LUA
node { name = "rl-routes", workers = 2 }
admin { listen = "127.0.0.1:$admin" }
cluster "nginx" { endpoints = { "127.0.0.1:$up" } }
listener "main" {
  listen = "127.0.0.1:$main",
  plugins = {
    ratelimit { tokens = 5, fill = 5, interval = "1h" },
    router {
      { match = { prefix = "/login" }, cluster = "nginx",
        ratelimit = { tokens = 2, fill = 2, interval = "1h" } },
      { match = { prefix = "/api" }, cluster = "nginx",
        ratelimit = { tokens = 3, fill = 3, interval = "1h", rate_headers = true } },
      { match = { prefix = "/" }, cluster = "nginx" },
    },
  },
}
listener "vh" {
  listen = "127.0.0.1:$vh",
  plugins = {
    ratelimit { tokens = 100, interval = "1h" },
    router { virtual_hosts = {
      { domains = { "limited.test" }, ratelimit = { tokens = 3, interval = "1h" }, routes = {
        { match = { prefix = "/special" }, cluster = "nginx", ratelimit = { tokens = 1, interval = "1h" } },
        { match = { prefix = "/" }, cluster = "nginx" } } },
      { domains = { "*" }, routes = { { match = { prefix = "/" }, cluster = "nginx" } } },
    } },
  },
}
listener "only" {
  listen = "127.0.0.1:$only",
  plugins = {
    ratelimit {},
    router {
      { match = { prefix = "/limited" }, cluster = "nginx", ratelimit = { tokens = 1, interval = "1h" } },
      { match = { prefix = "/" }, cluster = "nginx" },
    },
  },
}
listener "edit" {
  listen = "127.0.0.1:$edit",
  plugins = {
    ratelimit { tokens = 1000, interval = "1h" },
    headers { request_set = { ["x-tier"] = "gold" } },
    router {
      { match = { prefix = "/", headers = { { name = "x-tier", exact = "gold" } } },
        direct_response = { status = 200, body = "gold\n" }, ratelimit = { tokens = 1, interval = "1h" } },
      { match = { prefix = "/" }, cluster = "nginx" },
    },
  },
}
listener "rate" {
  listen = "127.0.0.1:$rate",
  plugins = {
    ratelimit { tokens = 10, fill = 10, interval = "100ms" },
    router {
      { match = { prefix = "/a" }, cluster = "nginx", ratelimit = { tokens = 20, fill = 20, interval = "100ms" } },
      { match = { prefix = "/b" }, cluster = "nginx", ratelimit = { tokens = 50, fill = 50, interval = "100ms" } },
      { match = { prefix = "/" }, cluster = "nginx" },
    },
  },
}
LUA
)
"$NODUS" check "$cfg" >/dev/null || die "config refused: $("$NODUS" check "$cfg" 2>&1)"

# bad per-route limits: refused with file:line (the router's) and the route's path
bad=$(write_file bad.lua <<LUA
cluster "c" { endpoints = { "127.0.0.1:$up" } }
listener "a" { listen = "127.0.0.1:$(free_port)", plugins = {
  ratelimit { tokens = 10, interval = "1s" },
  router {
    { match = { prefix = "/x" }, cluster = "c", ratelimit = { tokens = 10, fill = 20, interval = "10ms" } },
    { match = { prefix = "/" }, cluster = "c", ratelimit = { shadow = true } } } } }
listener "b" { listen = "127.0.0.1:$(free_port)", plugins = {
  router { { match = { prefix = "/" }, cluster = "c", ratelimit = { tokens = 1, interval = "1s" } } } } }
listener "c" { listen = "127.0.0.1:$(free_port)", plugins = {
  ratelimit {}, router { { match = { prefix = "/" }, cluster = "c" } } } }
LUA
)
if "$NODUS" check "$bad" >"$T/check" 2>&1; then die "bad per-route limits accepted"; fi
for m in 'bad.lua:4: listener "a": plugins[2] (router): [1].ratelimit: fill (20) is larger than tokens (10)' \
    "bad.lua:4: listener \"a\": plugins[2] (router): [1].ratelimit: 'interval' must be between 50ms and 24h" \
    'bad.lua:4: listener "a": plugins[2] (router): [2].ratelimit: no limit' \
    "bad.lua:8: listener \"b\": plugins[1] (router): [1]: 'ratelimit': this listener has no ratelimit plugin before router" \
    'bad.lua:10: listener "c": plugins[1] (ratelimit): no limit'; do
    assert_contains "$(cat "$T/check")" "$m" "nodus check"
done

start_nodus "$cfg"
wait_http "http://127.0.0.1:$admin/ready" 15 || die "nodus not ready"
metric() { curl -s "http://127.0.0.1:$admin/stats/prometheus" | awk -v n="$1" '$1 == n { print $2 }'; }

hit() { # URL NAME [CURL ARGS...]: the response head in $T/NAME, the body in $T/NAME.body
    local url=$1 name=$2
    shift 2
    curl -sS -D - -o "$T/$name.body" --max-time 5 "$@" "$url" | tr -d '\r' >"$T/$name"
}
status() { awk 'NR == 1 { print $2 }' "$T/$1"; }
hdr() { awk -v n="$1:" 'tolower($1) == n { print $2 }' "$T/$2"; }
statuses() { # URL N [CURL ARGS...]: the N statuses, space-separated
    local url=$1 n=$2 i out=""
    shift 2
    for ((i = 1; i <= n; i++)); do
        hit "$url" s "$@"
        out+="$(status s) "
    done
    echo "${out% }"
}
limited_429() { # NAME LIMIT: a 429 of that limit, with the headers, that never went upstream
    local name=$1 limit=$2 reset
    assert_eq 429 "$(status "$name")" "$name: status"
    assert_eq "$limit" "$(hdr x-ratelimit-limit "$name")" "$name: x-ratelimit-limit"
    assert_eq 0 "$(hdr x-ratelimit-remaining "$name")" "$name: x-ratelimit-remaining"
    reset=$(hdr x-ratelimit-reset "$name")
    [ "${reset:-0}" -ge 1 ] && [ "$reset" -le 3600 ] || die "$name: x-ratelimit-reset '$reset'"
    assert_eq "$reset" "$(hdr retry-after "$name")" "$name: retry-after"
    [ -z "$(hdr x-upstream "$name")" ] || die "$name: a limited request reached the upstream"
}

# 0. /config_dump shows the limits of the routes, in the file's order (a route that inherits its
#    virtual host's is not listed again)
curl -sS --max-time 5 "http://127.0.0.1:$admin/config_dump" >"$T/dump" || die "/config_dump"
python3 - "$T/dump" <<'PY' || die "/config_dump: per-route limits: $(cat "$T/dump")"
import json, sys
ls = {l["name"]: l for l in json.load(open(sys.argv[1]))["listeners"]}
def routes(name):
    rl = [p for p in ls[name]["plugins"] if p["name"] == "ratelimit"][0]
    return [(r["tokens"], r["fill"], r["interval_ms"], r["rate_headers"]) for r in rl.get("routes", [])]
assert routes("main") == [(2, 2, 3600000, False), (3, 3, 3600000, True)], routes("main")
assert [t for t, _, _, _ in routes("vh")] == [3, 1], routes("vh")
assert [p for p in ls["main"]["plugins"] if p["name"] == "ratelimit"][0]["config"]["route_limits"]
PY

# 1. two routes with their own limits, and the fallback to the listener's, each its own bucket
M=http://127.0.0.1:$main
assert_eq "200 200" "$(statuses "$M/login" 2)" "/login: 2 admitted"
hit "$M/login/again" login3
limited_429 login3 2
assert_eq "" "$(hdr x-ratelimit-limit s)" "no rate headers on admitted answers unless asked"
for i in 1 2 3; do
    hit "$M/api/v1" "api$i"
    assert_eq 200 "$(status "api$i")" "/api request $i"
    assert_eq 3 "$(hdr x-ratelimit-limit "api$i")" "/api: rate headers of its own limit"
    assert_eq $((3 - i)) "$(hdr x-ratelimit-remaining "api$i")" "/api: remaining after request $i"
done
hit "$M/api/v1" api4
limited_429 api4 3
# the login and api buckets are spent; the listener's (5 tokens) is untouched by them
assert_eq "200 200 200 200 200" "$(statuses "$M/other" 5)" "fallback: the listener's 5 tokens"
hit "$M/" fallback6
limited_429 fallback6 5
assert_eq 3 "$(metric nodus_plugin_ratelimit_limited_total)" "limited counted"

# 2. a virtual host's limit for its routes; a route's own overrides it; other hosts: the listener's
V=http://127.0.0.1:$vh
assert_eq "200 429" "$(statuses "$V/special" 2 -H 'Host: limited.test')" "route's own limit (1)"
assert_eq "200 200 200 429" "$(statuses "$V/x" 4 -H 'Host: limited.test')" "virtual host's limit (3)"
assert_eq "200 200 200 200 200" "$(statuses "$V/x" 5 -H 'Host: other.test')" "other host: listener's limit"

# 3. a ratelimit with no limit of its own: only the routes that have one are limited
O=http://127.0.0.1:$only
assert_eq "200 429" "$(statuses "$O/limited" 2)" "route-only: the route's limit"
assert_eq "200 200 200 200 200 200 200 200" "$(statuses "$O/free" 8)" "route-only: no limit elsewhere"

# 4. an edit after the match: ratelimit saw the request without x-tier (the listener's limit), the
#    router routes the edited one (the gold route answers; its 1-token limit was not applied)
E=http://127.0.0.1:$edit
hit "$E/" e1
hit "$E/" e2
assert_eq "200 200" "$(status e1) $(status e2)" "edited requests"
assert_eq "gold" "$(cat "$T/e2.body")" "the router matched the edited request"

# 5. rates: three routes at once, each offered about 1,000 req/s for 5 s
R=http://127.0.0.1:$rate
cat >"$T/pace.lua" <<'LUA'
function delay() return 10 end
LUA
before=$(metric nodus_plugin_ratelimit_allowed_total)
for r in a b c; do
    wrk -t1 -c10 -d5s -s "$T/pace.lua" "$R/$r" >"$T/wrk-$r" 2>&1 &
    eval "wrk_$r=\$!"
done
# shellcheck disable=SC2154
wait "$wrk_a" "$wrk_b" "$wrk_c" || die "wrk: $(cat "$T"/wrk-*)"
sleep 0.3
for r in a:200 b:500 c:100; do
    name=${r%:*} want=${r#*:}
    total=$(awk '/requests in/ { print $1 }' "$T/wrk-$name")
    secs=$(awk '/requests in/ { sub(/s,?$/, "", $4); print $4 }' "$T/wrk-$name")
    non2xx=$(awk '/Non-2xx or 3xx responses:/ { print $NF }' "$T/wrk-$name")
    admitted=$((total - ${non2xx:-0}))
    read -r offered got dev < <(awk -v t="$total" -v a="$admitted" -v s="$secs" -v w="$want" \
        'BEGIN { printf "%.0f %.1f %.2f\n", t / s, a / s, (a / s - w) / w * 100 }')
    log "route /$name: offered $offered req/s for ${secs}s, admitted $admitted ($got req/s, ${dev}% from $want)"
    [ "$offered" -ge $((want * 3 / 2)) ] || die "/$name: only $offered req/s offered: $(cat "$T/wrk-$name")"
    # the bursts (the initial full bucket) count: tokens + fill per interval over the run
    awk -v d="$dev" 'BEGIN { exit !(d >= -10 && d <= 10) }' || die "/$name: admitted $got req/s, not within 10% of $want"
    admitted_all=$((${admitted_all:-0} + admitted))
done
allowed=$(($(metric nodus_plugin_ratelimit_allowed_total) - before))
[ $((allowed - admitted_all)) -ge 0 ] && [ $((allowed - admitted_all)) -le 60 ] ||
    die "allowed counter $allowed vs $admitted_all 2xx seen"
pass "per-route limits: own buckets, fallback to the listener's, virtual hosts, route-only, re-match after an edit, rates of three routes at once"
