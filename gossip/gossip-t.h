/*
 * Gossip wire layer: types only (limits, result codes, message structs). Functions are in
 * wire.h (memberlist messages and packet framing), lzw.h, keyring.h and serf.h.
 *
 * Every byte string in a decoded struct points into the buffer that was decoded (or into the
 * caller's scratch buffer for decompressed or decrypted data) and stays valid as long as it.
 * Nothing here allocates.
 */
#ifndef NODUS_GOSSIP_T_H
#define NODUS_GOSSIP_T_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Limits. Inputs beyond them are refused with ND_GOSSIP_E_LIMIT; encoders refuse them too. */
#define ND_GOSSIP_META_MAX 512u     /* alive / node state Meta (memberlist MetaMaxSize) */
#define ND_GOSSIP_NAME_MAX 512u     /* node names (Node, Name, From, SourceNode); ours */
#define ND_GOSSIP_VSN_LEN 6u        /* Vsn: pmin, pmax, pcur, dmin, dmax, dcur */
#define ND_GOSSIP_COMPOUND_MAX 127u /* parts we put in one compound message */
#define ND_GOSSIP_PART_MAX 65535u   /* bytes in one compound part (u16 length) */
#define ND_GOSSIP_NEST_MAX 4u       /* crc/compress/compound layers around one message */
#define ND_GOSSIP_STREAM_MAX (20u * 1024 * 1024) /* TCP message (memberlist maxPushStateBytes) */
#define ND_GOSSIP_PUSHPULL_NODES_MAX 65536u      /* node states in one push/pull */
#define ND_GOSSIP_KEYRING_MAX 16u                /* keys in a keyring */

/* Crypto framing (memberlist security.go, encryption version 1). */
#define ND_GOSSIP_NONCE_LEN 12u
#define ND_GOSSIP_TAG_LEN 16u
#define ND_GOSSIP_CRYPT_OVERHEAD (1u + ND_GOSSIP_NONCE_LEN + ND_GOSSIP_TAG_LEN) /* 29 */

/* memberlist message types: the first byte of every packet, stream and compound part. */
enum nd_gossip_type {
    ND_GOSSIP_PING = 0,
    ND_GOSSIP_INDIRECT_PING = 1,
    ND_GOSSIP_ACK = 2,
    ND_GOSSIP_SUSPECT = 3,
    ND_GOSSIP_ALIVE = 4,
    ND_GOSSIP_DEAD = 5,
    ND_GOSSIP_PUSH_PULL = 6,
    ND_GOSSIP_COMPOUND = 7,
    ND_GOSSIP_USER = 8,
    ND_GOSSIP_COMPRESS = 9,
    ND_GOSSIP_ENCRYPT = 10,
    ND_GOSSIP_NACK = 11,
    ND_GOSSIP_HAS_CRC = 12,
    ND_GOSSIP_ERR = 13,
};

/* Node states in a push/pull (memberlist NodeStateType). */
enum nd_gossip_state {
    ND_GOSSIP_STATE_ALIVE = 0,
    ND_GOSSIP_STATE_SUSPECT = 1,
    ND_GOSSIP_STATE_DEAD = 2,
    ND_GOSSIP_STATE_LEFT = 3,
};

/* Result codes: 0 is success, errors are negative. nd_gossip_strerror() names them. */
enum nd_gossip_err {
    ND_GOSSIP_OK = 0,
    ND_GOSSIP_E_TRUNC = -1,     /* input ends early (on a stream: read more and retry) */
    ND_GOSSIP_E_TYPE = -2,      /* a msgpack value of a type the field does not accept */
    ND_GOSSIP_E_RANGE = -3,     /* an integer out of range for its field */
    ND_GOSSIP_E_LIMIT = -4,     /* a size or count above one of the limits above */
    ND_GOSSIP_E_VALUE = -5,     /* well-typed but invalid (Addr of 5 bytes, Vsn of 3, ...) */
    ND_GOSSIP_E_MSGTYPE = -6,   /* unknown or unexpected message type byte */
    ND_GOSSIP_E_SPACE = -7,     /* the output buffer is too small */
    ND_GOSSIP_E_EMPTY = -8,     /* an empty message or part where one is required */
    ND_GOSSIP_E_CRC = -9,       /* hasCrc checksum mismatch */
    ND_GOSSIP_E_LZW = -10,      /* corrupt LZW stream or unknown compression algorithm */
    ND_GOSSIP_E_DECRYPT = -11,  /* no key of the keyring authenticates the message */
    ND_GOSSIP_E_KEY = -12,      /* bad key (size, base64), or key not in the keyring */
    ND_GOSSIP_E_CRYPTO = -13,   /* the crypto library failed */
    ND_GOSSIP_E_PLAIN = -14,    /* plaintext received while a keyring requires encryption */
    ND_GOSSIP_E_TRAILING = -15, /* bytes left after a message that must end the input */
};

/* A byte string inside some buffer; not NUL-terminated. For encoders, p == NULL with len 0
 * means Go's nil slice (msgpack nil), p != NULL with len 0 an empty string. */
struct nd_gbytes {
    const uint8_t *p;
    uint32_t len;
};

/* ping (0). SourceAddr/Port/Node are omitted on the wire when empty / 0. */
struct nd_gossip_ping {
    uint32_t seq_no;
    struct nd_gbytes node;        /* target's name, may be empty */
    struct nd_gbytes source_addr; /* 0, 4 or 16 bytes */
    uint16_t source_port;
    struct nd_gbytes source_node;
};

/* indirectPing (1). */
struct nd_gossip_indirect_ping {
    uint32_t seq_no;
    struct nd_gbytes target; /* 4 or 16 bytes */
    uint16_t port;
    struct nd_gbytes node;
    bool nack;
    struct nd_gbytes source_addr; /* 0, 4 or 16 bytes; omitted when empty */
    uint16_t source_port;         /* omitted when 0 */
    struct nd_gbytes source_node; /* omitted when empty */
};

/* ack (2); payload may be empty (serf: [1][msgpack coordinate]). */
struct nd_gossip_ack {
    uint32_t seq_no;
    struct nd_gbytes payload;
};

/* nack (11). */
struct nd_gossip_nack {
    uint32_t seq_no;
};

/* suspect (3) and dead (5): the same fields. */
struct nd_gossip_suspect {
    uint32_t incarnation;
    struct nd_gbytes node;
    struct nd_gbytes from;
};

/* alive (4). */
struct nd_gossip_alive {
    uint32_t incarnation;
    struct nd_gbytes node;
    struct nd_gbytes addr; /* 4 or 16 bytes */
    uint16_t port;
    struct nd_gbytes meta; /* at most ND_GOSSIP_META_MAX bytes */
    uint8_t vsn[ND_GOSSIP_VSN_LEN];
    bool has_vsn; /* decode: Vsn was present (absent or nil leaves vsn zero); encode: ignored,
                   * all six bytes are always sent */
};

/* err (13). */
struct nd_gossip_errmsg {
    struct nd_gbytes error;
};

/* One decoded (or to-be-encoded) message of a type that stands alone in a packet. */
struct nd_gossip_msg {
    uint8_t type; /* enum nd_gossip_type: PING..DEAD, USER, NACK, ERR */
    union {
        struct nd_gossip_ping ping;
        struct nd_gossip_indirect_ping indirect_ping;
        struct nd_gossip_ack ack;
        struct nd_gossip_nack nack;
        struct nd_gossip_suspect suspect; /* SUSPECT */
        struct nd_gossip_suspect dead;    /* DEAD */
        struct nd_gossip_alive alive;
        struct nd_gossip_errmsg err;
        struct nd_gbytes user; /* USER on a packet: the raw bytes after the type byte */
    } u;
};

/* push/pull (6) header; node states and the user state follow it on the stream. */
struct nd_gossip_pushpull {
    uint32_t nodes;          /* <= ND_GOSSIP_PUSHPULL_NODES_MAX */
    uint32_t user_state_len; /* <= ND_GOSSIP_STREAM_MAX */
    bool join;
};

/* One node state of a push/pull (memberlist pushNodeState). */
struct nd_gossip_node_state {
    struct nd_gbytes name;
    struct nd_gbytes addr; /* 4 or 16 bytes */
    uint16_t port;
    struct nd_gbytes meta;
    uint32_t incarnation;
    uint8_t state; /* enum nd_gossip_state */
    uint8_t vsn[ND_GOSSIP_VSN_LEN];
    bool has_vsn;
};

/* A whole TCP message after decryption, decompression and framing (nd_gossip_stream_parse). */
struct nd_gossip_stream_msg {
    uint8_t type;          /* PING, ACK, PUSH_PULL, USER or ERR */
    bool encrypted;        /* it came in an encrypt frame */
    bool compressed;       /* it came in a compress frame */
    size_t consumed;       /* bytes of the input this message took */
    struct nd_gbytes body; /* msgpack after the type byte: the whole message for PING, ACK, ERR */
    /* PUSH_PULL: header, the node states (body.p + states_off, states_len bytes: decode them
     * with nd_gossip_node_states_next) and the user state. */
    struct nd_gossip_pushpull pp;
    uint32_t states_off, states_len;
    /* PUSH_PULL user state, or USER: the user message bytes */
    struct nd_gbytes user;
};

/* Keyring: keys[0] is the primary (the one that encrypts); decryption tries each in order. */
struct nd_keyring {
    uint8_t keys[ND_GOSSIP_KEYRING_MAX][32];
    uint8_t lens[ND_GOSSIP_KEYRING_MAX]; /* 16, 24 or 32 */
    uint32_t n;
};

#endif
