/* The kernel command line of the appliance: nodus.config=, nodus.on_error=, nodus.hugepages=,
 * nodus.debug (docs/appliance.md). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <wolfssl/options.h>
#include <wolfssl/wolfcrypt/coding.h>

#include "appliance.h"

#define B64_PREFIX "base64:"

static void problem(int *n, char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void problem(int *n, char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;

    if ((*n)++ == 0 && errlen) {
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
}

/* Standard base64, '=' padded to a multiple of 4 (wolfSSL's decoder skips what it does not
 * know, so the alphabet is checked here). */
static bool is_base64(const char *s, size_t len)
{
    size_t i, pad = 0;

    if (!len || len % 4)
        return false;
    while (pad < 2 && s[len - 1 - pad] == '=')
        pad++;
    for (i = 0; i < len - pad; i++)
        if (!((s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= 'a' && s[i] <= 'z') ||
              (s[i] >= '0' && s[i] <= '9') || s[i] == '+' || s[i] == '/'))
            return false;
    return true;
}

/* nodus.config=VALUE: Lua text as is, or base64 of it after "base64:". */
static void set_config(struct nd_boot_opts *o, const char *v, size_t len, int *n, char *err,
                       size_t errlen)
{
    size_t plen = strlen(B64_PREFIX);

    free(o->config);
    o->config = NULL;
    o->config_len = 0;
    o->config_bad = false;
    if (len >= plen && !memcmp(v, B64_PREFIX, plen)) {
        word32 out = (word32)((len - plen) / 4 * 3 + 3);
        char *buf = malloc(out + 1);

        if (!buf || !is_base64(v + plen, len - plen) ||
            Base64_Decode((const byte *)v + plen, (word32)(len - plen), (byte *)buf, &out) != 0 ||
            !out || memchr(buf, '\0', out)) {
            free(buf);
            o->config_bad = true;
            problem(n, err, errlen, "nodus.config: not valid base64 after \"base64:\"");
            return;
        }
        buf[out] = '\0';
        o->config = buf;
        o->config_len = out;
        return;
    }
    if (!len) {
        o->config_bad = true;
        problem(n, err, errlen, "nodus.config: empty");
        return;
    }
    if (!(o->config = strndup(v, len))) {
        o->config_bad = true;
        problem(n, err, errlen, "nodus.config: out of memory");
        return;
    }
    o->config_len = len;
}

static void one(struct nd_boot_opts *o, const char *w, size_t len, int *n, char *err, size_t errlen)
{
    const char *eq = memchr(w, '=', len);
    size_t klen = eq ? (size_t)(eq - w) : len, vlen = eq ? len - klen - 1 : 0;
    const char *v = eq ? eq + 1 : "";
    char num[32];

    if (klen < 6 || memcmp(w, "nodus.", 6))
        return;
#define KEY(k) (klen == strlen(k) && !memcmp(w, k, klen))
    if (KEY("nodus.config")) {
        set_config(o, v, vlen, n, err, errlen);
    } else if (KEY("nodus.on_error")) {
        if (vlen == 8 && !memcmp(v, "poweroff", 8))
            o->on_error = ND_BOOT_POWEROFF;
        else if (vlen == 6 && !memcmp(v, "reboot", 6))
            o->on_error = ND_BOOT_REBOOT;
        else
            problem(n, err, errlen, "nodus.on_error=%.*s: use poweroff or reboot", (int)vlen, v);
    } else if (KEY("nodus.hugepages")) {
        char *end;
        long h;

        snprintf(num, sizeof(num), "%.*s", (int)(vlen < 31 ? vlen : 31), v);
        h = strtol(num, &end, 10);
        if (!vlen || *end || h < 0 || h > 1048576)
            problem(n, err, errlen, "nodus.hugepages=%.*s: a number of 2 MiB pages, 0..1048576",
                    (int)vlen, v);
        else
            o->hugepages = h;
    } else if (KEY("nodus.debug")) {
        o->debug = !eq || (vlen == 1 && v[0] == '1');
    } else {
        problem(n, err, errlen,
                "unknown parameter %.*s (nodus.config, nodus.on_error, "
                "nodus.hugepages, nodus.debug)",
                (int)klen, w);
    }
#undef KEY
}

int nd_boot_parse(const char *cmdline, struct nd_boot_opts *o, char *err, size_t errlen)
{
    size_t cap = strlen(cmdline) + 1, len;
    char *word = malloc(cap);
    const char *p = cmdline;
    int n = 0;

    memset(o, 0, sizeof(*o));
    o->hugepages = -1;
    if (errlen)
        err[0] = '\0';
    if (!word) {
        problem(&n, err, errlen, "out of memory");
        return n;
    }
    for (;;) {
        bool quoted = false;

        while (*p == ' ' || *p == '\t' || *p == '\n')
            p++;
        if (!*p)
            break;
        for (len = 0; *p && (quoted || (*p != ' ' && *p != '\t' && *p != '\n')); p++) {
            if (*p == '"')
                quoted = !quoted;
            else
                word[len++] = *p;
        }
        one(o, word, len, &n, err, errlen);
    }
    free(word);
    return n;
}

void nd_boot_opts_free(struct nd_boot_opts *o)
{
    free(o->config);
    o->config = NULL;
    o->config_len = 0;
}
