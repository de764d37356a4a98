#ifndef HARDWARE_GPIO_H
#define HARDWARE_GPIO_H
#include <stdbool.h>
#include <stdint.h>
enum gpio_function { GPIO_FUNC_SPI = 1, GPIO_FUNC_I2C = 3 };
#define GPIO_OUT 1
#define PICO_ERROR_GENERIC -1
void gpio_set_function(unsigned int gpio, enum gpio_function fn);
void gpio_pull_up(unsigned int gpio);
void gpio_init(unsigned int gpio);
void gpio_set_dir(unsigned int gpio, bool out);
void gpio_put(unsigned int gpio, bool value);
#endif
