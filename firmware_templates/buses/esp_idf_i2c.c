/* I2C master through ESP-IDF's i2c_master driver (ESP-IDF 5.2+). Board data: port, sda/scl
 * (GPIO numbers), hz. The sensor's address is probed first, so a missing device is a NACK and
 * not a timeout. */
#define TINYML_BUS_KIND_I2C
#include "driver/i2c_master.h"
#include "tinyml_bus.h"
#include "tinyml_sensor_config.h"

#define TIMEOUT_MS 50

static i2c_master_bus_handle_t bus;
static i2c_master_dev_handle_t dev;

int tinyml_bus_init(void)
{
    if (!bus) {
        i2c_master_bus_config_t config = {
            .i2c_port = TINYML_BUS_PORT,
            .sda_io_num = TINYML_BUS_SDA,
            .scl_io_num = TINYML_BUS_SCL,
            .clk_source = I2C_CLK_SRC_DEFAULT,
            .glitch_ignore_cnt = 7,
            .flags.enable_internal_pullup = true,
        };
        if (i2c_new_master_bus(&config, &bus) != ESP_OK)
            return TINYML_BUS_ERROR;
    }
    if (!dev) {
        i2c_device_config_t config = {
            .dev_addr_length = I2C_ADDR_BIT_LEN_7,
            .device_address = TINYML_SENSOR_I2C_ADDRESS,
            .scl_speed_hz = TINYML_BUS_HZ,
        };
        if (i2c_master_bus_add_device(bus, &config, &dev) != ESP_OK)
            return TINYML_BUS_ERROR;
    }
    return TINYML_BUS_OK;
}

int tinyml_i2c_write_read(uint8_t addr, const uint8_t *w, size_t wlen, uint8_t *r, size_t rlen)
{
    esp_err_t err;
    if (i2c_master_probe(bus, addr, TIMEOUT_MS) != ESP_OK)
        return TINYML_BUS_NACK;
    if (wlen && rlen)
        err = i2c_master_transmit_receive(dev, w, wlen, r, rlen, TIMEOUT_MS);
    else if (rlen)
        err = i2c_master_receive(dev, r, rlen, TIMEOUT_MS);
    else
        err = i2c_master_transmit(dev, w, wlen, TIMEOUT_MS);
    return err == ESP_OK ? TINYML_BUS_OK : TINYML_BUS_ERROR;
}
