#!/usr/bin/env bash
# Bodies both ways, and peers that misbehave, against a real upstream that reads what it is sent
# (tests/peers/upstream.py) and nginx (which answers before reading a body):
# uploads with Content-Length, chunked and Expect: 100-continue arrive intact (sha256 at both
# ends); an answer in the same read as a 100 Continue before it arrives intact; downloads framed by
# length, chunks and close arrive intact; pipelined requests are all
# answered in order; an answer sent before the upload ended reaches the client; a client that
# leaves mid-body, an upstream that resets mid-response and one that never answers are each
# handled (504 UT after the route timeout), counted, and the node keeps serving.
# shellcheck disable=SC1091
. "$(dirname "$0")/lib.sh"

need_cmd curl nginx python3 sha256sum

peer=$(free_port)
ngx=$(free_port)
port=$(free_port)
admin=$(free_port)
start_peer_upstream "$peer"
start_nginx_upstream "$ngx" "early"

cfg=$(write_file bodies.lua <<LUA
node { name = "bodies", workers = 2 }
admin { listen = "$NODE_IP:$admin" }
cluster "peer" { endpoints = { "$PEER_IP:$peer" } }
cluster "nginx" { endpoints = { "$PEER_IP:$ngx" } }
listener "ingress" {
  listen = "$NODE_IP:$port", protocol = "http",
  plugins = {
    router {
      { match = { prefix = "/early" }, cluster = "nginx" },
      { match = { prefix = "/hang" }, cluster = "peer", timeout = "700ms" },
      { match = { prefix = "/" }, cluster = "peer" },
    },
  },
}
LUA
)
start_nodus "$cfg"
wait_http "http://$NODE_IP:$admin/ready" 15 || die "nodus not ready"
url="http://$NODE_IP:$port"

head -c $((3 * 1024 * 1024 + 17)) /dev/urandom >"$T/blob"
want="$(stat -c %s "$T/blob") $(sha256sum "$T/blob" | cut -d' ' -f1)"

# uploads: Content-Length, chunked (from stdin), Expect: 100-continue
got=$(curl -sS --max-time 20 --data-binary @"$T/blob" -H 'Expect:' "$url/up")
assert_eq "$want" "$got" "Content-Length upload"
got=$(curl -sS --max-time 20 -T - -H 'Transfer-Encoding: chunked' "$url/up" <"$T/blob")
assert_eq "$want" "$got" "chunked upload"
start=$EPOCHREALTIME
got=$(curl -sS --max-time 20 --expect100-timeout 10 --data-binary @"$T/blob" \
    -H 'Expect: 100-continue' "$url/up")
assert_eq "$want" "$got" "upload with Expect: 100-continue"
# the 100 came from nodus at once, not after curl gave up waiting for it (10 s)
awk -v a="$start" -v b="$EPOCHREALTIME" 'BEGIN { exit !(b - a < 5) }' ||
    die "Expect: 100-continue was not answered (curl waited for its timeout)"

# an interim answer and the final one in one segment: the final head reaches the client intact
got=$(curl -sS -i --max-time 5 "$url/interim")
assert_contains "$got" "X-After-Interim: yes" "the answer after a 100 Continue in the same read"
assert_contains "$got" $'\r\n\r\nok' "the answer's body after a 100 Continue in the same read"

# downloads: length-framed, chunked, close-delimited
for path in bytes/5000000 chunked/2000000; do
    n=${path#*/}
    curl -sS --max-time 20 -o "$T/dl" "$url/$path"
    python3 -c 'import sys; p = bytes(range(256)) * 64
d = open(sys.argv[1], "rb").read(); n = int(sys.argv[2])
sys.exit(len(d) != n or any(d[i:i + len(p)] != p[:min(len(p), n - i)] for i in range(0, n, len(p))))' \
        "$T/dl" "$n" || die "download /$path corrupted or short"
done
assert_eq "until the end" "$(curl -sS --max-time 5 "$url/close")" "close-delimited response body"

# pipelining: three requests in one write, three answers in order
python3 - "$port" >"$T/pipe" <<'PY'
import os, re, socket, sys
s = socket.create_connection((os.environ["NODE_IP"], int(sys.argv[1])), timeout=5)
s.sendall(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n"
          b"POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"
          b"GET /c HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
data = b""
while True:
    b = s.recv(65536)
    if not b:
        break
    data += b
print(" ".join(m.decode() for m in re.findall(rb"HTTP/1\.1 (\d{3})", data)),
      "|", data.count(b"ok\n"), int(b"5 2cf24dba" in data))
PY
assert_eq "200 200 200 | 2 1" "$(cat "$T/pipe")" "pipelined requests answered in order"

# an answer that does not wait for the upload (nginx `return`) reaches the client intact
head -c $((8 * 1024 * 1024)) /dev/zero >"$T/zeros"
got=$(curl -sS --max-time 20 --data-binary @"$T/zeros" -H 'Expect:' "$url/early") ||
    die "client lost the early answer (curl exit $?)"
assert_eq "early" "$got" "early answer to an upload"

# a client that leaves mid-body: counted as a downstream reset, the node keeps serving
python3 - "$port" <<'PY'
import os, socket, sys
s = socket.create_connection((os.environ["NODE_IP"], int(sys.argv[1])), timeout=5)
s.sendall(b"POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n" + b"x" * 1000)
s.close()
PY
# an upstream that resets mid-response: the client sees a short body and a closed connection
code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 "$url/reset" || true)
assert_eq 200 "$code" "status of a response cut by an upstream reset"
# an upstream that never answers: 504 after the route's timeout
start=$EPOCHREALTIME
assert_eq 504 "$(http_status "$url/hang")" "upstream that never answers"
awk -v a="$start" -v b="$EPOCHREALTIME" 'BEGIN { exit !(b - a > 0.6 && b - a < 3) }' ||
    die "504 did not come after the 700 ms route timeout"
assert_eq 200 "$(http_status "$url/still")" "served after the bad peers"

sleep 0.3
curl -s -o "$T/metrics" "http://$NODE_IP:$admin/stats/prometheus"
grep -q 'response_code="504",response_flags="UT"' "$T/metrics" || die "504 not counted with UT"
grep -q 'response_flags="UC"' "$T/metrics" || die "upstream reset mid-response not counted with UC"
grep -Eq '^nodus_downstream_resets_total [1-9]' "$T/metrics" || die "client gone mid-body not counted"
grep -Eq '^nodus_upstream_resets_total [1-9]' "$T/metrics" || die "upstream reset not counted"
pass "uploads, downloads, 100-continue, pipelining, early answers, resets, timeouts"
