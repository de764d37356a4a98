#ifndef HARDWARE_I2C_H
#define HARDWARE_I2C_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
typedef struct i2c_inst i2c_inst_t;
extern i2c_inst_t i2c0_inst, i2c1_inst;
#define i2c0 (&i2c0_inst)
#define i2c1 (&i2c1_inst)
unsigned int i2c_init(i2c_inst_t *i2c, unsigned int baudrate);
int i2c_write_timeout_us(i2c_inst_t *i2c, uint8_t addr, const uint8_t *src, size_t len, bool nostop, unsigned int timeout_us);
int i2c_read_timeout_us(i2c_inst_t *i2c, uint8_t addr, uint8_t *dst, size_t len, bool nostop, unsigned int timeout_us);
#endif
