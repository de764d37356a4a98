/* Features benchmark on a Cortex-M4F (QEMU mps2-an386, picolibc, semihosting console):
 * compute the baked features of each compiled-in window, print them as float bit patterns
 * (so the host can compare them exactly), and count SysTick ticks around one computation.
 * bench_windows.h (written by benchmarks/data_features.py) defines BENCH_N_WINDOWS and
 * bench_windows[][TINYML_FEATURES_WINDOW * TINYML_FEATURES_CHANNELS]. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "tinyml_features.h"
#include "tinyml_features_config.h"
#include "bench_windows.h"

#define SYST_CSR (*(volatile uint32_t *)0xE000E010u)
#define SYST_RVR (*(volatile uint32_t *)0xE000E014u)
#define SYST_CVR (*(volatile uint32_t *)0xE000E018u)

static float features[TINYML_FEATURES_COUNT];

int main(void)
{
    for (unsigned w = 0; w < BENCH_N_WINDOWS; w++) {
        tinyml_features_compute(bench_windows[w], features);
        printf("features");
        for (unsigned i = 0; i < TINYML_FEATURES_COUNT; i++) {
            uint32_t bits;
            memcpy(&bits, &features[i], sizeof bits);
            printf(" %08lx", (unsigned long)bits);
        }
        printf("\n");
    }
    SYST_RVR = 0x00FFFFFFu;
    SYST_CVR = 0u;
    SYST_CSR = 5u; /* enable, processor clock */
    uint32_t start = SYST_CVR;
    tinyml_features_compute(bench_windows[0], features);
    uint32_t end = SYST_CVR;
    printf("ticks %lu\n", (unsigned long)((start - end) & 0x00FFFFFFu));
    return 0;
}
