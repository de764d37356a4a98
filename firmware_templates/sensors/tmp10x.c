/* TMP102 / TMP105-class I2C temperature sensors (TI datasheets SBOS397, SBOS363).
 *
 * Registers (pointer byte first): 0x00 temperature (12 bits left-justified, 0.0625 degC per
 * LSB, two's complement), 0x01 configuration, 0x02 T_LOW, 0x03 T_HIGH. These chips have no ID
 * register: identity is checked on T_HIGH, whose power-on value is 80 degC (0x5000) on both,
 * and which this driver never writes. The configuration written (TINYML_SENSOR_CONFIG) sets
 * continuous conversion at the data file's resolution; it is read back (TMP102: the first
 * byte only, its second byte holds status bits). Units: degC. */
#include "tinyml_bus.h"
#include "tinyml_sensor_config.h"
#include "tinyml_sensor_driver.h"

static char message[96];

static int bus_status(int st)
{
    return st == TINYML_BUS_NACK ? TINYML_SENSOR_NO_ANSWER : TINYML_SENSOR_BUS_ERROR;
}

static int read16(uint8_t reg, uint16_t *value)
{
    uint8_t v[2];
    int st = tinyml_i2c_write_read(TINYML_SENSOR_I2C_ADDRESS, &reg, 1, v, 2);
    *value = (uint16_t)((v[0] << 8) | v[1]);
    return st;
}

static int failed(int why, const char *text)
{
    unsigned n = 0;
    while (text[n] && n + 1 < sizeof message) {
        message[n] = text[n];
        n++;
    }
    message[n] = 0;
    return why;
}

int sensor_driver_init(void)
{
    uint16_t id;
    int st = read16(TINYML_SENSOR_ID_REGISTER, &id);
    if (st != TINYML_BUS_OK)
        return failed(bus_status(st), st == TINYML_BUS_NACK
                      ? TINYML_SENSOR_NAME ": no answer at I2C address " TINYML_SENSOR_ADDRESS_TEXT " on " TINYML_SENSOR_BUS_NAME " (NACK)"
                      : TINYML_SENSOR_NAME ": bus error on " TINYML_SENSOR_BUS_NAME);
    if (id != TINYML_SENSOR_ID_VALUE) {
        tinyml_sensor_describe(message, sizeof message, TINYML_SENSOR_NAME ": identity register reads ", id, 4,
                               ", expected " TINYML_SENSOR_ID_TEXT);
        return TINYML_SENSOR_WRONG_ID;
    }
    uint8_t config[3] = {0x01u, TINYML_SENSOR_CONFIG, (uint8_t)TINYML_SENSOR_RATE_CODE};
    if ((st = tinyml_i2c_write_read(TINYML_SENSOR_I2C_ADDRESS, config, TINYML_SENSOR_CONFIG_BYTES + 1u, 0, 0)))
        return failed(bus_status(st), TINYML_SENSOR_NAME ": configuration write failed");
    uint16_t back;
    if ((st = read16(0x01u, &back)))
        return failed(bus_status(st), TINYML_SENSOR_NAME ": configuration read failed");
    if ((back >> 8) != TINYML_SENSOR_CONFIG)
        return failed(TINYML_SENSOR_BAD_RATE, TINYML_SENSOR_NAME ": the chip did not take the configuration");
    return TINYML_SENSOR_OK;
}

int sensor_driver_read(float *frames, unsigned max_frames)
{
    uint16_t raw;
    if (max_frames == 0)
        return 0;
    int st = read16(0x00u, &raw);
    if (st != TINYML_BUS_OK) {
        failed(bus_status(st), TINYML_SENSOR_NAME ": temperature read failed (sensor lost)");
        return -bus_status(st);
    }
    frames[0] = (float)((int16_t)raw >> 4) * 0.0625f;
    return 1;
}

const char *sensor_driver_error(void)
{
    return message;
}
