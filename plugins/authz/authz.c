/*
 * authz: Istio AuthorizationPolicy semantics in an HTTP listener's chain. Reads the rules here;
 * matching lives in policy.c, which knows nothing of the host. See docs/authz.md.
 *
 *   authz { shadow = false, path_normalization = "merge_slashes",
 *           rules = { { name = "no-admin", action = "deny", paths = { "/admin*" } },
 *                     { action = "allow", request_principals = { "https://idp.test/x" } } } }
 *
 * A denied request is answered 403 "RBAC: access denied", counted, and logged in one line naming
 * the rule, the method, the path (without the query) and the principals.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nodus/plugin.h>

#include "policy.h"

/* Per-worker buffer for the normalized path. Longer paths are denied (fail closed). */
#define AUTHZ_PATH_MAX 16384
#define AUTHZ_BODY "RBAC: access denied"

struct authz_conf {
    struct az_policy *policy;
    enum az_norm norm;
    nodus_counter_t allowed, denied, denied_no_match, shadow_denied, errors;
    nodus_counter_t *rule_counters; /* one per rule: requests it decided */
};

struct authz_worker {
    char path[AUTHZ_PATH_MAX];
};

/* ---- configuration ---- */

/* What one rule's reading allocates, freed once the policy has copied it. */
struct rule_tmp {
    const char **lists[2 * AZ_F_COUNT];
    struct az_header_spec *headers;
    const char **hdr_lists[64];
    size_t n_hdr_lists;
};

static void rule_tmp_free(struct rule_tmp *t)
{
    for (size_t i = 0; i < 2 * AZ_F_COUNT; i++)
        free(t->lists[i]);
    for (size_t i = 0; i < t->n_hdr_lists; i++)
        free(t->hdr_lists[i]);
    free(t->headers);
}

/* key = { "a", "b*", ... }: true with the strings (calloc'd into *keep) in *out. */
static bool read_strings(struct nodus_cfg *c, const char *key, struct az_strings *out,
                         const char ***keep)
{
    struct nodus_cfg *t;
    const char **v;
    size_t n;
    int got = nodus_cfg_table(c, key, &t);
    bool ok = true;

    *out = (struct az_strings){0};
    if (got <= 0)
        return got == 0;
    n = nodus_cfg_len(t);
    if (n == 0) {
        nodus_cfg_error(c, "%s: empty list", key);
        return false;
    }
    v = calloc(n, sizeof(*v));
    if (!v) {
        nodus_cfg_error(c, "out of memory");
        return false;
    }
    *keep = v;
    for (size_t i = 0; i < n; i++) {
        got = nodus_cfg_str_at(t, i, &v[i]);
        if (got == 0)
            nodus_cfg_error(t, "[%zu]: expected a string", i + 1);
        if (got != 1)
            ok = false;
    }
    *out = (struct az_strings){v, n};
    return ok;
}

/* headers = { { name = "x-env", values = { "prod" }, not_values = { "test*" } }, ... } */
static bool read_headers(struct nodus_cfg *c, struct az_rule_spec *s, struct rule_tmp *tmp)
{
    struct nodus_cfg *t, *e;
    size_t n;
    int got = nodus_cfg_table(c, "headers", &t);
    bool ok = true;

    if (got <= 0)
        return got == 0;
    n = nodus_cfg_len(t);
    if (n == 0 || n > 32) {
        nodus_cfg_error(c, "headers: a list of 1 to 32 { name = ..., values = { ... } }");
        return false;
    }
    tmp->headers = calloc(n, sizeof(*tmp->headers));
    if (!tmp->headers) {
        nodus_cfg_error(c, "out of memory");
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        struct az_header_spec *h = &tmp->headers[i];

        got = nodus_cfg_at(t, i, &e);
        if (got != 1) {
            if (got == 0)
                nodus_cfg_error(t, "[%zu]: expected { name = ..., values = { ... } }", i + 1);
            ok = false;
            continue;
        }
        got = nodus_cfg_str(e, "name", &h->name);
        if (got == 0)
            nodus_cfg_error(e, "a header condition needs a name");
        ok &= got == 1;
        ok &= read_strings(e, "values", &h->values, &tmp->hdr_lists[tmp->n_hdr_lists++]);
        ok &= read_strings(e, "not_values", &h->not_values, &tmp->hdr_lists[tmp->n_hdr_lists++]);
    }
    s->headers = tmp->headers;
    s->n_headers = n;
    return ok;
}

static bool read_rule(struct az_policy *p, struct nodus_cfg *r)
{
    struct az_rule_spec s = {0};
    struct rule_tmp tmp = {0};
    const char *action = NULL;
    char key[64], err[256];
    bool ok = true;
    int got;

    got = nodus_cfg_str(r, "action", &action);
    if (got == 0)
        nodus_cfg_error(r, "a rule needs action = \"allow\" or \"deny\"");
    else if (got == 1 && strcmp(action, "allow") != 0 && strcmp(action, "deny") != 0) {
        nodus_cfg_error(r, "action: \"%s\": \"allow\" or \"deny\"", action);
        got = -1;
    }
    ok &= got == 1;
    s.action = action && strcmp(action, "deny") == 0 ? AZ_DENY : AZ_ALLOW;
    ok &= nodus_cfg_str(r, "name", &s.name) >= 0;
    for (int f = 0; f < AZ_F_COUNT; f++) {
        ok &= read_strings(r, az_field_key(f), &s.values[f], &tmp.lists[2 * f]);
        snprintf(key, sizeof(key), "not_%s", az_field_key(f));
        ok &= read_strings(r, key, &s.not_values[f], &tmp.lists[2 * f + 1]);
    }
    ok &= read_headers(r, &s, &tmp);
    if (ok && az_add_rule(p, &s, err, sizeof(err)) < 0) {
        nodus_cfg_error(r, "%s", err);
        ok = false;
    }
    rule_tmp_free(&tmp);
    return ok;
}

static bool read_norm(struct nodus_cfg *cfg, enum az_norm *norm)
{
    static const struct {
        const char *name;
        enum az_norm norm;
    } kinds[] = {{"none", AZ_NORM_NONE},
                 {"base", AZ_NORM_BASE},
                 {"merge_slashes", AZ_NORM_MERGE_SLASHES},
                 {"decode_and_merge_slashes", AZ_NORM_DECODE_AND_MERGE_SLASHES}};
    const char *s;
    int got = nodus_cfg_str(cfg, "path_normalization", &s);

    *norm = AZ_NORM_MERGE_SLASHES;
    if (got <= 0)
        return got == 0;
    for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++)
        if (strcmp(s, kinds[i].name) == 0) {
            *norm = kinds[i].norm;
            return true;
        }
    nodus_cfg_error(cfg,
                    "path_normalization: \"%s\": one of none, base, merge_slashes, "
                    "decode_and_merge_slashes",
                    s);
    return false;
}

static void authz_destroy(void *conf)
{
    struct authz_conf *ac = conf;

    if (!ac)
        return;
    az_free(ac->policy);
    free(ac->rule_counters);
    free(ac);
}

static void *authz_configure(struct nodus_cfg *cfg)
{
    struct authz_conf *ac = calloc(1, sizeof(*ac));
    struct nodus_cfg *rules, *r;
    bool ok = true, shadow = false;
    size_t n;
    int got;

    if (!ac || !(ac->policy = az_new())) {
        nodus_cfg_error(cfg, "out of memory");
        authz_destroy(ac);
        return NULL;
    }
    ok &= nodus_cfg_bool(cfg, "shadow", &shadow) >= 0;
    az_set_shadow(ac->policy, shadow);
    ok &= read_norm(cfg, &ac->norm);
    got = nodus_cfg_table(cfg, "rules", &rules);
    if (got == 1 && nodus_cfg_len(cfg) > 0) {
        nodus_cfg_error(cfg, "give the rules as a list (the short form) or as rules = { ... }, "
                             "not both");
        ok = false;
    }
    if (got == 0)
        rules = cfg;
    if (got >= 0) {
        n = nodus_cfg_len(rules);
        if (n == 0) {
            nodus_cfg_error(cfg, "authz needs rules: authz { rules = { { action = \"allow\", "
                                 "... } } } (deny everything: { action = \"deny\" })");
            ok = false;
        }
        for (size_t i = 0; i < n; i++) {
            got = nodus_cfg_at(rules, i, &r);
            if (got == 0)
                nodus_cfg_error(rules, "[%zu]: expected a rule table", i + 1);
            if (got != 1)
                ok = false;
            else
                ok &= read_rule(ac->policy, r);
        }
    } else {
        ok = false;
    }
    if (!ok) {
        authz_destroy(ac);
        return NULL;
    }
    n = az_rule_count(ac->policy);
    ac->rule_counters = calloc(n, sizeof(*ac->rule_counters));
    if (!ac->rule_counters) {
        nodus_cfg_error(cfg, "out of memory");
        authz_destroy(ac);
        return NULL;
    }
    for (size_t i = 0; i < n; i++) {
        char name[96];

        snprintf(name, sizeof(name), "rule_%s", az_rule_name(ac->policy, i));
        /* -1 when the node's counters are exhausted: nodus_counter_add() ignores it */
        ac->rule_counters[i] = nodus_counter("authz", name, "Requests decided by this rule");
    }
    ac->allowed = nodus_counter("authz", "allowed", "Requests allowed");
    ac->denied = nodus_counter("authz", "denied", "Requests denied (403) by a deny rule");
    ac->denied_no_match =
        nodus_counter("authz", "denied_no_match", "Requests denied (403): no allow rule matched");
    ac->shadow_denied = nodus_counter("authz", "shadow_denied",
                                      "Requests a shadow policy would deny (let through)");
    ac->errors = nodus_counter("authz", "errors",
                               "Requests denied (403) because they could not be evaluated (path "
                               "too long, no worker state)");
    return ac;
}

static void *authz_worker_init(void *conf, unsigned worker_id)
{
    (void)conf;
    (void)worker_id;
    return malloc(sizeof(struct authz_worker));
}

static void authz_worker_fini(void *conf, void *worker)
{
    (void)conf;
    free(worker);
}

/* A JSON string of the policy: {"shadow":false,"rules":[{"name":"x","action":"deny"},...]}. */
static size_t authz_describe(const void *conf, char *buf, size_t len)
{
    const struct authz_conf *ac = conf;
    size_t n = az_rule_count(ac->policy), need = 0;
    int w;

#define PUT(...)                                                                                   \
    do {                                                                                           \
        w = snprintf(buf + (need < len ? need : len), need < len ? len - need : 0, __VA_ARGS__);   \
        need += w > 0 ? (size_t)w : 0;                                                             \
    } while (0)
    PUT("{\"shadow\":%s,\"rules\":[", az_shadow(ac->policy) ? "true" : "false");
    for (size_t i = 0; i < n; i++) /* names are [A-Za-z0-9_.-]: nothing to escape */
        PUT("%s{\"name\":\"%s\",\"action\":\"%s\"}", i ? "," : "", az_rule_name(ac->policy, i),
            az_rule_action(ac->policy, i) == AZ_DENY ? "deny" : "allow");
    PUT("]}");
#undef PUT
    return need;
}

/* ---- request ---- */

static int req_header(void *arg, const char *name, struct nodus_slice *v)
{
    return nodus_http_req_header(arg, name, v);
}

/* s for a log line: printable ASCII but '"' and '\\' (those become '?'), at most max bytes. */
static const char *printable(char *out, size_t cap, struct nodus_slice s, size_t max)
{
    size_t n = 0;

    for (size_t i = 0; i < s.len && i < max && n + 4 < cap; i++) {
        unsigned char c = (unsigned char)s.p[i];

        out[n++] = (c >= 0x20 && c < 0x7f && c != '"' && c != '\\') ? (char)c : '?';
    }
    if (s.len > max && n + 4 < cap) {
        memcpy(out + n, "...", 3);
        n += 3;
    }
    out[n] = '\0';
    return out;
}

static void log_denial(struct nodus_http *h, const struct authz_conf *ac, long rule,
                       const char *why)
{
    char m[40], p[260], pp[132], rp[132];

    nodus_log(NODUS_LOG_INFO,
              "authz: %s%s%s%s: method=\"%s\" path=\"%s\" principal=\"%s\" "
              "request_principal=\"%s\"",
              az_shadow(ac->policy) ? "shadow: would deny" : "denied", why,
              rule >= 0 ? " by rule " : "", rule >= 0 ? az_rule_name(ac->policy, (size_t)rule) : "",
              printable(m, sizeof(m), nodus_http_method(h), 32),
              printable(p, sizeof(p), nodus_http_path(h), 256),
              printable(pp, sizeof(pp), nodus_http_peer_principal(h), 128),
              printable(rp, sizeof(rp), nodus_http_request_principal(h), 128));
}

/* Counts the denial (under counter, or as a shadow one) and answers 403 when enforced. */
static int deny(struct nodus_http *h, const struct nodus_ctx *ctx, nodus_counter_t counter,
                bool enforce)
{
    const struct authz_conf *ac = ctx->conf;

    if (!enforce) {
        nodus_counter_add(ctx->worker_id, ac->shadow_denied, 1);
        return NODUS_CONTINUE;
    }
    nodus_counter_add(ctx->worker_id, counter, 1);
    nodus_http_respond(h, 403, AUTHZ_BODY, sizeof(AUTHZ_BODY) - 1);
    return NODUS_RESPOND;
}

static int authz_request_headers(struct nodus_http *h, const struct nodus_ctx *ctx)
{
    const struct authz_conf *ac = ctx->conf;
    struct authz_worker *w = ctx->worker;
    struct nodus_slice raw = nodus_http_path(h);
    struct az_request q = {
        .principal = nodus_http_peer_principal(h),
        .peer_addr = nodus_http_peer_addr(h),
        .request_principal = nodus_http_request_principal(h),
        .method = nodus_http_method(h),
        .host = nodus_http_authority(h),
        .header = req_header,
        .arg = h,
    };
    struct az_result res;
    char port[8];
    long n = w ? az_normalize_path(raw.p, raw.len, ac->norm, w->path, sizeof(w->path)) : -1;

    if (n < 0) {
        log_denial(h, ac, -1, !w ? " (no worker state)" : " (path too long to normalize)");
        return deny(h, ctx, ac->errors, !az_shadow(ac->policy));
    }
    q.path = (struct nodus_slice){w->path, (size_t)n};
    q.port = (struct nodus_slice){
        port, (size_t)snprintf(port, sizeof(port), "%d", nodus_http_local_port(h))};
    res = az_eval(ac->policy, &q);
    if (res.rule >= 0)
        nodus_counter_add(ctx->worker_id, ac->rule_counters[res.rule], 1);
    switch (res.decision) {
    case AZ_ALLOWED:
        nodus_counter_add(ctx->worker_id, ac->allowed, 1);
        return NODUS_CONTINUE;
    case AZ_DENIED_BY_RULE:
        log_denial(h, ac, res.rule, "");
        return deny(h, ctx, ac->denied, res.enforce);
    case AZ_DENIED_NO_MATCH:
    default:
        log_denial(h, ac, -1, " (no allow rule matched)");
        return deny(h, ctx, ac->denied_no_match, res.enforce);
    }
}

static const struct nodus_http_ops authz_http = {
    .request_headers = authz_request_headers,
};

static const struct nodus_plugin authz_plugin = {
    .abi = NODUS_PLUGIN_ABI,
    .name = "authz",
    .description = "Istio AuthorizationPolicy: allow and deny rules on principals, IPs, JWT "
                   "principals, methods, paths, hosts and headers (403 RBAC: access denied)",
    .flags = NODUS_PLUGIN_HTTP,
    .configure = authz_configure,
    .destroy = authz_destroy,
    .worker_init = authz_worker_init,
    .worker_fini = authz_worker_fini,
    .http = &authz_http,
    .describe = authz_describe,
};

NODUS_PLUGIN(authz_plugin)
