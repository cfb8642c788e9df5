#!/usr/bin/env bash
# Two nodus nodes with mutual TLS between them, as a mesh runs: a client speaks plain HTTP to
# node A; A's cluster "b" has tls = "mutual" and reaches node B's strict mtls listener, which
# proxies to nginx. B sees A's SPIFFE id; A verifies B's against `expect`; an `expect` that B's
# certificate does not satisfy fails as a connect failure (503 UF) and is logged; keep-alive
# upstream TLS connections are reused; a config with tls but no identity is refused.
# shellcheck disable=SC1091
. "$(dirname "$0")/lib.sh"

need_cmd curl openssl
up=$(free_port)
aport=$(free_port)
bport=$(free_port)
aadmin=$(free_port)
badmin=$(free_port)
start_nginx_upstream "$up" "behind-b"

cd "$T"
"$NODUS" ca init ca --trust-domain mesh.local >/dev/null
"$NODUS" ca issue ca --id spiffe://mesh.local/ns/edge/sa/node-a --out a >/dev/null
"$NODUS" ca issue ca --id spiffe://mesh.local/ns/prod/sa/node-b --out b >/dev/null

cat >b.lua <<LUA
node { name = "node-b", workers = 2 }
identity { ca = "ca/ca.pem", cert = "b.pem", key = "b.key" }
admin { listen = "127.0.0.1:$badmin" }
cluster "web" { endpoints = { "127.0.0.1:$up" } }
listener "mesh" {
  listen = "127.0.0.1:$bport",
  plugins = {
    mtls { mode = "strict", allow = { "spiffe://mesh.local/ns/edge/*" }, log_peers = true },
    router { { match = { prefix = "/" }, cluster = "web" } },
  },
}
LUA
cat >a.lua <<LUA
node { name = "node-a", workers = 2 }
identity { ca = "ca/ca.pem", cert = "a.pem", key = "a.key" }
admin { listen = "127.0.0.1:$aadmin" }
cluster "b" { endpoints = { "127.0.0.1:$bport" }, tls = "mutual",
              expect = { "spiffe://mesh.local/ns/prod/sa/node-b" } }
cluster "b-wrong" { endpoints = { "127.0.0.1:$bport" }, tls = "mutual",
                    expect = { "spiffe://mesh.local/ns/prod/sa/someone-else" } }
listener "in" {
  listen = "127.0.0.1:$aport",
  plugins = { router {
    { match = { prefix = "/wrong" }, cluster = "b-wrong" },
    { match = { prefix = "/" }, cluster = "b" },
  } },
}
LUA
"$NODUS" check b.lua >/dev/null || die "b.lua refused"
"$NODUS" check a.lua >/dev/null || die "a.lua refused"
start_nodus b.lua
bpid=$NODUS_PID
blog=$NODUS_LOG
wait_http "http://127.0.0.1:$badmin/ready" 15 || die "node b not ready"
start_nodus a.lua
wait_http "http://127.0.0.1:$aadmin/ready" 15 || die "node a not ready"

# through A to B over mTLS, 20 requests on one client connection
out=$(curl -sS --max-time 10 "http://127.0.0.1:$aport/x/[1-20]") || die "curl through a -> b failed"
assert_eq 20 "$(grep -c behind-b <<<"$out")" "answers from behind node b"
grep -q "is spiffe://mesh.local/ns/edge/sa/node-a (TLSv1.3" "$blog" ||
    die "node b did not see node a's identity: $(tail -5 "$blog")"
curl -s -o "$T/bm0" "http://127.0.0.1:$badmin/stats/prometheus"
grep -q 'destination_cluster="web",.*response_code="200",response_flags="-",connection_security_policy="mutual_tls"' "$T/bm0" ||
    die "node b does not count the requests as mutual_tls"
# B's plain port refuses plaintext (A is the only way in)
code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 "http://127.0.0.1:$bport/" || true)
assert_eq 000 "$code" "plaintext to node b's strict listener"
# upstream TLS connections are pooled: far fewer handshakes than requests
curl -s -o "$T/bm" "http://127.0.0.1:$badmin/stats/prometheus"
hs=$(awk '$1 == "nodus_plugin_mtls_handshakes_total" { print $2 }' "$T/bm")
[ "${hs:-0}" -ge 1 ] && [ "${hs:-0}" -le 6 ] || die "handshakes on node b: ${hs:-none} for 20 requests"

# a server identity outside `expect`: 503 UF, logged on node a
assert_eq 503 "$(http_status "http://127.0.0.1:$aport/wrong")" "upstream with an unexpected identity"
curl -s -o "$T/am" "http://127.0.0.1:$aadmin/stats/prometheus"
grep -q 'destination_cluster="b-wrong",.*response_code="503",response_flags="UF"' "$T/am" ||
    die "503 UF not counted for b-wrong"
grep -q 'cluster b-wrong: TLS to 127.0.0.1' "$NODUS_LOG" || die "TLS failure to b-wrong not logged"

# tls without an identity is a configuration error
grep -v '^identity' a.lua >noid.lua
"$NODUS" check noid.lua >out 2>&1 && die "tls = mutual without identity accepted"
assert_contains "$(cat out)" 'cluster "b": tls = "mutual" needs the node identity'
kill -0 "$bpid" || die "node b exited"
pass "two nodes over mutual TLS: identities both ways, expect enforced, pooled TLS connections"
