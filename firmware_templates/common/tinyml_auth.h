/* Device authentication for the tinyml protocol (docs/protocol.md, "Device authentication"):
 * SHA-256 (FIPS 180-4), HMAC-SHA256 (RFC 2104) and the 8-byte MAC of AUTH_HELLO and AUTH_RESULT
 * frames. C99, no heap, no libc beyond <string.h>; tested against Python's hashlib and hmac. */
#ifndef TINYML_AUTH_H
#define TINYML_AUTH_H

#include <stddef.h>
#include <stdint.h>

#include "tinyml_proto.h"

#ifdef __cplusplus
extern "C" {
#endif

#define TINYML_AUTH_KEY_BYTES 32u

typedef struct {
    uint32_t h[8];
    uint64_t bytes;  /* message length so far */
    uint8_t block[64];
    uint8_t n;       /* bytes in block */
} tinyml_sha256_t;

void tinyml_sha256_init(tinyml_sha256_t *s);
void tinyml_sha256_update(tinyml_sha256_t *s, const uint8_t *data, size_t len);
void tinyml_sha256_final(tinyml_sha256_t *s, uint8_t digest[32]);

typedef struct {
    tinyml_sha256_t inner;
    uint8_t key_block[64]; /* the key, zero-padded (keys longer than 64 bytes hashed first) */
} tinyml_hmac_t;

void tinyml_hmac_init(tinyml_hmac_t *h, const uint8_t *key, size_t key_len);
void tinyml_hmac_update(tinyml_hmac_t *h, const uint8_t *data, size_t len);
void tinyml_hmac_final(tinyml_hmac_t *h, uint8_t mac[32]);

/* Fill msg->mac of an AUTH_HELLO or AUTH_RESULT with HMAC-SHA256(key, type | payload)[:8];
 * returns 0, or -1 (msg unchanged) for a message that carries no MAC or cannot be sent. */
int tinyml_auth_sign(tinyml_msg_t *msg, const uint8_t key[TINYML_AUTH_KEY_BYTES]);

#ifdef __cplusplus
}
#endif

#endif /* TINYML_AUTH_H */
