/* No external bus: on-chip and host-fed (replay) sensors read through their own registers or
 * the protocol, so the bus calls exist only to link and say so. */
#include "tinyml_bus.h"

int tinyml_bus_init(void)
{
    return TINYML_BUS_OK;
}

int tinyml_i2c_write_read(uint8_t addr, const uint8_t *w, size_t wlen, uint8_t *r, size_t rlen)
{
    (void)addr;
    (void)w;
    (void)wlen;
    (void)r;
    (void)rlen;
    return TINYML_BUS_ERROR;
}

int tinyml_spi_transfer(const uint8_t *tx, uint8_t *rx, size_t len)
{
    (void)tx;
    (void)rx;
    (void)len;
    return TINYML_BUS_ERROR;
}
