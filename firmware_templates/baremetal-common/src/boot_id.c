/* boot_id from uninitialised RAM: it differs between power-ups on real silicon, and the
 * value written back makes a warm reset differ too. (QEMU zeroes RAM: ids repeat there.) */
#include "tinyml_port.h"

static uint32_t noinit_seed[16] __attribute__((section(".noinit")));

uint32_t port_boot_id(void)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (unsigned i = 0; i < 16; i++)
        h = (h ^ noinit_seed[i]) * 16777619u;
    noinit_seed[0] = h + 1u;
    return h;
}
