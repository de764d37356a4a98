/* InvenSense MPU-6050 6-axis IMU, accelerometer part, I2C (product specification rev 3.4,
 * register map rev 4.2).
 *
 * WHO_AM_I (0x75) reads 0x68. The driver wakes the chip (PWR_MGMT_1 0x6B = 0x01, PLL on the X
 * gyro), sets the digital low-pass filter (CONFIG 0x1A), so the sample clock is 1 kHz, and the
 * divider SMPLRT_DIV (0x19) for the model's rate (1000 / (1 + div) Hz), the range
 * (ACCEL_CONFIG 0x1C), then feeds only the accelerometer into the 1024-byte FIFO (FIFO_EN 0x23 =
 * 0x08, USER_CTRL 0x6A = FIFO reset then enable). FIFO_COUNT (0x72, big-endian bytes) says what
 * waits; FIFO_R_W (0x74) gives the bytes, 6 per sample (X, Y, Z big-endian); INT_STATUS (0x3A)
 * bit 4 flags an overflow. Units: g; channels x, y, z. */
#include "tinyml_sensor_regs.h"

enum {
    SMPLRT_DIV = 0x19, CONFIG = 0x1A, ACCEL_CONFIG = 0x1C, FIFO_EN = 0x23, INT_STATUS = 0x3A, USER_CTRL = 0x6A,
    PWR_MGMT_1 = 0x6B, FIFO_COUNTH = 0x72, FIFO_R_W = 0x74
};
#define FRAMES_PER_BURST (TINYML_REGS_MAX / 6u)

static char message[96];

int sensor_driver_init(void)
{
    int st = regs_identity(message, sizeof message);
    if (st != TINYML_SENSOR_OK)
        return st;
    static const uint8_t setup[][2] = {
        {PWR_MGMT_1, 0x01u},                                        /* awake, PLL with X gyro reference */
        {CONFIG, (uint8_t)TINYML_SENSOR_FILTER_CODE},               /* DLPF: 1 kHz sample clock */
        {SMPLRT_DIV, (uint8_t)TINYML_SENSOR_RATE_CODE},
        {ACCEL_CONFIG, (uint8_t)(TINYML_SENSOR_RANGE_CODE << 3)},   /* AFS_SEL */
        {FIFO_EN, 0x08u},                                           /* ACCEL_FIFO_EN */
    };
    if ((st = regs_configure(setup, sizeof setup / sizeof setup[0], message, sizeof message)))
        return st;
    uint8_t drop;
    if ((st = regs_write(USER_CTRL, 0x04u)) || (st = regs_write(USER_CTRL, 0x40u))) /* FIFO reset, enable */
        return -regs_fail(st, message, sizeof message, TINYML_SENSOR_NAME ": FIFO enable failed");
    (void)regs_read(INT_STATUS, &drop, 1, 0); /* clears the interrupt flags */
    return TINYML_SENSOR_OK;
}

int sensor_driver_read(float *frames, unsigned max_frames)
{
    uint8_t status, count[2], raw[FRAMES_PER_BURST * 6u];
    int st;
    if ((st = regs_read(INT_STATUS, &status, 1, 0)))
        return -st;
    if (status & 0x10u) {
        (void)regs_write(USER_CTRL, 0x44u); /* reset the FIFO: the next window starts clean */
        return regs_fail(TINYML_SENSOR_OVERRUN, message, sizeof message, TINYML_SENSOR_NAME ": FIFO overflow (samples lost)");
    }
    if ((st = regs_read(FIFO_COUNTH, count, 2, 0)))
        return -st;
    unsigned n = (((unsigned)count[0] << 8) | count[1]) / 6u, done = 0;
    if (n > max_frames)
        n = max_frames;
    while (done < n) {
        unsigned burst = n - done < FRAMES_PER_BURST ? n - done : FRAMES_PER_BURST;
        if ((st = regs_read(FIFO_R_W, raw, 6u * burst, 1)))
            return -st;
        for (unsigned f = 0; f < burst; f++)
            for (unsigned c = 0; c < 3u; c++)
                frames[(done + f) * 3u + c] = (float)regs_be16(raw + 6u * f + 2u * c) * TINYML_SENSOR_LSB;
        done += burst;
    }
    return (int)n;
}

const char *sensor_driver_error(void)
{
    return message;
}
