/* Reset, semihosting I/O and stack painting for the bare-metal benchmark on mps2-an386.
 * No libc start-up code: the harness should weigh only what a real product would carry. */
#include <stdint.h>
#include "board.h"

extern uint32_t __data_start[], __data_end[], __data_load[], __bss_start[], __bss_end[];
extern uint32_t __stack_bottom[], __stack_top[];
int main(void);

#define STACK_PAINT 0xC5A3E1F7u
#define SYS_WRITE0 0x04
#define SYS_EXIT_EXTENDED 0x20
#define ADP_STOPPED_APPLICATION_EXIT 0x20026

static uint32_t semihost(uint32_t op, const void *arg)
{
    register uint32_t r0 __asm__("r0") = op;
    register const void *r1 __asm__("r1") = arg;
    __asm__ volatile("bkpt 0xAB" : "+r"(r0) : "r"(r1) : "memory");
    return r0;
}

void board_puts(const char *text)
{
    semihost(SYS_WRITE0, text);
}

void board_exit(int code)
{
    const uint32_t block[2] = {ADP_STOPPED_APPLICATION_EXIT, (uint32_t)code};
    for (;;)
        semihost(SYS_EXIT_EXTENDED, block);
}

uint32_t board_stack_used(void)
{
    const uint32_t *word = __stack_bottom;
    while (word < __stack_top && *word == STACK_PAINT)
        word++;
    return (uint32_t)((uintptr_t)__stack_top - (uintptr_t)word);
}

/* Everything below the current stack pointer is free at reset: paint it. */
static void paint_stack(void)
{
    uint32_t *sp;
    __asm__ volatile("mov %0, sp" : "=r"(sp));
    for (uint32_t *word = __stack_bottom; word < sp - 8; word++)
        *word = STACK_PAINT;
}

void reset_handler(void)
{
    volatile uint32_t *cpacr = (volatile uint32_t *)0xE000ED88u;
    *cpacr |= 0xFu << 20; /* the FPU, for code built with -mfloat-abi=hard */
    __asm__ volatile("dsb\n isb");
    for (uint32_t *src = __data_load, *dst = __data_start; dst < __data_end;)
        *dst++ = *src++;
    for (uint32_t *dst = __bss_start; dst < __bss_end;)
        *dst++ = 0;
    paint_stack();
    board_exit(main());
}

static void fault_handler(void)
{
    board_puts("fault\n");
    board_exit(99);
}

__attribute__((section(".vectors"), used)) static const void *const vectors[16] = {
    __stack_top, reset_handler, fault_handler, fault_handler, fault_handler, fault_handler, fault_handler,
};
