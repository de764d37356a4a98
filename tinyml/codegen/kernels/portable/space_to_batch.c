static void tml_space_to_batch(const tml_space_to_batch_params *p, const int8_t *input, int8_t *output)
{
    const int32_t c = p->out_dims[3];
    int32_t ob, oy, ox;
    for (ob = 0; ob < p->out_dims[0]; ++ob) {
        const int32_t b = ob % p->in_dims[0];
        const int32_t shift_w = (ob / p->in_dims[0]) % p->block_w;
        const int32_t shift_h = (ob / p->in_dims[0]) / p->block_w;
        for (oy = 0; oy < p->out_dims[1]; ++oy) {
            const int32_t y = oy * p->block_h + shift_h - p->pad_top;
            for (ox = 0; ox < p->out_dims[2]; ++ox) {
                const int32_t x = ox * p->block_w + shift_w - p->pad_left;
                int8_t *dst = output + ((ob * p->out_dims[1] + oy) * p->out_dims[2] + ox) * c;
                if (y < 0 || y >= p->in_dims[1] || x < 0 || x >= p->in_dims[2]) {
                    memset(dst, p->pad_value, (size_t)c);
                } else {
                    memcpy(dst, input + ((b * p->in_dims[1] + y) * p->in_dims[2] + x) * c, (size_t)c);
                }
            }
        }
    }
}
