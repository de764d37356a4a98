/* Board port for the QEMU Xtensa sim machine: console and exit by SIMCALL, CCOUNT latency. */
#include <string.h>

#include "tinyml_app.h"
#include "tinyml_port.h"

enum { SYS_EXIT = 1, SYS_READ = 3, SYS_WRITE = 4 };

static int simcall(int nr, int a, int b, int c)
{
    register int a2 __asm("a2") = nr;
    register int a3 __asm("a3") = a;
    register int a4 __asm("a4") = b;
    register int a5 __asm("a5") = c;
    __asm volatile("simcall" : "+r"(a2), "+r"(a3) : "r"(a4), "r"(a5) : "memory");
    return a2;
}

extern char _bss_start, _bss_end;
void xtensa_c_start(void);

void xtensa_c_start(void)
{
    memset(&_bss_start, 0, (size_t)(&_bss_end - &_bss_start));
    port_exit(tinyml_main());
}

void port_init(void)
{
}

void port_write(const uint8_t *data, size_t len)
{
    while (len) {
        int n = simcall(SYS_WRITE, 1, (int)(uintptr_t)data, (int)len);
        if (n > 0) {
            data += n;
            len -= (size_t)n;
        }
    }
}

int port_read_byte(void)
{
    uint8_t c;
    return simcall(SYS_READ, 0, (int)(uintptr_t)&c, 1) == 1 ? c : -1; /* -1 (EAGAIN) when empty */
}

void port_idle(void)
{
}

uint32_t port_latency_counter(void)
{
    uint32_t ccount;
    __asm volatile("rsr %0, ccount" : "=a"(ccount));
    return ccount;
}

uint32_t port_millis(void)
{
    /* CCOUNT runs at 40 MHz: 40,000 ticks per millisecond. */
    static uint32_t last, ms, rest;
    uint32_t now = port_latency_counter();
    rest += now - last;
    last = now;
    ms += rest / 40000u;
    rest %= 40000u;
    return ms;
}

uint32_t port_micros(void)
{
    /* 40 CCOUNT ticks per microsecond, accumulated so CCOUNT's wrap is harmless. */
    static uint32_t last, us, rest;
    uint32_t now = port_latency_counter();
    rest += now - last;
    last = now;
    us += rest / 40u;
    rest %= 40u;
    return us;
}

void port_exit(int code)
{
    simcall(SYS_EXIT, code, 0, 0);
}
