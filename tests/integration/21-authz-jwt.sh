#!/usr/bin/env bash
# jwt and authz as a user checks them: nodus in front of nginx (and a small header-echoing
# upstream), tokens signed by the openssl CLI in this test (RS256 with `openssl dgst -sign`,
# ES256 the same with the DER signature turned into r||s by a few lines of python3), curl:
#   no token: 200 where allowed, 403 where only a principal is allowed, 401 where required;
#   a valid token: 200 and its claim (sub) seen upstream as x-user, the token header dropped
#   (forward = false), a spoofed x-user never reaching the upstream;
#   expired, alg none, tampered, wrong audience: 401 with WWW-Authenticate and the reason;
#   deny by path (also //admin and /public/../admin), by method, by header: 403 "RBAC: access
#   denied"; allow by request principal (RS256 in Authorization, ES256 in x-jwt);
#   source IP blocks (IPv4, and IPv6 on ::1 when the kernel has it); a shadow policy;
#   the counters in /stats/prometheus; the denial log line, without the token; config errors.
# Peer principals (mTLS) cannot be tested end to end until the mtls plugin is in the chain:
# tests/unit/test_authz.c covers principals and namespaces.
# shellcheck disable=SC1091
. "$(dirname "$0")/lib.sh"

need_cmd curl nginx python3 openssl

up=$(free_port)
echo_port=$(free_port)
port=$(free_port)
strict=$(free_port)
ipdeny=$(free_port)
shadow=$(free_port)
admin=$(free_port)
start_nginx_upstream "$up" web

# an upstream that answers with the request headers it got, one "name: value" per line
cat >"$T/echo.py" <<'PY'
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *a):
        pass
    def do_GET(self):
        body = "".join("%s: %s\n" % (k.lower(), v) for k, v in self.headers.items()).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
PY
bg echo python3 "$T/echo.py" "$echo_port"
for ((i = 0; i < 50; i++)); do
    [ "$(http_status "http://127.0.0.1:$echo_port/")" = 200 ] && break
    sleep 0.1
done

# ---- keys (openssl) and tokens ----
cd "$T"
openssl genrsa -out rsa.pem 2048 2>/dev/null
openssl genrsa -out other.pem 2048 2>/dev/null
openssl ecparam -name prime256v1 -genkey -noout -out ec.pem
openssl rsa -in rsa.pem -noout -modulus | cut -d= -f2 >rsa.mod
openssl ec -in ec.pem -pubout -outform DER -out ec.der 2>/dev/null
b64url() { openssl base64 -A | tr '+/' '-_' | tr -d '='; }
python3 - <<'PY'
import base64, json
b = lambda x: base64.urlsafe_b64encode(x).rstrip(b"=").decode()
n = bytes.fromhex(open("rsa.mod").read().strip())
d = open("ec.der", "rb").read()
json.dump({"keys": [{"kty": "RSA", "kid": "r1", "use": "sig", "n": b(n), "e": "AQAB"}]},
          open("rsa.jwks", "w"))
json.dump({"keys": [{"kty": "EC", "crv": "P-256", "kid": "e1", "x": b(d[-64:-32]),
                     "y": b(d[-32:])}]}, open("ec.jwks", "w"))
PY
cat >der2raw.py <<'PY'
import sys
d = sys.stdin.buffer.read()
assert d[0] == 0x30
i, out = 2, b""
for _ in range(2):
    assert d[i] == 2
    l = d[i + 1]
    out += d[i + 2:i + 2 + l].lstrip(b"\0").rjust(32, b"\0")
    i += 2 + l
sys.stdout.buffer.write(out)
PY
# token HEADER PAYLOAD KEY [es]: header.payload signed by openssl
token() {
    local si
    si="$(printf %s "$1" | b64url).$(printf %s "$2" | b64url)"
    if [ "${4:-}" = es ]; then
        printf '%s.%s' "$si" "$(printf %s "$si" | openssl dgst -sha256 -sign "$3" | python3 der2raw.py | b64url)"
    else
        printf '%s.%s' "$si" "$(printf %s "$si" | openssl dgst -sha256 -sign "$3" | b64url)"
    fi
}
now=$(date +%s)
RS='{"alg":"RS256","kid":"r1","typ":"JWT"}'
claims() { printf '{"iss":"https://idp.test","sub":"%s","aud":"api","exp":%d%s}' "$1" "$((now + ${2:-600}))" "${3:-}"; }
alice=$(token "$RS" "$(claims alice)" rsa.pem)
bob=$(token "$RS" "$(claims bob)" rsa.pem)
expired=$(token "$RS" "$(claims alice -120)" rsa.pem)
skewed=$(token "$RS" "$(claims alice -20)" rsa.pem) # expired 20 s ago: within the 60 s skew
wrongaud=$(token "$RS" '{"iss":"https://idp.test","sub":"alice","aud":"other"}' rsa.pem)
forged=$(token "$RS" "$(claims alice)" other.pem)
none="$(printf '{"alg":"none"}' | b64url).$(claims alice | b64url)."
es=$(token '{"alg":"ES256","kid":"e1"}' '{"iss":"https://es.test","sub":"svc-1"}' ec.pem es)
cd - >/dev/null

# ---- configuration ----
cfg=$(write_file authz.lua <<LUA
node { name = "authz-it", workers = 2, log_level = "info" }
admin { listen = "127.0.0.1:$admin" }
cluster "web" { endpoints = { "127.0.0.1:$up" } }
cluster "echo" { endpoints = { "127.0.0.1:$echo_port" } }
local function routes()
  return router { { match = { prefix = "/echo" }, cluster = "echo" },
                  { match = { prefix = "/" }, cluster = "web" } }
end
local rsa = { issuer = "https://idp.test", audiences = { "api" }, jwks_file = "$T/rsa.jwks",
              claims_to_headers = { { claim = "sub", header = "x-user" } } }
listener "api" {
  listen = "127.0.0.1:$port",
  max_request_headers_kb = 32, -- room for a token over jwt's 8 KiB bound
  plugins = {
    jwt { clock_skew = "60s", issuers = {
      rsa,
      { issuer = "https://es.test", jwks = [[$(cat "$T/ec.jwks")]],
        from_headers = { { name = "x-jwt" } }, forward = true },
    } },
    authz { rules = {
      { name = "no-admin", action = "deny", paths = { "/admin*" } },
      { name = "no-delete", action = "deny", methods = { "DELETE" } },
      { name = "no-debug", action = "deny", headers = { { name = "x-debug", values = { "1", "on" } } } },
      { name = "public", action = "allow", paths = { "/public*", "/echo*" } },
      { name = "alice", action = "allow", request_principals = { "https://idp.test/alice" } },
      { name = "services", action = "allow", request_principals = { "https://es.test/svc-*" } },
    } },
    routes(),
  },
}
listener "strict" {
  listen = "127.0.0.1:$strict",
  plugins = {
    jwt { require = true, issuers = { rsa } },
    authz { { name = "outside", action = "deny", not_ip_blocks = { "127.0.0.0/8", "::1" } } },
    routes(),
  },
}
listener "ipdeny" {
  listen = "127.0.0.1:$ipdeny",
  plugins = { authz { { name = "loopback4", action = "deny", ip_blocks = { "127.0.0.1/32" },
                        paths = { "/x" } },
                      { name = "this-port", action = "deny", ports = { "$ipdeny" }, paths = { "/p" } },
                      { name = "other-port", action = "deny", ports = { "1" }, paths = { "/q" } },
                      { name = "not-this-port", action = "deny", not_ports = { "$ipdeny" },
                        paths = { "/r" } } },
              routes() },
}
listener "shadow" {
  listen = "127.0.0.1:$shadow",
  plugins = { authz { shadow = true, { name = "would-deny", action = "deny", paths = { "/*" } } },
              routes() },
}
LUA
)
v6=0
if python3 -c 'import socket; socket.socket(socket.AF_INET6).bind(("::1", 0))' 2>/dev/null; then
    v6=1
    v6port=$(free_port)
    cat >>"$cfg" <<LUA
listener "ipdeny6" {
  listen = "[::1]:$v6port",
  plugins = { authz { { name = "loopback6", action = "deny", ip_blocks = { "::1/128" } } },
              routes() },
}
LUA
else
    log "no ::1 on this kernel: the IPv6 source block check is skipped"
fi
"$NODUS" check "$cfg" >/dev/null || die "config refused: $("$NODUS" check "$cfg" 2>&1)"
start_nodus "$cfg"
wait_http "http://127.0.0.1:$admin/ready" 15 || die "nodus not ready"

req() {
    local u=$1
    shift
    : >"$T/h.raw"
    : >"$T/b"
    CODE=$(curl -gs -o "$T/b" -D "$T/h.raw" -w '%{http_code}' --max-time 5 "$@" "$u" || true)
    tr -d '\r' <"$T/h.raw" >"$T/h"
    BODY=$(cat "$T/b")
}
hdr() { awk -v n="${1,,}" 'index(tolower($0), n ": ") == 1 { sub(/^[^:]*: /, ""); print; exit }' "$T/h"; }
url=http://127.0.0.1:$port
bearer() { printf 'Authorization: Bearer %s' "$1"; }
expect() { # CODE BODY WHY
    [ "$CODE" = "$1" ] || die "$3: expected $1, got $CODE '$BODY'"
    [ -z "$2" ] || [ "$BODY" = "$2" ] || die "$3: expected body '$2', got '$BODY'"
}
RBAC="RBAC: access denied"

# ---- 1. no token ----
req "$url/public/x"
expect 200 web "no token, allowed path"
req "$url/private"
expect 403 "$RBAC" "no token, only principals allowed there"
req "$url/public/x" -H 'x-user: admin'
expect 200 web "spoofed x-user"
assert_eq "" "$(hdr x-seen-user)" "a client's x-user never reaches the upstream"

# ---- 2. valid tokens: principal, claims ----
req "$url/private" -H "$(bearer "$alice")"
expect 200 web "alice (RS256) allowed by request principal"
assert_eq alice "$(hdr x-seen-user)" "the sub claim as x-user upstream"
req "$url/private" -H "$(bearer "$alice")" -H 'x-user: root'
assert_eq alice "$(hdr x-seen-user)" "the claim replaces a spoofed x-user"
req "$url/private" -H "$(bearer "$skewed")"
expect 200 web "a token expired 20 s ago, within clock_skew 60s"
req "$url/private" -H "$(bearer "$bob")"
expect 403 "$RBAC" "bob is authenticated but no allow rule names him"
req "$url/private" -H "x-jwt: $es"
expect 200 web "ES256 token from x-jwt, allowed by request principal prefix"
req "$url/echo" -H "$(bearer "$alice")"
expect 200 "" "echo upstream"
assert_contains "$BODY" "x-user: alice" "echo upstream sees the claim header"
case "$BODY" in *authorization:*) die "forward = false: the token went upstream: $BODY" ;; esac
req "$url/echo" -H "x-jwt: $es"
assert_contains "$BODY" "x-jwt: $es" "forward = true keeps the token"
req "$url/public/x" -H 'Authorization: Basic dXNlcjpwdw=='
expect 200 web "Authorization: Basic is not a bearer token"

# ---- 3. invalid tokens: 401 ----
check401() { # TOKEN-HEADER BODY WHY
    req "$url/public/x" -H "$1"
    expect 401 "$2" "$3"
    assert_contains "$(hdr www-authenticate)" 'error="invalid_token"' "$3: WWW-Authenticate"
    assert_contains "$(hdr www-authenticate)" "Bearer realm=\"http://127.0.0.1/public/x\"" "$3: realm"
}
check401 "$(bearer "$expired")" "Jwt is expired" "expired"
check401 "$(bearer "$wrongaud")" "Audiences in Jwt are not allowed" "wrong audience"
check401 "$(bearer "$forged")" "Jwt verification fails" "signed by another key"
check401 "$(bearer "$none")" "Jwt algorithm is not supported" "alg none"
check401 "$(bearer "${alice%?????}")" "" "truncated"
check401 "$(bearer "garbage")" "" "garbage"
check401 "$(bearer "$(head -c 9000 /dev/zero | tr '\0' A)")" "Jwt is too large" "oversized"
check401 "x-jwt: $alice" "Jwt issuer is not configured" "an RSA issuer's token in the ES issuer's header"

# ---- 4. deny rules ----
req "$url/admin/users" -H "$(bearer "$alice")"
expect 403 "$RBAC" "deny by path beats alice's allow"
req "$url//admin/users" -H "$(bearer "$alice")"
expect 403 "$RBAC" "//admin is /admin (merge_slashes)"
req "$url/public/../admin" --path-as-is
expect 403 "$RBAC" "/public/../admin is /admin"
req "$url/public/%2e%2e/admin" --path-as-is
expect 403 "$RBAC" "/public/%2e%2e/admin is /admin"
req "$url/private" -X DELETE -H "$(bearer "$alice")"
expect 403 "$RBAC" "deny by method"
req "$url/private" -H "$(bearer "$alice")" -H 'X-Debug: on'
expect 403 "$RBAC" "deny by header"
req "$url/private" -H "$(bearer "$alice")" -H 'X-Debug: off'
expect 200 web "a header value not listed"

# ---- 5. required tokens, source IPs, shadow ----
req "http://127.0.0.1:$strict/x"
expect 401 "Jwt is missing" "require = true without a token"
assert_eq 'Bearer realm="http://127.0.0.1/x"' "$(hdr www-authenticate)" "missing: no error code"
req "http://127.0.0.1:$strict/x" -H "$(bearer "$alice")"
expect 200 web "require = true with a token, from 127.0.0.1 (not_ip_blocks)"
req "http://127.0.0.1:$ipdeny/x"
expect 403 "$RBAC" "deny by source IPv4 block"
req "http://127.0.0.1:$ipdeny/p"
expect 403 "$RBAC" "deny by destination port (the listener's)"
req "http://127.0.0.1:$ipdeny/q"
expect 200 web "a deny for another port does not apply"
req "http://127.0.0.1:$ipdeny/r"
expect 200 web "not_ports with the listener's port does not apply"
if [ "$v6" = 1 ]; then
    req "http://[::1]:$v6port/x"
    expect 403 "$RBAC" "deny by source IPv6 block"
fi
req "http://127.0.0.1:$shadow/x"
expect 200 web "a shadow deny lets the request through"

# ---- 6. counters, log ----
sleep 0.3
curl -s --max-time 5 -o "$T/m" "http://127.0.0.1:$admin/stats/prometheus"
metric() { awk -v n="$1" '$1 == n { print $2 }' "$T/m"; }
assert_eq $((8 + v6)) "$(metric nodus_plugin_authz_denied_total)" "authz denied by a deny rule"
assert_eq 4 "$(metric nodus_plugin_authz_rule_no_admin_total)" "rule no-admin"
assert_eq 1 "$(metric nodus_plugin_authz_rule_no_delete_total)" "rule no-delete"
assert_eq 2 "$(metric nodus_plugin_authz_denied_no_match_total)" "no allow rule matched"
assert_eq 1 "$(metric nodus_plugin_authz_shadow_denied_total)" "shadow"
assert_eq 1 "$(metric nodus_plugin_jwt_rejected_expired_total)" "jwt expired"
assert_eq 1 "$(metric nodus_plugin_jwt_rejected_bad_alg_total)" "jwt alg none"
assert_eq 1 "$(metric nodus_plugin_jwt_rejected_too_large_total)" "jwt too large"
assert_eq 1 "$(metric nodus_plugin_jwt_missing_total)" "jwt missing (require)"
[ "$(metric nodus_plugin_jwt_verified_total)" -ge 10 ] || die "jwt verified: $(metric nodus_plugin_jwt_verified_total)"
grep -q 'authz: denied by rule no-admin: method="GET" path="/admin/users" principal="" request_principal="https://idp.test/alice"' "$NODUS_LOG" ||
    die "no denial line naming the rule: $(grep authz: "$NODUS_LOG" | head -5)"
grep -q 'authz: shadow: would deny by rule would-deny' "$NODUS_LOG" || die "no shadow line"
sig=${alice##*.}
if grep -qF "${sig:0:40}" "$NODUS_LOG"; then die "a token was logged"; fi

# ---- 7. configuration errors ----
cat >"$T/bad.lua" <<LUA
cluster "web" { endpoints = { "127.0.0.1:$up" } }
listener "x" { listen = "127.0.0.1:$(free_port)", plugins = {
  jwt { issuers = { { issuer = "a", jwks_file = "$T/none.json" } } },
  authz { { action = "deny",
            paths = { "/a*b" } } },
  router { { match = { prefix = "/" }, cluster = "web" } } } }
LUA
if "$NODUS" check "$T/bad.lua" >"$T/check" 2>&1; then die "a bad config was accepted"; fi
assert_contains "$(cat "$T/check")" "bad.lua:3: listener \"x\": plugins[1] (jwt): issuers[1]: jwks_file" "jwt error"
assert_contains "$(cat "$T/check")" "bad.lua:4: listener \"x\": plugins[2] (authz): [1]: paths: \"/a*b\"" "authz error"
pass "jwt (RS256, ES256, 401 reasons, claims, forward) and authz (deny/allow, paths, methods, headers, principals, IPs, shadow)"
