/* Forced into the nRF52 TEMP driver's host build: its registers go to onchip_model.c. */
#include <stdint.h>
volatile uint32_t *nrf_temp_reg(uint32_t addr);
