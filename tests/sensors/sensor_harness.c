/* Runs the firmware's sampler and a sensor driver against a chip model.
 * usage: sensor_harness WINDOW CHANNELS STEP_MS STEPS [absent|wrong_id|stall_ms=N@MS|hop=H|restart_every=MS]...
 * hop=H reads as a sliding run loop does (a whole window, then H new frames a window); restart_every=MS makes it
 * give up the window it is reading every MS ms and read the next one whole (tinyml_run_restart).
 * Prints RATE <Hz the registers select>, WINDOW <t_ms> <values...> per complete window,
 * ERROR <message> per reported failure, and STATS <reads> <errors> <status> at the end. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chip_model.h"
#include "tinyml_run.h"

extern int bus_chip_absent;
extern uint32_t bus_now_ms;

void signal_at(unsigned long k, double out[3])
{
    static const double x[8] = {0.0, 0.35, 0.5, 0.35, 0.0, -0.35, -0.5, -0.35};
    out[0] = x[k % 8u];
    out[1] = -0.25;
    out[2] = 1.0 + 0.0625 * (double)(k % 3u);
}

int main(int argc, char **argv)
{
    if (argc < 5)
        return 2;
    unsigned window = (unsigned)atoi(argv[1]), channels = (unsigned)atoi(argv[2]);
    unsigned step = (unsigned)atoi(argv[3]), steps = (unsigned)atoi(argv[4]);
    unsigned stall_ms = 0, stall_at = 0, hop = window, restart_every = 0, have = 0;
    for (int a = 5; a < argc; a++) {
        if (!strcmp(argv[a], "absent"))
            bus_chip_absent = 1;
        if (!strcmp(argv[a], "wrong_id"))
            chip_wrong_identity();
        if (sscanf(argv[a], "stall_ms=%u@%u", &stall_ms, &stall_at) != 2 && !strncmp(argv[a], "stall_ms=", 9))
            return 2;
        (void)sscanf(argv[a], "hop=%u", &hop);
        (void)sscanf(argv[a], "restart_every=%u", &restart_every);
    }
    float *samples = calloc(window * channels, sizeof *samples);
    tinyml_sensor_stats_t stats;
    int rate_printed = 0;
    for (unsigned i = 0; i < steps; i++) {
        bus_now_ms += step;
        if (stall_ms && bus_now_ms >= stall_at && bus_now_ms < stall_at + stall_ms)
            continue; /* the firmware is busy elsewhere: the chip's FIFO fills */
        if (restart_every && bus_now_ms % restart_every == 0) {
            have = 0;
            printf("RESTART %u\n", (unsigned)bus_now_ms);
        }
        if (have == window) {
            memmove(samples, samples + hop * channels, sizeof *samples * (window - hop) * channels);
            have = window - hop;
        }
        int rc = tinyml_sensor_read(samples + have * channels, window - have, channels);
        if (rc < 0)
            have = 0;
        if (rc == 0) {
            have = window;
            printf("WINDOW %u", (unsigned)bus_now_ms);
            for (unsigned k = 0; k < window * channels; k++)
                printf(" %.9g", samples[k]);
            printf("\n");
        } else if (rc < 0) {
            printf("LOST %u\n", (unsigned)bus_now_ms); /* the run loop reads its next window whole */
        }
        const char *why = tinyml_sensor_poll_error(&stats);
        if (why)
            printf("ERROR %s\n", why);
        if (!rate_printed && chip_rate_hz() > 0) {
            printf("RATE %.6g\n", chip_rate_hz());
            rate_printed = 1;
        }
    }
    (void)tinyml_sensor_poll_error(&stats);
    printf("STATS %u %u %u\n", (unsigned)stats.reads, (unsigned)stats.errors, (unsigned)stats.status);
    free(samples);
    return 0;
}
