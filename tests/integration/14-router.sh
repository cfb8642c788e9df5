#!/usr/bin/env bash
# The router and the listeners as a user checks them, with curl in front of nodus and nginx
# upstreams that echo what they saw (X-Seen-*, X-Upstream):
#   virtual hosts (exact, suffix and prefix wildcards, precedence, case and port ignored; an
#   unknown host is 404 NR); matching by prefix, exact path, regex, method, header and query
#   parameter, first match wins; an 80/20 split over 500 requests; label subsets; prefix rewrite
#   (query kept), redirects, direct responses; a per-route timeout (504 UT); round_robin,
#   least_request and random over 3 endpoints; an IPv6 listener and endpoint; a TCP listener and
#   its istio_tcp_* metrics; the JSON access log; promtool on /stats/prometheus, the labels of
#   istio_requests_total, /config_dump and `nodus status`.
#   The routes, as the router describes them, in /config_dump and `nodus status`.
# shellcheck disable=SC1091
. "$(dirname "$0")/lib.sh"

need_cmd curl nginx python3 promtool

t0=$SECONDS
a=$(free_port)
b=$(free_port)
c1=$(free_port)
c2=$(free_port)
c3=$(free_port)
peer=$(free_port)
port=$(free_port)
tport=$(free_port)
admin=$(free_port)
start_nginx_upstream "$a" a
start_nginx_upstream "$b" b
start_nginx_upstream "$c1" c1
start_nginx_upstream "$c2" c2
start_nginx_upstream "$c3" c3
start_peer_upstream "$peer"

# IPv6 only when the kernel has ::1 (a listener on it would make the whole config fail), and on
# kernel sockets (the DPDK stack is IPv4 only)
v6=0
if [ "$NODUS_IO" = dpdk ]; then
    log "io = dpdk: the IPv6 checks are skipped (the user-space stack is IPv4 only)"
elif python3 -c 'import socket; socket.socket(socket.AF_INET6).bind(("::1", 0))' 2>/dev/null; then
    v6=1
    v6up=$(free_port)
    v6port=$(free_port)
    start_nginx_upstream "$v6up" v6 ::1
    v6cfg=$(cat <<LUA
cluster "v6" { endpoints = { "[::1]:$v6up" } }
listener "v6" {
  listen = "[::1]:$v6port",
  plugins = { router { virtual_hosts = {
    { domains = { "[::1]" }, routes = { { match = { prefix = "/" }, cluster = "v6" } } } } } },
}
LUA
    )
else
    log "no ::1 on this kernel: the IPv6 checks are skipped"
fi
[ "$v6" = 1 ] || v6cfg=""

alog=$T/access.log
cfg=$(write_file router.lua <<LUA
node { name = "router-it", workers = 2, access_log = "$alog" }
admin { listen = "$NODE_IP:$admin" }
local function ep(p) return "$PEER_IP:" .. p end
cluster "a" { endpoints = { ep($a) } }
cluster "b" { endpoints = { ep($b) } }
cluster "c1" { endpoints = { ep($c1) } }
cluster "c2" { endpoints = { ep($c2) } }
cluster "c3" { endpoints = { ep($c3) } }
cluster "peer" { endpoints = { ep($peer) } }
cluster "rr" { endpoints = { ep($c1), ep($c2), ep($c3) }, lb = "round_robin" }
cluster "lr" { endpoints = { ep($c1), ep($c2), ep($c3) }, lb = "least_request" }
cluster "rnd" { endpoints = { ep($c1), ep($c2), ep($c3) }, lb = "random" }
cluster "sub" { endpoints = {
  { address = ep($c1), labels = { version = "v1" } },
  { address = ep($c2), labels = { version = "v2" } },
  { address = ep($c3), labels = { version = "v2" } } } }
$v6cfg
listener "web" {
  listen = "$NODE_IP:$port", timeout = "15s",
  plugins = { router { virtual_hosts = {
    { domains = { "a.test" }, routes = { { match = { prefix = "/" }, cluster = "a" } } },
    { domains = { "*.b.test" }, routes = { { match = { prefix = "/" }, cluster = "b" } } },
    { domains = { "*.test" }, routes = { { match = { prefix = "/" }, cluster = "c2" } } },
    { domains = { "www.*" }, routes = { { match = { prefix = "/" }, cluster = "c3" } } },
    { domains = { "api.test", "api.example.com" }, routes = {
      { match = { exact = "/exact" }, cluster = "c1" },
      { match = { regex = "/users/[0-9]+" }, cluster = "c1" },
      { match = { prefix = "/meth", methods = { "POST", "PUT" } }, cluster = "c1" },
      { match = { prefix = "/meth" }, cluster = "c2" },
      { match = { prefix = "/hdr", headers = { { name = "X-Canary", exact = "1" } } }, cluster = "c1" },
      { match = { prefix = "/hdr", headers = { { name = "x-debug", present = true } } }, cluster = "c2" },
      { match = { prefix = "/hdr", headers = { { name = "user-agent", prefix = "probe/" },
                                               { name = "x-build", regex = "[0-9]+" } } }, cluster = "b" },
      { match = { prefix = "/hdr" }, cluster = "c3" },
      { match = { prefix = "/qry", query = { { name = "v", exact = "2" } } }, cluster = "c1" },
      { match = { prefix = "/qry", query = { { name = "flag", present = true } } }, cluster = "c2" },
      { match = { prefix = "/qry" }, cluster = "c3" },
      { match = { prefix = "/order" }, cluster = "c1" },
      { match = { prefix = "/order/specific" }, cluster = "c2" },
      { match = { prefix = "/split" }, split = { { cluster = "a", weight = 80 }, { cluster = "b", weight = 20 } } },
      { match = { prefix = "/sub1" }, cluster = "sub", subset = { version = "v1" } },
      { match = { prefix = "/sub2" }, cluster = "sub", subset = { version = "v2" } },
      { match = { prefix = "/subsplit" }, split = { { cluster = "sub", weight = 1, subset = { version = "v1" } },
                                                  { cluster = "sub", weight = 1, subset = { version = "v2" } } } },
      { match = { prefix = "/v1" }, cluster = "a", rewrite_prefix = "/" },
      { match = { prefix = "/api/" }, cluster = "a", rewrite_prefix = "/v2/" },
      { match = { prefix = "/old" }, redirect = { location = "https://new.example.com/" } },
      { match = { prefix = "/moved" }, redirect = { path = "/new", status = 302 } },
      { match = { exact = "/teapot" }, direct_response = { status = 418, body = '{"short":"stout"}', content_type = "application/json" } },
      { match = { exact = "/plain" }, direct_response = { status = 200, body = "ok\\n" } },
      { match = { exact = "/empty" }, direct_response = { status = 204 } },
      { match = { prefix = "/hang" }, cluster = "peer", timeout = "500ms" },
      { match = { prefix = "/rr" }, cluster = "rr" },
      { match = { prefix = "/lr" }, cluster = "lr" },
      { match = { prefix = "/rnd" }, cluster = "rnd" },
      { match = { prefix = "/" }, cluster = "a" },
    } },
  } } },
}
listener "raw" { listen = "$NODE_IP:$tport", protocol = "tcp", cluster = "a" }
LUA
)
"$NODUS" check "$cfg" >"$T/check" 2>&1 || die "nodus check refused the configuration: $(cat "$T/check")"
start_nodus "$cfg"
wait_http "http://$NODE_IP:$admin/ready" 15 || die "nodus not ready"
url="http://$NODE_IP:$port"

# req URL [CURL ARGS...]: sets CODE and BODY, the response head (CR removed) in $T/h
req() {
    local u=$1
    shift
    : >"$T/h.raw"
    : >"$T/b"
    CODE=$(curl -gs -o "$T/b" -D "$T/h.raw" -w '%{http_code}' --max-time 5 "$@" "$u" || true)
    tr -d '\r' <"$T/h.raw" >"$T/h"
    BODY=$(cat "$T/b")
}
# hdr NAME: the value of response header NAME of the last req ("" when absent)
hdr() { awk -v n="${1,,}" 'index(tolower($0), n ": ") == 1 { sub(/^[^:]*: /, ""); print; exit }' "$T/h"; }
# goes HOST PATH WANT WHY [CURL ARGS...]: the request is proxied to the upstream whose body is WANT
goes() {
    local host=$1 path=$2 want=$3 why=$4
    shift 4
    req "$url$path" -H "Host: $host" "$@"
    [ "$CODE" = 200 ] && [ "$BODY" = "$want" ] ||
        die "$why: expected $host$path to reach upstream '$want' (200), got $CODE '$BODY'"
}
# bodies N PATH [CURL ARGS...]: N requests on one keep-alive connection; prints each body's count
bodies() {
    local n=$1 path=$2 i urls=$T/urls.$BASHPID # one file per caller: some run concurrently
    shift 2
    for ((i = 0; i < n; i++)); do echo "url = \"$url$path\""; done >"$urls"
    curl -s --max-time 20 -H 'Host: api.test' "$@" -K "$urls" | sort | uniq -c | awk '{ print $2 "=" $1 }' | sort | tr '\n' ' '
}
scrape() { curl -s --max-time 5 -o "$T/m" "http://$NODE_IP:$admin/stats/prometheus"; }
# msum REGEX: sum of the values of the samples whose line matches REGEX (in the last scrape)
msum() { grep -E "$1" "$T/m" | awk '{ s += $NF } END { print s + 0 }'; }

# ---- 1. virtual hosts ----
goes a.test /x a "exact domain a.test"
goes A.Test:8080 /x a "domains ignore case and the Host's port"
goes x.b.test /x b "suffix wildcard *.b.test"
goes y.x.b.test /x b "suffix wildcard *.b.test (several labels for the *)"
goes other.test /x c2 "suffix wildcard *.test (the longest suffix wins: *.b.test is not it)"
goes b.test /x c2 "*.b.test needs at least one character for its *: b.test falls to *.test"
goes www.example.org /x c3 "prefix wildcard www.*"
goes www.test /x c2 "a suffix wildcard (*.test) beats a prefix wildcard (www.*)"
goes api.test /x a "exact domain beats *.test"
goes api.example.com /x a "second domain of a virtual host"
req "$url/x" -H 'Host: nowhere.example'
assert_eq 404 "$CODE" "an unknown host (no '*' virtual host) is answered 404"
assert_eq "no route" "$BODY" "body of the 404 for an unknown host"
req "$url/x" -0 -H 'Host:'
assert_eq 404 "$CODE" "an HTTP/1.0 request without Host matches no domain but '*' (there is none): 404"

# ---- 2. matching ----
goes api.test /exact c1 "exact path /exact"
goes api.test /exact/more a "exact /exact does not match /exact/more (falls to prefix /)"
goes api.test /exact?x=1 c1 "exact path ignores the query"
goes api.test /users/42 c1 "regex /users/[0-9]+"
goes api.test /users/42x a "regex is anchored: /users/42x does not match"
goes api.test /x/users/42 a "regex is anchored at the start too"
goes api.test /meth c2 "GET /meth falls past the POST/PUT route"
goes api.test /meth c1 "POST /meth matches methods {POST, PUT}" -X POST -d x
goes api.test /meth c1 "PUT /meth matches methods {POST, PUT}" -X PUT -d x
goes api.test /hdr c1 "header x-canary: 1 (name case-insensitive)" -H 'x-CANARY: 1'
goes api.test /hdr c3 "header x-canary: 2 is not exact 1" -H 'X-Canary: 2'
goes api.test /hdr c2 "header x-debug present" -H 'X-Debug: yes'
goes api.test /hdr c2 "header x-debug present even empty" -H 'X-Debug;'
goes api.test /hdr b "header prefix and regex conditions both hold" -A probe/1.0 -H 'X-Build: 42'
goes api.test /hdr c3 "header regex is anchored: x-build 42a does not match [0-9]+" -A probe/1.0 -H 'X-Build: 42a'
goes api.test /hdr c3 "every header condition of a route must hold" -A probe/1.0
goes api.test /hdr c3 "no header condition holds"
goes api.test '/qry?v=2' c1 "query v=2"
goes api.test '/qry?a=1&v=2' c1 "query v=2 after another parameter"
goes api.test '/qry?v=20' c3 "query v=20 is not v=2"
goes api.test '/qry?flag' c2 "query parameter without '=' is present"
goes api.test '/qry?flag=&v=3' c2 "query flag= present (empty value)"
goes api.test /qry c3 "no query"
goes api.test /order/specific c1 "first match wins: /order is before /order/specific"

# ---- 3. split and subsets ----
scrape
sb0=$(msum '^istio_requests_total\{.*destination_service="b".*response_code="200"')
split=$(bodies 500 /split)
na=$(sed -n 's/.*\ba=\([0-9]*\).*/\1/p' <<<"$split")
nb=$(sed -n 's/.*\bb=\([0-9]*\).*/\1/p' <<<"$split")
[ "$((${na:-0} + ${nb:-0}))" = 500 ] || die "split 80/20: expected 500 answers from a and b, got: $split"
# 20% of 500 is 100, sd 9: 65..135 is almost 4 sd
[ "$nb" -ge 65 ] && [ "$nb" -le 135 ] || die "split 80/20: expected about 100 of 500 on b, got $split"
log "split 80/20 over 500 requests: $split"
for i in $(seq 20); do
    scrape
    sb=$(msum '^istio_requests_total\{.*destination_service="b".*response_code="200"')
    [ "$((sb - sb0))" = "$nb" ] && break
    sleep 0.1
done
assert_eq "$nb" "$((sb - sb0))" "istio_requests_total{destination_service=\"b\"} counts the split's requests to b"
got=$(bodies 20 /sub1)
assert_eq "c1=20 " "$got" "subset version=v1: every request to the v1 endpoint"
got=$(bodies 20 /sub2)
assert_eq "c2=10 c3=10 " "$got" "subset version=v2: round robin over the two v2 endpoints only"
got=$(bodies 60 /subsplit)
for e in c1 c2 c3; do assert_contains "$got" "$e=" "split 1:1 between subsets v1 and v2 of one cluster reaches all 3 endpoints"; done

# ---- 4. rewrite, redirect, direct response ----
goes api.test '/v1/users?id=7' a "rewrite /v1 -> /"
assert_eq "/users?id=7" "$(hdr x-seen-uri)" "upstream sees /v1/users?id=7 rewritten to /users?id=7 (query kept)"
assert_eq "api.test" "$(hdr x-seen-host)" "upstream sees the client's Host"
goes api.test /v1 a "rewrite /v1 -> /"
assert_eq "/" "$(hdr x-seen-uri)" "upstream sees /v1 rewritten to /"
goes api.test '/api/x/y?z=1&w' a "rewrite /api/ -> /v2/"
assert_eq "/v2/x/y?z=1&w" "$(hdr x-seen-uri)" "upstream sees /api/x/y rewritten to /v2/x/y, query kept"
goes api.test '/other?k=v' a "no rewrite on the default route"
assert_eq "/other?k=v" "$(hdr x-seen-uri)" "upstream sees the path unchanged without rewrite_prefix"
req "$url/old/page?q=1" -H 'Host: api.test'
assert_eq 301 "$CODE" "redirect without a status is 301"
assert_eq "https://new.example.com/" "$(hdr location)" "redirect location as configured"
assert_eq "" "$BODY" "a redirect has an empty body"
req "$url/moved/x?a=1&b=2" -H 'Host: api.test'
assert_eq 302 "$CODE" "path redirect with status = 302"
assert_eq "/new?a=1&b=2" "$(hdr location)" "path redirect keeps the query"
req "$url/teapot" -H 'Host: api.test'
assert_eq 418 "$CODE" "direct response status"
assert_eq '{"short":"stout"}' "$BODY" "direct response body"
assert_eq "application/json" "$(hdr content-type)" "direct response content_type"
req "$url/plain" -H 'Host: api.test'
plain_rx=$(($(stat -c %s "$T/h.raw") + $(stat -c %s "$T/b")))
assert_eq "200 ok" "$CODE $BODY" "direct response 200 ok"
assert_eq "text/plain" "$(hdr content-type)" "a direct response body is text/plain by default"
req "$url/empty" -H 'Host: api.test'
assert_eq "204" "$CODE" "direct response 204"
assert_eq "" "$(hdr content-type)" "an empty direct response has no content-type"

# ---- 5. per-route timeout ----
s=$EPOCHREALTIME
req "$url/hang" -H 'Host: api.test'
ms=$(awk -v a="$s" -v b="$EPOCHREALTIME" 'BEGIN { printf "%d", (b - a) * 1000 }')
assert_eq 504 "$CODE" "an upstream that never answers gets 504 after the route timeout"
[ "$ms" -ge 450 ] && [ "$ms" -lt 3000 ] || die "route timeout 500ms: the 504 came after $ms ms (the listener's is 15 s)"

# ---- 6. load balancing over 3 endpoints ----
got=$(bodies 60 /rr)
assert_eq "c1=20 c2=20 c3=20 " "$got" "round_robin over 3 endpoints, 60 requests on one connection"
for p in lr rnd; do
    got=$(bodies 60 "/$p")
    for e in c1 c2 c3; do
        assert_contains "$got" "$e=" "lb $p: every endpoint gets traffic (60 requests)"
    done
    log "lb $p over 60 requests: $got"
done
# several concurrent clients: least_request still spreads over every endpoint
pids=()
for i in 1 2 3 4; do
    bodies 30 /lr >"$T/lr.$i" &
    pids+=($!)
done
wait "${pids[@]}"
got=$(cat "$T"/lr.* | tr ' ' '\n' | awk -F= 'NF == 2 { n[$1] += $2; t += $2 } END { for (k in n) printf "%s=%d ", k, n[k]; printf "total=%d", t }')
assert_contains "$got" "total=120" "least_request with 4 concurrent clients: all 120 requests answered"
for e in c1 c2 c3; do assert_contains "$got" "$e=" "least_request with 4 concurrent clients: every endpoint gets traffic"; done

# ---- 7. IPv6 ----
if [ "$v6" = 1 ]; then
    req "http://[::1]:$v6port/six?x=1"
    assert_eq "200 v6" "$CODE $BODY" "request to the [::1] listener reaches the [::1] endpoint"
    assert_eq "[::1]:$v6up" "$(hdr x-upstream)" "upstream address seen on IPv6"
    assert_eq "::1" "$(hdr x-seen-xff)" "X-Forwarded-For carries the IPv6 client"
fi

# ---- 8. TCP listener ----
req "http://$NODE_IP:$tport/through-tcp?x=1"
assert_eq "200 a" "$CODE $BODY" "HTTP through the tcp listener reaches cluster a"
assert_eq "/through-tcp?x=1" "$(hdr x-seen-uri)" "bytes through the tcp listener are unchanged"
for i in $(seq 30); do
    scrape
    [ "$(msum '^istio_tcp_connections_closed_total\{.*listener="raw"')" -ge 1 ] && break
    sleep 0.1
done
for m in istio_tcp_connections_opened_total istio_tcp_connections_closed_total istio_tcp_sent_bytes_total istio_tcp_received_bytes_total; do
    v=$(msum "^$m\\{.*listener=\"raw\"")
    [ "$v" -ge 1 ] || die "$m{listener=\"raw\"} should be non-zero after a connection, got $v: $(grep "^$m" "$T/m")"
done
[ "$(msum '^istio_tcp_sent_bytes_total\{.*listener="raw"')" -ge 100 ] || die "istio_tcp_sent_bytes_total should count the response bytes"

# ---- 9 and 10. metrics, access log, admin ----
# every exchange is recorded when it ends, in the metrics and then in the access log: wait for both
for i in $(seq 30); do
    scrape
    nreq=$(msum '^istio_requests_total\{')
    [ "$(wc -l <"$alog")" = "$nreq" ] && break
    sleep 0.1
done
assert_eq "$nreq" "$(wc -l <"$alog")" "one access log line per request counted in istio_requests_total"
python3 - "$alog" <<'PY' || die "access log is not one valid JSON object per line with the documented fields"
import json, sys
want = {"method": str, "path": str, "status": int, "response_flags": str, "upstream": (str, type(None)),
        "duration_us": int, "listener": str, "authority": str, "cluster": (str, type(None))}
for n, line in enumerate(open(sys.argv[1]), 1):
    o = json.loads(line)
    for k, t in want.items():
        assert k in o, f"line {n}: no {k}: {line}"
        assert isinstance(o[k], t), f"line {n}: {k} is {type(o[k]).__name__}: {line}"
PY
line() { python3 -c 'import json, sys
for l in open(sys.argv[1]):
    o = json.loads(l)
    if o["path"] == sys.argv[2]:
        print(o["method"], o["status"], o["response_flags"], o["cluster"], o["upstream"], o["authority"]); break' "$alog" "$1"; }
assert_eq "GET 200 - a $PEER_IP:$a api.test" "$(line '/v1/users?id=7')" \
    "access log of a rewritten request: method, the path as the client sent it, status, flags, cluster, upstream, authority"
assert_eq "GET 504 UT peer $PEER_IP:$peer api.test" "$(line /hang)" "access log of the timed-out request"
python3 - "$alog" <<'PY' || die "access log: the unknown-host request should be logged 404 NR without upstream"
import json, sys
ok = any(o["authority"] == "nowhere.example" and o["status"] == 404 and o["response_flags"] == "NR"
         and o["upstream"] is None and o["cluster"] is None for o in map(json.loads, open(sys.argv[1])))
sys.exit(0 if ok else 1)
PY
# sizes: a local answer counts the request head received and the whole answer sent (head + body)
python3 - "$alog" "$plain_rx" <<'PY' || die "access log: a request answered locally should count its request head in bytes_received and its whole answer in bytes_sent"
import json, sys
o = [o for o in map(json.loads, open(sys.argv[1])) if o["path"] == "/plain"][0]
assert o["bytes_received"] > 40, o
assert o["bytes_sent"] == int(sys.argv[2]), (o, sys.argv[2])
PY

# Prometheus text: promtool's only lint complaints are Istio's histogram name in milliseconds and
# its twin with the principals (docs/metrics.md)
promtool check metrics <"$T/m" >"$T/promtool" 2>&1 || true
if grep -v -E '(istio|nodus)_request_duration_milliseconds use base unit' "$T/promtool" | grep -q .; then
    die "promtool check metrics should only warn about the *_request_duration_milliseconds names: $(cat "$T/promtool")"
fi
want='istio_requests_total{reporter="source",source_workload="router-it",destination_service="unknown",destination_cluster="unknown",request_protocol="http",response_code="404",response_flags="NR",connection_security_policy="none",listener="web"}'
assert_contains "$(cat "$T/m")" "$want" "an unknown host is counted as 404 NR in istio_requests_total with the documented labels"
assert_contains "$(cat "$T/m")" 'istio_requests_total{reporter="source",source_workload="router-it",destination_service="peer",destination_cluster="peer",request_protocol="http",response_code="504",response_flags="UT",connection_security_policy="none",listener="web"} 1' \
    "the route timeout is counted once as 504 UT"
[ "$(msum '^nodus_plugin_router_no_route_total ')" -ge 1 ] || die "nodus_plugin_router_no_route_total should count the unknown host"

curl -s --max-time 5 -o "$T/dump" "http://$NODE_IP:$admin/config_dump"
python3 - "$T/dump" "$v6" <<'PY' || die "/config_dump should be JSON naming every cluster and listener"
import json, sys
d = json.load(open(sys.argv[1]))
cl = {c["name"] for c in d["clusters"]}
want = {"a", "b", "c1", "c2", "c3", "peer", "rr", "lr", "rnd", "sub"} | ({"v6"} if sys.argv[2] == "1" else set())
assert cl == want, cl
ls = {l["name"]: l for l in d["listeners"]}
assert ls["raw"]["protocol"] == "tcp" and ls["raw"]["cluster"] == "a", ls["raw"]
assert [p["name"] for p in ls["web"]["plugins"]] == ["router"], ls["web"]
sub = [c for c in d["clusters"] if c["name"] == "sub"][0]
assert sub["endpoints"][0]["labels"] == {"version": "v1"}, sub
PY
"$NODUS" status --admin "$NODE_IP:$admin" >"$T/status" 2>&1 || die "nodus status failed: $(cat "$T/status")"
st=$(cat "$T/status")
assert_contains "$st" "$NODE_IP:$port" "nodus status shows the address of listener web"
assert_contains "$st" "$NODE_IP:$tport" "nodus status shows the address of listener raw"
if [ "$v6" = 1 ]; then
    assert_contains "$st" "[::1]:$v6port" "nodus status shows the IPv6 listener's address"
fi
case "$st" in *"(null)"*) die "nodus status prints (null) where a value should be: $st" ;; esac
assert_contains "$st" "ROUTES of web" "nodus status lists the routes of listener web"
grep -Eq '^ +prefix +/split .*-> split a 80, b 20' "$T/status" ||
    die "nodus status should show the 80/20 split route: $st"
for c in "rr  *round_robin  *$PEER_IP:$c1 $PEER_IP:$c2 $PEER_IP:$c3" "lr  *least_request" "rnd  *random" "raw  *$NODE_IP:$tport  *tcp"; do
    grep -Eq "^$c" "$T/status" || die "nodus status should show '$c': $st"
done

kill -0 "$NODUS_PID" 2>/dev/null || die "nodus exited during the test"
log "took $((SECONDS - t0)) s"
pass "vhosts, matching, split, subsets, rewrite/redirect/direct, route timeout, lb, IPv6=$v6, tcp, access log, metrics, admin"
