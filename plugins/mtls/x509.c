/* SPIFFE ID syntax and a bounded DER walker for the fields of a certificate the mesh needs.
 * Nothing here allocates or depends on wolfSSL, so it can be fuzzed on its own. */
#include "ca.h"

#include <stdio.h>
#include <string.h>

/* ---- SPIFFE IDs -------------------------------------------------------------------------------*/

static bool td_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '-' || c == '_';
}

static bool path_char(char c)
{
    return td_char(c) || (c >= 'A' && c <= 'Z');
}

int nd_ca_spiffe_check(const char *id, size_t len, unsigned flags, size_t *td_len, const char **why)
{
    static const char scheme[] = "spiffe://";
    const size_t slen = sizeof(scheme) - 1;
    const char *msg = NULL;
    size_t i, td, seg;

    if (!id || len == 0)
        msg = "empty";
    else if (len > ND_CA_SPIFFE_MAX)
        msg = "longer than 2048 bytes";
    else if (len < slen || memcmp(id, scheme, slen) != 0)
        msg = "scheme is not spiffe:// (lowercase)";
    if (msg)
        goto bad;
    for (i = slen; i < len && id[i] != '/'; i++) {
        if (!td_char(id[i])) {
            msg = (id[i] == ':' || id[i] == '@')
                      ? "trust domain with a port or user info"
                      : "trust domain has a character outside [a-z0-9.-_]";
            goto bad;
        }
    }
    td = i - slen;
    if (td == 0) {
        msg = "empty trust domain";
        goto bad;
    }
    if (td > ND_CA_TD_MAX) {
        msg = "trust domain longer than 255 bytes";
        goto bad;
    }
    if (i == len && (flags & ND_CA_SPIFFE_WORKLOAD)) {
        msg = "no path (a workload ID needs one)";
        goto bad;
    }
    while (i < len) { /* id[i] == '/' */
        size_t start = ++i;
        for (; i < len && id[i] != '/'; i++) {
            if (!path_char(id[i])) {
                msg = (id[i] == '?' || id[i] == '#' || id[i] == '%')
                          ? "query, fragment or percent-encoding in the path"
                          : "path has a character outside [a-zA-Z0-9.-_]";
                goto bad;
            }
        }
        seg = i - start;
        if (seg == 0) {
            msg = i == len ? "trailing '/'" : "empty path segment";
            goto bad;
        }
        if ((seg == 1 && id[start] == '.') ||
            (seg == 2 && id[start] == '.' && id[start + 1] == '.')) {
            msg = "'.' or '..' path segment";
            goto bad;
        }
    }
    if (td_len)
        *td_len = td;
    return 0;
bad:
    if (why)
        *why = msg;
    return -1;
}

int nd_ca_spiffe_make(char *buf, size_t buflen, const char *td, const char *ns, const char *sa)
{
    int n;

    if (!buf || !td || !ns || !sa || strchr(td, '/') || strchr(ns, '/') || strchr(sa, '/'))
        return -1;
    n = snprintf(buf, buflen, "spiffe://%s/ns/%s/sa/%s", td, ns, sa);
    if (n < 0 || (size_t)n >= buflen)
        return -1;
    return nd_ca_spiffe_check(buf, (size_t)n, ND_CA_SPIFFE_WORKLOAD, NULL, NULL);
}

/* ---- DER
 * ---------------------------------------------------------------------------------------*/

struct der {
    const uint8_t *p;
    size_t len;
};

/* Reads one TLV from in (advancing it). Single-byte tags only; definite lengths of at most 4
 * bytes that fit what is left. 0 or -1. */
static int der_next(struct der *in, uint8_t *tag, struct der *val)
{
    size_t n, l = 0, hdr = 2;

    if (in->len < 2)
        return -1;
    *tag = in->p[0];
    if ((*tag & 0x1f) == 0x1f)
        return -1;
    n = in->p[1];
    if (n & 0x80) {
        size_t nb = n & 0x7f;
        if (nb == 0 || nb > 4 || in->len < 2 + nb)
            return -1;
        for (size_t i = 0; i < nb; i++)
            l = (l << 8) | in->p[2 + i];
        if (l < 0x80 || (nb > 1 && in->p[2] == 0)) /* DER: minimal length encoding */
            return -1;
        hdr += nb;
    } else {
        l = n;
    }
    if (l > in->len - hdr)
        return -1;
    val->p = in->p + hdr;
    val->len = l;
    in->p += hdr + l;
    in->len -= hdr + l;
    return 0;
}

static int der_expect(struct der *in, uint8_t want, struct der *val)
{
    uint8_t tag;

    if (der_next(in, &tag, val) < 0 || tag != want)
        return -1;
    return 0;
}

static int digits(const uint8_t *p, size_t n, int *out)
{
    int v = 0;

    for (size_t i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9')
            return -1;
        v = v * 10 + (p[i] - '0');
    }
    *out = v;
    return 0;
}

/* Days from 1970-01-01 to y-m-d (proleptic Gregorian), after H. Hinnant's days_from_civil. */
static int64_t days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

/* UTCTime YYMMDDHHMMSSZ or GeneralizedTime YYYYMMDDHHMMSSZ (RFC 5280 4.1.2.5) to epoch seconds. */
static int der_time(uint8_t tag, struct der v, int64_t *out)
{
    static const uint8_t mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int y, mo, d, h, mi, s;
    size_t yl;

    if (tag == 0x17 && v.len == 13)
        yl = 2;
    else if (tag == 0x18 && v.len == 15)
        yl = 4;
    else
        return -1;
    if (v.p[v.len - 1] != 'Z' || digits(v.p, yl, &y) < 0 || digits(v.p + yl, 2, &mo) < 0 ||
        digits(v.p + yl + 2, 2, &d) < 0 || digits(v.p + yl + 4, 2, &h) < 0 ||
        digits(v.p + yl + 6, 2, &mi) < 0 || digits(v.p + yl + 8, 2, &s) < 0)
        return -1;
    if (yl == 2)
        y += y >= 50 ? 1900 : 2000;
    if (mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1] || h > 23 || mi > 59 || s > 59)
        return -1;
    *out = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + s;
    return 0;
}

static const uint8_t oid_san[] = {0x55, 0x1d, 0x11};
static const uint8_t oid_bc[] = {0x55, 0x1d, 0x13};

static int parse_san(struct der v, struct nd_ca_cert_info *out)
{
    struct der seq, gn;
    uint8_t tag;

    if (der_expect(&v, 0x30, &seq) < 0 || v.len != 0)
        return -1;
    while (seq.len) {
        if (der_next(&seq, &tag, &gn) < 0)
            return -1;
        if (tag == 0x86) { /* uniformResourceIdentifier */
            if (gn.len == 0 || memchr(gn.p, 0, gn.len))
                return -1;
            if (out->n_uri++ == 0) {
                out->uri = (const char *)gn.p;
                out->uri_len = gn.len;
            }
        } else if (tag == 0x82) { /* dNSName */
            out->n_dns++;
        }
    }
    return 0;
}

static int parse_bc(struct der v, struct nd_ca_cert_info *out)
{
    struct der seq, b;
    uint8_t tag;

    if (der_expect(&v, 0x30, &seq) < 0 || v.len != 0)
        return -1;
    if (seq.len && seq.p[0] == 0x01) {
        if (der_next(&seq, &tag, &b) < 0 || b.len != 1)
            return -1;
        out->is_ca = b.p[0] != 0;
    }
    return 0;
}

static int parse_extensions(struct der exts, struct nd_ca_cert_info *out)
{
    struct der seq, ext, oid, val;
    bool seen_san = false, seen_bc = false;
    uint8_t tag;

    if (der_expect(&exts, 0x30, &seq) < 0 || exts.len != 0)
        return -1;
    while (seq.len) {
        if (der_expect(&seq, 0x30, &ext) < 0 || der_expect(&ext, 0x06, &oid) < 0)
            return -1;
        if (der_next(&ext, &tag, &val) < 0)
            return -1;
        if (tag == 0x01 && der_next(&ext, &tag, &val) < 0) /* critical */
            return -1;
        if (tag != 0x04 || ext.len != 0)
            return -1;
        if (oid.len == sizeof(oid_san) && memcmp(oid.p, oid_san, oid.len) == 0) {
            if (seen_san || parse_san(val, out) < 0) /* each extension at most once */
                return -1;
            seen_san = true;
        } else if (oid.len == sizeof(oid_bc) && memcmp(oid.p, oid_bc, oid.len) == 0) {
            if (seen_bc || parse_bc(val, out) < 0)
                return -1;
            seen_bc = true;
        }
    }
    return 0;
}

int nd_ca_cert_parse(const uint8_t *der, size_t len, struct nd_ca_cert_info *out)
{
    struct der in = {der, len}, cert, tbs, v, validity;
    uint8_t tag, t1, t2;
    struct der tv1, tv2;

    memset(out, 0, sizeof(*out));
    if (!der || der_expect(&in, 0x30, &cert) < 0 || in.len != 0)
        return -1;
    if (der_expect(&cert, 0x30, &tbs) < 0)
        return -1;
    if (tbs.len && tbs.p[0] == 0xa0 && der_next(&tbs, &tag, &v) < 0) /* version */
        return -1;
    if (der_expect(&tbs, 0x02, &v) < 0 || der_expect(&tbs, 0x30, &v) < 0 || /* serial, sigalg */
        der_expect(&tbs, 0x30, &v) < 0 || der_expect(&tbs, 0x30, &validity) < 0) /* issuer */
        return -1;
    if (der_next(&validity, &t1, &tv1) < 0 || der_next(&validity, &t2, &tv2) < 0 ||
        validity.len != 0 || der_time(t1, tv1, &out->not_before) < 0 ||
        der_time(t2, tv2, &out->not_after) < 0)
        return -1;
    if (der_expect(&tbs, 0x30, &v) < 0) /* subject */
        return -1;
    out->spki = tbs.p;
    if (der_expect(&tbs, 0x30, &v) < 0)
        return -1;
    out->spki_len = (size_t)(tbs.p - out->spki);
    while (tbs.len) {
        if (der_next(&tbs, &tag, &v) < 0)
            return -1;
        if (tag == 0xa3)
            return tbs.len == 0 ? parse_extensions(v, out) : -1;
        if (tag != 0x81 && tag != 0x82) /* issuerUniqueID, subjectUniqueID */
            return -1;
    }
    return 0;
}

/* ---- basicConstraints criticality
 * --------------------------------------------------------------*/

static size_t hdr_len(size_t n)
{
    return n < 0x80 ? 2 : n < 0x100 ? 3 : n < 0x10000 ? 4 : 5;
}

static uint8_t *put_hdr(uint8_t *p, uint8_t tag, size_t n)
{
    *p++ = tag;
    if (n < 0x80) {
        *p++ = (uint8_t)n;
    } else if (n < 0x100) {
        *p++ = 0x81;
        *p++ = (uint8_t)n;
    } else if (n < 0x10000) {
        *p++ = 0x82;
        *p++ = (uint8_t)(n >> 8);
        *p++ = (uint8_t)n;
    } else {
        *p++ = 0x83;
        *p++ = (uint8_t)(n >> 16);
        *p++ = (uint8_t)(n >> 8);
        *p++ = (uint8_t)n;
    }
    return p;
}

long nd_ca_tbs_bc_critical(uint8_t *buf, size_t len, size_t cap, uint8_t *scratch)
{
    static const uint8_t crit[] = {0x01, 0x01, 0xff}; /* BOOLEAN TRUE */
    struct der in = {buf, len}, body, t, a3 = {NULL, 0}, exts, seq, ext, oid, val, v;
    const uint8_t *a3_s = NULL, *a3_e = NULL, *bc_s = NULL, *bc_e = NULL, *oid_e = NULL;
    size_t l_bc, l_exts, l_a3, l_tbs, total;
    uint8_t tag, *o;

    if (der_expect(&in, 0x30, &body) < 0 || in.len != 0)
        return -1;
    for (t = body; t.len;) {
        const uint8_t *s = t.p;
        if (der_next(&t, &tag, &v) < 0)
            return -1;
        if (tag == 0xa3) {
            a3_s = s;
            a3_e = t.p;
            a3 = v;
        }
    }
    if (!a3_s || der_expect(&a3, 0x30, &exts) < 0 || a3.len != 0)
        return -1;
    for (seq = exts; seq.len;) {
        const uint8_t *s = seq.p;
        if (der_expect(&seq, 0x30, &ext) < 0 || der_expect(&ext, 0x06, &oid) < 0)
            return -1;
        if (oid.len != sizeof(oid_bc) || memcmp(oid.p, oid_bc, oid.len) != 0)
            continue;
        if (ext.len && ext.p[0] == 0x01)
            return (long)len; /* already carries a critical flag */
        if (bc_s || der_expect(&ext, 0x04, &val) < 0 || ext.len != 0)
            return -1;
        bc_s = s;
        bc_e = seq.p;
        oid_e = oid.p + oid.len;
    }
    if (!bc_s)
        return (long)len;
    {
        /* content of the old extension SEQUENCE starts after its header */
        struct der old = {bc_s, (size_t)(bc_e - bc_s)}, oc;
        if (der_expect(&old, 0x30, &oc) < 0)
            return -1;
        l_bc = oc.len + sizeof(crit);
        l_exts = exts.len - (size_t)(bc_e - bc_s) + hdr_len(l_bc) + l_bc;
        l_a3 = hdr_len(l_exts) + l_exts;
        l_tbs = (size_t)(a3_s - body.p) + hdr_len(l_a3) + l_a3 + (size_t)(body.p + body.len - a3_e);
        total = hdr_len(l_tbs) + l_tbs;
        if (total > cap)
            return -1;
        o = put_hdr(scratch, 0x30, l_tbs);
        memcpy(o, body.p, (size_t)(a3_s - body.p));
        o += a3_s - body.p;
        o = put_hdr(o, 0xa3, l_a3);
        o = put_hdr(o, 0x30, l_exts);
        memcpy(o, exts.p, (size_t)(bc_s - exts.p));
        o += bc_s - exts.p;
        o = put_hdr(o, 0x30, l_bc);
        memcpy(o, oc.p, (size_t)(oid_e - oc.p)); /* the OID */
        o += oid_e - oc.p;
        memcpy(o, crit, sizeof(crit));
        o += sizeof(crit);
        memcpy(o, oid_e, (size_t)(bc_e - oid_e)); /* the OCTET STRING */
        o += bc_e - oid_e;
        memcpy(o, bc_e, (size_t)(exts.p + exts.len - bc_e));
        o += exts.p + exts.len - bc_e;
        memcpy(o, a3_e, (size_t)(body.p + body.len - a3_e));
        o += body.p + body.len - a3_e;
    }
    if ((size_t)(o - scratch) != total)
        return -1;
    memcpy(buf, scratch, total);
    return (long)total;
}
