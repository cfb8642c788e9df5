/* Mesh CA: key generation, certificate issuance and the CA directory (see ca.h). */
#include "ca.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <wolfssl/options.h>
#include <wolfssl/wolfcrypt/settings.h>
#include <wolfssl/wolfcrypt/asn_public.h>
#include <wolfssl/wolfcrypt/ecc.h>
#include <wolfssl/wolfcrypt/error-crypt.h>
#include <wolfssl/wolfcrypt/random.h>
#include <wolfssl/wolfcrypt/wc_port.h>

#include "config.h" /* nd_parse_duration */

#define CA_PEM_MAX (256u * 1024) /* ca.pem: a chain of a few certificates */
#define KEY_PEM_MAX (16u * 1024)
#define DER_MAX 8192 /* one certificate we issue: names, SANs, signature */
#define PEM_MAX (DER_MAX * 2)
#define KEY_DER_MAX 512
#define CHAIN_MAX 8 /* certificates in ca.pem */

struct nd_ca {
    ecc_key key;
    bool key_init;
    uint8_t *der; /* the signing certificate */
    size_t der_len;
    char *chain; /* PEM: signing certificate, then its issuers */
    size_t chain_len;
    char *issued_chain; /* PEM appended to issued certificates: the chain without the root */
    size_t issued_chain_len;
    char *root; /* PEM: the last certificate of the chain */
    size_t root_len;
    int64_t not_after;
    char td[ND_CA_TD_MAX + 1];
};

__attribute__((format(printf, 3, 4))) static int fail(char *err, size_t errlen, const char *fmt,
                                                      ...)
{
    va_list ap;

    if (err && errlen) {
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return -1;
}

static pthread_once_t wolf_once = PTHREAD_ONCE_INIT;
static void wolf_init(void)
{
    wolfCrypt_Init();
}

/* ---- files
 * -------------------------------------------------------------------------------------*/

int nd_ca_write_file(const char *path, const void *data, size_t len, unsigned mode)
{
    char tmp[PATH_MAX], dir[PATH_MAX];
    const char *p = data, *slash;
    int fd, dfd, e = 0;

    if (snprintf(tmp, sizeof(tmp), "%s.tmpXXXXXX", path) >= (int)sizeof(tmp))
        return -ENAMETOOLONG;
    fd = mkstemp(tmp); /* O_EXCL, mode 0600: a key is never readable by others, even briefly */
    if (fd < 0)
        return -errno;
    if (fchmod(fd, mode) < 0)
        e = -errno;
    while (!e && len) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            e = n < 0 ? -errno : -EIO;
            break;
        }
        p += n;
        len -= (size_t)n;
    }
    if (!e && fsync(fd) < 0)
        e = -errno;
    if (close(fd) < 0 && !e)
        e = -errno;
    if (!e && rename(tmp, path) < 0)
        e = -errno;
    if (e) {
        unlink(tmp);
        return e;
    }
    slash = strrchr(path, '/');
    if (!slash)
        snprintf(dir, sizeof(dir), ".");
    else if (slash == path)
        snprintf(dir, sizeof(dir), "/");
    else
        snprintf(dir, sizeof(dir), "%.*s", (int)(slash - path), path);
    dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        fsync(dfd); /* the rename itself is durable */
        close(dfd);
    }
    return 0;
}

char *nd_ca_read_file(const char *path, size_t max, size_t *len)
{
    struct stat st;
    size_t got = 0;
    char *buf;
    int fd;

    fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0)
        return NULL;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        int e = S_ISREG(st.st_mode) ? errno : EINVAL;
        close(fd);
        errno = e;
        return NULL;
    }
    if ((uint64_t)st.st_size > max) {
        close(fd);
        errno = EFBIG;
        return NULL;
    }
    buf = malloc((size_t)st.st_size + 1);
    if (!buf) {
        close(fd);
        errno = ENOMEM;
        return NULL;
    }
    while (got < (size_t)st.st_size) {
        ssize_t n = read(fd, buf + got, (size_t)st.st_size - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    close(fd);
    buf[got] = '\0';
    if (len)
        *len = got;
    return buf;
}

/* Frees a buffer that held key material. */
static void free_secret(void *p, size_t len)
{
    if (p) {
        explicit_bzero(p, len);
        free(p);
    }
}

/* ---- TTL
 * ---------------------------------------------------------------------------------------*/

int nd_ca_parse_ttl(const char *s, uint64_t *seconds)
{
    const uint64_t max = 100ull * 366 * 86400;
    uint64_t v = 0, ms;
    size_t n;

    if (!s || !*s)
        return -1;
    n = strlen(s);
    if (s[n - 1] == 'd') { /* days: not a unit of nd_parse_duration() */
        for (size_t i = 0; i + 1 < n; i++) {
            if (s[i] < '0' || s[i] > '9' || v > max / 86400)
                return -1;
            v = v * 10 + (uint64_t)(s[i] - '0');
        }
        if (n == 1 || v > max / 86400)
            return -1;
        v *= 86400;
    } else {
        if (nd_parse_duration(s, &ms) < 0)
            return -1;
        v = ms / 1000 + (ms % 1000 != 0);
    }
    if (v == 0 || v > max)
        return -1;
    *seconds = v;
    return 0;
}

/* ---- certificate building
 * ----------------------------------------------------------------------*/

/* RFC 5280 4.1.2.5: UTCTime through 2049, GeneralizedTime from 2050; tag and length included,
 * which is how wolfCrypt's Cert.beforeDate/afterDate take an explicit date. */
static int encode_time(int64_t t, uint8_t *out, int *outlen)
{
    struct tm tm;
    time_t tt = (time_t)t;
    char s[20];
    int n;

    if (t < 0 || !gmtime_r(&tt, &tm))
        return -1;
    if (tm.tm_year + 1900 < 2050)
        n = snprintf(s, sizeof(s), "%02d%02d%02d%02d%02d%02dZ", tm.tm_year % 100, tm.tm_mon + 1,
                     tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
    else if (tm.tm_year + 1900 <= 9999)
        n = snprintf(s, sizeof(s), "%04d%02d%02d%02d%02d%02dZ", tm.tm_year + 1900, tm.tm_mon + 1,
                     tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
    else
        return -1;
    out[0] = n == 13 ? 0x17 : 0x18;
    out[1] = (uint8_t)n;
    memcpy(out + 2, s, (size_t)n);
    *outlen = n + 2;
    return 0;
}

/* Appends a DER length to p (at most 3 bytes for what fits CTC_MAX_ALT_SIZE). */
static size_t der_len(uint8_t *p, size_t n)
{
    if (n < 0x80) {
        p[0] = (uint8_t)n;
        return 1;
    }
    if (n < 0x100) {
        p[0] = 0x81;
        p[1] = (uint8_t)n;
        return 2;
    }
    p[0] = 0x82;
    p[1] = (uint8_t)(n >> 8);
    p[2] = (uint8_t)n;
    return 3;
}

/* Builds the subjectAltName value (GeneralNames) by hand: wolfCrypt takes it raw in
 * Cert.altNames, which is how a URI SAN gets in (it has no setter for one). */
static int build_san(Cert *c, const char *uri, const char *const *dns, size_t n_dns)
{
    uint8_t body[CTC_MAX_ALT_SIZE];
    size_t blen = 0, ulen = strlen(uri), hl;

    if (ulen > ND_CA_SPIFFE_MAX)
        return -1;
    body[blen++] = 0x86; /* [6] uniformResourceIdentifier */
    blen += der_len(body + blen, ulen);
    memcpy(body + blen, uri, ulen);
    blen += ulen;
    for (size_t i = 0; i < n_dns; i++) {
        size_t l = strlen(dns[i]);
        if (blen + 3 + l > sizeof(body) - 4)
            return -1;
        body[blen++] = 0x82; /* [2] dNSName */
        blen += der_len(body + blen, l);
        memcpy(body + blen, dns[i], l);
        blen += l;
    }
    c->altNames[0] = 0x30;
    hl = 1 + der_len(c->altNames + 1, blen);
    if (hl + blen > sizeof(c->altNames))
        return -1;
    memcpy(c->altNames + hl, body, blen);
    c->altNamesSz = (int)(hl + blen);
    return 0;
}

static bool dns_name_ok(const char *s)
{
    size_t n = strlen(s), label = 0;

    if (n == 0 || n > ND_CA_DNS_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == '.') {
            if (label == 0)
                return false;
            label = 0;
        } else if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                   c == '-' || (c == '*' && i == 0 && s[1] == '.')) {
            if (++label > 63)
                return false;
        } else {
            return false;
        }
    }
    return label != 0;
}

static int set_serial(Cert *c, WC_RNG *rng)
{
    c->serialSz = 16;
    if (wc_RNG_GenerateBlock(rng, c->serial, 16) != 0)
        return -1;
    c->serial[0] = (uint8_t)((c->serial[0] & 0x7f) | 0x40); /* positive, 16 bytes, non-zero */
    return 0;
}

static int set_validity(Cert *c, int64_t nb, int64_t na)
{
    if (encode_time(nb, c->beforeDate, &c->beforeDateSz) < 0 ||
        encode_time(na, c->afterDate, &c->afterDateSz) < 0)
        return -1;
    return 0;
}

static void set_name(CertName *n, const char *cn)
{
    snprintf(n->org, sizeof(n->org), "nodus mesh");
    snprintf(n->commonName, sizeof(n->commonName), "%s", cn);
}

/* Makes the certificate body and signs it with signer. Returns the DER length or -1. */
static int make_and_sign(Cert *c, ecc_key *subject_key, ecc_key *signer, WC_RNG *rng, uint8_t *der,
                         size_t cap)
{
    uint8_t *scratch;
    long body;
    int n;

    c->sigType = CTC_SHA256wECDSA;
    n = wc_MakeCert_ex(c, der, (word32)cap, ECC_TYPE, subject_key, rng);
    if (n <= 0)
        return -1;
    /* The generator writes basicConstraints without the critical flag: fix the body before it
     * is signed. The signature covers the re-encoded body. */
    scratch = malloc(cap);
    body = scratch ? nd_ca_tbs_bc_critical(der, (size_t)c->bodySz, cap - 128, scratch) : -1;
    free(scratch);
    if (body < 0)
        return -1;
    n = wc_SignCert_ex((int)body, c->sigType, der, (word32)cap, ECC_TYPE, signer, rng);
    return n > 0 ? n : -1;
}

/* PEM of a certificate; malloc'd, NUL-terminated. */
static char *cert_pem(const uint8_t *der, size_t len, size_t *pem_len)
{
    char *pem = malloc(PEM_MAX);
    int n;

    if (!pem)
        return NULL;
    n = wc_DerToPem(der, (word32)len, (byte *)pem, PEM_MAX - 1, CERT_TYPE);
    if (n <= 0) {
        free(pem);
        return NULL;
    }
    pem[n] = '\0';
    *pem_len = (size_t)n;
    return pem;
}

/* PEM ("EC PRIVATE KEY") of a key; malloc'd, to be released with free_secret(KEY_PEM_MAX). */
static char *key_pem(ecc_key *key, size_t *pem_len)
{
    uint8_t der[KEY_DER_MAX];
    char *pem = malloc(KEY_PEM_MAX);
    int n;

    if (!pem)
        return NULL;
    n = wc_EccKeyToDer(key, der, sizeof(der));
    if (n > 0)
        n = wc_DerToPem(der, (word32)n, (byte *)pem, KEY_PEM_MAX - 1, ECC_PRIVATEKEY_TYPE);
    explicit_bzero(der, sizeof(der));
    if (n <= 0) {
        free_secret(pem, KEY_PEM_MAX);
        return NULL;
    }
    pem[n] = '\0';
    *pem_len = (size_t)n;
    return pem;
}

static int new_key(ecc_key *key, WC_RNG *rng)
{
    if (wc_ecc_init(key) != 0)
        return -1;
    if (wc_ecc_make_key_ex(rng, 32, key, ECC_SECP256R1) != 0) {
        wc_ecc_free(key);
        return -1;
    }
    return 0;
}

static int64_t now_s(void)
{
    return (int64_t)time(NULL);
}

/* ---- CA directory
 * ------------------------------------------------------------------------------*/

static int path_in(char *buf, size_t len, const char *dir, const char *name)
{
    return snprintf(buf, len, "%s/%s", dir, name) < (int)len ? 0 : -1;
}

static int prepare_dir(const char *dir, bool force, char *err, size_t errlen)
{
    char kp[PATH_MAX];

    if (mkdir(dir, 0700) < 0 && errno != EEXIST)
        return fail(err, errlen, "%s: %s", dir, strerror(errno));
    if (path_in(kp, sizeof(kp), dir, "ca.key") < 0)
        return fail(err, errlen, "%s: path too long", dir);
    if (!force && access(kp, F_OK) == 0)
        return fail(err, errlen, "%s exists: refusing to replace a CA key", kp);
    return 0;
}

/* Writes DIR/ca.key then DIR/ca.pem. */
static int write_ca_dir(const char *dir, const char *kpem, size_t klen, const char *cpem,
                        size_t clen, char *err, size_t errlen)
{
    char kp[PATH_MAX], cp[PATH_MAX];
    int e;

    if (path_in(kp, sizeof(kp), dir, "ca.key") < 0 || path_in(cp, sizeof(cp), dir, "ca.pem") < 0)
        return fail(err, errlen, "%s: path too long", dir);
    e = nd_ca_write_file(kp, kpem, klen, 0600);
    if (e < 0)
        return fail(err, errlen, "%s: %s", kp, strerror(-e));
    e = nd_ca_write_file(cp, cpem, clen, 0644);
    if (e < 0) {
        unlink(kp);
        return fail(err, errlen, "%s: %s", cp, strerror(-e));
    }
    return 0;
}

int nd_ca_init(const char *dir, const struct nd_ca_init_opts *o, char *err, size_t errlen)
{
    char td_id[ND_CA_TD_MAX + 16], *cpem = NULL, *kpem = NULL;
    size_t clen = 0, klen = 0;
    const char *why = "";
    uint8_t *der = NULL;
    int64_t nb, na;
    ecc_key key;
    WC_RNG rng;
    Cert *c = NULL;
    int n, ret = -1;

    pthread_once(&wolf_once, wolf_init);
    if (!dir || !o || !o->trust_domain)
        return fail(err, errlen, "a directory and a trust domain are required");
    if (snprintf(td_id, sizeof(td_id), "spiffe://%s", o->trust_domain) >= (int)sizeof(td_id) ||
        strchr(o->trust_domain, '/') || nd_ca_spiffe_check(td_id, strlen(td_id), 0, NULL, &why) < 0)
        return fail(err, errlen, "invalid trust domain \"%.64s\": %s", o->trust_domain, why);
    if (o->common_name && strlen(o->common_name) >= CTC_NAME_SIZE)
        return fail(err, errlen, "common name longer than %d bytes", CTC_NAME_SIZE - 1);
    if (prepare_dir(dir, o->force, err, errlen) < 0)
        return -1;
    if (wc_InitRng(&rng) != 0)
        return fail(err, errlen, "random generator: initialisation failed");
    if (new_key(&key, &rng) < 0) {
        wc_FreeRng(&rng);
        return fail(err, errlen, "P-256 key generation failed");
    }
    c = calloc(1, sizeof(*c));
    der = malloc(DER_MAX);
    if (!c || !der || wc_InitCert(c) != 0) {
        fail(err, errlen, "out of memory");
        goto out;
    }
    nb = now_s() - ND_CA_BACKDATE;
    na = nb + ND_CA_BACKDATE + (int64_t)(o->ttl ? o->ttl : ND_CA_DEFAULT_CA_TTL);
    set_name(&c->subject, o->common_name ? o->common_name : "nodus mesh CA");
    c->isCA = 1;
    c->selfSigned = 1;
    if (set_serial(c, &rng) < 0 || set_validity(c, nb, na) < 0 ||
        wc_SetKeyUsage(c, "keyCertSign,cRLSign") != 0 ||
        wc_SetSubjectKeyIdFromPublicKey_ex(c, ECC_TYPE, &key) != 0 ||
        build_san(c, td_id, NULL, 0) < 0) {
        fail(err, errlen, "building the CA certificate failed");
        goto out;
    }
    n = make_and_sign(c, &key, &key, &rng, der, DER_MAX);
    if (n < 0) {
        fail(err, errlen, "signing the CA certificate failed");
        goto out;
    }
    cpem = cert_pem(der, (size_t)n, &clen);
    kpem = key_pem(&key, &klen);
    if (!cpem || !kpem) {
        fail(err, errlen, "PEM encoding failed");
        goto out;
    }
    ret = write_ca_dir(dir, kpem, klen, cpem, clen, err, errlen);
out:
    free_secret(kpem, KEY_PEM_MAX);
    free(cpem);
    free(der);
    free(c);
    wc_ecc_free(&key);
    wc_FreeRng(&rng);
    return ret;
}

/* The next "-----BEGIN CERTIFICATE-----" block in [p, end): its bounds, or false. */
static bool next_pem_cert(const char *p, const char *end, const char **b, const char **e)
{
    static const char begin[] = "-----BEGIN CERTIFICATE-----";
    static const char fin[] = "-----END CERTIFICATE-----";
    const char *s = memmem(p, (size_t)(end - p), begin, sizeof(begin) - 1), *f;

    if (!s)
        return false;
    f = memmem(s, (size_t)(end - s), fin, sizeof(fin) - 1);
    if (!f)
        return false;
    *b = s;
    *e = f + sizeof(fin) - 1;
    if (*e < end && **e == '\r')
        (*e)++;
    if (*e < end && **e == '\n')
        (*e)++;
    return true;
}

/* PEM private key -> P-256 ecc_key (initialised on success only). 0 or -1. */
static int decode_key(const char *pem, size_t len, ecc_key *key)
{
    uint8_t der[KEY_DER_MAX * 4];
    word32 idx = 0;
    int n, ret = -1;

    n = wc_KeyPemToDer((const byte *)pem, (int)len, der, sizeof(der), NULL);
    if (n > 0 && wc_ecc_init(key) == 0) {
        if (wc_EccPrivateKeyDecode(der, &idx, key, (word32)n) == 0 &&
            wc_ecc_get_curve_id(key->idx) == ECC_SECP256R1)
            ret = 0;
        else
            wc_ecc_free(key);
    }
    explicit_bzero(der, sizeof(der));
    return ret;
}

/* Does key's public half equal the SubjectPublicKeyInfo spki? */
static bool key_matches(ecc_key *key, const uint8_t *spki, size_t spki_len)
{
    uint8_t pub[256];
    int n = wc_EccPublicKeyToDer(key, pub, sizeof(pub), 1);

    return n > 0 && (size_t)n == spki_len && memcmp(pub, spki, spki_len) == 0;
}

int nd_ca_key_matches_cert(const char *key_pem, size_t key_len, const uint8_t *der, size_t der_len)
{
    struct nd_ca_cert_info info;
    ecc_key key;
    bool ok;

    if (nd_ca_cert_parse(der, der_len, &info) < 0 || decode_key(key_pem, key_len, &key) < 0)
        return -1;
    ok = key_matches(&key, info.spki, info.spki_len);
    wc_ecc_free(&key);
    return ok ? 0 : -1;
}

static int load_key(struct nd_ca *ca, const char *path, char *err, size_t errlen)
{
    size_t plen = 0;
    struct stat st;
    char *pem;
    int r;

    if (stat(path, &st) < 0)
        return fail(err, errlen, "%s: %s", path, strerror(errno));
    if (st.st_mode & 077)
        return fail(err, errlen, "%s is accessible by group or others (mode %04o): chmod 600", path,
                    (unsigned)(st.st_mode & 07777));
    pem = nd_ca_read_file(path, KEY_PEM_MAX, &plen);
    if (!pem)
        return fail(err, errlen, "%s: %s", path, strerror(errno));
    r = decode_key(pem, plen, &ca->key);
    free_secret(pem, plen);
    if (r < 0)
        return fail(err, errlen, "%s: not a PEM P-256 EC private key", path);
    ca->key_init = true;
    return 0;
}

static char *dup_range(const char *b, size_t n)
{
    char *s = malloc(n + 1);

    if (s) {
        memcpy(s, b, n);
        s[n] = '\0';
    }
    return s;
}

struct nd_ca *nd_ca_load(const char *dir, char *err, size_t errlen)
{
    char cp[PATH_MAX], kp[PATH_MAX];
    const char *b, *e, *p, *end, *first_b = NULL, *last_b = NULL, *last_e = NULL;
    struct nd_ca_cert_info info;
    size_t plen = 0, td_len;
    unsigned ncert = 0;
    struct nd_ca *ca;
    char *pem;
    int n;

    pthread_once(&wolf_once, wolf_init);
    if (!dir || path_in(cp, sizeof(cp), dir, "ca.pem") < 0 ||
        path_in(kp, sizeof(kp), dir, "ca.key") < 0) {
        fail(err, errlen, "bad CA directory");
        return NULL;
    }
    ca = calloc(1, sizeof(*ca));
    if (!ca) {
        fail(err, errlen, "out of memory");
        return NULL;
    }
    pem = nd_ca_read_file(cp, CA_PEM_MAX, &plen);
    if (!pem) {
        fail(err, errlen, "%s: %s", cp, strerror(errno));
        goto bad;
    }
    ca->chain = pem;
    ca->chain_len = plen;
    end = pem + plen;
    for (p = pem; next_pem_cert(p, end, &b, &e); p = e) {
        if (++ncert > CHAIN_MAX) {
            fail(err, errlen, "%s: more than %d certificates", cp, CHAIN_MAX);
            goto bad;
        }
        if (ncert == 1) {
            ca->der = malloc(DER_MAX);
            n = ca->der
                    ? wc_CertPemToDer((const byte *)b, (int)(e - b), ca->der, DER_MAX, CERT_TYPE)
                    : -1;
            if (n <= 0) {
                fail(err, errlen, "%s: the first certificate is not valid PEM", cp);
                goto bad;
            }
            ca->der_len = (size_t)n;
            first_b = b;
        }
        last_b = b;
        last_e = e;
    }
    if (ncert == 0) {
        fail(err, errlen, "%s: no certificate", cp);
        goto bad;
    }
    ca->root = dup_range(last_b, (size_t)(last_e - last_b));
    ca->root_len = (size_t)(last_e - last_b);
    /* Issued certificates carry the chain without the root (the peer has it): the signing
     * certificate and any intermediates above it, nothing for a root that signs directly. */
    ca->issued_chain_len = ncert > 1 ? (size_t)(last_b - first_b) : 0;
    ca->issued_chain = dup_range(ncert > 1 ? first_b : "", ca->issued_chain_len);
    if (!ca->root || !ca->issued_chain) {
        fail(err, errlen, "out of memory");
        goto bad;
    }
    if (nd_ca_cert_parse(ca->der, ca->der_len, &info) < 0 || !info.is_ca) {
        fail(err, errlen, "%s: the first certificate is not a CA certificate", cp);
        goto bad;
    }
    if (info.n_uri != 1 || nd_ca_spiffe_check(info.uri, info.uri_len, 0, &td_len, NULL) < 0 ||
        info.uri_len != td_len + 9) {
        fail(err, errlen, "%s: the CA certificate has no trust domain URI SAN (spiffe://TD)", cp);
        goto bad;
    }
    memcpy(ca->td, info.uri + 9, td_len);
    ca->td[td_len] = '\0';
    ca->not_after = info.not_after;
    if (load_key(ca, kp, err, errlen) < 0)
        goto bad;
    if (!key_matches(&ca->key, info.spki, info.spki_len)) {
        fail(err, errlen, "%s does not belong to the certificate in %s", kp, cp);
        goto bad;
    }
    return ca;
bad:
    nd_ca_free(ca);
    return NULL;
}

void nd_ca_free(struct nd_ca *ca)
{
    if (!ca)
        return;
    if (ca->key_init)
        wc_ecc_free(&ca->key);
    free(ca->der);
    free(ca->chain);
    free(ca->issued_chain);
    free(ca->root);
    explicit_bzero(ca, sizeof(*ca));
    free(ca);
}

const char *nd_ca_trust_domain(const struct nd_ca *ca)
{
    return ca->td;
}

const char *nd_ca_chain_pem(const struct nd_ca *ca, size_t *len)
{
    if (len)
        *len = ca->chain_len;
    return ca->chain;
}

const char *nd_ca_root_pem(const struct nd_ca *ca, size_t *len)
{
    if (len)
        *len = ca->root_len;
    return ca->root;
}

int64_t nd_ca_not_after(const struct nd_ca *ca)
{
    return ca->not_after;
}

void nd_ca_cred_free(struct nd_ca_cred *c)
{
    if (!c)
        return;
    free(c->cert);
    free_secret(c->key, c->key_len);
    memset(c, 0, sizeof(*c));
}

/* ---- issuing
 * -----------------------------------------------------------------------------------*/

/* Common part of nd_ca_issue() and nd_ca_issue_intermediate(): a certificate for a fresh key,
 * issued by ca. Fills out (cert: new certificate + append_chain ? issued chain). */
static int issue(const struct nd_ca *ca, bool is_ca, const char *cn, const char *uri,
                 const char *const *dns, size_t n_dns, int64_t nb, int64_t na, bool full_chain,
                 struct nd_ca_cred *out, char *err, size_t errlen)
{
    ecc_key key;
    WC_RNG rng;
    Cert *c = NULL;
    uint8_t *der = NULL;
    char *pem = NULL;
    size_t plen = 0, extra;
    const char *tail;
    int n, ret = -1;

    memset(out, 0, sizeof(*out));
    if (na > ca->not_after)
        return fail(err, errlen, "the validity would end after the CA's own: rotate the CA");
    if (na <= nb)
        return fail(err, errlen, "empty validity period");
    if (wc_InitRng(&rng) != 0)
        return fail(err, errlen, "random generator: initialisation failed");
    if (new_key(&key, &rng) < 0) {
        wc_FreeRng(&rng);
        return fail(err, errlen, "P-256 key generation failed");
    }
    c = calloc(1, sizeof(*c));
    der = malloc(DER_MAX);
    if (!c || !der || wc_InitCert(c) != 0) {
        fail(err, errlen, "out of memory");
        goto out;
    }
    set_name(&c->subject, cn);
    c->selfSigned = 0;
    c->isCA = is_ca;
    c->basicConstSet = 1; /* leaves say cA FALSE explicitly (X.509-SVID) */
    if (is_ca) {
        c->pathLen = 0;
        c->pathLenSet = 1;
    }
    if (wc_SetIssuerBuffer(c, ca->der, (int)ca->der_len) != 0 ||
        wc_SetAuthKeyIdFromCert(c, ca->der, (int)ca->der_len) != 0 ||
        wc_SetSubjectKeyIdFromPublicKey_ex(c, ECC_TYPE, &key) != 0 || set_serial(c, &rng) < 0 ||
        set_validity(c, nb, na) < 0 || build_san(c, uri, dns, n_dns) < 0 ||
        wc_SetKeyUsage(c, is_ca ? "keyCertSign,cRLSign" : "digitalSignature") != 0 ||
        (!is_ca && wc_SetExtKeyUsage(c, "serverAuth,clientAuth") != 0)) {
        fail(err, errlen, "building the certificate failed");
        goto out;
    }
    n = make_and_sign(c, &key, (ecc_key *)&ca->key, &rng, der, DER_MAX);
    if (n < 0 || !(pem = cert_pem(der, (size_t)n, &plen))) {
        fail(err, errlen, "signing the certificate failed");
        goto out;
    }
    tail = full_chain ? ca->chain : ca->issued_chain;
    extra = full_chain ? ca->chain_len : ca->issued_chain_len;
    out->cert = malloc(plen + extra + 1);
    out->key = key_pem(&key, &out->key_len);
    if (!out->cert || !out->key) {
        fail(err, errlen, "out of memory");
        goto out;
    }
    memcpy(out->cert, pem, plen);
    memcpy(out->cert + plen, tail, extra);
    out->cert_len = plen + extra;
    out->cert[out->cert_len] = '\0';
    out->not_before = nb;
    out->not_after = na;
    ret = 0;
out:
    if (ret < 0)
        nd_ca_cred_free(out);
    free(pem);
    free(der);
    free(c);
    wc_ecc_free(&key);
    wc_FreeRng(&rng);
    return ret;
}

int nd_ca_issue(const struct nd_ca *ca, const struct nd_ca_issue_opts *o, struct nd_ca_cred *out,
                char *err, size_t errlen)
{
    const char *why = "", *id, *seg;
    char cn[CTC_NAME_SIZE];
    size_t td_len, len;
    int64_t nb;

    if (!ca || !o || !out || !o->spiffe_id)
        return fail(err, errlen, "a SPIFFE ID is required");
    memset(out, 0, sizeof(*out));
    id = o->spiffe_id;
    len = strlen(id);
    if (nd_ca_spiffe_check(id, len, ND_CA_SPIFFE_WORKLOAD, &td_len, &why) < 0)
        return fail(err, errlen, "invalid SPIFFE ID: %s", why);
    if (td_len != strlen(ca->td) || memcmp(id + 9, ca->td, td_len) != 0)
        return fail(err, errlen, "the SPIFFE ID is not in the CA's trust domain %s", ca->td);
    if (o->n_dns > ND_CA_MAX_DNS || (o->n_dns && !o->dns))
        return fail(err, errlen, "at most %d DNS names", ND_CA_MAX_DNS);
    for (size_t i = 0; i < o->n_dns; i++)
        if (!o->dns[i] || !dns_name_ok(o->dns[i]))
            return fail(err, errlen, "invalid DNS name #%zu", i + 1);
    /* Subject CN: the last path segment (informational; identity is the URI SAN). */
    seg = strrchr(id, '/');
    snprintf(cn, sizeof(cn), "%s", seg + 1);
    nb = o->not_before ? o->not_before : now_s() - ND_CA_BACKDATE;
    return issue(ca, false, cn, id, o->dns, o->n_dns, nb,
                 nb + (o->not_before ? 0 : ND_CA_BACKDATE) +
                     (int64_t)(o->ttl ? o->ttl : ND_CA_DEFAULT_TTL),
                 false, out, err, errlen);
}

int nd_ca_issue_intermediate(const struct nd_ca *ca, const char *dir,
                             const struct nd_ca_intermediate_opts *o, char *err, size_t errlen)
{
    const struct nd_ca_intermediate_opts none = {0};
    char td_id[ND_CA_TD_MAX + 16];
    struct nd_ca_cred cred;
    int64_t nb;
    int ret;

    if (!ca || !dir)
        return fail(err, errlen, "a CA and a directory are required");
    if (!o)
        o = &none;
    if (o->common_name && strlen(o->common_name) >= CTC_NAME_SIZE)
        return fail(err, errlen, "common name longer than %d bytes", CTC_NAME_SIZE - 1);
    if (prepare_dir(dir, false, err, errlen) < 0)
        return -1;
    snprintf(td_id, sizeof(td_id), "spiffe://%s", ca->td);
    nb = o->not_before ? o->not_before : now_s() - ND_CA_BACKDATE;
    if (issue(ca, true, o->common_name ? o->common_name : "nodus intermediate CA", td_id, NULL, 0,
              nb,
              nb + (o->not_before ? 0 : ND_CA_BACKDATE) + (int64_t)(o->ttl ? o->ttl : 365 * 86400),
              true, &cred, err, errlen) < 0)
        return -1;
    ret = write_ca_dir(dir, cred.key, cred.key_len, cred.cert, cred.cert_len, err, errlen);
    nd_ca_cred_free(&cred);
    return ret;
}

int nd_ca_cred_write(const struct nd_ca_cred *c, const char *prefix, char *err, size_t errlen)
{
    char cp[PATH_MAX], kp[PATH_MAX];
    int e;

    if (!c || !prefix || !c->cert || !c->key)
        return fail(err, errlen, "nothing to write");
    if (snprintf(cp, sizeof(cp), "%s.pem", prefix) >= (int)sizeof(cp) ||
        snprintf(kp, sizeof(kp), "%s.key", prefix) >= (int)sizeof(kp))
        return fail(err, errlen, "%s: path too long", prefix);
    e = nd_ca_write_file(kp, c->key, c->key_len, 0600);
    if (e < 0)
        return fail(err, errlen, "%s: %s", kp, strerror(-e));
    e = nd_ca_write_file(cp, c->cert, c->cert_len, 0644);
    if (e < 0)
        return fail(err, errlen, "%s: %s", cp, strerror(-e));
    return 0;
}
