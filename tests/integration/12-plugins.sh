#!/usr/bin/env bash
# Plugins as users configure them: the built-in reference plugin `headers` in an HTTP listener
# (request and response edits, every HTTP and stream hook run, its counters exact) and as a stream
# plugin of a TCP listener (3 MB both ways intact through its data_in/data_out), its
# first_byte_timeout (a stream deadline: the timeout hook) and shutdown hook; an out-of-tree
# .so plugin loaded from node { plugins } (its hooks, and its control tick on the main thread:
# plugin ABI 3); a .so built for another ABI refused with a clear error.
# shellcheck disable=SC1091
. "$(dirname "$0")/lib.sh"

need_cmd curl python3 sha256sum
so=$BUILD_DIR/tests/sample_plugin.so
bad=$BUILD_DIR/tests/sample_badabi.so
[ -f "$so" ] && [ -f "$bad" ] || skip "sample plugins not built (meson -Dtests=true)"

peer=$(free_port)
port=$(free_port)
tport=$(free_port)
gport=$(free_port)
admin=$(free_port)
start_peer_upstream "$peer"

cfg=$(write_file plugins.lua <<LUA
node { name = "plugins", workers = 2, plugins = { "$so" }, access_log = "$T/access.log" }
admin { listen = "$NODE_IP:$admin" }
cluster "peer" { endpoints = { "$PEER_IP:$peer" } }
listener "web" {
  listen = "$NODE_IP:$port", protocol = "http",
  plugins = {
    headers {
      request_set = { ["x-from-nodus"] = "yes" }, request_remove = { "x-secret" },
      response_set = { ["x-edited"] = "1" }, response_remove = { "server" },
    },
    sample { value = "hello" },
    router { { match = { prefix = "/" }, cluster = "peer" } },
  },
}
listener "raw" {
  listen = "$NODE_IP:$tport", protocol = "tcp", cluster = "peer",
  plugins = { headers { } },
}
listener "guarded" {
  listen = "$NODE_IP:$gport", protocol = "http",
  plugins = { headers { first_byte_timeout = "300ms" },
              router { { match = { prefix = "/" }, cluster = "peer" } } },
}
LUA
)
"$NODUS" check "$cfg" >/dev/null || die "config refused"
touch "$T/access.log"
_BG_LOGS+=("$T/access.log") # shown if the test fails
start_nodus "$cfg"
wait_http "http://$NODE_IP:$admin/ready" 15 || die "nodus not ready"

# HTTP: edits in both directions (the upstream answers the body's size and hash of a POST)
curl -sS -D "$T/h" -o "$T/b" --max-time 5 -H 'X-Secret: s3' -d 'hi' "http://$NODE_IP:$port/echo"
tr -d '\r' <"$T/h" >"$T/hh"
grep -qi '^x-edited: 1$' "$T/hh" || die "response_set not applied: $(cat "$T/hh")"
grep -qi '^x-sample: hello$' "$T/hh" || die ".so plugin's header missing: $(cat "$T/hh")"
grep -qi '^server:' "$T/hh" && die "response_remove did not remove Server"
assert_eq "2 $(printf hi | sha256sum | cut -d' ' -f1)" "$(cat "$T/b")" "request body through the chain"

# TCP through the stream hooks: a 3 MB POST written raw, answered with its hash
head -c 3000000 /dev/urandom >"$T/blob"
want="3000000 $(sha256sum "$T/blob" | cut -d' ' -f1)"
got=$(curl -sS --max-time 10 --data-binary @"$T/blob" -H 'Expect:' "http://$NODE_IP:$tport/up")
assert_eq "$want" "$got" "3 MB through the TCP listener's stream plugin"
curl -sS --max-time 10 -o "$T/dl" "http://$NODE_IP:$tport/bytes/3000000"
assert_eq 3000000 "$(stat -c %s "$T/dl")" "3 MB download through the stream plugin"

sleep 0.3
curl -s -o "$T/m" "http://$NODE_IP:$admin/stats/prometheus"
metric() { awk -v n="$1" '$1 == n { print $2 }' "$T/m"; }
assert_eq 1 "$(metric nodus_plugin_sample_requests_total)" ".so plugin counted the request"
# its control side (ABI 3): a tick every 100 ms on the main thread, counted from there
ticks=$(metric nodus_plugin_sample_ticks_total)
[ "${ticks:-0}" -ge 3 ] || die ".so plugin's control ticks: '$ticks'"
assert_eq 1 "$(metric nodus_plugin_headers_requests_total)" "headers: request hooks"
assert_eq 3 "$(metric nodus_plugin_headers_connections_total)" "headers: connect hook per connection"
assert_eq 3 "$(metric nodus_plugin_headers_closes_total)" "headers: close hook per connection"
in=$(metric nodus_plugin_headers_stream_bytes_in_total)
[ "${in:-0}" -gt 3000000 ] || die "stream bytes in: $in"
out=$(metric nodus_plugin_headers_stream_bytes_out_total)
[ "${out:-0}" -gt 3000000 ] || die "stream bytes out: $out"
assert_eq 0 "$(metric nodus_stream_errors_total)" "stream errors"
assert_eq 0 "$(metric nodus_plugin_headers_worker_mismatch_total)" "hooks ran with the right worker state"

# ABI 2 stream hooks. first_byte_timeout (a stream deadline): a silent client is closed by the
# node after 300 ms, counted and logged; a client that speaks in time is served, even slowly after
# its first bytes. shutdown: the node ends a connection after an answer with Connection: close.
python3 - "$gport" >"$T/silent" <<'PY'
import os, socket, sys, time
s = socket.create_connection((os.environ["NODE_IP"], int(sys.argv[1])))
s.settimeout(5)
t = time.monotonic()
got = s.recv(1)  # b"" when the node closes
print(len(got), round((time.monotonic() - t) * 1000))
PY
read -r n ms <"$T/silent"
assert_eq 0 "$n" "a silent client gets nothing but the close"
[ "$ms" -ge 250 ] && [ "$ms" -lt 2000 ] || die "silent client closed after $ms ms, not about 300"
python3 - "$gport" >"$T/slow" <<'PY'
import os, socket, sys, time
s = socket.create_connection((os.environ["NODE_IP"], int(sys.argv[1])))
s.settimeout(5)
s.sendall(b"GET /slow HTTP/1.1\r\n")  # the first bytes in time, the rest after the deadline
time.sleep(0.6)
s.sendall(b"Host: g\r\nConnection: close\r\n\r\n")
data = b""
while True:
    b = s.recv(65536)
    if not b:
        break
    data += b
print(data.split(b"\r\n")[0].decode())
PY
assert_eq "HTTP/1.1 200 OK" "$(cat "$T/slow")" "a client that spoke in time"
sleep 0.3
curl -s -o "$T/m2" "http://$NODE_IP:$admin/stats/prometheus"
metric2() { awk -v n="$1" '$1 == n { print $2 }' "$T/m2"; }
assert_eq 1 "$(metric2 nodus_plugin_headers_first_byte_timeouts_total)" "first byte timeouts"
assert_eq 1 "$(metric2 nodus_stream_timeouts_total)" "the core counted the timeout"
[ "$(metric2 nodus_plugin_headers_shutdowns_total)" -ge 1 ] ||
    die "no shutdown hook for an answer with Connection: close"
grep -q "headers: closed $PEER_IP: nothing within first_byte_timeout (300 ms; 1 such" "$NODUS_LOG" ||
    die "first byte timeout not logged"
sed 's/first_byte_timeout = "300ms"/first_byte_timeout = "2h"/' "$cfg" >"$T/fbt.lua"
"$NODUS" check "$T/fbt.lua" >"$T/fbt" 2>&1 && die "a first_byte_timeout of 2h was accepted"
assert_contains "$(cat "$T/fbt")" "'first_byte_timeout' must be between 1ms and 1h" "refusal"

# a .so built for another ABI is refused, with the file and both versions named
sed "s|$so|$bad|" "$cfg" >"$T/bad.lua"
if "$NODUS" check "$T/bad.lua" >"$T/check" 2>&1; then die "a plugin of ABI 999 was accepted"; fi
assert_contains "$(cat "$T/check")" "sample_badabi.so: plugin ABI 999, this nodus has ABI" "refusal"
pass "headers and .so plugins, HTTP and stream hooks (deadline, timeout, shutdown), ABI check"
