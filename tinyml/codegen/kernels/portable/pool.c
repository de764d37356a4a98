static void tml_pool(const tml_pool_params *p, const int8_t *input, int8_t *output, int average)
{
    int32_t b, oy, ox, c, y, x;
    for (b = 0; b < p->batches; ++b) {
        for (oy = 0; oy < p->out_h; ++oy) {
            for (ox = 0; ox < p->out_w; ++ox) {
                const int32_t y0 = oy * p->stride_h - p->pad_h;
                const int32_t x0 = ox * p->stride_w - p->pad_w;
                const int32_t ys = y0 < 0 ? 0 : y0;
                const int32_t xs = x0 < 0 ? 0 : x0;
                const int32_t ye = y0 + p->k_h < p->in_h ? y0 + p->k_h : p->in_h;
                const int32_t xe = x0 + p->k_w < p->in_w ? x0 + p->k_w : p->in_w;
                const int32_t count = (ye - ys) * (xe - xs);
                for (c = 0; c < p->channels; ++c) {
                    int32_t acc = average ? 0 : -128;
                    for (y = ys; y < ye; ++y) {
                        for (x = xs; x < xe; ++x) {
                            const int32_t v = input[((b * p->in_h + y) * p->in_w + x) * p->channels + c];
                            if (average) {
                                acc += v;
                            } else if (v > acc) {
                                acc = v;
                            }
                        }
                    }
                    if (average && count > 0) {
                        acc = acc > 0 ? (acc + count / 2) / count : (acc - count / 2) / count;
                    }
                    output[((b * p->out_h + oy) * p->out_w + ox) * p->channels + c] =
                        (int8_t)(acc < p->act_min ? p->act_min : (acc > p->act_max ? p->act_max : acc));
                }
            }
        }
    }
}
