#!/usr/bin/env python3
"""Connection load for the integration tests: many at once, or many in sequence.

usage: conns.py hold HOST PORT N [GO_FILE]
           open N connections at once (at most 256 connects in progress), print "held N";
           then (once GO_FILE exists, if given) send one request on every connection, read
           every response, print "answered K" (K responses with status 200), close them all
       conns.py seq HOST PORT N [STREAMS]
           N short connections, STREAMS (default 1) at a time, each: connect, one request with
           "Connection: close", read to the end, close; print "ok K failed F in S s"
Exits 1 when a phase takes more than 300 s. Non-blocking sockets, one selector: no threads.
"""
import errno
import os
import resource
import selectors
import socket
import sys
import time

REQ = b"GET /hello HTTP/1.1\r\nHost: load\r\n\r\n"
REQ_CLOSE = b"GET /hello HTTP/1.1\r\nHost: load\r\nConnection: close\r\n\r\n"
DEADLINE = time.monotonic() + 300


def raise_nofile():
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def start_connect(addr):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setblocking(False)
    err = s.connect_ex(addr)
    if err not in (0, errno.EINPROGRESS):
        s.close()
        raise OSError(err, os.strerror(err))
    return s


def check_deadline(what):
    if time.monotonic() > DEADLINE:
        print(f"timeout: {what}", flush=True)
        sys.exit(1)


def hold(addr, n, go):
    sel = selectors.DefaultSelector()
    held, pending, failed = [], 0, 0
    while len(held) + pending < n or pending:
        while pending < 256 and len(held) + pending < n:
            sel.register(start_connect(addr), selectors.EVENT_WRITE)
            pending += 1
        for key, _ in sel.select(1.0):
            s = key.fileobj
            sel.unregister(s)
            pending -= 1
            if s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR):
                failed += 1
                s.close()
            else:
                held.append(s)
        check_deadline(f"connecting ({len(held)} open, {failed} failed)")
    print(f"held {len(held)}", flush=True)
    while go and not os.path.exists(go):
        time.sleep(0.1)
        check_deadline("waiting for the go file")
    replies = {}
    for s in held:
        s.sendall(REQ)
        replies[s] = b""
        sel.register(s, selectors.EVENT_READ)
    ok, other = 0, {}
    while replies:
        for key, _ in sel.select(1.0):
            s = key.fileobj
            data = s.recv(65536)
            buf = replies[s] + data
            if data and b"\r\n\r\n" not in buf:
                replies[s] = buf
                continue
            if buf.startswith(b"HTTP/1.1 200"):
                ok += 1
            else:
                k = buf[:12].decode("latin-1") or "EOF"
                other[k] = other.get(k, 0) + 1
            del replies[s]
            sel.unregister(s)
        check_deadline(f"reading ({ok} answered, {len(replies)} waiting)")
    print(f"answered {ok}", flush=True)
    for k, v in sorted(other.items()):
        print(f"  {v} x {k!r}", flush=True)
    # an orderly close: our FIN, then the server's (a close with unread data would send a RST,
    # which nobody retransmits when it is lost)
    for s in held:
        s.shutdown(socket.SHUT_WR)
        sel.register(s, selectors.EVENT_READ)
    open_ = len(held)
    while open_:
        for key, _ in sel.select(1.0):
            s = key.fileobj
            try:
                data = s.recv(65536)
            except OSError:
                data = b""
            if not data:
                sel.unregister(s)
                s.close()
                open_ -= 1
        check_deadline(f"closing ({open_} left)")
    print("closed", flush=True)


def seq(addr, n, streams):
    sel = selectors.DefaultSelector()
    started = ok = failed = 0
    active = 0
    t0 = time.monotonic()

    def launch():
        nonlocal started, active, failed
        started += 1
        try:
            s = start_connect(addr)
        except OSError:
            failed += 1
            return
        sel.register(s, selectors.EVENT_WRITE, [b"", False])
        active += 1

    while started < n or active:
        while active < streams and started < n:
            launch()
        for key, ev in sel.select(1.0):
            s, st = key.fileobj, key.data
            if not st[1]:
                if s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR):
                    failed += 1
                    sel.unregister(s)
                    s.close()
                    active -= 1
                    continue
                s.sendall(REQ_CLOSE)
                st[1] = True
                sel.modify(s, selectors.EVENT_READ, st)
                continue
            try:
                data = s.recv(65536)
            except OSError:
                data = None
            if data:
                st[0] += data
                continue
            if data is not None and st[0].startswith(b"HTTP/1.1 200"):
                ok += 1
            else:
                failed += 1
            sel.unregister(s)
            s.close()
            active -= 1
        check_deadline(f"short connections ({ok} ok, {failed} failed)")
    print(f"ok {ok} failed {failed} in {time.monotonic() - t0:.1f} s", flush=True)


def main():
    if len(sys.argv) < 5 or sys.argv[1] not in ("hold", "seq"):
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    raise_nofile()
    addr = (sys.argv[2], int(sys.argv[3]))
    n = int(sys.argv[4])
    if sys.argv[1] == "hold":
        hold(addr, n, sys.argv[5] if len(sys.argv) > 5 else None)
    else:
        seq(addr, n, int(sys.argv[5]) if len(sys.argv) > 5 else 1)


if __name__ == "__main__":
    main()
