/* See tinyml_slope.h; mirrors slope_guard.Tables (tinyml/train/slope_guard.py) line by line, with its bounds:
 * T <= 2^8 and |x| = |q - q[0]| < 2^16, so every row product sum is below 2^54 and x.x << 20 below 2^60. */
#include "tinyml_slope.h"

#define BASIS_BITS 30
#define PROJ_BITS 10
#define F_BITS 8
#define F_KEEP 23
#define S_MAX ((int64_t)1 << 47)
#define Z_MAX ((int64_t)1 << 40)
#define D_MAX ((int64_t)1 << 31)

/* a / 2^sh rounded half up; >> of a negative value is arithmetic (GCC, Clang), as in tinyml_features_int.c */
static int64_t rshift_round(int64_t a, unsigned sh)
{
    return sh ? (a + ((int64_t)1 << (sh - 1u))) >> sh : a;
}

static unsigned bitlen(uint64_t u)
{
    unsigned n = 0;
    while (u) {
        n++;
        u >>= 1;
    }
    return n;
}

static int64_t clamp(int64_t v, int64_t lo, int64_t hi)
{
    return v < lo ? lo : v > hi ? hi : v;
}

/* row . x with x = q - q[0] (samples `stride` apart) */
static int64_t dot(const int32_t *row, const int16_t *q, uint32_t stride, unsigned t)
{
    int64_t acc = 0;
    for (unsigned i = 0; i < t; i++)
        acc += (int64_t)row[i] * ((int32_t)q[i * stride] - q[0]);
    return acc;
}

int64_t tinyml_slope_z(const tinyml_slope_config *cfg, const int16_t *q, uint32_t stride, uint32_t slot)
{
    unsigned t = cfg->window;
    int64_t energy = 0;
    for (unsigned i = 0; i < t; i++) {
        int32_t x = (int32_t)q[i * stride] - q[0];
        energy += (int64_t)x * x;
    }
    int64_t rss = energy << (2 * PROJ_BITS);
    for (unsigned j = 0; j < 3u; j++) {
        int64_t p = rshift_round(dot(cfg->basis + j * t, q, stride, t), BASIS_BITS - PROJ_BITS);
        rss -= p * p;
    }
    if (rss < 0)
        rss = 0;
    int64_t a = -1;
    unsigned best = 0;
    for (unsigned s = 0; s < cfg->switches; s++) {
        int64_t p = rshift_round(dot(cfg->switch_rows + s * t, q, stride, t), BASIS_BITS - PROJ_BITS);
        if (p * p > a) {
            a = p * p;
            best = s;
        }
    }
    int64_t rss_best = rss - a < 0 ? 0 : rss - a;
    unsigned b = bitlen((uint64_t)(a > rss_best ? a : rss_best)), r = b > F_KEEP ? b - F_KEEP : 0u;
    int take = (a >> r) * ((int64_t)(t - 5u) << F_BITS) > (rss_best >> r) * cfg->f_min;
    int64_t slope = take ? dot(cfg->switch_slope + best * t, q, stride, t) : dot(cfg->slope, q, stride, t);
    unsigned sh = cfg->sh[slot], pre = sh > 31u ? (sh - 31u > 62u ? 62u : sh - 31u) : 0u;
    int64_t d = clamp(rshift_round(slope - cfg->med[slot], pre), -D_MAX, D_MAX);
    return clamp(rshift_round(d * cfg->inv[slot], sh - pre), -Z_MAX, Z_MAX);
}

void tinyml_slope_reset(tinyml_slope_state *st)
{
    st->s = 0;
    st->started = 0;
}

void tinyml_slope_step(const tinyml_slope_config *cfg, tinyml_slope_state *st, const int16_t *q, uint32_t stride,
                       uint32_t slot)
{
    if (!st->started || slot != (st->last + 1u) % cfg->slots)
        st->s = 0;
    st->s = clamp(st->s + tinyml_slope_z(cfg, q, stride, slot) - cfg->k, 0, S_MAX);
    st->last = slot;
    st->started = 1;
}

uint32_t tinyml_slope_over(const tinyml_slope_config *cfg, const tinyml_slope_state *st)
{
    int64_t over = st->s - cfg->h;
    return over <= 0 ? 0u : over > (int64_t)UINT32_MAX ? UINT32_MAX : (uint32_t)over;
}
