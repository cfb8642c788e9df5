/*
 * The router's route table: virtual hosts, route matching, weighted split, rewrites. A pure
 * module: no host calls, so it is unit-tested without a node (tests/unit/test_router.c).
 *
 * Building (main thread): rt_new(), then for each virtual host rt_add_vhost() followed by
 * rt_add_route() for each of its routes, in order. The table copies everything it is given.
 * Matching (worker): rt_match() over a request view, rt_pick() for the upstream, rt_rewrite()
 * and rt_location() into caller-owned buffers. Nothing on the matching side allocates.
 *
 * Regular expressions are compiled once per worker (rt_worker_new()), because glibc's regexec()
 * takes a lock inside the regex_t: a shared one would be a lock shared by all workers.
 */
#ifndef NODUS_ROUTE_TABLE_H
#define NODUS_ROUTE_TABLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <nodus/plugin.h>

struct rt_table;  /* opaque: the compiled table */
struct rt_route;  /* opaque: one compiled route */
struct rt_worker; /* opaque: per-worker state (regexes, random numbers) */

enum rt_path_kind {
    RT_PATH_PREFIX, /* plain, case-sensitive string prefix */
    RT_PATH_EXACT,  /* the whole path */
    RT_PATH_REGEX,  /* POSIX extended; the whole path must match (the table anchors it) */
};

enum rt_cond_kind {
    RT_COND_PRESENT, /* the header / query parameter is there, whatever its value */
    RT_COND_ABSENT,  /* it is not there */
    RT_COND_EXACT,   /* its value is exactly value */
    RT_COND_PREFIX,  /* its value starts with value */
    RT_COND_REGEX,   /* its value matches value as a whole (POSIX extended) */
};

/* A header or query parameter condition. Header names are matched case-insensitively (the
 * table stores them lowercased); query parameter names and all values byte for byte. */
struct rt_cond {
    const char *name;
    enum rt_cond_kind kind;
    const char *value; /* NULL for PRESENT and ABSENT */
};

/* An upstream: a cluster (the host's handle, opaque here, and its name for messages), an
 * optional one-label subset, and a weight (split routes only). */
struct rt_target {
    const char *cluster_name;
    void *cluster;
    const char *subset_key; /* NULL: all endpoints */
    const char *subset_val;
    uint32_t weight;
};

enum rt_action {
    RT_UPSTREAM, /* one target, or a weighted split over several */
    RT_REDIRECT,
    RT_DIRECT, /* direct response */
};

/* One route as configured; rt_add_route() copies it. Strings are NUL-terminated. */
struct rt_route_spec {
    enum rt_path_kind path_kind;
    const char *path;
    const char *const *methods; /* any of them; none = any method */
    size_t n_methods;
    const struct rt_cond *headers; /* all must hold */
    size_t n_headers;
    const struct rt_cond *query; /* all must hold */
    size_t n_query;

    enum rt_action action;
    /* RT_UPSTREAM: n_targets == 1 is a plain cluster route (its weight is ignored); more is a
     * split, weights >= 0 with a sum > 0. */
    const struct rt_target *targets;
    size_t n_targets;
    const char *rewrite_prefix; /* NULL, or replaces the matched prefix (prefix routes only) */
    uint32_t timeout_ms;        /* 0: the listener's default */
    /* RT_REDIRECT: exactly one of location (the whole Location) and redirect_path (a path on
     * the same host; the request's query is kept unless the path has one). */
    const char *location;
    const char *redirect_path;
    /* RT_REDIRECT (301, 302, 303, 307, 308) and RT_DIRECT (200..599). */
    int status;
    /* RT_DIRECT: body (may be NULL: empty) and content type (NULL: "text/plain"). */
    const char *body;
    const char *content_type;
    /* Anything the caller attaches to the route (the router: its per-route plugin
     * configurations); kept as it is, handed back by rt_route_config(). */
    const void *config;
};

/* What the router needs of a request. header() returns the first request header of that
 * (lowercase) name: 1 and *value, or 0. */
struct rt_request {
    struct nodus_slice method;
    struct nodus_slice path;  /* without the query */
    struct nodus_slice query; /* after '?', may be empty */
    struct nodus_slice host;  /* Host / :authority; a port, if any, is ignored */
    int (*header)(void *arg, const char *name, struct nodus_slice *value);
    void *arg;
};

/* ---- building (main thread) ---- */

/* An empty table, or NULL (out of memory). */
struct rt_table *rt_new(void);
void rt_free(struct rt_table *t);

/* Starts a virtual host serving these domains: "api.example.com" (exact), "*.example.com" or
 * "*-x.example.com" (suffix wildcard: the * stands for at least one character), "www.*"
 * (prefix wildcard), "*" (any host). Case-insensitive; a domain may appear in one virtual host
 * only. Returns 0, or -1 with a message in err. */
int rt_add_vhost(struct rt_table *t, const char *const *domains, size_t n, char *err,
                 size_t errlen);

/* Appends a route to the last virtual host. Returns 0, or -1 with a message in err. */
int rt_add_route(struct rt_table *t, const struct rt_route_spec *spec, char *err, size_t errlen);

/* The table as JSON: {"virtual_hosts":[{"domains":[...],"routes":[{"match":{...}, "route" |
 * "split" | "redirect" | "direct_response": ...}]}]}. snprintf() contract: writes at most len
 * bytes with the NUL, returns the length needed. */
size_t rt_describe(const struct rt_table *t, char *buf, size_t len);

/* Number of virtual hosts, and of routes in all of them. */
size_t rt_vhost_count(const struct rt_table *t);
size_t rt_route_count(const struct rt_table *t);

/* ---- per worker ---- */

/* The worker's copy of the table's regexes and its random state (seed: anything; 0 is fine).
 * NULL when out of memory. Valid for this table only. */
struct rt_worker *rt_worker_new(const struct rt_table *t, uint64_t seed);
void rt_worker_free(struct rt_worker *w);
/* The next pseudo-random number of the worker (xorshift64*). */
uint64_t rt_rand(struct rt_worker *w);

/* ---- matching (worker, no allocation) ---- */

/* The first route of the best virtual host that matches the request, or NULL. */
const struct rt_route *rt_match(const struct rt_table *t, struct rt_worker *w,
                                const struct rt_request *req);

enum rt_action rt_route_action(const struct rt_route *r);
/* RT_UPSTREAM: the target to use (a split draws a random number from the worker). */
const struct rt_target *rt_pick(const struct rt_route *r, struct rt_worker *w);
/* RT_UPSTREAM: the route's timeout in ms, 0 for the default. */
uint32_t rt_route_timeout(const struct rt_route *r);
/* RT_UPSTREAM: the path (and "?query") to send upstream when the route rewrites, written to
 * buf. Returns its length, 0 when the route does not rewrite, -1 when it does not fit in cap. */
long rt_rewrite(const struct rt_route *r, const struct rt_request *req, char *buf, size_t cap);
/* RT_REDIRECT and RT_DIRECT: the status. */
int rt_route_status(const struct rt_route *r);
/* RT_REDIRECT: the Location value; it may be built in buf. Returns its length (the value is
 * *out), or -1 when it does not fit in cap. */
long rt_location(const struct rt_route *r, const struct rt_request *req, char *buf, size_t cap,
                 const char **out);
/* RT_DIRECT: the body, and the content type: the configured one, else "text/plain" when the
 * body is not empty, else NULL (no content-type header). */
struct nodus_slice rt_route_body(const struct rt_route *r);
const char *rt_route_content_type(const struct rt_route *r);

/* What the route's spec carried in config. */
const void *rt_route_config(const struct rt_route *r);

/* Position of a route: index of its virtual host and its index there (for messages). */
void rt_route_pos(const struct rt_route *r, size_t *vhost, size_t *index);

#endif
