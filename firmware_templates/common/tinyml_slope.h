/* The slope guard of a temperature anomaly model (tinyml/train/slope_guard.py, which documents it): per
 * window the thermal lag's drive slope from a plain and a load-switch least-squares fit, its z against the
 * usual slope at the window's slot of the day, and a one-sided CUSUM whose excess over h raises the anomaly
 * score. Bit for bit as slope_guard.Tables computes it: C99, integers only (int64 sums, no 64-bit
 * division), no heap; the caller owns the state, the tables are baked by tinyml/data/slope_c.py. */
#ifndef TINYML_SLOPE_H
#define TINYML_SLOPE_H

#include <stdint.h>

typedef struct {
    uint16_t window;             /* T samples, 6..256 */
    uint16_t slots;              /* windows per day */
    uint16_t switches;           /* T - 3 switch positions */
    const int32_t *basis;        /* [3 * T] Q30: orthonormal rows of the plain fit */
    const int32_t *switch_rows;  /* [switches * T] Q30: the switch column at each position, orthogonalised */
    const int32_t *slope;        /* [T] the plain fit's slope row */
    const int32_t *switch_slope; /* [switches * T] the slope row of each switch fit */
    const int64_t *med;          /* [slots] the usual slope, in the rows' units */
    const int32_t *inv;          /* [slots] z = (b - med) * inv >> sh, Q16 */
    const uint8_t *sh;           /* [slots] */
    int64_t k, h;                /* Q16 */
    int32_t f_min;               /* Q8 */
} tinyml_slope_config;

typedef struct {
    int64_t s;        /* the CUSUM, Q16 */
    uint32_t last;    /* the slot of the last window */
    uint8_t started;
} tinyml_slope_state;

/* A new stream: the next window starts the CUSUM afresh. */
void tinyml_slope_reset(tinyml_slope_state *st);

/* z (Q16) of one window: samples q[0], q[stride], ... (T of them), in slot `slot`. */
int64_t tinyml_slope_z(const tinyml_slope_config *cfg, const int16_t *q, uint32_t stride, uint32_t slot);

/* One window: S = max(0, S + z - k) (at most 2^47), from 0 after a reset or when `slot` is not the one after
 * the last window's. */
void tinyml_slope_step(const tinyml_slope_config *cfg, tinyml_slope_state *st, const int16_t *q, uint32_t stride,
                       uint32_t slot);

/* S above h (Q16), 0 below, at most UINT32_MAX: the steps tinyml_guard_sum folds into the score. */
uint32_t tinyml_slope_over(const tinyml_slope_config *cfg, const tinyml_slope_state *st);

#endif
