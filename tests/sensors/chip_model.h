/* Register-level models of sensor chips, written from their datasheets, behind the bus API
 * (tinyml_bus.h), so the firmware's drivers and sampler run unchanged on the host
 * (tests/test_sensor_models.py). One chip model is linked per test program. */
#ifndef CHIP_MODEL_H
#define CHIP_MODEL_H

#include <stddef.h>
#include <stdint.h>

/* The physical signal of the chip's k-th sample since it started measuring: x, y, z in g, or
 * degC in channel 0 (sensor_harness.c; the test computes the same values). */
void signal_at(unsigned long k, double out[3]);

/* A chip's sample clock: samples made since it started measuring. */
typedef struct {
    double started_at; /* < 0: not measuring */
    unsigned long produced;
} chip_clock_t;

/* The number of samples a chip measuring at `rate` Hz (0: stopped, which resets the clock)
 * has made by `now`; the caller makes the ones between clock->produced and that. */
unsigned long chip_due(chip_clock_t *clock, double now, double rate);

/* The 32-entry FIFO of x, y, z samples of the ADXL345 and the LIS3DH: a full one drops its
 * oldest entry; the data registers show the oldest entry, or the latest sample when empty. */
#define CHIP_FIFO3_DEPTH 32u
typedef struct {
    int16_t entry[CHIP_FIFO3_DEPTH][3];
    unsigned count;
} chip_fifo3_t;

int chip_fifo3_push(chip_fifo3_t *f, const int16_t s[3]); /* 1: the oldest entry was dropped */
void chip_fifo3_pop(chip_fifo3_t *f);                      /* remove the oldest entry, if any */
uint8_t chip_fifo3_data_byte(const chip_fifo3_t *f, const int16_t current[3], unsigned offset); /* 0..5: x LSB..z MSB */

/* The register-pointer writes most I2C chips take: the first byte selects the register, the
 * next ones are written to it and the registers after it (auto-increment). */
void chip_i2c_write_registers(uint8_t *pointer, const uint8_t *w, size_t wlen, void (*write_reg)(uint8_t, uint8_t));

/* Implemented by each chip model. */
int chip_i2c(uint8_t addr, const uint8_t *w, size_t wlen, uint8_t *r, size_t rlen); /* TINYML_BUS_* */
int chip_spi(const uint8_t *tx, uint8_t *rx, size_t len);
void chip_advance(double now_s);   /* produce the samples due by now (FIFO at the configured rate) */
double chip_rate_hz(void);         /* the output data rate the registers select (0: not measuring) */
void chip_wrong_identity(void);    /* make the identity register read something else */

#endif
