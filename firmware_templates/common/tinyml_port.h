/* The few things the application needs from a board. Each firmware family implements them
 * in port.c; the application (tinyml_app.c) is the same on every board. */
#ifndef TINYML_PORT_H
#define TINYML_PORT_H

#include <stddef.h>
#include <stdint.h>

void port_init(void);
/* Send bytes on the serial line (blocking until queued). */
void port_write(const uint8_t *data, size_t len);
/* One received byte, or -1 when none is waiting (never blocks). */
int port_read_byte(void);
/* Nothing to read: wait for input where the port can sleep until an interrupt (saves the
 * host CPU an emulator would burn polling); may return at once. */
void port_idle(void);
/* Free-running latency counter in the board's latency unit (cycles, timer ticks or us). */
uint32_t port_latency_counter(void);
/* Milliseconds since boot. */
uint32_t port_millis(void);
/* Microseconds since boot (wrapping at 2^32), from the finest counter the board has. */
uint32_t port_micros(void);
/* A number that differs between boots where the hardware allows it. */
uint32_t port_boot_id(void);
/* End the emulator with this exit code; returns on real boards (nothing to end). */
void port_exit(int code);

#endif
