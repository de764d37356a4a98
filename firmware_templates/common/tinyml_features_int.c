/* Integer features: see tinyml_features_int.h. Every helper has a namesake in
 * tinyml/data/features_int.py with the same rounding, saturation and order of operations. */
#include <string.h>

/* A single-precision FPU: sample conversion and the square root's start use it (same values). */
#if defined(__ARM_FP) && (__ARM_FP & 4)
#define SP_FPU 1
#else
#define SP_FPU 0
#endif

#include "tinyml_features_int.h"
#include "tinyml_features_int_config.h"

#define SAMPLE_MAX 32767
#define CAP ((int64_t)(((uint64_t)1 << 62) - 1u))
#define LOG_FRAC 16

/* ---------------------------------------------------------------- rounding and saturation */

static unsigned bitlen(uint64_t u)
{
#if defined(__GNUC__)
    return u ? 64u - (unsigned)__builtin_clzll(u) : 0u;
#else
    unsigned n = 0;
    while (u) {
        u >>= 1;
        n++;
    }
    return n;
#endif
}

/* a / 2^sh rounded half up; >> of a negative value is arithmetic (GCC, Clang). */
static int64_t rshift_round(int64_t a, unsigned sh)
{
    return sh ? (a + ((int64_t)1 << (sh - 1u))) >> sh : a;
}

/* a * 2^sh, sh of either sign: rounded below, saturated at +-CAP above. */
static int64_t shift_sat(int64_t a, int sh)
{
    if (sh < 0)
        return rshift_round(a, -sh > 62 ? 62u : (unsigned)-sh);
    unsigned up = sh > 62 ? 62u : (unsigned)sh;
    int64_t limit = CAP >> up;
    if (a > limit)
        return CAP;
    if (a < -limit)
        return -CAP;
    return a * ((int64_t)1 << up);
}

/* floor(n / d), d > 0. Some cores' libgcc (Xtensa lx106) has no 64-bit division: there it is
 * shift-and-subtract over the quotient's bits only. */
static uint64_t udiv64(uint64_t n, uint64_t d)
{
#if defined(__XTENSA__)
    uint64_t q = 0;
    if (n < d)
        return 0;
    unsigned k = bitlen(n) - bitlen(d);
    d <<= k;
    for (unsigned i = 0; i <= k; i++) {
        q <<= 1;
        if (n >= d) {
            n -= d;
            q |= 1u;
        }
        d >>= 1;
    }
    return q;
#else
    return n / d;
#endif
}

/* a / b rounded half away from zero (b > 0). */
static int64_t div_round(int64_t a, int64_t b)
{
    int64_t q = (int64_t)udiv64((uint64_t)(a < 0 ? -a : a) + (uint64_t)b / 2u, (uint64_t)b);
    return a < 0 ? -q : q;
}

/* num * 2^frac / den rounded (num >= 0, den > 0), normalised so nothing overflows; at most CAP. */
static int64_t ratio(int64_t num, int64_t den, unsigned frac)
{
    unsigned room = 62u - bitlen((uint64_t)num);
    unsigned up = frac < room ? frac : room;
    int64_t n = num << up, d = den >> (frac - up);
    if (d == 0)
        return num == 0 ? 0 : CAP;
    int64_t q = (int64_t)udiv64((uint64_t)(n + d / 2), (uint64_t)d);
    return q < CAP ? q : CAP;
}

static int64_t sat_add(int64_t a, int64_t b)
{
    int64_t s = a + b;
    return s < CAP ? s : CAP;
}

/* floor(sqrt(n)), n < 2^32, digit by digit (with a single-precision FPU: its square root,
 * corrected to the exact floor). */
static uint32_t isqrt32(uint32_t n)
{
#if SP_FPU
    uint32_t r = (uint32_t)__builtin_sqrtf((float)n);
    if (r > 65535u)
        r = 65535u;
    while (r * r > n)
        r--;
    while (r < 65535u && (r + 1u) * (r + 1u) <= n)
        r++;
    return r;
#else
    uint32_t res = 0, bit = (uint32_t)1 << 30;
    for (int i = 0; i < 16; i++) {
        if (n >= res + bit) {
            n -= res + bit;
            res = (res >> 1) + bit;
        } else {
            res >>= 1;
        }
        bit >>= 2;
    }
    return res;
#endif
}

/* sqrt(n), n < 2^63, to 16 significant bits: cut to 32 bits by an even shift. */
static int64_t isqrt(int64_t n)
{
    unsigned b = bitlen((uint64_t)n);
    unsigned sh = b > 32u ? b - 32u : 0u;
    sh += sh & 1u;
    return (int64_t)isqrt32((uint32_t)((uint64_t)n >> sh)) << (sh >> 1);
}

/* log2(max(u, 1)) in Q16: the exponent, then 16 fraction bits by repeated squaring. */
static int64_t log2_q16(int64_t u)
{
    if (u < 1)
        u = 1;
    unsigned e = bitlen((uint64_t)u) - 1u;
    uint32_t m = (uint32_t)(e >= 31u ? (uint64_t)u >> (e - 31u) : (uint64_t)u << (31u - e));
    int64_t frac = 0;
    for (int i = LOG_FRAC - 1; i >= 0; i--) {
        uint64_t sq = ((uint64_t)m * m) >> 31; /* in [2^31, 2^33) */
        if (sq >= ((uint64_t)1 << 32)) {
            sq >>= 1;
            frac |= (int64_t)1 << i;
        }
        m = (uint32_t)sq;
    }
    return ((int64_t)e << LOG_FRAC) | frac;
}

static int8_t sat8(int64_t v)
{
    return (int8_t)(v < -128 ? -128 : v > 127 ? 127 : v);
}

static int8_t sat8_32(int32_t v)
{
#if defined(__ARM_FEATURE_SAT)
    return (int8_t)__builtin_arm_ssat((int)v, 8); /* SSAT: the same clamp in one instruction */
#else
    return (int8_t)(v < -128 ? -128 : v > 127 ? 127 : v);
#endif
}

static int64_t clamp(int64_t v, int64_t lo, int64_t hi)
{
    return v < lo ? lo : v > hi ? hi : v;
}

static int8_t requant(int64_t v, int64_t off, int32_t mult, uint8_t sh, int32_t zp)
{
    int64_t d = clamp(v - off, -((int64_t)1 << 31), ((int64_t)1 << 31) - 1);
    return sat8(clamp(rshift_round(d * mult, sh), -256, 256) + zp);
}

/* ---------------------------------------------------------------- samples */

#if !SP_FPU
static int32_t to_sample(float f, int shift)
{
    uint32_t b;
    int32_t mag;
    memcpy(&b, &f, sizeof b);
    uint32_t ex = (b >> 23) & 0xFFu, man = b & 0x7FFFFFu;
    if (ex == 0xFFu) {
        mag = man ? 0 : SAMPLE_MAX; /* NaN -> 0, infinities saturate */
    } else {
        if (ex)
            man |= 0x800000u;
        int e = (int)(ex ? ex : 1u) - 150 + shift;
        if (e >= 0) {
            mag = (e > 15 || man > ((uint32_t)SAMPLE_MAX >> e)) ? SAMPLE_MAX : (int32_t)(man << e);
        } else if (e < -24) {
            mag = 0; /* man < 2^24: below half a step */
        } else {
            uint32_t r = (man + ((uint32_t)1 << (-e - 1))) >> -e;
            mag = r > SAMPLE_MAX ? SAMPLE_MAX : (int32_t)r;
        }
    }
    return (b >> 31) ? -mag : mag;
}
#endif

#if SP_FPU
/* With a single-precision FPU the same function in fewer instructions: |f| * 2^shift is exact
 * (or below half a step, or saturates), truncation and the fraction a - trunc(a) are exact
 * below 2^23, so rounding half away from zero gives to_sample's value bit for bit. */
static int32_t to_sample_fpu(float f, float gain)
{
    float a = __builtin_fabsf(f) * gain;
    int32_t mag;
    if (__builtin_expect(!(a < (float)SAMPLE_MAX), 0)) {
        mag = a != a ? 0 : SAMPLE_MAX;
    } else {
        mag = (int32_t)a;
        mag += a - (float)mag >= 0.5f;
    }
    return f < 0.0f ? -mag : mag;
}
#endif

/* Channel ch of the interleaved float window into q (same layout), with its sum and sum of squares. */
static void convert_channel(const tinyml_ifeat_config *cfg, const float *x, unsigned ch, int16_t *q, int64_t *s1,
                            int64_t *s2)
{
    unsigned c = cfg->channels, end = (unsigned)cfg->window * c;
    int32_t sum = 0;
    int64_t squares = 0;
#if SP_FPU
    uint32_t bits = (uint32_t)(cfg->sample_shift[ch] + 127) << 23; /* 2^shift, |shift| <= 100 */
    float gain;
    memcpy(&gain, &bits, sizeof gain);
    for (unsigned i = ch; i < end; i += c) {
        int32_t v = to_sample_fpu(x[i], gain);
#else
    int shift = cfg->sample_shift[ch];
    for (unsigned i = ch; i < end; i += c) {
        int32_t v = to_sample(x[i], shift);
#endif
        q[i] = (int16_t)v;
        sum += v;
        squares += (int64_t)(v * v);
    }
    *s1 = sum;
    *s2 = squares;
}

void tinyml_ifeat_samples(const tinyml_ifeat_config *cfg, const float *x, int16_t *q)
{
    int64_t s1, s2;
    for (unsigned ch = 0; ch < cfg->channels; ch++)
        convert_channel(cfg, x, ch, q, &s1, &s2);
}

/* ---------------------------------------------------------------- the FFT */

/* In-place unscaled radix-2 FFT of n = T or T/2 points, Q30 twiddles from the T tables; the
 * caller keeps sum(|re| + |im|) < 2^30. */
static void fft_q(const tinyml_ifeat_config *cfg, int32_t *re, int32_t *im, unsigned n, int inverse)
{
    unsigned t = cfg->window, down = n == t ? 0u : 1u;
    for (unsigned i = 0; i < n; i++) {
        unsigned r = (unsigned)cfg->bitrev[i] >> down;
        if (r > i) {
            int32_t tmp = re[i];
            re[i] = re[r];
            re[r] = tmp;
            tmp = im[i];
            im[i] = im[r];
            im[r] = tmp;
        }
    }
    for (unsigned len = 2; len <= n; len <<= 1) {
        unsigned half = len / 2u, step = t / len;
        for (unsigned a = 0; a < n; a += len) { /* j = 0: w = 1, and rshift_round(b * 2^30, 30) == b */
            int32_t br = re[a + half], bi = im[a + half], ar = re[a], ai = im[a];
            re[a + half] = ar - br;
            im[a + half] = ai - bi;
            re[a] = ar + br;
            im[a] = ai + bi;
        }
        for (unsigned j = 1; j < half; j++) {
            int32_t wr = cfg->cos_q30[j * step];
            int32_t wi = inverse ? cfg->sin_q30[j * step] : -cfg->sin_q30[j * step];
            for (unsigned a = j; a < n; a += len) {
                unsigned b = a + half;
                int32_t tr = (int32_t)rshift_round((int64_t)re[b] * wr - (int64_t)im[b] * wi, 30);
                int32_t ti = (int32_t)rshift_round((int64_t)re[b] * wi + (int64_t)im[b] * wr, 30);
                int32_t ar = re[a], ai = im[a];
                re[b] = ar - tr;
                im[b] = ai - ti;
                re[a] = ar + tr;
                im[a] = ai + ti;
            }
        }
    }
}

/* 2X_k for one k from Z_k and Z_{T/2-k} (rfft_q in features_int.py). */
static void rfft_bin(const tinyml_ifeat_config *cfg, unsigned k, int32_t zr, int32_t zi, int32_t cr, int32_t ci,
                     int32_t *xr, int32_t *xi)
{
    unsigned h = cfg->window / 2u;
    int32_t ar = zr + cr, ai = zi - ci, br = zr - cr, bi = zi + ci;
    int32_t wr = k < h ? cfg->cos_q30[k] : -((int32_t)1 << 30), wi = k < h ? -cfg->sin_q30[k] : 0;
    *xr = ar + (int32_t)rshift_round((int64_t)wr * bi + (int64_t)wi * br, 30);
    *xi = ai - (int32_t)rshift_round((int64_t)wr * br - (int64_t)wi * bi, 30);
}

/* Twice the spectrum of the real signal x (T values) into bins 0..T/2 of re/im, through a
 * T/2-point FFT; sum(|x|) < 2^29. x may be re. */
static void rfft_q(const tinyml_ifeat_config *cfg, const int32_t *x, int32_t *re, int32_t *im)
{
    unsigned h = cfg->window / 2u;
    for (unsigned n = 0; n < h; n++) {
        int32_t even = x[2u * n], odd = x[2u * n + 1u];
        re[n] = even;
        im[n] = odd;
    }
    fft_q(cfg, re, im, h, 0);
    int32_t z0r = re[0], z0i = im[0];
    rfft_bin(cfg, h, z0r, z0i, z0r, z0i, &re[h], &im[h]);
    rfft_bin(cfg, 0, z0r, z0i, z0r, z0i, &re[0], &im[0]);
    for (unsigned k = 1; k <= h / 2u; k++) {
        int32_t zr = re[k], zi = im[k], cr = re[h - k], ci = im[h - k];
        rfft_bin(cfg, k, zr, zi, cr, ci, &re[k], &im[k]);
        if (k != h - k)
            rfft_bin(cfg, h - k, cr, ci, zr, zi, &re[h - k], &im[h - k]);
    }
}

/* Shift making a sum of magnitudes land in [2^(bits-1), 2^bits) (0 for 0). */
static int block_shift(int64_t total, int bits)
{
    return total > 0 ? bits - (int)bitlen((uint64_t)total) : 0;
}

/* Saturating sums of re^2 + im^2 over bins [edges[b], edges[b+1]), as log2 Q16 or Q30 counts^2
 * (exponent: log2 of what one unit of the sum is worth in counts^2). */
static void bands(const tinyml_ifeat_op *op, const int32_t *re, const int32_t *im, int exponent, int64_t *out)
{
    for (unsigned b = 0; b < op->count; b++) {
        int64_t e = 0;
        for (unsigned k = op->edges[b]; k < op->edges[b + 1u]; k++)
            e = sat_add(e, (int64_t)re[k] * re[k] + (int64_t)im[k] * im[k]);
        out[b] = op->log ? log2_q16(e) + (int64_t)exponent * (1 << LOG_FRAC) : shift_sat(e, exponent + 30);
    }
}

/* ---------------------------------------------------------------- one channel */

typedef struct {
    const int32_t *x;  /* the channel's samples */
    unsigned t;
    int64_t s1, s2;
    int has_moments, has_spectrum;
    int64_t m2, m3, m4;
    int32_t *re, *im;  /* spectrum of x * 2^(15 - log2 T) */
    int32_t *wr, *wi;  /* envelope work */
} channel_t;

static int64_t mean_q8(const channel_t *ch)
{
    return div_round(ch->s1 * 256, ch->t);
}

static int64_t rms_q8(const channel_t *ch)
{
    return isqrt(div_round(ch->s2 * 65536, ch->t));
}

static void moments(channel_t *ch)
{
    if (ch->has_moments)
        return;
    unsigned t = ch->t;
    int64_t mean16 = div_round(ch->s1 * 16, t), pk = 0;
    for (unsigned n = 0; n < t; n++) {
        int64_t d = (int64_t)ch->x[n] * 16 - mean16;
        if (d < 0)
            d = -d;
        if (d > pk)
            pk = d;
    }
    unsigned lim = (62u - 2u * bitlen(t)) / 4u, b = bitlen((uint64_t)pk);
    unsigned sh = b > lim ? b - lim : 0u;
    int32_t m16 = (int32_t)mean16, half = sh ? (int32_t)1 << (sh - 1u) : 0;
    int64_t m2 = 0, m3 = 0, m4 = 0;
    for (unsigned n = 0; n < t; n++) {
        int32_t d = (ch->x[n] * 16 - m16 + half) >> sh; /* rshift_round; |d| <= 2^lim <= 2^14 */
        int32_t d2 = d * d;
        m2 += d2;
        m3 += (int64_t)d2 * d;
        m4 += (int64_t)((uint64_t)(uint32_t)d2 * (uint32_t)d2);
    }
    ch->m2 = m2;
    ch->m3 = m3;
    ch->m4 = m4;
    ch->has_moments = 1;
}

static void spectrum(const tinyml_ifeat_config *cfg, channel_t *ch)
{
    if (ch->has_spectrum)
        return;
    unsigned pre = 14u - cfg->log2_window;
    for (unsigned n = 0; n < ch->t; n++)
        ch->re[n] = ch->x[n] * (1 << pre);
    rfft_q(cfg, ch->re, ch->re, ch->im);
    ch->has_spectrum = 1;
}

/* log2(T sum d^4 / (sum d^2)^2) in Q16 of the envelope magnitudes, cut to lim bits so the sums fit. */
static int64_t envelope_kurtosis(const int32_t *env, unsigned t)
{
    int64_t pk = 0, s2 = 0, s4 = 0;
    for (unsigned n = 0; n < t; n++)
        if (env[n] > pk)
            pk = env[n];
    unsigned lim = (62u - 2u * bitlen(t)) / 4u, b = bitlen((uint64_t)pk);
    unsigned sh = b > lim ? b - lim : 0u;
    for (unsigned n = 0; n < t; n++) {
        int64_t d = rshift_round(env[n], sh);
        int64_t d2 = d * d;
        s2 += d2;
        s4 += d2 * d2;
    }
    if (s2 <= 0)
        return 0;
    return log2_q16(ratio((int64_t)t * s4, s2 * s2 > 0 ? s2 * s2 : 1, 12)) - ((int64_t)12 << LOG_FRAC);
}

/* The envelope of bins [lo, hi] and, into wr/wi, twice the spectrum of the de-meaned envelope
 * (bins 0..T/2); returns the exponent of its power; with kurt, also the envelope's kurtosis. */
static int envelope_spectrum(const tinyml_ifeat_config *cfg, unsigned lo, unsigned hi, channel_t *ch, int64_t *kurt)
{
    unsigned t = ch->t;
    int32_t *zr = ch->wr, *zi = ch->wi;
    int64_t total = 0, sum = 0;
    spectrum(cfg, ch);
    for (unsigned k = 0; k < t; k++) {
        int keep = k >= lo && k <= hi;
        zr[k] = keep ? ch->re[k] : 0;
        zi[k] = keep ? ch->im[k] : 0;
        total += (zr[k] < 0 ? -(int64_t)zr[k] : zr[k]) + (zi[k] < 0 ? -(int64_t)zi[k] : zi[k]);
    }
    int e1 = block_shift(total, 30);
    for (unsigned k = lo; k <= hi; k++) {
        zr[k] = (int32_t)shift_sat(zr[k], e1);
        zi[k] = (int32_t)shift_sat(zi[k], e1);
    }
    fft_q(cfg, zr, zi, t, 1);
    for (unsigned n = 0; n < t; n++) {
        zr[n] = (int32_t)isqrt((int64_t)zr[n] * zr[n] + (int64_t)zi[n] * zi[n]);
        sum += zr[n];
    }
    if (kurt)
        *kurt = envelope_kurtosis(zr, t);
    int64_t mean = div_round(sum, t);
    total = 0;
    for (unsigned n = 0; n < t; n++) {
        zr[n] = (int32_t)(zr[n] - mean);
        total += zr[n] < 0 ? -(int64_t)zr[n] : zr[n];
    }
    int e2 = block_shift(total, 29); /* rfft_q input: sum below 2^29 */
    for (unsigned n = 0; n < t; n++)
        zr[n] = (int32_t)shift_sat(zr[n], e2);
    rfft_q(cfg, zr, zr, zi); /* twice the spectrum: 4x the power */
    return -2 * (14 + e1 + e2) - 2 * (int)cfg->log2_window - 2;
}

static void envelope_bands(const tinyml_ifeat_config *cfg, const tinyml_ifeat_op *op, channel_t *ch, int64_t *out)
{
    int exponent = envelope_spectrum(cfg, op->bin_lo, op->bin_hi, ch, NULL);
    bands(op, ch->wr, ch->wi, exponent, out);
}

/* ---------------------------------------------------------------- bearing (features_bearing.py) */

enum { P_KMIN, P_KMAX, P_FIXED, P_DEFAULT, P_TOL, P_FLOOR, P_LINES, P_SIDEBAND, P_HEADER };
#define RAW_HARMONICS 3
#define FLOOR_MAX 16
#define SUBHARMONIC_DB 3

static int64_t power_at(const int32_t *re, const int32_t *im, int64_t k)
{
    return (int64_t)re[k] * re[k] + (int64_t)im[k] * im[k];
}

/* Shaft frequency in Q16 bins: fixed, or the largest bin in [kmin, kmax] (or the 1x at half
 * its bin), its larger neighbour and Rife's two-bin interpolation. */
static int64_t shaft_q16(const int32_t *prm, const int32_t *re, const int32_t *im)
{
    if (prm[P_FIXED])
        return prm[P_FIXED];
    int64_t k = prm[P_KMIN], best = power_at(re, im, k);
    for (int64_t i = k + 1; i <= prm[P_KMAX]; i++) {
        int64_t p = power_at(re, im, i);
        if (p > best) {
            best = p;
            k = i;
        }
    }
    int64_t h = k >> 1; /* a range over 2:1 holds the 2x too: prefer a 1x within 9 dB of it */
    if (h >= prm[P_KMIN]) {
        int64_t sub = power_at(re, im, h) >= power_at(re, im, h + 1) ? h : h + 1; /* h + 1 <= k */
        if (power_at(re, im, sub) >= best >> SUBHARMONIC_DB)
            k = sub;
    }
    int64_t j = power_at(re, im, k - 1) > power_at(re, im, k + 1) ? k - 1 : k;
    int64_t m0 = isqrt(power_at(re, im, j)), m1 = isqrt(power_at(re, im, j + 1));
    return m0 + m1 > 0 ? j * 65536 + ratio(m1, m0 + m1, 16) : prm[P_DEFAULT];
}

/* P[c] + P[c+1] (c = floor(pos)), bins outside [1, half] counting 0. */
static int64_t pair_at(const int32_t *re, const int32_t *im, int64_t half, int64_t pos)
{
    int64_t c = pos >> 16, s = 0;
    for (int64_t k = c; k <= c + 1; k++)
        if (k >= 1 && k <= half)
            s = sat_add(s, power_at(re, im, k));
    return s;
}

/* Largest bin of [c - a, c + 1 + a], and the lower median of floor_bins bins each side past a
 * one-bin gap (1 when there are none), bins limited to [1, half]. */
static void peak_floor(const int32_t *prm, const int32_t *re, const int32_t *im, int64_t half, int64_t pos,
                       int64_t *peak, int64_t *floor)
{
    int64_t c = pos >> 16, a = rshift_round(pos * prm[P_TOL], 32), best = 0, buf[2 * FLOOR_MAX];
    int64_t r = prm[P_FLOOR];
    unsigned n = 0;
    for (int64_t k = c - a; k <= c + 1 + a; k++)
        if (k >= 1 && k <= half && power_at(re, im, k) > best)
            best = power_at(re, im, k);
    *peak = best;
    for (int64_t i = 0; floor && i < 2 * r; i++) {
        int64_t k = i < r ? c - a - 1 - r + i : c + a + 3 + (i - r);
        if (k >= 1 && k <= half) {
            int64_t v = power_at(re, im, k);
            unsigned m = n++;
            while (m > 0 && buf[m - 1u] > v) { /* insertion sort */
                buf[m] = buf[m - 1u];
                m--;
            }
            buf[m] = v;
        }
    }
    if (floor)
        *floor = n ? buf[(n - 1u) / 2u] : 1;
}

static void bearing(const tinyml_ifeat_config *cfg, const tinyml_ifeat_op *op, channel_t *ch, int64_t *out)
{
    const int32_t *prm = op->weights;
    int64_t half = ch->t / 2u, kurt = 0, total = 0, sb = 1, floor_sb = 1;
    spectrum(cfg, ch);
    int64_t f = shaft_q16(prm, ch->re, ch->im);
    (void)envelope_spectrum(cfg, op->bin_lo, op->bin_hi, ch, &kurt);
    for (int64_t k = 1; k <= half; k++)
        total = sat_add(total, power_at(ch->re, ch->im, k));
    unsigned o = 0;
    out[o++] = kurt;
    for (int64_t h = 1; h <= RAW_HARMONICS; h++)
        out[o++] = log2_q16(pair_at(ch->re, ch->im, half, rshift_round(f * (h << 16), 16))) - log2_q16(total);
    out[o++] = log2_q16(pair_at(ch->re, ch->im, half, f)) - 4 * log2_q16(f);
    for (int32_t i = 0; i < prm[P_LINES]; i++) {
        int64_t pos = rshift_round(f * prm[P_HEADER + i], 16), peak, floor;
        peak_floor(prm, ch->wr, ch->wi, half, pos, &peak, &floor);
        out[o++] = log2_q16(peak) - log2_q16(floor);
        if (i == prm[P_SIDEBAND]) {
            int64_t lo, hi;
            peak_floor(prm, ch->wr, ch->wi, half, pos - f, &lo, NULL);
            peak_floor(prm, ch->wr, ch->wi, half, pos + f, &hi, NULL);
            sb = sat_add(lo, hi);
            floor_sb = floor;
        }
    }
    out[o] = log2_q16(sb) - log2_q16(floor_sb) - ((int64_t)1 << LOG_FRAC);
}

static void run_op(const tinyml_ifeat_config *cfg, const tinyml_ifeat_op *op, channel_t *ch, int64_t *out)
{
    unsigned t = ch->t;
    const int32_t *x = ch->x;
    int64_t v = 0;
    switch (op->kind) {
    case TINYML_IFEAT_RMS:
        out[0] = rms_q8(ch);
        break;
    case TINYML_IFEAT_PEAK:
    case TINYML_IFEAT_CREST:
        for (unsigned n = 0; n < t; n++)
            if ((x[n] < 0 ? -x[n] : x[n]) > v)
                v = x[n] < 0 ? -x[n] : x[n];
        if (op->kind == TINYML_IFEAT_CREST) {
            int64_t rms = rms_q8(ch);
            v = rms > 0 ? ratio(v * 256, rms, 12) : 0;
        }
        out[0] = v;
        break;
    case TINYML_IFEAT_KURTOSIS:
        moments(ch);
        out[0] = ch->m2 > 0 ? ratio((int64_t)t * ch->m4, ch->m2 * ch->m2, 12) - 3 * 4096 : 0;
        break;
    case TINYML_IFEAT_SKEWNESS: {
        moments(ch);
        int64_t m3 = ch->m3;
        if (ch->m2 > 0) {
            v = rshift_round(ratio(m3 < 0 ? -m3 : m3, ch->m2, 16) * isqrt(ratio(t, ch->m2, 48)), 28);
            v = m3 < 0 ? -v : v;
        }
        out[0] = v;
        break;
    }
    case TINYML_IFEAT_MEAN:
        out[0] = mean_q8(ch);
        break;
    case TINYML_IFEAT_STD:
        out[0] = div_round(isqrt((int64_t)t * ch->s2 - ch->s1 * ch->s1) * 256, t);
        break;
    case TINYML_IFEAT_MIN:
    case TINYML_IFEAT_MAX:
        v = x[0];
        for (unsigned n = 1; n < t; n++)
            if (op->kind == TINYML_IFEAT_MIN ? x[n] < v : x[n] > v)
                v = x[n];
        out[0] = v;
        break;
    case TINYML_IFEAT_FFT_BANDS:
        spectrum(cfg, ch);
        bands(op, ch->re, ch->im, -30, out);
        break;
    case TINYML_IFEAT_ENVELOPE_BANDS:
        envelope_bands(cfg, op, ch, out);
        break;
    case TINYML_IFEAT_BEARING:
        bearing(cfg, op, ch, out);
        break;
    case TINYML_IFEAT_RATE_OF_CHANGE:
    case TINYML_IFEAT_CURVATURE:
        for (unsigned n = 0; n < t; n++)
            v += (int64_t)x[n] * op->weights[n];
        out[0] = rshift_round(v, op->wshift);
        break;
    case TINYML_IFEAT_ROLLING_MEAN:
        for (unsigned i = 0; i < op->count; i++) {
            int64_t s = 0;
            for (unsigned n = (unsigned)op->edges[i] + 1u - op->width; n <= op->edges[i]; n++)
                s += x[n];
            out[i] = div_round(s * 256, op->width) - (op->relative ? mean_q8(ch) : 0);
        }
        break;
    case TINYML_IFEAT_DIFF_MAX:
        for (unsigned n = 1; n < t; n++) {
            int64_t d = (int64_t)x[n] - x[n - 1u];
            if ((d < 0 ? -d : d) > v)
                v = d < 0 ? -d : d;
        }
        out[0] = v;
        break;
    case TINYML_IFEAT_FLAT_FRACTION:
        for (unsigned n = 1; n < t; n++)
            v += x[n] == x[n - 1u];
        out[0] = ratio(v, (int64_t)t - 1, 16);
        break;
    case TINYML_IFEAT_FLAT_RUN: {
        int64_t run = 0;
        for (unsigned n = 1; n < t; n++) {
            run = x[n] == x[n - 1u] ? run + 1 : 0;
            v = run > v ? run : v;
        }
        out[0] = ratio(v, (int64_t)t - 1, 16);
        break;
    }
    case TINYML_IFEAT_DAILY_CYCLE:
        for (unsigned i = 0; i < op->count; i++)
            out[i] = mean_q8(ch);
        break;
    default:
        break;
    }
}

int tinyml_ifeat_values(const tinyml_ifeat_config *cfg, const int16_t *q, int64_t *out, int32_t *scratch)
{
    unsigned t = cfg->window, c = cfg->channels;
    int32_t *row = scratch;
    for (unsigned i = 0; i < cfg->n_ops; i++)
        if (cfg->ops[i].kind > TINYML_IFEAT_FLAT_RUN)
            return -1;
    for (unsigned ch = 0; ch < c; ch++) {
        channel_t st = {row, t, 0, 0, 0, 0, 0, 0, 0, scratch + t, scratch + 2u * t, scratch + 3u * t,
                        scratch + 4u * t};
        for (unsigned n = 0; n < t; n++) {
            row[n] = q[n * c + ch];
            st.s1 += row[n];
            st.s2 += (int64_t)row[n] * row[n];
        }
        unsigned base = 0;
        for (unsigned i = 0; i < cfg->n_ops; i++) {
            const tinyml_ifeat_op *op = &cfg->ops[i];
            int64_t *dst = out + base + ch * op->count;
            run_op(cfg, op, &st, dst);
            for (unsigned j = 0; j < op->count; j++)
                dst[j] = clamp(dst[j], -CAP, CAP);
            base += (unsigned)op->count * c;
        }
        if (base != cfg->n_features)
            return -1;
    }
    return 0;
}

void tinyml_ifeat_requant(const tinyml_ifeat_config *cfg, const int64_t *values, int8_t *input)
{
    for (unsigned i = 0; i < cfg->n_features; i++)
        input[i] = requant(values[i], cfg->off[i], cfg->mult[i], cfg->shift[i], cfg->zero_point);
}

void tinyml_ifeat_per_window(const tinyml_ifeat_config *cfg, const float *window, int16_t *q, int8_t *input)
{
    unsigned t = cfg->window, c = cfg->channels;
    for (unsigned ch = 0; ch < c; ch++) {
        int64_t s1, s2;
        convert_channel(cfg, window, ch, q, &s1, &s2);
        int64_t sa = isqrt((int64_t)t * s2 - s1 * s1);
        if (sa < 1)
            sa = 1;
        /* m * 2^lift ~= 2^32 / (input scale * sa), m < 2^31 (shape_multiplier) */
        int64_t m = shift_sat(ratio(cfg->gain, sa, 30), 32 - (int)cfg->gain_shift);
        unsigned b = bitlen((uint64_t)m), lift = b > 31u ? b - 31u : 0u;
        int32_t m31 = (int32_t)(m >> lift), s1_32 = (int32_t)s1, up = (int32_t)1 << lift, zp = cfg->zero_point;
        int8_t level = requant(log2_q16(sa), cfg->off[ch], cfg->mult[ch], cfg->shift[ch], zp);
        const int16_t *x = q + ch;
        int8_t *in = input + ch;
        for (unsigned n = 0; n < t; n++, x += c, in += 2u * c) {
            int32_t num = ((int32_t)t * *x - s1_32) * up; /* |num| < 2^28 */
            /* |v| < 2^27 and |zp| <= 128: clamping v to +-256 first changes nothing */
            int32_t v = (int32_t)(((int64_t)num * m31 + ((int64_t)1 << 31)) >> 32) + zp;
            in[0] = sat8_32(v);
            in[c] = level;
        }
    }
}

uint32_t tinyml_ifeat_repeats(const int16_t *q, unsigned t, unsigned c)
{
    uint32_t best = 0;
    for (unsigned ch = 0; ch < c; ch++) {
        uint32_t run = 0;
        for (unsigned n = 1; n < t; n++) {
            run = q[n * c + ch] == q[(n - 1u) * c + ch] ? run + 1u : 0u;
            best = run > best ? run : best;
        }
    }
    return best;
}

#if TINYML_IFEAT_MODE == 0
#ifdef TINYML_IFEAT_STUCK_BOUND
static uint32_t stuck_repeats; /* of the last window: the stuck guard's count */
#endif

int tinyml_ifeat_window_values(const float *window, int64_t *values)
{
    static int16_t q[TINYML_IFEAT_WINDOW * TINYML_IFEAT_CHANNELS];
    static int32_t scratch[TINYML_IFEAT_SCRATCH_FOR(TINYML_IFEAT_WINDOW)];
    tinyml_ifeat_samples(&tinyml_ifeat_cfg, window, q);
    int rc = tinyml_ifeat_values(&tinyml_ifeat_cfg, q, values, scratch);
#ifdef TINYML_IFEAT_STUCK_BOUND
    stuck_repeats = tinyml_ifeat_repeats(q, TINYML_IFEAT_WINDOW, TINYML_IFEAT_CHANNELS);
#endif
#ifdef TINYML_IFEAT_SERIES
    /* daily_cycle: its columns hold each channel's window mean; the state carried from the windows
     * before turns them into residual, trend, deviation and scale (tinyml_series.c) */
    unsigned base = 0;
    for (unsigned i = 0; i < tinyml_ifeat_cfg.n_ops; i++) {
        const tinyml_ifeat_op *op = &tinyml_ifeat_cfg.ops[i];
        if (op->kind == TINYML_IFEAT_DAILY_CYCLE) {
            int64_t means[TINYML_IFEAT_CHANNELS];
            for (unsigned c = 0; c < TINYML_IFEAT_CHANNELS; c++)
                means[c] = values[base + c * op->count];
#ifdef TINYML_IFEAT_SLOPE
            /* the slope guard's CUSUM steps with the series state, in the same slot (tinyml_slope.c) */
            tinyml_slope_step(&tinyml_slope_cfg, &tinyml_slope_st, q, TINYML_IFEAT_CHANNELS, tinyml_series_st.slot);
#endif
            tinyml_series_step(&tinyml_series_cfg, &tinyml_series_st, means, values + base);
        }
        base += (unsigned)op->count * TINYML_IFEAT_CHANNELS;
    }
#endif
    return rc;
}
#endif

int tinyml_ifeat_series_place(int reset, uint32_t slot)
{
#if defined(TINYML_IFEAT_SERIES) && TINYML_IFEAT_MODE == 0
    if (slot >= tinyml_series_cfg.slots)
        return -2;
    if (reset) {
        tinyml_series_reset(&tinyml_series_cfg, &tinyml_series_st, slot);
#ifdef TINYML_IFEAT_SLOPE
        tinyml_slope_reset(&tinyml_slope_st);
#endif
    } else
        tinyml_series_st.slot = slot;
    return 0;
#else
    (void)reset;
    (void)slot;
    return -1;
#endif
}

uint32_t tinyml_ifeat_slope_over(void)
{
#if defined(TINYML_IFEAT_SLOPE) && TINYML_IFEAT_MODE == 0
    return tinyml_slope_over(&tinyml_slope_cfg, &tinyml_slope_st);
#else
    return 0u;
#endif
}

uint32_t tinyml_ifeat_stuck_over(void)
{
#if defined(TINYML_IFEAT_STUCK_BOUND) && TINYML_IFEAT_MODE == 0
    return stuck_repeats > TINYML_IFEAT_STUCK_BOUND ? stuck_repeats - TINYML_IFEAT_STUCK_BOUND : 0u;
#else
    return 0u;
#endif
}

long tinyml_ifeat_series_slot_ending(uint32_t end_ms)
{
#if defined(TINYML_IFEAT_SERIES) && TINYML_IFEAT_MODE == 0
    return (long)tinyml_series_slot_ending(tinyml_series_cfg.slots, end_ms, TINYML_SERIES_SPAN_MS);
#else
    (void)end_ms;
    return -1;
#endif
}

void tinyml_ifeat_preprocess(const float *window, int8_t *input)
{
#if TINYML_IFEAT_MODE == 0
    static int64_t values[TINYML_IFEAT_FEATURES];
    (void)tinyml_ifeat_window_values(window, values);
    tinyml_ifeat_requant(&tinyml_ifeat_cfg, values, input);
#else
    static int16_t q[TINYML_IFEAT_WINDOW * TINYML_IFEAT_CHANNELS];
    tinyml_ifeat_per_window(&tinyml_ifeat_cfg, window, q, input);
#endif
}
