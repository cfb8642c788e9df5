#!/usr/bin/env python3
"""A test upstream that reads request bodies and misbehaves on request.

usage: upstream.py PORT [ADDR]

  POST/PUT any path   reads the body (Content-Length or chunked), answers "LEN SHA256\\n"
  GET /bytes/N        answers N bytes (a repeating pattern), Content-Length framed
  GET /chunked/N      answers N bytes in chunks of 1024
  GET /hang           reads the request and never answers (until the client goes)
  GET /reset          sends a head announcing 1000 bytes, 10 of them, then resets the connection
  GET /close          answers without Content-Length and closes (body ends at EOF)
  GET /interim        a 100 Continue and the final answer (with X-After-Interim: yes) in one write
  GET /splithead      the answer's head in two writes 100 ms apart (two segments), then "split\n"
  anything else       200 "ok\\n"
Prints "ready" on stdout when listening.
"""
import hashlib
import socket
import struct
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PATTERN = bytes(range(256)) * 64


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def _body(self):
        h = hashlib.sha256()
        n = 0
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            while True:
                size = int(self.rfile.readline().split(b";")[0], 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    break
                left = size
                while left:
                    b = self.rfile.read(min(left, 65536))
                    if not b:
                        raise ConnectionError("eof in chunk")
                    h.update(b)
                    n += len(b)
                    left -= len(b)
                self.rfile.readline()
        else:
            left = int(self.headers.get("Content-Length", "0"))
            while left:
                b = self.rfile.read(min(left, 65536))
                if not b:
                    raise ConnectionError("eof in body")
                h.update(b)
                n += len(b)
                left -= len(b)
        return n, h.hexdigest()

    def _send(self, code, body, extra=()):
        self.send_response(code)
        self.send_header("Content-Length", str(len(body)))
        for k, v in extra:
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):
        n, digest = self._body()
        self._send(200, f"{n} {digest}\n".encode())

    do_PUT = do_POST

    def do_GET(self):
        p = self.path
        if p.startswith("/bytes/"):
            n = int(p.split("/")[2])
            self.send_response(200)
            self.send_header("Content-Length", str(n))
            self.end_headers()
            while n:
                k = min(n, len(PATTERN))
                self.wfile.write(PATTERN[:k])
                n -= k
        elif p.startswith("/chunked/"):
            n = int(p.split("/")[2])
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            while n:
                k = min(n, 1024)
                self.wfile.write(b"%x\r\n" % k + PATTERN[:k] + b"\r\n")
                n -= k
            self.wfile.write(b"0\r\n\r\n")
        elif p == "/hang":
            self.connection.settimeout(30)
            try:
                self.connection.recv(1)
            except OSError:
                pass
            self.close_connection = True
        elif p == "/reset":
            self.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n0123456789")
            self.wfile.flush()
            time.sleep(0.05)
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.close_connection = True
        elif p == "/interim":
            self.wfile.write(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 3\r\n"
                             b"X-After-Interim: yes\r\n\r\nok\n")
        elif p == "/splithead":
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.wfile.write(b"HTTP/1.1 200 OK\r\nX-First: 1\r\nX-Sec")
            self.wfile.flush()
            time.sleep(0.1)
            self.wfile.write(b"ond: 2\r\nContent-Length: 6\r\n\r\nsplit\n")
        elif p == "/close":
            self.wfile.write(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil the end\n")
            self.close_connection = True
        else:
            self._send(200, b"ok\n")


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128


def main():
    port = int(sys.argv[1])
    addr = sys.argv[2] if len(sys.argv) > 2 else "127.0.0.1"
    if ":" in addr:
        Server.address_family = socket.AF_INET6
    srv = Server((addr, port), Handler)
    print("ready", flush=True)
    srv.serve_forever()


if __name__ == "__main__":
    main()
