/* Between a TLS engine and a stream layer: see tls_layer.h. */
#include "tls_layer.h"

int nd_tls_layer_push_out(struct nodus_stream *s, struct nd_tls *t, uint64_t *count)
{
    size_t n;
    const void *p = nd_tls_out_peek(t, &n);

    if (!n)
        return 0;
    if (nodus_stream_push_out(s, p, n) < 0)
        return -1;
    nd_tls_out_consume(t, n);
    *count += n;
    return 0;
}

long nd_tls_layer_write(struct nodus_stream *s, struct nd_tls *t, const char *data, size_t len,
                        uint64_t *count)
{
    size_t done = 0;

    while (done < len) {
        long r = nd_tls_write(t, data + done, len - done);

        if (r > 0) {
            done += (size_t)r;
        } else if (r == ND_TLS_AGAIN) {
            size_t pending;

            nd_tls_out_peek(t, &pending);
            if (!pending)
                break;
        } else {
            return ND_TLS_LAYER_E_TLS;
        }
        if (nd_tls_layer_push_out(s, t, count) < 0)
            return -1;
    }
    return nd_tls_layer_push_out(s, t, count) < 0 ? -1 : (long)done;
}
