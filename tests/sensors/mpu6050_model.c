/* MPU-6050 register model (register map rev 4.2): WHO_AM_I 0x68, PWR_MGMT_1 resets to 0x40
 * (asleep: no samples), sample rate = gyro output rate / (1 + SMPLRT_DIV) with the gyro output
 * rate 1 kHz when DLPF_CFG is 1..6 and 8 kHz otherwise, ACCEL_CONFIG AFS_SEL (16384 LSB/g >>
 * AFS_SEL), a 1024-byte FIFO fed with ACCEL_XOUT..ZOUT (big-endian) when FIFO_EN bit 3 and
 * USER_CTRL bit 6 are set; when full the oldest bytes are dropped and INT_STATUS bit 4 is set
 * (cleared by reading INT_STATUS); USER_CTRL bit 2 resets the FIFO. FIFO_COUNT (0x72/0x73) is
 * big-endian; reads of FIFO_R_W (0x74) do not advance the register address. */
#include <math.h>
#include <string.h>

#include "chip_model.h"
#include "tinyml_bus.h"

#define ADDRESS 0x68u
static uint8_t regs[128] = {[0x6B] = 0x40, [0x75] = 0x68};
static uint8_t fifo[1024];
static unsigned count;
static chip_clock_t sample_clock = {-1.0, 0};
static double last_now;

void chip_wrong_identity(void)
{
    regs[0x75] = 0x70; /* what an MPU-6500 answers */
}

double chip_rate_hz(void)
{
    if (regs[0x6B] & 0x40u)
        return 0.0;
    unsigned dlpf = regs[0x1A] & 7u;
    double gyro = (dlpf == 0u || dlpf == 7u) ? 8000.0 : 1000.0;
    return gyro / (1.0 + regs[0x19]);
}

void chip_advance(double now)
{
    last_now = now;
    unsigned long due = chip_due(&sample_clock, now, chip_rate_hz());
    double lsb = 16384.0 / (double)(1u << ((regs[0x1C] >> 3) & 3u));
    while (sample_clock.produced < due) {
        double v[3];
        signal_at(sample_clock.produced++, v);
        uint8_t bytes[6];
        for (unsigned c = 0; c < 3u; c++) {
            uint16_t r = (uint16_t)(int16_t)lrint(v[c] * lsb);
            bytes[2 * c] = (uint8_t)(r >> 8);
            bytes[2 * c + 1] = (uint8_t)r;
            regs[0x3B + 2 * c] = bytes[2 * c];
            regs[0x3C + 2 * c] = bytes[2 * c + 1];
        }
        if ((regs[0x6A] & 0x40u) && (regs[0x23] & 0x08u)) {
            if (count + 6u > sizeof fifo) {
                unsigned drop = count + 6u - (unsigned)sizeof fifo;
                memmove(fifo, fifo + drop, count - drop);
                count -= drop;
                regs[0x3A] |= 0x10u; /* FIFO_OFLOW_INT */
            }
            memcpy(fifo + count, bytes, 6);
            count += 6u;
        }
    }
}

static uint8_t read_reg(uint8_t reg)
{
    uint8_t v;
    switch (reg) {
    case 0x72:
        return (uint8_t)(count >> 8);
    case 0x73:
        return (uint8_t)count;
    case 0x74:
        if (!count)
            return 0xFF;
        v = fifo[0];
        memmove(fifo, fifo + 1, --count);
        return v;
    case 0x3A:
        v = regs[0x3A];
        regs[0x3A] = 0; /* cleared by the read */
        return v;
    default:
        return regs[reg & 0x7Fu];
    }
}

static void write_reg(uint8_t reg, uint8_t value)
{
    if (reg == 0x75 || reg == 0x3A || reg == 0x72 || reg == 0x73)
        return;
    if (reg == 0x6A && (value & 0x04u)) {
        count = 0; /* FIFO_RESET, self-clearing */
        value &= (uint8_t)~0x04u;
    }
    regs[reg & 0x7Fu] = value;
    chip_advance(last_now);
}

int chip_i2c(uint8_t addr, const uint8_t *w, size_t wlen, uint8_t *r, size_t rlen)
{
    static uint8_t pointer;
    if (addr != ADDRESS)
        return TINYML_BUS_NACK;
    chip_i2c_write_registers(&pointer, w, wlen, write_reg);
    for (size_t i = 0; i < rlen; i++)
        r[i] = read_reg(pointer == 0x74 ? pointer : (uint8_t)(pointer + i));
    return TINYML_BUS_OK;
}

int chip_spi(const uint8_t *tx, uint8_t *rx, size_t len)
{
    (void)tx;
    memset(rx, 0xFF, len); /* the MPU-6050 has no SPI (the MPU-6000 has) */
    return TINYML_BUS_OK;
}
