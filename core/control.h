/*
 * The plugins' control side (include/nodus/plugin.h, ABI 3): the ticks and gossip events of the
 * plugin instances of the running configuration, on the main thread, and the nodus_gossip_*
 * calls plugins make from there. Main thread only.
 *
 *     nd_control_init(gossip_or_NULL);         at start, on the main thread
 *     nd_control_activate(cfg, now);           each time a configuration goes live
 *     loop: wait at most nd_control_next_ms(now), then nd_control_run(now);
 *     nd_control_shutdown();                   before the configurations are freed
 */
#ifndef NODUS_CONTROL_H
#define NODUS_CONTROL_H

#include <stdint.h>

struct nd_config;
struct nd_gossip_driver;

/* Remembers the main thread and the gossip driver (NULL: gossip is off), whose user events the
 * instances subscribe to. 0, or -1 when out of memory. */
int nd_control_init(struct nd_gossip_driver *g);
/* cfg is now the running configuration: its instances with control hooks get ticks and events
 * from now on, the previous configuration's no more. -1 when out of memory (the previous
 * configuration's instances are dropped all the same). */
int nd_control_activate(const struct nd_config *cfg, uint64_t now_ms);
/* Runs the ticks that are due. */
void nd_control_run(uint64_t now_ms);
/* Milliseconds until the next tick (-1: none). */
int nd_control_next_ms(uint64_t now_ms);
/* Drops every instance and the gossip subscription. */
void nd_control_shutdown(void);

#endif
