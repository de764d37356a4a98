/* See tinyml_series.h; mirrors tinyml/data/features_series.py line by line. */
#include "tinyml_series.h"

/* a / 2^sh rounded half up; >> of a negative value is arithmetic (GCC, Clang), as in tinyml_features_int.c */
static int64_t rshift_round(int64_t a, unsigned sh)
{
    return sh ? (a + ((int64_t)1 << (sh - 1u))) >> sh : a;
}

#define DAY_MS 86400000u

/* start = (end - span) mod day, slot = floor((start * slots + day / 2) / day) mod slots, in 32 bits (some
 * cores' libgcc, Xtensa lx106, has no 64-bit division): with start = a1 * 10^4 + a0 and a1 * slots =
 * u * 8640 + v, the quotient is u + (v * 10^4 + a0 * slots + day / 2) / day; slots < 2^16 keeps each
 * term below 2^31. */
uint32_t tinyml_series_slot_ending(uint32_t slots, uint32_t end_ms, uint32_t span_ms)
{
    uint32_t start = (end_ms % DAY_MS + DAY_MS - span_ms % DAY_MS) % DAY_MS;
    uint32_t p = start / 10000u * slots;
    uint32_t rest = p % 8640u * 10000u + start % 10000u * slots + DAY_MS / 2u;
    return (p / 8640u + rest / DAY_MS) % slots;
}

void tinyml_series_reset(const tinyml_series_config *cfg, tinyml_series_state *st, uint32_t slot)
{
    for (uint32_t i = 0; i < (uint32_t)cfg->slots * cfg->channels; i++)
        st->profile[i] = 0;
    for (uint32_t s = 0; s < cfg->slots; s++)
        st->seen[s] = 0;
    for (uint32_t c = 0; c < cfg->channels; c++) {
        st->baseline[c] = 0;
        st->trend[c] = 0;
        st->scale[c] = 0;
    }
    st->slot = slot % cfg->slots;
    st->started = 0;
}

void tinyml_series_step(const tinyml_series_config *cfg, tinyml_series_state *st, const int64_t *means_q8,
                        int64_t *out)
{
    uint32_t s = st->slot;
    int seen = st->seen[s];
    uint32_t written = 0; /* values written per channel: the columns' bits */
    for (uint32_t j = 0; j < TINYML_SERIES_VALUES; j++)
        written += (cfg->columns >> j) & 1u;
    for (uint32_t c = 0; c < cfg->channels; c++) {
        int64_t big = means_q8[c] * 256; /* Q16; |m| < 2^23 */
        int64_t *prof = &st->profile[s * cfg->channels + c];
        if (!st->started)
            st->baseline[c] = big;
        int64_t resid = seen ? big - *prof : 0;
        int64_t mag = resid < 0 ? -resid : resid;
        st->trend[c] += rshift_round(resid - st->trend[c], cfg->trend_shift);
        st->scale[c] += rshift_round(mag - st->scale[c], cfg->scale_shift);
        int64_t value[TINYML_SERIES_VALUES] = {rshift_round(resid, 8), rshift_round(st->trend[c], 8),
                                               rshift_round(big - st->baseline[c], 8), rshift_round(st->scale[c], 8)};
        for (uint32_t j = 0, k = 0; j < TINYML_SERIES_VALUES; j++)
            if ((cfg->columns >> j) & 1u)
                out[c * written + k++] = value[j];
        *prof = seen ? *prof + rshift_round(big - *prof, cfg->profile_shift) : big;
        st->baseline[c] += rshift_round(big - st->baseline[c], cfg->baseline_shift);
    }
    st->seen[s] = 1;
    st->started = 1;
    st->slot = (s + 1u) % cfg->slots;
}
