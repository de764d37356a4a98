/* State carried from window to window for slow signals: a learned daily cycle and rolling statistics,
 * bit for bit as tinyml/data/features_series.py computes them (that module documents each value).
 * C99, integers only, no heap: the caller owns the state and its profile table.
 *
 * Per window and channel, from the window mean m (Q8 of the int16 samples) and the window's slot of
 * the day, four values in Q8: residual (m - profile[slot]), trend (EMA of the residual), deviation
 * (m - rolling baseline) and scale (EMA of |residual|), of which the config's `columns` are written; then
 * the state learns from the window. */
#ifndef TINYML_SERIES_H
#define TINYML_SERIES_H

#include <stdint.h>

#define TINYML_SERIES_VALUES 4u /* per channel: residual, trend, deviation, scale */

typedef struct {
    uint16_t channels;
    uint16_t slots;          /* windows per day */
    uint8_t profile_shift;   /* each EMA moves 2^-shift of the way to its target */
    uint8_t baseline_shift;
    uint8_t trend_shift;
    uint8_t scale_shift;
    uint8_t columns;         /* bit j set: value j (residual, trend, deviation, scale) is written, in that order */
} tinyml_series_config;

typedef struct {
    int64_t *profile;        /* [slots * channels], Q16 */
    uint8_t *seen;           /* [slots] */
    int64_t *baseline;       /* [channels], Q16 */
    int64_t *trend;          /* [channels], Q16 */
    int64_t *scale;          /* [channels], Q16 */
    uint32_t slot;           /* the next window's slot of the day */
    uint8_t started;
} tinyml_series_state;

/* Forget everything (a new stream); the next window is in slot `slot`. */
void tinyml_series_reset(const tinyml_series_config *cfg, tinyml_series_state *st, uint32_t slot);

/* The slot of the day of a window whose last sample was read `end_ms` ms into the day (< 86400000) and
 * whose first sample `span_ms` before it: round(start * slots / day) mod slots, in integers (the
 * slot_ending of tinyml/data/features_series.py); slots < 65536, as the config's u16 holds them. */
uint32_t tinyml_series_slot_ending(uint32_t slots, uint32_t end_ms, uint32_t span_ms);

/* One window: means_q8[channels] in, out[channels * 4] (channel by channel) written; the slot advances. */
void tinyml_series_step(const tinyml_series_config *cfg, tinyml_series_state *st, const int64_t *means_q8,
                        int64_t *out);

#endif
