/* LIS3DH register model (datasheet DocID17530): WHO_AM_I 0x33, CTRL_REG1 ODR codes (1, 10, 25,
 * 50, 100, 200, 400 Hz, 1.344 kHz in normal mode) with X/Y/Z enable bits, CTRL_REG4 FS and HR
 * (12-bit left-justified: 1, 2, 4, 12 mg/digit), CTRL_REG5 FIFO_EN, FIFO_CTRL_REG mode (bypass
 * empties the FIFO, stream keeps the newest 32), FIFO_SRC_REG (OVRN_FIFO bit 6 when all 32
 * slots are full, FSS bits 4:0 unread samples, EMPTY bit 5). A read of OUT_X_L..OUT_Z_H with
 * the auto-increment bit (0x80 on the sub-address) pops one sample. */
#include <math.h>
#include <string.h>

#include "chip_model.h"
#include "tinyml_bus.h"

#define ADDRESS 0x18u
static uint8_t regs[64] = {[0x0F] = 0x33, [0x20] = 0x07};
static chip_fifo3_t fifo;
static chip_clock_t sample_clock = {-1.0, 0};
static double last_now;
static int16_t current[3];

void chip_wrong_identity(void)
{
    regs[0x0F] = 0x32; /* what a LIS331DLH answers */
}

double chip_rate_hz(void)
{
    static const double odr[16] = {0, 1, 10, 25, 50, 100, 200, 400, 1600, 1344};
    if (!(regs[0x20] & 0x07u))
        return 0.0;
    return odr[regs[0x20] >> 4];
}

void chip_advance(double now)
{
    last_now = now;
    static const double mg[4] = {1.0, 2.0, 4.0, 12.0};
    double digit = mg[(regs[0x23] >> 4) & 3u] / 1000.0;
    unsigned long due = chip_due(&sample_clock, now, chip_rate_hz());
    while (sample_clock.produced < due) {
        double v[3];
        signal_at(sample_clock.produced++, v);
        for (unsigned c = 0; c < 3u; c++)
            current[c] = (int16_t)(lrint(v[c] / digit) * 16); /* 12 bits, left-justified */
        if ((regs[0x24] & 0x40u) && (regs[0x2E] >> 6) == 2u)
            chip_fifo3_push(&fifo, current); /* FIFO_SRC_REG shows an overrun while it stays full */
    }
}

static uint8_t read_reg(uint8_t reg)
{
    unsigned count = fifo.count;
    if (reg == 0x2F)
        return (uint8_t)((count == 32u ? 0x40u : 0u) | (count == 0u ? 0x20u : 0u) | (count < 32u ? count : 31u));
    if (reg >= 0x28 && reg <= 0x2D)
        return chip_fifo3_data_byte(&fifo, current, reg - 0x28u);
    return regs[reg & 0x3Fu];
}

static void write_reg(uint8_t reg, uint8_t value)
{
    if (reg == 0x0F || reg == 0x2F || (reg >= 0x28 && reg <= 0x2D))
        return;
    regs[reg & 0x3Fu] = value;
    if (reg == 0x2E && (value >> 6) == 0u)
        fifo.count = 0; /* bypass mode empties the FIFO */
    chip_advance(last_now);
}

int chip_i2c(uint8_t addr, const uint8_t *w, size_t wlen, uint8_t *r, size_t rlen)
{
    static uint8_t pointer, increment;
    if (addr != ADDRESS)
        return TINYML_BUS_NACK;
    if (wlen) {
        pointer = w[0] & 0x7Fu;
        increment = (w[0] & 0x80u) != 0;
    }
    for (size_t i = 1; i < wlen; i++)
        write_reg((uint8_t)(pointer + (increment ? i - 1 : 0)), w[i]);
    for (size_t i = 0; i < rlen; i++)
        r[i] = read_reg((uint8_t)(pointer + (increment ? i : 0)));
    if (rlen && pointer <= 0x2D && pointer + (increment ? rlen : 1) > 0x2D) /* OUT_Z_H read: pop */
        chip_fifo3_pop(&fifo);
    return TINYML_BUS_OK;
}

int chip_spi(const uint8_t *tx, uint8_t *rx, size_t len)
{
    (void)tx;
    memset(rx, 0xFF, len);
    return TINYML_BUS_OK;
}
