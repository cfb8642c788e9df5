/* Unit tests: metrics (records, sums, histograms, exposition format) and the admin handlers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <nodus/plugin.h>

#include "admin.h"
#include "buf.h"
#include "config.h"
#include "http1.h"
#include "metrics.h"

/* ---- helpers
 * -----------------------------------------------------------------------------------*/
static char *render(void)
{
    struct nd_sbuf b = {0};

    assert_int_equal(nd_metrics_render(&b), 0);
    assert_false(b.oom);
    assert_non_null(b.p);
    return b.p;
}

/* The value of the sample whose series (name and labels) is exactly `series`; -1 if absent. */
static double value_of(const char *text, const char *series)
{
    size_t n = strlen(series);
    const char *p = text;

    while (p && *p) {
        if (strncmp(p, series, n) == 0 && p[n] == ' ')
            return strtod(p + n + 1, NULL);
        p = strchr(p, '\n');
        if (p)
            p++;
    }
    return -1;
}

/* Same, as the raw text of the value. */
static const char *raw_value_of(const char *text, const char *series, char *buf, size_t len)
{
    size_t n = strlen(series);
    const char *p = text;

    while (p && *p) {
        if (strncmp(p, series, n) == 0 && p[n] == ' ') {
            size_t k = strcspn(p + n + 1, "\n");

            snprintf(buf, len, "%.*s", (int)k, p + n + 1);
            return buf;
        }
        p = strchr(p, '\n');
        if (p)
            p++;
    }
    return NULL;
}

static char *lbl(char *buf, size_t len, const char *metric, const char *listener,
                 const char *cluster, const char *code, const char *flags, const char *le)
{
    int n = snprintf(buf, len,
                     "%s{reporter=\"source\",source_workload=\"edge-1\",destination_service=\"%s\","
                     "destination_cluster=\"%s\",request_protocol=\"http\",response_code=\"%s\","
                     "response_flags=\"%s\",connection_security_policy=\"none\",listener=\"%s\"",
                     metric, cluster, cluster, code, flags, listener);

    if (le)
        snprintf(buf + n, len - (size_t)n, ",le=\"%s\"}", le);
    else
        snprintf(buf + n, len - (size_t)n, "}");
    return buf;
}

static char *tcp_lbl(char *buf, size_t len, const char *metric, const char *listener,
                     const char *cluster)
{
    snprintf(buf, len,
             "%s{reporter=\"source\",source_workload=\"edge-1\",destination_service=\"%s\","
             "destination_cluster=\"%s\",request_protocol=\"tcp\","
             "connection_security_policy=\"none\",listener=\"%s\"}",
             metric, cluster, cluster, listener);
    return buf;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/*
 * Checks what promtool does not: every TYPE line once, every series once, and for each histogram
 * series: buckets in increasing le order, cumulative (never decreasing), ending with +Inf, and
 * _count equal to the +Inf bucket. Returns the number of histogram series seen.
 */
static unsigned check_exposition(const char *text)
{
    char *copy = strdup(text), *line, *save = NULL;
    char **series = NULL, **types = NULL;
    size_t nseries = 0, ntypes = 0, cap = 0, tcap = 0, i;
    char prev_base[4096] = "", inf_base[4096] = "";
    double prev_le = 0, prev_val = 0, inf_val = -1;
    unsigned nhist = 0;

    assert_non_null(copy);
    for (line = strtok_r(copy, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        char *sp, *brace, name[256], *le;
        double val;

        if (strncmp(line, "# TYPE ", 7) == 0) {
            if (ntypes == tcap) {
                tcap = tcap ? tcap * 2 : 64;
                types = realloc(types, tcap * sizeof(*types));
            }
            types[ntypes] = strdup(line + 7);
            *strchr(types[ntypes], ' ') = '\0';
            ntypes++;
            continue;
        }
        if (line[0] == '#')
            continue;
        sp = strrchr(line, ' ');
        assert_non_null(sp);
        *sp = '\0';
        val = strtod(sp + 1, NULL);
        if (nseries == cap) {
            cap = cap ? cap * 2 : 1024;
            series = realloc(series, cap * sizeof(*series));
        }
        series[nseries++] = strdup(line);

        brace = strchr(line, '{');
        snprintf(name, sizeof(name), "%.*s", brace ? (int)(brace - line) : (int)strlen(line), line);
        if (strlen(name) > 7 && strcmp(name + strlen(name) - 7, "_bucket") == 0) {
            char base[4096];
            double lev;

            le = strstr(line, ",le=\"");
            assert_non_null(le);
            snprintf(base, sizeof(base), "%.*s%s", (int)(le - line), line, strchr(le + 5, '"') + 1);
            lev = strncmp(le + 5, "+Inf", 4) == 0 ? 1e300 : strtod(le + 5, NULL);
            if (strcmp(base, prev_base) == 0) {
                assert_true(lev > prev_le);
                assert_true(val >= prev_val);
            } else {
                snprintf(prev_base, sizeof(prev_base), "%s", base);
            }
            prev_le = lev;
            prev_val = val;
            if (lev == 1e300) {
                snprintf(inf_base, sizeof(inf_base), "%s", base);
                inf_val = val;
            }
        } else if (strlen(name) > 6 && strcmp(name + strlen(name) - 6, "_count") == 0) {
            char base[4096];

            /* name_count{labels} -> name_bucket{labels} */
            snprintf(base, sizeof(base), "%.*s_bucket%s", (int)(strlen(name) - 6), name,
                     brace ? brace : "");
            assert_string_equal(base, inf_base);
            assert_true(val == inf_val);
            nhist++;
            inf_base[0] = '\0';
            prev_base[0] = '\0';
        }
    }
    qsort(series, nseries, sizeof(*series), cmp_str);
    for (i = 1; i < nseries; i++)
        if (strcmp(series[i], series[i - 1]) == 0)
            fail_msg("duplicate series %s", series[i]);
    qsort(types, ntypes, sizeof(*types), cmp_str);
    for (i = 1; i < ntypes; i++)
        if (strcmp(types[i], types[i - 1]) == 0)
            fail_msg("duplicate TYPE %s", types[i]);
    for (i = 0; i < nseries; i++)
        free(series[i]);
    for (i = 0; i < ntypes; i++)
        free(types[i]);
    free(series);
    free(types);
    free(copy);
    return nhist;
}

/* Runs `promtool check metrics` on text when promtool is installed. Its only accepted complaint
 * is the lint about Istio's own metric name istio_request_duration_milliseconds (not in seconds),
 * and its nodus_ twin with the principals.
 */
static void promtool_check(const char *text)
{
    char path[] = "/tmp/nodus-metrics-XXXXXX", cmd[256], line[1024];
    FILE *f, *p;
    int fd, rc;
    unsigned other = 0;

    if (system("command -v promtool >/dev/null 2>&1") != 0) {
        print_message("promtool not installed: exposition check skipped\n");
        return;
    }
    fd = mkstemp(path);
    assert_true(fd >= 0);
    f = fdopen(fd, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    snprintf(cmd, sizeof(cmd), "promtool check metrics < %s 2>&1", path);
    p = popen(cmd, "r");
    assert_non_null(p);
    while (fgets(line, sizeof(line), p)) {
        if (strstr(line, "istio_request_duration_milliseconds use base unit \"seconds\"") ||
            strstr(line, "nodus_request_duration_milliseconds use base unit \"seconds\""))
            continue;
        print_message("promtool: %s", line);
        other++;
    }
    rc = pclose(p);
    unlink(path);
    assert_int_equal(other, 0);
    /* 0: clean; 3: lint problems only (the one above). 1 would be a parse error. */
    assert_true(WEXITSTATUS(rc) == 0 || WEXITSTATUS(rc) == 3);
}

static int setup2(void **state)
{
    (void)state;
    if (nd_metrics_init(2, ND_METRICS_PRINCIPALS_DEFAULT) != 0)
        return -1;
    nd_metrics_set_node("edge-1");
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    nd_metrics_fini();
    return 0;
}

/* ---- response flags
 * ----------------------------------------------------------------------------*/
static void test_rf_format(void **state)
{
    char b[ND_RF_BUFSZ], small[5];
    size_t n;

    (void)state;
    assert_int_equal(nd_rf_format(0, b, sizeof(b)), 1);
    assert_string_equal(b, "-");
    nd_rf_format(ND_RF_URX | ND_RF_UF, b, sizeof(b));
    assert_string_equal(b, "UF,URX"); /* Envoy's order, not the caller's */
    nd_rf_format(ND_RF_NR, b, sizeof(b));
    assert_string_equal(b, "NR");
    nd_rf_format(ND_RF_UH | ND_RF_UO | ND_RF_DC | ND_RF_DPE | ND_RF_UPE, b, sizeof(b));
    assert_string_equal(b, "UH,UO,DC,DPE,UPE");
    nd_rf_format(ND_RF_UT | ND_RF_LR | ND_RF_UC | ND_RF_RL | ND_RF_UAEX | ND_RF_SI | ND_RF_DT, b,
                 sizeof(b));
    assert_string_equal(b, "UT,LR,UC,RL,UAEX,SI,DT");
    assert_int_equal(nd_rf_format(0x80000000u, b, sizeof(b)), 1); /* unknown bits ignored */
    assert_string_equal(b, "-");
    n = nd_rf_format(0xffffffffu, b, sizeof(b));
    assert_true(n < ND_RF_BUFSZ);
    assert_int_equal(strlen(b), n);
    assert_string_equal(b, "UH,UT,LR,UR,UF,UC,UO,NR,DI,RL,UAEX,RLSE,DC,URX,SI,IH,DPE,DT,UPE,OM");
    /* truncation: snprintf semantics */
    assert_int_equal(nd_rf_format(ND_RF_UF | ND_RF_URX, small, sizeof(small)), 6);
    assert_string_equal(small, "UF,U");
    assert_int_equal(nd_rf_format(ND_RF_UF, NULL, 0), 2);
}

/* ---- names
 * -------------------------------------------------------------------------------------*/
static void test_intern(void **state)
{
    uint16_t a, b, c;
    char name[32], *out;
    unsigned i;

    (void)state;
    a = nd_metrics_intern("inbound");
    b = nd_metrics_intern("reviews");
    assert_int_not_equal(a, b);
    assert_int_equal(nd_metrics_intern("inbound"), a);
    assert_int_equal(nd_metrics_intern("reviews"), b);
    assert_string_equal(nd_metrics_name(a), "inbound");
    assert_string_equal(nd_metrics_name(ND_METRICS_NONE), "unknown");
    assert_string_equal(nd_metrics_name(ND_METRICS_OTHER), "other");
    assert_string_equal(nd_metrics_name(4000), "other"); /* never returned */
    assert_int_equal(nd_metrics_intern(NULL), ND_METRICS_NONE);

    /* fill the table: the 4096 names fit, then "other" */
    for (i = 2; i < ND_METRICS_MAX_NAMES; i++) {
        snprintf(name, sizeof(name), "n%u", i);
        c = nd_metrics_intern(name);
        assert_int_equal(c, i);
    }
    assert_int_equal(nd_metrics_intern("one-too-many"), ND_METRICS_OTHER);
    assert_int_equal(nd_metrics_intern("n4095"), 4095); /* known names still resolve */
    assert_int_equal(nd_metrics_intern("inbound"), a);

    assert_int_equal(nd_metrics_init(1, ND_METRICS_PRINCIPALS_DEFAULT), 0);
    out = render();
    assert_true(value_of(out, "nodus_metrics_names") == 4096);
    assert_true(value_of(out, "nodus_metrics_names_overflow_total") == 1);
    free(out);
    nd_metrics_fini();

    /* fini forgets everything */
    assert_string_equal(nd_metrics_name(0), "other");
    assert_int_equal(nd_metrics_intern("reviews"), 0);
    nd_metrics_fini();
}

static void test_init_args(void **state)
{
    struct nd_sbuf b = {0};

    (void)state;
    assert_int_equal(nd_metrics_init(0, ND_METRICS_PRINCIPALS_DEFAULT), -EINVAL);
    assert_int_equal(nd_metrics_init(ND_MAX_WORKERS + 1, ND_METRICS_PRINCIPALS_DEFAULT), -EINVAL);
    /* before init: records are ignored, render is empty */
    nd_metrics_count(0, ND_C_RELOADS, 1);
    nd_metrics_count(ND_METRICS_MAIN, ND_C_RELOADS, 1);
    assert_int_equal(nd_metrics_render(&b), 0);
    assert_int_equal(b.len, 0);
    assert_int_equal(nd_metrics_init(ND_MAX_WORKERS, ND_METRICS_PRINCIPALS_DEFAULT), 0);
    assert_int_equal(nd_metrics_init(2, ND_METRICS_PRINCIPALS_DEFAULT), -EALREADY);
    nd_metrics_fini();
    assert_int_equal(nd_metrics_init(2, ND_METRICS_PRINCIPALS_DEFAULT), 0);
    nd_metrics_fini();
}

/* ---- HTTP records
 * ------------------------------------------------------------------------------*/
static void test_requests(void **state)
{
    uint16_t in, rev, rat;
    struct nd_req_record r;
    char s[1024], raw[64], *out;
    unsigned nhist;

    (void)state;
    in = nd_metrics_intern("inbound");
    rev = nd_metrics_intern("reviews");
    rat = nd_metrics_intern("ratings");

    /* 200 from reviews, from both workers: 0.3 ms, 3 ms, 700 ms */
    r = (struct nd_req_record){.listener = in,
                               .cluster = rev,
                               .status = 200,
                               .duration_us = 300,
                               .req_bytes = 0,
                               .resp_bytes = 1};
    nd_metrics_request(0, &r);
    r.duration_us = 3000;
    r.req_bytes = 120;
    r.resp_bytes = 5000;
    nd_metrics_request(1, &r);
    r.duration_us = 700000;
    r.req_bytes = 7;
    r.resp_bytes = 4000000000ull;
    nd_metrics_request(0, &r);
    /* 503 UF,URX from ratings, worker 1, twice */
    r = (struct nd_req_record){.listener = in,
                               .cluster = rat,
                               .status = 503,
                               .flags = ND_RF_URX | ND_RF_UF,
                               .duration_us = 1000,
                               .req_bytes = 100,
                               .resp_bytes = 95};
    nd_metrics_request(1, &r);
    nd_metrics_request(1, &r);
    /* local 404 NR: no cluster; status 0 for an aborted one */
    r = (struct nd_req_record){.listener = in,
                               .cluster = ND_METRICS_NONE,
                               .status = 404,
                               .flags = ND_RF_NR,
                               .duration_us = 10};
    nd_metrics_request(0, &r);
    r = (struct nd_req_record){.listener = in, .cluster = rev, .status = 0, .flags = ND_RF_DC};
    nd_metrics_request(1, &r);
    /* out-of-range worker: ignored */
    nd_metrics_request(2, &r);
    nd_metrics_request(ND_METRICS_MAIN, &r);

    out = render();
    assert_true(value_of(out, lbl(s, sizeof(s), "istio_requests_total", "inbound", "reviews", "200",
                                  "-", NULL)) == 3);
    assert_true(value_of(out, lbl(s, sizeof(s), "istio_requests_total", "inbound", "ratings", "503",
                                  "UF,URX", NULL)) == 2);
    assert_true(value_of(out, lbl(s, sizeof(s), "istio_requests_total", "inbound", "unknown", "404",
                                  "NR", NULL)) == 1);
    assert_true(value_of(out, lbl(s, sizeof(s), "istio_requests_total", "inbound", "reviews", "0",
                                  "DC", NULL)) == 1);

    /* duration: 0.3 ms <= 0.5; 3 ms <= 5; 700 ms <= 1000 */
#define DUR(le)                                                                                    \
    lbl(s, sizeof(s), "istio_request_duration_milliseconds_bucket", "inbound", "reviews", "200",   \
        "-", le)
    assert_true(value_of(out, DUR("0.5")) == 1);
    assert_true(value_of(out, DUR("1")) == 1);
    assert_true(value_of(out, DUR("5")) == 2);
    assert_true(value_of(out, DUR("500")) == 2);
    assert_true(value_of(out, DUR("1000")) == 3);
    assert_true(value_of(out, DUR("3600000")) == 3);
    assert_true(value_of(out, DUR("+Inf")) == 3);
#undef DUR
    assert_true(value_of(out, lbl(s, sizeof(s), "istio_request_duration_milliseconds_count",
                                  "inbound", "reviews", "200", "-", NULL)) == 3);
    assert_string_equal(raw_value_of(out,
                                     lbl(s, sizeof(s), "istio_request_duration_milliseconds_sum",
                                         "inbound", "reviews", "200", "-", NULL),
                                     raw, sizeof(raw)),
                        "703.300");
    /* exactly on a bound counts in that bucket: 1 ms <= le 1 */
    assert_true(value_of(out, lbl(s, sizeof(s), "istio_request_duration_milliseconds_bucket",
                                  "inbound", "ratings", "503", "UF,URX", "0.5")) == 0);
    assert_true(value_of(out, lbl(s, sizeof(s), "istio_request_duration_milliseconds_bucket",
                                  "inbound", "ratings", "503", "UF,URX", "1")) == 2);

    /* request bytes: 0 <= 0.5; 120 <= 250; 7 <= 10 */
#define RQB(le)                                                                                    \
    lbl(s, sizeof(s), "istio_request_bytes_bucket", "inbound", "reviews", "200", "-", le)
    assert_true(value_of(out, RQB("0.5")) == 1);
    assert_true(value_of(out, RQB("5")) == 1);
    assert_true(value_of(out, RQB("10")) == 2);
    assert_true(value_of(out, RQB("100")) == 2);
    assert_true(value_of(out, RQB("250")) == 3);
    assert_true(value_of(out, RQB("+Inf")) == 3);
#undef RQB
    assert_true(value_of(out, lbl(s, sizeof(s), "istio_request_bytes_sum", "inbound", "reviews",
                                  "200", "-", NULL)) == 127);
    /* response bytes: 1, 5000, 4e9 (beyond the last bound: only +Inf) */
#define RSB(le)                                                                                    \
    lbl(s, sizeof(s), "istio_response_bytes_bucket", "inbound", "reviews", "200", "-", le)
    assert_true(value_of(out, RSB("0.5")) == 0);
    assert_true(value_of(out, RSB("1")) == 1);
    assert_true(value_of(out, RSB("5000")) == 2);
    assert_true(value_of(out, RSB("3600000")) == 2);
    assert_true(value_of(out, RSB("+Inf")) == 3);
#undef RSB
    assert_string_equal(raw_value_of(out,
                                     lbl(s, sizeof(s), "istio_response_bytes_sum", "inbound",
                                         "reviews", "200", "-", NULL),
                                     raw, sizeof(raw)),
                        "4000005001");
    assert_true(value_of(out, lbl(s, sizeof(s), "istio_response_bytes_count", "inbound", "reviews",
                                  "200", "-", NULL)) == 3);

    /* one HELP and TYPE per family, all histograms consistent: 4 series x 3 histograms, and the
     * 4 series of nodus_request_duration_milliseconds */
    nhist = check_exposition(out);
    assert_int_equal(nhist, 16);
    assert_non_null(strstr(out, "# TYPE istio_requests_total counter\n"));
    assert_non_null(strstr(out, "# TYPE istio_request_duration_milliseconds histogram\n"));
    assert_non_null(strstr(out, "# TYPE istio_request_bytes histogram\n"));
    assert_non_null(strstr(out, "# TYPE istio_response_bytes histogram\n"));
    assert_non_null(strstr(out, "# HELP istio_requests_total "));
    assert_true(value_of(out, "nodus_metrics_overflow_total{table=\"http\"}") == 0);
    promtool_check(out);
    free(out);
}

static void test_label_escaping(void **state)
{
    uint16_t l, c;
    struct nd_req_record r;
    char *out;

    (void)state;
    l = nd_metrics_intern("in\"x\\y\nz");
    c = nd_metrics_intern("a b");
    r = (struct nd_req_record){.listener = l, .cluster = c, .status = 200};
    nd_metrics_request(0, &r);
    nd_metrics_tcp_open(1, &(struct nd_tcp_key){l, c, ND_METRICS_NONE, ND_METRICS_NONE, false});
    out = render();
    assert_non_null(strstr(out, "listener=\"in\\\"x\\\\y\\nz\""));
    assert_non_null(strstr(out, "destination_service=\"a b\""));
    check_exposition(out);
    promtool_check(out);
    free(out);
}

/* Interned names after ND_METRICS_MAX_NAMES, and ids that name nothing, render as "other" and are
 * merged: never two series with the same labels. */
static void test_other_names_merge(void **state)
{
    uint16_t in = nd_metrics_intern("inbound");
    struct nd_req_record r = {.listener = in, .cluster = 3000, .status = 200};
    char s[1024], *out;

    (void)state;
    nd_metrics_request(0, &r);
    r.cluster = 3001;
    nd_metrics_request(0, &r);
    r.cluster = ND_METRICS_OTHER;
    nd_metrics_request(1, &r);
    nd_metrics_tcp_open(0, &(struct nd_tcp_key){in, 3000, ND_METRICS_NONE, ND_METRICS_NONE, false});
    nd_metrics_tcp_open(0, &(struct nd_tcp_key){in, 3001, ND_METRICS_NONE, ND_METRICS_NONE, false});
    out = render();
    assert_true(value_of(out, lbl(s, sizeof(s), "istio_requests_total", "inbound", "other", "200",
                                  "-", NULL)) == 3);
    check_exposition(out);
    free(out);
}

static void test_overflow(void **state)
{
    uint16_t in = nd_metrics_intern("inbound"), rev = nd_metrics_intern("reviews");
    struct nd_req_record r = {.listener = in, .cluster = rev, .duration_us = 2000};
    char s[1024], name[16], *out, *p;
    double total = 0, overflow;
    unsigned i, nhist;
    uint16_t ids[400];

    (void)state;
    /* 2000 distinct keys on worker 0 (more than ND_METRICS_REQ_SLOTS), each twice */
    for (i = 0; i < 4000; i++) {
        r.status = (uint16_t)(100 + i % 2000);
        nd_metrics_request(0, &r);
    }
    out = render();
    overflow = value_of(out, "nodus_metrics_overflow_total{table=\"http\"}");
    assert_true(overflow >= 2 * (2000 - ND_METRICS_REQ_SLOTS));
    assert_true(value_of(out, lbl(s, sizeof(s), "istio_requests_total", "other", "other", "other",
                                  "other", NULL)) == overflow);
    /* nothing lost: the series add up to the records */
    for (p = strstr(out, "\nistio_requests_total{"); p;
         p = strstr(p + 1, "\nistio_requests_total{")) {
        const char *eol = strchr(p + 1, '\n'), *sp = eol;

        while (*sp != ' ')
            sp--;
        total += strtod(sp + 1, NULL);
    }
    assert_true(total == 4000);
    nhist = check_exposition(out);
    assert_true(nhist > 3 * 1000);
    promtool_check(out);
    free(out);

    /* TCP: 400 distinct (listener, cluster) keys on worker 1 */
    for (i = 0; i < 400; i++) {
        snprintf(name, sizeof(name), "c%u", i);
        ids[i] = nd_metrics_intern(name);
        struct nd_tcp_key k = {in, ids[i], ND_METRICS_NONE, ND_METRICS_NONE, false};

        nd_metrics_tcp_open(1, &k);
        nd_metrics_tcp_close(1, &k, 10, 1);
    }
    out = render();
    overflow = value_of(out, "nodus_metrics_overflow_total{table=\"tcp\"}");
    assert_true(overflow >= 2 * (400 - ND_METRICS_TCP_SLOTS));
    assert_true(value_of(out, tcp_lbl(s, sizeof(s), "istio_tcp_connections_opened_total", "other",
                                      "other")) == overflow / 2);
    check_exposition(out);
    free(out);
}

/* ---- principals
 * --------------------------------------------------------------------------------*/
/* A nodus_requests_total series of listener "inbound", cluster "reviews", code 200. */
static char *pr_lbl(char *buf, size_t len, const char *metric, const char *src, const char *dst,
                    const char *policy, const char *le)
{
    int n = snprintf(buf, len,
                     "%s{reporter=\"source\",source_workload=\"edge-1\",source_principal=\"%s\","
                     "destination_principal=\"%s\",destination_service=\"reviews\","
                     "destination_cluster=\"reviews\",request_protocol=\"http\","
                     "response_code=\"200\",response_flags=\"-\","
                     "connection_security_policy=\"%s\",listener=\"inbound\"",
                     metric, src, dst, policy);

    if (le)
        snprintf(buf + n, len - (size_t)n, ",le=\"%s\"}", le);
    else
        snprintf(buf + n, len - (size_t)n, "}");
    return buf;
}

#define FRONT "spiffe://mesh.local/ns/web/sa/frontend"
#define SELF "spiffe://mesh.local/ns/edge/sa/node"

static uint16_t pid(const char *p)
{
    return nd_metrics_principal(p, strlen(p));
}

static int setup_principals4(void **state)
{
    (void)state;
    if (nd_metrics_init(2, 4) != 0)
        return -1;
    nd_metrics_set_node("edge-1");
    return 0;
}

/* Ids, labels, merging over workers, the "other" principal when the table is full. */
static void test_principals(void **state)
{
    uint16_t in = nd_metrics_intern("inbound"), rev = nd_metrics_intern("reviews");
    struct nd_req_record r = {.listener = in, .cluster = rev, .status = 200};
    char s[1024], longid[300], *out;
    uint16_t front, self, b, c;

    (void)state;
    assert_int_equal(nd_metrics_principal("", 0), ND_METRICS_NONE);
    assert_int_equal(nd_metrics_self_principal(), ND_METRICS_NONE);
    front = pid(FRONT);
    assert_true(front < 4);
    assert_int_equal(pid(FRONT), front); /* the same name, the same id */
    nd_metrics_set_self_principal(SELF);
    self = nd_metrics_self_principal();
    assert_true(self < 4 && self != front);
    assert_int_equal(pid(SELF), self);
    /* longer than a label may be: "other", and it takes no room */
    memset(longid, 'a', sizeof(longid));
    assert_int_equal(nd_metrics_principal(longid, ND_METRICS_PRINCIPAL_LEN + 1), ND_METRICS_OTHER);
    b = pid("spiffe://mesh.local/ns/b/sa/b");
    c = pid("spiffe://mesh.local/ns/c/sa/c");
    assert_true(b < 4 && c < 4 && b != c && b != front && c != self);
    /* the table (4) is full: a fifth name is "other", again and again; known names still found */
    assert_int_equal(pid("spiffe://mesh.local/ns/d/sa/d"), ND_METRICS_OTHER);
    assert_int_equal(pid("spiffe://mesh.local/ns/d/sa/d"), ND_METRICS_OTHER);
    assert_int_equal(pid("spiffe://mesh.local/ns/b/sa/b"), b);

    /* inbound over mTLS, on both workers: one series */
    r.flags = ND_REC_MTLS;
    r.src_principal = front;
    r.dst_principal = self;
    r.duration_us = 700;
    nd_metrics_request(0, &r);
    r.duration_us = 3000;
    nd_metrics_request(1, &r);
    /* plaintext: unknown, unknown */
    r.flags = 0;
    r.src_principal = r.dst_principal = ND_METRICS_NONE;
    nd_metrics_request(0, &r);
    /* a peer that did not fit */
    r.flags = ND_REC_MTLS;
    r.src_principal = ND_METRICS_OTHER;
    r.dst_principal = self;
    nd_metrics_request(1, &r);
    nd_metrics_request(1, &r);

    out = render();
    assert_true(value_of(out, pr_lbl(s, sizeof(s), "nodus_requests_total", FRONT, SELF,
                                     "mutual_tls", NULL)) == 2);
    assert_true(value_of(out, pr_lbl(s, sizeof(s), "nodus_request_duration_milliseconds_bucket",
                                     FRONT, SELF, "mutual_tls", "0.5")) == 0);
    assert_true(value_of(out, pr_lbl(s, sizeof(s), "nodus_request_duration_milliseconds_bucket",
                                     FRONT, SELF, "mutual_tls", "1")) == 1);
    assert_true(value_of(out, pr_lbl(s, sizeof(s), "nodus_request_duration_milliseconds_bucket",
                                     FRONT, SELF, "mutual_tls", "5")) == 2);
    assert_true(value_of(out, pr_lbl(s, sizeof(s), "nodus_request_duration_milliseconds_sum", FRONT,
                                     SELF, "mutual_tls", NULL)) == 3.7);
    assert_true(value_of(out, pr_lbl(s, sizeof(s), "nodus_requests_total", "unknown", "unknown",
                                     "none", NULL)) == 1);
    assert_true(value_of(out, pr_lbl(s, sizeof(s), "nodus_requests_total", "other", SELF,
                                     "mutual_tls", NULL)) == 2);
    assert_true(value_of(out, "nodus_metrics_principals") == 4);
    assert_true(value_of(out, "nodus_metrics_principals_overflow_total") == 2);
    assert_true(value_of(out, "nodus_metrics_overflow_total{table=\"principal\"}") == 0);
    /* the Istio families do not change: the five requests in two series */
    assert_true(value_of(out, lbl(s, sizeof(s), "istio_requests_total", "inbound", "reviews", "200",
                                  "-", NULL)) == 1);
    assert_null(strstr(out, "istio_requests_total{reporter=\"source\",source_workload=\"edge-1\","
                            "source_principal"));
    assert_int_equal(check_exposition(out), 2 * 3 + 3);
    promtool_check(out);
    free(out);
}

/* Keys beyond the per-worker table go to the overflow series; nothing is lost from the total. */
static void test_principals_overflow(void **state)
{
    uint16_t in = nd_metrics_intern("inbound"), rev = nd_metrics_intern("reviews");
    struct nd_req_record r = {.listener = in, .cluster = rev, .flags = ND_REC_MTLS};
    char name[64], *out, *p;
    double total = 0, overflow;
    unsigned i;

    (void)state;
    /* 4 principals x 500 status codes: 2000 keys, more than the 1024 slots */
    for (i = 0; i < 4000; i++) {
        snprintf(name, sizeof(name), "spiffe://mesh.local/ns/n/sa/%u", i % 4);
        r.src_principal = pid(name);
        r.dst_principal = ND_METRICS_NONE;
        r.status = (uint16_t)(100 + (i / 4) % 500);
        nd_metrics_request(0, &r);
    }
    out = render();
    overflow = value_of(out, "nodus_metrics_overflow_total{table=\"principal\"}");
    assert_true(overflow >= 2 * (2000 - 1024));
    assert_true(value_of(out, "nodus_requests_total{reporter=\"source\",source_workload=\"edge-1\","
                              "source_principal=\"other\",destination_principal=\"other\","
                              "destination_service=\"other\",destination_cluster=\"other\","
                              "request_protocol=\"http\",response_code=\"other\","
                              "response_flags=\"other\",connection_security_policy=\"none\","
                              "listener=\"other\"}") == overflow);
    for (p = strstr(out, "\nnodus_requests_total{"); p;
         p = strstr(p + 1, "\nnodus_requests_total{")) {
        const char *sp = strchr(p + 1, '\n');

        while (*sp != ' ')
            sp--;
        total += strtod(sp + 1, NULL);
    }
    assert_true(total == 4000);
    assert_true(value_of(out, "nodus_metrics_principals_overflow_total") == 0);
    check_exposition(out);
    promtool_check(out);
    free(out);
}

struct intern_arg {
    unsigned seed;
    uint16_t ids[200];
};

static void *intern_thread(void *p)
{
    struct intern_arg *a = p;
    char name[64];
    unsigned i, k;

    for (i = 0; i < 200; i++) {
        k = (i + a->seed * 37) % 200;
        snprintf(name, sizeof(name), "spiffe://mesh.local/ns/n/sa/w%u", k);
        a->ids[k] = pid(name);
    }
    return NULL;
}

/* Four threads add the same 200 names at once to a table of 128: every name has one id (or is
 * "other"), no two names share one, and the names are intact. */
static void test_principals_concurrent(void **state)
{
    struct intern_arg a[4];
    pthread_t th[4];
    bool seen[128] = {false};
    unsigned i, t, named = 0;

    (void)state;
    assert_int_equal(nd_metrics_init(2, 128), 0);
    memset(a, 0, sizeof(a));
    for (t = 0; t < 4; t++) {
        a[t].seed = t;
        assert_int_equal(pthread_create(&th[t], NULL, intern_thread, &a[t]), 0);
    }
    for (t = 0; t < 4; t++)
        pthread_join(th[t], NULL);
    for (i = 0; i < 200; i++) {
        uint16_t id = ND_METRICS_OTHER;
        char name[64];

        for (t = 0; t < 4; t++)
            if (a[t].ids[i] != ND_METRICS_OTHER) {
                if (id != ND_METRICS_OTHER)
                    assert_int_equal(a[t].ids[i], id);
                id = a[t].ids[i];
            }
        if (id == ND_METRICS_OTHER)
            continue;
        assert_true(id < 128);
        assert_false(seen[id]);
        seen[id] = true;
        named++;
        snprintf(name, sizeof(name), "spiffe://mesh.local/ns/n/sa/w%u", i);
        assert_int_equal(pid(name), id); /* found again, by name */
    }
    /* a name's entry is lost only when two threads added it at the same moment */
    assert_true(named > 64 && named <= 128);
}

/* metrics { principals = 0 }: no principal table, no nodus_requests_total. */
static void test_principals_off(void **state)
{
    struct nd_req_record r = {.listener = nd_metrics_intern("inbound"), .status = 200};
    char *out;

    (void)state;
    assert_int_equal(nd_metrics_init(1, 0), 0);
    assert_int_equal(pid(FRONT), ND_METRICS_NONE);
    nd_metrics_set_self_principal(SELF);
    assert_int_equal(nd_metrics_self_principal(), ND_METRICS_NONE);
    r.src_principal = r.dst_principal = ND_METRICS_NONE;
    nd_metrics_request(0, &r);
    nd_metrics_tcp_open(
        0, &(struct nd_tcp_key){r.listener, 0, ND_METRICS_NONE, ND_METRICS_NONE, false});
    out = render();
    assert_null(strstr(out, "nodus_tcp_"));
    assert_non_null(strstr(out, "\nistio_tcp_connections_opened_total{"));
    assert_null(strstr(out, "nodus_requests_total"));
    assert_null(strstr(out, "nodus_metrics_principals"));
    assert_non_null(strstr(out, "\nistio_requests_total{"));
    free(out);
    nd_metrics_fini();
    assert_int_equal(nd_metrics_init(1, ND_METRICS_PRINCIPALS_MAX + 1), -EINVAL);
}

/* ---- TCP records
 * -------------------------------------------------------------------------------*/
static void test_tcp(void **state)
{
    uint16_t l = nd_metrics_intern("db"), c = nd_metrics_intern("postgres");
    struct nd_tcp_key k = {l, c, ND_METRICS_NONE, ND_METRICS_NONE, false};
    char s[1024], *out;

    (void)state;
    nd_metrics_tcp_open(0, &k);
    nd_metrics_tcp_open(1, &k);
    nd_metrics_tcp_open(1, &k);
    nd_metrics_tcp_bytes(0, &k, 100, 10);
    nd_metrics_tcp_bytes(0, &k, 100, 10);
    nd_metrics_tcp_close(0, &k, 50, 5);
    nd_metrics_tcp_close(1, &k, 1, 2);
    nd_metrics_tcp_open(5, &k); /* ignored */
    out = render();
    assert_true(value_of(out, tcp_lbl(s, sizeof(s), "istio_tcp_connections_opened_total", "db",
                                      "postgres")) == 3);
    assert_true(value_of(out, tcp_lbl(s, sizeof(s), "istio_tcp_connections_closed_total", "db",
                                      "postgres")) == 2);
    assert_true(value_of(out, tcp_lbl(s, sizeof(s), "istio_tcp_sent_bytes_total", "db",
                                      "postgres")) == 251);
    assert_true(value_of(out, tcp_lbl(s, sizeof(s), "istio_tcp_received_bytes_total", "db",
                                      "postgres")) == 27);
    assert_non_null(strstr(out, "# TYPE istio_tcp_sent_bytes_total counter\n"));
    assert_non_null(
        strstr(out, "\nnodus_tcp_connections_opened_total{reporter=\"source\",source_workload="
                    "\"edge-1\",source_principal=\"unknown\",destination_principal=\"unknown\","));
    check_exposition(out);
    promtool_check(out);
    free(out);
}

/* TCP with principals: istio_tcp_* by security policy, nodus_tcp_* by principals too. */
static void test_tcp_principals(void **state)
{
    uint16_t l = nd_metrics_intern("db"), c = nd_metrics_intern("postgres");
    uint16_t front = pid(FRONT), self;
    struct nd_tcp_key in, plain = {l, c, ND_METRICS_NONE, ND_METRICS_NONE, false};
    char *out;

    (void)state;
    nd_metrics_set_self_principal(SELF);
    self = nd_metrics_self_principal();
    in = (struct nd_tcp_key){l, c, front, self, true};
    nd_metrics_tcp_open(0, &in);
    nd_metrics_tcp_open(1, &in);
    nd_metrics_tcp_bytes(0, &in, 1000, 10);
    nd_metrics_tcp_close(1, &in, 20, 2);
    nd_metrics_tcp_open(0, &plain);
    nd_metrics_tcp_close(0, &plain, 7, 1);
    out = render();
    assert_true(value_of(out, "istio_tcp_connections_opened_total{reporter=\"source\","
                              "source_workload=\"edge-1\",destination_service=\"postgres\","
                              "destination_cluster=\"postgres\",request_protocol=\"tcp\","
                              "connection_security_policy=\"mutual_tls\",listener=\"db\"}") == 2);
    assert_true(value_of(out, "istio_tcp_sent_bytes_total{reporter=\"source\","
                              "source_workload=\"edge-1\",destination_service=\"postgres\","
                              "destination_cluster=\"postgres\",request_protocol=\"tcp\","
                              "connection_security_policy=\"none\",listener=\"db\"}") == 7);
    assert_true(value_of(out,
                         "nodus_tcp_sent_bytes_total{reporter=\"source\","
                         "source_workload=\"edge-1\",source_principal=\"" FRONT "\","
                         "destination_principal=\"" SELF "\",destination_service=\"postgres\","
                         "destination_cluster=\"postgres\",request_protocol=\"tcp\","
                         "connection_security_policy=\"mutual_tls\",listener=\"db\"}") == 1020);
    assert_true(value_of(out, "nodus_tcp_connections_closed_total{reporter=\"source\","
                              "source_workload=\"edge-1\",source_principal=\"unknown\","
                              "destination_principal=\"unknown\",destination_service=\"postgres\","
                              "destination_cluster=\"postgres\",request_protocol=\"tcp\","
                              "connection_security_policy=\"none\",listener=\"db\"}") == 1);
    check_exposition(out);
    promtool_check(out);
    free(out);
}

/* ---- core counters and gauges
 * ------------------------------------------------------------------*/
static void test_counters_gauges(void **state)
{
    char *out;

    (void)state;
    nd_metrics_gauge_add(0, ND_G_DOWNSTREAM_CX_ACTIVE, 3);
    nd_metrics_gauge_add(1, ND_G_DOWNSTREAM_CX_ACTIVE, 2);
    nd_metrics_gauge_add(0, ND_G_DOWNSTREAM_CX_ACTIVE, -1);
    nd_metrics_gauge_add(1, ND_G_UPSTREAM_CX_IDLE, -2); /* a worker's part may go below 0 */
    nd_metrics_gauge_add(0, ND_G_UPSTREAM_CX_IDLE, 1);
    nd_metrics_gauge_add(ND_METRICS_MAIN, ND_G_BUFFERS_IN_USE, 7);
    nd_metrics_count(0, ND_C_DOWNSTREAM_CX_TOTAL, 5);
    nd_metrics_count(1, ND_C_DOWNSTREAM_CX_TOTAL, 6);
    nd_metrics_count(ND_METRICS_MAIN, ND_C_RELOADS, 2);
    nd_metrics_count(ND_METRICS_MAIN, ND_C_RELOAD_FAILURES, 1);
    nd_metrics_count(0, ND_C_LOOP_ITERATIONS, 100);
    nd_metrics_count(1, ND_C_LOOP_ITERATIONS, 200);
    nd_metrics_count(1, ND_C_LOOP_BUSY, 20);
    nd_metrics_count(7, ND_C_DOWNSTREAM_CX_TOTAL, 1000);     /* no such worker: ignored */
    nd_metrics_count(0, (enum nd_counter)ND_C__COUNT, 1000); /* no such counter: ignored */
    out = render();
    assert_true(value_of(out, "nodus_downstream_cx_active") == 4);
    assert_true(value_of(out, "nodus_upstream_cx_idle") == -1);
    assert_true(value_of(out, "nodus_buffers_in_use") == 7);
    assert_true(value_of(out, "nodus_downstream_cx_total") == 11);
    assert_true(value_of(out, "nodus_reloads_total") == 2);
    assert_true(value_of(out, "nodus_reload_failures_total") == 1);
    assert_true(value_of(out, "nodus_upstream_cx_connect_fail_total") == 0);
    assert_true(value_of(out, "nodus_worker_loop_iterations_total{worker=\"0\"}") == 100);
    assert_true(value_of(out, "nodus_worker_loop_iterations_total{worker=\"1\"}") == 200);
    assert_true(value_of(out, "nodus_worker_loop_busy_total{worker=\"1\"}") == 20);
    assert_true(value_of(out, "nodus_workers") == 2);
    assert_non_null(strstr(out, "# TYPE nodus_downstream_cx_active gauge\n"));
    assert_non_null(strstr(out, "# TYPE nodus_downstream_cx_total counter\n"));
    check_exposition(out);
    promtool_check(out);
    free(out);
}

/* ---- plugin counters (the ABI)
 * -----------------------------------------------------------------*/
static void test_plugin_counters(void **state)
{
    nodus_counter_t a, b, c, d;
    char name[32], *out;
    unsigned i;

    (void)state;
    a = nodus_counter("ratelimit", "denied", "Requests denied by the rate limiter.");
    assert_true(a >= 0);
    assert_int_equal(nodus_counter("ratelimit", "denied", "again"), a); /* idempotent */
    b = nodus_counter("my-plugin", "cache.hit", NULL);
    assert_true(b >= 0 && b != a);
    c = nodus_counter("authz", "allowed_total", "Already ends in _total.");
    assert_true(c >= 0);
    assert_int_equal(nodus_counter("", "x", "h"), -1);
    assert_int_equal(nodus_counter("p", NULL, "h"), -1);

    nodus_counter_add(0, a, 3);
    nodus_counter_add(1, a, 4);
    nodus_counter_add(ND_METRICS_MAIN, a, 1);
    nodus_counter_add(1, b, 1);
    nodus_counter_add(0, -1, 5);  /* bad id: ignored */
    nodus_counter_add(0, 999, 5); /* bad id: ignored */
    nodus_counter_add(9, a, 50);  /* bad worker: ignored */

    out = render();
    assert_true(value_of(out, "nodus_plugin_ratelimit_denied_total") == 8);
    assert_non_null(strstr(out,
                           "# HELP nodus_plugin_ratelimit_denied_total Requests denied by the rate "
                           "limiter.\n# TYPE nodus_plugin_ratelimit_denied_total counter\n"));
    assert_true(value_of(out, "nodus_plugin_my_plugin_cache_hit_total") == 1);
    assert_true(value_of(out, "nodus_plugin_authz_allowed_total") == 0);
    check_exposition(out);
    promtool_check(out);
    free(out);

    /* up to ND_METRICS_MAX_PLUGIN_COUNTERS */
    for (i = 3; i < ND_METRICS_MAX_PLUGIN_COUNTERS; i++) {
        snprintf(name, sizeof(name), "c%u", i);
        d = nodus_counter("many", name, "h");
        assert_int_equal(d, (int)i);
    }
    assert_int_equal(nodus_counter("many", "one_more", "h"), -1);
    assert_int_equal(nodus_counter("ratelimit", "denied", "h"), a);
}

/* ---- concurrent scrape
 * -------------------------------------------------------------------------*/
#define CONC_N 200000

struct conc_arg {
    unsigned worker;
    uint16_t l, c;
};

static void *conc_worker(void *p)
{
    const struct conc_arg *a = p;
    struct nd_req_record r = {.listener = a->l, .cluster = a->c};
    unsigned i;

    for (i = 0; i < CONC_N; i++) {
        r.status = i % 3 == 0 ? 503 : 200;
        r.flags = i % 3 == 0 ? ND_RF_UF : 0;
        r.duration_us = i % 5000;
        r.req_bytes = i % 300;
        r.resp_bytes = i;
        nd_metrics_request(a->worker, &r);
        nd_metrics_count(a->worker, ND_C_DOWNSTREAM_CX_TOTAL, 1);
        nd_metrics_gauge_add(a->worker, ND_G_DOWNSTREAM_RQ_ACTIVE, 1);
        nd_metrics_gauge_add(a->worker, ND_G_DOWNSTREAM_RQ_ACTIVE, -1);
    }
    return NULL;
}

static void test_concurrent_scrape(void **state)
{
    struct conc_arg args[2];
    pthread_t t[2];
    double last = 0, now;
    char s[1024], *out;
    unsigned i, scrapes = 0;

    (void)state;
    for (i = 0; i < 2; i++) {
        args[i] = (struct conc_arg){
            .worker = i, .l = nd_metrics_intern("inbound"), .c = nd_metrics_intern("reviews")};
        assert_int_equal(pthread_create(&t[i], NULL, conc_worker, &args[i]), 0);
    }
    /* scrape while the workers record: every scrape is well formed, counts never go back */
    for (i = 0; i < 200; i++) {
        out = render();
        check_exposition(out);
        now = value_of(out, "nodus_downstream_cx_total");
        assert_true(now >= last);
        last = now;
        scrapes++;
        free(out);
    }
    for (i = 0; i < 2; i++)
        pthread_join(t[i], NULL);
    out = render();
    assert_true(value_of(out, "nodus_downstream_cx_total") == 2 * CONC_N);
    assert_true(value_of(out, "nodus_downstream_rq_active") == 0);
    assert_true(value_of(out, lbl(s, sizeof(s), "istio_requests_total", "inbound", "reviews", "200",
                                  "-", NULL)) +
                    value_of(out, lbl(s, sizeof(s), "istio_requests_total", "inbound", "reviews",
                                      "503", "UF", NULL)) ==
                2 * CONC_N);
    check_exposition(out);
    free(out);
    assert_true(scrapes == 200);
}

/* ---- admin handlers
 * ----------------------------------------------------------------------------*/
struct fake {
    int ready;
    int reload_rc;
    int reloads;
    const char *reload_err;
    const struct nd_config *cfg;
};

static int fake_reload(void *arg, struct nd_sbuf *msg)
{
    struct fake *f = arg;

    f->reloads++;
    if (f->reload_rc)
        nd_sbuf_adds(msg, f->reload_err);
    return f->reload_rc;
}

static int fake_ready(void *arg)
{
    return ((struct fake *)arg)->ready;
}

static const struct nd_config *fake_config(void *arg)
{
    return ((struct fake *)arg)->cfg;
}

static struct nd_str nstr(const char *s)
{
    return (struct nd_str){.p = s, .len = (uint32_t)strlen(s)};
}

static int call(const struct nd_admin_ops *ops, const char *method, const char *path,
                const char *query, struct nd_sbuf *out, const char **ctype)
{
    struct nd_http_msg m;

    memset(&m, 0, sizeof(m));
    m.method = nstr(method);
    m.path = nstr(path);
    m.query = nstr(query ? query : "");
    memset(out, 0, sizeof(*out));
    *ctype = NULL;
    return nd_admin_handle(ops, &m, NULL, 0, out, ctype);
}

static struct {
    char name[64], payload[64];
    size_t nlen, plen;
    bool cc;
    int calls;
} sent;

static int fake_event(void *arg, const char *name, size_t nlen, const void *payload, size_t plen,
                      bool cc, struct nd_sbuf *msg)
{
    (void)arg;
    sent.calls++;
    if (nlen == 3 && !memcmp(name, "bad", 3)) {
        nd_sbuf_adds(msg, "refused: bad\n");
        return -1;
    }
    memcpy(sent.name, name, nlen < 63 ? nlen : 63);
    if (plen)
        memcpy(sent.payload, payload, plen < 63 ? plen : 63);
    sent.nlen = nlen;
    sent.plen = plen;
    sent.cc = cc;
    return 0;
}

/* POST /event: the name and coalesce flag from the query (URL-decoded), the payload from the
 * body; bad queries are 400 with a reason. */
static void test_admin_event(void **state)
{
    struct nd_admin_ops ops = {.event = fake_event};
    struct nd_http_msg m;
    struct nd_sbuf out;
    const char *ct;

    (void)state;
    memset(&m, 0, sizeof(m));
    m.method = nstr("POST");
    m.path = nstr("/event");
    m.query = nstr("coalesce=false&name=de%2Fploy+now");
    memset(&out, 0, sizeof(out));
    assert_int_equal(nd_admin_handle(&ops, &m, "v 1", 3, &out, &ct), 200);
    assert_int_equal(sent.nlen, 11);
    assert_memory_equal(sent.name, "de/ploy now", 11);
    assert_int_equal(sent.plen, 3);
    assert_memory_equal(sent.payload, "v 1", 3);
    assert_false(sent.cc);
    nd_sbuf_free(&out);

    m.query = nstr("name=x"); /* coalescing by default, as serf event */
    memset(&out, 0, sizeof(out));
    assert_int_equal(nd_admin_handle(&ops, &m, NULL, 0, &out, &ct), 200);
    assert_true(sent.cc);
    assert_int_equal(sent.plen, 0);
    nd_sbuf_free(&out);

    static const char *const bad[] = {"",         "name=",      "nam=x",
                                      "name=%zz", "name=a%0ab", "name=x&coalesce=maybe"};
    int calls = sent.calls;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        m.query = nstr(bad[i]);
        memset(&out, 0, sizeof(out));
        assert_int_equal(nd_admin_handle(&ops, &m, NULL, 0, &out, &ct), 400);
        nd_sbuf_free(&out);
    }
    assert_int_equal(sent.calls, calls);
    m.query = nstr("name=bad"); /* refused by the node, with its reason */
    memset(&out, 0, sizeof(out));
    assert_int_equal(nd_admin_handle(&ops, &m, NULL, 0, &out, &ct), 400);
    assert_non_null(strstr(out.p, "refused: bad"));
    nd_sbuf_free(&out);
    m.method = nstr("GET"); /* POST only */
    m.query = nstr("name=x");
    memset(&out, 0, sizeof(out));
    assert_int_equal(nd_admin_handle(&ops, &m, NULL, 0, &out, &ct), 405);
    nd_sbuf_free(&out);
}

static void test_admin_routes(void **state)
{
    struct fake f = {.ready = 1};
    struct nd_admin_ops ops = {fake_reload, fake_ready, fake_config, &f};
    struct nd_http_msg m;
    struct nd_sbuf out;
    const char *ct;
    struct nd_req_record r = {.listener = nd_metrics_intern("inbound"),
                              .cluster = nd_metrics_intern("reviews"),
                              .status = 200};

    (void)state;
    nd_metrics_request(0, &r);

    assert_int_equal(call(&ops, "GET", "/", NULL, &out, &ct), 200);
    assert_string_equal(ct, "text/plain; charset=utf-8");
    assert_non_null(strstr(out.p, "/stats/prometheus"));
    assert_non_null(strstr(out.p, "/config_dump"));
    assert_non_null(strstr(out.p, "POST /reload"));
    nd_sbuf_free(&out);

    assert_int_equal(call(&ops, "GET", "/stats/prometheus", NULL, &out, &ct), 200);
    assert_string_equal(ct, "text/plain; version=0.0.4");
    assert_non_null(strstr(out.p, "istio_requests_total{"));
    check_exposition(out.p);
    nd_sbuf_free(&out);
    assert_int_equal(call(&ops, "GET", "/stats", "format=x", &out, &ct), 200);
    assert_string_equal(ct, "text/plain; version=0.0.4");
    assert_non_null(strstr(out.p, "istio_requests_total{"));
    nd_sbuf_free(&out);
    assert_int_equal(call(&ops, "HEAD", "/stats", NULL, &out, &ct), 200);
    nd_sbuf_free(&out);

    assert_int_equal(call(&ops, "GET", "/ready", NULL, &out, &ct), 200);
    assert_string_equal(out.p, "LIVE\n");
    nd_sbuf_free(&out);
    f.ready = 0;
    assert_int_equal(call(&ops, "GET", "/ready", NULL, &out, &ct), 503);
    assert_string_equal(out.p, "NOT READY\n");
    nd_sbuf_free(&out);

    assert_int_equal(call(&ops, "POST", "/reload", NULL, &out, &ct), 200);
    assert_string_equal(out.p, "reloaded\n");
    assert_int_equal(f.reloads, 1);
    nd_sbuf_free(&out);
    f.reload_rc = -1;
    f.reload_err = "a.lua:3: unknown key \"x\"\na.lua:7: bad duration";
    assert_int_equal(call(&ops, "POST", "/reload", NULL, &out, &ct), 500);
    assert_string_equal(out.p, "a.lua:3: unknown key \"x\"\na.lua:7: bad duration\n");
    assert_int_equal(f.reloads, 2);
    nd_sbuf_free(&out);
    f.reload_err = "";
    assert_int_equal(call(&ops, "POST", "/reload", NULL, &out, &ct), 500);
    assert_string_equal(out.p, "reload failed\n");
    nd_sbuf_free(&out);

    /* wrong method: 405, and the handler did not run */
    assert_int_equal(call(&ops, "GET", "/reload", NULL, &out, &ct), 405);
    assert_int_equal(f.reloads, 3);
    nd_sbuf_free(&out);
    assert_int_equal(call(&ops, "POST", "/stats/prometheus", NULL, &out, &ct), 405);
    nd_sbuf_free(&out);
    assert_int_equal(call(&ops, "DELETE", "/ready", NULL, &out, &ct), 405);
    nd_sbuf_free(&out);
    assert_int_equal(call(&ops, "get", "/ready", NULL, &out, &ct),
                     405); /* methods are case-sensitive */
    nd_sbuf_free(&out);
    memset(&m, 0, sizeof(m));
    m.path = nstr("/reload");
    assert_string_equal(nd_admin_allow(&m), "POST");
    m.path = nstr("/stats");
    assert_string_equal(nd_admin_allow(&m), "GET, HEAD");
    m.path = nstr("/nope");
    assert_null(nd_admin_allow(&m));

    /* unknown paths */
    assert_int_equal(call(&ops, "GET", "/nope", NULL, &out, &ct), 404);
    assert_string_equal(ct, "text/plain; charset=utf-8");
    nd_sbuf_free(&out);
    assert_int_equal(call(&ops, "GET", "/stats/", NULL, &out, &ct), 404);
    nd_sbuf_free(&out);
    assert_int_equal(call(&ops, "GET", "/statsx", NULL, &out, &ct), 404);
    nd_sbuf_free(&out);
    assert_int_equal(call(&ops, "GET", "", NULL, &out, &ct), 404);
    nd_sbuf_free(&out);

    /* an empty ops table */
    {
        struct nd_admin_ops none = {0};

        assert_int_equal(call(&none, "POST", "/reload", NULL, &out, &ct), 501);
        nd_sbuf_free(&out);
        assert_int_equal(call(&none, "GET", "/ready", NULL, &out, &ct), 503);
        nd_sbuf_free(&out);
        assert_int_equal(call(&none, "GET", "/config_dump", NULL, &out, &ct), 503);
        nd_sbuf_free(&out);
    }
}

static const struct nodus_plugin fake_headers = {.abi = NODUS_PLUGIN_ABI, .name = "headers"};
static const struct nodus_plugin fake_router = {.abi = NODUS_PLUGIN_ABI, .name = "router"};

static void test_admin_config_dump(void **state)
{
    struct nd_label labels[] = {{"version", "v1"}};
    struct nd_endpoint_conf eps[2];
    struct nd_cluster_conf cl[1];
    struct nd_plugin_inst pl[2];
    struct nd_listener_conf ls[2];
    char *paths[] = {"x.so"};
    struct nd_config cfg;
    struct fake f = {.ready = 1, .cfg = &cfg};
    struct nd_admin_ops ops = {fake_reload, fake_ready, fake_config, &f};
    struct nd_sbuf out;
    const char *ct;
    json_t *root, *j;
    json_error_t err;

    (void)state;
    memset(eps, 0, sizeof(eps));
    memset(cl, 0, sizeof(cl));
    memset(pl, 0, sizeof(pl));
    memset(ls, 0, sizeof(ls));
    memset(&cfg, 0, sizeof(cfg));
    strcpy(eps[0].addr.text, "127.0.0.1:9001");
    eps[0].weight = 1;
    eps[0].labels = labels;
    eps[0].nlabels = 1;
    strcpy(eps[1].addr.text, "[::1]:9002");
    eps[1].weight = 3;
    cl[0] = (struct nd_cluster_conf){.name = "reviews",
                                     .line = 12,
                                     .eps = eps,
                                     .neps = 2,
                                     .lb = ND_LB_LEAST_REQUEST,
                                     .connect_timeout_ms = 1000,
                                     .idle_timeout_ms = 60000,
                                     .max_connections = 1024,
                                     .max_pending = 512,
                                     .max_requests = 256};
    pl[0] = (struct nd_plugin_inst){.p = &fake_headers, .line = 20};
    pl[1] = (struct nd_plugin_inst){.p = &fake_router, .line = 21};
    ls[0] =
        (struct nd_listener_conf){.name = "inbound",
                                  .line = 18,
                                  .proto = ND_PROTO_HTTP,
                                  .plugins = pl,
                                  .nplugins = 2,
                                  .limits = {.max_head = 8192, .max_uri = 4096, .max_headers = 100},
                                  .header_timeout_ms = 10000,
                                  .idle_timeout_ms = 60000,
                                  .request_timeout_ms = 15000,
                                  .xff = true};
    strcpy(ls[0].addr.text, "0.0.0.0:8080");
    ls[1] = (struct nd_listener_conf){
        .name = "db\xff", .line = 30, .proto = ND_PROTO_TCP, .tcp_cluster = &cl[0]};
    strcpy(ls[1].addr.text, "127.0.0.1:5432");
    cfg.file = "edge.lua";
    cfg.node.name = "edge-1";
    cfg.node.workers = 2;
    cfg.node.drain_timeout_ms = 5000;
    cfg.node.plugin_paths = paths;
    cfg.node.nplugin_paths = 1;
    cfg.node.log_level = NODUS_LOG_INFO;
    cfg.admin.enabled = true;
    strcpy(cfg.admin.addr.text, "127.0.0.1:15000");
    cfg.clusters = cl;
    cfg.nclusters = 1;
    cfg.listeners = ls;
    cfg.nlisteners = 2;

    assert_int_equal(call(&ops, "GET", "/config_dump", NULL, &out, &ct), 200);
    assert_string_equal(ct, "application/json");
    root = json_loads(out.p, 0, &err);
    if (!root)
        fail_msg("config_dump is not JSON: %s: %s", err.text, out.p);
    assert_string_equal(json_string_value(json_object_get(root, "file")), "edge.lua");
    j = json_object_get(root, "node");
    assert_string_equal(json_string_value(json_object_get(j, "name")), "edge-1");
    assert_int_equal(json_integer_value(json_object_get(j, "workers")), 2);
    assert_string_equal(json_string_value(json_object_get(j, "io")), "posix");
    assert_string_equal(json_string_value(json_object_get(j, "log_level")), "info");
    assert_true(json_is_null(json_object_get(j, "access_log")));
    assert_string_equal(json_string_value(json_array_get(json_object_get(j, "plugins"), 0)),
                        "x.so");
    j = json_object_get(root, "admin");
    assert_true(json_is_true(json_object_get(j, "enabled")));
    assert_string_equal(json_string_value(json_object_get(j, "listen")), "127.0.0.1:15000");

    j = json_array_get(json_object_get(root, "clusters"), 0);
    assert_string_equal(json_string_value(json_object_get(j, "name")), "reviews");
    assert_string_equal(json_string_value(json_object_get(j, "lb")), "least_request");
    assert_int_equal(json_integer_value(json_object_get(j, "line")), 12);
    assert_int_equal(json_array_size(json_object_get(j, "endpoints")), 2);
    assert_string_equal(json_string_value(json_object_get(
                            json_array_get(json_object_get(j, "endpoints"), 1), "address")),
                        "[::1]:9002");
    assert_int_equal(json_integer_value(json_object_get(
                         json_array_get(json_object_get(j, "endpoints"), 1), "weight")),
                     3);
    assert_string_equal(
        json_string_value(json_object_get(
            json_object_get(json_array_get(json_object_get(j, "endpoints"), 0), "labels"),
            "version")),
        "v1");
    assert_int_equal(
        json_integer_value(json_object_get(json_object_get(j, "limits"), "max_pending")), 512);
    assert_int_equal(
        json_integer_value(json_object_get(json_object_get(j, "timeouts"), "connect_timeout_ms")),
        1000);

    j = json_array_get(json_object_get(root, "listeners"), 0);
    assert_string_equal(json_string_value(json_object_get(j, "name")), "inbound");
    assert_string_equal(json_string_value(json_object_get(j, "address")), "0.0.0.0:8080");
    assert_string_equal(json_string_value(json_object_get(j, "protocol")), "http");
    assert_true(json_is_true(json_object_get(j, "xff")));
    assert_int_equal(json_array_size(json_object_get(j, "plugins")), 2);
    assert_string_equal(json_string_value(json_object_get(
                            json_array_get(json_object_get(j, "plugins"), 1), "name")),
                        "router");
    assert_int_equal(json_integer_value(
                         json_object_get(json_array_get(json_object_get(j, "plugins"), 1), "line")),
                     21);
    assert_int_equal(
        json_integer_value(json_object_get(json_object_get(j, "limits"), "max_headers")), 100);
    assert_int_equal(
        json_integer_value(json_object_get(json_object_get(j, "timeouts"), "request_timeout_ms")),
        15000);
    j = json_array_get(json_object_get(root, "listeners"), 1);
    assert_string_equal(json_string_value(json_object_get(j, "protocol")), "tcp");
    assert_string_equal(json_string_value(json_object_get(j, "cluster")), "reviews");
    assert_string_equal(json_string_value(json_object_get(j, "name")), "db?"); /* not UTF-8 */
    json_decref(root);
    nd_sbuf_free(&out);

    f.cfg = NULL;
    assert_int_equal(call(&ops, "GET", "/config_dump", NULL, &out, &ct), 503);
    nd_sbuf_free(&out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rf_format),
        cmocka_unit_test_teardown(test_intern, teardown),
        cmocka_unit_test_teardown(test_init_args, teardown),
        cmocka_unit_test_setup_teardown(test_requests, setup2, teardown),
        cmocka_unit_test_setup_teardown(test_label_escaping, setup2, teardown),
        cmocka_unit_test_setup_teardown(test_other_names_merge, setup2, teardown),
        cmocka_unit_test_setup_teardown(test_overflow, setup2, teardown),
        cmocka_unit_test_setup_teardown(test_principals, setup_principals4, teardown),
        cmocka_unit_test_setup_teardown(test_principals_overflow, setup_principals4, teardown),
        cmocka_unit_test_teardown(test_principals_concurrent, teardown),
        cmocka_unit_test_teardown(test_principals_off, teardown),
        cmocka_unit_test_setup_teardown(test_tcp, setup2, teardown),
        cmocka_unit_test_setup_teardown(test_tcp_principals, setup_principals4, teardown),
        cmocka_unit_test_setup_teardown(test_counters_gauges, setup2, teardown),
        cmocka_unit_test_setup_teardown(test_plugin_counters, setup2, teardown),
        cmocka_unit_test_setup_teardown(test_concurrent_scrape, setup2, teardown),
        cmocka_unit_test_setup_teardown(test_admin_routes, setup2, teardown),
        cmocka_unit_test_setup_teardown(test_admin_event, setup2, teardown),
        cmocka_unit_test_setup_teardown(test_admin_config_dump, setup2, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
