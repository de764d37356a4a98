/* The bus and clock the firmware sees on the host: transfers go to the linked chip model, time
 * is a fake millisecond clock advanced by the harness. A missing chip NACKs on I2C and leaves
 * MISO high on SPI (reads 0xFF). */
#include <math.h>
#include <string.h>

#include "chip_model.h"
#include "tinyml_bus.h"
#include "tinyml_port.h"

int bus_chip_absent;
uint32_t bus_now_ms;

int tinyml_bus_init(void)
{
    return TINYML_BUS_OK;
}

int tinyml_i2c_write_read(uint8_t addr, const uint8_t *w, size_t wlen, uint8_t *r, size_t rlen)
{
    if (bus_chip_absent)
        return TINYML_BUS_NACK;
    chip_advance(bus_now_ms / 1000.0);
    return chip_i2c(addr, w, wlen, r, rlen);
}

int tinyml_spi_transfer(const uint8_t *tx, uint8_t *rx, size_t len)
{
    if (bus_chip_absent) {
        memset(rx, 0xFF, len);
        return TINYML_BUS_OK;
    }
    chip_advance(bus_now_ms / 1000.0);
    return chip_spi(tx, rx, len);
}

int chip_fifo3_push(chip_fifo3_t *f, const int16_t s[3])
{
    int overrun = f->count == CHIP_FIFO3_DEPTH;
    if (overrun)
        chip_fifo3_pop(f);
    memcpy(f->entry[f->count++], s, sizeof f->entry[0]);
    return overrun;
}

void chip_fifo3_pop(chip_fifo3_t *f)
{
    if (!f->count)
        return;
    memmove(f->entry, f->entry + 1, sizeof f->entry[0] * (f->count - 1u));
    f->count--;
}

uint8_t chip_fifo3_data_byte(const chip_fifo3_t *f, const int16_t current[3], unsigned offset)
{
    const int16_t *s = f->count ? f->entry[0] : current;
    uint16_t v = (uint16_t)s[offset / 2u];
    return (uint8_t)(offset % 2u ? v >> 8 : v);
}

void chip_i2c_write_registers(uint8_t *pointer, const uint8_t *w, size_t wlen, void (*write_reg)(uint8_t, uint8_t))
{
    if (wlen)
        *pointer = w[0];
    for (size_t i = 1; i < wlen; i++)
        write_reg((uint8_t)(*pointer + i - 1), w[i]);
}

uint32_t port_millis(void)
{
    return bus_now_ms;
}

unsigned long chip_due(chip_clock_t *clock, double now, double rate)
{
    if (rate <= 0.0) {
        clock->started_at = -1.0;
        return clock->produced;
    }
    if (clock->started_at < 0.0) {
        clock->started_at = now;
        clock->produced = 0;
    }
    return (unsigned long)floor((now - clock->started_at) * rate + 1e-9);
}
