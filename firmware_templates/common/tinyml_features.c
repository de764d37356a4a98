/* Window features: see tinyml_features.h. Every loop sums in index order and every
 * expression keeps the operation order of tinyml/data/features.py. */
#include <math.h>

#include "tinyml_features.h"
#include "tinyml_features_config.h"

#define LOG_FLOOR 1e-12

static double band_value(double e, uint8_t use_log)
{
    return use_log ? log(e + LOG_FLOOR) : e;
}

/* In-place iterative radix-2 FFT of re/im (T a power of two), unscaled; inverse uses
 * conjugate twiddles. Mirrors tinyml.data.features.fft butterfly for butterfly. */
static void fft(const tinyml_features_config *cfg, double *re, double *im, int inverse)
{
    unsigned t = cfg->window, bits = 0;
    while ((1u << bits) < t)
        bits++;
    for (unsigned i = 0; i < t; i++) {
        unsigned r = 0;
        for (unsigned b = 0; b < bits; b++)
            r |= ((i >> b) & 1u) << (bits - 1u - b);
        if (r > i) {
            double tmp = re[i];
            re[i] = re[r];
            re[r] = tmp;
            tmp = im[i];
            im[i] = im[r];
            im[r] = tmp;
        }
    }
    for (unsigned len = 2; len <= t; len <<= 1) {
        unsigned half = len / 2u, step = t / len;
        for (unsigned i = 0; i < t; i += len) {
            for (unsigned j = 0; j < half; j++) {
                double wr = cfg->cos_table[j * step];
                double wi = inverse ? cfg->sin_table[j * step] : -cfg->sin_table[j * step];
                unsigned a = i + j, b = a + half;
                double tr = re[b] * wr - im[b] * wi;
                double ti = re[b] * wi + im[b] * wr;
                double ar = re[a], ai = im[a];
                re[b] = ar - tr;
                im[b] = ai - ti;
                re[a] = ar + tr;
                im[a] = ai + ti;
            }
        }
    }
}

/* Spectrum of the real signal x into re/im. */
static void spectrum(const tinyml_features_config *cfg, const double *x, double *re, double *im)
{
    for (unsigned n = 0; n < cfg->window; n++) {
        re[n] = x[n];
        im[n] = 0.0;
    }
    fft(cfg, re, im, 0);
}

/* Sum of (|X_k| / T)^2 over each band [edges[b], edges[b+1]). */
static void bands(const tinyml_feature_op *op, const double *re, const double *im, unsigned t, double *out)
{
    for (unsigned b = 0; b < op->count; b++) {
        double e = 0.0;
        for (unsigned k = op->edges[b]; k < op->edges[b + 1]; k++) {
            double r = re[k] / t, i = im[k] / t;
            e += r * r + i * i;
        }
        out[b] = band_value(e, op->log);
    }
}

/* Keep the positive-frequency pass band [bin_lo, bin_hi], inverse FFT: half the analytic
 * signal; its magnitude (x 2/T) is the envelope. Remove its mean, then band energies of the
 * envelope spectrum. scratch holds 2T doubles. */
static void envelope_bands(const tinyml_features_config *cfg, const tinyml_feature_op *op, const double *x,
                           double *scratch, double *out)
{
    unsigned t = cfg->window;
    double *re = scratch, *im = scratch + t;
    double mean = 0.0;
    spectrum(cfg, x, re, im);
    for (unsigned k = 0; k < t; k++) {
        if (k < op->bin_lo || k > op->bin_hi) {
            re[k] = 0.0;
            im[k] = 0.0;
        }
    }
    fft(cfg, re, im, 1);
    for (unsigned n = 0; n < t; n++) {
        double zr = re[n] * (2.0 / t), zi = im[n] * (2.0 / t);
        re[n] = sqrt(zr * zr + zi * zi);
    }
    for (unsigned n = 0; n < t; n++)
        mean += re[n];
    mean = mean / t;
    for (unsigned n = 0; n < t; n++) {
        re[n] = re[n] - mean;
        im[n] = 0.0;
    }
    fft(cfg, re, im, 0);
    bands(op, re, im, t, out);
}

/* Central moments m2, m3, m4 (divided by T) and the mean. */
static void moments(const double *x, unsigned t, double *mean, double *m2, double *m3, double *m4)
{
    double s = 0.0, s2 = 0.0, s3 = 0.0, s4 = 0.0;
    for (unsigned n = 0; n < t; n++)
        s += x[n];
    *mean = s / t;
    for (unsigned n = 0; n < t; n++) {
        double d = x[n] - *mean;
        s2 += d * d;
        s3 += d * d * d;
        s4 += d * d * d * d;
    }
    *m2 = s2 / t;
    *m3 = s3 / t;
    *m4 = s4 / t;
}

static double rms(const double *x, unsigned t)
{
    double s = 0.0;
    for (unsigned n = 0; n < t; n++)
        s += x[n] * x[n];
    return sqrt(s / t);
}

static double peak(const double *x, unsigned t)
{
    double p = fabs(x[0]);
    for (unsigned n = 1; n < t; n++)
        if (fabs(x[n]) > p)
            p = fabs(x[n]);
    return p;
}

/* One spec entry on one channel x (T doubles); writes op->count values. */
static void run_op(const tinyml_features_config *cfg, const tinyml_feature_op *op, const double *x,
                   double *scratch, double *out)
{
    unsigned t = cfg->window;
    double mean, m2, m3, m4, v;
    switch (op->kind) {
    case TINYML_FEAT_RMS:
        out[0] = rms(x, t);
        break;
    case TINYML_FEAT_PEAK:
        out[0] = peak(x, t);
        break;
    case TINYML_FEAT_CREST:
        v = rms(x, t);
        out[0] = v > 0.0 ? peak(x, t) / v : 0.0;
        break;
    case TINYML_FEAT_KURTOSIS:
        moments(x, t, &mean, &m2, &m3, &m4);
        out[0] = m2 > 0.0 ? m4 / (m2 * m2) - 3.0 : 0.0;
        break;
    case TINYML_FEAT_SKEWNESS:
        moments(x, t, &mean, &m2, &m3, &m4);
        out[0] = m2 > 0.0 ? m3 / (m2 * sqrt(m2)) : 0.0;
        break;
    case TINYML_FEAT_MEAN:
        moments(x, t, &mean, &m2, &m3, &m4);
        out[0] = mean;
        break;
    case TINYML_FEAT_STD:
        moments(x, t, &mean, &m2, &m3, &m4);
        out[0] = sqrt(m2);
        break;
    case TINYML_FEAT_MIN:
    case TINYML_FEAT_MAX:
        v = x[0];
        for (unsigned n = 1; n < t; n++)
            if (op->kind == TINYML_FEAT_MIN ? x[n] < v : x[n] > v)
                v = x[n];
        out[0] = v;
        break;
    case TINYML_FEAT_FFT_BANDS: {
        double *re = scratch, *im = scratch + t;
        spectrum(cfg, x, re, im);
        bands(op, re, im, t, out);
        break;
    }
    case TINYML_FEAT_ENVELOPE_BANDS:
        envelope_bands(cfg, op, x, scratch, out);
        break;
    case TINYML_FEAT_RATE_OF_CHANGE: {
        double acc = 0.0, denom = 0.0;
        for (unsigned n = 0; n < t; n++) {
            double c = (double)n - (t - 1u) / 2.0;
            denom += c * c;
            acc += x[n] * c;
        }
        out[0] = acc / denom * cfg->fs;
        break;
    }
    case TINYML_FEAT_ROLLING_MEAN:
        moments(x, t, &mean, &m2, &m3, &m4);
        for (unsigned i = 0; i < op->count; i++) {
            double s = 0.0;
            for (unsigned n = (unsigned)op->edges[i] + 1u - op->width; n <= op->edges[i]; n++)
                s += x[n];
            out[i] = s / op->width - (op->relative ? mean : 0.0);
        }
        break;
    case TINYML_FEAT_DIFF_MAX:
        v = 0.0;
        for (unsigned n = 1; n < t; n++)
            if (fabs(x[n] - x[n - 1u]) > v)
                v = fabs(x[n] - x[n - 1u]);
        out[0] = v;
        break;
    case TINYML_FEAT_FLAT_FRACTION: {
        unsigned same = 0;
        for (unsigned n = 1; n < t; n++)
            same += x[n] == x[n - 1u];
        out[0] = (double)same / (t - 1u);
        break;
    }
    case TINYML_FEAT_FLAT_RUN: {
        unsigned run = 0, best = 0;
        for (unsigned n = 1; n < t; n++) {
            run = x[n] == x[n - 1u] ? run + 1u : 0u;
            best = run > best ? run : best;
        }
        out[0] = (double)best / (t - 1u);
        break;
    }
    case TINYML_FEAT_CURVATURE: {
        /* quadratic term on q = c^2 - mean(c^2), c the centred index; time scaled to [-1, 1] */
        double half = (t - 1u) / 2.0, acc = 0.0, denom = 0.0, m = 0.0;
        for (unsigned n = 0; n < t; n++) {
            double c = (double)n - half;
            m += c * c;
        }
        m = m / t;
        for (unsigned n = 0; n < t; n++) {
            double c = (double)n - half;
            double q = c * c - m;
            denom += q * q;
            acc += x[n] * q;
        }
        out[0] = denom == 0.0 ? 0.0 : acc / denom * (half * half);
        break;
    }
    default:
        break;
    }
}

int tinyml_features_run(const tinyml_features_config *cfg, const float *x, float *out, double *scratch)
{
    unsigned t = cfg->window, c = cfg->channels, k = 0;
    double *chan = scratch, *work = scratch + t, vals[TINYML_FEATURES_MAX_COUNT];
    for (unsigned i = 0; i < cfg->n_ops; i++) {
        const tinyml_feature_op *op = &cfg->ops[i];
        if ((op->kind > TINYML_FEAT_CURVATURE && op->kind != TINYML_FEAT_FLAT_RUN) || op->count > TINYML_FEATURES_MAX_COUNT)
            return -1;
        for (unsigned ch = 0; ch < c; ch++) {
            for (unsigned n = 0; n < t; n++)
                chan[n] = (double)x[n * c + ch];
            run_op(cfg, op, chan, work, vals);
            for (unsigned j = 0; j < op->count; j++)
                out[k++] = (float)vals[j];
        }
    }
    return k == cfg->n_features ? 0 : -1;
}

void tinyml_features_compute(const float *samples, float *features)
{
    static double scratch[TINYML_FEATURES_SCRATCH_FOR(TINYML_FEATURES_WINDOW)];
    (void)tinyml_features_run(&tinyml_features_cfg, samples, features, scratch);
}

void tinyml_features_quantize(const float *features, const float *mean, const float *std_dev, unsigned n,
                              float scale, int zero_point, int8_t *out)
{
    for (unsigned i = 0; i < n; i++) {
        float v = (features[i] - mean[i]) / std_dev[i];
        float q = roundf(v / scale) + (float)zero_point;
        out[i] = (int8_t)(q < -128.0f ? -128.0f : q > 127.0f ? 127.0f : q);
    }
}
