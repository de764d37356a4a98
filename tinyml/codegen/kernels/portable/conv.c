/* requires: fixedpoint, dot */
/* When the kernel's taps along a row are contiguous in memory (no grouping, no horizontal
 * dilation), the in-bounds part of each kernel row is one run of input values and of weights,
 * and four output channels share each loaded input (tml_dot4). Otherwise taps are visited one
 * by one. Out-of-bounds taps are skipped, as in TFLM's reference kernel. */
static void tml_conv(const tml_conv_params *p, const int8_t *input, const int8_t *weights,
                     const int32_t *bias, const int32_t *mult, const int8_t *shift, int8_t *output)
{
    const int32_t in_h = p->in_h, in_w = p->in_w, in_c = p->in_c, out_c = p->out_c;
    const int32_t k_h = p->k_h, k_w = p->k_w, fic = p->filter_in_c, offset = p->input_offset;
    const int32_t per_group = out_c / (in_c / fic);
    const int32_t filter_size = k_h * k_w * fic;
    const int runs = fic == in_c && p->dil_w == 1;
    int32_t b, oy, ox, oc, ky, kx, k, n;
    for (b = 0; b < p->batches; ++b) {
        for (oy = 0; oy < p->out_h; ++oy) {
            const int32_t y0 = oy * p->stride_h - p->pad_h;
            for (ox = 0; ox < p->out_w; ++ox) {
                const int32_t x0 = ox * p->stride_w - p->pad_w;
                /* in-bounds kernel columns [kx_lo, kx_hi) when taps are contiguous */
                const int32_t kx_lo = x0 < 0 ? -x0 : 0;
                const int32_t kx_hi = in_w - x0 < k_w ? in_w - x0 : k_w;
                int8_t *y = output + ((b * p->out_h + oy) * p->out_w + ox) * out_c;
                for (oc = 0; oc < out_c; oc += n) {
                    int32_t acc[4];
                    acc[0] = acc[1] = acc[2] = acc[3] = 0; /* not an initializer: -Os makes that a memset */
                    n = runs && out_c - oc >= 4 ? 4 : 1;
                    for (ky = 0; ky < k_h; ++ky) {
                        const int32_t yy = y0 + ky * p->dil_h;
                        const int8_t *row, *w;
                        if (yy < 0 || yy >= in_h) {
                            continue;
                        }
                        row = input + (b * in_h + yy) * in_w * in_c;
                        w = weights + (oc * k_h + ky) * k_w * fic;
                        if (runs && kx_hi > kx_lo) {
                            const int8_t *xs = row + (x0 + kx_lo) * in_c;
                            const int32_t len = (kx_hi - kx_lo) * in_c;
                            if (n == 4) {
                                tml_dot4(xs, w + kx_lo * fic, offset, len, filter_size, acc);
                            } else {
                                acc[0] = tml_dot1(xs, w + kx_lo * fic, len, offset, acc[0]);
                            }
                        } else if (!runs) {
                            const int32_t c0 = (oc / per_group) * fic;
                            for (kx = 0; kx < k_w; ++kx) {
                                const int32_t xx = x0 + kx * p->dil_w;
                                if (xx >= 0 && xx < in_w) {
                                    acc[0] = tml_dot1(row + xx * in_c + c0, w + kx * fic, fic, offset, acc[0]);
                                }
                            }
                        }
                    }
                    for (k = 0; k < n; ++k) {
                        const int32_t a = acc[k] + (bias ? bias[oc + k] : 0);
                        y[oc + k] = tml_clamp8(tml_requant(a, mult[oc + k], shift[oc + k]) + p->output_offset,
                                               p->act_min, p->act_max);
                    }
                }
            }
        }
    }
}
