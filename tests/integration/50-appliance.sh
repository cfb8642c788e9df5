#!/usr/bin/env bash
# The appliance image under qemu (TCG: -cpu max -smp 2, no KVM): images/build.sh makes the
# kernel, initrd and disk with the nodus under test as /init. The VM runs in mid of the raw
# namespace topology (tests/lib/netns.sh) with two virtio-net NICs on taps, each bridged to
# mid's veth (t0+m0 to cli, t1+m1 to up); inside, nodus binds both NICs to uio_pci_generic and
# proxies cli -> appliance (198.18.0.2:8080, DPDK) -> nginx in up (198.18.1.1:80).
#   1. The disk image, through SYSLINUX, with a config disk: curl from cli through it; the
#      times from qemu start to the first answer and from kernel start to serving are printed.
#      The config disk puts the control plane on the data NICs: from cli, /ready,
#      /stats/prometheus and `nodus status` over NIC 0 (198.18.0.2:15000); gossip over NIC 1
#      with a nodus on kernel sockets in up ("host-up"): each sees the other alive (GET
#      /members, `nodus members`), the appliance discovers host-up's service "hello" and cli's
#      requests reach it through the appliance. Then system_powerdown on qemu's monitor: the
#      node leaves the cluster (host-up shows it left), drains, and the VM powers off in time.
#   2. -kernel/-initrd with a broken config disk: file:line on the console, power off.
#   3. -kernel/-initrd with the configuration on the kernel command line (nodus.config=base64:)
#      and no disk, two workers on multiqueue NICs with RSS (virtio-net mq=on,rss=on, two queue
#      pairs): both ports steer by RSS (the NIC's Toeplitz hash with nodus's key, no hand-over),
#      60 requests through it all answered (half through a TCP listener: one upstream connection
#      each), the connections nodus opens upstream made by both workers (their source ports chosen so that the NIC's hash brings the answers back to
#      them), no frame handed over; then system_powerdown.
#   4. A NIC named in the configuration that the VM lacks, and nodus.hugepages=0: both said on
#      the console, the node cannot start, the VM powers off.
#   5. The disk under UEFI (OVMF) with no configuration at all: said, power off.
# Skips when not root or when qemu or taps cannot run here.
# shellcheck disable=SC1091
. "$(dirname "$0")/lib.sh"

need_root
need_cmd qemu-system-x86_64 ip curl nginx mkfs.ext4 python3 base64
[ -c /dev/net/tun ] || skip "no /dev/net/tun: qemu cannot use taps here"
qemu-system-x86_64 -version >/dev/null 2>&1 || skip "qemu-system-x86_64 does not run here"

P=$(netns_prefix)
netns_topology "$P" raw
CLI=$P-cli MID=$P-mid UP=$P-up
NODE=198.18.0.2 UPIP=198.18.1.1
BOOT_BOUND=${APPLIANCE_BOOT_BOUND:-150} # seconds from qemu start to serving, TCG and ASan
in_cli() { ip netns exec "$CLI" "$@"; }
in_mid() { ip netns exec "$MID" "$@"; }
now() { echo "$EPOCHREALTIME"; }
elapsed() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.2f", b - a }'; }

# ---- taps bridged to mid's veths: the VM's NIC 0 is on cli's link, NIC 1 on up's ----
in_mid sysctl -qw net.ipv6.conf.default.disable_ipv6=1
taps() { # [multi_queue]: (re)makes the taps t0 and t1, in the bridges b0 and b1
    local i
    for i in 0 1; do
        in_mid ip link del "t$i" 2>/dev/null || true
        in_mid ip tuntap add "t$i" mode tap ${1:+"$1"}
        in_mid ip link set "t$i" master "b$i"
        in_mid ip link set "t$i" up
    done
}
for i in 0 1; do
    in_mid ip link add "b$i" type bridge
    in_mid ip link set "m$i" master "b$i"
    in_mid ip link set "b$i" up
done
taps

# ---- nginx in up ----
mkdir -p "$T/ngx/tmp"
cat >"$T/ngx/nginx.conf" <<CONF
daemon off;
master_process off;
worker_processes 1;
pid $T/ngx/nginx.pid;
error_log $T/ngx/error.log warn;
events { worker_connections 256; }
http {
    access_log off;
    client_body_temp_path $T/ngx/tmp/body;
    proxy_temp_path $T/ngx/tmp/proxy;
    fastcgi_temp_path $T/ngx/tmp/fastcgi;
    uwsgi_temp_path $T/ngx/tmp/uwsgi;
    scgi_temp_path $T/ngx/tmp/scgi;
    server { listen $UPIP:80; location / { return 200 "hello from up\n"; } }
}
CONF
IN_NETNS=$UP bg nginx nginx -p "$T/ngx" -c "$T/ngx/nginx.conf" -e "$T/ngx/error.log"

# ---- a nodus on kernel sockets in up: the appliance's gossip peer, advertising "hello" ----
cat >"$T/host-up.lua" <<LUA
node { name = "host-up", workers = 1 }
admin { listen = "127.0.0.1:15001" }
gossip { bind = "$UPIP:7946", tags = { side = "host" } }
service "hello" { port = 80, address = "$UPIP" }
LUA
export ASAN_OPTIONS=${ASAN_OPTIONS:-}:detect_leaks=0 # as in the guest (host-up is the same build)
IN_NETNS=$UP start_nodus "$T/host-up.lua"
HOST_PID=$NODUS_PID

# ---- the image, with the binary under test ----
t0=$(now)
# ASan builds: DPDK keeps allocations until exit; the kernel hands KEY=VALUE words of its
# command line to init's environment, and init to the node's
GUEST_ENV="ASAN_OPTIONS=detect_leaks=0"
"$ROOT/images/build.sh" --nodus "$NODUS" --out "$T/img" --cache "$ROOT/build/images/cache" \
    --cmdline "$GUEST_ENV" >"$T/build.log" 2>&1 || { tail -20 "$T/build.log" >&2; die "images/build.sh failed"; }
log "image built in $(elapsed "$t0") s: $(grep 'kernel + initrd' "$T/build.log")"
CMDLINE=$(cat "$T/img/nodus-cmdline") # what the disk's boot loader passes too

good_cfg() {
    cat <<'LUA'
node { name = "appliance", workers = 1, io = "dpdk" }
dpdk {
  args = { "--in-memory", "-l", "0", "--log-level=notice" },
  ports = { { dev = "0000:00:04.0", ip = "198.18.0.2/24" },
            { dev = "0000:00:05.0", ip = "198.18.1.2/24" } },
}
cluster "web" { endpoints = { "198.18.1.1:80" } }
listener "ingress" {
  listen = "198.18.0.2:8080", protocol = "http",
  plugins = { router { { match = { prefix = "/" }, cluster = "web" } } },
}
LUA
}
# the config disk's: good_cfg plus the control plane on the data NICs (docs/appliance.md's
# example): admin on NIC 0 (cli's side), gossip on NIC 1 joining host-up, and a cluster of
# what gossip discovers
disk_cfg() {
    good_cfg | sed '/^listener/,$d'
    cat <<'LUA'
admin { listen = "198.18.0.2:15000" }
gossip { bind = "198.18.1.2:7946", join = { "198.18.1.1:7946" }, tags = { role = "appliance" } }
cluster "hello" { discover = "hello", connect_timeout = "500ms" }
listener "ingress" {
  listen = "198.18.0.2:8080", protocol = "http",
  plugins = { router { { match = { prefix = "/found/" }, cluster = "hello" },
                       { match = { prefix = "/" }, cluster = "web" } } },
}
LUA
}
good_cfg >"$T/good.lua"
disk_cfg >"$T/disk.lua"
"$NODUS" check "$T/disk.lua" >/dev/null || die "nodus check refused the config disk's mesh.lua"
"$ROOT/images/mkconfig.sh" "$T/good.img" "$T/disk.lua" 2>/dev/null
cat >"$T/broken.lua" <<'LUA'
node { name = "appliance", workers = 1, io = "dpdk" }
cluster "web" { endpoints = { "198.18.1.1:80" } }
listener "ingress" { listen = "198.18.0.2:8080", protocol = "http", plugins = { nosuch { } } }
LUA
"$ROOT/images/mkconfig.sh" "$T/broken.img" "$T/broken.lua" 2>/dev/null

# vm NAME ARGS...: qemu in mid, NICs on t0/t1 at 00:04.0/00:05.0, console in $T/NAME.console,
# monitor on $T/NAME.mon; sets VM_PID and VM_T0. VM_QUEUES=2: two queue pairs per NIC, with RSS.
vm() {
    local name=$1 q=${VM_QUEUES:-1} mq=""
    shift
    [ "$q" -gt 1 ] && mq=",mq=on,vectors=$((2 * q + 2)),rss=on"
    VM_T0=$(now)
    IN_NETNS=$MID bg "$name" qemu-system-x86_64 -machine pc -cpu max -smp 2 -m 768 \
        -nodefaults -display none -no-reboot \
        -serial "file:$T/$name.console" -monitor "unix:$T/$name.mon,server,nowait" \
        -netdev "tap,id=n0,ifname=t0,script=no,downscript=no,queues=$q" \
        -device "virtio-net-pci,netdev=n0,addr=04.0,mac=52:54:00:4e:00:01$mq" \
        -netdev "tap,id=n1,ifname=t1,script=no,downscript=no,queues=$q" \
        -device "virtio-net-pci,netdev=n1,addr=05.0,mac=52:54:00:4e:00:02$mq" "$@"
    VM_PID=$BG_PID
    _BG_LOGS+=("$T/$name.console")
}
monitor() { # NAME COMMAND: one command on a VM's monitor
    python3 - "$T/$1.mon" "$2" <<'PY'
import socket, sys, time
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
s.sendall(sys.argv[2].encode() + b"\n")
time.sleep(0.3)
s.close()
PY
}
# wait_exit PID SECS: true when the VM exited by itself within SECS; its status in VM_RC
wait_exit() {
    local i
    for ((i = 0; i < $2 * 10; i++)); do
        if ! kill -0 "$1" 2>/dev/null; then
            VM_RC=0
            wait "$1" || VM_RC=$?
            return 0
        fi
        sleep 0.1
    done
    return 1
}
# serve NAME: wait until curl through the appliance answers; prints the two boot times
serve() {
    local name=$1 i body
    for ((i = 0; ; i++)); do
        body=$(in_cli curl -s --max-time 2 "http://$NODE:8080/hello" || true)
        [ "$body" = "hello from up" ] && break
        kill -0 "$VM_PID" 2>/dev/null || die "$name: the VM exited before serving"
        [ "$(awk -v a="$VM_T0" -v b="$EPOCHREALTIME" 'BEGIN { print (b - a > 0 + "'"$BOOT_BOUND"'") }')" = 0 ] ||
            die "$name: no answer through the appliance within $BOOT_BOUND s"
        sleep 0.5
    done
    served=$(elapsed "$VM_T0")
    for ((i = 0; i < 100; i++)); do # init logs it when the node reports ready
        grep -q 'init: serving' "$T/$name.console" && break
        sleep 0.1
    done
    log "$name: qemu start to first request served: $served s; kernel start to" \
        "serving: $(grep -o 'serving [0-9.]* s after the kernel started' "$T/$name.console" |
            awk '{ print $2 }') s; $(grep -o 'memory used [0-9]* MiB' "$T/$name.console")"
}

ADMIN=$NODE:15000
member_at_appliance() { # NAME: its status at the appliance, asked from cli over the data NIC
    in_cli "$NODUS" members --admin "$ADMIN" 2>/dev/null | awk -v n="$1" '$1 == n { print $3 }'
}
member_at_host() { # NAME: its status at host-up
    ip netns exec "$UP" "$NODUS" members --admin 127.0.0.1:15001 2>/dev/null |
        awk -v n="$1" '$1 == n { print $3 }'
}
is() { [ "$("$1" "${@:3}")" = "$2" ]; } # is FUNC WANT ARGS...
found() { [ "$(in_cli curl -s --max-time 2 "http://$NODE:8080/found/x")" = "hello from up" ]; }
wait_for() { # SECS DESCRIPTION CMD...: until CMD succeeds; prints how long it took
    local secs=$1 what=$2 t i
    shift 2
    t=$(now)
    for ((i = 0; i < secs * 10; i++)); do
        "$@" && { elapsed "$t"; return 0; }
        sleep 0.1
    done
    die "timed out after ${secs} s waiting for: $what"
}

# ---- 1. the disk image through its boot loader, a config disk, power button ----
vm disk -drive "file=$T/img/nodus-disk.img,if=none,id=boot,format=raw,snapshot=on" \
    -device virtio-blk-pci,drive=boot,addr=07.0,bootindex=0 \
    -drive "file=$T/good.img,if=none,id=cfg,format=raw,readonly=on" \
    -device virtio-blk-pci,drive=cfg,addr=06.0
serve disk
assert_contains "$(cat "$T/disk.console")" "SYSLINUX" "disk: booted through SYSLINUX"
assert_contains "$(cat "$T/disk.console")" "configuration from the config disk" "disk: config source"
assert_contains "$(cat "$T/disk.console")" "2 PCI NIC(s) reserved for DPDK" "disk: NICs set aside before the drivers load"
# "on", not "bound to": uio_pci_generic took the NIC as it loaded, virtio-pci never had it
assert_contains "$(cat "$T/disk.console")" "(1af4:1000) on uio_pci_generic" "disk: NIC binding"
for ((i = 0; i < 20; i++)); do
    body=$(in_cli curl -s --max-time 5 "http://$NODE:8080/n$i")
    assert_eq "hello from up" "$body" "disk: request $i through the appliance"
done

# the control plane over the data NICs: admin from cli, gossip with host-up
assert_eq 200 "$(in_cli curl -s -o /dev/null -w '%{http_code}' --max-time 5 "http://$ADMIN/ready")" \
    "disk: GET /ready from cli over the data NIC"
assert_contains "$(in_cli "$NODUS" status --admin "$ADMIN")" "io dpdk" "disk: nodus status from cli"
assert_contains "$(cat "$T/disk.console")" "admin on $ADMIN (dpdk)" "disk: admin on the data path"
assert_contains "$(cat "$T/disk.console")" "gossip on 198.18.1.2:7946 (dpdk)" "disk: gossip on the data path"
t=$(wait_for 30 "the appliance sees host-up alive" is member_at_appliance alive host-up)
log "disk: the appliance sees host-up alive ${t} s after serving"
t=$(wait_for 15 "host-up sees the appliance alive" is member_at_host alive appliance)
log "disk: host-up sees the appliance alive after a further ${t} s"
assert_contains "$(in_cli curl -s --max-time 5 "http://$ADMIN/members")" '"side": "host"' \
    "disk: GET /members at the appliance carries host-up's tags"
assert_contains "$(ip netns exec "$UP" curl -s --max-time 5 http://127.0.0.1:15001/members)" \
    '"role": "appliance"' "disk: GET /members at host-up carries the appliance's tags"
t=$(wait_for 15 "cli reaches host-up's service through the appliance" found)
log "disk: service \"hello\" discovered over gossip, reached through the appliance after ${t} s"
for ((i = 0; i < 10; i++)); do found || die "disk: request $i to the discovered service failed"; done
assert_contains "$(in_cli "$NODUS" status --admin "$ADMIN")" 'discover "hello": 1 endpoint(s)' \
    "disk: nodus status shows the discovered endpoint"
prom=$(in_cli curl -s --max-time 10 "http://$ADMIN/stats/prometheus")
ok=$(awk '/^istio_requests_total\{/ && /response_code="200"/ { n += $NF } END { print n + 0 }' <<<"$prom")
[ "$ok" -ge 31 ] || die "disk: /stats/prometheus counts $ok answered requests, want at least 31"
in_msgs=$(awk '$1 == "nodus_ctl_messages_in_total{sockets=\"dpdk\"}" { print $2 }' <<<"$prom")
[ "${in_msgs:-0}" -gt 0 ] || die "disk: no control-plane messages over DPDK counted"
log "disk: /stats/prometheus from cli: $ok requests answered 200, $in_msgs control-plane messages in"

t1=$(now)
monitor disk system_powerdown
wait_exit "$VM_PID" 60 || die "disk: the VM did not power off within 60 s of system_powerdown"
log "disk: powered off $(elapsed "$t1") s after system_powerdown"
t=$(wait_for 10 "host-up shows the appliance left" is member_at_host left appliance)
log "disk: host-up shows the appliance left (a graceful leave) ${t} s after it powered off"
assert_eq 0 "$VM_RC" "disk: qemu's exit status after power off"
assert_contains "$(cat "$T/disk.console")" "power button: draining" "disk: power button seen"
assert_contains "$(cat "$T/disk.console")" "node drained and stopped" "disk: clean drain"
assert_contains "$(cat "$T/disk.console")" "reboot: Power down" "disk: ACPI power off"

# ---- 2. a broken config disk: file:line on the console, power off ----
vm broken -kernel "$T/img/nodus-vmlinuz" -initrd "$T/img/nodus-initrd.img" \
    -append "$CMDLINE $GUEST_ENV" \
    -drive "file=$T/broken.img,if=none,id=cfg,format=raw,readonly=on" \
    -device virtio-blk-pci,drive=cfg,addr=06.0
wait_exit "$VM_PID" "$BOOT_BOUND" || die "broken: the VM did not power off within $BOOT_BOUND s"
assert_eq 0 "$VM_RC" "broken: qemu's exit status"
con=$(cat "$T/broken.console")
assert_contains "$con" "/run/nodus/config/mesh.lua:3:" "broken: file:line of the error"
assert_contains "$con" "nosuch" "broken: the error names the unknown plugin"
assert_contains "$con" "is invalid (errors above)" "broken: init's verdict"
assert_contains "$con" "reboot: Power down" "broken: powered off"
case "$con" in *"Kernel panic"*) die "broken: kernel panic" ;; esac
log "broken: powered off after $(elapsed "$VM_T0") s with the error on the console"

# ---- 3. the configuration on the kernel command line, no disk; two workers, RSS ----
b64=$({
    good_cfg | sed -e 's/workers = 1,/workers = 2,/' -e 's/"-l", "0",/"-l", "0,1",/'
    echo 'admin { listen = "198.18.0.2:15000" }'
    # a TCP listener: one upstream connection per client connection (HTTP pools reuse theirs)
    echo 'listener "raw" { listen = "198.18.0.2:9090", protocol = "tcp", cluster = "web" }'
} | base64 -w0)
taps multi_queue # qemu opens a multiqueue tap only with queues > 1
VM_QUEUES=2 vm cmdline -kernel "$T/img/nodus-vmlinuz" -initrd "$T/img/nodus-initrd.img" \
    -append "$CMDLINE $GUEST_ENV nodus.config=base64:$b64"
serve cmdline
assert_contains "$(cat "$T/cmdline.console")" "configuration from the kernel command line" "cmdline: source"
for p in 0 1; do
    grep -aq "dpdk port $p: .*queues rx 2/2 tx 2/2 steering rss" "$T/cmdline.console" ||
        die "cmdline: port $p does not steer by RSS over two queues: $(grep -a "dpdk port $p" "$T/cmdline.console")"
done
ok=0
for i in $(seq 30); do
    [ "$(in_cli curl -s --max-time 5 "http://$NODE:8080/rss$i")" = "hello from up" ] && ok=$((ok + 1))
    [ "$(in_cli curl -s --max-time 5 "http://$NODE:9090/tcp$i")" = "hello from up" ] && ok=$((ok + 1))
done
assert_eq 60 "$ok" "cmdline: requests answered through two RSS-steered workers (HTTP and TCP)"
in_cli curl -s --max-time 5 -o "$T/rss.prom" "http://$NODE:15000/stats/prometheus"
opens() { awk -v k="nodus_dpdk_tcp_opens_total{worker=\"$1\",side=\"active\"}" '$1 == k { print $2 }' "$T/rss.prom"; }
handed=$(awk '/^nodus_dpdk_handoff_frames_total/ { s += $2 } END { print s + 0 }' "$T/rss.prom")
log "cmdline: upstream connections by worker 0: $(opens 0), worker 1: $(opens 1); frames handed over: $handed"
[ "$(opens 0)" -gt 3 ] && [ "$(opens 1)" -gt 3 ] || die "cmdline: not both workers opened upstream connections"
assert_eq 0 "$handed" "cmdline: frames handed between workers with RSS"
monitor cmdline system_powerdown
wait_exit "$VM_PID" 60 || die "cmdline: the VM did not power off within 60 s"
assert_eq 0 "$VM_RC" "cmdline: qemu's exit status"
taps

# ---- 4. bad input: a NIC that is not there, no hugepages: said on the console, power off ----
good_cfg | sed 's/0000:00:05.0/0000:00:09.0/' >"$T/absent.lua"
vm absent -kernel "$T/img/nodus-vmlinuz" -initrd "$T/img/nodus-initrd.img" \
    -append "$CMDLINE $GUEST_ENV nodus.hugepages=0 nodus.config=base64:$(base64 -w0 "$T/absent.lua")"
wait_exit "$VM_PID" "$BOOT_BOUND" || die "absent: the VM did not power off within $BOOT_BOUND s"
assert_eq 0 "$VM_RC" "absent: qemu's exit status"
con=$(cat "$T/absent.console")
assert_contains "$con" "init: no hugepages" "absent: no hugepages reported"
assert_contains "$con" "ports[2] (0000:00:09.0): no PCI device 0000:00:09.0" "absent: the missing NIC"
assert_contains "$con" "the node exited with status 3" "absent: the node's failure"
assert_contains "$con" "reboot: Power down" "absent: powered off"

# ---- 5. the same disk under UEFI (OVMF, q35): SYSLINUX's EFI loader starts the kernel; no
# configuration anywhere, which init says before powering off ----
OVMF=/usr/share/OVMF/OVMF_CODE_4M.fd
if [ -f "$OVMF" ] && [ -f /usr/share/OVMF/OVMF_VARS_4M.fd ]; then
    cp /usr/share/OVMF/OVMF_VARS_4M.fd "$T/vars.fd"
    VM_T0=$(now)
    IN_NETNS=$MID bg uefi qemu-system-x86_64 -machine q35 -cpu max -smp 2 -m 512 -nodefaults \
        -display none -no-reboot -serial "file:$T/uefi.console" \
        -drive "if=pflash,format=raw,readonly=on,file=$OVMF" -drive "if=pflash,format=raw,file=$T/vars.fd" \
        -drive "file=$T/img/nodus-disk.img,if=none,id=boot,format=raw,snapshot=on" \
        -device virtio-blk-pci,drive=boot,bootindex=0
    VM_PID=$BG_PID
    _BG_LOGS+=("$T/uefi.console")
    wait_exit "$VM_PID" "$BOOT_BOUND" || die "uefi: the VM did not power off within $BOOT_BOUND s"
    con=$(tr -d '\033' <"$T/uefi.console")
    assert_contains "$con" "as PID 1" "uefi: nodus started as init"
    assert_contains "$con" "init: no configuration: attach a config disk" "uefi: no configuration said"
    assert_contains "$con" "reboot: Power down" "uefi: powered off"
    log "uefi: booted and powered off in $(elapsed "$VM_T0") s"
else
    log "uefi: OVMF not installed (scripts/deps.sh image): UEFI boot not checked"
fi

kill -0 "$HOST_PID" 2>/dev/null || die "host-up exited"
pass "disk boot via SYSLINUX served, admin and gossip over its data NICs, discovery, graceful leave on the power button; broken config shown and powered off; config from the kernel command line served; bad input reported; UEFI boot ($(elapsed "$t0") s in all)"
