/* requires: dsp */
/* CONV_2D (not grouped) on the M4 DSP extension: every output pixel is one matrix-vector
 * product of the OHWI weights (widened as in dsp.c, rows of k_h * k_w * in_c) with the input
 * patch under the kernel. A patch that is one contiguous run of the input (a 1-row kernel
 * fully inside, no horizontal dilation: the Conv1D case) is used in place; any other is
 * gathered into a stack buffer, with taps outside the input set to the input zero point,
 * which contributes exactly nothing once the folded bias is counted. */
typedef struct {
    int32_t batches, in_h, in_w, in_c, out_h, out_w, out_c, k_h, k_w;
    int32_t stride_h, stride_w, dil_h, dil_w, pad_h, pad_w;
    int32_t input_zero_point, output_offset, act_min, act_max;
} tml_conv_dsp_params;

static void tml_conv_dsp(const tml_conv_dsp_params *p, const int8_t *input, const int32_t *weights,
                         const int32_t *bias, const int32_t *mult, const int8_t *shift, int8_t *output)
{
    const tml_dsp_out o = {bias, mult, shift, 1, p->output_offset, p->act_min, p->act_max};
    const int32_t depth = p->k_h * p->k_w * p->in_c;
    const int32_t span_h = (p->k_h - 1) * p->dil_h, span_w = (p->k_w - 1) * p->dil_w;
    const int in_place_ok = p->k_h == 1 && (p->dil_w == 1 || p->k_w == 1);
    int8_t patch[depth];
    int32_t b, oy, ox, ky, kx;
    for (b = 0; b < p->batches; ++b) {
        const int8_t *image = input + b * p->in_h * p->in_w * p->in_c;
        for (oy = 0; oy < p->out_h; ++oy) {
            const int32_t y0 = oy * p->stride_h - p->pad_h;
            for (ox = 0; ox < p->out_w; ++ox) {
                const int32_t x0 = ox * p->stride_w - p->pad_w;
                const int8_t *x = patch;
                if (in_place_ok && y0 >= 0 && y0 + span_h < p->in_h && x0 >= 0 && x0 + span_w < p->in_w) {
                    x = image + (y0 * p->in_w + x0) * p->in_c;
                } else {
                    int8_t *dst = patch;
                    for (ky = 0; ky < p->k_h; ++ky) {
                        const int32_t y = y0 + ky * p->dil_h;
                        for (kx = 0; kx < p->k_w; ++kx, dst += p->in_c) {
                            const int32_t xx = x0 + kx * p->dil_w;
                            if (y < 0 || y >= p->in_h || xx < 0 || xx >= p->in_w)
                                memset(dst, p->input_zero_point, (size_t)p->in_c);
                            else
                                memcpy(dst, image + (y * p->in_w + xx) * p->in_c, (size_t)p->in_c);
                        }
                    }
                }
                tml_dsp_matvec(x, depth, weights, p->out_c, &o,
                               output + ((b * p->out_h + oy) * p->out_w + ox) * p->out_c);
            }
        }
    }
}
