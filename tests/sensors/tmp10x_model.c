/* TMP102 register model (datasheet SBOS397): pointer register, temperature (12 bits
 * left-justified, 0.0625 degC), configuration (2 bytes: byte 1 with R1:R0 read-only 11, byte 2
 * with the conversion rate CR1:CR0 = 0.25, 1, 4, 8 Hz), T_LOW 0x4B00 and T_HIGH 0x5000 at
 * power-on. The temperature register updates once per conversion. */
#include <math.h>

#include "chip_model.h"
#include "tinyml_bus.h"

#define ADDRESS 0x48u
static uint16_t regs[4] = {0x0000, 0x60A0, 0x4B00, 0x5000};
static uint8_t pointer;
static unsigned long produced;

void chip_wrong_identity(void)
{
    regs[3] = 0x7FF0; /* a reprogrammed T_HIGH, or another chip */
}

double chip_rate_hz(void)
{
    static const double cr[4] = {0.25, 1.0, 4.0, 8.0};
    return cr[(regs[1] >> 6) & 3u];
}

void chip_advance(double now)
{
    unsigned long due = (unsigned long)floor(now * chip_rate_hz() + 1e-9);
    while (produced < due) {
        double v[3];
        signal_at(produced++, v);
        double t = 21.5 + 0.0625 * (double)(long)(v[0] / 0.05); /* a temperature stepping with x */
        regs[0] = (uint16_t)((int16_t)lrint(t / 0.0625) << 4);
    }
}

int chip_i2c(uint8_t addr, const uint8_t *w, size_t wlen, uint8_t *r, size_t rlen)
{
    if (addr != ADDRESS)
        return TINYML_BUS_NACK;
    if (wlen)
        pointer = w[0] & 3u;
    if (wlen == 3 && pointer != 0)
        regs[pointer] = pointer == 1 ? (uint16_t)(((w[1] | 0x60u) << 8) | w[2]) : (uint16_t)((w[1] << 8) | w[2]);
    if (wlen == 2 && pointer == 1) /* a one-byte configuration write keeps byte 2 */
        regs[1] = (uint16_t)(((w[1] | 0x60u) << 8) | (regs[1] & 0xFFu));
    for (size_t i = 0; i < rlen; i++)
        r[i] = (uint8_t)(i % 2 ? regs[pointer] : regs[pointer] >> 8);
    return TINYML_BUS_OK;
}

int chip_spi(const uint8_t *tx, uint8_t *rx, size_t len)
{
    (void)tx;
    for (size_t i = 0; i < len; i++)
        rx[i] = 0xFF;
    return TINYML_BUS_OK;
}
