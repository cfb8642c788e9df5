/* Unit tests: stream deadlines (nodus_stream_set_deadline(), the timeout hook), in memory: a
 * worker with a timing wheel driven by hand, a connection over an I/O backend of buffers, and a
 * test layer that arms, resets and clears its deadline as a TLS handshake does. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <nodus/plugin.h>

#include "buf.h"
#include "metrics.h"
#include "stream.h"
#include "worker.h"

#define T0 1000 /* the wheel's start, ms */

/* ---- an I/O backend of buffers ----------------------------------------------------------------
 */
static const char *net_in; /* what the next read returns once, then -EAGAIN */
static char net_out[256];  /* what the stream wrote to the network */
static size_t net_out_len;

static ssize_t mem_read(struct nd_conn *c, void *buf, size_t len)
{
    size_t n;

    (void)c;
    if (!net_in)
        return -EAGAIN;
    n = strlen(net_in) < len ? strlen(net_in) : len;
    memcpy(buf, net_in, n);
    net_in = NULL;
    return (ssize_t)n;
}

static ssize_t mem_writev(struct nd_conn *c, const struct iovec *iov, int iovcnt)
{
    size_t total = 0;
    int i;

    (void)c;
    for (i = 0; i < iovcnt; i++) {
        assert_true(net_out_len + iov[i].iov_len <= sizeof(net_out));
        memcpy(net_out + net_out_len, iov[i].iov_base, iov[i].iov_len);
        net_out_len += iov[i].iov_len;
        total += iov[i].iov_len;
    }
    return (ssize_t)total;
}

static const struct nd_io_ops mem_io = {.name = "mem", .read = mem_read, .writev = mem_writev};

/* ---- the owner: what a session does with its connection ------------------------------------ */
static struct nd_worker wk;
static struct nd_conn conn;
static unsigned owner_events, owner_resets;
static bool owner_closed;

/* Reads on every event; a read error closes the connection, as proxy.c does. */
static void owner_cb(struct nd_conn *c, unsigned events)
{
    char buf[64];
    ssize_t n;

    owner_events++;
    assert_true(events & ND_EV_READ);
    while ((n = nd_conn_read(c, buf, sizeof(buf))) > 0)
        ;
    if (n == -EAGAIN)
        return;
    if (n == -ECONNRESET)
        owner_resets++;
    nd_stream_close(c->w, c);
    c->fd = -1;
    owner_closed = true;
}

/* ---- the test layer ---------------------------------------------------------------------------
 * conf: the deadline armed at connect, ms. Bytes pass through; "ok" (or the layer's own word)
 * clears the deadline (a handshake done), "more" re-arms it 100 ms from now (progress), "long"
 * asks for more than an hour (refused). */
struct layer_conf {
    uint32_t connect_ms;
    const char *clear; /* this layer's own word that clears its deadline */
    unsigned timeouts, closes, shutdowns;
    int set_rc;
};

static int layer_connect(struct nodus_stream *s, const struct nodus_ctx *ctx)
{
    struct layer_conf *lc = ctx->conf;

    if (lc->connect_ms)
        assert_int_equal(nodus_stream_set_deadline(s, lc->connect_ms), 0);
    return NODUS_CONTINUE;
}

static long layer_in(struct nodus_stream *s, const struct nodus_ctx *ctx, const char *data,
                     size_t len)
{
    struct layer_conf *lc = ctx->conf;

    if ((len == 2 && memcmp(data, "ok", 2) == 0) ||
        (lc->clear && len == strlen(lc->clear) && memcmp(data, lc->clear, len) == 0))
        lc->set_rc = nodus_stream_set_deadline(s, 0);
    else if (len == 4 && memcmp(data, "more", 4) == 0)
        lc->set_rc = nodus_stream_set_deadline(s, 100);
    else if (len == 4 && memcmp(data, "long", 4) == 0)
        lc->set_rc = nodus_stream_set_deadline(s, 3600u * 1000 + 1);
    return nodus_stream_push_in(s, data, len) < 0 ? -1 : (long)len;
}

static long layer_out(struct nodus_stream *s, const struct nodus_ctx *ctx, const char *data,
                      size_t len)
{
    (void)ctx;
    return nodus_stream_push_out(s, data, len) < 0 ? -1 : (long)len;
}

static void layer_timeout(struct nodus_stream *s, const struct nodus_ctx *ctx)
{
    struct layer_conf *lc = ctx->conf;

    (void)s;
    lc->timeouts++;
    assert_false(owner_closed); /* before the core closes the connection */
}

static void layer_close(struct nodus_stream *s, const struct nodus_ctx *ctx)
{
    (void)s;
    ((struct layer_conf *)ctx->conf)->closes++;
}

static void layer_shutdown(struct nodus_stream *s, const struct nodus_ctx *ctx)
{
    (void)s;
    ((struct layer_conf *)ctx->conf)->shutdowns++;
}

static const struct nodus_stream_ops layer_ops = {
    .connect = layer_connect,
    .data_in = layer_in,
    .data_out = layer_out,
    .close = layer_close,
    .timeout = layer_timeout,
    .shutdown = layer_shutdown,
};

static struct layer_conf lconf[2];
static char principal[64];
static uint16_t principal_len;

/* Opens the connection with n test layers (lconf[0] nearest the network). */
static void open_stream(unsigned n)
{
    struct nd_stream_def defs[2];
    struct nd_stream_peer peer = {"198.18.0.1", 10, principal, &principal_len, sizeof(principal)};
    unsigned i;

    for (i = 0; i < n; i++)
        defs[i] = (struct nd_stream_def){&layer_ops, "test", &lconf[i], NULL, 0};
    conn = (struct nd_conn){.fd = 3, .cb = owner_cb, .w = &wk};
    assert_int_equal(nd_stream_open_defs(&wk, &conn, defs, n, 0, &peer), 0);
    assert_non_null(conn.st);
}

/* Bytes arrive from the network: the backend's read event. */
static void arrive(const char *bytes)
{
    net_in = bytes;
    owner_cb(&conn, ND_EV_READ);
}

static uint64_t stream_timeouts(void)
{
    struct nd_sbuf b = {0};
    const char *p;
    uint64_t v;

    assert_int_equal(nd_metrics_render(&b), 0);
    p = strstr(b.p, "\nnodus_stream_timeouts_total ");
    assert_non_null(p);
    v = strtoull(p + strlen("\nnodus_stream_timeouts_total "), NULL, 10);
    nd_sbuf_free(&b);
    return v;
}

static int setup(void **state)
{
    (void)state;
    memset(&wk, 0, sizeof(wk));
    wk.io = &mem_io;
    nd_wheel_init(&wk.wheel, T0);
    nd_buf_pool_init(&wk.sbufs, ND_STREAM_BUF, 0);
    memset(lconf, 0, sizeof(lconf));
    owner_events = owner_resets = 0;
    owner_closed = false;
    net_in = NULL;
    net_out_len = 0;
    principal_len = 0;
    return nd_metrics_init(1, 0);
}

static int teardown(void **state)
{
    (void)state;
    if (!owner_closed && conn.st)
        nd_stream_close(&wk, &conn);
    nd_worker_stream_fini(&wk);
    nd_metrics_fini();
    return 0;
}

/* ---- tests ----------------------------------------------------------------------------------- */

/* A deadline that passes: the timeout hook runs once, then the owner's read fails and it closes
 * the connection; the close hook runs, shutdown does not (no last words on a timed-out
 * connection); the core counts it. Nothing happens a tick early, whether or not bytes came. */
static void test_deadline_fires(void **state)
{
    (void)state;
    lconf[0].connect_ms = 50;
    open_stream(1);
    arrive("partial"); /* some bytes, but not the end of the handshake */
    assert_int_equal(nd_wheel_advance(&wk.wheel, T0 + 49), 0);
    assert_int_equal(lconf[0].timeouts, 0);
    assert_false(owner_closed);
    assert_int_equal(nd_wheel_advance(&wk.wheel, T0 + 50), 1);
    assert_int_equal(lconf[0].timeouts, 1);
    assert_true(owner_closed);
    assert_int_equal(owner_resets, 1);
    assert_null(conn.st);
    assert_int_equal(lconf[0].closes, 1);
    assert_int_equal(lconf[0].shutdowns, 0);
    assert_int_equal(stream_timeouts(), 1);
    /* nothing more fires later */
    assert_int_equal(nd_wheel_advance(&wk.wheel, T0 + 10000), 0);
    assert_int_equal(lconf[0].timeouts, 1);
    assert_int_equal(wk.wheel.count, 0);
}

/* Cleared (0) before it passes: the connection lives on, bytes still flow both ways, no timer
 * is left on the wheel. */
static void test_deadline_cleared(void **state)
{
    struct iovec iov = {(void *)"pong", 4};

    (void)state;
    lconf[0].connect_ms = 50;
    open_stream(1);
    assert_int_equal(wk.wheel.count, 1);
    nd_wheel_advance(&wk.wheel, T0 + 30);
    arrive("ok");
    assert_int_equal(lconf[0].set_rc, 0);
    assert_int_equal(wk.wheel.count, 0);
    assert_int_equal(nd_wheel_advance(&wk.wheel, T0 + 3600 * 1000), 0);
    assert_int_equal(lconf[0].timeouts, 0);
    assert_false(owner_closed);
    assert_int_equal(nd_stream_writev(conn.st, &iov, 1), 4);
    assert_int_equal(net_out_len, 4);
    assert_memory_equal(net_out, "pong", 4);
    assert_int_equal(stream_timeouts(), 0);
    /* an owner that ends the connection: shutdown and close run, no timeout */
    assert_true(nd_stream_finish(conn.st));
    assert_int_equal(lconf[0].shutdowns, 1);
    nd_stream_close(&wk, &conn);
    assert_int_equal(lconf[0].closes, 1);
    assert_int_equal(lconf[0].timeouts, 0);
}

/* Reset: a new call replaces the deadline, from the time of the call. */
static void test_deadline_reset(void **state)
{
    (void)state;
    lconf[0].connect_ms = 50;
    open_stream(1);
    nd_wheel_advance(&wk.wheel, T0 + 40);
    arrive("more"); /* now T0 + 140 */
    assert_int_equal(lconf[0].set_rc, 0);
    assert_int_equal(nd_wheel_advance(&wk.wheel, T0 + 139), 0);
    assert_int_equal(lconf[0].timeouts, 0);
    assert_false(owner_closed);
    /* reset again at T0 + 139: T0 + 239 */
    arrive("more");
    assert_int_equal(nd_wheel_advance(&wk.wheel, T0 + 238), 0);
    assert_int_equal(nd_wheel_advance(&wk.wheel, T0 + 239), 1);
    assert_int_equal(lconf[0].timeouts, 1);
    assert_true(owner_closed);
    assert_int_equal(stream_timeouts(), 1);
}

/* Out of range: refused, and the deadline in force stays. */
static void test_deadline_limits(void **state)
{
    (void)state;
    lconf[0].connect_ms = 3600u * 1000; /* an hour is the longest */
    open_stream(1);
    arrive("long");
    assert_int_equal(lconf[0].set_rc, -1);
    assert_int_equal(nd_wheel_advance(&wk.wheel, T0 + 3600 * 1000 - 1), 0);
    assert_false(owner_closed);
    nd_wheel_advance(&wk.wheel, T0 + 3600 * 1000);
    assert_int_equal(lconf[0].timeouts, 1);
    assert_true(owner_closed);
}

/* One deadline per layer: the earliest fires, only that layer's hook runs, and the connection
 * closes once. A layer that cleared its own does not keep the other's alive, or vice versa. */
static void test_deadline_layers(void **state)
{
    (void)state;
    lconf[0].connect_ms = 200;
    lconf[1].connect_ms = 50;
    open_stream(2);
    assert_int_equal(wk.wheel.count, 1); /* one timer for the stream, at the earliest */
    assert_int_equal(nd_wheel_advance(&wk.wheel, T0 + 50), 1);
    assert_int_equal(lconf[1].timeouts, 1);
    assert_int_equal(lconf[0].timeouts, 0);
    assert_true(owner_closed);
    assert_int_equal(lconf[0].closes, 1);
    assert_int_equal(lconf[1].closes, 1);
    assert_int_equal(nd_wheel_advance(&wk.wheel, T0 + 1000), 0);
    assert_int_equal(lconf[0].timeouts, 0);
    assert_int_equal(stream_timeouts(), 1);
}

/* Each layer clears its own: the lower one clears ("a"), the upper one's still fires, and only
 * its hook runs. */
static void test_deadline_layers_one_cleared(void **state)
{
    (void)state;
    lconf[0].connect_ms = 50;
    lconf[0].clear = "a";
    lconf[1].connect_ms = 80;
    lconf[1].clear = "b";
    open_stream(2);
    arrive("a");
    assert_int_equal(lconf[0].set_rc, 0);
    assert_int_equal(nd_wheel_advance(&wk.wheel, T0 + 79), 0);
    assert_false(owner_closed);
    assert_int_equal(nd_wheel_advance(&wk.wheel, T0 + 80), 1);
    assert_int_equal(lconf[0].timeouts, 0);
    assert_int_equal(lconf[1].timeouts, 1);
    assert_true(owner_closed);
    assert_int_equal(stream_timeouts(), 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_deadline_fires, setup, teardown),
        cmocka_unit_test_setup_teardown(test_deadline_cleared, setup, teardown),
        cmocka_unit_test_setup_teardown(test_deadline_reset, setup, teardown),
        cmocka_unit_test_setup_teardown(test_deadline_limits, setup, teardown),
        cmocka_unit_test_setup_teardown(test_deadline_layers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_deadline_layers_one_cleared, setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
