/* The plugins' control side: see control.h and include/nodus/plugin.h (ABI 3). */
#include "control.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <nodus/plugin.h>

#include "../gossip/driver.h"
#include "../gossip/swim.h"
#include "config.h"
#include "log.h"

#define TICK_MIN_MS 10u
#define TICK_MAX_MS 3600000u

struct inst {
    const struct nodus_control_ops *ops;
    void *conf;
    uint64_t next; /* the next tick, ms */
};

static struct {
    pthread_t main;
    bool init;
    struct nd_gossip_driver *gossip;
    int sub; /* gossip subscription handle */
    struct inst *insts;
    unsigned n;
} ctl;

static bool on_main(void)
{
    return ctl.init && pthread_equal(pthread_self(), ctl.main);
}

static void on_event(void *arg, const struct nd_gossip_event *ev)
{
    struct nodus_gossip_event pe = {.name = ev->name,
                                    .name_len = ev->name_len,
                                    .payload = ev->payload,
                                    .payload_len = ev->payload_len,
                                    .ltime = ev->ltime,
                                    .self = ev->self};

    (void)arg;
    for (unsigned i = 0; i < ctl.n; i++) {
        const struct nodus_control_ops *o = ctl.insts[i].ops;
        size_t pl = o->event_prefix ? strlen(o->event_prefix) : 0;

        if (o->event && o->event_prefix && ev->name_len >= pl &&
            memcmp(ev->name, o->event_prefix, pl) == 0)
            o->event(ctl.insts[i].conf, &pe);
    }
}

int nd_control_init(struct nd_gossip_driver *g)
{
    ctl.main = pthread_self();
    ctl.init = true;
    ctl.gossip = g;
    if (g && (ctl.sub = nd_gossip_driver_subscribe(g, "", on_event, NULL)) < 0)
        return -1;
    return 0;
}

static uint32_t tick_of(const struct nodus_control_ops *o)
{
    if (!o->tick || !o->tick_ms)
        return 0;
    return o->tick_ms < TICK_MIN_MS   ? TICK_MIN_MS
           : o->tick_ms > TICK_MAX_MS ? TICK_MAX_MS
                                      : o->tick_ms;
}

int nd_control_activate(const struct nd_config *cfg, uint64_t now_ms)
{
    unsigned n = 0;

    ctl.n = 0;
    for (unsigned i = 0; i < cfg->nlisteners; i++)
        for (unsigned j = 0; j < cfg->listeners[i].nplugins; j++)
            n += cfg->listeners[i].plugins[j].p->control != NULL;
    free(ctl.insts);
    ctl.insts = NULL;
    if (!n)
        return 0;
    if (!(ctl.insts = calloc(n, sizeof *ctl.insts))) {
        nd_err("plugins: out of memory: their control hooks (ticks, gossip events) do not run");
        return -1;
    }
    for (unsigned i = 0; i < cfg->nlisteners; i++)
        for (unsigned j = 0; j < cfg->listeners[i].nplugins; j++) {
            const struct nd_plugin_inst *pi = &cfg->listeners[i].plugins[j];
            uint32_t t;

            if (!pi->p->control)
                continue;
            t = tick_of(pi->p->control);
            ctl.insts[ctl.n++] = (struct inst){
                .ops = pi->p->control, .conf = pi->conf, .next = t ? now_ms + t : UINT64_MAX};
        }
    return 0;
}

void nd_control_run(uint64_t now_ms)
{
    for (unsigned i = 0; i < ctl.n; i++) {
        struct inst *in = &ctl.insts[i];

        if (now_ms < in->next)
            continue;
        in->next = now_ms + tick_of(in->ops);
        in->ops->tick(in->conf, now_ms);
    }
}

int nd_control_next_ms(uint64_t now_ms)
{
    uint64_t next = UINT64_MAX;

    for (unsigned i = 0; i < ctl.n; i++)
        if (ctl.insts[i].next < next)
            next = ctl.insts[i].next;
    if (next == UINT64_MAX)
        return -1;
    return next <= now_ms ? 0 : next - now_ms > 3600000 ? 3600000 : (int)(next - now_ms);
}

void nd_control_shutdown(void)
{
    free(ctl.insts);
    ctl.insts = NULL;
    ctl.n = 0;
    if (ctl.gossip && ctl.sub > 0)
        nd_gossip_driver_unsubscribe(ctl.gossip, ctl.sub);
    ctl.gossip = NULL;
    ctl.sub = 0;
}

/* ---- nodus_gossip_* (plugin.h) ------------------------------------------------------------ */

const char *nodus_gossip_self(void)
{
    if (!on_main() || !ctl.gossip)
        return NULL;
    return nd_swim_self_name(nd_gossip_driver_engine(ctl.gossip));
}

int nodus_gossip_member_status(const char *name, size_t len)
{
    struct nd_swim_member m;
    char buf[513];

    if (!on_main() || !ctl.gossip || len >= sizeof buf)
        return NODUS_MEMBER_UNKNOWN;
    memcpy(buf, name, len);
    buf[len] = 0;
    if (nd_swim_find(nd_gossip_driver_engine(ctl.gossip), buf, &m) < 0)
        return NODUS_MEMBER_UNKNOWN;
    switch (m.status) {
    case ND_SWIM_ALIVE:
        return NODUS_MEMBER_ALIVE;
    case ND_SWIM_LEAVING:
        return NODUS_MEMBER_LEAVING;
    case ND_SWIM_LEFT:
        return NODUS_MEMBER_LEFT;
    default:
        return NODUS_MEMBER_FAILED;
    }
}

unsigned nodus_gossip_live_members(void)
{
    const struct nd_swim_metrics *m;

    if (!on_main() || !ctl.gossip)
        return 1;
    m = nd_swim_metrics(nd_gossip_driver_engine(ctl.gossip));
    return m->members_alive + m->members_suspect;
}

int nodus_gossip_publish(const char *name, size_t name_len, const void *payload, size_t len,
                         bool coalesce)
{
    if (!on_main() || !ctl.gossip)
        return -1;
    return nd_gossip_driver_publish(ctl.gossip, name, name_len, payload, len, coalesce) ? -1 : 0;
}
