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

/* X_k = sum_n x_n (cos - i sin)(2 pi k n / T) for k in [k0, k1]; re/im indexed from 0. */
static void dft(const tinyml_features_config *cfg, const double *x, unsigned k0, unsigned k1, double *re,
                double *im)
{
    unsigned t = cfg->window;
    for (unsigned k = k0; k <= k1; k++) {
        double a = 0.0, b = 0.0;
        for (unsigned n = 0; n < t; n++) {
            unsigned m = (unsigned)(((unsigned long)k * n) % t);
            a += x[n] * cfg->cos_table[m];
            b += x[n] * cfg->sin_table[m];
        }
        re[k - k0] = a;
        im[k - k0] = -b;
    }
}

/* Sum of (|X_k| / T)^2 over each band [edges[b], edges[b+1]); X indexed from first_bin. */
static void bands(const tinyml_feature_op *op, const double *re, const double *im, unsigned first_bin,
                  unsigned t, double *out)
{
    for (unsigned b = 0; b < op->count; b++) {
        double e = 0.0;
        for (unsigned k = op->edges[b]; k < op->edges[b + 1]; k++) {
            double r = re[k - first_bin] / t, i = im[k - first_bin] / t;
            e += r * r + i * i;
        }
        out[b] = band_value(e, op->log);
    }
}

/* Band-pass by keeping bins [bin_lo, bin_hi], analytic-signal magnitude, remove its mean,
 * then band energies of the envelope spectrum (bins 1..env_hi). */
static void envelope_bands(const tinyml_features_config *cfg, const tinyml_feature_op *op, const double *x,
                           double *scratch, double *out)
{
    unsigned t = cfg->window, nb = (unsigned)op->bin_hi - op->bin_lo + 1u;
    double *env = scratch, *re = scratch + t, *im = re + (t / 2u + 1u);
    double mean = 0.0;
    dft(cfg, x, op->bin_lo, op->bin_hi, re, im);
    for (unsigned n = 0; n < t; n++) {
        double a1 = 0.0, a2 = 0.0, b1 = 0.0, b2 = 0.0;
        for (unsigned j = 0; j < nb; j++) {
            unsigned m = (unsigned)(((unsigned long)n * (op->bin_lo + j)) % t);
            a1 += re[j] * cfg->cos_table[m];
            a2 += im[j] * cfg->sin_table[m];
            b1 += re[j] * cfg->sin_table[m];
            b2 += im[j] * cfg->cos_table[m];
        }
        double zr = (a1 - a2) * (2.0 / t), zi = (b1 + b2) * (2.0 / t);
        env[n] = sqrt(zr * zr + zi * zi);
    }
    for (unsigned n = 0; n < t; n++)
        mean += env[n];
    mean = mean / t;
    for (unsigned n = 0; n < t; n++)
        env[n] = env[n] - mean;
    dft(cfg, env, 1u, op->env_hi, re, im);
    bands(op, re, im, 1u, t, out);
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
        double *re = scratch, *im = scratch + (t / 2u + 1u);
        dft(cfg, x, op->bin_lo, op->bin_hi, re, im);
        bands(op, re, im, op->bin_lo, t, out);
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
        for (unsigned i = 0; i < op->count; i++) {
            double s = 0.0;
            for (unsigned n = (unsigned)op->edges[i] + 1u - op->width; n <= op->edges[i]; n++)
                s += x[n];
            out[i] = s / op->width;
        }
        break;
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
        if (op->kind > TINYML_FEAT_ROLLING_MEAN || op->count > TINYML_FEATURES_MAX_COUNT)
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
