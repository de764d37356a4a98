/* I2C master on the nRF52 TWIM with EasyDMA (nRF52840 product specification v1.7, "TWIM").
 * Board data: base (TWIM0 0x40003000), scl/sda (P0 pin numbers), frequency (the FREQUENCY
 * register value, K100 = 0x01980000). A write then read uses the LASTTX_STARTRX shortcut for a
 * repeated start; ERRORSRC tells an address NACK (ANACK) or data NACK (DNACK). */
#define TINYML_BUS_KIND_I2C
#include "tinyml_bus.h"
#include "tinyml_sensor_config.h"

#define REG(off) (*(volatile uint32_t *)(TINYML_BUS_BASE + (off)))
enum {
    TASKS_STARTRX = 0x000, TASKS_STARTTX = 0x008, TASKS_STOP = 0x014, EVENTS_STOPPED = 0x104, EVENTS_ERROR = 0x124,
    SHORTS = 0x200, ERRORSRC = 0x4C4, ENABLE = 0x500, PSEL_SCL = 0x508, PSEL_SDA = 0x50C, FREQUENCY = 0x524,
    RXD_PTR = 0x534, RXD_MAXCNT = 0x538, TXD_PTR = 0x544, TXD_MAXCNT = 0x548, ADDRESS = 0x588
};
#define LIMIT 1000000u

int tinyml_bus_init(void)
{
    REG(ENABLE) = 0;
    REG(PSEL_SCL) = TINYML_BUS_SCL;
    REG(PSEL_SDA) = TINYML_BUS_SDA;
    REG(FREQUENCY) = TINYML_BUS_FREQUENCY;
    REG(ENABLE) = 6u;
    return TINYML_BUS_OK;
}

int tinyml_i2c_write_read(uint8_t addr, const uint8_t *w, size_t wlen, uint8_t *r, size_t rlen)
{
    static uint8_t tx[8]; /* EasyDMA reads RAM only: a write from flash is copied here */
    if (wlen > sizeof tx)
        return TINYML_BUS_ERROR;
    for (size_t i = 0; i < wlen; i++)
        tx[i] = w[i];
    REG(ADDRESS) = addr;
    REG(EVENTS_STOPPED) = 0;
    REG(EVENTS_ERROR) = 0;
    REG(ERRORSRC) = 7u;
    REG(TXD_PTR) = (uint32_t)(uintptr_t)tx;
    REG(TXD_MAXCNT) = wlen;
    REG(RXD_PTR) = (uint32_t)(uintptr_t)r;
    REG(RXD_MAXCNT) = rlen;
    if (wlen && rlen) {
        REG(SHORTS) = (1u << 7) | (1u << 12); /* LASTTX_STARTRX, LASTRX_STOP */
        REG(TASKS_STARTTX) = 1;
    } else if (rlen) {
        REG(SHORTS) = 1u << 12;
        REG(TASKS_STARTRX) = 1;
    } else {
        REG(SHORTS) = 1u << 9; /* LASTTX_STOP */
        REG(TASKS_STARTTX) = 1;
    }
    for (uint32_t i = 0; !REG(EVENTS_STOPPED); i++) {
        if (REG(EVENTS_ERROR)) {
            REG(TASKS_STOP) = 1;
            while (!REG(EVENTS_STOPPED)) {
            }
            break;
        }
        if (i > LIMIT)
            return TINYML_BUS_ERROR;
    }
    uint32_t err = REG(ERRORSRC);
    REG(ERRORSRC) = err;
    return (err & 6u) ? TINYML_BUS_NACK : err ? TINYML_BUS_ERROR : TINYML_BUS_OK;
}
