/* SHA-256, HMAC-SHA256 and the protocol's frame MAC (tinyml_auth.h). Small rather than fast:
 * a device signs one RESULT per inference, a few hundred bytes. */
#include <string.h>

#include "tinyml_auth.h"

static const uint32_t K[64] = {
    0x428a2f98u, 0x71374491u, 0xb5c0fbcfu, 0xe9b5dba5u, 0x3956c25bu, 0x59f111f1u, 0x923f82a4u, 0xab1c5ed5u,
    0xd807aa98u, 0x12835b01u, 0x243185beu, 0x550c7dc3u, 0x72be5d74u, 0x80deb1feu, 0x9bdc06a7u, 0xc19bf174u,
    0xe49b69c1u, 0xefbe4786u, 0x0fc19dc6u, 0x240ca1ccu, 0x2de92c6fu, 0x4a7484aau, 0x5cb0a9dcu, 0x76f988dau,
    0x983e5152u, 0xa831c66du, 0xb00327c8u, 0xbf597fc7u, 0xc6e00bf3u, 0xd5a79147u, 0x06ca6351u, 0x14292967u,
    0x27b70a85u, 0x2e1b2138u, 0x4d2c6dfcu, 0x53380d13u, 0x650a7354u, 0x766a0abbu, 0x81c2c92eu, 0x92722c85u,
    0xa2bfe8a1u, 0xa81a664bu, 0xc24b8b70u, 0xc76c51a3u, 0xd192e819u, 0xd6990624u, 0xf40e3585u, 0x106aa070u,
    0x19a4c116u, 0x1e376c08u, 0x2748774cu, 0x34b0bcb5u, 0x391c0cb3u, 0x4ed8aa4au, 0x5b9cca4fu, 0x682e6ff3u,
    0x748f82eeu, 0x78a5636fu, 0x84c87814u, 0x8cc70208u, 0x90befffau, 0xa4506cebu, 0xbef9a3f7u, 0xc67178f2u};

static uint32_t ror(uint32_t x, unsigned n) { return (x >> n) | (x << (32u - n)); }

static void compress(tinyml_sha256_t *s)
{
    uint32_t w[64], a, b, c, d, e, f, g, h, t1, t2;
    unsigned i;
    for (i = 0; i < 16; i++) {
        w[i] = (uint32_t)s->block[4 * i] << 24 | (uint32_t)s->block[4 * i + 1] << 16 |
               (uint32_t)s->block[4 * i + 2] << 8 | s->block[4 * i + 3];
    }
    for (i = 16; i < 64; i++) {
        uint32_t s0 = ror(w[i - 15], 7) ^ ror(w[i - 15], 18) ^ (w[i - 15] >> 3);
        uint32_t s1 = ror(w[i - 2], 17) ^ ror(w[i - 2], 19) ^ (w[i - 2] >> 10);
        w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    a = s->h[0], b = s->h[1], c = s->h[2], d = s->h[3], e = s->h[4], f = s->h[5], g = s->h[6], h = s->h[7];
    for (i = 0; i < 64; i++) {
        t1 = h + (ror(e, 6) ^ ror(e, 11) ^ ror(e, 25)) + ((e & f) ^ (~e & g)) + K[i] + w[i];
        t2 = (ror(a, 2) ^ ror(a, 13) ^ ror(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
        h = g, g = f, f = e, e = d + t1, d = c, c = b, b = a, a = t1 + t2;
    }
    s->h[0] += a, s->h[1] += b, s->h[2] += c, s->h[3] += d, s->h[4] += e, s->h[5] += f, s->h[6] += g, s->h[7] += h;
}

void tinyml_sha256_init(tinyml_sha256_t *s)
{
    static const uint32_t H0[8] = {0x6a09e667u, 0xbb67ae85u, 0x3c6ef372u, 0xa54ff53au,
                                   0x510e527fu, 0x9b05688cu, 0x1f83d9abu, 0x5be0cd19u};
    memcpy(s->h, H0, sizeof H0);
    s->bytes = 0;
    s->n = 0;
}

void tinyml_sha256_update(tinyml_sha256_t *s, const uint8_t *data, size_t len)
{
    size_t i;
    for (i = 0; i < len; i++) {
        s->block[s->n++] = data[i];
        if (s->n == 64u) {
            compress(s);
            s->n = 0;
        }
    }
    s->bytes += len;
}

void tinyml_sha256_final(tinyml_sha256_t *s, uint8_t digest[32])
{
    uint64_t bits = s->bytes * 8u;
    unsigned i;
    s->block[s->n++] = 0x80u;
    if (s->n > 56u) {
        memset(s->block + s->n, 0, 64u - s->n);
        compress(s);
        s->n = 0;
    }
    memset(s->block + s->n, 0, 56u - s->n);
    for (i = 0; i < 8; i++) {
        s->block[56 + i] = (uint8_t)(bits >> (56 - 8 * i));
    }
    compress(s);
    for (i = 0; i < 32; i++) {
        digest[i] = (uint8_t)(s->h[i / 4] >> (24 - 8 * (i % 4)));
    }
}

static void pad_key(tinyml_sha256_t *s, const uint8_t key_block[64], uint8_t pad)
{
    uint8_t block[64];
    unsigned i;
    for (i = 0; i < 64; i++) {
        block[i] = key_block[i] ^ pad;
    }
    tinyml_sha256_init(s);
    tinyml_sha256_update(s, block, 64);
}

void tinyml_hmac_init(tinyml_hmac_t *h, const uint8_t *key, size_t key_len)
{
    memset(h->key_block, 0, sizeof h->key_block);
    if (key_len > 64u) {
        tinyml_sha256_init(&h->inner);
        tinyml_sha256_update(&h->inner, key, key_len);
        tinyml_sha256_final(&h->inner, h->key_block);
    } else if (key_len) {
        memcpy(h->key_block, key, key_len);
    }
    pad_key(&h->inner, h->key_block, 0x36u);
}

void tinyml_hmac_update(tinyml_hmac_t *h, const uint8_t *data, size_t len)
{
    tinyml_sha256_update(&h->inner, data, len);
}

void tinyml_hmac_final(tinyml_hmac_t *h, uint8_t mac[32])
{
    uint8_t inner[32];
    tinyml_sha256_t outer;
    tinyml_sha256_final(&h->inner, inner);
    pad_key(&outer, h->key_block, 0x5cu);
    tinyml_sha256_update(&outer, inner, sizeof inner);
    tinyml_sha256_final(&outer, mac);
    memset(h->key_block, 0, sizeof h->key_block);
}

static void hmac_byte(uint8_t byte, void *ctx)
{
    tinyml_hmac_update((tinyml_hmac_t *)ctx, &byte, 1);
}

int tinyml_auth_sign(tinyml_msg_t *msg, const uint8_t key[TINYML_AUTH_KEY_BYTES])
{
    tinyml_hmac_t h;
    uint8_t full[32];
    tinyml_hmac_init(&h, key, TINYML_AUTH_KEY_BYTES);
    if (!tinyml_mac_input_putc(msg, hmac_byte, &h)) {
        memset(&h, 0, sizeof h);
        return -1;
    }
    tinyml_hmac_final(&h, full);
    memcpy(msg->mac, full, TINYML_PROTO_MAC_BYTES);
    return 0;
}
