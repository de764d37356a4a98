/* Register access for register-mapped sensor chips, over I2C or SPI (tinyml_bus.h), so each
 * driver reads like its datasheet. The chip's conventions come from its data file's constants:
 * SPI_READ (the read bit of the SPI command byte, e.g. 0x80), SPI_MULTI (the address
 * auto-increment bit, e.g. 0x40 on the ADXL345 and LIS3DH) and I2C_MULTI (the sub-address
 * auto-increment bit, 0x80 on the LIS3DH). TINYML_SENSOR_ON_SPI says which bus the board wires. */
#ifndef TINYML_SENSOR_REGS_H
#define TINYML_SENSOR_REGS_H

#include <stdint.h>
#include <string.h>

#include "tinyml_bus.h"
#include "tinyml_sensor_config.h"
#include "tinyml_sensor_driver.h"

#ifndef TINYML_SENSOR_SPI_READ
#define TINYML_SENSOR_SPI_READ 0x80u
#endif
#ifndef TINYML_SENSOR_SPI_MULTI
#define TINYML_SENSOR_SPI_MULTI 0x00u
#endif
#ifndef TINYML_SENSOR_I2C_MULTI
#define TINYML_SENSOR_I2C_MULTI 0x00u
#endif
#define TINYML_REGS_MAX 64u /* the longest burst a driver reads */

/* A bus status as a sensor status. */
static inline int regs_status(int bus)
{
    return bus == TINYML_BUS_OK ? TINYML_SENSOR_OK
           : bus == TINYML_BUS_NACK ? TINYML_SENSOR_NO_ANSWER : TINYML_SENSOR_BUS_ERROR;
}

/* Read n (<= TINYML_REGS_MAX) bytes from reg; `same` keeps the address (a FIFO data port). */
static inline int regs_read(uint8_t reg, uint8_t *out, unsigned n, int same)
{
#if TINYML_SENSOR_ON_SPI
    uint8_t tx[TINYML_REGS_MAX + 1u], rx[TINYML_REGS_MAX + 1u];
    memset(tx, 0, n + 1u);
    tx[0] = (uint8_t)(reg | TINYML_SENSOR_SPI_READ | (n > 1u && !same ? TINYML_SENSOR_SPI_MULTI : 0u));
    int st = tinyml_spi_transfer(tx, rx, n + 1u);
    memcpy(out, rx + 1, n);
    return regs_status(st);
#else
    uint8_t sub = (uint8_t)(reg | (n > 1u && !same ? TINYML_SENSOR_I2C_MULTI : 0u));
    return regs_status(tinyml_i2c_write_read(TINYML_SENSOR_I2C_ADDRESS, &sub, 1, out, n));
#endif
}

static inline int regs_write(uint8_t reg, uint8_t value)
{
#if TINYML_SENSOR_ON_SPI
    uint8_t tx[2] = {reg, value}, rx[2];
    return regs_status(tinyml_spi_transfer(tx, rx, 2));
#else
    uint8_t w[2] = {reg, value};
    return regs_status(tinyml_i2c_write_read(TINYML_SENSOR_I2C_ADDRESS, w, 2, 0, 0));
#endif
}

/* Identity check shared by the drivers: read the ID register, compare, describe a mismatch. */
static inline int regs_identity(char *message, unsigned cap)
{
    uint8_t id = 0;
    int st = regs_read(TINYML_SENSOR_ID_REGISTER, &id, 1, 0);
    if (st == TINYML_SENSOR_NO_ANSWER) {
        tinyml_sensor_describe(message, cap, TINYML_SENSOR_NAME ": no answer on " TINYML_SENSOR_BUS_NAME " at ",
                               TINYML_SENSOR_BUS_ADDRESS, 2, " (NACK)");
        return st;
    }
    if (st != TINYML_SENSOR_OK) {
        tinyml_sensor_describe(message, cap, TINYML_SENSOR_NAME ": bus error reading register ",
                               TINYML_SENSOR_ID_REGISTER, 2, "");
        return st;
    }
#if TINYML_SENSOR_ON_SPI
    if (id == 0x00u || id == 0xFFu) { /* SPI has no ACK: a silent MISO reads all zeros or ones */
        tinyml_sensor_describe(message, cap, TINYML_SENSOR_NAME ": no answer on " TINYML_SENSOR_BUS_NAME
                               " (MISO reads ", id, 2, ")");
        return TINYML_SENSOR_NO_ANSWER;
    }
#endif
    if (id != TINYML_SENSOR_ID_VALUE) {
        tinyml_sensor_describe(message, cap, TINYML_SENSOR_NAME ": identity register reads ", id, 2,
                               ", expected " TINYML_SENSOR_ID_TEXT);
        return TINYML_SENSOR_WRONG_ID;
    }
    return TINYML_SENSOR_OK;
}

/* Write a (register, value) table in order, reading each back: a value the chip did not keep
 * means it refused the rate or range (or is another chip). Describes failures in message. */
static inline int regs_configure(const uint8_t (*table)[2], unsigned n, char *message, unsigned cap)
{
    for (unsigned i = 0; i < n; i++) {
        uint8_t back = 0;
        int st = regs_write(table[i][0], table[i][1]);
        if (st == TINYML_SENSOR_OK)
            st = regs_read(table[i][0], &back, 1, 0);
        if (st != TINYML_SENSOR_OK) {
            tinyml_sensor_describe(message, cap, TINYML_SENSOR_NAME ": configuration write failed at register ",
                                   table[i][0], 2, "");
            return st;
        }
        if (back != table[i][1]) {
            tinyml_sensor_describe(message, cap, TINYML_SENSOR_NAME ": the chip did not take the rate or range "
                                   "(register ", table[i][0], 2, ")");
            return TINYML_SENSOR_BAD_RATE;
        }
    }
    return TINYML_SENSOR_OK;
}

/* Report `why` with a fixed message (returns why, negative for sensor_driver_read). */
static inline int regs_fail(int why, char *message, unsigned cap, const char *text)
{
    tinyml_sensor_describe(message, cap, text, 0, 0, "");
    return -why;
}

/* Little- and big-endian signed 16-bit values. */
static inline int16_t regs_le16(const uint8_t *b)
{
    return (int16_t)(uint16_t)(b[0] | (b[1] << 8));
}

static inline int16_t regs_be16(const uint8_t *b)
{
    return (int16_t)(uint16_t)((b[0] << 8) | b[1]);
}

#endif
