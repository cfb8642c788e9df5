/*
 * Unit tests of the tracing plugin's pure parts and its exporter: traceparent and tracestate with
 * the W3C Trace Context test cases, B3 single and multi; the JSON of spans (OTLP and Zipkin v2,
 * parsed back with jansson, escaping of hostile strings, a full buffer); the per-worker queue; and
 * the exporter thread end to end against an in-process collector (run under ASan with the rest).
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "../../plugins/tracing/exporter.h"
#include "../../plugins/tracing/span.h"
#include "../../plugins/tracing/tracectx.h"

static int tp(const char *s, struct tc_ctx *c)
{
    return tc_parse_traceparent(s, strlen(s), c);
}

static void test_traceparent_valid(void **state)
{
    struct tc_ctx c;
    char hex[32];

    (void)state;
    assert_int_equal(tp("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", &c), 1);
    tc_hex(hex, c.trace_id, 16);
    assert_memory_equal(hex, "4bf92f3577b34da6a3ce929d0e0e4736", 32);
    tc_hex(hex, c.span_id, 8);
    assert_memory_equal(hex, "00f067aa0ba902b7", 16);
    assert_int_equal(c.sampled, 1);
    assert_int_equal(tp("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00", &c), 1);
    assert_int_equal(c.sampled, 0);
    /* unknown flags are ignored, only the sampled bit counts */
    assert_int_equal(tp("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-09", &c), 1);
    assert_int_equal(c.sampled, 1);
    assert_int_equal(tp("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-08", &c), 1);
    assert_int_equal(c.sampled, 0);
    /* a later version: parsed as 00, longer values allowed after a '-' */
    assert_int_equal(tp("cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", &c), 1);
    assert_int_equal(
        tp("cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what-the-future-will-be-like",
           &c),
        1);
}

static void test_traceparent_invalid(void **state)
{
    static const char *const bad[] = {
        "",
        "00",
        "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",  /* version ff */
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-", /* 00 is exactly 55 */
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0",
        "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e47366-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b-01",
        "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01", /* uppercase */
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00F067AA0BA902B7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0A",
        "0A-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01", /* all-zero trace id */
        "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01", /* all-zero parent id */
        "00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01", /* not hex */
        "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", /* separators */
        "00-4bf92f3577b34da6a3ce929d0e0e4736_00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7_01",
        " 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01.what", /* later: '-' after */
        "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01what",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\x00",
        "4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
    };
    struct tc_ctx c;

    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int r = tc_parse_traceparent(bad[i], strlen(bad[i]) + (i == 21), &c);

        if (r != -1)
            fail_msg("accepted: \"%s\"", bad[i]);
    }
}

static int tsv(const char *s)
{
    return tc_tracestate_valid(s, strlen(s));
}

static void test_tracestate(void **state)
{
    char buf[1024];
    size_t n = 0;

    (void)state;
    assert_int_equal(tsv("foo=1"), 1);
    assert_int_equal(tsv("foo=1,bar=2"), 1);
    assert_int_equal(tsv("foo=1 , bar=2\t,baz=3"), 1);
    assert_int_equal(tsv("foo=1,,bar=2"), 1);     /* empty members */
    assert_int_equal(tsv("tenant@system=1"), 1);  /* multi-tenant */
    assert_int_equal(tsv("1tenant@system=1"), 1); /* tenant may start with a digit */
    assert_int_equal(tsv("foo_-*/bar=v a l"), 1); /* key chars, spaces inside a value */
    assert_int_equal(tsv("foo=!\"#$%&'()*+-./:;<>?"), 1);
    assert_int_equal(tsv("FOO=1"), -1);             /* uppercase key */
    assert_int_equal(tsv("1foo=1"), -1);            /* a simple key starts with a letter */
    assert_int_equal(tsv("foo"), -1);               /* no value */
    assert_int_equal(tsv("foo="), -1);              /* empty value */
    assert_int_equal(tsv("foo=a=b"), -1);           /* '=' in a value */
    assert_int_equal(tsv("foo=1,foo=2"), -1);       /* duplicate key */
    assert_int_equal(tsv("t@1sys=1"), -1);          /* system starts with a letter */
    assert_int_equal(tsv("t@systemtoolong1=1"), 1); /* system: 14 at most */
    assert_int_equal(tsv("t@systemtoolong12=1"), -1);
    assert_int_equal(tsv("foo=\x01"), -1);
    assert_int_equal(tsv("foo=caf\xc3\xa9"), -1); /* only printable ASCII */
    /* 32 members are fine, 33 are not */
    for (int i = 0; i < 33; i++) {
        n += (size_t)snprintf(buf + n, sizeof(buf) - n, "%sk%d=v", i ? "," : "", i);
        if (i == 31)
            assert_int_equal(tc_tracestate_valid(buf, n), 1);
    }
    assert_int_equal(tc_tracestate_valid(buf, n), -1);
    /* longer than 512 bytes: dropped */
    memset(buf, 'a', sizeof(buf));
    memcpy(buf, "k=", 2);
    assert_int_equal(tc_tracestate_valid(buf, 256), 1);
    assert_int_equal(tc_tracestate_valid(buf, 513), -1);
}

static int b3(const char *s, struct tc_ctx *c)
{
    return tc_parse_b3(s, strlen(s), c);
}

static void test_b3_single(void **state)
{
    struct tc_ctx c;
    char hex[32];

    (void)state;
    assert_int_equal(b3("80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1-05e3ac9a4f6e3b90", &c),
                     1);
    assert_true(c.has_ids);
    assert_int_equal(c.sampled, 1);
    tc_hex(hex, c.span_id, 8);
    assert_memory_equal(hex, "e457b5a2e4d86bd1", 16);
    assert_int_equal(b3("80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1", &c), 1);
    assert_int_equal(c.sampled, -1);
    assert_int_equal(b3("80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-d", &c), 1);
    assert_true(c.debug);
    assert_int_equal(c.sampled, 1);
    /* a 64-bit trace id: the high half is zero */
    assert_int_equal(b3("e457b5a2e4d86bd1-e457b5a2e4d86bd1-0", &c), 1);
    tc_hex(hex, c.trace_id, 16);
    assert_memory_equal(hex, "0000000000000000e457b5a2e4d86bd1", 32);
    assert_int_equal(c.sampled, 0);
    /* a decision alone */
    assert_int_equal(b3("0", &c), 1);
    assert_false(c.has_ids);
    assert_int_equal(c.sampled, 0);
    assert_int_equal(b3("d", &c), 1);
    assert_true(c.debug);

    static const char *const bad[] = {
        "",
        "x",
        "2",
        "80f198ee56343ba864fe8b2a57d3eff7",
        "80F198EE56343BA864FE8B2A57D3EFF7-e457b5a2e4d86bd1",
        "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd",
        "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-",
        "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1-",
        "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-2",
        "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1-05e3ac9a4f6e3b9",
        "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1-05e3ac9a4f6e3b90-",
        "00000000000000000000000000000000-e457b5a2e4d86bd1",
        "80f198ee56343ba864fe8b2a57d3eff7-0000000000000000",
        "80f198ee56343ba864fe8b2a57d3e-e457b5a2e4d86bd1",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (b3(bad[i], &c) != -1)
            fail_msg("accepted: \"%s\"", bad[i]);
}

static struct tc_b3_headers hdrs(const char *t, const char *s, const char *sm, const char *f)
{
    return (struct tc_b3_headers){.trace = t,
                                  .trace_len = t ? strlen(t) : 0,
                                  .span = s,
                                  .span_len = s ? strlen(s) : 0,
                                  .sampled = sm,
                                  .sampled_len = sm ? strlen(sm) : 0,
                                  .flags = f,
                                  .flags_len = f ? strlen(f) : 0};
}

static void test_b3_multi(void **state)
{
    struct tc_ctx c;
    struct tc_b3_headers h;
    const char *t = "80f198ee56343ba864fe8b2a57d3eff7", *s = "e457b5a2e4d86bd1";

    (void)state;
    h = hdrs(NULL, NULL, NULL, NULL);
    assert_int_equal(tc_parse_b3_multi(&h, &c), 0);
    h = hdrs(t, s, "1", NULL);
    assert_int_equal(tc_parse_b3_multi(&h, &c), 1);
    assert_true(c.has_ids);
    assert_int_equal(c.sampled, 1);
    h = hdrs(t, s, "false", NULL);
    assert_int_equal(tc_parse_b3_multi(&h, &c), 1);
    assert_int_equal(c.sampled, 0);
    h = hdrs(NULL, NULL, "0", NULL); /* a decision without ids */
    assert_int_equal(tc_parse_b3_multi(&h, &c), 1);
    assert_false(c.has_ids);
    h = hdrs(t, s, NULL, "1");
    assert_int_equal(tc_parse_b3_multi(&h, &c), 1);
    assert_true(c.debug);
    h = hdrs(t, NULL, "1", NULL); /* trace without span */
    assert_int_equal(tc_parse_b3_multi(&h, &c), -1);
    h = hdrs(NULL, s, NULL, NULL);
    assert_int_equal(tc_parse_b3_multi(&h, &c), -1);
    h = hdrs(t, s, "yes", NULL);
    assert_int_equal(tc_parse_b3_multi(&h, &c), -1);
    h = hdrs(t, s, NULL, "2");
    assert_int_equal(tc_parse_b3_multi(&h, &c), -1);
    h = hdrs("80f198ee56343ba864fe8b2a57d3eff", s, NULL, NULL);
    assert_int_equal(tc_parse_b3_multi(&h, &c), -1);
}

static void test_format_traceparent(void **state)
{
    struct tc_ctx c;
    char out[TC_TRACEPARENT_LEN];

    (void)state;
    assert_int_equal(tp("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", &c), 1);
    tc_format_traceparent(out, c.trace_id, c.span_id, true);
    assert_memory_equal(out, "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                        TC_TRACEPARENT_LEN);
    tc_format_traceparent(out, c.trace_id, c.span_id, false);
    assert_int_equal(out[54], '0');
    assert_int_equal(tc_parse_traceparent(out, sizeof(out), &c), 1);
}

/* ---- spans ---- */

#define SET(f, lit) TR_TEXT_SET(f, lit, strlen(lit))

static struct tr_span mkspan(void)
{
    struct tr_span s = {.kind = TR_KIND_SERVER,
                        .status = 200,
                        .has_parent = true,
                        .start_ns = 1700000000123456789ull,
                        .dur_ns = 1500000,
                        .req_size = -1,
                        .resp_size = 6};

    for (int i = 0; i < 16; i++)
        s.trace_id[i] = (uint8_t)(i + 1);
    for (int i = 0; i < 8; i++) {
        s.span_id[i] = (uint8_t)(0xa0 + i);
        s.parent_id[i] = (uint8_t)(0xb0 + i);
    }
    SET(s.host, "api.test");
    SET(s.method, "GET");
    SET(s.target, "/x?q=\"1\"\\\x01\xff\xc3\xa9");
    SET(s.peer, "127.0.0.1");
    SET(s.request_id, "6f1c6a1e-0d5e-4c55-9d55-1f6a1f3e1a2b");
    return s;
}

static const char *attr(json_t *attrs, const char *key)
{
    size_t i;
    json_t *a;

    json_array_foreach(attrs, i, a)
    {
        if (strcmp(json_string_value(json_object_get(a, "key")), key) == 0)
            return json_string_value(json_object_get(json_object_get(a, "value"), "stringValue"));
    }
    return NULL;
}

static void test_otlp_json(void **state)
{
    static char buf[8192];
    struct tr_json j = {.buf = buf, .cap = sizeof(buf)};
    struct tr_resource r = {.service = "edge", .node = "n1"};
    struct tr_span s = mkspan();
    json_error_t err;
    json_t *root, *span, *spans, *rs;

    (void)state;
    tr_otlp_begin(&j, &r);
    assert_true(tr_otlp_span(&j, &s));
    s.status = 503;
    s.has_parent = false;
    assert_true(tr_otlp_span(&j, &s));
    tr_otlp_end(&j);
    root = json_loadb(buf, j.len, 0, &err);
    if (!root)
        fail_msg("invalid JSON: %s: %.*s", err.text, (int)j.len, buf);
    rs = json_array_get(json_object_get(root, "resourceSpans"), 0);
    assert_string_equal(
        attr(json_object_get(json_object_get(rs, "resource"), "attributes"), "service.name"),
        "edge");
    spans = json_object_get(json_array_get(json_object_get(rs, "scopeSpans"), 0), "spans");
    assert_int_equal(json_array_size(spans), 2);
    span = json_array_get(spans, 0);
    assert_string_equal(json_string_value(json_object_get(span, "traceId")),
                        "0102030405060708090a0b0c0d0e0f10");
    assert_string_equal(json_string_value(json_object_get(span, "spanId")), "a0a1a2a3a4a5a6a7");
    assert_string_equal(json_string_value(json_object_get(span, "parentSpanId")),
                        "b0b1b2b3b4b5b6b7");
    assert_int_equal(json_integer_value(json_object_get(span, "kind")), 2);
    assert_string_equal(json_string_value(json_object_get(span, "startTimeUnixNano")),
                        "1700000000123456789");
    assert_string_equal(json_string_value(json_object_get(span, "endTimeUnixNano")),
                        "1700000000124956789");
    assert_string_equal(attr(json_object_get(span, "attributes"), "http.method"), "GET");
    assert_string_equal(attr(json_object_get(span, "attributes"), "http.status_code"), "200");
    assert_string_equal(attr(json_object_get(span, "attributes"), "component"), "proxy");
    assert_string_equal(attr(json_object_get(span, "attributes"), "response_size"), "6");
    assert_null(attr(json_object_get(span, "attributes"), "request_size"));
    /* hostile bytes come back as escapes and U+FFFD, valid UTF-8 kept */
    assert_string_equal(attr(json_object_get(span, "attributes"), "http.url"),
                        "http://api.test/x?q=\"1\"\\\x01\xef\xbf\xbd\xc3\xa9");
    assert_int_equal(json_integer_value(json_object_get(json_object_get(span, "status"), "code")),
                     0);
    span = json_array_get(spans, 1);
    assert_null(json_object_get(span, "parentSpanId"));
    assert_string_equal(attr(json_object_get(span, "attributes"), "error"), "true");
    assert_int_equal(json_integer_value(json_object_get(json_object_get(span, "status"), "code")),
                     2);
    json_decref(root);
}

static void test_zipkin_json(void **state)
{
    static char buf[8192];
    struct tr_json j = {.buf = buf, .cap = sizeof(buf)};
    struct tr_resource r = {.service = "edge"};
    struct tr_span s = mkspan();
    json_error_t err;
    json_t *root, *span, *tags;

    (void)state;
    tr_zipkin_begin(&j);
    assert_true(tr_zipkin_span(&j, &s, &r));
    SET(s.peer, "::1");
    s.dur_ns = 10; /* under a microsecond: 1 */
    s.debug = true;
    assert_true(tr_zipkin_span(&j, &s, &r));
    tr_zipkin_end(&j);
    root = json_loadb(buf, j.len, 0, &err);
    if (!root)
        fail_msg("invalid JSON: %s: %.*s", err.text, (int)j.len, buf);
    assert_true(json_is_array(root));
    span = json_array_get(root, 0);
    assert_string_equal(json_string_value(json_object_get(span, "traceId")),
                        "0102030405060708090a0b0c0d0e0f10");
    assert_string_equal(json_string_value(json_object_get(span, "id")), "a0a1a2a3a4a5a6a7");
    assert_string_equal(json_string_value(json_object_get(span, "parentId")), "b0b1b2b3b4b5b6b7");
    assert_string_equal(json_string_value(json_object_get(span, "kind")), "SERVER");
    assert_int_equal(json_integer_value(json_object_get(span, "timestamp")), 1700000000123456);
    assert_int_equal(json_integer_value(json_object_get(span, "duration")), 1500);
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(span, "localEndpoint"), "serviceName")),
        "edge");
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(span, "remoteEndpoint"), "ipv4")),
        "127.0.0.1");
    tags = json_object_get(span, "tags");
    assert_string_equal(json_string_value(json_object_get(tags, "http.status_code")), "200");
    assert_string_equal(json_string_value(json_object_get(tags, "guid:x-request-id")),
                        "6f1c6a1e-0d5e-4c55-9d55-1f6a1f3e1a2b");
    span = json_array_get(root, 1);
    assert_int_equal(json_integer_value(json_object_get(span, "duration")), 1);
    assert_true(json_is_true(json_object_get(span, "debug")));
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(span, "remoteEndpoint"), "ipv6")), "::1");
    json_decref(root);
}

/* Ids in hex: every byte value, in every position of the eight- and four-byte steps, at every
 * length used (16 and 8: ids; 12 and 4: the steps' tails). */
static void test_hex(void **state)
{
    static const size_t lens[] = {16, 12, 8, 4};
    uint8_t b[16];
    char out[34], want[33];

    (void)state;
    for (size_t l = 0; l < sizeof(lens) / sizeof(lens[0]); l++)
        for (unsigned v = 0; v < 256; v++) {
            size_t n = lens[l];

            for (size_t i = 0; i < n; i++)
                b[i] = (uint8_t)(v + (unsigned)i * 37);
            memset(out, '#', sizeof(out));
            tc_hex(out, b, n);
            for (size_t i = 0; i < n; i++)
                snprintf(want + 2 * i, 3, "%02x", b[i]);
            assert_memory_equal(out, want, 2 * n);
            assert_int_equal(out[2 * n], '#'); /* nothing written past */
        }
}

/* The composed strings: the name from the host, the URL truncated at 255 bytes, a generated
 * x-request-id as a UUID, and escapes found in the eight-bytes-at-once scan at every position. */
static void test_span_strings(void **state)
{
    static char buf[65536];
    struct tr_json j = {.buf = buf, .cap = sizeof(buf)};
    struct tr_resource r = {.service = "edge"};
    struct tr_span s = mkspan();
    json_error_t err;
    json_t *root, *span;
    char ua[41];

    (void)state;
    memset(s.target.p, 'p', sizeof(s.target.p));
    s.target.p[0] = '/';
    s.target.len = sizeof(s.target.p);
    s.request_id_gen = true;
    for (int i = 0; i < 16; i++)
        s.request_uuid[i] = (uint8_t)(0x10 * i + i);
    tr_otlp_begin(&j, &r);
    for (int pos = 0; pos < 40; pos++) {
        memset(s.user_agent.p, 'a', 40);
        s.user_agent.len = 40;
        s.user_agent.p[pos] = pos % 3 == 0 ? '"' : pos % 3 == 1 ? '\\' : '\n';
        assert_true(tr_otlp_span(&j, &s));
    }
    tr_otlp_end(&j);
    root = json_loadb(buf, j.len, 0, &err);
    if (!root)
        fail_msg("invalid JSON: %s", err.text);
    span = json_array_get(
        json_object_get(
            json_array_get(
                json_object_get(json_array_get(json_object_get(root, "resourceSpans"), 0),
                                "scopeSpans"),
                0),
            "spans"),
        0);
    assert_string_equal(json_string_value(json_object_get(span, "name")), "api.test/*");
    assert_int_equal(strlen(attr(json_object_get(span, "attributes"), "http.url")), 255);
    assert_memory_equal(attr(json_object_get(span, "attributes"), "http.url"),
                        "http://api.test/ppp", 19);
    assert_string_equal(attr(json_object_get(span, "attributes"), "guid:x-request-id"),
                        "00112233-4455-6677-8899-aabbccddeeff");
    for (int pos = 0; pos < 40; pos++) {
        json_t *sp = json_array_get(
            json_object_get(
                json_array_get(
                    json_object_get(json_array_get(json_object_get(root, "resourceSpans"), 0),
                                    "scopeSpans"),
                    0),
                "spans"),
            (size_t)pos);

        memset(ua, 'a', 40);
        ua[40] = '\0';
        ua[pos] = pos % 3 == 0 ? '"' : pos % 3 == 1 ? '\\' : '\n';
        assert_string_equal(attr(json_object_get(sp, "attributes"), "user_agent"), ua);
    }
    json_decref(root);
}

/* Numbers in decimal (two digits at a time), at the edges of each step; the fields the worker
 * copies raw (no NUL, their lengths kept): empty ones left out, a principal and a user agent that
 * fill their arrays, a long host that shortens the path in the URL. */
static void test_span_numbers_and_fields(void **state)
{
    static char buf[65536];
    static const uint64_t nums[] = {0,
                                    1,
                                    9,
                                    10,
                                    99,
                                    100,
                                    101,
                                    999,
                                    1000,
                                    12345,
                                    99999999,
                                    100000000,
                                    1700000000123456789ull,
                                    UINT64_MAX / 2};
    struct tr_json j = {.buf = buf, .cap = sizeof(buf)};
    struct tr_resource r = {.service = "edge"};
    struct tr_span s = mkspan();
    const size_t n = sizeof(nums) / sizeof(nums[0]);
    json_error_t err;
    json_t *root, *spans, *a;
    char want[32], host[128], ua[97];

    (void)state;
    memset(s.principal.p, 's', sizeof(s.principal.p));
    s.principal.len = sizeof(s.principal.p);
    memset(s.user_agent.p, 'u', sizeof(s.user_agent.p));
    s.user_agent.len = sizeof(s.user_agent.p);
    memset(host, 'h', sizeof(host));
    memcpy(s.host.p, host, sizeof(host));
    s.host.len = sizeof(host);
    memset(s.target.p, 'p', sizeof(s.target.p));
    s.target.p[0] = '/';
    s.target.len = sizeof(s.target.p);
    s.request_id.len = 0;
    s.method.len = 0;
    tr_otlp_begin(&j, &r);
    for (size_t i = 0; i < n; i++) {
        s.req_size = (int64_t)nums[i];
        s.resp_size = i ? -1 : 0;
        assert_true(tr_otlp_span(&j, &s));
    }
    tr_otlp_end(&j);
    root = json_loadb(buf, j.len, 0, &err);
    if (!root)
        fail_msg("invalid JSON: %s", err.text);
    spans = json_object_get(
        json_array_get(json_object_get(json_array_get(json_object_get(root, "resourceSpans"), 0),
                                       "scopeSpans"),
                       0),
        "spans");
    assert_int_equal(json_array_size(spans), n);
    for (size_t i = 0; i < n; i++) {
        a = json_object_get(json_array_get(spans, i), "attributes");
        snprintf(want, sizeof(want), "%llu", (unsigned long long)nums[i]);
        assert_string_equal(attr(a, "request_size"), want);
        if (i)
            assert_null(attr(a, "response_size"));
        else
            assert_string_equal(attr(a, "response_size"), "0");
        assert_null(attr(a, "guid:x-request-id"));
        assert_string_equal(attr(a, "http.method"), "");
        assert_int_equal(strlen(attr(a, "peer.principal")), sizeof(s.principal.p));
        memset(ua, 'u', 96);
        ua[96] = '\0';
        assert_string_equal(attr(a, "user_agent"), ua);
        /* "http://" + 128 h + the path's first 120 bytes: 255 in all */
        assert_int_equal(strlen(attr(a, "http.url")), 255);
        assert_memory_equal(attr(a, "http.url") + 7 + 128, "/pp", 3);
    }
    assert_string_equal(
        json_string_value(json_object_get(json_array_get(spans, 0), "startTimeUnixNano")),
        "1700000000123456789");
    assert_string_equal(
        json_string_value(json_object_get(json_array_get(spans, 0), "endTimeUnixNano")),
        "1700000000124956789");
    json_decref(root);
}

/* Escapes at every position of strings of every length up to 24 (the word scan, the overlapping
 * last word, the byte loop below eight). */
static void test_escape_positions(void **state)
{
    static char buf[8192];
    struct tr_resource r = {.service = "edge"};
    struct tr_span s = mkspan();
    json_error_t err;
    json_t *root;
    char want[32];

    (void)state;
    for (size_t n = 1; n <= 24; n++)
        for (size_t pos = 0; pos <= n; pos++) { /* pos == n: nothing to escape */
            struct tr_json j = {.buf = buf, .cap = sizeof(buf)};

            memset(want, 'a', n);
            want[n] = '\0';
            if (pos < n)
                want[pos] = pos % 2 ? '"' : '\t';
            memcpy(s.user_agent.p, want, n);
            s.user_agent.len = (uint16_t)n;
            tr_zipkin_begin(&j);
            assert_true(tr_zipkin_span(&j, &s, &r));
            tr_zipkin_end(&j);
            root = json_loadb(buf, j.len, 0, &err);
            if (!root)
                fail_msg("invalid JSON at length %zu, position %zu: %s", n, pos, err.text);
            assert_string_equal(
                json_string_value(json_object_get(json_object_get(json_array_get(root, 0), "tags"),
                                                  "user_agent")),
                want);
            json_decref(root);
        }
}

static void test_json_full_buffer(void **state)
{
    static char buf[4096];
    struct tr_json j = {.buf = buf, .cap = sizeof(buf)};
    struct tr_resource r = {.service = "edge"};
    struct tr_span s = mkspan();
    json_error_t err;
    json_t *root;
    int n = 0;

    (void)state;
    tr_zipkin_begin(&j);
    while (tr_zipkin_span(&j, &s, &r))
        n++;
    assert_true(n >= 1);
    assert_false(tr_zipkin_span(&j, &s, &r)); /* still full, still whole */
    tr_zipkin_end(&j);
    root = json_loadb(buf, j.len, 0, &err);
    assert_non_null(root);
    assert_int_equal(json_array_size(root), (size_t)n);
    json_decref(root);
    /* a buffer too small for the body's head: an empty writer, nothing written past it */
    j = (struct tr_json){.buf = buf, .cap = 64};
    tr_otlp_begin(&j, &r);
    assert_true(j.ovf);
    assert_false(tr_otlp_span(&j, &s));
    tr_otlp_end(&j);
    assert_int_equal(j.len, 0);
}

/* Writes are checked once per span against tr_span_bound(): a span with every field full of
 * bytes that each take six (control bytes, bytes that are not UTF-8) and every optional tag, the
 * largest numbers: what it writes stays within the bound, in both formats, and is valid JSON. */
static void test_span_bound(void **state)
{
    static char buf[65536];
    struct tr_json j = {.buf = buf, .cap = sizeof(buf)};
    struct tr_resource r = {.service = "svc\x01\x02", .node = "node\xff"};
    struct tr_span s = mkspan();
    json_error_t err;
    json_t *root;
    size_t before;

    (void)state;
#define FILL(f, c)                                                                                 \
    do {                                                                                           \
        memset((f).p, c, sizeof((f).p));                                                           \
        (f).len = sizeof((f).p);                                                                   \
    } while (0)
    FILL(s.method, 0x01);
    FILL(s.host, 0xff);
    FILL(s.target, 0x1f);
    FILL(s.peer, 0x80);
    FILL(s.principal, 0x02);
    FILL(s.user_agent, 0xfe);
    FILL(s.request_id, 0x03);
#undef FILL
    s.status = 599;
    s.req_size = INT64_MAX;
    s.resp_size = INT64_MAX;
    s.start_ns = UINT64_MAX / 2;
    s.dur_ns = UINT64_MAX / 2;
    for (int pass = 0; pass < 2; pass++) {
        tr_otlp_begin(&j, &r);
        before = j.len;
        assert_true(tr_otlp_span(&j, &s));
        assert_true(tr_otlp_span(&j, &s));
        assert_true(j.len - before <= 2 * tr_span_bound(&s, NULL));
        tr_otlp_end(&j);
        root = json_loadb(buf, j.len, 0, &err);
        if (!root)
            fail_msg("invalid OTLP JSON: %s", err.text);
        json_decref(root);
        tr_zipkin_begin(&j);
        before = j.len;
        assert_true(tr_zipkin_span(&j, &s, &r));
        assert_true(tr_zipkin_span(&j, &s, &r));
        assert_true(j.len - before <= 2 * tr_span_bound(&s, &r));
        tr_zipkin_end(&j);
        root = json_loadb(buf, j.len, 0, &err);
        if (!root)
            fail_msg("invalid Zipkin JSON: %s", err.text);
        json_decref(root);
        s.request_id_gen = true; /* the other branch of the request id */
        s.debug = true;
    }
}

/* ---- queue and exporter ---- */

struct collector {
    int lfd;
    int spans, posts;
    char path[64];
};

/* Accepts one connection and answers every POST 200, counting the spans of OTLP bodies. */
static void *collector_main(void *arg)
{
    struct collector *c = arg;
    int fd = accept(c->lfd, NULL, NULL);
    static char buf[1 << 21];
    size_t len = 0;

    while (fd >= 0) {
        char *eoh, *cl;
        ssize_t r = read(fd, buf + len, sizeof(buf) - 1 - len);

        if (r <= 0)
            break;
        len += (size_t)r;
        buf[len] = '\0';
        while ((eoh = strstr(buf, "\r\n\r\n")) && (cl = strcasestr(buf, "content-length:"))) {
            size_t body = (size_t)atol(cl + 15), head = (size_t)(eoh + 4 - buf);
            json_t *root;

            if (len < head + body)
                break;
            sscanf(buf, "POST %63s", c->path);
            root = json_loadb(eoh + 4, body, 0, NULL);
            assert_non_null(root);
            c->spans += (int)json_array_size(json_object_get(
                json_array_get(
                    json_object_get(json_array_get(json_object_get(root, "resourceSpans"), 0),
                                    "scopeSpans"),
                    0),
                "spans"));
            c->posts++;
            json_decref(root);
            memmove(buf, buf + head + body, len - head - body);
            len -= head + body;
            buf[len] = '\0';
            if (write(fd, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}", 40) != 40)
                break;
        }
    }
    if (fd >= 0)
        close(fd);
    return NULL;
}

static int listen_any(uint16_t *port)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof(a);
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    assert_true(fd >= 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(fd, 4), 0);
    getsockname(fd, (struct sockaddr *)&a, &alen);
    *port = ntohs(a.sin_port);
    return fd;
}

static void test_queue(void **state)
{
    struct tr_exporter e = {.queue_len = 10, .batch = 100, .flush_ms = 10, .timeout_ms = 100};
    struct tr_queue *q;
    int n = 0;

    (void)state;
    assert_int_equal(tr_exporter_init(&e), 0);
    /* no thread is running yet when the queue is made: fill it by hand first */
    e.started = true;
    q = tr_exporter_attach(&e, 3);
    assert_non_null(q);
    assert_ptr_equal(q, tr_exporter_attach(&e, 3));
    assert_int_equal(q->mask, 15); /* rounded up to a power of two */
    while (tr_queue_reserve(q)) {
        tr_queue_commit(q);
        n++;
    }
    assert_int_equal(n, 16);
    assert_null(tr_queue_reserve(q));
    atomic_store(&q->tail, 1); /* the consumer took one */
    assert_non_null(tr_queue_reserve(q));
    tr_exporter_fini(&e);
}

static void test_exporter_end_to_end(void **state)
{
    struct tr_exporter e = {
        .queue_len = 64, .batch = 4, .flush_ms = 10, .timeout_ms = 1000, .max_retries = 1};
    struct collector c = {0};
    pthread_t th;
    uint16_t port;
    char addr[32];

    (void)state;
    c.lfd = listen_any(&port);
    pthread_create(&th, NULL, collector_main, &c);
    snprintf(addr, sizeof(addr), "127.0.0.1:%u", port);
    assert_int_equal(tr_dest_init(&e.dest[0], TR_OTLP, addr), 0);
    e.ndest = 1;
    e.res.service = "test";
    assert_int_equal(tr_exporter_init(&e), 0);
    for (unsigned w = 0; w < 2; w++) {
        struct tr_queue *q = tr_exporter_attach(&e, w);

        for (int i = 0; i < 5; i++) {
            struct tr_span *s = tr_queue_reserve(q);

            *s = mkspan();
            tr_queue_commit(q);
        }
    }
    for (int i = 0; i < 200 && atomic_load(&e.stats.exported) < 10; i++)
        usleep(10000);
    tr_exporter_fini(&e);
    close(c.lfd);
    pthread_join(th, NULL);
    assert_int_equal(c.spans, 10);
    assert_true(c.posts >= 3); /* batches of 4 at most */
    assert_string_equal(c.path, "/v1/traces");
    assert_int_equal(atomic_load(&e.stats.exported), 10);
}

static void test_exporter_collector_down(void **state)
{
    struct tr_exporter e = {
        .queue_len = 64, .batch = 100, .flush_ms = 10, .timeout_ms = 200, .max_retries = 2};
    uint16_t port;
    int lfd = listen_any(&port);
    char addr[32];
    struct timespec t0, t1;

    (void)state;
    close(lfd); /* nobody listens there now */
    snprintf(addr, sizeof(addr), "127.0.0.1:%u", port);
    assert_int_equal(tr_dest_init(&e.dest[0], TR_ZIPKIN, addr), 0);
    e.ndest = 1;
    e.res.service = "test";
    assert_int_equal(tr_exporter_init(&e), 0);
    struct tr_queue *q = tr_exporter_attach(&e, 0);
    for (int i = 0; i < 3; i++) {
        *tr_queue_reserve(q) = mkspan();
        tr_queue_commit(q);
    }
    for (int i = 0; i < 300 && atomic_load(&e.stats.failed) < 3; i++)
        usleep(10000);
    assert_int_equal(atomic_load(&e.stats.failed), 3);
    assert_int_equal(atomic_load(&e.stats.retries), 2);
    /* stopping with spans queued and the collector down is quick: one attempt */
    *tr_queue_reserve(q) = mkspan();
    tr_queue_commit(q);
    clock_gettime(CLOCK_MONOTONIC, &t0);
    tr_exporter_fini(&e);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    assert_true(t1.tv_sec - t0.tv_sec < 2);
}

static void test_dest_addresses(void **state)
{
    struct tr_dest d;

    (void)state;
    assert_int_equal(tr_dest_init(&d, TR_OTLP, "127.0.0.1:4318"), 0);
    assert_string_equal(d.path, "/v1/traces");
    assert_int_equal(tr_dest_init(&d, TR_ZIPKIN, "[::1]:9411"), 0);
    assert_string_equal(d.path, "/api/v2/spans");
    assert_int_equal(tr_dest_init(&d, TR_OTLP, "localhost:4318"), -1);
    assert_int_equal(tr_dest_init(&d, TR_OTLP, "127.0.0.1"), -1);
    assert_int_equal(tr_dest_init(&d, TR_OTLP, "127.0.0.1:0"), -1);
    assert_int_equal(tr_dest_init(&d, TR_OTLP, "127.0.0.1:65536"), -1);
    assert_int_equal(tr_dest_init(&d, TR_OTLP, "::1:4318"), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_traceparent_valid),
        cmocka_unit_test(test_traceparent_invalid),
        cmocka_unit_test(test_tracestate),
        cmocka_unit_test(test_b3_single),
        cmocka_unit_test(test_b3_multi),
        cmocka_unit_test(test_format_traceparent),
        cmocka_unit_test(test_otlp_json),
        cmocka_unit_test(test_zipkin_json),
        cmocka_unit_test(test_hex),
        cmocka_unit_test(test_span_strings),
        cmocka_unit_test(test_span_numbers_and_fields),
        cmocka_unit_test(test_escape_positions),
        cmocka_unit_test(test_json_full_buffer),
        cmocka_unit_test(test_span_bound),
        cmocka_unit_test(test_queue),
        cmocka_unit_test(test_exporter_end_to_end),
        cmocka_unit_test(test_exporter_collector_down),
        cmocka_unit_test(test_dest_addresses),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
