/* requires: fixedpoint */
static void tml_conv(const tml_conv_params *p, const int8_t *input, const int8_t *weights,
                     const int32_t *bias, const int32_t *mult, const int8_t *shift, int8_t *output)
{
    const int32_t per_group = p->out_c / (p->in_c / p->filter_in_c);
    int32_t b, oy, ox, oc, ky, kx, ic;
    for (b = 0; b < p->batches; ++b) {
        for (oy = 0; oy < p->out_h; ++oy) {
            for (ox = 0; ox < p->out_w; ++ox) {
                const int32_t y0 = oy * p->stride_h - p->pad_h;
                const int32_t x0 = ox * p->stride_w - p->pad_w;
                for (oc = 0; oc < p->out_c; ++oc) {
                    const int32_t c0 = (oc / per_group) * p->filter_in_c;
                    int32_t acc = 0;
                    for (ky = 0; ky < p->k_h; ++ky) {
                        const int32_t y = y0 + ky * p->dil_h;
                        if (y < 0 || y >= p->in_h) {
                            continue;
                        }
                        for (kx = 0; kx < p->k_w; ++kx) {
                            const int32_t x = x0 + kx * p->dil_w;
                            const int8_t *in;
                            const int8_t *w;
                            if (x < 0 || x >= p->in_w) {
                                continue;
                            }
                            in = input + ((b * p->in_h + y) * p->in_w + x) * p->in_c + c0;
                            w = weights + ((oc * p->k_h + ky) * p->k_w + kx) * p->filter_in_c;
                            for (ic = 0; ic < p->filter_in_c; ++ic) {
                                acc += (int32_t)w[ic] * ((int32_t)in[ic] + p->input_offset);
                            }
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
