/* Analog Devices ADXL345 3-axis accelerometer, I2C or 4-wire SPI (datasheet Rev. G).
 *
 * DEVID (0x00) reads 0xE5. The driver sets BW_RATE (0x2C) to the rate code of the model's
 * sampling rate, DATA_FORMAT (0x31) to full resolution (3.9 mg/LSB at every range) and the
 * range, FIFO_CTL (0x38) to stream mode, then POWER_CTL (0x2D) to measure. Each FIFO entry is
 * read as one 6-byte burst of DATAX0..DATAZ1 (0x32..0x37, little-endian), which pops it;
 * FIFO_STATUS (0x39) says how many entries wait, INT_SOURCE (0x30) bit 0 flags an overrun
 * (entries lost because the host read too slowly). Units: g; channels x, y, z. */
#include "tinyml_sensor_regs.h"

enum {
    DEVID = 0x00, INT_SOURCE = 0x30, BW_RATE = 0x2C, POWER_CTL = 0x2D, DATA_FORMAT = 0x31, DATAX0 = 0x32,
    FIFO_CTL = 0x38, FIFO_STATUS = 0x39
};

static char message[96];

int sensor_driver_init(void)
{
    int st = regs_identity(message, sizeof message);
    if (st != TINYML_SENSOR_OK)
        return st;
    static const uint8_t setup[][2] = {
        {POWER_CTL, 0x00u},                                    /* standby while configuring */
        {BW_RATE, (uint8_t)TINYML_SENSOR_RATE_CODE},
        {DATA_FORMAT, (uint8_t)(0x08u | TINYML_SENSOR_RANGE_CODE)}, /* FULL_RES, 4-wire SPI, range */
        {FIFO_CTL, 0x80u},                                     /* stream mode */
        {POWER_CTL, 0x08u},                                    /* measure */
    };
    if ((st = regs_configure(setup, sizeof setup / sizeof setup[0], message, sizeof message)))
        return st;
    uint8_t drop;
    (void)regs_read(INT_SOURCE, &drop, 1, 0); /* clear a stale overrun flag */
    return TINYML_SENSOR_OK;
}

int sensor_driver_read(float *frames, unsigned max_frames)
{
    uint8_t status, source, raw[6];
    int st;
    if ((st = regs_read(INT_SOURCE, &source, 1, 0)))
        return -st;
    if (source & 0x01u) {
        /* Entries were lost. Reading the data registers clears the flag: empty the FIFO so the
         * next window starts with fresh, gap-free samples. */
        for (unsigned i = 0; i < 33u && regs_read(DATAX0, raw, 6, 0) == TINYML_SENSOR_OK; i++)
            if (regs_read(FIFO_STATUS, &status, 1, 0) != TINYML_SENSOR_OK || (status & 0x3Fu) == 0u)
                break;
        return regs_fail(TINYML_SENSOR_OVERRUN, message, sizeof message, TINYML_SENSOR_NAME ": FIFO overrun (samples lost)");
    }
    if ((st = regs_read(FIFO_STATUS, &status, 1, 0)))
        return -st;
    unsigned n = status & 0x3Fu;
    if (n > max_frames)
        n = max_frames;
    for (unsigned f = 0; f < n; f++) {
        if ((st = regs_read(DATAX0, raw, 6, 0)))
            return -st;
        for (unsigned c = 0; c < 3u; c++)
            frames[f * 3u + c] = (float)regs_le16(raw + 2u * c) * TINYML_SENSOR_LSB;
    }
    return (int)n;
}

const char *sensor_driver_error(void)
{
    return message;
}
