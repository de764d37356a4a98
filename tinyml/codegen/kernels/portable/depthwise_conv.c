/* requires: fixedpoint */
static void tml_depthwise_conv(const tml_depthwise_conv_params *p, const int8_t *input,
                               const int8_t *weights, const int32_t *bias, const int32_t *mult,
                               const int8_t *shift, int8_t *output)
{
    int32_t b, oy, ox, ic, m, ky, kx;
    for (b = 0; b < p->batches; ++b) {
        for (oy = 0; oy < p->out_h; ++oy) {
            for (ox = 0; ox < p->out_w; ++ox) {
                const int32_t y0 = oy * p->stride_h - p->pad_h;
                const int32_t x0 = ox * p->stride_w - p->pad_w;
                for (ic = 0; ic < p->in_c; ++ic) {
                    for (m = 0; m < p->depth_mult; ++m) {
                        const int32_t oc = ic * p->depth_mult + m;
                        int32_t acc = 0;
                        for (ky = 0; ky < p->k_h; ++ky) {
                            const int32_t y = y0 + ky * p->dil_h;
                            if (y < 0 || y >= p->in_h) {
                                continue;
                            }
                            for (kx = 0; kx < p->k_w; ++kx) {
                                const int32_t x = x0 + kx * p->dil_w;
                                if (x < 0 || x >= p->in_w) {
                                    continue;
                                }
                                acc += (int32_t)weights[(ky * p->k_w + kx) * p->out_c + oc] *
                                       ((int32_t)input[((b * p->in_h + y) * p->in_w + x) * p->in_c + ic] +
                                        p->input_offset);
                            }
                        }
                        if (bias) {
                            acc += bias[oc];
                        }
                        acc = tml_requant(acc, mult[oc], shift[oc]) + p->output_offset;
                        output[((b * p->out_h + oy) * p->out_w + ox) * p->out_c + oc] =
                            tml_clamp8(acc, p->act_min, p->act_max);
                    }
                }
            }
        }
    }
}
