/* SPI master through ESP-IDF's spi_master driver, mode 3, polled transactions, the driver's
 * own chip select. Board data: host (SPI2_HOST = 1), sck/mosi/miso/cs (GPIO numbers), hz. */
#define TINYML_BUS_KIND_SPI
#include <string.h>

#include "driver/spi_master.h"
#include "tinyml_bus.h"
#include "tinyml_sensor_config.h"

static spi_device_handle_t dev;

int tinyml_bus_init(void)
{
    if (dev)
        return TINYML_BUS_OK;
    spi_bus_config_t bus = {
        .mosi_io_num = TINYML_BUS_MOSI,
        .miso_io_num = TINYML_BUS_MISO,
        .sclk_io_num = TINYML_BUS_SCK,
        .quadwp_io_num = -1,
        .quadhd_io_num = -1,
        .max_transfer_sz = 256,
    };
    spi_device_interface_config_t config = {
        .mode = 3,
        .clock_speed_hz = TINYML_BUS_HZ,
        .spics_io_num = TINYML_BUS_CS,
        .queue_size = 1,
    };
    if (spi_bus_initialize(TINYML_BUS_HOST, &bus, SPI_DMA_CH_AUTO) != ESP_OK ||
        spi_bus_add_device(TINYML_BUS_HOST, &config, &dev) != ESP_OK)
        return TINYML_BUS_ERROR;
    return TINYML_BUS_OK;
}

int tinyml_spi_transfer(const uint8_t *tx, uint8_t *rx, size_t len)
{
    spi_transaction_t t;
    memset(&t, 0, sizeof t);
    t.length = 8u * len;
    t.tx_buffer = tx;
    t.rx_buffer = rx;
    return spi_device_polling_transmit(dev, &t) == ESP_OK ? TINYML_BUS_OK : TINYML_BUS_ERROR;
}
