/* `nodus sockets`: the kernel's TCP sockets of this process, the JSON answer and the table. */
#include "sockets.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <linux/sockios.h>
#include <linux/tcp.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include "buf.h"
#include "worker.h"

int nd_socklist_init(struct nd_socklist *l, unsigned cap)
{
    memset(l, 0, sizeof(*l));
    l->s = calloc(cap ? cap : 1, sizeof(*l->s));
    if (!l->s)
        return -1;
    l->cap = cap;
    return 0;
}

void nd_socklist_free(struct nd_socklist *l)
{
    free(l->s);
    memset(l, 0, sizeof(*l));
}

struct nd_sock *nd_socklist_add(struct nd_socklist *l)
{
    struct nd_sock *s;

    l->total++;
    if (l->n >= l->cap)
        return NULL;
    s = &l->s[l->n++];
    memset(s, 0, sizeof(*s));
    s->worker = -1;
    s->snd_wscale = s->rcv_wscale = -1;
    return s;
}

/* ---- the kernel's sockets ---- */

/* The kernel's TCP states (include/net/tcp_states.h), named as the user-space TCP names its. */
static const char *kernel_state(unsigned st)
{
    static const char *const names[] = {
        "?",         "ESTABLISHED", "SYN_SENT",   "SYN_RCVD", "FIN_WAIT_1", "FIN_WAIT_2",
        "TIME_WAIT", "CLOSED",      "CLOSE_WAIT", "LAST_ACK", "LISTEN",     "CLOSING",
    };

    return st < sizeof(names) / sizeof(names[0]) ? names[st] : "?";
}

#define KERNEL_LISTEN 10

static void addr_text(const struct sockaddr_storage *ss, char *out, size_t len)
{
    char ip[INET6_ADDRSTRLEN] = "?";

    if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)ss;

        inet_ntop(AF_INET, &a->sin_addr, ip, sizeof(ip));
        snprintf(out, len, "%s:%u", ip, ntohs(a->sin_port));
    } else if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)ss;

        inet_ntop(AF_INET6, &a->sin6_addr, ip, sizeof(ip));
        snprintf(out, len, "[%s]:%u", ip, ntohs(a->sin6_port));
    } else {
        snprintf(out, len, "*:*");
    }
}

/* Which worker watches which descriptor: the posix backend registers every connection and
 * listener of a worker with that worker's epoll instance, and the kernel lists an instance's
 * descriptors in /proc/self/fdinfo/EPFD ("tfd: N ..."). owner[fd] = worker + 1, 0: none. */
struct owners {
    uint8_t *owner;
    size_t n;
};

static void owners_read(struct owners *o)
{
    memset(o, 0, sizeof(*o));
    for (unsigned w = 0; nd_rt.workers && w < nd_rt.nworkers && w < ND_MAX_WORKERS; w++) {
        char path[64], line[256];
        FILE *f;

        if (nd_rt.workers[w].epfd < 0)
            continue;
        snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", nd_rt.workers[w].epfd);
        if (!(f = fopen(path, "re")))
            continue;
        while (fgets(line, sizeof(line), f)) {
            int fd;

            if (sscanf(line, "tfd: %d", &fd) != 1 || fd < 0)
                continue;
            if ((size_t)fd >= o->n) {
                size_t n = (size_t)fd * 2 + 64;
                uint8_t *p = realloc(o->owner, n);

                if (!p)
                    break; /* control path: without the map, workers show as unknown */
                memset(p + o->n, 0, n - o->n);
                o->owner = p;
                o->n = n;
            }
            o->owner[fd] = (uint8_t)(w + 1);
        }
        fclose(f);
    }
}

static void kernel_socket(struct nd_socklist *l, int fd, const struct owners *o)
{
    struct sockaddr_storage la, ra;
    socklen_t len = sizeof(int);
    struct tcp_info ti;
    struct nd_sock *s;
    int proto, dom;

    if (getsockopt(fd, SOL_SOCKET, SO_PROTOCOL, &proto, &len) < 0 || proto != IPPROTO_TCP)
        return; /* not a socket (ENOTSOCK), or not TCP */
    len = sizeof(dom);
    if (getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &dom, &len) < 0 ||
        (dom != AF_INET && dom != AF_INET6))
        return;
    memset(&ti, 0, sizeof(ti));
    len = sizeof(ti);
    if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) < 0)
        return; /* closed by its worker meanwhile */
    if (!(s = nd_socklist_add(l)))
        return;
    memset(&la, 0, sizeof(la));
    memset(&ra, 0, sizeof(ra));
    len = sizeof(la);
    getsockname(fd, (struct sockaddr *)&la, &len);
    len = sizeof(ra);
    if (getpeername(fd, (struct sockaddr *)&ra, &len) < 0)
        ra.ss_family = AF_UNSPEC;
    addr_text(&la, s->local, sizeof(s->local));
    addr_text(&ra, s->remote, sizeof(s->remote));
    s->state = kernel_state(ti.tcpi_state);
    if ((size_t)fd < o->n && o->owner[fd])
        s->worker = o->owner[fd] - 1;
    if (ti.tcpi_state == KERNEL_LISTEN) {
        s->listener = true;
        s->recv_q = ti.tcpi_unacked; /* a listener's accept queue, as ss shows it */
        s->send_q = ti.tcpi_sacked;  /* and its backlog */
        return;
    }
    {
        int q = 0;

        if (ioctl(fd, SIOCINQ, &q) == 0 && q > 0)
            s->recv_q = (uint64_t)q;
        q = 0;
        if (ioctl(fd, SIOCOUTQ, &q) == 0 && q > 0)
            s->send_q = (uint64_t)q;
    }
    s->info = true;
    s->rtt_us = ti.tcpi_rtt;
    s->rttvar_us = ti.tcpi_rttvar;
    s->rto_ms = ti.tcpi_rto / 1000;
    s->mss = ti.tcpi_snd_mss;
    s->cwnd = ti.tcpi_snd_cwnd;
    s->ssthresh = ti.tcpi_snd_ssthresh >= 0xffff ? 0 : ti.tcpi_snd_ssthresh; /* as ss */
    if (ti.tcpi_options & TCPI_OPT_WSCALE) {
        s->snd_wscale = ti.tcpi_snd_wscale;
        s->rcv_wscale = ti.tcpi_rcv_wscale;
    }
    s->retrans = ti.tcpi_total_retrans;
    s->bytes_acked = ti.tcpi_bytes_acked;
    s->bytes_received = ti.tcpi_bytes_received;
}

void nd_sockets_kernel(struct nd_socklist *l)
{
    DIR *d = opendir("/proc/self/fd");
    struct owners o;
    struct dirent *e;

    if (!d)
        return;
    owners_read(&o);
    while ((e = readdir(d))) {
        char *end;
        long fd = strtol(e->d_name, &end, 10);

        if (*end || end == e->d_name || fd == dirfd(d) || fd < 0 || fd > 0x7fffffff)
            continue;
        kernel_socket(l, (int)fd, &o);
    }
    closedir(d);
    free(o.owner);
}

/* ---- JSON ---- */

/* Written directly (no document tree: 8192 sockets stay a few MB). Every string is ours: state
 * names and addresses printed by inet_ntop, nothing to escape. */
static void sock_json(struct nd_sbuf *out, const struct nd_sock *s)
{
    if (s->worker >= 0)
        nd_sbuf_printf(out, "{\"worker\":%d", s->worker);
    else
        nd_sbuf_adds(out, "{\"worker\":null");
    nd_sbuf_printf(out,
                   ",\"stack\":\"%s\",\"state\":\"%s\",\"local\":\"%s\",\"remote\":\"%s\","
                   "\"recv_q\":%" PRIu64 ",\"send_q\":%" PRIu64,
                   s->dpdk ? "dpdk" : "kernel", s->state ? s->state : "?", s->local, s->remote,
                   s->recv_q, s->send_q);
    if (s->listener && s->dpdk)
        nd_sbuf_printf(out, ",\"half_open\":%u", s->half_open);
    if (s->info) {
        nd_sbuf_printf(out,
                       ",\"rtt_ms\":%.3f,\"rttvar_ms\":%.3f,\"rto_ms\":%u,\"mss\":%u,\"cwnd\":%u",
                       s->rtt_us / 1000.0, s->rttvar_us / 1000.0, s->rto_ms, s->mss, s->cwnd);
        if (s->ssthresh)
            nd_sbuf_printf(out, ",\"ssthresh\":%u", s->ssthresh);
        else
            nd_sbuf_adds(out, ",\"ssthresh\":null");
        nd_sbuf_printf(out, ",\"retrans\":%" PRIu64, s->retrans);
        if (s->snd_wscale >= 0)
            nd_sbuf_printf(out, ",\"wscale\":[%d,%d]", s->snd_wscale, s->rcv_wscale);
        else
            nd_sbuf_adds(out, ",\"wscale\":null");
        nd_sbuf_printf(out, ",\"bytes_acked\":%" PRIu64 ",\"bytes_received\":%" PRIu64,
                       s->bytes_acked, s->bytes_received);
    }
    nd_sbuf_adds(out, "}");
}

void nd_sockets_json(const struct nd_socklist *l, const char *io, struct nd_sbuf *out)
{
    bool first = true;

    nd_sbuf_printf(out,
                   "{\"io\":\"%s\",\"limit\":%u,\"total\":%" PRIu64
                   ",\"truncated\":%s,\"workers_not_answering\":[",
                   io, l->cap, l->total, l->total > l->n ? "true" : "false");
    for (unsigned w = 0; w < 64; w++)
        if (l->workers_silent >> w & 1) {
            nd_sbuf_printf(out, "%s%u", first ? "" : ",", w);
            first = false;
        }
    nd_sbuf_adds(out, "],\"sockets\":[");
    for (unsigned i = 0; i < l->n; i++) {
        if (i)
            nd_sbuf_adds(out, ",\n");
        sock_json(out, &l->s[i]);
    }
    nd_sbuf_adds(out, "]}\n");
}

/* ---- the table ---- */

static long long jint(json_t *o, const char *k)
{
    return json_integer_value(json_object_get(o, k));
}

static const char *jstr(json_t *o, const char *k)
{
    const char *v = json_string_value(json_object_get(o, k));

    return v ? v : "?";
}

int nd_sockets_print(const char *text, FILE *f)
{
    json_error_t jerr;
    json_t *root = json_loads(text, 0, &jerr), *s, *x;
    unsigned long long nlis = 0, nconn = 0;
    size_t i;

    if (!root || !json_is_array(json_object_get(root, "sockets"))) {
        fprintf(stderr, "nodus: %s", root ? "no sockets in the answer\n" : text);
        json_decref(root);
        return 1;
    }
    fprintf(f, "%-6s %-6s %-11s %8s %8s  %-22s %-22s %-13s %5s %6s %8s %7s %5s %s\n", "WORKER",
            "STACK", "STATE", "RECV-Q", "SEND-Q", "LOCAL", "PEER", "RTT/VAR ms", "RTO", "CWND",
            "SSTHRESH", "RETRANS", "MSS", "WSCALE");
    json_array_foreach(json_object_get(root, "sockets"), i, s)
    {
        char worker[16] = "-", rtt[32] = "", ss[16] = "-", ws[16] = "-";
        bool info = json_object_get(s, "rtt_ms") != NULL;

        if (json_is_integer(json_object_get(s, "worker")))
            snprintf(worker, sizeof(worker), "%lld", jint(s, "worker"));
        if (!strcmp(jstr(s, "state"), "LISTEN"))
            nlis++;
        else
            nconn++;
        fprintf(f, "%-6s %-6s %-11s %8lld %8lld  %-22s %-22s", worker, jstr(s, "stack"),
                jstr(s, "state"), jint(s, "recv_q"), jint(s, "send_q"), jstr(s, "local"),
                jstr(s, "remote"));
        if (!info) {
            fprintf(f, "\n");
            continue;
        }
        snprintf(rtt, sizeof(rtt), "%.2f/%.2f", json_number_value(json_object_get(s, "rtt_ms")),
                 json_number_value(json_object_get(s, "rttvar_ms")));
        if (json_is_integer(json_object_get(s, "ssthresh")))
            snprintf(ss, sizeof(ss), "%lld", jint(s, "ssthresh"));
        if (json_is_array(x = json_object_get(s, "wscale")))
            snprintf(ws, sizeof(ws), "%lld,%lld",
                     (long long)json_integer_value(json_array_get(x, 0)),
                     (long long)json_integer_value(json_array_get(x, 1)));
        fprintf(f, " %-13s %5lld %6lld %8s %7lld %5lld %s\n", rtt, jint(s, "rto_ms"),
                jint(s, "cwnd"), ss, jint(s, "retrans"), jint(s, "mss"), ws);
    }
    fprintf(f, "\n%llu listener(s), %llu connection(s), io %s", nlis, nconn, jstr(root, "io"));
    if (json_is_true(json_object_get(root, "truncated")))
        fprintf(f, "; truncated: %zu of %lld shown (the answer holds at most %lld)",
                json_array_size(json_object_get(root, "sockets")), jint(root, "total"),
                jint(root, "limit"));
    fprintf(f, "\n");
    json_array_foreach(json_object_get(root, "workers_not_answering"), i, x)
        fprintf(f, "worker %lld did not answer in time: its sockets are missing\n",
                (long long)json_integer_value(x));
    json_decref(root);
    return 0;
}
