/* requires: requant_out */
/* The Cortex-M4 DSP core shared by FULLY_CONNECTED and CONV_2D: int8 weights, kept at their
 * int8 size in flash, times an input widened once to int16; one SMLAD does two MACs. Bit-exact
 * with the portable kernels (same folded bias, same requantization records).
 *
 * Weight layout (lowering.py: pack_rows): rows zero-padded to whole groups of 4 inputs; per
 * group a row holds one word with the bytes (w0, w2, w1, w3), so that SXTB16 gives the int16
 * pair (w0, w1) and SXTB16 ROR #8 the pair (w2, w3), lining up with the widened inputs
 * (x0, x1) and (x2, x3) read as two words. Rows come in blocks of 4 with their words
 * interleaved group by group; rows left over (rows % 4) follow one after the other. The bias
 * holds bias + input_offset * sum(row), so inputs are used as they are. */

static inline uint32_t tml_load4(const void *p)
{
    /* 4 bytes at any alignment: the M4 does unaligned LDR, memcpy keeps C's aliasing rules */
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

static inline int32_t tml_sxtb16_ror8(uint32_t v)
{
    /* bytes 1 and 3 as an int16 pair: one instruction, which ACLE has no intrinsic for */
    int32_t r;
    __asm__("sxtb16 %0, %1, ror #8" : "=r"(r) : "r"(v));
    return r;
}

/* dst = the int8 src[0 .. n) as int16 pairs (x0, x1), (x2, x3), ..., zero-filled to a whole
 * group of 4 (2 * ceil(n / 4) words). src may lie inside dst at byte offset 4 * ceil(n / 4) or
 * later: each word is written after the bytes it replaces have been read. */
static void tml_widen(int32_t *dst, const int8_t *src, int32_t n)
{
    const int8_t *end = src + (n & ~3);
    int32_t i, t[4] = {0, 0, 0, 0};
    while (src != end) {
        const uint32_t v = tml_load4(src);
        const uint32_t e = (uint32_t)__sxtb16(v), o = (uint32_t)tml_sxtb16_ror8(v); /* (x0, x2), (x1, x3) */
        src += 4;
        dst[0] = (int32_t)((e & 0xFFFFu) | (o << 16));
        dst[1] = (int32_t)((e >> 16) | (o & 0xFFFF0000u));
        dst += 2;
    }
    if (n & 3) {
        for (i = 0; i < (n & 3); ++i)
            t[i] = src[i];
        dst[0] = (int32_t)(((uint32_t)t[0] & 0xFFFFu) | ((uint32_t)t[1] << 16));
        dst[1] = (int32_t)((uint32_t)t[2] & 0xFFFFu);
    }
}

/* One group of 4 inputs for 4 interleaved rows (x at r0, w at r1, acc in r4-r7): 2 loads,
 * 8 SXTB16, 8 SMLAD. */
#define TML_DSP_GROUP                                                                                 \
    "ldrd r12, lr, [r0], #8\n\t"                                                                      \
    "ldm r1!, {r8, r9, r10, r11}\n\t"                                                                 \
    "sxtb16 r3, r8\n\tsmlad r4, r3, r12, r4\n\tsxtb16 r8, r8, ror #8\n\tsmlad r4, r8, lr, r4\n\t"      \
    "sxtb16 r3, r9\n\tsmlad r5, r3, r12, r5\n\tsxtb16 r9, r9, ror #8\n\tsmlad r5, r9, lr, r5\n\t"      \
    "sxtb16 r3, r10\n\tsmlad r6, r3, r12, r6\n\tsxtb16 r10, r10, ror #8\n\tsmlad r6, r10, lr, r6\n\t"  \
    "sxtb16 r3, r11\n\tsmlad r7, r3, r12, r7\n\tsxtb16 r11, r11, ror #8\n\tsmlad r7, r11, lr, r7\n\t"

/* acc[0 .. 4 * blocks) = bias[0 .. 4 * blocks) + the blocks of 4 interleaved rows at w (word
 * aligned) times the widened x (word aligned) over groups > 0 groups; blocks > 0. In assembly:
 * the inner loop needs every register (the compiler neither loads four weight words with one
 * LDM nor unrolls: 24 instructions per group against 18), four groups per pass after the
 * groups % 4 first; the block loop keeps its state on the stack (sp: x, acc, bias, blocks
 * left, groups % 4). */
#define TML_ASM_ARG __attribute__((unused)) /* used by the assembly: r0-r3, then the stack */
__attribute__((naked, noinline)) static void tml_dot_blocks(TML_ASM_ARG const int32_t *x, TML_ASM_ARG const int32_t *w,
                                                            TML_ASM_ARG int32_t groups, TML_ASM_ARG int32_t *acc,
                                                            TML_ASM_ARG const int32_t *bias,
                                                            TML_ASM_ARG int32_t blocks)
{
    __asm__("push {r4, r5, r6, r7, r8, r9, r10, r11, lr}\n\t"
            "sub sp, sp, #20\n\t" /* the two stack arguments are now at sp + 56, sp + 60 */
            "str r0, [sp]\n\t"
            "str r3, [sp, #4]\n\t"
            "ldr r4, [sp, #56]\n\t"
            "str r4, [sp, #8]\n\t"
            "ldr r4, [sp, #60]\n\t"
            "str r4, [sp, #12]\n\t"
            "and r4, r2, #3\n\t"
            "str r4, [sp, #16]\n\t"
            "add r2, r0, r2, lsl #3\n" /* end of x */
            "1:\n\t"
            "ldr r3, [sp, #8]\n\t"
            "ldm r3!, {r4, r5, r6, r7}\n\t"
            "str r3, [sp, #8]\n\t"
            "ldr r0, [sp]\n\t"
            "ldr r3, [sp, #16]\n\t"
            "lsls r3, r3, #31\n\t" /* Z: no single group first; C: a pair first (GROUP keeps NZCV) */
            "beq 4f\n\t" TML_DSP_GROUP
            "4:\n\t"
            "bcc 5f\n\t" TML_DSP_GROUP TML_DSP_GROUP
            "5:\n\t"
            "cmp r0, r2\n\t"
            "beq 3f\n"
            "2:\n\t" TML_DSP_GROUP TML_DSP_GROUP TML_DSP_GROUP TML_DSP_GROUP
            "cmp r0, r2\n\t"
            "bne 2b\n"
            "3:\n\t"
            "ldr r3, [sp, #4]\n\t"
            "stm r3!, {r4, r5, r6, r7}\n\t"
            "str r3, [sp, #4]\n\t"
            "ldr r3, [sp, #12]\n\t"
            "subs r3, r3, #1\n\t"
            "str r3, [sp, #12]\n\t"
            "bne 1b\n\t"
            "add sp, sp, #20\n\t"
            "pop {r4, r5, r6, r7, r8, r9, r10, r11, pc}");
}

/* acc + one row at w (word aligned) times the widened x over groups groups */
static int32_t tml_dot1_s16(const int32_t *x, const int32_t *w, int32_t groups, int32_t acc)
{
    int32_t i;
    for (i = 0; i < groups; ++i) {
        const uint32_t v = (uint32_t)w[i];
        acc = __smlad(tml_sxtb16_ror8(v), x[2 * i + 1], __smlad(__sxtb16(v), x[2 * i], acc));
    }
    return acc;
}

/* y[0 .. rows) = requantized (weights * x[0 .. depth) + bias), x widened (tml_widen), w laid
 * out by pack_rows, q the requantization records (step r->step). */
static void tml_dsp_matvec(const int32_t *x, int32_t depth, const int32_t *w, int32_t rows, const int32_t *bias,
                           const int32_t *q, const tml_out_range *r, int8_t *y)
{
    enum { CHUNK = 64 }; /* rows per assembly call, then one requantization call for them */
    const int32_t groups = (depth + 3) >> 2, step = r->step;
    const int32_t whole = rows & ~3; /* a fixed tail start: see portable/fully_connected.c */
    int32_t u, n, acc[CHUNK];
    for (u = 0; u < whole; u += n, w += n * groups) {
        n = whole - u < CHUNK ? whole - u : CHUNK;
        tml_dot_blocks(x, w, groups, acc, bias + u, n >> 2);
        tml_requant_out(acc, n, q + u * step, r, y + u);
    }
    for (u = whole; u < rows; ++u, w += groups) {
        acc[0] = tml_dot1_s16(x, w, groups, bias[u]);
        tml_requant_out(acc, 1, q + u * step, r, y + u);
    }
}
