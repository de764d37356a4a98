/* Models of on-chip temperature sensors, for the drivers that read them without a bus:
 * - nRF52 TEMP (product specification v1.7): TASKS_START starts a measurement, which sets
 *   EVENTS_DATARDY and TEMP (signed, 0.25 degC steps); routed here through TINYML_MMIO.
 * - RP2040 ADC input 4 (datasheet "Temperature sensor"): V = 0.706 - (T - 27) * 0.001721,
 *   raw = V * 4096 / 3.3, behind the Pico SDK calls the driver makes (sdk/hardware/adc.h).
 * The k-th measurement reads 21.5 + 0.25 * (k % 4) degC. */
#include <math.h>
#include <stdbool.h>
#include <string.h>

#include "chip_model.h"
#include "hardware/adc.h"
#include "tinyml_bus.h"

static unsigned long measured;

static double temperature(void)
{
    return 21.5 + 0.25 * (double)(measured++ % 4u);
}

volatile uint32_t *nrf_temp_reg(uint32_t addr);
volatile uint32_t *nrf_temp_reg(uint32_t addr)
{
    static uint32_t regs[0x600 / 4];
    uint32_t off = (addr - 0x4000C000u) & 0x7FCu;
    if (off == 0x100u && regs[0]) { /* a started measurement is ready when DATARDY is polled */
        regs[0] = 0;
        regs[0x508 / 4] = (uint32_t)(int32_t)lrint(temperature() / 0.25);
        regs[0x100 / 4] = 1;
    }
    return &regs[off / 4];
}

static bool adc_ready, temp_enabled;
static unsigned adc_input;

void adc_init(void)
{
    adc_ready = true;
}

void adc_set_temp_sensor_enabled(bool enable)
{
    temp_enabled = enable;
}

void adc_select_input(unsigned int input)
{
    adc_input = input;
}

uint16_t adc_read(void)
{
    if (!adc_ready || !temp_enabled || adc_input != 4u)
        return 0; /* a driver that forgot a step reads nonsense: the test sees it */
    double volts = 0.706 - (temperature() - 27.0) * 0.001721;
    return (uint16_t)lrint(volts * 4096.0 / 3.3);
}

int chip_i2c(uint8_t addr, const uint8_t *w, size_t wlen, uint8_t *r, size_t rlen)
{
    (void)addr, (void)w, (void)wlen, (void)r, (void)rlen;
    return TINYML_BUS_NACK;
}

int chip_spi(const uint8_t *tx, uint8_t *rx, size_t len)
{
    (void)tx;
    memset(rx, 0xFF, len);
    return TINYML_BUS_OK;
}

void chip_advance(double now_s)
{
    (void)now_s;
}

double chip_rate_hz(void)
{
    return 0.0;
}

void chip_wrong_identity(void)
{
}
