/* Reset handler and vector table for a bare-metal Cortex-M: copy .data, clear .bss, enable
 * the FPU where there is one, run the application. Symbols come from link.ld. */
#include <stdint.h>
#include <string.h>

#include "tinyml_app.h"
#include "tinyml_port.h"

extern uint32_t _data_start, _data_end, _data_load, _bss_start, _bss_end, _stack_top;
void SysTick_Handler(void);
void External_Handler(void) __attribute__((weak, alias("default_handler")));

void default_handler(void);

void default_handler(void)
{
    for (;;) {
    }
}

void Reset_Handler(void)
{
    memcpy(&_data_start, &_data_load, (size_t)((char *)&_data_end - (char *)&_data_start));
    memset(&_bss_start, 0, (size_t)((char *)&_bss_end - (char *)&_bss_start));
#if defined(__ARM_FP)
    *(volatile uint32_t *)0xE000ED88u |= 0xFu << 20; /* CPACR: full access to CP10 and CP11 */
    __asm volatile("dsb\n isb");
#endif
    port_exit(tinyml_main());
    default_handler();
}

#define EXTERNAL_IRQS 48

/* Every external interrupt goes to External_Handler: the port enables at most its UART's. */
__attribute__((section(".vectors"), used)) static void (*const vectors[16 + EXTERNAL_IRQS])(void) = {
    (void (*)(void))&_stack_top, Reset_Handler, default_handler, default_handler, /* NMI, HardFault */
    default_handler, default_handler, default_handler, 0, 0, 0, 0,                  /* MemManage..reserved */
    default_handler, default_handler, 0, default_handler, SysTick_Handler,        /* SVC..SysTick */
    [16 ... 16 + EXTERNAL_IRQS - 1] = External_Handler,
};
