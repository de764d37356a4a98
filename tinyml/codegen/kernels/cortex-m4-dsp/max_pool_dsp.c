/* MAX_POOL_2D on the M4 DSP extension: four channels per instruction pair (SSUB8, SEL), the
 * window clipped to the input as in the portable kernel (same params as tml_pool_params);
 * channels beyond a multiple of 4 one at a time. */
typedef struct {
    int32_t batches, in_h, in_w, channels, out_h, out_w, k_h, k_w;
    int32_t stride_h, stride_w, pad_h, pad_w, act_min, act_max;
} tml_max_pool_dsp_params;

/* bytewise signed max (min) of a and b: SSUB8 sets the GE flag of each byte where a >= b, SEL
 * takes those bytes from its first operand; one asm statement, so nothing clobbers the flags */
static inline uint32_t tml_max4(uint32_t a, uint32_t b)
{
    uint32_t d;
    __asm__("ssub8 %0, %1, %2\n\tsel %0, %1, %2" : "=&r"(d) : "r"(a), "r"(b));
    return d;
}

static inline uint32_t tml_min4(uint32_t a, uint32_t b)
{
    uint32_t d;
    __asm__("ssub8 %0, %1, %2\n\tsel %0, %2, %1" : "=&r"(d) : "r"(a), "r"(b));
    return d;
}

static void tml_max_pool_dsp(const tml_max_pool_dsp_params *p, const int8_t *input, int8_t *output)
{
    const uint32_t lo4 = 0x01010101u * (uint8_t)p->act_min, hi4 = 0x01010101u * (uint8_t)p->act_max;
    const int32_t quads = p->channels & ~3;
    int32_t b, oy, ox, c, y, x;
    for (b = 0; b < p->batches; ++b) {
        const int8_t *image = input + b * p->in_h * p->in_w * p->channels;
        for (oy = 0; oy < p->out_h; ++oy) {
            const int32_t y0 = oy * p->stride_h - p->pad_h;
            const int32_t ys = y0 < 0 ? 0 : y0, ye = y0 + p->k_h < p->in_h ? y0 + p->k_h : p->in_h;
            for (ox = 0; ox < p->out_w; ++ox, output += p->channels) {
                const int32_t x0 = ox * p->stride_w - p->pad_w;
                const int32_t xs = x0 < 0 ? 0 : x0, xe = x0 + p->k_w < p->in_w ? x0 + p->k_w : p->in_w;
                for (c = 0; c < quads; c += 4) {
                    uint32_t m = 0x80808080u, v;
                    for (y = ys; y < ye; ++y)
                        for (x = xs; x < xe; ++x) {
                            memcpy(&v, image + (y * p->in_w + x) * p->channels + c, 4);
                            m = tml_max4(v, m);
                        }
                    m = tml_min4(tml_max4(m, lo4), hi4);
                    memcpy(output + c, &m, 4);
                }
                for (c = quads; c < p->channels; ++c) {
                    int32_t acc = -128;
                    for (y = ys; y < ye; ++y)
                        for (x = xs; x < xe; ++x) {
                            const int32_t v = image[(y * p->in_w + x) * p->channels + c];
                            acc = v > acc ? v : acc;
                        }
                    output[c] = (int8_t)(acc < p->act_min ? p->act_min : (acc > p->act_max ? p->act_max : acc));
                }
            }
        }
    }
}
