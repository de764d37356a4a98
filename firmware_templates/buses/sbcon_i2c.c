/* I2C on the Arm SBCon two-wire controller of the MPS2/MPS3 FPGA boards (and QEMU's
 * versatile_i2c): the controller only sets and clears the two open-drain lines, so the
 * protocol is bit-banged here. Registers: +0 read SCL (bit0) and SDA (bit1), +0 write sets,
 * +4 write clears. A set line is released (pulled up); the slave drives SDA low for ACK.
 * TINYML_BUS_DELAY_LOOPS paces the half clock period (about 100 kHz on a 25 MHz core). */
#define TINYML_BUS_KIND_I2C
#include "tinyml_bus.h"
#include "tinyml_sensor_config.h"

#define REG(addr) (*(volatile uint32_t *)(addr))
#define SCL 1u
#define SDA 2u
#define STRETCH_LIMIT 100000u /* polls of a held-low SCL before giving up */

static void pause(void)
{
    for (volatile unsigned i = 0; i < TINYML_BUS_DELAY_LOOPS; i++) {
    }
}

static void line(uint32_t which, int high)
{
    REG(TINYML_BUS_BASE + (high ? 0x0u : 0x4u)) = which;
    pause();
}

/* Release SCL and wait for a slave that stretches the clock; 0 when the line came up. */
static int scl_high(void)
{
    line(SCL, 1);
    for (unsigned i = 0; !(REG(TINYML_BUS_BASE) & SCL); i++)
        if (i > STRETCH_LIMIT)
            return -1;
    return 0;
}

static int sda_in(void)
{
    return (REG(TINYML_BUS_BASE) & SDA) != 0;
}

static int start(void)
{
    line(SDA, 1);
    if (scl_high())
        return -1;
    line(SDA, 0);
    line(SCL, 0);
    return 0;
}

static void stop(void)
{
    line(SDA, 0);
    (void)scl_high();
    line(SDA, 1);
}

/* Clock out one byte; 1 when the slave acknowledged, 0 on NACK, -1 on a stuck clock. */
static int put_byte(uint8_t byte)
{
    for (int bit = 7; bit >= 0; bit--) {
        line(SDA, (byte >> bit) & 1u);
        if (scl_high())
            return -1;
        line(SCL, 0);
    }
    line(SDA, 1);
    if (scl_high())
        return -1;
    int ack = !sda_in();
    line(SCL, 0);
    return ack;
}

static int get_byte(uint8_t *byte, int ack)
{
    uint8_t v = 0;
    line(SDA, 1);
    for (int bit = 0; bit < 8; bit++) {
        if (scl_high())
            return -1;
        v = (uint8_t)((v << 1) | (uint8_t)sda_in());
        line(SCL, 0);
    }
    line(SDA, !ack);
    if (scl_high())
        return -1;
    line(SCL, 0);
    line(SDA, 1);
    *byte = v;
    return 0;
}

int tinyml_bus_init(void)
{
    line(SDA | SCL, 1);
    if ((REG(TINYML_BUS_BASE) & (SDA | SCL)) != (SDA | SCL))
        return TINYML_BUS_ERROR; /* a line held low: a slave stuck mid-byte or a short */
    return TINYML_BUS_OK;
}

static int finish(int status)
{
    stop();
    return status;
}

int tinyml_i2c_write_read(uint8_t addr, const uint8_t *w, size_t wlen, uint8_t *r, size_t rlen)
{
    int ack;
    if (wlen || !rlen) {
        if (start())
            return finish(TINYML_BUS_ERROR);
        if ((ack = put_byte((uint8_t)(addr << 1))) <= 0)
            return finish(ack < 0 ? TINYML_BUS_ERROR : TINYML_BUS_NACK);
        for (size_t i = 0; i < wlen; i++)
            if ((ack = put_byte(w[i])) <= 0)
                return finish(ack < 0 ? TINYML_BUS_ERROR : TINYML_BUS_NACK);
    }
    if (rlen) {
        if (start()) /* a repeated start after the write */
            return finish(TINYML_BUS_ERROR);
        if ((ack = put_byte((uint8_t)((addr << 1) | 1u))) <= 0)
            return finish(ack < 0 ? TINYML_BUS_ERROR : TINYML_BUS_NACK);
        for (size_t i = 0; i < rlen; i++)
            if (get_byte(&r[i], i + 1 < rlen))
                return finish(TINYML_BUS_ERROR);
    }
    return finish(TINYML_BUS_OK);
}
