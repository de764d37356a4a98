/* Benchmark harness: print the model's output for each compiled-in input, then run the
 * timing loops between markers that the instruction-counting QEMU plugin snapshots.
 *
 * bench_glue.h (written by benchmarks/codegen_m4.py) includes the generated model header and
 * defines BENCH_INVOKE, BENCH_INPUT_SIZE, BENCH_OUTPUT_SIZE, BENCH_N_INPUTS and bench_inputs. */
#include <stdint.h>
#include "bench_glue.h"
#include "board.h"

#ifndef BENCH_LOOP_LONG
#define BENCH_LOOP_LONG 5u
#endif
#ifndef BENCH_LOOP_SHORT
#define BENCH_LOOP_SHORT 2u
#endif

static int8_t input[BENCH_INPUT_SIZE];
static int8_t output[BENCH_OUTPUT_SIZE];
static volatile int run_inference;

/* The plugin records its instruction count each time this function runs. */
__attribute__((noinline)) void bench_mark(void)
{
    __asm__ volatile("" ::: "memory");
}

static void refill(const int8_t *src)
{
    for (uint32_t i = 0; i < BENCH_INPUT_SIZE; i++)
        input[i] = src[i];
}

/* "out <hex bytes>\n", written in small pieces so that the buffer adds little to the RAM figure */
static void print_output(void)
{
    static const char digits[] = "0123456789abcdef";
    char piece[2 * 16 + 1];
    board_puts("out ");
    for (uint32_t i = 0; i < BENCH_OUTPUT_SIZE; i += 16) {
        char *p = piece;
        for (uint32_t j = i; j < i + 16 && j < BENCH_OUTPUT_SIZE; j++) {
            uint8_t byte = (uint8_t)output[j];
            *p++ = digits[byte >> 4];
            *p++ = digits[byte & 0xF];
        }
        *p = '\0';
        board_puts(piece);
    }
    board_puts("\n");
}

static void print_number(const char *label, uint32_t value)
{
    char text[24];
    char *p = text + sizeof text - 1;
    *p = '\0';
    *--p = '\n';
    do {
        *--p = (char)('0' + value % 10);
        value /= 10;
    } while (value != 0);
    board_puts(label);
    board_puts(p);
}

/* Each iteration refills the input, as TFLM's harness does; run_inference == 0 gives the
 * loop's own cost, which the benchmark subtracts. */
__attribute__((noinline)) static void timing_loop(uint32_t count, int infer)
{
    run_inference = infer;
    for (uint32_t i = 0; i < count; i++) {
        refill(bench_inputs[0]);
        if (run_inference)
            BENCH_INVOKE(input, output);
    }
}

int main(void)
{
    for (uint32_t k = 0; k < BENCH_N_INPUTS; k++) {
        refill(bench_inputs[k]);
        if (BENCH_INVOKE(input, output) != 0) {
            board_puts("invoke failed\n");
            return 2;
        }
        print_output();
    }
#ifdef BENCH_TIMING
    /* One code path for every loop (volatile: never unrolled), so their fixed costs match;
     * the empty last step only closes the fourth interval. */
    static volatile const uint32_t plan[5][2] = {
        {BENCH_LOOP_LONG, 1}, {BENCH_LOOP_SHORT, 1}, {BENCH_LOOP_LONG, 0}, {BENCH_LOOP_SHORT, 0}, {0, 0}};
    for (uint32_t step = 0; step < 5; step++) {
        bench_mark();
        timing_loop(plan[step][0], (int)plan[step][1]);
    }
#endif
    print_number("stack ", board_stack_used());
    return 0;
}
