#!/usr/bin/env bash
# Principals in the metrics: nodus_requests_total and nodus_request_duration_milliseconds carry
# source_principal, destination_principal and connection_security_policy, with real peers:
# curl with client certificates from `nodus ca issue` against node B's strict listener, and node
# A -> node B over mTLS (A labels its outbound requests with its own id as the source and B's
# verified id as the destination; B labels them with A's id and its own). A plaintext listener
# gives "unknown". B keeps at most 3 principals (metrics { principals = 3 }): a fourth peer is
# labelled "other", counted and logged. promtool accepts both nodes' exposition. The access logs
# have source_principal and destination_principal as each connection verified them. TCP proxying
# (protocol = "tcp") over the same hop: istio_tcp_* say mutual_tls, nodus_tcp_* carry the two
# principals, and a long connection reports its bytes while it is still open.
# shellcheck disable=SC1091
. "$(dirname "$0")/lib.sh"

need_cmd curl openssl promtool python3
up=$(free_port)
aport=$(free_port)
bport=$(free_port)
bplain=$(free_port)
btcp=$(free_port)
atcp=$(free_port)
aadmin=$(free_port)
badmin=$(free_port)
start_nginx_upstream "$up" "behind-b"

cd "$T"
TD=spiffe://mesh.local
A_ID=$TD/ns/edge/sa/node-a
B_ID=$TD/ns/prod/sa/node-b
FRONT=$TD/ns/web/sa/frontend
EXTRA=$TD/ns/web/sa/extra
"$NODUS" ca init ca --trust-domain mesh.local >/dev/null
"$NODUS" ca issue ca --id "$A_ID" --out a >/dev/null
"$NODUS" ca issue ca --id "$B_ID" --dns localhost --out b >/dev/null
"$NODUS" ca issue ca --id "$FRONT" --out front >/dev/null
"$NODUS" ca issue ca --id "$EXTRA" --out extra >/dev/null

cat >b.lua <<LUA
node { name = "node-b", workers = 2, access_log = "$T/b-access.log" }
identity { ca = "ca/ca.pem", cert = "b.pem", key = "b.key" }
admin { listen = "127.0.0.1:$badmin" }
metrics { principals = 3 }
cluster "web" { endpoints = { "127.0.0.1:$up" } }
listener "mesh" {
  listen = "127.0.0.1:$bport",
  plugins = { mtls { mode = "strict" }, router { { match = { prefix = "/" }, cluster = "web" } } },
}
listener "plain" {
  listen = "127.0.0.1:$bplain",
  plugins = { router { { match = { prefix = "/" }, cluster = "web" } } },
}
listener "db" {
  listen = "127.0.0.1:$btcp", protocol = "tcp", cluster = "web",
  plugins = { mtls { mode = "strict" } },
}
LUA
cat >a.lua <<LUA
node { name = "node-a", workers = 1, access_log = "$T/a-access.log" }
identity { ca = "ca/ca.pem", cert = "a.pem", key = "a.key" }
admin { listen = "127.0.0.1:$aadmin" }
cluster "b" { endpoints = { "127.0.0.1:$bport" }, tls = "mutual", expect = { "$B_ID" } }
cluster "bdb" { endpoints = { "127.0.0.1:$btcp" }, tls = "mutual", expect = { "$B_ID" } }
listener "tin" { listen = "127.0.0.1:$atcp", protocol = "tcp", cluster = "bdb" }
listener "in" {
  listen = "127.0.0.1:$aport",
  plugins = { router { { match = { prefix = "/" }, cluster = "b" } } },
}
LUA
start_nodus b.lua
blog=$NODUS_LOG
wait_http "http://127.0.0.1:$badmin/ready" 15 || die "node b not ready"
start_nodus a.lua
wait_http "http://127.0.0.1:$aadmin/ready" 15 || die "node a not ready"

tls_get() { # CERT-PREFIX COUNT: COUNT requests on one connection to B's mtls listener
    curl -sS --max-time 10 --cacert ca/ca.pem --cert "$1.pem" --key "$1.key" \
        --resolve "localhost:$bport:127.0.0.1" "https://localhost:$bport/p/[1-$2]"
}
# the value of one series of a scrape; "absent" when it is not there
val() { # FILE SERIES
    awk -v s="$2" '$1 == s { v = $2 } END { print (v == "" ? "absent" : v) }' "$1"
}
series() { # METRIC SRC DST CLUSTER CODE POLICY LISTENER [WORKLOAD]
    printf '%s{reporter="source",source_workload="%s",source_principal="%s",destination_principal="%s",destination_service="%s",destination_cluster="%s",request_protocol="http",response_code="%s",response_flags="-",connection_security_policy="%s",listener="%s"}' \
        "$1" "${8:-node-b}" "$2" "$3" "$4" "$4" "$5" "$6" "$7"
}
scrape() { curl -sS --max-time 5 -o "$2" "http://127.0.0.1:$1/stats/prometheus"; }
scrape_until() { # ADMIN-PORT FILE SERIES VALUE: scrape into FILE until SERIES has VALUE (5 s at most)
    for _ in $(seq 50); do
        scrape "$1" "$2"
        [ "$(val "$2" "$3")" = "$4" ] && return
        sleep 0.1
    done
}
promcheck() { # FILE: only the base-unit lint of the two *_milliseconds histograms is accepted
    local rc=0
    promtool check metrics <"$1" >"$1.lint" 2>&1 || rc=$?
    [ "$rc" = 0 ] || [ "$rc" = 3 ] || die "promtool refused $1 (exit $rc): $(head -5 "$1.lint")"
    if grep -v -E '(istio|nodus)_request_duration_milliseconds use base unit "seconds"' "$1.lint" |
        grep -q .; then
        die "promtool on $1: $(cat "$1.lint")"
    fi
}

# 1. a client certificate: 3 requests on one connection, then 2 more on another
out=$(tls_get front 3) || die "curl with the frontend certificate failed"
assert_eq 3 "$(grep -c behind-b <<<"$out")" "answers to the frontend"
tls_get front 2 >/dev/null || die "second curl with the frontend certificate failed"
# 2. node A -> node B over mTLS, 5 requests
out=$(curl -sS --max-time 10 "http://127.0.0.1:$aport/q/[1-5]") || die "curl through a failed"
assert_eq 5 "$(grep -c behind-b <<<"$out")" "answers through node a"
# 3. B's plaintext listener, 2 requests
curl -sS --max-time 10 "http://127.0.0.1:$bplain/r/[1-2]" >/dev/null || die "plain curl failed"

scrape "$badmin" bm1
assert_eq 5 "$(val bm1 "$(series nodus_requests_total "$FRONT" "$B_ID" web 200 mutual_tls mesh)")" \
    "B: requests from the frontend to B"
assert_eq 5 "$(val bm1 "$(series nodus_request_duration_milliseconds_count "$FRONT" "$B_ID" web 200 mutual_tls mesh)")" \
    "B: duration histogram of the frontend's requests"
assert_eq 5 "$(val bm1 "$(series nodus_requests_total "$A_ID" "$B_ID" web 200 mutual_tls mesh)")" \
    "B: requests from node A to B"
assert_eq 2 "$(val bm1 "$(series nodus_requests_total unknown unknown web 200 none plain)")" \
    "B: plaintext requests"
assert_eq 3 "$(val bm1 nodus_metrics_principals)" "B: principals (B, the frontend, A)"
assert_eq 0 "$(val bm1 nodus_metrics_principals_overflow_total)" "B: principal overflow before"
# the istio_* families keep their labels: the same 12 requests, no principal label
grep -q '^istio_requests_total{.*source_principal' bm1 && die "istio_requests_total has principals"
assert_eq 10 "$(val bm1 'istio_requests_total{reporter="source",source_workload="node-b",destination_service="web",destination_cluster="web",request_protocol="http",response_code="200",response_flags="-",connection_security_policy="mutual_tls",listener="mesh"}')" \
    "B: istio_requests_total over mTLS"
scrape "$aadmin" am1
assert_eq 5 "$(val am1 "$(series nodus_requests_total "$A_ID" "$B_ID" b 200 none in node-a)")" \
    "A: outbound requests, source A (itself), destination B (verified)"
promcheck bm1
promcheck am1
# the access logs: what each connection verified
python3 - "$T/a-access.log" "$T/b-access.log" "$A_ID" "$B_ID" <<'PY' || die "access log principals"
import json, sys
a = [json.loads(l) for l in open(sys.argv[1])]
b = [json.loads(l) for l in open(sys.argv[2]) if '"listener":"mesh"' in l]
assert len(a) == 5 and all(e["source_principal"] is None and e["destination_principal"] == sys.argv[4] for e in a), a
from_a = [e for e in b if e["source_principal"] == sys.argv[3]]
assert len(from_a) == 5 and all(e["destination_principal"] is None for e in from_a), b
PY

# 4. a fourth principal finds B's table full: "other", counted per request, logged once
tls_get extra 2 >/dev/null || die "curl with the extra certificate failed"
tls_get extra 1 >/dev/null || die "second curl with the extra certificate failed"
scrape "$badmin" bm2
assert_eq 3 "$(val bm2 "$(series nodus_requests_total other "$B_ID" web 200 mutual_tls mesh)")" \
    "B: requests of a principal beyond the table"
assert_eq 3 "$(val bm2 nodus_metrics_principals_overflow_total)" "B: principal overflow counted"
assert_eq 3 "$(val bm2 nodus_metrics_principals)" "B: the table stays at its bound"
assert_eq 5 "$(val bm2 "$(series nodus_requests_total "$FRONT" "$B_ID" web 200 mutual_tls mesh)")" \
    "B: known principals keep their series"
grep -q "$EXTRA" bm2 && die "a principal beyond the table is named in the metrics"
assert_eq 1 "$(grep -c 'metrics: the principal table is full (3, metrics { principals })' "$blog")" \
    "the full table is logged once"
promcheck bm2

# 5. /config_dump shows the bound; a reload that changes it says it needs a restart
curl -sS "http://127.0.0.1:$badmin/config_dump" |
    python3 -c 'import json, sys; assert json.load(sys.stdin)["metrics"] == {"principals": 3}' ||
    die "config_dump does not show metrics.principals = 3"
sed -i 's/principals = 3/principals = 64/' b.lua
assert_eq 200 "$(http_status "http://127.0.0.1:$badmin/reload" -X POST)" "reload of node b"
grep -q 'reload: metrics.principals takes effect at restart only (3 in use)' "$blog" ||
    die "no warning for a changed metrics.principals"
tls_get front 1 >/dev/null || die "curl after the reload failed"
scrape "$badmin" bm3
assert_eq 6 "$(val bm3 "$(series nodus_requests_total "$FRONT" "$B_ID" web 200 mutual_tls mesh)")" \
    "B: the frontend's series after the reload"
# 6. TCP proxying, A -> B over mTLS: one connection that stays open past a report (5 s) while it
# carries 3 requests, then closes
tcp_series() { # METRIC NODE LISTENER CLUSTER [SRC DST]
    local pr=""
    [ -n "${5:-}" ] && pr=",source_principal=\"$5\",destination_principal=\"$6\""
    printf '%s{reporter="source",source_workload="%s"%s,destination_service="%s",destination_cluster="%s",request_protocol="tcp",connection_security_policy="%s",listener="%s"}' \
        "$1" "$2" "$pr" "$4" "$4" "$( [ "$3" = db ] && echo mutual_tls || echo none)" "$3"
}
python3 - "$atcp" >tcp.out <<'PY' &
import socket, sys, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=10)
f = s.makefile("rb")
def get(path):
    s.sendall(b"GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % path.encode())
    n = 0
    while True:
        l = f.readline()
        if l.lower().startswith(b"content-length:"):
            n = int(l.split(b":")[1])
        if l in (b"\r\n", b""):
            break
    return f.read(n)
print(get("/t/1").decode().strip())
time.sleep(6)
print(get("/t/2").decode().strip())
time.sleep(4)
print(get("/t/3").decode().strip())
s.close()
PY
tcppid=$!
sleep 8 # past B's first report, before the close
scrape "$badmin" bt1
open_b=$(val bt1 "$(tcp_series nodus_tcp_connections_opened_total node-b db web "$A_ID" "$B_ID")")
assert_eq 1 "$open_b" "B: the open TCP connection, from A to B"
assert_eq 0 "$(val bt1 "$(tcp_series nodus_tcp_connections_closed_total node-b db web "$A_ID" "$B_ID")")" \
    "B: not closed yet"
sent_open=$(val bt1 "$(tcp_series istio_tcp_sent_bytes_total node-b db web)")
[ "$sent_open" != absent ] && [ "$sent_open" -gt 0 ] ||
    die "B: no bytes reported while the connection is open ($sent_open)"
wait "$tcppid" || die "the TCP client failed"
assert_eq 3 "$(grep -c behind-b tcp.out)" "answers over the TCP hop"
scrape_until "$badmin" bt2 "$(tcp_series nodus_tcp_connections_closed_total node-b db web "$A_ID" "$B_ID")" 1
assert_eq 1 "$(val bt2 "$(tcp_series nodus_tcp_connections_closed_total node-b db web "$A_ID" "$B_ID")")" \
    "B: the TCP connection counted as closed"
sent_b=$(val bt2 "$(tcp_series nodus_tcp_sent_bytes_total node-b db web "$A_ID" "$B_ID")")
[ "$sent_b" -gt "$sent_open" ] || die "B: bytes after the report not counted ($sent_open -> $sent_b)"
assert_eq "$sent_b" "$(val bt2 "$(tcp_series istio_tcp_sent_bytes_total node-b db web)")" \
    "B: istio_tcp_sent_bytes_total (mutual_tls) equals the principal series"
# A closes its side after B has seen the FIN and answered with its own: wait for it too
scrape_until "$aadmin" at2 "$(tcp_series nodus_tcp_connections_closed_total node-a tin bdb "$A_ID" "$B_ID")" 1
assert_eq 1 "$(val at2 "$(tcp_series nodus_tcp_connections_closed_total node-a tin bdb "$A_ID" "$B_ID")")" \
    "A: the outbound TCP connection, source A, destination B (verified)"
assert_eq "$sent_b" "$(val at2 "$(tcp_series nodus_tcp_sent_bytes_total node-a tin bdb "$A_ID" "$B_ID")")" \
    "A: bytes sent to its client, as many as B sent to A"
promcheck bt2
promcheck at2

pass "principals in the metrics: curl and node A over mTLS, plaintext unknown, overflow to other, TCP over mTLS, promtool"
