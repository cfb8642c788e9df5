/* Logging: one line per event on stderr, "LEVEL [wN] message". Never log secrets. */
#ifndef NODUS_LOG_H
#define NODUS_LOG_H

#include <nodus/plugin.h>

extern int nd_log_level; /* NODUS_LOG_*; messages above it are dropped */

void nd_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void nd_vlog(int level, const char *fmt, va_list ap);
/* The worker id shown in log lines of this thread (-1: main). */
void nd_log_set_thread(int worker_id);
/* Lines start with the time since the kernel started (CLOCK_BOOTTIME) as the kernel's own console
 * lines do, "[    5.593123]", instead of the UTC date and time: the appliance's console, where
 * both interleave (init calls it, and the node when NODUS_LOG_CLOCK=boot). */
void nd_log_use_boottime(void);

/* The access log (node { access_log }): "stderr" or a file opened for appending. One write per
 * line, so lines of several workers never interleave. */
int nd_access_log_open(const char *path);
void nd_access_log_write(const char *line, size_t len);
void nd_access_log_close(void);

#define nd_err(...) nd_log(NODUS_LOG_ERR, __VA_ARGS__)
#define nd_warn(...) nd_log(NODUS_LOG_WARN, __VA_ARGS__)
#define nd_info(...) nd_log(NODUS_LOG_INFO, __VA_ARGS__)
#define nd_debug(...)                                                                              \
    do {                                                                                           \
        if (nd_log_level >= NODUS_LOG_DEBUG)                                                       \
            nd_log(NODUS_LOG_DEBUG, __VA_ARGS__);                                                  \
    } while (0)

#endif
