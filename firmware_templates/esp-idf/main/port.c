/* Board port for ESP-IDF: protocol on UART0 (the USB bridge), cycle counter latency, hardware
 * RNG boot id. ESP-IDF calls app_main() from its main task. */
#include "driver/uart.h"
#include "esp_cpu.h"
#include "esp_random.h"
#include "esp_timer.h"
#include "tinyml_app.h"
#include "tinyml_port.h"

void port_init(void)
{
    uart_driver_install(UART_NUM_0, 2048, 2048, 0, NULL, 0);
}

void port_write(const uint8_t *data, size_t len)
{
    uart_write_bytes(UART_NUM_0, (const char *)data, len);
}

int port_read_byte(void)
{
    uint8_t c;
    /* Wait one tick at most: the idle task must run, or the task watchdog complains. */
    return uart_read_bytes(UART_NUM_0, &c, 1, 1) == 1 ? c : -1;
}

void port_idle(void)
{
}

uint32_t port_latency_counter(void)
{
    return (uint32_t)esp_cpu_get_cycle_count();
}

uint32_t port_millis(void)
{
    return (uint32_t)(esp_timer_get_time() / 1000);
}

uint32_t port_micros(void)
{
    return (uint32_t)esp_timer_get_time();
}

uint32_t port_boot_id(void)
{
    return esp_random();
}

void port_exit(int code)
{
    (void)code; /* a real board has nothing to exit to */
}

void app_main(void)
{
    tinyml_main();
}
