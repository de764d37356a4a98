/* ADXL345 register model (datasheet Rev. G, "Register map" and "FIFO"): DEVID 0xE5, BW_RATE
 * rate codes (3200 Hz >> (15 - code)), POWER_CTL measure bit, DATA_FORMAT full resolution
 * (256 LSB/g), a 32-entry FIFO in stream mode that drops its oldest entry when full and sets
 * INT_SOURCE overrun (bit 0), cleared by reading the data registers; a 6-byte read of
 * DATAX0..DATAZ1 pops one entry. I2C: the first written byte is the register pointer and
 * multi-byte accesses auto-increment. SPI: byte 0 = R (0x80) | MB (0x40) | address. */
#include <math.h>
#include <string.h>

#include "chip_model.h"
#include "tinyml_bus.h"

#define ADDRESS 0x53u
static uint8_t regs[64] = {[0x00] = 0xE5, [0x2C] = 0x0A};
static chip_fifo3_t fifo;
static chip_clock_t sample_clock = {-1.0, 0};
static double last_now;
static int16_t current[3];

void chip_wrong_identity(void)
{
    regs[0x00] = 0x12;
}

double chip_rate_hz(void)
{
    if (!(regs[0x2D] & 0x08u))
        return 0.0;
    return 3200.0 / (double)(1u << (15u - (regs[0x2C] & 0x0Fu)));
}

static int16_t raw(double g)
{
    double lsb = (regs[0x31] & 0x08u) ? 256.0 : 256.0 / (double)(1u << (regs[0x31] & 3u)); /* full res: 256/g */
    return (int16_t)lrint(g * lsb);
}

void chip_advance(double now)
{
    last_now = now;
    unsigned long due = chip_due(&sample_clock, now, chip_rate_hz());
    while (sample_clock.produced < due) {
        double v[3];
        signal_at(sample_clock.produced++, v);
        int16_t s[3] = {raw(v[0]), raw(v[1]), raw(v[2])};
        memcpy(current, s, sizeof s);
        if ((regs[0x38] >> 6) == 2u && chip_fifo3_push(&fifo, s)) /* stream */
            regs[0x30] |= 0x01u; /* overrun */
    }
}

static uint8_t read_reg(uint8_t reg)
{
    if (reg == 0x39)
        return (uint8_t)fifo.count;
    if (reg >= 0x32 && reg <= 0x37)
        return chip_fifo3_data_byte(&fifo, current, reg - 0x32u);
    return regs[reg & 0x3Fu];
}

static void read_burst(uint8_t reg, uint8_t *out, size_t n)
{
    for (size_t i = 0; i < n; i++)
        out[i] = read_reg((uint8_t)(reg + i));
    if (reg <= 0x37 && reg + n > 0x32) { /* the data registers were read: pop one entry */
        regs[0x30] &= (uint8_t)~0x01u;
        chip_fifo3_pop(&fifo);
    }
}

static void write_reg(uint8_t reg, uint8_t value)
{
    if (reg == 0x00 || reg == 0x30 || reg == 0x39 || (reg >= 0x32 && reg <= 0x37))
        return; /* read-only */
    regs[reg & 0x3Fu] = value;
    if (reg == 0x38 && (value >> 6) == 0u)
        fifo.count = 0; /* bypass clears the FIFO */
    chip_advance(last_now);
}

int chip_i2c(uint8_t addr, const uint8_t *w, size_t wlen, uint8_t *r, size_t rlen)
{
    static uint8_t pointer;
    if (addr != ADDRESS)
        return TINYML_BUS_NACK;
    chip_i2c_write_registers(&pointer, w, wlen, write_reg);
    if (rlen)
        read_burst(pointer, r, rlen);
    return TINYML_BUS_OK;
}

int chip_spi(const uint8_t *tx, uint8_t *rx, size_t len)
{
    uint8_t reg = tx[0] & 0x3Fu;
    int multi = (tx[0] & 0x40u) != 0;
    rx[0] = 0xFF;
    if (len < 2)
        return TINYML_BUS_OK;
    if (tx[0] & 0x80u) {
        if (multi)
            read_burst(reg, rx + 1, len - 1);
        else
            read_burst(reg, rx + 1, 1);
    } else {
        for (size_t i = 1; i < len; i++)
            write_reg((uint8_t)(reg + (multi ? i - 1 : 0)), tx[i]);
    }
    return TINYML_BUS_OK;
}
