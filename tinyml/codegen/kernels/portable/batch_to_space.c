static void tml_batch_to_space(const tml_batch_to_space_params *p, const int8_t *input, int8_t *output)
{
    const int32_t c = p->in_dims[3];
    int32_t ib, iy, ix;
    for (ib = 0; ib < p->in_dims[0]; ++ib) {
        const int32_t b = ib % p->out_dims[0];
        const int32_t offset = ib / p->out_dims[0];
        const int32_t off_h = offset / p->block_w;
        const int32_t off_w = offset % p->block_w;
        for (iy = 0; iy < p->in_dims[1]; ++iy) {
            const int32_t y = iy * p->block_h + off_h - p->pad_top;
            if (y < 0 || y >= p->out_dims[1]) {
                continue;
            }
            for (ix = 0; ix < p->in_dims[2]; ++ix) {
                const int32_t x = ix * p->block_w + off_w - p->pad_left;
                if (x < 0 || x >= p->out_dims[2]) {
                    continue;
                }
                memcpy(output + ((b * p->out_dims[1] + y) * p->out_dims[2] + x) * c,
                       input + ((ib * p->in_dims[1] + iy) * p->in_dims[2] + ix) * c, (size_t)c);
            }
        }
    }
}
