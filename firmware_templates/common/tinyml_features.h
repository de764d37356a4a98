/* Window features computed on the device exactly as tinyml/data/features.py computes them on
 * the host. This C code is the reference: the Python mirrors it operation by operation in
 * double precision (same radix-2 FFT butterflies, same twiddle tables, same integer band
 * edges), so the int8 model inputs agree value for value. C99, no heap, <math.h> only.
 * Band features need a power-of-two window.
 *
 * Build without -ffast-math and without floating-point contraction (-std=c99 turns it off
 * in GCC; add -ffp-contract=off with -std=gnu99), or results drift by an ulp.
 *
 * The feature spec is baked in by tinyml as "tinyml_features_config.h" (rendered by
 * tinyml.data.features_c.features_c_config). */
#ifndef TINYML_FEATURES_H
#define TINYML_FEATURES_H

#include <stdint.h>

enum tinyml_feature_kind {
    TINYML_FEAT_RMS = 0,
    TINYML_FEAT_PEAK,
    TINYML_FEAT_CREST,
    TINYML_FEAT_KURTOSIS,
    TINYML_FEAT_SKEWNESS,
    TINYML_FEAT_MEAN,
    TINYML_FEAT_STD,
    TINYML_FEAT_MIN,
    TINYML_FEAT_MAX,
    TINYML_FEAT_FFT_BANDS,
    TINYML_FEAT_ENVELOPE_BANDS,
    TINYML_FEAT_RATE_OF_CHANGE,
    TINYML_FEAT_ROLLING_MEAN,
    TINYML_FEAT_DIFF_MAX,
    TINYML_FEAT_FLAT_FRACTION,
    TINYML_FEAT_CURVATURE,
    TINYML_FEAT_FLAT_RUN = 18   /* 16, 17 (bearing, daily_cycle) are integer only: tinyml_features_int.h */
};

/* One spec entry. Band features: band b sums bins [edges[b], edges[b+1]) of the spectrum
 * (for envelope_bands: of the envelope spectrum, whose last used bin is env_hi, the signal
 * being band-passed to bins [bin_lo, bin_hi] first; fft_bands uses bins [bin_lo, bin_hi]). rolling_mean: edges[i] are the window-end
 * sample indices and width the number of samples averaged; relative subtracts the window
 * mean. */
typedef struct {
    uint8_t kind;
    uint8_t log;
    uint8_t relative;
    uint16_t count;
    uint16_t bin_lo;
    uint16_t bin_hi;
    uint16_t env_hi;
    uint16_t width;
    const uint16_t *edges;
} tinyml_feature_op;

typedef struct {
    uint16_t window;          /* samples per channel, T */
    uint16_t channels;        /* C; input is interleaved x[t * C + c] */
    uint16_t n_ops;
    uint16_t n_features;
    double fs;                /* sampling rate in Hz */
    const double *cos_table;  /* cos(2 pi m / T), m = 0..T/2-1 */
    const double *sin_table;  /* sin(2 pi m / T), m = 0..T/2-1 */
    const tinyml_feature_op *ops;
} tinyml_features_config;

/* Scratch doubles tinyml_features_run needs for windows of T samples. */
#define TINYML_FEATURES_SCRATCH_FOR(T) (3u * (T))

/* Features of one window x (interleaved, T * C floats) into out (cfg->n_features floats),
 * ordered spec entry by entry, then channel by channel. Returns 0, or -1 on a bad config. */
int tinyml_features_run(const tinyml_features_config *cfg, const float *x, float *out, double *scratch);

/* The same with the configuration baked into tinyml_features_config.h and static scratch. */
void tinyml_features_compute(const float *samples, float *features);

/* Standardise and quantize like a model input: v = (f - mean) / std; q = roundf(v / scale) + zp,
 * clamped to int8; all in float, as tinyml.data.features.quantize_features does. */
void tinyml_features_quantize(const float *features, const float *mean, const float *std_dev, unsigned n,
                              float scale, int zero_point, int8_t *out);

#endif
