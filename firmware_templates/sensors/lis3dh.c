/* STMicroelectronics LIS3DH 3-axis accelerometer, I2C (datasheet DocID17530 rev 2).
 *
 * WHO_AM_I (0x0F) reads 0x33. The driver sets CTRL_REG1 (0x20) to the rate code with X, Y, Z
 * on, CTRL_REG4 (0x23) to block data update, the range and high resolution (12-bit), enables
 * the FIFO (CTRL_REG5 0x24 bit 6) in stream mode (FIFO_CTRL_REG 0x2E = 0x80). FIFO_SRC_REG
 * (0x2F) holds the unread samples (bits 4:0) and OVRN_FIFO (bit 6: all 32 slots full, the next
 * sample overwrites the oldest). A sample is OUT_X_L..OUT_Z_H (0x28..0x2D, little-endian,
 * left-justified 12 bits) read in one burst with the sub-address auto-increment bit (0x80).
 * Units: g; channels x, y, z. */
#include "tinyml_sensor_regs.h"

enum { CTRL_REG1 = 0x20, CTRL_REG4 = 0x23, CTRL_REG5 = 0x24, OUT_X_L = 0x28, FIFO_CTRL_REG = 0x2E, FIFO_SRC_REG = 0x2F };

static char message[96];

int sensor_driver_init(void)
{
    int st = regs_identity(message, sizeof message);
    if (st != TINYML_SENSOR_OK)
        return st;
    static const uint8_t setup[][2] = {
        {CTRL_REG1, (uint8_t)((TINYML_SENSOR_RATE_CODE << 4) | 0x07u)}, /* ODR, normal power, X Y Z on */
        {CTRL_REG4, (uint8_t)(0x88u | (TINYML_SENSOR_RANGE_CODE << 4))}, /* BDU, FS, HR */
        {CTRL_REG5, 0x40u},                                             /* FIFO_EN */
        {FIFO_CTRL_REG, 0x80u},                                         /* stream mode */
    };
    if ((st = regs_configure(setup, sizeof setup / sizeof setup[0], message, sizeof message)))
        return st;
    return TINYML_SENSOR_OK;
}

int sensor_driver_read(float *frames, unsigned max_frames)
{
    uint8_t src, raw[6];
    int st;
    if ((st = regs_read(FIFO_SRC_REG, &src, 1, 0)))
        return -st;
    if (src & 0x40u) {
        /* Full: the oldest sample may already be overwritten. Bypass mode empties the FIFO,
         * stream mode starts it again, so the next window has no gap. */
        (void)regs_write(FIFO_CTRL_REG, 0x00u);
        (void)regs_write(FIFO_CTRL_REG, 0x80u);
        return regs_fail(TINYML_SENSOR_OVERRUN, message, sizeof message, TINYML_SENSOR_NAME ": FIFO overrun (samples lost)");
    }
    unsigned n = src & 0x1Fu;
    if (n > max_frames)
        n = max_frames;
    for (unsigned f = 0; f < n; f++) {
        if ((st = regs_read(OUT_X_L, raw, 6, 0)))
            return -st;
        for (unsigned c = 0; c < 3u; c++)
            frames[f * 3u + c] = (float)(regs_le16(raw + 2u * c) / 16) * TINYML_SENSOR_LSB;
    }
    return (int)n;
}

const char *sensor_driver_error(void)
{
    return message;
}
