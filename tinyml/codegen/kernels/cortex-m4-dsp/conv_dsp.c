/* requires: dsp */
/* CONV_2D (not grouped) on the M4 DSP extension: every output pixel is one matrix-vector
 * product of the OHWI weights (rows of k_h * k_w * in_c, laid out as in dsp.c) with the
 * widened input patch under the kernel. Taps outside the input hold the input zero point,
 * which contributes exactly nothing once the folded bias is counted.
 *
 * A kernel one row high without horizontal dilation (the Conv1D case) sees contiguous patches:
 * the input row under it, padded with the zero point on both sides, is widened once per output
 * row and each patch used in place (copied only when it starts on an odd int16). Any other
 * kernel has its patch gathered and widened per pixel. Stack: 2 bytes per padded row element
 * and per patch element. */
typedef struct {
    int32_t batches, in_h, in_w, in_c, out_h, out_w, out_c, k_h, k_w;
    int32_t stride_h, stride_w, dil_h, dil_w, pad_h, pad_w;
    int32_t input_zero_point, output_offset, act_min, act_max, requant_step;
} tml_conv_dsp_params;

/* dst (int8, k_w taps of in_c) = the input pixels of row y from column x0 on, dil_w apart,
 * the zero point where outside the image. */
static void tml_conv_dsp_taps(const tml_conv_dsp_params *p, const int8_t *image, int32_t y, int32_t x0,
                              int32_t k_w, int32_t dil_w, int8_t *dst)
{
    int32_t kx;
    for (kx = 0; kx < k_w; ++kx, dst += p->in_c) {
        const int32_t xx = x0 + kx * dil_w;
        if (y < 0 || y >= p->in_h || xx < 0 || xx >= p->in_w)
            memset(dst, p->input_zero_point, (size_t)p->in_c);
        else
            memcpy(dst, image + (y * p->in_w + xx) * p->in_c, (size_t)p->in_c);
    }
}

static void tml_conv_dsp(const tml_conv_dsp_params *p, const int8_t *input, const int32_t *weights,
                         const int32_t *bias, const int32_t *requant, int8_t *output)
{
    const tml_out_range r = {p->output_offset, p->act_min, p->act_max, p->requant_step};
    const int32_t depth = p->k_h * p->k_w * p->in_c, groups = (depth + 3) >> 2;
    const int32_t rowwise = p->k_h == 1 && (p->dil_w == 1 || p->k_w == 1);
    /* row mode: padded_w columns from x = -pad_w cover every patch of an output row; a patch
     * reads up to 3 int16s past its end, so the row has a zeroed group of slack */
    const int32_t padded_w = (p->out_w - 1) * p->stride_w + (p->k_w - 1) * p->dil_w + 1;
    const int32_t row_n = rowwise ? padded_w * p->in_c : 1, row_groups = (row_n + 3) >> 2;
    int32_t row[2 * row_groups + 2], patch[2 * groups];
    int32_t b, oy, ox, ky;
    row[2 * row_groups] = row[2 * row_groups + 1] = 0;
    for (b = 0; b < p->batches; ++b) {
        const int8_t *image = input + b * p->in_h * p->in_w * p->in_c;
        for (oy = 0; oy < p->out_h; ++oy) {
            const int32_t y0 = oy * p->stride_h - p->pad_h;
            int8_t *y = output + (b * p->out_h + oy) * p->out_w * p->out_c;
            if (rowwise) { /* the bytes go in the upper half of row, widened in place */
                tml_conv_dsp_taps(p, image, y0, -p->pad_w, padded_w, 1, (int8_t *)row + 4 * row_groups);
                tml_widen(row, (const int8_t *)row + 4 * row_groups, row_n);
            }
            for (ox = 0; ox < p->out_w; ++ox, y += p->out_c) {
                const int32_t start = ox * p->stride_w * p->in_c; /* in row, in int16s */
                const int32_t *x = patch;
                if (rowwise && !(start & 1)) {
                    x = row + (start >> 1);
                } else if (rowwise) {
                    memcpy(patch, (const int16_t *)(const void *)row + start, sizeof patch);
                } else {
                    int8_t *bytes = (int8_t *)patch + 4 * groups;
                    for (ky = 0; ky < p->k_h; ++ky)
                        tml_conv_dsp_taps(p, image, y0 + ky * p->dil_h, ox * p->stride_w - p->pad_w, p->k_w,
                                          p->dil_w, bytes + ky * p->k_w * p->in_c);
                    tml_widen(patch, bytes, depth);
                }
                tml_dsp_matvec(x, depth, weights, p->out_c, bias, requant, &r, y);
            }
        }
    }
}
