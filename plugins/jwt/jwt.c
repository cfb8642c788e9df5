/*
 * jwt: Istio RequestAuthentication semantics in an HTTP listener's chain. Verifies JWTs (RS256,
 * ES256) from configured headers against each issuer's JWKS; a request with an invalid token is
 * answered 401, one without a token goes on (unless require = true); a verified token sets the
 * request principal "iss/sub" that authz matches, and selected claims become request headers.
 * Verification lives in verify.c, which knows nothing of the host. See docs/authz.md.
 *
 *   jwt { issuers = { { issuer = "https://idp.test", audiences = { "api" }, jwks = [[...]],
 *                       from_headers = { { name = "x-jwt", prefix = "" } }, forward = false,
 *                       claims_to_headers = { { claim = "sub", header = "x-user" } } } },
 *         require = false, clock_skew = "60s" }
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <nodus/plugin.h>

#include "verify.h"

#define MAX_LOCATIONS 16
#define MAX_CLAIM_HEADERS 16 /* per issuer */
#define JWKS_FILE_MAX (1024 * 1024)
#define CLAIM_MAX 1024 /* bytes of a claim copied to a header */
#define REALM_PATH_MAX 200

/* Where tokens are looked for: a header and the prefix before the token. */
struct location {
    char *name; /* lowercase */
    char *prefix;
    size_t prefix_len;
    uint64_t issuers; /* bit i: issuer i takes tokens from here */
};

struct claim_header {
    char *claim, *header;
};

struct issuer_opts {
    bool forward;
    struct claim_header *claims;
    size_t n_claims;
};

struct jwt_conf {
    struct jw_set *set;
    struct issuer_opts *opts; /* per issuer, same index as in set */
    size_t n_opts;
    struct location loc[MAX_LOCATIONS];
    size_t n_loc;
    char **strip; /* every claims_to_headers header: removed from every request first */
    size_t n_strip;
    bool require;
    int64_t skew;
    nodus_counter_t verified, no_token, missing, errors, rejected[JW_STATUS_COUNT];
};

struct jwt_worker {
    struct jw_worker *jw;
    char claim[CLAIM_MAX];
    char principal[512];
    char www[REALM_PATH_MAX + 512];
};

/* ---- configuration ---- */

static bool is_token(const char *s)
{
    if (!*s)
        return false;
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              strchr("!#$%&'*+-.^_`|~", c)))
            return false;
    }
    return true;
}

static char *lowercase_dup(const char *s)
{
    char *d = strdup(s);

    for (char *p = d; p && *p; p++)
        if (*p >= 'A' && *p <= 'Z')
            *p = (char)(*p + ('a' - 'A'));
    return d;
}

static void jwt_destroy(void *conf)
{
    struct jwt_conf *jc = conf;

    if (!jc)
        return;
    for (size_t i = 0; i < jc->n_opts; i++) {
        for (size_t k = 0; k < jc->opts[i].n_claims; k++) {
            free(jc->opts[i].claims[k].claim);
            free(jc->opts[i].claims[k].header);
        }
        free(jc->opts[i].claims);
    }
    free(jc->opts);
    for (size_t i = 0; i < jc->n_loc; i++) {
        free(jc->loc[i].name);
        free(jc->loc[i].prefix);
    }
    for (size_t i = 0; i < jc->n_strip; i++)
        free(jc->strip[i]);
    free(jc->strip);
    jw_free(jc->set);
    free(jc);
}

/* Adds (name, prefix) for issuer idx, merging with an equal location. */
static bool add_location(struct jwt_conf *jc, struct nodus_cfg *c, const char *name,
                         const char *prefix, size_t idx)
{
    struct location *l;

    for (size_t i = 0; i < jc->n_loc; i++)
        if (strcasecmp(jc->loc[i].name, name) == 0 && strcmp(jc->loc[i].prefix, prefix) == 0) {
            jc->loc[i].issuers |= 1ull << idx;
            return true;
        }
    if (jc->n_loc >= MAX_LOCATIONS) {
        nodus_cfg_error(c, "more than %d distinct token locations", MAX_LOCATIONS);
        return false;
    }
    l = &jc->loc[jc->n_loc];
    l->name = lowercase_dup(name);
    l->prefix = strdup(prefix);
    l->prefix_len = strlen(prefix);
    l->issuers = 1ull << idx;
    jc->n_loc++;
    if (!l->name || !l->prefix) {
        nodus_cfg_error(c, "out of memory");
        return false;
    }
    return true;
}

/* from_headers = { { name = "x-jwt", prefix = "" }, ... }; default Authorization: Bearer. */
static bool read_locations(struct jwt_conf *jc, struct nodus_cfg *is, size_t idx)
{
    struct nodus_cfg *t, *e;
    const char *name, *prefix;
    int got = nodus_cfg_table(is, "from_headers", &t);
    bool ok = true;
    size_t n;

    if (got < 0)
        return false;
    if (got == 0)
        return add_location(jc, is, "authorization", "Bearer ", idx);
    n = nodus_cfg_len(t);
    if (n == 0) {
        nodus_cfg_error(is, "from_headers: empty list");
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        got = nodus_cfg_at(t, i, &e);
        if (got != 1) {
            if (got == 0)
                nodus_cfg_error(t, "[%zu]: expected { name = \"x-jwt\", prefix = \"\" }", i + 1);
            ok = false;
            continue;
        }
        prefix = "";
        got = nodus_cfg_str(e, "name", &name);
        if (got == 0)
            nodus_cfg_error(e, "a token header needs a name");
        else if (got == 1 && !is_token(name)) {
            nodus_cfg_error(e, "name: \"%s\" is not a valid header name", name);
            got = -1;
        }
        if (nodus_cfg_str(e, "prefix", &prefix) < 0)
            ok = false;
        if (got != 1)
            ok = false;
        else if (ok)
            ok &= add_location(jc, e, name, prefix, idx);
    }
    return ok;
}

static bool add_strip(struct jwt_conf *jc, struct nodus_cfg *c, const char *header)
{
    char **v;

    for (size_t i = 0; i < jc->n_strip; i++)
        if (strcasecmp(jc->strip[i], header) == 0)
            return true;
    v = realloc(jc->strip, (jc->n_strip + 1) * sizeof(*v));
    if (!v || !(v[jc->n_strip] = lowercase_dup(header))) {
        if (v)
            jc->strip = v;
        nodus_cfg_error(c, "out of memory");
        return false;
    }
    jc->strip = v;
    jc->n_strip++;
    return true;
}

/* claims_to_headers = { { claim = "sub", header = "x-user" }, ... } */
static bool read_claims(struct jwt_conf *jc, struct nodus_cfg *is, struct issuer_opts *o)
{
    struct nodus_cfg *t, *e;
    const char *claim, *header;
    int got = nodus_cfg_table(is, "claims_to_headers", &t);
    bool ok = true;
    size_t n;

    if (got <= 0)
        return got == 0;
    n = nodus_cfg_len(t);
    if (n == 0 || n > MAX_CLAIM_HEADERS) {
        nodus_cfg_error(is, "claims_to_headers: 1 to %d { claim = ..., header = ... }",
                        MAX_CLAIM_HEADERS);
        return false;
    }
    o->claims = calloc(n, sizeof(*o->claims));
    if (!o->claims) {
        nodus_cfg_error(is, "out of memory");
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        bool eok = true;

        got = nodus_cfg_at(t, i, &e);
        if (got != 1) {
            if (got == 0)
                nodus_cfg_error(t, "[%zu]: expected { claim = ..., header = ... }", i + 1);
            ok = false;
            continue;
        }
        got = nodus_cfg_str(e, "claim", &claim);
        if (got == 0)
            nodus_cfg_error(e, "claims_to_headers needs a claim");
        else if (got == 1 && (!*claim || strlen(claim) > 127 || claim[0] == '.' ||
                              claim[strlen(claim) - 1] == '.' || strstr(claim, ".."))) {
            nodus_cfg_error(e, "claim: \"%s\": a name, or names joined by '.'", claim);
            got = -1;
        }
        eok &= got == 1;
        got = nodus_cfg_str(e, "header", &header);
        if (got == 0)
            nodus_cfg_error(e, "claims_to_headers needs a header");
        else if (got == 1 && !is_token(header)) {
            nodus_cfg_error(e, "header: \"%s\" is not a valid header name", header);
            got = -1;
        }
        eok &= got == 1;
        if (!eok) {
            ok = false;
            continue;
        }
        o->claims[o->n_claims].claim = strdup(claim);
        o->claims[o->n_claims].header = lowercase_dup(header);
        o->n_claims++;
        if (!o->claims[o->n_claims - 1].claim || !o->claims[o->n_claims - 1].header) {
            nodus_cfg_error(e, "out of memory");
            return false;
        }
        ok &= add_strip(jc, e, header);
    }
    return ok;
}

/* The JWKS text of an issuer: jwks = "..." or jwks_file = "path" (read now, at each reload). */
static char *read_jwks(struct nodus_cfg *is, size_t *len)
{
    const char *inline_jwks = NULL, *path = NULL;
    int a = nodus_cfg_str(is, "jwks", &inline_jwks), b = nodus_cfg_str(is, "jwks_file", &path);
    char *buf;
    FILE *f;

    if (a < 0 || b < 0)
        return NULL;
    if (a + b != 1) {
        nodus_cfg_error(is, "an issuer needs jwks = [[{\"keys\": ...}]] or jwks_file = \"path\" "
                            "(one of them)");
        return NULL;
    }
    if (inline_jwks) {
        *len = strlen(inline_jwks);
        buf = strdup(inline_jwks);
        if (!buf)
            nodus_cfg_error(is, "out of memory");
        return buf;
    }
    f = fopen(path, "rb");
    if (!f) {
        nodus_cfg_error(is, "jwks_file: %s: %s", path, strerror(errno));
        return NULL;
    }
    buf = malloc(JWKS_FILE_MAX + 1);
    *len = buf ? fread(buf, 1, JWKS_FILE_MAX + 1, f) : 0;
    if (!buf || ferror(f) || *len > JWKS_FILE_MAX) {
        nodus_cfg_error(is, "jwks_file: %s: %s", path,
                        !buf        ? "out of memory"
                        : ferror(f) ? "read error"
                                    : "larger than 1 MiB");
        free(buf);
        buf = NULL;
    }
    fclose(f);
    return buf;
}

static bool read_issuer(struct jwt_conf *jc, struct nodus_cfg *is, size_t idx)
{
    struct issuer_opts *o = &jc->opts[idx];
    const char *iss = NULL, **aud = NULL;
    struct nodus_cfg *t;
    char err[256], *jwks;
    size_t n_aud = 0, jwks_len = 0;
    bool ok = true;
    int got;

    got = nodus_cfg_str(is, "issuer", &iss);
    if (got == 0)
        nodus_cfg_error(is, "an issuer needs issuer = \"https://...\" (the tokens' iss)");
    ok &= got == 1;
    got = nodus_cfg_table(is, "audiences", &t);
    if (got == 1) {
        n_aud = nodus_cfg_len(t);
        aud = calloc(n_aud ? n_aud : 1, sizeof(*aud));
        if (!aud) {
            nodus_cfg_error(is, "out of memory");
            return false;
        }
        if (n_aud == 0) {
            nodus_cfg_error(is, "audiences: empty list (leave it out not to check aud)");
            ok = false;
        }
        for (size_t i = 0; i < n_aud; i++) {
            got = nodus_cfg_str_at(t, i, &aud[i]);
            if (got == 0)
                nodus_cfg_error(t, "[%zu]: expected a string", i + 1);
            ok &= got == 1;
        }
    }
    ok &= got >= 0;
    ok &= nodus_cfg_bool(is, "forward", &o->forward) >= 0;
    ok &= read_locations(jc, is, idx);
    ok &= read_claims(jc, is, o);
    jwks = read_jwks(is, &jwks_len);
    ok &= jwks != NULL;
    if (ok && jw_add_issuer(jc->set, iss, aud, n_aud, jwks, jwks_len, err, sizeof(err)) < 0) {
        nodus_cfg_error(is, "%s", err);
        ok = false;
    }
    free(jwks);
    free(aud);
    return ok;
}

static void *jwt_configure(struct nodus_cfg *cfg)
{
    struct jwt_conf *jc = calloc(1, sizeof(*jc));
    struct nodus_cfg *issuers, *is;
    uint64_t skew = 60000;
    size_t n = 0;
    bool ok = true;
    int got;

    if (!jc || !(jc->set = jw_new())) {
        nodus_cfg_error(cfg, "out of memory");
        jwt_destroy(jc);
        return NULL;
    }
    ok &= nodus_cfg_bool(cfg, "require", &jc->require) >= 0;
    got = nodus_cfg_duration(cfg, "clock_skew", &skew);
    if (got == 1 && skew > 3600 * 1000) {
        nodus_cfg_error(cfg, "clock_skew: at most 1h");
        got = -1;
    }
    ok &= got >= 0;
    jc->skew = (int64_t)(skew / 1000);
    got = nodus_cfg_table(cfg, "issuers", &issuers);
    if (got == 0)
        nodus_cfg_error(cfg, "jwt needs issuers = { { issuer = ..., jwks = ... }, ... }");
    if (got == 1) {
        n = nodus_cfg_len(issuers);
        if (n == 0 || n > JW_MAX_ISSUERS) {
            nodus_cfg_error(cfg, "issuers: 1 to %d issuers", JW_MAX_ISSUERS);
            got = -1;
        }
    }
    if (got == 1 && !(jc->opts = calloc(n, sizeof(*jc->opts)))) {
        nodus_cfg_error(cfg, "out of memory");
        got = -1;
    }
    if (got == 1)
        jc->n_opts = n;
    ok &= got == 1;
    for (size_t i = 0; ok && i < n; i++) {
        got = nodus_cfg_at(issuers, i, &is);
        if (got == 0)
            nodus_cfg_error(issuers, "[%zu]: expected an issuer table", i + 1);
        if (got != 1)
            ok = false;
        else
            ok &= read_issuer(jc, is, i);
    }
    if (!ok) {
        jwt_destroy(jc);
        return NULL;
    }
    jc->verified = nodus_counter("jwt", "verified", "Requests with a verified JWT");
    jc->no_token = nodus_counter("jwt", "no_token", "Requests without a JWT, let through");
    jc->missing = nodus_counter("jwt", "missing", "Requests without a JWT, answered 401 (require)");
    jc->errors = nodus_counter("jwt", "errors",
                               "Requests answered 500: no room left to set the request principal");
    for (int s = 1; s < JW_STATUS_COUNT; s++) {
        char name[64], help[160];

        snprintf(name, sizeof(name), "rejected_%s", jw_status_name(s));
        snprintf(help, sizeof(help), "Requests answered 401: %s", jw_status_message(s));
        jc->rejected[s] = nodus_counter("jwt", name, help);
    }
    return jc;
}

static void *jwt_worker_init(void *conf, unsigned worker_id)
{
    const struct jwt_conf *jc = conf;
    struct jwt_worker *w = malloc(sizeof(*w));

    (void)worker_id;
    if (w && !(w->jw = jw_worker_new(jc->set))) {
        free(w);
        w = NULL;
    }
    if (!w)
        nodus_log(NODUS_LOG_ERR,
                  "jwt: worker %u: out of memory: its requests with a token "
                  "will be answered 401",
                  worker_id);
    return w;
}

static void jwt_worker_fini(void *conf, void *worker)
{
    struct jwt_worker *w = worker;

    (void)conf;
    if (w)
        jw_worker_free(w->jw);
    free(w);
}

/* ---- request ---- */

/* Appends s to out as realm text: '"', '\\', controls and non-ASCII as %XX. */
static size_t realm_put(char *out, size_t n, size_t cap, struct nodus_slice s, size_t max)
{
    for (size_t i = 0; i < s.len && i < max && n + 4 < cap; i++) {
        unsigned char c = (unsigned char)s.p[i];

        if (c < 0x21 || c >= 0x7f || c == '"' || c == '\\') {
            n += (size_t)snprintf(out + n, cap - n, "%%%02X", c);
        } else {
            out[n++] = (char)c;
        }
    }
    return n;
}

/* 401, with WWW-Authenticate as Envoy's: Bearer realm="http://host/path"[, error=...]. */
static int unauthorized(struct nodus_http *h, const struct nodus_ctx *ctx, enum jw_status st)
{
    struct jwt_worker *w = ctx->worker;
    const char *msg = st == JW_OK ? "Jwt is missing" : jw_status_message(st);
    char fallback[64];
    char *buf = w ? w->www : fallback;
    size_t cap = w ? sizeof(w->www) : sizeof(fallback), n;

    nodus_http_respond(h, 401, msg, strlen(msg));
    n = (size_t)snprintf(buf, cap, "Bearer realm=\"http://");
    if (w) {
        n = realm_put(buf, n, cap, nodus_http_authority(h), 255);
        n = realm_put(buf, n, cap, nodus_http_path(h), REALM_PATH_MAX);
    }
    n += (size_t)snprintf(buf + n, cap - n, "\"%s", st == JW_OK ? "" : ", error=\"invalid_token\"");
    nodus_http_resp_header_set(h, "www-authenticate", buf, n < cap ? n : cap - 1);
    return NODUS_RESPOND;
}

static int reject(struct nodus_http *h, const struct nodus_ctx *ctx, enum jw_status st)
{
    const struct jwt_conf *jc = ctx->conf;

    nodus_counter_add(ctx->worker_id, jc->rejected[st], 1);
    nodus_log(NODUS_LOG_DEBUG, "jwt: token refused: %s", jw_status_name(st));
    return unauthorized(h, ctx, st);
}

/* The principal "iss/sub" and the claim headers of a verified token. JW_OK, a refusal, or
 * JW_STATUS_COUNT when the principal could not be set. */
static enum jw_status accept_token(struct nodus_http *h, const struct nodus_ctx *ctx,
                                   const struct jw_result *r)
{
    const struct jwt_conf *jc = ctx->conf;
    struct jwt_worker *w = ctx->worker;
    const struct issuer_opts *o = &jc->opts[r->issuer];
    size_t n = r->iss.len + 1 + r->sub.len;

    if (n > 255)
        return JW_E_CLAIMS; /* the request principal holds 255 bytes: never let one be cut */
    memcpy(w->principal, r->iss.p, r->iss.len);
    w->principal[r->iss.len] = '/';
    memcpy(w->principal + r->iss.len + 1, r->sub.p, r->sub.len);
    /* no room for it: the request must not go on as anonymous (the host does not stop it) */
    if (nodus_http_set_request_principal(h, w->principal, n) < 0)
        return JW_STATUS_COUNT;
    for (size_t i = 0; i < o->n_claims; i++) {
        long len = jw_claim(w->jw, o->claims[i].claim, w->claim, sizeof(w->claim));

        if (len > 0)
            nodus_http_req_header_set(h, o->claims[i].header, w->claim, (size_t)len);
    }
    return JW_OK;
}

static int jwt_request_headers(struct nodus_http *h, const struct nodus_ctx *ctx)
{
    const struct jwt_conf *jc = ctx->conf;
    struct jwt_worker *w = ctx->worker;
    struct timespec ts;
    bool found = false, principal_set = false;

    /* headers made from claims come from a verified token only, never from the client */
    for (size_t i = 0; i < jc->n_strip; i++)
        nodus_http_req_header_remove(h, jc->strip[i]);
    clock_gettime(CLOCK_REALTIME_COARSE, &ts);
    for (size_t i = 0; i < jc->n_loc; i++) {
        const struct location *l = &jc->loc[i];
        struct nodus_slice v;
        struct jw_result r;
        enum jw_status st;

        if (nodus_http_req_header(h, l->name, &v) != 1)
            continue;
        if (v.len < l->prefix_len || strncasecmp(v.p, l->prefix, l->prefix_len) != 0)
            continue; /* not a token for this location (e.g. Authorization: Basic) */
        v.p += l->prefix_len;
        v.len -= l->prefix_len;
        while (v.len && (v.p[0] == ' ' || v.p[0] == '\t'))
            v.p++, v.len--;
        while (v.len && (v.p[v.len - 1] == ' ' || v.p[v.len - 1] == '\t'))
            v.len--;
        found = true;
        if (!w)
            return reject(h, ctx, JW_E_SIGNATURE);
        st = jw_verify(jc->set, w->jw, v.p, v.len, ts.tv_sec, jc->skew, &r);
        if (st == JW_OK && !(l->issuers & (1ull << r.issuer)))
            st = JW_E_ISSUER; /* a known issuer, but its tokens do not come from here */
        /* every token presented must verify; the first one speaks for the request */
        if (st == JW_OK && !principal_set) {
            st = accept_token(h, ctx, &r);
            principal_set = st == JW_OK;
            if (st == JW_STATUS_COUNT) {
                nodus_counter_add(ctx->worker_id, jc->errors, 1);
                nodus_http_respond(h, 500, "", 0);
                return NODUS_RESPOND;
            }
        }
        if (st != JW_OK)
            return reject(h, ctx, st);
        if (!jc->opts[r.issuer].forward)
            nodus_http_req_header_remove(h, l->name);
    }
    if (!found) {
        if (jc->require) {
            nodus_counter_add(ctx->worker_id, jc->missing, 1);
            return unauthorized(h, ctx, JW_OK);
        }
        nodus_counter_add(ctx->worker_id, jc->no_token, 1);
        return NODUS_CONTINUE;
    }
    nodus_counter_add(ctx->worker_id, jc->verified, 1);
    return NODUS_CONTINUE;
}

static const struct nodus_http_ops jwt_http = {
    .request_headers = jwt_request_headers,
};

static const struct nodus_plugin jwt_plugin = {
    .abi = NODUS_PLUGIN_ABI,
    .name = "jwt",
    .description = "Istio RequestAuthentication: verifies RS256/ES256 JWTs against JWKS, sets "
                   "the request principal iss/sub, copies claims to headers (401 when invalid)",
    .flags = NODUS_PLUGIN_HTTP,
    .configure = jwt_configure,
    .destroy = jwt_destroy,
    .worker_init = jwt_worker_init,
    .worker_fini = jwt_worker_fini,
    .http = &jwt_http,
};

NODUS_PLUGIN(jwt_plugin)
