/*
 * The service catalog's metrics in Prometheus text format (catalog.h, nd_catalog_metrics).
 * Separate from catalog.c, which stays free of the core (the simulator builds without it).
 */
#include "catalog.h"

#include "buf.h"

void nd_catalog_metrics(const struct nd_catalog *c, struct nd_sbuf *out)
{
    unsigned eps = 0, svcs = 0;

    if (!c)
        return;
    for (unsigned i = 0; i < c->nsvcs; i++) {
        eps += c->svcs[i].neps;
        svcs += c->svcs[i].neps > 0;
    }
    nd_sbuf_printf(out,
                   "# HELP nodus_catalog_services Services with at least one endpoint in the "
                   "catalog (from gossip tags).\n"
                   "# TYPE nodus_catalog_services gauge\n"
                   "nodus_catalog_services %u\n"
                   "# HELP nodus_catalog_endpoints_all Endpoints in the catalog, all services.\n"
                   "# TYPE nodus_catalog_endpoints_all gauge\n"
                   "nodus_catalog_endpoints_all %u\n"
                   "# HELP nodus_catalog_endpoints Endpoints of a service in the catalog.\n"
                   "# TYPE nodus_catalog_endpoints gauge\n",
                   svcs, eps);
    /* service names are [A-Za-z0-9._-]{1,63} (nd_cat_name_ok): no escaping needed */
    for (unsigned i = 0; i < c->nsvcs; i++)
        if (c->svcs[i].neps)
            nd_sbuf_printf(out, "nodus_catalog_endpoints{service=\"%s\"} %u\n", c->svcs[i].name,
                           c->svcs[i].neps);
    nd_sbuf_printf(out,
                   "# HELP nodus_catalog_changes_total Times a service's endpoints changed and "
                   "were handed over for publishing.\n"
                   "# TYPE nodus_catalog_changes_total counter\n"
                   "nodus_catalog_changes_total %llu\n"
                   "# HELP nodus_catalog_bad_tags_total Malformed service tags from peers, "
                   "ignored.\n"
                   "# TYPE nodus_catalog_bad_tags_total counter\n"
                   "nodus_catalog_bad_tags_total %llu\n"
                   "# HELP nodus_catalog_bad_lists_total Service list parts (nodus:svc user "
                   "events) dropped: malformed, or too many members with lists.\n"
                   "# TYPE nodus_catalog_bad_lists_total counter\n"
                   "nodus_catalog_bad_lists_total %llu\n"
                   "# HELP nodus_catalog_lists Members whose service lists (beyond their tags) "
                   "are kept.\n"
                   "# TYPE nodus_catalog_lists gauge\n"
                   "nodus_catalog_lists %u\n",
                   (unsigned long long)c->changes, (unsigned long long)c->bad_tags,
                   (unsigned long long)c->bad_lists, c->nlists);
}
