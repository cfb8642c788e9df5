/*
 * Unit tests of the service catalog (gossip/catalog.c) and of discovered endpoint sets
 * (core/cluster.c, nd_discover_*): the "svc:" tag encoding (round trip, malformed values,
 * limits, the 512-byte Meta limit at config load), catalog updates from member events (join,
 * tag change, suspect, dead, left, reap), endpoint diffing by address, and a worker swapping a
 * discover cluster's runtime (counters carried over by address, subsets, empty set -> no pick).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../gossip/catalog.h"
#include "../gossip/serf.h"
#include "buf.h"
#include "cluster.h"
#include "config.h"
#include "worker.h"

/* ---- tags ------------------------------------------------------------------------------------ */

static int decode_str(const char *key, const char *val, struct nd_cat_tag *t)
{
    return nd_cat_tag_decode((const uint8_t *)key, strlen(key), (const uint8_t *)val, strlen(val),
                             t);
}

static bool span_is(struct nd_cat_span s, const char *want)
{
    return s.len == strlen(want) && !memcmp(s.p, want, s.len);
}

static void test_tag_round_trip(void **state)
{
    const char *keys[] = {"version", "zone"}, *vals[] = {"v1", "eu-west/1a"};
    char out[256];
    struct nd_cat_tag t;

    (void)state;
    assert_int_equal(nd_cat_tag_encode(NULL, 9080, keys, vals, 2, out, sizeof(out)),
                     (int)strlen("9080;version=v1;zone=eu-west/1a"));
    assert_string_equal(out, "9080;version=v1;zone=eu-west/1a");
    assert_int_equal(decode_str("svc:reviews", out, &t), 0);
    assert_true(span_is(t.name, "reviews"));
    assert_int_equal(t.host.len, 0);
    assert_int_equal(t.port, 9080);
    assert_int_equal(t.nlabels, 2);
    assert_true(span_is(t.key[1], "zone") && span_is(t.val[1], "eu-west/1a"));

    assert_true(nd_cat_tag_encode("10.0.0.7", 5432, NULL, NULL, 0, out, sizeof(out)) > 0);
    assert_string_equal(out, "10.0.0.7:5432");
    assert_int_equal(decode_str("svc:db", out, &t), 0);
    assert_true(span_is(t.host, "10.0.0.7"));
    assert_int_equal(t.port, 5432);

    assert_true(nd_cat_tag_encode("fd00::7", 80, NULL, NULL, 0, out, sizeof(out)) > 0);
    assert_string_equal(out, "[fd00::7]:80");
    assert_true(nd_cat_tag_encode("[fd00::7]", 80, NULL, NULL, 0, out, sizeof(out)) > 0);
    assert_string_equal(out, "[fd00::7]:80");
    assert_int_equal(decode_str("svc:web", "[fd00::7]:80;a=b", &t), 0);
    assert_true(span_is(t.host, "fd00::7"));
    assert_int_equal(t.port, 80);
    assert_int_equal(t.nlabels, 1);
}

static void test_tag_limits(void **state)
{
    const char *bad_keys[] = {"ver;sion"}, *vals[] = {"v1"}, *bad_vals[] = {"a=b"};
    char out[16], big[600];
    struct nd_cat_tag t;
    unsigned i;

    (void)state;
    /* labels that would need escaping are refused */
    assert_int_equal(nd_cat_tag_encode(NULL, 1, bad_keys, vals, 1, big, sizeof(big)), -1);
    assert_int_equal(nd_cat_tag_encode(NULL, 1, vals, bad_vals, 1, big, sizeof(big)), -1);
    /* does not fit */
    assert_int_equal(nd_cat_tag_encode("10.0.0.7", 5432, NULL, NULL, 0, out, 8), -1);
    assert_int_equal(nd_cat_tag_encode(NULL, 80, NULL, NULL, 0, out, 2), -1);
    /* not a service tag */
    assert_int_equal(decode_str("role", "edge", &t), 1);
    assert_int_equal(decode_str("sv", "80", &t), 1);
    /* malformed service tags */
    static const char *const bad[] = {
        "",       "0",       "65536",     "80x",           "-1",  "host:80", "10.0.0.1:",
        "::1:80", "[::1]80", "[::1]:",    "[10.0.0.1]:80", "80;", "80;k",    "80;=v",
        "80;k=",  "80;k=v;", "80;k=v=w;", "99999999",
    };
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(decode_str("svc:web", bad[i], &t), -1);
    assert_int_equal(decode_str("svc:", "80", &t), -1);
    assert_int_equal(decode_str("svc:we b", "80", &t), -1);
    /* at most ND_CAT_LABELS_MAX labels */
    strcpy(big, "80");
    for (i = 0; i < ND_CAT_LABELS_MAX; i++)
        sprintf(big + strlen(big), ";k%u=v", i);
    assert_int_equal(decode_str("svc:web", big, &t), 0);
    assert_int_equal(t.nlabels, ND_CAT_LABELS_MAX);
    strcat(big, ";one=more");
    assert_int_equal(decode_str("svc:web", big, &t), -1);
    assert_true(nd_cat_name_ok("a.b-c_d", 7, false));
    assert_false(nd_cat_name_ok("a/b", 3, false));
    assert_true(nd_cat_name_ok("a/b:c", 5, true));
}

/* Services at config load: tags added to gossip.tags; over 512 bytes refused at the service's
 * line; discover and endpoints exclusive; discover needs gossip. */
static struct nd_config *load(const char *text, struct nd_errors *errs)
{
    memset(errs, 0, sizeof(*errs));
    return nd_config_load_string("t.lua", text, strlen(text), errs);
}

static bool errors_have(const struct nd_errors *e, const char *needle)
{
    for (unsigned i = 0; i < e->n; i++)
        if (strstr(e->msg[i], needle))
            return true;
    return false;
}

static void test_config(void **state)
{
    struct nd_errors errs;
    struct nd_config *cfg;
    char text[16384];
    size_t n;
    unsigned i;

    (void)state;
    cfg = load("gossip { bind = \"127.0.0.1:7946\", tags = { role = \"edge\" } }\n"
               "service \"web\" { port = 8080, labels = { version = \"v1\" } }\n"
               "service \"db\" { port = 5432, address = \"10.0.0.7\" }\n"
               "cluster \"w\" { discover = \"web\" }\n",
               &errs);
    assert_non_null(cfg);
    assert_int_equal(cfg->nservices, 2);
    assert_int_equal(cfg->gossip.ntags, 3);
    assert_string_equal(cfg->gossip.tags[1].key, "svc:web");
    assert_string_equal(cfg->gossip.tags[1].val, "8080;version=v1");
    assert_string_equal(cfg->gossip.tags[2].val, "10.0.0.7:5432");
    assert_string_equal(cfg->clusters[0].discover, "web");
    assert_int_equal(cfg->clusters[0].neps, 0);
    nd_config_free(cfg);

    cfg = load("gossip { bind = \"127.0.0.1:7946\" }\n"
               "cluster \"w\" { discover = \"web\", endpoints = { \"127.0.0.1:1\" } }\n",
               &errs);
    assert_null(cfg);
    assert_true(errors_have(&errs, "t.lua:2:") && errors_have(&errs, "mutually exclusive"));
    nd_errors_clear(&errs);

    cfg = load("cluster \"w\" { discover = \"web\" }\n", &errs);
    assert_null(cfg);
    assert_true(errors_have(&errs, "needs gossip"));
    nd_errors_clear(&errs);

    cfg = load("service \"web\" { port = 80 }\n", &errs);
    assert_null(cfg);
    assert_true(errors_have(&errs, "t.lua:1:") && errors_have(&errs, "gossip"));
    nd_errors_clear(&errs);

    cfg = load("gossip { bind = \"127.0.0.1:7946\" }\n"
               "service \"web\" { port = 0 }\n"
               "service \"w b\" { port = 1 }\n"
               "service \"x\" { port = 1, address = \"example.com\" }\n"
               "service \"y\" { port = 1, labels = { [\"a;b\"] = \"c\" } }\n",
               &errs);
    assert_null(cfg);
    assert_true(errors_have(&errs, "t.lua:2:") && errors_have(&errs, "t.lua:3:") &&
                errors_have(&errs, "t.lua:4:") && errors_have(&errs, "t.lua:5:"));
    nd_errors_clear(&errs);

    /* beyond 512 bytes of Meta: the services that fit in tags, then "svc+", and the whole
     * list to gossip in user events */
    n = (size_t)snprintf(text, sizeof(text),
                         "gossip { bind = \"127.0.0.1:7946\", tags = { role = \"edge\" } }\n");
    for (i = 0; i < 12; i++)
        n += (size_t)snprintf(text + n, sizeof(text) - n,
                              "service \"service-number-%02u\" { port = 65535, labels = { "
                              "version = \"v1-long-label-value\" } }\n",
                              i);
    cfg = load(text, &errs);
    assert_non_null(cfg);
    assert_int_equal(cfg->gossip.nsvc_list, 12);
    assert_string_equal(cfg->gossip.svc_list[11].key, "service-number-11");
    assert_string_equal(cfg->gossip.svc_list[11].val, "65535;version=v1-long-label-value");
    assert_true(cfg->gossip.ntags > 2 && cfg->gossip.ntags < 13);
    assert_string_equal(cfg->gossip.tags[0].key, "role");
    assert_string_equal(cfg->gossip.tags[1].key, "svc:service-number-00");
    assert_string_equal(cfg->gossip.tags[cfg->gossip.ntags - 1].key, "svc+");
    assert_true(!strncmp(cfg->gossip.tags[cfg->gossip.ntags - 1].val, "12:", 3));
    {
        struct nd_serf_tag t[64];
        uint8_t m[ND_GOSSIP_META_MAX];
        size_t ml;

        for (i = 0; i < cfg->gossip.ntags; i++) {
            t[i].key = (struct nd_gbytes){(const uint8_t *)cfg->gossip.tags[i].key,
                                          (uint32_t)strlen(cfg->gossip.tags[i].key)};
            t[i].value = (struct nd_gbytes){(const uint8_t *)cfg->gossip.tags[i].val,
                                            (uint32_t)strlen(cfg->gossip.tags[i].val)};
        }
        assert_int_equal(nd_serf_tags_encode(t, cfg->gossip.ntags, m, sizeof(m), &ml), 0);
    }
    nd_config_free(cfg);

    /* a list that does not fit in 16 events either: refused */
    n = (size_t)snprintf(text, sizeof(text), "gossip { bind = \"127.0.0.1:7946\" }\n");
    for (i = 0; i < 64; i++)
        n += (size_t)snprintf(text + n, sizeof(text) - n,
                              "service \"s%02u\" { port = 1, labels = { a = \"%063u\", b = "
                              "\"%063u\" } }\n",
                              i, i, i);
    cfg = load(text, &errs);
    assert_null(cfg);
    assert_true(errors_have(&errs, "do not fit in the 512 bytes of gossip tags"));
    nd_errors_clear(&errs);

    /* svc+ is the services' */
    cfg = load("gossip { bind = \"127.0.0.1:7946\", tags = { [\"svc+\"] = \"1\" } }\n"
               "service \"web\" { port = 80 }\n",
               &errs);
    assert_null(cfg);
    assert_true(errors_have(&errs, "are for service declarations"));
    nd_errors_clear(&errs);
}

/* ---- the catalog -------------------------------------------------------------------------------
 */

static uint8_t meta[ND_GOSSIP_META_MAX];

/* A member named name at 127.0.0.<ip>:7946 with tags "k=v" ... (NULL-terminated). */
static struct nd_swim_member member(const char *name, uint8_t ip, uint8_t state, uint8_t status,
                                    const char *const *kv)
{
    struct nd_serf_tag tags[16];
    size_t n = 0, len = 0;
    struct nd_swim_member m = {
        .name = name, .name_len = strlen(name), .state = state, .status = status};

    for (; kv && kv[2 * n]; n++) {
        tags[n].key = (struct nd_gbytes){(const uint8_t *)kv[2 * n], (uint32_t)strlen(kv[2 * n])};
        tags[n].value =
            (struct nd_gbytes){(const uint8_t *)kv[2 * n + 1], (uint32_t)strlen(kv[2 * n + 1])};
    }
    if (n)
        assert_int_equal(nd_serf_tags_encode(tags, n, meta, sizeof(meta), &len), 0);
    m.meta = meta;
    m.meta_len = (uint32_t)len;
    m.addr.len = 4;
    m.addr.ip[0] = 127;
    m.addr.ip[3] = ip;
    m.addr.port = 7946;
    return m;
}

static unsigned changed(struct nd_catalog *c)
{
    unsigned it = 0, n = 0;

    while (nd_catalog_take_changed(c, &it))
        n++;
    return n;
}

static void test_catalog_events(void **state)
{
    static const char *const a_tags[] = {"role",   "edge",          "svc:web", "8080;version=v1",
                                         "svc:db", "10.0.0.7:5432", NULL};
    static const char *const a_tags2[] = {"svc:web", "8080;version=v2", "svc:bad", "x", NULL};
    static const char *const a_tags3[] = {"svc:web", "8081;version=v2", NULL};
    static const char *const b_tags[] = {"svc:web", "8080", NULL};
    struct nd_catalog *c = nd_catalog_new();
    const struct nd_cat_service *web, *db;
    struct nd_swim_member m;

    (void)state;
    assert_non_null(c);
    /* join */
    m = member("a", 1, ND_GOSSIP_STATE_ALIVE, ND_SWIM_ALIVE, a_tags);
    assert_int_equal(nd_catalog_member(c, &m), 0);
    assert_int_equal(changed(c), 2);
    web = nd_catalog_find(c, "web");
    db = nd_catalog_find(c, "db");
    assert_non_null(web);
    assert_non_null(db);
    assert_int_equal(web->neps, 1);
    assert_string_equal(web->eps[0].addr, "127.0.0.1:8080");
    assert_string_equal(web->eps[0].member, "a");
    assert_string_equal(web->eps[0].vals[0], "v1");
    assert_string_equal(db->eps[0].addr, "10.0.0.7:5432");
    /* the same again: nothing changed */
    assert_int_equal(nd_catalog_member(c, &m), 0);
    assert_int_equal(changed(c), 0);
    /* a second provider, sorted by address */
    m = member("b", 2, ND_GOSSIP_STATE_ALIVE, ND_SWIM_ALIVE, b_tags);
    nd_catalog_member(c, &m);
    assert_int_equal(changed(c), 1);
    web = nd_catalog_find(c, "web");
    assert_int_equal(web->neps, 2);
    assert_string_equal(web->eps[1].addr, "127.0.0.2:8080");
    assert_int_equal(web->eps[1].nlabels, 0);
    /* tag change: relabelled web, db withdrawn, a malformed tag counted */
    m = member("a", 1, ND_GOSSIP_STATE_ALIVE, ND_SWIM_ALIVE, a_tags2);
    nd_catalog_member(c, &m);
    assert_int_equal(changed(c), 2);
    assert_int_equal(c->bad_tags, 1);
    web = nd_catalog_find(c, "web");
    db = nd_catalog_find(c, "db");
    assert_int_equal(db->neps, 0);
    assert_int_equal(web->neps, 2);
    assert_string_equal(web->eps[0].vals[0], "v2");
    /* port change: the old address leaves, the new one comes */
    m = member("a", 1, ND_GOSSIP_STATE_ALIVE, ND_SWIM_ALIVE, a_tags3);
    nd_catalog_member(c, &m);
    assert_int_equal(changed(c), 1);
    web = nd_catalog_find(c, "web");
    assert_int_equal(web->neps, 2);
    assert_string_equal(web->eps[0].addr, "127.0.0.1:8081");
    assert_string_equal(web->eps[1].addr, "127.0.0.2:8080");
    /* suspect: stays (state recorded), no change to publish */
    m = member("a", 1, ND_GOSSIP_STATE_SUSPECT, ND_SWIM_ALIVE, a_tags3);
    nd_catalog_member(c, &m);
    assert_int_equal(changed(c), 0);
    web = nd_catalog_find(c, "web");
    assert_int_equal(web->neps, 2);
    assert_int_equal(web->eps[0].state, ND_GOSSIP_STATE_SUSPECT);
    /* dead: gone */
    m = member("a", 1, ND_GOSSIP_STATE_DEAD, ND_SWIM_FAILED, a_tags3);
    nd_catalog_member(c, &m);
    assert_int_equal(changed(c), 1);
    web = nd_catalog_find(c, "web");
    assert_int_equal(web->neps, 1);
    assert_string_equal(web->eps[0].member, "b");
    /* back from the dead */
    m = member("a", 1, ND_GOSSIP_STATE_ALIVE, ND_SWIM_ALIVE, a_tags3);
    nd_catalog_member(c, &m);
    assert_int_equal(changed(c), 1);
    assert_int_equal(nd_catalog_find(c, "web")->neps, 2);
    /* left: gone */
    m = member("b", 2, ND_GOSSIP_STATE_LEFT, ND_SWIM_LEFT, b_tags);
    nd_catalog_member(c, &m);
    assert_int_equal(changed(c), 1);
    web = nd_catalog_find(c, "web");
    assert_int_equal(web->neps, 1);
    assert_string_equal(web->eps[0].member, "a");
    /* reaped */
    nd_catalog_remove(c, "a");
    assert_int_equal(changed(c), 1);
    assert_int_equal(nd_catalog_find(c, "web")->neps, 0);
    /* a member without tags, unknown services */
    m = member("z", 9, ND_GOSSIP_STATE_ALIVE, ND_SWIM_ALIVE, NULL);
    nd_catalog_member(c, &m);
    assert_int_equal(changed(c), 0);
    assert_null(nd_catalog_find(c, "nope"));
    nd_catalog_free(c);
}

/* A member's full list in user events: parts in any order, repeated, malformed; the list in
 * place of the tags once complete and named by "svc+"; dropped when the member goes. */
static void test_lists(void **state)
{
    static char parts[ND_CAT_PARTS_MAX][ND_CAT_PART_MAX + 1];
    static char nbuf[40][16], vbuf[40][64];
    const char *names[40], *values[40];
    char more[32], who[64];
    unsigned nparts, i;
    uint32_t hash;
    struct nd_catalog *c = nd_catalog_new();
    struct nd_swim_member m;

    (void)state;
    for (i = 0; i < 40; i++) {
        snprintf(nbuf[i], sizeof(nbuf[i]), "svc-%02u", i);
        snprintf(vbuf[i], sizeof(vbuf[i]), "%u;version=v1;zone=eu-west-1a", 9000 + i);
        names[i] = nbuf[i];
        values[i] = vbuf[i];
    }
    assert_int_equal(nd_cat_list_encode("a", names, values, 40, parts, &nparts, &hash), 0);
    assert_true(nparts >= 3 && nparts <= ND_CAT_PARTS_MAX);
    for (i = 0; i < nparts; i++)
        assert_true(strlen(parts[i]) <= ND_CAT_PART_MAX);
    assert_int_equal(hash, nd_cat_list_hash(names, values, 40));
    snprintf(more, sizeof(more), "40:%08x", hash);
    /* the member's tags: two services and svc+ */
    const char *const tags[] = {"svc:svc-00", vbuf[0], "svc:svc-01", vbuf[1], "svc+", more, NULL};
    m = member("a", 1, ND_GOSSIP_STATE_ALIVE, ND_SWIM_ALIVE, tags);
    assert_int_equal(nd_catalog_member(c, &m), 0);
    assert_int_equal(changed(c), 2); /* the tags' services meanwhile */
    assert_null(nd_catalog_find(c, "svc-39"));
    /* parts, the last first, one twice, a malformed one between */
    for (i = nparts; i-- > 1;) {
        assert_int_equal(
            nd_catalog_list_part(c, (const uint8_t *)parts[i], strlen(parts[i]), who, sizeof(who)),
            0);
        assert_int_equal(
            nd_catalog_list_part(c, (const uint8_t *)parts[i], strlen(parts[i]), who, sizeof(who)),
            0);
    }
    assert_int_equal(nd_catalog_list_part(c, (const uint8_t *)"1 zz", 4, who, sizeof(who)), -1);
    assert_int_equal(c->bad_lists, 1);
    assert_int_equal(
        nd_catalog_list_part(c, (const uint8_t *)parts[0], strlen(parts[0]), who, sizeof(who)), 1);
    assert_string_equal(who, "a");
    assert_int_equal(nd_catalog_member(c, &m), 0);
    assert_int_equal(changed(c), 38); /* every service of the list */
    assert_non_null(nd_catalog_find(c, "svc-39"));
    assert_string_equal(nd_catalog_find(c, "svc-39")->eps[0].addr, "127.0.0.1:9039");
    assert_string_equal(nd_catalog_find(c, "svc-39")->eps[0].vals[1], "eu-west-1a");
    /* a new version named by svc+ whose parts have not come: the tags meanwhile */
    snprintf(more, sizeof(more), "40:%08x", hash ^ 1);
    const char *const tags2[] = {"svc:svc-00", vbuf[0], "svc+", more, NULL};
    m = member("a", 1, ND_GOSSIP_STATE_ALIVE, ND_SWIM_ALIVE, tags2);
    assert_int_equal(nd_catalog_member(c, &m), 0);
    assert_int_equal(nd_catalog_find(c, "svc-39")->neps, 0);
    assert_int_equal(nd_catalog_find(c, "svc-00")->neps, 1);
    /* the member dies: its list goes */
    m = member("a", 1, ND_GOSSIP_STATE_DEAD, ND_SWIM_FAILED, tags2);
    nd_catalog_member(c, &m);
    assert_int_equal(c->nlists, 0);
    assert_int_equal(nd_catalog_find(c, "svc-00")->neps, 0);
    /* malformed parts: header, counts, names */
    static const char *const bad[] = {
        "2 00000000 00 01 a", "1 00000000 01 01 a",    "1 00000000 00 17 a",
        "1 00000000 00 01 ",  "1 00000000 00 01 a\nb", "1 00000000 00 01 a\nb;c 1",
        "1 0000000 00 01 aa", "1 00000000 0 01 a",
    };
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(
            nd_catalog_list_part(c, (const uint8_t *)bad[i], strlen(bad[i]), who, sizeof(who)), -1);
    /* a name twice in a list: the first one holds */
    const char *dup = "1 00000001 00 01 d\nweb 81\nweb 82";
    assert_int_equal(nd_catalog_list_part(c, (const uint8_t *)dup, strlen(dup), who, sizeof(who)),
                     1);
    const char *const dtags[] = {"svc+", "1:00000001", NULL};
    m = member("d", 4, ND_GOSSIP_STATE_ALIVE, ND_SWIM_ALIVE, dtags);
    assert_int_equal(nd_catalog_member(c, &m), 0);
    assert_int_equal(nd_catalog_find(c, "web")->neps, 1);
    assert_string_equal(nd_catalog_find(c, "web")->eps[0].addr, "127.0.0.4:81");
    /* too long for a part: an entry, or a node name */
    static char longname[600];
    memset(longname, 'n', sizeof(longname) - 1);
    assert_int_equal(nd_cat_list_encode(longname, names, values, 1, parts, &nparts, &hash), -1);
    assert_int_equal(nd_cat_list_encode("a\nb", names, values, 1, parts, &nparts, &hash), -1);
    nd_catalog_free(c);
}

/* nd_catalog_metrics: services with endpoints, endpoints per service, changes, bad tags */
static void test_metrics(void **state)
{
    static const char *const a_tags[] = {"svc:web", "8080", "svc:db", "5432", "svc:x", "y", NULL};
    static const char *const b_tags[] = {"svc:web", "8080", NULL};
    struct nd_catalog *c = nd_catalog_new();
    struct nd_sbuf out = {0};
    struct nd_swim_member m;

    (void)state;
    assert_non_null(c);
    nd_catalog_metrics(c, &out);
    assert_non_null(strstr(out.p, "\nnodus_catalog_services 0\n"));
    assert_non_null(strstr(out.p, "\nnodus_catalog_changes_total 0\n"));
    assert_null(strstr(out.p, "nodus_catalog_endpoints{"));
    nd_sbuf_free(&out);

    m = member("a", 1, ND_GOSSIP_STATE_ALIVE, ND_SWIM_ALIVE, a_tags);
    nd_catalog_member(c, &m);
    m = member("b", 2, ND_GOSSIP_STATE_ALIVE, ND_SWIM_ALIVE, b_tags);
    nd_catalog_member(c, &m);
    assert_int_equal(changed(c), 2); /* web, db */
    nd_catalog_metrics(c, &out);
    assert_false(out.oom);
    assert_non_null(
        strstr(out.p, "# TYPE nodus_catalog_services gauge\nnodus_catalog_services 2\n"));
    assert_non_null(strstr(out.p, "\nnodus_catalog_endpoints_all 3\n"));
    assert_non_null(strstr(out.p, "\nnodus_catalog_endpoints{service=\"web\"} 2\n"));
    assert_non_null(strstr(out.p, "\nnodus_catalog_endpoints{service=\"db\"} 1\n"));
    assert_non_null(strstr(out.p, "# TYPE nodus_catalog_changes_total counter\n"
                                  "nodus_catalog_changes_total 2\n"));
    assert_non_null(strstr(out.p, "\nnodus_catalog_bad_tags_total 1\n"));
    nd_sbuf_free(&out);

    /* a dies: db has no endpoint left and is no longer counted */
    m = member("a", 1, ND_GOSSIP_STATE_DEAD, ND_SWIM_FAILED, a_tags);
    nd_catalog_member(c, &m);
    assert_int_equal(changed(c), 2);
    nd_catalog_metrics(c, &out);
    assert_non_null(strstr(out.p, "\nnodus_catalog_services 1\n"));
    assert_non_null(strstr(out.p, "\nnodus_catalog_endpoints{service=\"web\"} 1\n"));
    assert_null(strstr(out.p, "service=\"db\""));
    assert_non_null(strstr(out.p, "\nnodus_catalog_changes_total 4\n"));
    nd_sbuf_free(&out);
    nd_catalog_metrics(NULL, &out); /* no catalog (gossip off): nothing */
    assert_int_equal(out.len, 0);
    nd_catalog_free(c);
}

static void test_diff(void **state)
{
    const char *prev[] = {"a:1", "b:1", "c:1", "d:1"}, *next[] = {"d:1", "b:1", "e:1"};
    int map[4];

    (void)state;
    assert_int_equal(nd_cat_diff(prev, 4, next, 3, map), 2);
    assert_int_equal(map[0], -1);
    assert_int_equal(map[1], 1);
    assert_int_equal(map[2], -1);
    assert_int_equal(map[3], 0);
    assert_int_equal(nd_cat_diff(prev, 4, next, 0, map), 0);
    assert_int_equal(map[3], -1);
    assert_int_equal(nd_cat_diff(NULL, 0, next, 3, map), 0);
}

/* ---- a worker swapping a discover cluster -----------------------------------------------------
 */

static void publish(const char *service, const char *const *addrs, const char *const *versions,
                    unsigned n, int want)
{
    struct nd_endpoint_conf eps[8];
    struct nd_label labels[8];
    const char *members[8] = {NULL};

    memset(eps, 0, sizeof(eps));
    for (unsigned i = 0; i < n; i++) {
        assert_int_equal(nd_parse_addr(addrs[i], &eps[i].addr), 0);
        eps[i].weight = 1;
        labels[i] = (struct nd_label){(char *)"version", (char *)versions[i]};
        eps[i].labels = &labels[i];
        eps[i].nlabels = 1;
        members[i] = "m";
    }
    assert_int_equal(nd_discover_publish(service, eps, members, n), want);
}

static void test_swap(void **state)
{
    static const char *const a1[] = {"127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3"};
    static const char *const v1[] = {"v1", "v2", "v1"};
    static const char *const a2[] = {"127.0.0.1:5", "127.0.0.1:3", "127.0.0.1:4"};
    static const char *const v2[] = {"v2", "v1", "v2"};
    struct nd_errors errs;
    struct nd_config *cfg;
    struct nd_snap *sn = calloc(1, sizeof(*sn));
    struct nd_worker *w = calloc(1, sizeof(*w));
    struct nd_cluster_rt *crt;
    int counts[3] = {0};

    (void)state;
    cfg = load("gossip { bind = \"127.0.0.1:7946\" }\n"
               "cluster \"s\" { endpoints = { \"127.0.0.1:9\" } }\n"
               "cluster \"w\" { discover = \"web\" }\n",
               &errs);
    assert_non_null(cfg);
    assert_int_equal(nd_discover_bind(cfg), 0);
    assert_non_null(cfg->clusters[1].dslot);
    assert_null(cfg->clusters[0].dslot);
    /* not discovered by any cluster: nothing to do */
    publish("other", a1, v1, 3, 0);
    /* a worker adopts the configuration: no endpoint yet */
    sn->cfg = cfg;
    sn->wrt[0].clusters = crt = nd_cluster_rt_create(cfg);
    sn->wrt[0].adopted = true;
    w->snap = sn;
    w->rng = 0x9E3779B97F4A7C15ULL;
    assert_int_equal(crt[1].nceps, 0);
    assert_int_equal(nd_lb_pick(w, &crt[1], NULL, NULL, -1), -1);
    assert_int_equal(crt[0].nceps, 1); /* the static cluster */

    publish("web", a1, v1, 3, 1);
    publish("web", a1, v1, 3, 0); /* the same again: not republished */
    nd_discover_sync(w);
    assert_int_equal(crt[1].nceps, 3);
    assert_ptr_equal(crt[1].set, nd_discover_current(&cfg->clusters[1]));
    for (int i = 0; i < 30; i++) {
        int e = nd_lb_pick(w, &crt[1], "version", "v1", -1);

        assert_true(e == 0 || e == 2);
        counts[e]++;
    }
    assert_int_equal(counts[0], 15);
    assert_int_equal(counts[2], 15);
    crt[1].eps[2].fails = 2; /* 127.0.0.1:3 */
    crt[1].eps[2].active = 5;
    crt[1].eps[0].fails = 7; /* 127.0.0.1:1, leaves */

    /* another set: :3 stays (now index 1), :1 and :2 leave, :5 and :4 come */
    publish("web", a2, v2, 3, 1);
    nd_discover_sync(w); /* (nd_rt has no worker: collect only after this one synced) */
    assert_int_equal(w->disc_ack, w->disc_seen);
    assert_int_equal(crt[1].nceps, 3);
    assert_string_equal(crt[1].ceps[1].addr.text, "127.0.0.1:3");
    assert_int_equal(crt[1].eps[1].fails, 2);
    assert_int_equal(crt[1].eps[1].active, 5);
    assert_int_equal(crt[1].eps[0].fails, 0);
    assert_int_equal(crt[1].eps[2].fails, 0);
    assert_int_equal(nd_lb_pick(w, &crt[1], "version", "v1", -1), 1);
    assert_string_equal(nd_ep_text(&crt[1], 1), "127.0.0.1:3");
    assert_string_equal(nd_ep_text(&crt[1], -1), "-");
    nd_discover_collect();

    /* every provider gone: no endpoint, the cluster answers 503 UH */
    publish("web", NULL, NULL, 0, 1);
    nd_discover_sync(w);
    assert_int_equal(crt[1].nceps, 0);
    assert_null(crt[1].set);
    assert_int_equal(nd_lb_pick(w, &crt[1], NULL, NULL, -1), -1);
    nd_discover_collect();

    nd_cluster_rt_free(cfg, crt);
    nd_config_free(cfg);
    nd_discover_shutdown();
    free(sn);
    free(w);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tag_round_trip), cmocka_unit_test(test_tag_limits),
        cmocka_unit_test(test_config),         cmocka_unit_test(test_catalog_events),
        cmocka_unit_test(test_diff),           cmocka_unit_test(test_swap),
        cmocka_unit_test(test_metrics),        cmocka_unit_test(test_lists),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
