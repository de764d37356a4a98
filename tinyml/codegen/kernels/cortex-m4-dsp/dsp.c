/* Cortex-M4 DSP helpers: four int8 values in a 32-bit word unpack into two pairs of int16
 * (even bytes, odd bytes) that one SMLAD multiplies and adds to an accumulator. */

static inline uint32_t tml_load4(const int8_t *p)
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

/* acc + the dot product of the 4 int8 weights in k with the 4 inputs unpacked as xe, xo */
static inline int32_t tml_mac4(int32_t acc, uint32_t k, int32_t xe, int32_t xo)
{
    acc = __smlad(__sxtb16(k), xe, acc);
    return __smlad(tml_sxtb16_ror8(k), xo, acc);
}
