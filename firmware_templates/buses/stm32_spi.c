/* SPI master on the STM32F4 SPI peripheral (RM0390, "SPI"), mode 3, MSB first, polled, with a
 * GPIO chip select. Board data: base (SPI1 0x40013000), rcc_reg (RCC enable register address)
 * and rcc_bit, br (baud-rate divider code: f_PCLK / 2^(br+1)), sck/miso/mosi pins and af,
 * cs pin (GPIO output, active low). */
#define TINYML_BUS_KIND_SPI
#include "tinyml_bus.h"
#include "tinyml_sensor_config.h"

#define REG(addr) (*(volatile uint32_t *)(addr))
#define SPI(off) REG(TINYML_BUS_BASE + (off))
#define GPIO(port) (0x40020000u + 0x400u * (port))
enum { CR1 = 0x00, SR = 0x08, DR = 0x0C };
#define LIMIT 100000u

static void pin_mode(unsigned port, unsigned pin, unsigned mode)
{
    REG(0x40023830u) |= 1u << port; /* RCC_AHB1ENR: GPIOx */
    REG(GPIO(port)) = (REG(GPIO(port)) & ~(3u << (2 * pin))) | (mode << (2 * pin));
    if (mode == 2u) {
        volatile uint32_t *afr = &REG(GPIO(port) + (pin < 8 ? 0x20u : 0x24u));
        *afr = (*afr & ~(0xFu << (4 * (pin % 8)))) | ((uint32_t)TINYML_BUS_AF << (4 * (pin % 8)));
    }
}

static void cs(int active)
{
    REG(GPIO(TINYML_BUS_CS_PORT) + 0x18u) = active ? 1u << (16 + TINYML_BUS_CS_PIN) : 1u << TINYML_BUS_CS_PIN;
}

int tinyml_bus_init(void)
{
    REG(TINYML_BUS_RCC_REG) |= 1u << TINYML_BUS_RCC_BIT;
    pin_mode(TINYML_BUS_SCK_PORT, TINYML_BUS_SCK_PIN, 2u);
    pin_mode(TINYML_BUS_MISO_PORT, TINYML_BUS_MISO_PIN, 2u);
    pin_mode(TINYML_BUS_MOSI_PORT, TINYML_BUS_MOSI_PIN, 2u);
    pin_mode(TINYML_BUS_CS_PORT, TINYML_BUS_CS_PIN, 1u);
    cs(0);
    /* CPHA, CPOL, MSTR, BR, SSM + SSI (software slave management), then SPE */
    SPI(CR1) = (1u << 0) | (1u << 1) | (1u << 2) | ((uint32_t)TINYML_BUS_BR << 3) | (1u << 9) | (1u << 8);
    SPI(CR1) |= 1u << 6;
    return TINYML_BUS_OK;
}

int tinyml_spi_transfer(const uint8_t *tx, uint8_t *rx, size_t len)
{
    int status = TINYML_BUS_OK;
    cs(1);
    for (size_t i = 0; i < len && status == TINYML_BUS_OK; i++) {
        uint32_t n = 0;
        while (!(SPI(SR) & 2u) && ++n < LIMIT) { /* TXE */
        }
        SPI(DR) = tx[i];
        n = 0;
        while (!(SPI(SR) & 1u) && ++n < LIMIT) { /* RXNE */
        }
        if (n >= LIMIT)
            status = TINYML_BUS_ERROR;
        rx[i] = (uint8_t)SPI(DR);
    }
    while (SPI(SR) & (1u << 7)) { /* BSY */
    }
    cs(0);
    return status;
}
