/* The bus layer between sensor drivers and a board family (docs/sensors.md).
 *
 * A sensor driver talks to its chip only through these calls; each family implements them in
 * one file under firmware_templates/buses/ (bit-banged SBCon I2C on the QEMU MPS2 boards,
 * STM32 I2C/SPI, nRF TWIM/SPIM, ESP-IDF i2c_master/spi_master, Pico SDK i2c/spi). So a new
 * sensor touches no bus and a new board touches no sensor. The bus address, pins and clock
 * come from the board file's [buses] table through tinyml_sensor_config.h. */
#ifndef TINYML_BUS_H
#define TINYML_BUS_H

#include <stddef.h>
#include <stdint.h>

/* Return codes of every bus call. */
enum tinyml_bus_status {
    TINYML_BUS_OK = 0,
    TINYML_BUS_NACK = 1,   /* no device acknowledged the address (absent, wrong address, unpowered) */
    TINYML_BUS_ERROR = 2   /* bus fault: arbitration lost, stuck line, timeout */
};

/* Set up the bus the sensor is wired to; returns enum tinyml_bus_status. */
int tinyml_bus_init(void);

/* I2C: write `wlen` bytes, then (repeated start) read `rlen` bytes from 7-bit `addr`.
 * wlen or rlen may be 0. Returns enum tinyml_bus_status. */
int tinyml_i2c_write_read(uint8_t addr, const uint8_t *w, size_t wlen, uint8_t *r, size_t rlen);

/* SPI (mode 3, MSB first, chip select asserted for the whole transfer): clock out `len`
 * bytes of tx and store what comes back in rx. Returns enum tinyml_bus_status. */
int tinyml_spi_transfer(const uint8_t *tx, uint8_t *rx, size_t len);

/* A bus file serves one kind: it defines TINYML_BUS_KIND_I2C or TINYML_BUS_KIND_SPI (or
 * TINYML_BUS_KIND_NONE: no external bus) before including this header, which then defines the
 * calls of the other kind as "not this bus" (one project compiles exactly one bus file). */
#if defined(TINYML_BUS_KIND_I2C) || defined(TINYML_BUS_KIND_NONE)
int tinyml_spi_transfer(const uint8_t *tx, uint8_t *rx, size_t len)
{
    (void)tx;
    (void)rx;
    (void)len;
    return TINYML_BUS_ERROR;
}
#endif
#if defined(TINYML_BUS_KIND_SPI) || defined(TINYML_BUS_KIND_NONE)
int tinyml_i2c_write_read(uint8_t addr, const uint8_t *w, size_t wlen, uint8_t *r, size_t rlen)
{
    (void)addr;
    (void)w;
    (void)wlen;
    (void)r;
    (void)rlen;
    return TINYML_BUS_ERROR;
}
#endif
#ifdef TINYML_BUS_KIND_NONE
int tinyml_bus_init(void)
{
    return TINYML_BUS_OK;
}
#endif

#endif
