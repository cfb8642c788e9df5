/*
 * libFuzzer target for the SWIM engine (gossip/swim.c): the input is split into records
 * [kind][len u16][bytes] that go into one engine as datagrams, as a push/pull stream from a
 * peer, or as the passing of time (1..4096 ms). The engine must never crash, leak, or keep more
 * members than its limit. Seeds: the gossip corpus (any datagram is a one-record input when its
 * first byte is taken as the kind).
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "../../gossip/swim.h"

#define CHECK(x)                                                                                   \
    do {                                                                                           \
        if (!(x))                                                                                  \
            __builtin_trap();                                                                      \
    } while (0)

static void f_send(void *a, const struct nd_swim_addr *to, const uint8_t *p, size_t n)
{
    (void)a, (void)to, (void)p, (void)n;
}
static int f_open(void *a, uint32_t sid, const struct nd_swim_addr *to)
{
    (void)a, (void)sid, (void)to;
    return 0;
}
static int f_ssend(void *a, uint32_t sid, const uint8_t *p, size_t n)
{
    (void)a, (void)sid, (void)p, (void)n;
    return 0;
}
static void f_close(void *a, uint32_t sid)
{
    (void)a, (void)sid;
}
static void f_rand(void *a, void *p, size_t n)
{
    (void)a;
    memset(p, 0x5a, n);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const struct nd_swim_io io = {.send = f_send,
                                         .stream_open = f_open,
                                         .stream_send = f_ssend,
                                         .stream_close = f_close,
                                         .random = f_rand};
    struct nd_swim_config c;
    struct nd_swim_addr from = {.ip = {127, 0, 0, 2}, .len = 4, .port = 7946};
    struct nd_swim *sw;
    uint64_t now = 1000;
    uint32_t sid = 0;
    bool open = false;
    int err;

    nd_swim_config_lan(&c);
    c.name = "fuzz";
    c.addr = (struct nd_swim_addr){.ip = {127, 0, 0, 1}, .len = 4, .port = 7946};
    c.max_members = 64;
    c.stream_max = 1u << 16;
    sw = nd_swim_new(&c, &io, now, &err);
    CHECK(sw);
    while (size >= 1) {
        uint8_t kind = data[0];
        size_t len = size >= 3 ? (size_t)(data[1] << 8 | data[2]) : 0;

        if (size < 3 || len > size - 3) { /* the rest is one datagram */
            nd_swim_packet(sw, now, &from, data, size);
            break;
        }
        const uint8_t *p = data + 3;

        switch (kind % 4) {
        case 0:
            nd_swim_packet(sw, now, &from, p, len);
            break;
        case 1:
            if (!open)
                open = nd_swim_stream_accept(sw, now, &from, &sid) == 0;
            if (open)
                nd_swim_stream_input(sw, now, sid, p, len);
            break;
        case 2:
            now += 1 + (len & 4095);
            nd_swim_tick(sw, now);
            break;
        default:
            if (open)
                nd_swim_stream_end(sw, now, sid);
            open = false;
            break;
        }
        data += 3 + len;
        size -= 3 + len;
    }
    CHECK(nd_swim_metrics(sw)->members_alive + nd_swim_metrics(sw)->members_suspect +
              nd_swim_metrics(sw)->members_dead + nd_swim_metrics(sw)->members_left <=
          64);
    nd_swim_free(sw);
    return 0;
}
