#!/usr/bin/env python3
"""A trace collector for tests: receives OTLP/HTTP JSON and Zipkin v2 JSON, validates each payload
as its specification defines it, and records the spans.

usage: collector.py PORT [ADDR] [--delay SECS] [--status CODE]

  POST /v1/traces      OTLP/HTTP, JSON encoding (opentelemetry-proto ExportTraceServiceRequest):
                       answers 200 "{}" when valid, 400 with the reasons when not
  POST /api/v2/spans   Zipkin v2 (a JSON list of spans): answers 202 when valid, 400 when not
  GET  /spans          every span recorded, normalised (below), as a JSON list
  GET  /errors         every validation failure, as a JSON list of strings
  GET  /stats          {"posts": N, "spans": N, "errors": N}
  POST /control        JSON {"delay": SECS, "status": CODE} changes the behaviour at run time
                       (status 0: normal answers)
  GET  anything else   200, a JSON object of the request's method, path and headers (lowercased
                       names; a repeated header's values joined with ", "): an echo upstream

A recorded span: {"format": "otlp"|"zipkin", "traceId", "spanId", "parentSpanId" (null for a
root), "name", "kind" ("SERVER", "CLIENT", ...), "start_us", "duration_us", "attributes" (a
string -> string dict; Zipkin tags), "service", and for OTLP "status" (the code) and "resource"
(its attributes)}.
--delay sleeps before answering a trace post (a slow collector); --status answers every trace post
with that status instead (a failing collector). Prints "ready" on stdout when listening.
"""
import json
import re
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HEX32 = re.compile(r"^[0-9a-f]{32}$")
HEX16 = re.compile(r"^[0-9a-f]{16}$")
OTLP_KINDS = {0: "UNSPECIFIED", 1: "INTERNAL", 2: "SERVER", 3: "CLIENT", 4: "PRODUCER",
              5: "CONSUMER"}
ZIPKIN_KINDS = {"CLIENT", "SERVER", "PRODUCER", "CONSUMER"}
U64 = 2**64 - 1

lock = threading.Lock()
spans = []
errors = []
posts = 0
control = {"delay": 0.0, "status": 0}


class Invalid(Exception):
    pass


def need(cond, msg):
    if not cond:
        raise Invalid(msg)


def uint64(v, what):
    """proto3 JSON: a 64-bit integer is a decimal string or a number."""
    if isinstance(v, str):
        need(re.fullmatch(r"[0-9]+", v) is not None, f"{what}: not a decimal integer: {v!r}")
        v = int(v)
    need(isinstance(v, int) and not isinstance(v, bool), f"{what}: not an integer: {v!r}")
    need(0 <= v <= U64, f"{what}: out of range")
    return v


def any_value(v, what):
    need(isinstance(v, dict) and len(v) == 1, f"{what}: an AnyValue has exactly one field")
    (k, x), = v.items()
    if k == "stringValue":
        need(isinstance(x, str), f"{what}: stringValue")
        return x
    if k == "boolValue":
        need(isinstance(x, bool), f"{what}: boolValue")
        return "true" if x else "false"
    if k == "intValue":
        if isinstance(x, str):
            need(re.fullmatch(r"-?[0-9]+", x) is not None, f"{what}: intValue")
            x = int(x)
        need(isinstance(x, int) and -2**63 <= x < 2**63, f"{what}: intValue")
        return str(x)
    if k == "doubleValue":
        need(isinstance(x, (int, float)), f"{what}: doubleValue")
        return str(x)
    if k in ("arrayValue", "kvlistValue", "bytesValue"):
        return json.dumps(x)
    raise Invalid(f"{what}: unknown AnyValue field {k!r}")


def attributes(lst, what):
    need(isinstance(lst, list), f"{what}: attributes is a list")
    out = {}
    for i, a in enumerate(lst):
        need(isinstance(a, dict) and isinstance(a.get("key"), str) and a["key"],
             f"{what}.attributes[{i}]: a KeyValue needs a key")
        need(a["key"] not in out, f"{what}: duplicate attribute {a['key']!r}")
        out[a["key"]] = any_value(a.get("value"), f"{what}.attributes[{a['key']}]")
    return out


def otlp(doc):
    need(isinstance(doc, dict), "OTLP: the body is an object")
    need(set(doc) <= {"resourceSpans"}, f"OTLP: unknown fields {set(doc) - {'resourceSpans'}}")
    rss = doc.get("resourceSpans", [])
    need(isinstance(rss, list), "resourceSpans is a list")
    got = []
    for i, rs in enumerate(rss):
        w = f"resourceSpans[{i}]"
        need(isinstance(rs, dict), f"{w} is an object")
        res = attributes(rs.get("resource", {}).get("attributes", []), f"{w}.resource")
        for j, ss in enumerate(rs.get("scopeSpans", [])):
            w2 = f"{w}.scopeSpans[{j}]"
            scope = ss.get("scope", {})
            need(isinstance(scope, dict), f"{w2}.scope is an object")
            for k, s in enumerate(ss.get("spans", [])):
                w3 = f"{w2}.spans[{k}]"
                need(isinstance(s, dict), f"{w3} is an object")
                # OTLP/JSON: ids are hex strings (not base64), 16 and 8 bytes, not all zero
                tid, sid = s.get("traceId"), s.get("spanId")
                need(isinstance(tid, str) and HEX32.match(tid) and tid != "0" * 32,
                     f"{w3}.traceId: {tid!r}")
                need(isinstance(sid, str) and HEX16.match(sid) and sid != "0" * 16,
                     f"{w3}.spanId: {sid!r}")
                pid = s.get("parentSpanId", "")
                need(pid == "" or (isinstance(pid, str) and HEX16.match(pid) and pid != "0" * 16),
                     f"{w3}.parentSpanId: {pid!r}")
                need(isinstance(s.get("name"), str) and s["name"], f"{w3}.name is required")
                kind = s.get("kind", 0)
                need(kind in OTLP_KINDS, f"{w3}.kind: {kind!r} (an integer 0..5)")
                start = uint64(s.get("startTimeUnixNano"), f"{w3}.startTimeUnixNano")
                end = uint64(s.get("endTimeUnixNano"), f"{w3}.endTimeUnixNano")
                need(start > 0 and end >= start, f"{w3}: end before start")
                attrs = attributes(s.get("attributes", []), w3)
                st = s.get("status", {})
                need(isinstance(st, dict) and st.get("code", 0) in (0, 1, 2),
                     f"{w3}.status.code: {st!r}")
                if "traceState" in s:
                    need(isinstance(s["traceState"], str), f"{w3}.traceState")
                got.append({"format": "otlp", "traceId": tid, "spanId": sid,
                            "parentSpanId": pid or None, "name": s["name"],
                            "kind": OTLP_KINDS[kind], "start_us": start // 1000,
                            "duration_us": (end - start) // 1000, "attributes": attrs,
                            "status": st.get("code", 0), "service": res.get("service.name"),
                            "resource": res})
    return got


def endpoint(e, what):
    need(isinstance(e, dict), f"{what} is an object")
    for k, v in e.items():
        need(k in ("serviceName", "ipv4", "ipv6", "port"), f"{what}: unknown field {k!r}")
        if k == "port":
            need(isinstance(v, int) and 0 <= v <= 65535, f"{what}.port")
        else:
            need(isinstance(v, str), f"{what}.{k} is a string")
    if "ipv4" in e:
        need(re.fullmatch(r"(\d{1,3}\.){3}\d{1,3}", e["ipv4"]) is not None, f"{what}.ipv4")
    if "ipv6" in e:
        need(":" in e["ipv6"], f"{what}.ipv6")


def zipkin(doc):
    need(isinstance(doc, list), "Zipkin v2: the body is a list of spans")
    got = []
    for i, s in enumerate(doc):
        w = f"[{i}]"
        need(isinstance(s, dict), f"{w} is an object")
        tid, sid = s.get("traceId"), s.get("id")
        need(isinstance(tid, str) and (HEX32.match(tid) or HEX16.match(tid)) and set(tid) != {"0"},
             f"{w}.traceId: {tid!r}")
        need(isinstance(sid, str) and HEX16.match(sid) and sid != "0" * 16, f"{w}.id: {sid!r}")
        pid = s.get("parentId")
        need(pid is None or (isinstance(pid, str) and HEX16.match(pid)), f"{w}.parentId")
        need(s.get("kind") is None or s["kind"] in ZIPKIN_KINDS, f"{w}.kind: {s.get('kind')!r}")
        need(s.get("name") is None or isinstance(s["name"], str), f"{w}.name")
        ts, dur = s.get("timestamp"), s.get("duration")
        need(ts is None or (isinstance(ts, int) and ts > 0), f"{w}.timestamp (epoch µs)")
        need(dur is None or (isinstance(dur, int) and dur >= 1), f"{w}.duration (µs, >= 1)")
        for e in ("localEndpoint", "remoteEndpoint"):
            if e in s:
                endpoint(s[e], f"{w}.{e}")
        tags = s.get("tags", {})
        need(isinstance(tags, dict) and all(isinstance(v, str) for v in tags.values()),
             f"{w}.tags: string values only")
        for b in ("debug", "shared"):
            need(s.get(b) is None or isinstance(s[b], bool), f"{w}.{b}")
        for k in s:
            need(k in ("traceId", "id", "parentId", "kind", "name", "timestamp", "duration",
                       "localEndpoint", "remoteEndpoint", "annotations", "tags", "debug",
                       "shared"), f"{w}: unknown field {k!r}")
        got.append({"format": "zipkin", "traceId": tid.rjust(32, "0"), "spanId": sid,
                    "parentSpanId": pid, "name": s.get("name"), "kind": s.get("kind"),
                    "start_us": ts, "duration_us": dur, "attributes": tags,
                    "service": s.get("localEndpoint", {}).get("serviceName")})
    return got


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def reply(self, status, body, ctype="application/json"):
        data = body.encode() if isinstance(body, str) else body
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def body(self):
        n = int(self.headers.get("Content-Length", "0"))
        return self.rfile.read(n)

    def do_POST(self):
        global posts
        data = self.body()
        if self.path == "/control":
            with lock:
                control.update(json.loads(data))
            return self.reply(200, json.dumps(control))
        if self.path not in ("/v1/traces", "/api/v2/spans"):
            return self.reply(404, '{"error":"unknown path"}')
        with lock:
            delay, status = control["delay"], control["status"]
        if delay:
            time.sleep(delay)
        if status:
            return self.reply(status, '{"error":"told to fail"}')
        try:
            ctype = self.headers.get("Content-Type", "")
            need(ctype.split(";")[0].strip() == "application/json",
                 f"Content-Type is {ctype!r}, not application/json")
            doc = json.loads(data)
            got = otlp(doc) if self.path == "/v1/traces" else zipkin(doc)
        except (Invalid, ValueError) as e:
            with lock:
                errors.append(f"{self.path}: {e}")
            return self.reply(400, json.dumps({"error": str(e)}))
        with lock:
            posts += 1
            spans.extend(got)
        if self.path == "/v1/traces":
            return self.reply(200, "{}")
        return self.reply(202, "")

    def do_GET(self):
        with lock:
            if self.path == "/spans":
                return self.reply(200, json.dumps(spans))
            if self.path == "/errors":
                return self.reply(200, json.dumps(errors))
            if self.path == "/stats":
                return self.reply(200, json.dumps({"posts": posts, "spans": len(spans),
                                                   "errors": len(errors)}))
        headers = {}
        for k, v in self.headers.items():
            k = k.lower()
            headers[k] = headers[k] + ", " + v if k in headers else v
        self.reply(200, json.dumps({"method": "GET", "path": self.path, "headers": headers}))


def main():
    args = sys.argv[1:]
    if not args or args[0] in ("-h", "--help"):
        print(__doc__)
        sys.exit(2)
    port, addr = int(args[0]), "127.0.0.1"
    i = 1
    while i < len(args):
        if args[i] == "--delay":
            control["delay"] = float(args[i + 1])
            i += 2
        elif args[i] == "--status":
            control["status"] = int(args[i + 1])
            i += 2
        else:
            addr = args[i]
            i += 1
    ThreadingHTTPServer.daemon_threads = True
    srv = ThreadingHTTPServer((addr, port), Handler)
    print("ready", flush=True)
    srv.serve_forever()


if __name__ == "__main__":
    main()
