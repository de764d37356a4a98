/* SPI master through the Pico SDK (hardware_spi), mode 3, MSB first, GPIO chip select. Board
 * data: port (0 or 1), sck/mosi/miso/cs (GPIO numbers), hz. */
#define TINYML_BUS_KIND_SPI
#include "hardware/gpio.h"
#include "hardware/spi.h"
#include "tinyml_bus.h"
#include "tinyml_sensor_config.h"

#define PORT (TINYML_BUS_PORT ? spi1 : spi0)

int tinyml_bus_init(void)
{
    spi_init(PORT, TINYML_BUS_HZ);
    spi_set_format(PORT, 8, SPI_CPOL_1, SPI_CPHA_1, SPI_MSB_FIRST);
    gpio_set_function(TINYML_BUS_SCK, GPIO_FUNC_SPI);
    gpio_set_function(TINYML_BUS_MOSI, GPIO_FUNC_SPI);
    gpio_set_function(TINYML_BUS_MISO, GPIO_FUNC_SPI);
    gpio_init(TINYML_BUS_CS);
    gpio_set_dir(TINYML_BUS_CS, GPIO_OUT);
    gpio_put(TINYML_BUS_CS, 1);
    return TINYML_BUS_OK;
}

int tinyml_spi_transfer(const uint8_t *tx, uint8_t *rx, size_t len)
{
    gpio_put(TINYML_BUS_CS, 0);
    int n = spi_write_read_blocking(PORT, tx, rx, len);
    gpio_put(TINYML_BUS_CS, 1);
    return n == (int)len ? TINYML_BUS_OK : TINYML_BUS_ERROR;
}
