#!/usr/bin/env bash
# The HTTP/1.1 proxy against real peers: curl, raw sockets, nginx upstream, wrk.
# Bad input (garbage, long URI, too many headers, CL+TE smuggling, slowloris) gets the right status
# while other clients keep being served; chunked uploads, HTTP/1.0, X-Forwarded-For;
# an upstream that is down answers 503 UF; a reload under load fails no request; SIGTERM drains.
# shellcheck disable=SC1091
. "$(dirname "$0")/lib.sh"

need_cmd curl nginx python3 wrk

up_port=$(free_port)
dead_port=$(free_port)
port=$(free_port)
admin=$(free_port)
start_nginx_upstream "$up_port" "up"

cfg=$(write_file http.lua <<LUA
node { name = "http-test", workers = 2, drain_timeout = "3s" }
admin { listen = "$NODE_IP:$admin" }
cluster "up" { endpoints = { "$PEER_IP:$up_port" }, lb = "least_request" }
cluster "dead" { endpoints = { "$PEER_IP:$dead_port" }, connect_timeout = "500ms" }
listener "ingress" {
  listen = "$NODE_IP:$port", protocol = "http",
  request_header_timeout = "1s", max_uri = 1024, max_headers = 20,
  plugins = {
    router {
      { match = { prefix = "/dead" }, cluster = "dead" },
      { match = { prefix = "/none" }, direct_response = { status = 204 } },
      { match = { prefix = "/" }, cluster = "up" },
    },
  },
}
LUA
)
start_nodus "$cfg"
wait_http "http://$NODE_IP:$admin/ready" 15 || die "nodus not ready"

# raw REQUEST-FILE: sends the bytes, prints what came back (status lines only)
raw() {
    python3 - "$port" "$1" <<'PY'
import os, socket, sys, time
s = socket.create_connection((os.environ["NODE_IP"], int(sys.argv[1])), timeout=5)
s.sendall(open(sys.argv[2], "rb").read())
data = b""
try:
    while True:
        b = s.recv(65536)
        if not b:
            break
        data += b
except socket.timeout:
    pass
print(" ".join(l.split(b" ")[1].decode() for l in data.split(b"\r\n") if l.startswith(b"HTTP/1.")))
PY
}

printf 'GARBAGE\r\n\r\n' >"$T/r1"
assert_eq 400 "$(raw "$T/r1")" "garbage request line"
printf 'GET /%s HTTP/1.1\r\nHost: x\r\n\r\n' "$(head -c 2000 /dev/zero | tr '\0' a)" >"$T/r2"
assert_eq 414 "$(raw "$T/r2")" "URI longer than max_uri"
{ printf 'GET / HTTP/1.1\r\nHost: x\r\n'; for i in $(seq 30); do printf 'X-H%d: v\r\n' "$i"; done; printf '\r\n'; } >"$T/r3"
assert_eq 431 "$(raw "$T/r3")" "more headers than max_headers"
printf 'POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n' >"$T/r4"
assert_eq 400 "$(raw "$T/r4")" "Content-Length with Transfer-Encoding (smuggling)"
printf 'GET /old HTTP/1.0\r\n\r\n' >"$T/r6"
assert_eq 200 "$(raw "$T/r6")" "HTTP/1.0 client"
printf 'POST /up HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n5\r\nhello\r\n0\r\n\r\n' >"$T/r7"
assert_eq 200 "$(raw "$T/r7")" "chunked request body"
printf 'POST /up HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\nzz\r\nhello\r\n' >"$T/r8"
assert_eq 400 "$(raw "$T/r8")" "bad chunk size"


# X-Forwarded-For: appended; X-Forwarded-Proto set
xff=$(curl -s -D - -o /dev/null -H 'X-Forwarded-For: 203.0.113.9' "http://$NODE_IP:$port/x" |
    tr -d '\r' | awk -F': ' 'tolower($1) == "x-seen-xff" { print $2 }')
assert_eq "203.0.113.9, $PEER_IP" "$xff" "X-Forwarded-For appended"

# local answers and an upstream that is down
assert_eq 204 "$(http_status "http://$NODE_IP:$port/none")" "direct response"
assert_eq 503 "$(http_status "http://$NODE_IP:$port/dead")" "upstream down"
# (into a file first: with pipefail, `curl | grep -q` fails when grep stops reading early)
curl -s -o "$T/metrics" "http://$NODE_IP:$admin/stats/prometheus"
grep -q 'destination_service="dead".*response_code="503",response_flags="UF"' "$T/metrics" ||
    die "503 to the dead cluster not counted with response_flags UF"

# slowloris: a client that never finishes its head gets 408 after 1 s; others are served meanwhile
python3 - "$port" >"$T/slow" <<'PY' &
import os, socket, sys, time
s = socket.create_connection((os.environ["NODE_IP"], int(sys.argv[1])), timeout=5)
s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")
t = time.time()
data = s.recv(4096)
print(data.split(b" ")[1].decode(), round(time.time() - t))
PY
slow=$!
sleep 0.3
assert_eq 200 "$(http_status "http://$NODE_IP:$port/meanwhile")" "served during a slowloris"
wait "$slow" || die "slowloris client failed"
assert_eq "408 1" "$(cat "$T/slow")" "header timeout answered 408 after 1 s"

# reload under load: 3 SIGHUPs during 4 s of wrk; no request may fail
wrk -t2 -c20 -d4s "http://$NODE_IP:$port/load" >"$T/wrk" 2>&1 &
wrkpid=$!
for i in 1 2 3; do sleep 1; kill -HUP "$NODUS_PID"; done
wait "$wrkpid" || die "wrk failed"
cat "$T/wrk" >&2
grep -q "Non-2xx" "$T/wrk" && die "non-2xx answers during reload"
grep -q "Socket errors" "$T/wrk" && die "socket errors during reload"
reqs=$(awk '/requests in/ { print $1 }' "$T/wrk")
[ "${reqs:-0}" -gt 1000 ] || die "too few requests under load: $reqs"
assert_eq 3 "$(grep -c "configuration reloaded" "$NODUS_LOG")" "reloads in the log"

# a bad config is refused by reload, the node keeps serving
sed -i 's/cluster = "up" }/cluster = "nope" }/' "$cfg"
code=$(curl -s -o "$T/reload" -w '%{http_code}' -X POST "http://$NODE_IP:$admin/reload")
assert_eq 500 "$code" "reload of a bad config refused"
assert_contains "$(cat "$T/reload")" "nope" "reload error names the problem"
assert_eq 200 "$(http_status "http://$NODE_IP:$port/still")" "old config still serving"

# SIGTERM drains and exits 0
kill -TERM "$NODUS_PID"
for i in $(seq 50); do kill -0 "$NODUS_PID" 2>/dev/null || break; sleep 0.1; done
kill -0 "$NODUS_PID" 2>/dev/null && die "nodus did not exit within 5 s of SIGTERM"
wait "$NODUS_PID" 2>/dev/null; rc=$?
assert_eq 0 "$rc" "exit status after SIGTERM"
pass "bad input, bodies, timeouts, reload under load, drain"
