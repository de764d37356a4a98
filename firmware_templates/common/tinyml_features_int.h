/* Window features and per_window preprocessing in integer arithmetic, bit for bit as
 * tinyml/data/features_int.py computes them (that module documents every step, its rounding
 * and its saturation; this file mirrors it line by line). C99, no heap, no floating point
 * except reading the IEEE bits of the float32 samples.
 *
 * The configuration (spec, twiddles, band edges, least-squares weights, quantization
 * constants) is baked in by tinyml as "tinyml_features_int_config.h"
 * (tinyml.data.features_int_c.int_config_header). */
#ifndef TINYML_FEATURES_INT_H
#define TINYML_FEATURES_INT_H

#include <stdint.h>

/* Feature kinds: the same numbering as tinyml.data.features_c.KIND_IDS. */
enum tinyml_ifeat_kind {
    TINYML_IFEAT_RMS = 0,
    TINYML_IFEAT_PEAK,
    TINYML_IFEAT_CREST,
    TINYML_IFEAT_KURTOSIS,
    TINYML_IFEAT_SKEWNESS,
    TINYML_IFEAT_MEAN,
    TINYML_IFEAT_STD,
    TINYML_IFEAT_MIN,
    TINYML_IFEAT_MAX,
    TINYML_IFEAT_FFT_BANDS,
    TINYML_IFEAT_ENVELOPE_BANDS,
    TINYML_IFEAT_RATE_OF_CHANGE,
    TINYML_IFEAT_ROLLING_MEAN,
    TINYML_IFEAT_DIFF_MAX,
    TINYML_IFEAT_FLAT_FRACTION,
    TINYML_IFEAT_CURVATURE,
    TINYML_IFEAT_BEARING,
    TINYML_IFEAT_DAILY_CYCLE,   /* the window mean here; the run loop's tinyml_series_step fills the four values */
    TINYML_IFEAT_FLAT_RUN
};

#define TINYML_IFEAT_MODE_FEATURES 0u
#define TINYML_IFEAT_MODE_PER_WINDOW 1u

/* One spec entry: band features sum bins [edges[b], edges[b+1]) (envelope_bands band-passes
 * to bins [bin_lo, bin_hi] first); rolling_mean reads window ends edges[i] over `width`
 * samples; rate_of_change and curvature sum x[n] * weights[n] >> wshift; bearing reads the
 * envelope of bins [bin_lo, bin_hi] and its parameter table in weights (features_bearing.py). */
typedef struct {
    uint8_t kind;
    uint8_t log;
    uint8_t relative;
    uint8_t wshift;
    uint16_t count;
    uint16_t bin_lo;
    uint16_t bin_hi;
    uint16_t width;
    const uint16_t *edges;
    const int32_t *weights;
} tinyml_ifeat_op;

typedef struct {
    uint16_t window;            /* T, 4..2048 */
    uint16_t channels;          /* C; samples are interleaved x[t * C + c] */
    uint16_t n_ops;
    uint16_t n_features;        /* feature columns (features mode) */
    uint8_t mode;               /* TINYML_IFEAT_MODE_* */
    uint8_t log2_window;        /* floor(log2 T) */
    const int8_t *sample_shift; /* per channel: samples are x * 2^shift, rounded and saturated */
    const int32_t *cos_q30;     /* round(cos(2 pi m / T) * 2^30), m < T/2 */
    const int32_t *sin_q30;
    const uint16_t *bitrev;     /* the radix-2 input permutation (T a power of two) */
    const tinyml_ifeat_op *ops;
    const int64_t *off;         /* per feature column (per channel for the per_window level) */
    const int32_t *mult;
    const uint8_t *shift;
    int32_t zero_point;         /* the model's input zero point */
    int64_t gain;               /* per_window shape: 2^K / input scale */
    uint8_t gain_shift;         /* K + 30 */
} tinyml_ifeat_config;

/* Scratch int32 words tinyml_ifeat_values needs for windows of T samples. */
#define TINYML_IFEAT_SCRATCH_FOR(T) (5u * (T))

/* float32 samples -> int16 samples, channel c scaled by 2^sample_shift[c]. */
void tinyml_ifeat_samples(const tinyml_ifeat_config *cfg, const float *x, int16_t *q);

/* int64 feature values of int16 samples q (interleaved) into out[cfg->n_features], ordered spec
 * entry by entry, then channel by channel. scratch: 5T int32. Returns 0, or -1 on a bad config. */
int tinyml_ifeat_values(const tinyml_ifeat_config *cfg, const int16_t *q, int64_t *out, int32_t *scratch);

/* Feature values -> int8 model input: clamp(zp + rshift_round(sat32(v - off) * mult, shift)). */
void tinyml_ifeat_requant(const tinyml_ifeat_config *cfg, const int64_t *values, int8_t *input);

/* per_window: a float32 window -> int8 model input [T, 2C] (shape, then level channels);
 * q: T * C int16 scratch for its samples. */
void tinyml_ifeat_per_window(const tinyml_ifeat_config *cfg, const float *window, int16_t *q, int8_t *input);

/* Features mode: int64 feature values of one float32 window with the baked config. */
int tinyml_ifeat_window_values(const float *window, int64_t *values);

/* Where the next window sits in its stream, for a daily_cycle feature (state across windows): reset
 * forgets the state first (a new stream), else it is kept (a gap); slot is the window's slot of the
 * day. Returns 0, -1 when this preprocessing keeps no state, -2 when slot is not inside the day. */
int tinyml_ifeat_series_place(int reset, uint32_t slot);

/* The slope guard's CUSUM above its alarm level after the last window (tinyml_slope_over), 0 in a run
 * without one. */
uint32_t tinyml_ifeat_slope_over(void);

/* The most equal neighbouring samples in a row, on any channel, of int16 samples q[t * c] (interleaved). */
uint32_t tinyml_ifeat_repeats(const int16_t *q, unsigned t, unsigned c);

/* The stuck guard's repeats beyond its bound (TINYML_IFEAT_STUCK_BOUND) in the last window, 0 within it or
 * in a run without one. */
uint32_t tinyml_ifeat_stuck_over(void);

/* The slot of the day of a window whose last sample was read `end_ms` ms into the day (its start is the
 * window's span before), or -1 when this preprocessing keeps no state. */
long tinyml_ifeat_series_slot_ending(uint32_t end_ms);

/* One float32 window (T * C, interleaved) -> the model's int8 input, with the baked config. */
void tinyml_ifeat_preprocess(const float *window, int8_t *input);

#endif
