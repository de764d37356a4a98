/* What the benchmark harness needs from the board: text out, exit code, stack high-water. */
#ifndef BENCH_BOARD_H
#define BENCH_BOARD_H
#include <stdint.h>

void board_puts(const char *text);
__attribute__((noreturn)) void board_exit(int code);
uint32_t board_stack_used(void);

#endif
