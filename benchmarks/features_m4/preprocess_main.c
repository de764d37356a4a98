/* Preprocessing benchmark on a Cortex-M4F (QEMU mps2-an386, picolibc, semihosting console):
 * turn each compiled-in float32 window into the model's int8 input with BENCH_PREPROCESS,
 * print the input as hex (so the host compares it exactly), and count SysTick ticks around one
 * call. bench_windows.h (written by benchmarks/data_features.py) defines BENCH_N_WINDOWS,
 * bench_windows[][T * C], BENCH_INPUT_BYTES and BENCH_PREPROCESS, and includes its header. */
#include <stdint.h>
#include <stdio.h>

#include "bench_windows.h"

#define SYST_CSR (*(volatile uint32_t *)0xE000E010u)
#define SYST_RVR (*(volatile uint32_t *)0xE000E014u)
#define SYST_CVR (*(volatile uint32_t *)0xE000E018u)

static int8_t input[BENCH_INPUT_BYTES];

int main(void)
{
    for (unsigned w = 0; w < BENCH_N_WINDOWS; w++) {
        BENCH_PREPROCESS(bench_windows[w], input);
        printf("input ");
        for (unsigned i = 0; i < BENCH_INPUT_BYTES; i++)
            printf("%02x", (unsigned)(uint8_t)input[i]);
        printf("\n");
    }
    SYST_RVR = 0x00FFFFFFu;
    SYST_CVR = 0u;
    SYST_CSR = 5u; /* enable, processor clock */
    uint32_t start = SYST_CVR;
    BENCH_PREPROCESS(bench_windows[0], input);
    uint32_t end = SYST_CVR;
    printf("ticks %lu\n", (unsigned long)((start - end) & 0x00FFFFFFu));
    return 0;
}
