#!/usr/bin/env bash
# Install the Debian packages that nodus needs, only those that are missing.
#
# usage: scripts/deps.sh GROUP...        GROUP: build | test | image | bench | fmt | all
#        . scripts/deps.sh               (defines deps_packages, deps_missing, deps_install)
#
# `apt-get update` runs only when something has to be installed, so a second run is fast and
# needs no network. Packages are installed non-interactively; services that Debian would start
# on install (nginx on :80, haproxy) are kept from starting by a temporary policy-rc.d.

DEPS_BUILD="meson ninja-build pkg-config gcc libdpdk-dev libwolfssl-dev liblua5.4-dev @MSGPACK@ libjansson-dev libcmocka-dev"
DEPS_TEST="clang-format openssl serf iputils-ping iputils-arping clang libclang-rt-14-dev llvm curl nginx-light wrk nghttp2-client iproute2 ethtool procps psmisc python3 jq prometheus python3-scapy"
DEPS_BENCH="haproxy nginx-light wrk valgrind"
# The appliance image (images/build.sh) and its boot test; the kernel is not installed but
# fetched by images/build.sh with apt-get download.
DEPS_IMAGE="qemu-system-x86 qemu-utils ovmf syslinux syslinux-common syslinux-efi mtools dosfstools e2fsprogs cpio lz4 zstd xz-utils binutils kmod"
DEPS_FMT="clang-format"

deps_log() { echo "deps: $*" >&2; }

# deps_installed PKG: true when PKG is installed (dpkg status "ii").
deps_installed() {
    [ "$(dpkg-query -W -f='${db:Status-Abbrev}' "$1" 2>/dev/null)" = "ii " ]
}

# deps_has_candidate PKG: true when apt knows an installable version of PKG.
deps_has_candidate() {
    local c
    c=$(apt-cache policy "$1" 2>/dev/null | awk '/Candidate:/ {print $2; exit}')
    [ -n "$c" ] && [ "$c" != "(none)" ]
}

# The msgpack C library is libmsgpack-dev in Debian 12 and libmsgpack-c-dev in later releases.
# Prints the name to use: the one installed if any, else the one apt can install.
deps_msgpack_pkg() {
    local p
    for p in libmsgpack-dev libmsgpack-c-dev; do
        if deps_installed "$p"; then echo "$p"; return; fi
    done
    for p in libmsgpack-dev libmsgpack-c-dev; do
        if deps_has_candidate "$p"; then echo "$p"; return; fi
    done
    echo libmsgpack-dev
}

# deps_packages GROUP...: the packages of the groups, one per line, without duplicates.
deps_packages() {
    local g list=""
    for g in "$@"; do
        case "$g" in
        build) list="$list $DEPS_BUILD" ;;
        test) list="$list $DEPS_TEST" ;;
        image) list="$list $DEPS_IMAGE" ;;
        bench) list="$list $DEPS_BENCH" ;;
        fmt) list="$list $DEPS_FMT" ;;
        all) list="$list $DEPS_BUILD $DEPS_TEST $DEPS_IMAGE $DEPS_BENCH $DEPS_FMT" ;;
        *) deps_log "unknown group '$g' (build, test, image, bench, fmt, all)"; return 2 ;;
        esac
    done
    # shellcheck disable=SC2086
    printf '%s\n' $list | awk 'NF && !seen[$0]++'
}

# deps_missing GROUP...: the packages of the groups that are not installed (one dpkg-query call).
# The msgpack placeholder counts as present if either of its names is installed.
deps_missing() {
    local pkgs installed
    pkgs=$(deps_packages "$@") || return
    # shellcheck disable=SC2086
    installed=$(dpkg-query -W -f='${db:Status-Abbrev} ${Package}\n' \
        ${pkgs//@MSGPACK@/libmsgpack-dev libmsgpack-c-dev} 2>/dev/null |
        awk '$1 == "ii" { sub(/:.*/, "", $2); print $2 }') || true
    echo "$pkgs" | awk -v inst="$installed" '
        BEGIN { n = split(inst, a, "\n"); for (i = 1; i <= n; i++) have[a[i]] = 1 }
        $0 == "@MSGPACK@" { if (!have["libmsgpack-dev"] && !have["libmsgpack-c-dev"]) print; next }
        !have[$0] { print }'
}

# deps_install GROUP...: install whatever the groups need and is missing.
deps_install() {
    local missing p pkgs=() rc=0 policy=/usr/sbin/policy-rc.d made_policy=0
    [ $# -gt 0 ] || { deps_log "usage: deps.sh build|test|image|bench|fmt|all ..."; return 2; }
    missing=$(deps_missing "$@" | tr '\n' ' ') || return
    missing=${missing% }
    [ -n "$missing" ] || return 0
    if [ "$(id -u)" -ne 0 ]; then
        deps_log "missing packages: $missing"
        deps_log "run as root, or: apt-get install $missing"
        return 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    deps_log "installing: $missing"
    apt-get update -qq </dev/null || { deps_log "apt-get update failed"; return 1; }
    for p in $missing; do
        [ "$p" = "@MSGPACK@" ] && p=$(deps_msgpack_pkg)
        pkgs+=("$p")
    done
    # Keep postinst scripts from starting daemons (nginx on port 80, haproxy) on this machine.
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod 755 "$policy" && made_policy=1
    fi
    apt-get install -y -q --no-upgrade \
        -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
        "${pkgs[@]}" </dev/null || rc=$?
    [ "$made_policy" = 1 ] && rm -f "$policy"
    if [ "$rc" -ne 0 ]; then
        deps_log "apt-get install failed (exit $rc)"
        return "$rc"
    fi
    missing=$(deps_missing "$@" | tr '\n' ' ')
    if [ -n "$missing" ]; then
        deps_log "still missing after install: $missing"
        return 1
    fi
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
    set -euo pipefail
    case "${1:-}" in
    -h | --help | help | "")
        sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'
        [ -n "${1:-}" ] || exit 2
        exit 0
        ;;
    --list) shift; deps_packages "$@" | sed "s/^@MSGPACK@\$/$(deps_msgpack_pkg)/"; exit ;;
    --missing) shift; deps_missing "$@"; exit ;;
    esac
    deps_install "$@"
fi
