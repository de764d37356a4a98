/* I2C master on the STM32F4 I2C peripheral (reference manual RM0390, "I2C"), polled.
 * Board data ([buses.NAME] in the board file): base (I2C1 0x40005400), apb_hz (the APB1
 * clock), hz (bus clock, 100 kHz), rcc_bit (the I2Cx bit of RCC_APB1ENR), scl/sda pins
 * ("PB8"/"PB9") and af (their alternate function, 4). Pins are open-drain with pull-ups. */
#define TINYML_BUS_KIND_I2C
#include "tinyml_bus.h"
#include "tinyml_sensor_config.h"

#define REG(addr) (*(volatile uint32_t *)(addr))
#define I2C(off) REG(TINYML_BUS_BASE + (off))
#define GPIO(port) (0x40020000u + 0x400u * (port))
enum { CR1 = 0x00, CR2 = 0x04, DR = 0x10, SR1 = 0x14, SR2 = 0x18, CCR = 0x1C, TRISE = 0x20 };
enum { SB = 1u << 0, ADDR = 1u << 1, BTF = 1u << 2, RXNE = 1u << 6, TXE = 1u << 7, BERR = 1u << 8,
       ARLO = 1u << 9, AF = 1u << 10 };
#define PE (1u << 0)
#define START (1u << 8)
#define STOP (1u << 9)
#define ACK (1u << 10)
#define LIMIT 100000u

static void pin_af(unsigned port, unsigned pin)
{
    REG(0x40023830u) |= 1u << port;                                           /* RCC_AHB1ENR: GPIOx */
    REG(GPIO(port) + 0x00u) = (REG(GPIO(port)) & ~(3u << (2 * pin))) | (2u << (2 * pin));   /* AF */
    REG(GPIO(port) + 0x04u) |= 1u << pin;                                     /* open drain */
    REG(GPIO(port) + 0x0Cu) = (REG(GPIO(port) + 0x0Cu) & ~(3u << (2 * pin))) | (1u << (2 * pin)); /* pull-up */
    volatile uint32_t *afr = &REG(GPIO(port) + (pin < 8 ? 0x20u : 0x24u));
    *afr = (*afr & ~(0xFu << (4 * (pin % 8)))) | ((uint32_t)TINYML_BUS_AF << (4 * (pin % 8)));
}

/* Wait for all `bits` of SR1; 0, or a bus status when the slave NACKed or the bus failed. */
static int wait(uint32_t bits)
{
    for (uint32_t i = 0; i < LIMIT; i++) {
        uint32_t sr = I2C(SR1);
        if (sr & AF) {
            I2C(SR1) = ~AF;
            return TINYML_BUS_NACK;
        }
        if (sr & (BERR | ARLO)) {
            I2C(SR1) = ~(BERR | ARLO);
            return TINYML_BUS_ERROR;
        }
        if ((sr & bits) == bits)
            return TINYML_BUS_OK;
    }
    return TINYML_BUS_ERROR;
}

int tinyml_bus_init(void)
{
    REG(0x40023840u) |= 1u << TINYML_BUS_RCC_BIT;  /* RCC_APB1ENR: I2Cx */
    pin_af(TINYML_BUS_SCL_PORT, TINYML_BUS_SCL_PIN);
    pin_af(TINYML_BUS_SDA_PORT, TINYML_BUS_SDA_PIN);
    I2C(CR1) = 1u << 15;                           /* SWRST: out of any stuck state */
    I2C(CR1) = 0;
    I2C(CR2) = TINYML_BUS_APB_HZ / 1000000u;       /* FREQ in MHz */
    I2C(CCR) = TINYML_BUS_APB_HZ / (2u * TINYML_BUS_HZ);
    I2C(TRISE) = TINYML_BUS_APB_HZ / 1000000u + 1u; /* 1000 ns rise time in standard mode */
    I2C(CR1) = PE;
    return TINYML_BUS_OK;
}

static int finish(int status)
{
    I2C(CR1) |= STOP;
    return status;
}

static int address(uint8_t byte)
{
    int st;
    I2C(CR1) |= START;
    if ((st = wait(SB)))
        return st;
    I2C(DR) = byte;
    if ((st = wait(ADDR)))
        return st;
    return TINYML_BUS_OK;
}

int tinyml_i2c_write_read(uint8_t addr, const uint8_t *w, size_t wlen, uint8_t *r, size_t rlen)
{
    int st;
    if (wlen || !rlen) {
        if ((st = address((uint8_t)(addr << 1))))
            return finish(st);
        (void)I2C(SR2); /* reading SR2 after SR1 clears ADDR */
        for (size_t i = 0; i < wlen; i++) {
            if ((st = wait(TXE)))
                return finish(st);
            I2C(DR) = w[i];
        }
        if ((st = wait(BTF)))
            return finish(st);
    }
    if (rlen) {
        I2C(CR1) |= ACK;
        if ((st = address((uint8_t)((addr << 1) | 1u))))
            return finish(st);
        if (rlen == 1)
            I2C(CR1) &= ~ACK; /* NACK the only byte */
        (void)I2C(SR2);
        for (size_t i = 0; i < rlen; i++) {
            if (i + 1 == rlen - 1 || rlen == 1)
                I2C(CR1) &= ~ACK; /* NACK the last byte */
            if (i + 1 == rlen)
                I2C(CR1) |= STOP;
            if ((st = wait(RXNE)))
                return finish(st);
            r[i] = (uint8_t)I2C(DR);
        }
        return TINYML_BUS_OK;
    }
    return finish(TINYML_BUS_OK);
}
