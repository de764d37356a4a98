/* Host test harness for tinyml_auth.c (run by tests/test_protocol_auth.py). stdin, one request a line:
 *   H <key hex> <data hex>   -> HMAC-SHA256 of data, hex (an empty data field is "-")
 *   D <data hex>             -> SHA-256 of data, hex
 *   S <key hex> <frame hex>  -> the frame decoded, signed with the key (tinyml_auth_sign) and
 *                               re-encoded, hex; "REFUSED" when it carries no MAC */
#include <stdio.h>
#include <string.h>

#include "tinyml_auth.h"

static uint8_t a[4096], b[4096];

static size_t unhex(const char *s, uint8_t *out, size_t cap)
{
    size_t n = 0;
    unsigned v;
    if (s[0] == '-') return 0;
    while (s[0] && s[1] && n < cap && sscanf(s, "%2x", &v) == 1) {
        out[n++] = (uint8_t)v;
        s += 2;
    }
    return n;
}

static void hex(const uint8_t *p, size_t n)
{
    size_t i;
    for (i = 0; i < n; i++) printf("%02x", p[i]);
    printf("\n");
}

int main(void)
{
    static char line[20000], x[10000], y[10000];
    char op;
    uint8_t out[32];
    while (fgets(line, sizeof line, stdin)) {
        x[0] = y[0] = 0;
        if (sscanf(line, "%c %9999s %9999s", &op, x, y) < 2) continue;
        if (op == 'D') {
            tinyml_sha256_t s;
            size_t n = unhex(x, a, sizeof a);
            tinyml_sha256_init(&s);
            tinyml_sha256_update(&s, a, n);
            tinyml_sha256_final(&s, out);
            hex(out, 32);
        } else if (op == 'H') {
            tinyml_hmac_t h;
            size_t nk = unhex(x, a, sizeof a), nd = unhex(y, b, sizeof b);
            tinyml_hmac_init(&h, a, nk);
            tinyml_hmac_update(&h, b, nd);
            tinyml_hmac_final(&h, out);
            hex(out, 32);
        } else if (op == 'S') {
            static uint8_t frame[TINYML_PROTO_MAX_FRAME];
            static tinyml_decoder_t dec;
            tinyml_msg_t msg;
            size_t nk = unhex(x, a, sizeof a), nf = unhex(y, b, sizeof b), i, len = 0;
            int got = 0;
            tinyml_decoder_init(&dec);
            for (i = 0; i < nf; i++)
                if (tinyml_decoder_feed(&dec, b[i], &msg) == TINYML_FEED_MSG) got = 1;
            if (!got || nk != TINYML_AUTH_KEY_BYTES || tinyml_auth_sign(&msg, a) != 0) {
                printf("REFUSED\n");
                continue;
            }
            len = tinyml_encode(&msg, frame, sizeof frame);
            hex(frame, len);
        }
    }
    return 0;
}
