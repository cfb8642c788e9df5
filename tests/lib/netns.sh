#!/usr/bin/env bash
# nodus test topology: three network namespaces joined by veth pairs, on the RFC 2544
# benchmark range (198.18.0.0/15), which is reserved for exactly this:
#
#   PFX-cli  c0 198.18.0.1/24 ──── m0 198.18.0.2/24  PFX-mid  m1 198.18.1.2/24 ──── u0 198.18.1.1/24  PFX-up
#
#   PFX-cli holds clients (curl, wrk, h2load), PFX-mid the node under test (kernel sockets, or
#   DPDK through af_packet/tap on m0 and m1), PFX-up the upstream servers.
#   cli routes 198.18.1.0/24 via 198.18.0.2; up routes 198.18.0.0/24 via 198.18.1.2.
#   Offloads are off on every veth (ethtool), so frames read through AF_PACKET carry full checksums.
#   raw mode: m0 and m1 are up but have no kernel address, and mid neither forwards nor speaks
#   IPv6 on them (for DPDK, which must own the interfaces alone).
#
# As a command:  tests/lib/netns.sh up PFX [raw]   |   down PFX   |   exec PFX cli|mid|up CMD...
#                tests/lib/netns.sh status PFX
# Sourced:       . tests/lib/netns.sh; netns_up PFX [raw]; netns_exec PFX mid CMD...; netns_down PFX
#                (functions return non-zero on failure; netns_up undoes a half-built topology)
# PFX: letters, digits, '_' or '-', at most 10 characters; use a distinct one per concurrent test.
# Needs root, iproute2 (ip) and ethtool.

NETNS_CLI_IP=198.18.0.1
NETNS_MID_IP0=198.18.0.2
NETNS_MID_IP1=198.18.1.2
NETNS_UP_IP=198.18.1.1

_netns_err() { echo "netns.sh: $*" >&2; }

_netns_check_prefix() {
    if [[ ! "${1:-}" =~ ^[A-Za-z0-9_-]{1,10}$ ]]; then
        _netns_err "bad prefix '${1:-}' (1-10 of [A-Za-z0-9_-]; veth names are limited to 15 chars)"
        return 2
    fi
}

# netns_exists PFX: true if any namespace of the topology exists.
netns_exists() {
    local n
    for n in cli mid up; do
        [ -e "/run/netns/$1-$n" ] && return 0
    done
    return 1
}

_netns_offloads_off() { # ns dev
    if command -v ethtool >/dev/null; then
        ip netns exec "$1" ethtool -K "$2" tx off rx off tso off gso off gro off >/dev/null 2>&1 || true
    else
        _netns_err "ethtool missing (apt-get install ethtool): veth frames may carry partial checksums"
    fi
}

_netns_build() { # pfx mode
    local p=$1 mode=$2 n
    for n in cli mid up; do
        ip netns add "$p-$n" || return
        ip -n "$p-$n" link set lo up || return
    done
    # Create each pair with its ends already in their namespaces, then give them short names.
    ip link add "$p-c0" netns "$p-cli" type veth peer name "$p-m0" netns "$p-mid" || return
    ip link add "$p-m1" netns "$p-mid" type veth peer name "$p-u0" netns "$p-up" || return
    ip -n "$p-cli" link set "$p-c0" name c0 || return
    ip -n "$p-mid" link set "$p-m0" name m0 || return
    ip -n "$p-mid" link set "$p-m1" name m1 || return
    ip -n "$p-up" link set "$p-u0" name u0 || return

    ip -n "$p-cli" addr add "$NETNS_CLI_IP/24" dev c0 || return
    ip -n "$p-up" addr add "$NETNS_UP_IP/24" dev u0 || return
    if [ "$mode" = raw ]; then
        # Before the links come up, so no IPv6 link-local address or router solicitation appears.
        ip netns exec "$p-mid" sysctl -qw net.ipv4.ip_forward=0 \
            net.ipv6.conf.m0.disable_ipv6=1 net.ipv6.conf.m1.disable_ipv6=1 || return
    else
        ip -n "$p-mid" addr add "$NETNS_MID_IP0/24" dev m0 || return
        ip -n "$p-mid" addr add "$NETNS_MID_IP1/24" dev m1 || return
        ip netns exec "$p-mid" sysctl -qw net.ipv4.ip_forward=1 || return
    fi
    _netns_offloads_off "$p-cli" c0
    _netns_offloads_off "$p-mid" m0
    _netns_offloads_off "$p-mid" m1
    _netns_offloads_off "$p-up" u0
    ip -n "$p-cli" link set c0 up || return
    ip -n "$p-mid" link set m0 up || return
    ip -n "$p-mid" link set m1 up || return
    ip -n "$p-up" link set u0 up || return
    ip -n "$p-cli" route add 198.18.1.0/24 via "$NETNS_MID_IP0" dev c0 || return
    ip -n "$p-up" route add 198.18.0.0/24 via "$NETNS_MID_IP1" dev u0 || return
}

# netns_up PFX [raw]: build the topology. Fails if any of its namespaces already exists.
netns_up() {
    local p=${1:-} mode=${2:-}
    _netns_check_prefix "$p" || return
    case "$mode" in "" | raw) ;; *) _netns_err "unknown mode '$mode' (raw or nothing)"; return 2 ;; esac
    if netns_exists "$p"; then
        _netns_err "namespaces $p-* already exist (a run that did not clean up? netns.sh down $p)"
        return 1
    fi
    if ! _netns_build "$p" "$mode"; then
        _netns_err "could not build topology $p"
        netns_down "$p"
        return 1
    fi
}

# netns_down PFX: end the processes still inside the namespaces, then delete them (the veths go
# with them). Never fails; a topology that does not exist is fine.
netns_down() {
    local p=${1:-} n pids
    _netns_check_prefix "$p" || return
    for n in cli mid up; do
        [ -e "/run/netns/$p-$n" ] || continue
        pids=$(ip netns pids "$p-$n" 2>/dev/null)
        if [ -n "$pids" ]; then
            # shellcheck disable=SC2086
            kill -TERM $pids 2>/dev/null
            for _ in 1 2 3 4 5 6 7 8 9 10; do
                pids=$(ip netns pids "$p-$n" 2>/dev/null)
                [ -n "$pids" ] || break
                sleep 0.2
            done
            # shellcheck disable=SC2086
            [ -z "$pids" ] || kill -KILL $pids 2>/dev/null
        fi
        ip netns del "$p-$n" 2>/dev/null || true
    done
    return 0
}

# netns_exec PFX cli|mid|up CMD...: run CMD in that host's namespace.
netns_exec() {
    local p=${1:-} h=${2:-}
    _netns_check_prefix "$p" || return
    case "$h" in cli | mid | up) ;; *) _netns_err "host must be cli, mid or up, not '$h'"; return 2 ;; esac
    shift 2
    [ $# -gt 0 ] || { _netns_err "exec: no command"; return 2; }
    ip netns exec "$p-$h" "$@"
}

# netns_status PFX: show the addresses and routes of each namespace.
netns_status() {
    local p=${1:-} n
    _netns_check_prefix "$p" || return
    for n in cli mid up; do
        echo "== $p-$n"
        if [ -e "/run/netns/$p-$n" ]; then
            ip -n "$p-$n" -br addr
            ip -n "$p-$n" route
        else
            echo "(absent)"
        fi
    done
}

_netns_usage() {
    echo "usage: netns.sh up PFX [raw] | down PFX | exec PFX cli|mid|up CMD... | status PFX" >&2
    return 2
}

_netns_main() {
    local cmd=${1:-}
    [ $# -gt 0 ] && shift
    case "$cmd" in
    up) [ $# -ge 1 ] && [ $# -le 2 ] || _netns_usage || return; netns_up "$@" ;;
    down) [ $# -eq 1 ] || _netns_usage || return; netns_down "$1" ;;
    exec)
        [ $# -ge 3 ] || _netns_usage || return
        local p=$1 h=$2
        shift 2
        _netns_check_prefix "$p" || return
        case "$h" in cli | mid | up) ;; *) _netns_usage; return ;; esac
        exec ip netns exec "$p-$h" "$@"
        ;;
    status) [ $# -eq 1 ] || _netns_usage || return; netns_status "$1" ;;
    *) _netns_usage ;;
    esac
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "netns.sh: must run as root" >&2
        exit 1
    fi
    _netns_main "$@"
    exit
fi
