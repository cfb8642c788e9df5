#include "log.h"

#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

int nd_log_level = NODUS_LOG_INFO;
static __thread int log_thread = -1;
static bool log_boottime;

void nd_log_set_thread(int worker_id)
{
    log_thread = worker_id;
}

void nd_log_use_boottime(void)
{
    log_boottime = true;
}

/* Workers log at most ND_LOG_RATE lines a second each (a flood of bad requests must not become a
 * flood of writes); what is held back is counted and said in the next second's first line. */
#define ND_LOG_RATE 100
static __thread time_t rate_sec;
static __thread unsigned rate_lines, rate_dropped;

static bool rate_ok(time_t sec)
{
    if (log_thread < 0)
        return true;
    if (sec != rate_sec) {
        unsigned dropped = rate_dropped;

        rate_sec = sec;
        rate_lines = rate_dropped = 0;
        if (dropped)
            nd_log(NODUS_LOG_WARN, "%u log lines held back (more than %d a second)", dropped,
                   ND_LOG_RATE);
    }
    if (rate_lines >= ND_LOG_RATE) {
        rate_dropped++;
        return false;
    }
    rate_lines++;
    return true;
}

void nd_vlog(int level, const char *fmt, va_list ap)
{
    static const char *const names[] = {"error", "warn", "info", "debug"};
    const char *name;
    char line[1024];
    struct timespec ts;
    struct tm tm;
    int n;

    if (level > nd_log_level)
        return;
    clock_gettime(log_boottime ? CLOCK_BOOTTIME : CLOCK_REALTIME, &ts);
    if (!rate_ok(ts.tv_sec))
        return;
    name = names[level < 0 ? 0 : level > 3 ? 3 : level];
    if (log_boottime) {
        n = snprintf(line, sizeof(line), "[%5ld.%06ld] %s ", (long)ts.tv_sec, ts.tv_nsec / 1000,
                     name);
    } else {
        gmtime_r(&ts.tv_sec, &tm);
        n = snprintf(line, sizeof(line), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %s ",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                     ts.tv_nsec / 1000000, name);
    }
    if (log_thread >= 0)
        n += snprintf(line + n, sizeof(line) - n, "[w%d] ", log_thread);
    else
        n += snprintf(line + n, sizeof(line) - n, "[main] ");
    if (n < (int)sizeof(line))
        n += vsnprintf(line + n, sizeof(line) - n, fmt, ap);
    if (n >= (int)sizeof(line) - 1)
        n = sizeof(line) - 2;
    line[n++] = '\n';
    /* one write per line: lines of several threads never interleave */
    if (write(STDERR_FILENO, line, n) < 0)
        return;
}

void nd_log(int level, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    nd_vlog(level, fmt, ap);
    va_end(ap);
}

void nodus_log(int level, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    nd_vlog(level, fmt, ap);
    va_end(ap);
}

static int access_fd = -1;

int nd_access_log_open(const char *path)
{
    if (!strcmp(path, "stderr"))
        access_fd = STDERR_FILENO;
    else
        access_fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
    return access_fd < 0 ? -1 : 0;
}

void nd_access_log_write(const char *line, size_t len)
{
    if (access_fd >= 0 && write(access_fd, line, len) < 0)
        return;
}

void nd_access_log_close(void)
{
    if (access_fd > STDERR_FILENO)
        close(access_fd);
    access_fd = -1;
}
