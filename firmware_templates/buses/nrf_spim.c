/* SPI master on the nRF52 SPIM with EasyDMA (nRF52840 product specification v1.7, "SPIM"),
 * mode 3, MSB first, GPIO chip select. Board data: base (SPIM2 0x40023000), sck/mosi/miso/cs
 * (P0 pin numbers), frequency (FREQUENCY value, M2 = 0x20000000). */
#define TINYML_BUS_KIND_SPI
#include "tinyml_bus.h"
#include "tinyml_sensor_config.h"

#define REG(off) (*(volatile uint32_t *)(TINYML_BUS_BASE + (off)))
#define P0(off) (*(volatile uint32_t *)(0x50000000u + (off)))
enum {
    TASKS_START = 0x010, EVENTS_END = 0x118, ENABLE = 0x500, PSEL_SCK = 0x508, PSEL_MOSI = 0x50C, PSEL_MISO = 0x510,
    FREQUENCY = 0x524, RXD_PTR = 0x534, RXD_MAXCNT = 0x538, TXD_PTR = 0x544, TXD_MAXCNT = 0x548, CONFIG = 0x554
};
#define LIMIT 1000000u

int tinyml_bus_init(void)
{
    P0(0x508) = 1u << TINYML_BUS_CS; /* OUTSET: deselected */
    P0(0x518) = 1u << TINYML_BUS_CS; /* DIRSET */
    REG(ENABLE) = 0;
    REG(PSEL_SCK) = TINYML_BUS_SCK;
    REG(PSEL_MOSI) = TINYML_BUS_MOSI;
    REG(PSEL_MISO) = TINYML_BUS_MISO;
    REG(FREQUENCY) = TINYML_BUS_FREQUENCY;
    REG(CONFIG) = (1u << 1) | (1u << 2); /* CPHA, CPOL: mode 3, MSB first */
    REG(ENABLE) = 7u;
    return TINYML_BUS_OK;
}

int tinyml_spi_transfer(const uint8_t *tx, uint8_t *rx, size_t len)
{
    int status = TINYML_BUS_OK;
    P0(0x50C) = 1u << TINYML_BUS_CS; /* OUTCLR: select */
    REG(EVENTS_END) = 0;
    REG(TXD_PTR) = (uint32_t)(uintptr_t)tx;
    REG(TXD_MAXCNT) = len;
    REG(RXD_PTR) = (uint32_t)(uintptr_t)rx;
    REG(RXD_MAXCNT) = len;
    REG(TASKS_START) = 1;
    for (uint32_t i = 0; !REG(EVENTS_END); i++)
        if (i > LIMIT) {
            status = TINYML_BUS_ERROR;
            break;
        }
    P0(0x508) = 1u << TINYML_BUS_CS;
    return status;
}
