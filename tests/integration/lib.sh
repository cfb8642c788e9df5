# shellcheck shell=bash
# Helpers for nodus integration tests. Source it first thing:
#
#   #!/usr/bin/env bash
#   . "$(dirname "$0")/lib.sh"
#
# It turns on `set -euo pipefail`, makes a scratch directory $T (removed at exit), and runs the
# cleanup registry on exit, however the test ends (pass, die, failed command, SIGTERM from the
# runner's timeout): processes it started are stopped, namespaces deleted.
#
# Exit codes: 0 pass, 77 skip, anything else fail (see tests/run).
#
#   die MSG                 fail: print MSG (and the tail of the logs of started processes), exit 1
#   pass [MSG]              print PASS and exit 0
#   skip REASON             print SKIP: REASON and exit 77
#   need_cmd CMD...         skip unless every CMD is installed
#   need_root               skip unless root
#   cleanup CMD [ARGS...]   run CMD ARGS... at exit (last registered runs first)
#   bg NAME CMD...          start CMD in the background, output to $T/NAME.log; sets BG_PID;
#                           stopped at exit (SIGTERM, then SIGKILL after 5 s)
#   stop_pid PID [SECS]     SIGTERM PID, wait up to SECS (5), then SIGKILL; true if it was running
#   start_nodus CONFIG [ARGS...]  "$NODUS run CONFIG ARGS..." in the background; sets NODUS_PID
#                           and NODUS_LOG (set IN_NETNS=NS to run it inside a network namespace;
#                           with NODUS_IO=dpdk the config is turned into a DPDK one: see below)
#   start_nginx_upstream PORT BODY [ADDR]  nginx-light answering 200 "BODY\n" on every path of
#                           ADDR:PORT (ADDR defaults to $PEER_IP, may be IPv6: ::1 or [::1],
#                           shown bracketed in X-Upstream; IN_NETNS=NS to run it in a
#                           namespace); response headers echo the request: X-Seen-Uri,
#                           X-Seen-Method, X-Seen-Host, X-Seen-Xff, X-Seen-Xfp, X-Seen-Request-Id,
#                           X-Seen-Traceparent, X-Seen-Xfcc, X-Seen-Content-Length,
#                           X-Seen-User, X-Upstream (ADDR:PORT); waits until it answers; sets UPSTREAM_PID
#   write_file NAME         write stdin to $T/NAME and print the path
#   free_port               print an unused TCP+UDP port of 127.0.0.1 in 20000-40000
#   wait_http URL [SECS]    wait (10 s) until URL answers 200; fails early if nodus died
#   http_status URL [CURL ARGS...]  print the status code (000 when there is no answer)
#   assert_eq EXPECTED ACTUAL [MSG]
#   assert_contains HAYSTACK NEEDLE [MSG]
#   netns_topology PFX [raw] build the tests/lib/netns.sh topology, deleted at exit
#   netns_prefix            print a prefix unique to this test run (for netns_topology)
#
# Environment: NODUS (the binary; default build/nodus), BUILD_DIR, KEEP_TMP=1 keeps $T.
#
# The same test on both backends: a test that writes $NODE_IP where clients reach nodus (its
# listeners and admin) and $PEER_IP for the addresses of its clients and upstreams (both
# 127.0.0.1 by default) also runs on io = "dpdk" when 49-dpdk-foundation runs it inside the cli
# namespace of a raw topology with NODUS_IO=dpdk, NODUS_DPDK_NS=<mid namespace>, NODE_IP and
# PEER_IP set: start_nodus then adds io = "dpdk" to the config's node { } and a dpdk { } block
# owning the veth m0 (in place, so later edits and reloads of the file keep them), and runs
# nodus in NODUS_DPDK_NS. Upstreams run beside the clients: every request crosses the
# user-space TCP twice.

set -euo pipefail
# A command that fails outside a condition ends the test with its line, not silently.
trap '_rc=$?; trap - ERR; die "line $LINENO: \"$BASH_COMMAND\" failed (exit $_rc)"' ERR

LIB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$LIB_DIR/../.." && pwd)
TEST_NAME=$(basename "$0" .sh)
NODUS=${NODUS:-$ROOT/build/nodus}
case "$NODUS" in /*) ;; *) NODUS=$PWD/$NODUS ;; esac
export NODUS
BUILD_DIR=${BUILD_DIR:-$(dirname "$NODUS")}
NODE_IP=${NODE_IP:-127.0.0.1}
PEER_IP=${PEER_IP:-127.0.0.1}
NODUS_IO=${NODUS_IO:-posix}
export NODE_IP PEER_IP
case "$BUILD_DIR" in /*) ;; *) BUILD_DIR=$PWD/$BUILD_DIR ;; esac
# shellcheck disable=SC1091
. "$ROOT/tests/lib/netns.sh"

T=$(mktemp -d "/tmp/nodus-it-$TEST_NAME.XXXXXX")
_CLEANUPS=()
_BG_LOGS=()
_FINISHED=0
NODUS_PID=""
NODUS_LOG=""
UPSTREAM_PID=""
BG_PID=""

log() { echo "[$TEST_NAME] $*" >&2; }

cleanup() { _CLEANUPS+=("$(printf '%q ' "$@")"); }

_run_cleanups() {
    local rc=$? i
    set +e
    trap - EXIT INT TERM HUP
    for ((i = ${#_CLEANUPS[@]} - 1; i >= 0; i--)); do
        eval "${_CLEANUPS[$i]}" >/dev/null 2>&1
    done
    if [ "${KEEP_TMP:-0}" = 1 ]; then
        log "kept $T"
    else
        rm -rf "$T"
    fi
    exit "$rc"
}
trap _run_cleanups EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

_show_logs() {
    local f
    for f in "${_BG_LOGS[@]}"; do
        [ -s "$f" ] || continue
        echo "---- tail of $(basename "$f") ----" >&2
        tail -n 25 "$f" >&2
    done
}

die() {
    echo "FAIL: $TEST_NAME: $*" >&2
    _show_logs
    exit 1
}

pass() {
    echo "PASS: $TEST_NAME${1:+: $1}"
    exit 0
}

skip() {
    echo "SKIP: $TEST_NAME: $*"
    exit 77
}

need_cmd() {
    local c
    for c in "$@"; do
        command -v "$c" >/dev/null || skip "$c is not installed (scripts/deps.sh test)"
    done
}

need_root() { [ "$(id -u)" -eq 0 ] || skip "needs root"; }

stop_pid() { # PID [SECS]
    local pid=$1 secs=${2:-5} i
    kill -0 "$pid" 2>/dev/null || return 1
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < secs * 10; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    return 0
}

_in_netns() { # prefix a command with `ip netns exec $IN_NETNS` when set
    if [ -n "${IN_NETNS:-}" ]; then
        ip netns exec "$IN_NETNS" "$@"
    else
        "$@"
    fi
}

bg() { # NAME CMD...
    local name=$1
    shift
    local logf=$T/$name.log cmd=("$@")
    [ -e "$logf" ] && logf=$T/$name.$RANDOM.log
    # `ip netns exec` execs the command, so BG_PID is the command's own pid either way.
    [ -n "${IN_NETNS:-}" ] && cmd=(ip netns exec "$IN_NETNS" "$@")
    "${cmd[@]}" >"$logf" 2>&1 </dev/null &
    BG_PID=$!
    _BG_LOGS+=("$logf")
    cleanup stop_pid "$BG_PID"
}

# _dpdk_config CONFIG: io = "dpdk" in node { } and a dpdk { } block that owns m0 with $NODE_IP
# (the node's workers share the port: one receives and hands flows over)
_dpdk_config() {
    grep -q 'io = "dpdk"' "$1" && return 0
    grep -q '^node {' "$1" || die "NODUS_IO=dpdk: $1 has no node { } line to add io = \"dpdk\" to"
    sed -i '0,/^node {/s//node { io = "dpdk",/' "$1"
    cat >>"$1" <<LUA
dpdk {
  args = { "--no-huge", "-m", "256", "--no-pci", "--no-shconf", "-l", "0", "--log-level=notice" },
  ports = { { dev = "net_af_packet0,iface=m0", ip = "$NODE_IP/24" } },
}
LUA
}

start_nodus() { # CONFIG [ARGS...]
    local cfg=$1
    shift
    [ -x "$NODUS" ] || die "nodus binary not found at $NODUS (build it, or set NODUS)"
    [ -f "$cfg" ] || die "config $cfg does not exist"
    if [ "$NODUS_IO" = dpdk ]; then
        _dpdk_config "$cfg"
        # DPDK keeps some allocations until exit: leak reports there are not ours to fix
        ASAN_OPTIONS=${ASAN_OPTIONS:-}:detect_leaks=0 IN_NETNS=$NODUS_DPDK_NS bg nodus "$NODUS" run "$cfg" "$@"
    else
        bg nodus "$NODUS" run "$cfg" "$@"
    fi
    NODUS_PID=$BG_PID
    NODUS_LOG=${_BG_LOGS[${#_BG_LOGS[@]} - 1]}
    log "nodus started (pid $NODUS_PID, log $NODUS_LOG)"
}

write_file() { # NAME < content
    cat >"$T/$1"
    echo "$T/$1"
}

free_port() {
    local used port i
    used=$(ss -Htuan 2>/dev/null | awk '{ n = split($5, a, ":"); print a[n] }' | sort -u)
    touch "$T/.ports"
    for ((i = 0; i < 200; i++)); do
        port=$((20000 + RANDOM % 20001))
        grep -qx "$port" <<<"$used" && continue
        grep -qx "$port" "$T/.ports" && continue
        echo "$port" >>"$T/.ports"
        echo "$port"
        return 0
    done
    die "free_port: no free port found"
}

# start_nginx_upstream PORT BODY [ADDR]: nginx answering 200 "BODY\n" with X-Seen-* headers that
# echo the request; sets UPSTREAM_PID. In the namespace IN_NETNS when set. NGINX_FILES=DIR also
# serves DIR under /files/; NGINX_CONNS=N (default 1024) sizes it for N connections at once.
start_nginx_upstream() {
    local port=$1 body=$2 addr=${3:-$PEER_IP} conns=${NGINX_CONNS:-1024} dir i files=
    # an IPv6 address ("::1" or "[::1]") is bracketed in nginx's listen, X-Upstream and URLs
    case "$addr" in *:*) addr="[${addr#[}" && addr="${addr%]}]" ;; esac
    command -v nginx >/dev/null || skip "nginx is not installed (scripts/deps.sh test)"
    case "$body" in *'$'* | *\\* | *'"'* | *$'\n'*) die "start_nginx_upstream: BODY may not hold \$ \\ \" or newlines" ;; esac
    dir=$(mktemp -d "$T/nginx-$port.XXXX")
    mkdir -p "$dir/tmp"
    [ -n "${NGINX_FILES:-}" ] && files="location /files/ { alias ${NGINX_FILES%/}/; default_type application/octet-stream; }"
    cat >"$dir/nginx.conf" <<CONF
daemon off;
master_process off;
worker_processes 1;
worker_rlimit_nofile $((conns + 1024));
pid $dir/nginx.pid;
error_log $dir/error.log warn;
events { worker_connections $conns; }
http {
    access_log off;
    client_body_temp_path $dir/tmp/body;
    proxy_temp_path $dir/tmp/proxy;
    fastcgi_temp_path $dir/tmp/fastcgi;
    uwsgi_temp_path $dir/tmp/uwsgi;
    scgi_temp_path $dir/tmp/scgi;
    keepalive_requests 100000;
    client_max_body_size 0;
    default_type text/plain;
    server {
        listen $addr:$port backlog=$conns;
        $files
        location / {
            add_header X-Seen-Uri \$request_uri always;
            add_header X-Seen-Method \$request_method always;
            add_header X-Seen-Host \$http_host always;
            add_header X-Seen-Xff \$http_x_forwarded_for always;
            add_header X-Seen-Xfp \$http_x_forwarded_proto always;
            add_header X-Seen-Request-Id \$http_x_request_id always;
            add_header X-Seen-Traceparent \$http_traceparent always;
            add_header X-Seen-Xfcc \$http_x_forwarded_client_cert always;
            add_header X-Seen-Content-Length \$content_length always;
            add_header X-Seen-User \$http_x_user always;
            add_header X-Upstream $addr:$port always;
            return 200 "$body\n";
        }
    }
}
CONF
    bg "nginx-$port" nginx -p "$dir" -c "$dir/nginx.conf" -e "$dir/error.log"
    UPSTREAM_PID=$BG_PID
    _BG_LOGS+=("$dir/error.log")
    for ((i = 0; i < 50; i++)); do
        if [ "$(_in_netns curl -gs -o /dev/null -w '%{http_code}' --max-time 1 "http://$addr:$port/")" = 200 ]; then
            return 0
        fi
        kill -0 "$UPSTREAM_PID" 2>/dev/null || die "nginx upstream on $addr:$port exited"
        sleep 0.1
    done
    die "nginx upstream on $addr:$port did not answer within 5 s"
}

# start_dpdk_node CONFIG ADMIN [NS]: nodus with io = "dpdk" in the namespace $MID, until
# http://ADMIN/ready answers 200 from namespace NS (default $MID; the admin listener may be on the
# data path); sets NODUS_PID and NODUS_LOG. Skips the test when the EAL or a port cannot start
# here (nodus exits 3), unless DPDK_MUST_START=1 (a test that checked what its PMD needs);
# dies when nodus exits otherwise or is not ready within 15 s.
start_dpdk_node() {
    local cfg=$1 admin=$2 ns=${3:-$MID} i rc
    IN_NETNS=$MID start_nodus "$cfg"
    for ((i = 0; i < 150; i++)); do
        [ "$(ip netns exec "$ns" curl -s -o /dev/null -w '%{http_code}' --max-time 1 "http://$admin/ready" || true)" = 200 ] && return 0
        if ! kill -0 "$NODUS_PID" 2>/dev/null; then
            wait "$NODUS_PID" && rc=0 || rc=$?
            [ "$rc" = 3 ] && [ "${DPDK_MUST_START:-0}" != 1 ] &&
                skip "DPDK cannot start here: $(grep -m1 'dpdk:' "$NODUS_LOG")"
            die "nodus exited ($rc)"
        fi
        sleep 0.1
    done
    die "nodus not ready within 15 s"
}

# stop_node: SIGTERM to NODUS_PID; dies unless it stops within 10 s, with status 0 and "stopped"
# in its log.
stop_node() {
    local i
    kill -TERM "$NODUS_PID"
    for ((i = 0; i < 100; i++)); do kill -0 "$NODUS_PID" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$NODUS_PID" 2>/dev/null && die "nodus did not stop on SIGTERM"
    wait "$NODUS_PID" || die "nodus exited with $? on SIGTERM"
    grep -q 'info \[main\] stopped' "$NODUS_LOG" || die "nodus did not stop cleanly"
}

# start_peer_upstream PORT [ADDR]: tests/peers/upstream.py, an upstream that reads bodies (answers
# "LEN SHA256"), serves /bytes/N and /chunked/N, and misbehaves on /hang, /reset and /close.
start_peer_upstream() {
    local port=$1 addr=${2:-$PEER_IP} i
    bg "peer-$port" python3 "$(dirname "${BASH_SOURCE[0]}")/../peers/upstream.py" "$port" "$addr"
    UPSTREAM_PID=$BG_PID
    for ((i = 0; i < 50; i++)); do
        if [ "$(_in_netns curl -s -o /dev/null -w '%{http_code}' --max-time 1 "http://$addr:$port/")" = 200 ]; then
            return 0
        fi
        kill -0 "$UPSTREAM_PID" 2>/dev/null || die "test upstream on $addr:$port exited"
        sleep 0.1
    done
    die "test upstream on $addr:$port did not answer within 5 s"
}

http_status() { # URL [CURL ARGS...]
    local url=$1
    shift
    curl -s -o /dev/null -w '%{http_code}' --max-time 5 "$@" "$url" || true
}

wait_http() { # URL [SECS]
    local url=$1 secs=${2:-10} i code
    for ((i = 0; i < secs * 10; i++)); do
        code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 1 "$url" || true)
        [ "$code" = 200 ] && return 0
        if [ -n "$NODUS_PID" ] && ! kill -0 "$NODUS_PID" 2>/dev/null; then
            log "wait_http $url: nodus (pid $NODUS_PID) has exited"
            return 1
        fi
        sleep 0.1
    done
    log "wait_http $url: no 200 within ${secs}s (last status ${code:-none})"
    return 1
}

assert_eq() { # EXPECTED ACTUAL [MSG]
    [ "$1" = "$2" ] || die "${3:-assert_eq}: expected '$1', got '$2'"
}

assert_contains() { # HAYSTACK NEEDLE [MSG]
    case "$1" in
    *"$2"*) ;;
    *) die "${3:-assert_contains}: '$2' not found in: $(printf '%s' "$1" | head -c 2000)" ;;
    esac
}

netns_prefix() { printf 'n%s' "$(($$ % 100000))"; }

netns_topology() { # PFX [raw]
    need_root
    command -v ip >/dev/null || skip "iproute2 is not installed"
    cleanup netns_down "$1"
    netns_up "$@" || die "could not build the network namespaces $1-*"
}
