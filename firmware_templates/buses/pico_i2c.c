/* I2C master through the Pico SDK (hardware_i2c). Board data: port (0 or 1), sda/scl (GPIO
 * numbers), hz. The SDK returns PICO_ERROR_GENERIC when the address is not acknowledged. */
#define TINYML_BUS_KIND_I2C
#include "hardware/gpio.h"
#include "hardware/i2c.h"
#include "tinyml_bus.h"
#include "tinyml_sensor_config.h"

#define PORT (TINYML_BUS_PORT ? i2c1 : i2c0)
#define TIMEOUT_US 20000u

int tinyml_bus_init(void)
{
    i2c_init(PORT, TINYML_BUS_HZ);
    gpio_set_function(TINYML_BUS_SDA, GPIO_FUNC_I2C);
    gpio_set_function(TINYML_BUS_SCL, GPIO_FUNC_I2C);
    gpio_pull_up(TINYML_BUS_SDA);
    gpio_pull_up(TINYML_BUS_SCL);
    return TINYML_BUS_OK;
}

static int status(int rc, size_t want)
{
    if (rc == PICO_ERROR_GENERIC)
        return TINYML_BUS_NACK;
    return rc == (int)want ? TINYML_BUS_OK : TINYML_BUS_ERROR;
}

int tinyml_i2c_write_read(uint8_t addr, const uint8_t *w, size_t wlen, uint8_t *r, size_t rlen)
{
    int st = TINYML_BUS_OK;
    if (wlen || !rlen)
        st = status(i2c_write_timeout_us(PORT, addr, w, wlen, rlen != 0, TIMEOUT_US), wlen);
    if (st == TINYML_BUS_OK && rlen)
        st = status(i2c_read_timeout_us(PORT, addr, r, rlen, false, TIMEOUT_US), rlen);
    return st;
}
