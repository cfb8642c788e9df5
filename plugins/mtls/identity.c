/*
 * The node identity (node.h, identity.h): the certificate the mtls listeners serve, from watched
 * files or issued by the node from a CA directory; rebuilt TLS contexts on every change.
 *
 * Everything here runs on the main thread; workers only read the users' slots.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <wolfssl/options.h>
#include <wolfssl/wolfcrypt/asn_public.h>

#include "ca.h"
#include "config.h"
#include "identity.h"
#include "log.h"
#include "metrics.h"
#include "node.h"

#define PEM_MAX (256 * 1024) /* a certificate chain or a trust bundle */
#define KEY_MAX (16 * 1024)
#define DER_MAX 8192
#define RETRY_S 60 /* a failed renewal is retried this often */

/* A certificate, its key and the trust anchors, all PEM. */
struct creds {
    char *ca, *cert, *key;
    size_t ca_len, cert_len, key_len;
    int64_t not_before, not_after;
    char *id;
};

/* What identifies a file's content without reading it. */
struct stamp {
    dev_t dev;
    ino_t ino;
    off_t size;
    struct timespec mtime;
    int err; /* errno of stat(), 0 when it worked */
};

enum { F_CA, F_CERT, F_KEY, F__N };

static struct {
    bool loaded;
    struct nd_identity_conf conf; /* a copy of the one in use */
    struct creds cur;
    struct stamp st[F__N];   /* files as loaded */
    struct stamp pend[F__N]; /* a change seen, applied once the files stay so for a tick */
    bool pending;
    int64_t renew_at; /* ca_dir: when to issue the next certificate */
    bool warned_quarter, warned_expired;
    int64_t last_tick;
    struct nd_identity_user *users;
} g;

__attribute__((format(printf, 3, 4))) static int fail(char *err, size_t errlen, const char *fmt,
                                                      ...)
{
    va_list ap;

    if (err && errlen) {
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return -1;
}

static void fmt_time(int64_t t, char *buf, size_t len)
{
    time_t tt = (time_t)t;
    struct tm tm;

    if (!gmtime_r(&tt, &tm) || !strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm))
        snprintf(buf, len, "%lld", (long long)t);
}

/* ---- credentials --------------------------------------------------------------------------- */

static void creds_free(struct creds *c)
{
    free(c->ca);
    free(c->cert);
    if (c->key) {
        explicit_bzero(c->key, c->key_len);
        free(c->key);
    }
    free(c->id);
    memset(c, 0, sizeof(*c));
}

/* Reads the identity and validity of the first certificate of c->cert. */
static int creds_parse(struct creds *c, char *err, size_t errlen)
{
    struct nd_ca_cert_info info;
    uint8_t *der = malloc(DER_MAX);
    int n = der ? wc_CertPemToDer((const unsigned char *)c->cert, (int)c->cert_len, der, DER_MAX,
                                  CERT_TYPE)
                : -1;

    if (n <= 0 || nd_ca_cert_parse(der, (size_t)n, &info) < 0 || !info.uri || info.is_ca) {
        free(der);
        return fail(err, errlen, "the certificate is not a PEM workload certificate");
    }
    c->not_before = info.not_before;
    c->not_after = info.not_after;
    c->id = strndup(info.uri, info.uri_len);
    free(der);
    return c->id ? 0 : fail(err, errlen, "out of memory");
}

static char *read_pem(const char *path, size_t max, size_t *len, char *err, size_t errlen)
{
    char *p = nd_ca_read_file(path, max, len);

    if (!p)
        fail(err, errlen, "%s: %s", path, strerror(errno));
    return p;
}

static int creds_from_files(const struct nd_identity_conf *ic, struct creds *c, char *err,
                            size_t errlen)
{
    struct stat st;

    memset(c, 0, sizeof(*c));
    if (stat(ic->key, &st) < 0)
        return fail(err, errlen, "%s: %s", ic->key, strerror(errno));
    if (st.st_mode & 077)
        return fail(err, errlen, "%s is accessible by group or others (mode %04o): chmod 600",
                    ic->key, (unsigned)(st.st_mode & 07777));
    if (!(c->ca = read_pem(ic->ca, PEM_MAX, &c->ca_len, err, errlen)) ||
        !(c->cert = read_pem(ic->cert, PEM_MAX, &c->cert_len, err, errlen)) ||
        !(c->key = read_pem(ic->key, KEY_MAX, &c->key_len, err, errlen)) ||
        creds_parse(c, err, errlen) < 0) {
        creds_free(c);
        return -1;
    }
    return 0;
}

static int creds_issue(const struct nd_identity_conf *ic, struct creds *c, char *err, size_t errlen)
{
    struct nd_ca_issue_opts o = {.spiffe_id = ic->id, .ttl = ic->ttl_s};
    struct nd_ca_cred cred = {0};
    struct nd_ca *ca;
    const char *root;
    size_t rlen;

    memset(c, 0, sizeof(*c));
    if (!(ca = nd_ca_load(ic->ca_dir, err, errlen)))
        return -1;
    if (nd_ca_issue(ca, &o, &cred, err, errlen) < 0) {
        nd_ca_free(ca);
        return -1;
    }
    root = nd_ca_root_pem(ca, &rlen);
    c->ca = strndup(root, rlen);
    c->ca_len = rlen;
    nd_ca_free(ca);
    c->cert = cred.cert;
    c->cert_len = cred.cert_len;
    c->key = cred.key;
    c->key_len = cred.key_len;
    cred.cert = cred.key = NULL; /* now c's */
    nd_ca_cred_free(&cred);
    if (!c->ca || creds_parse(c, err, errlen) < 0) {
        creds_free(c);
        return c->ca ? -1 : fail(err, errlen, "out of memory");
    }
    return 0;
}

static struct nd_tls_ctx *build_ctx(const struct creds *c, const struct nd_identity_user *u,
                                    char *err, size_t errlen)
{
    struct nd_tls_config tc = {
        .role = ND_TLS_SERVER,
        .ca_pem = c->ca,
        .ca_len = c->ca_len,
        .cert_pem = c->cert,
        .cert_len = c->cert_len,
        .key_pem = c->key,
        .key_len = c->key_len,
    };

    if (u) {
        tc.role = u->client ? ND_TLS_CLIENT : ND_TLS_SERVER;
        tc.flags = u->flags;
        tc.peer_ids = u->peer_ids;
        tc.n_peer_ids = u->n_peer_ids;
        tc.alpn = u->alpn;
        tc.sni = u->sni;
    }
    return nd_tls_ctx_new(&tc, err, errlen);
}

/* The credentials can serve: the key is the certificate's, the ID valid, the anchors load. */
static int creds_probe(const struct creds *c, char *err, size_t errlen)
{
    struct nd_tls_ctx *ctx = build_ctx(c, NULL, err, errlen);

    if (!ctx)
        return -1;
    nd_tls_ctx_unref(ctx);
    return 0;
}

static int creds_load(const struct nd_identity_conf *ic, struct creds *c, char *err, size_t errlen)
{
    int r = ic->ca_dir ? creds_issue(ic, c, err, errlen) : creds_from_files(ic, c, err, errlen);

    if (r == 0 && creds_probe(c, err, errlen) < 0) {
        creds_free(c);
        return -1;
    }
    return r;
}

/* ---- files --------------------------------------------------------------------------------- */

static void stamp_files(const struct nd_identity_conf *ic, struct stamp st[F__N])
{
    const char *paths[F__N] = {ic->ca, ic->cert, ic->key};
    struct stat s;

    for (int i = 0; i < F__N; i++) {
        memset(&st[i], 0, sizeof(st[i]));
        if (!paths[i] || stat(paths[i], &s) < 0) {
            st[i].err = paths[i] ? errno : 0;
            continue;
        }
        st[i].dev = s.st_dev;
        st[i].ino = s.st_ino;
        st[i].size = s.st_size;
        st[i].mtime = s.st_mtim;
    }
}

static bool stamps_equal(const struct stamp *a, const struct stamp *b)
{
    for (int i = 0; i < F__N; i++)
        if (a[i].dev != b[i].dev || a[i].ino != b[i].ino || a[i].size != b[i].size ||
            a[i].mtime.tv_sec != b[i].mtime.tv_sec || a[i].mtime.tv_nsec != b[i].mtime.tv_nsec ||
            a[i].err != b[i].err)
            return false;
    return true;
}

/* ---- users --------------------------------------------------------------------------------- */

static void build_user(struct nd_identity_user *u)
{
    char err[256];
    struct nd_tls_ctx *ctx = build_ctx(&g.cur, u, err, sizeof(err));

    if (!ctx) {
        nd_err("mtls: cannot build a TLS context for the new certificate: %s (new handshakes "
               "keep the previous one)",
               err);
        return;
    }
    nd_tls_slot_swap(&u->slot, ctx);
}

void nd_identity_attach(struct nd_identity_user *u)
{
    nd_tls_slot_init(&u->slot, NULL);
    u->next = g.users;
    g.users = u;
    u->attached = true;
    if (g.loaded)
        build_user(u);
}

void nd_identity_detach(struct nd_identity_user *u)
{
    if (!u->attached)
        return;
    for (struct nd_identity_user **pp = &g.users; *pp; pp = &(*pp)->next)
        if (*pp == u) {
            *pp = u->next;
            break;
        }
    u->attached = false;
    nd_tls_slot_fini(&u->slot);
}

/* ---- the identity in use ------------------------------------------------------------------- */

static void conf_free(struct nd_identity_conf *ic)
{
    free(ic->ca);
    free(ic->cert);
    free(ic->key);
    free(ic->ca_dir);
    free(ic->id);
    memset(ic, 0, sizeof(*ic));
}

static bool str_eq(const char *a, const char *b)
{
    return a == b || (a && b && strcmp(a, b) == 0);
}

static bool conf_equal(const struct nd_identity_conf *a, const struct nd_identity_conf *b)
{
    return a->enabled == b->enabled && str_eq(a->ca, b->ca) && str_eq(a->cert, b->cert) &&
           str_eq(a->key, b->key) && str_eq(a->ca_dir, b->ca_dir) && str_eq(a->id, b->id) &&
           a->ttl_s == b->ttl_s;
}

static int conf_copy(struct nd_identity_conf *d, const struct nd_identity_conf *s)
{
    const char *src[] = {s->ca, s->cert, s->key, s->ca_dir, s->id};
    char **dst[] = {&d->ca, &d->cert, &d->key, &d->ca_dir, &d->id};

    memset(d, 0, sizeof(*d));
    d->enabled = s->enabled;
    d->line = s->line;
    d->ttl_s = s->ttl_s;
    for (size_t i = 0; i < sizeof(src) / sizeof(src[0]); i++)
        if (src[i] && !(*dst[i] = strdup(src[i]))) {
            conf_free(d);
            return -1;
        }
    return 0;
}

/* Makes c (taken) the certificate in use and rebuilds every user's context. st: the files'
 * stamps taken before they were read (files mode). */
static void install(struct creds *c, const struct stamp *st)
{
    int64_t now = (int64_t)time(NULL);
    char until[32];

    creds_free(&g.cur);
    g.cur = *c;
    memset(c, 0, sizeof(*c));
    g.loaded = true;
    g.warned_quarter = g.warned_expired = false;
    if (g.conf.ca_dir)
        g.renew_at = now + (g.cur.not_after - now) / 2;
    else
        memcpy(g.st, st, sizeof(g.st));
    g.pending = false;
    for (struct nd_identity_user *u = g.users; u; u = u->next)
        build_user(u);
    nd_metrics_set_cert_not_after(g.cur.not_after);
    nd_metrics_set_self_principal(g.cur.id);
    fmt_time(g.cur.not_after, until, sizeof(until));
    nd_info("identity: %s, certificate valid until %s (%s %s)", g.cur.id, until,
            g.conf.ca_dir ? "issued from" : "from", g.conf.ca_dir ? g.conf.ca_dir : g.conf.cert);
}

static void forget(void)
{
    creds_free(&g.cur);
    conf_free(&g.conf);
    g.loaded = g.pending = false;
    nd_metrics_set_cert_not_after(0);
    nd_metrics_set_self_principal(NULL);
}

/* Every mtls listener that needs an identity has one. */
static int check_needed(const struct nd_config *cfg, char *err, size_t errlen)
{
    if (cfg->identity.enabled)
        return 0;
    for (unsigned i = 0; i < cfg->nlisteners; i++) {
        const struct nd_listener_conf *lc = &cfg->listeners[i];

        for (unsigned j = 0; j < lc->nplugins; j++) {
            const struct nd_plugin_inst *pi = &lc->plugins[j];
            const char *mode;

            if (pi->p && strcmp(pi->p->name, "mtls") == 0 &&
                nd_mtls_needs_identity(pi->conf, &mode))
                return fail(err, errlen,
                            "%s:%d: listener \"%s\": mtls mode \"%s\" needs the node identity: add "
                            "identity { ca = \"ca.pem\", cert = \"node.pem\", key = \"node.key\" }",
                            cfg->file, pi->line, lc->name, mode);
        }
    }
    for (unsigned i = 0; i < cfg->nclusters; i++)
        if (cfg->clusters[i].tls)
            return fail(err, errlen,
                        "%s:%d: cluster \"%s\": tls = \"mutual\" needs the node identity: add "
                        "identity { ca = \"ca.pem\", cert = \"node.pem\", key = \"node.key\" }",
                        cfg->file, cfg->clusters[i].line, cfg->clusters[i].name);
    return 0;
}

static int load_for(const struct nd_config *cfg, struct creds *c, char *err, size_t errlen)
{
    char why[256];

    if (creds_load(&cfg->identity, c, why, sizeof(why)) < 0)
        return fail(err, errlen, "%s:%d: identity: %s", cfg->file, cfg->identity.line, why);
    return 0;
}

int nd_identity_check(const struct nd_config *cfg, char *err, size_t errlen)
{
    struct creds c;

    if (check_needed(cfg, err, errlen) < 0)
        return -1;
    if (!cfg->identity.enabled)
        return 0;
    if (load_for(cfg, &c, err, errlen) < 0)
        return -1;
    creds_free(&c);
    return 0;
}

int nd_identity_apply(const struct nd_config *cfg, char *err, size_t errlen)
{
    struct nd_identity_conf copy;
    struct stamp st[F__N];
    struct creds c;

    if (check_needed(cfg, err, errlen) < 0)
        return -1;
    if (!cfg->identity.enabled) {
        if (g.loaded)
            nd_info("identity: none configured any more");
        forget();
        return 0;
    }
    if (g.loaded && conf_equal(&g.conf, &cfg->identity)) {
        for (struct nd_identity_user *u = g.users; u; u = u->next)
            if (!nd_tls_slot_generation(&u->slot))
                build_user(u);
        return 0;
    }
    stamp_files(&cfg->identity, st);
    if (load_for(cfg, &c, err, errlen) < 0)
        return -1;
    if (conf_copy(&copy, &cfg->identity) < 0) {
        creds_free(&c);
        return fail(err, errlen, "out of memory");
    }
    conf_free(&g.conf);
    g.conf = copy;
    install(&c, st);
    return 0;
}

static void check_expiry(int64_t now)
{
    /* a self-issued certificate's lifetime is its ttl (notBefore is backdated for skew) */
    int64_t left = g.cur.not_after - now,
            life = g.conf.ca_dir ? (int64_t)g.conf.ttl_s : g.cur.not_after - g.cur.not_before;
    char until[32];

    fmt_time(g.cur.not_after, until, sizeof(until));
    if (left <= 0 && !g.warned_expired) {
        g.warned_expired = true;
        nd_err("identity: the certificate of %s expired at %s: peers refuse it", g.cur.id, until);
    } else if (left > 0 && left < life / 4 && !g.warned_quarter) {
        g.warned_quarter = true;
        nd_warn("identity: the certificate of %s expires at %s (%lld s left, less than a quarter "
                "of its lifetime): renew it",
                g.cur.id, until, (long long)left);
    }
}

static void tick_files(void)
{
    struct stamp now[F__N];
    struct creds c;
    char err[256];

    stamp_files(&g.conf, now);
    if (stamps_equal(now, g.st)) {
        g.pending = false;
        return;
    }
    if (!g.pending || !stamps_equal(now, g.pend)) {
        /* changed: wait until the files stay the same for a tick (a cert and its key are
         * written one after the other) */
        memcpy(g.pend, now, sizeof(now));
        g.pending = true;
        return;
    }
    g.pending = false;
    if (creds_load(&g.conf, &c, err, sizeof(err)) < 0) {
        memcpy(g.st, now, sizeof(now)); /* retried at the next change, not every second */
        nd_warn("identity: the files changed but cannot be used (%s): new handshakes keep the "
                "current certificate",
                err);
        return;
    }
    install(&c, now);
}

static void tick_renew(int64_t now)
{
    struct creds c;
    char err[256];

    if (now < g.renew_at)
        return;
    if (creds_load(&g.conf, &c, err, sizeof(err)) < 0) {
        g.renew_at = now + RETRY_S;
        nd_err("identity: cannot renew the certificate from %s: %s (retrying in %d s)",
               g.conf.ca_dir, err, RETRY_S);
        return;
    }
    install(&c, NULL);
}

void nd_identity_tick(void)
{
    int64_t now = (int64_t)time(NULL);

    if (now == g.last_tick || !g.loaded)
        return;
    g.last_tick = now;
    if (g.conf.ca_dir)
        tick_renew(now);
    else
        tick_files();
    check_expiry(now);
}

int64_t nd_identity_not_after(void)
{
    return g.loaded ? g.cur.not_after : 0;
}

void nd_identity_shutdown(void)
{
    forget();
}
