static void tml_strided_copy(const tml_strided_copy_params *p, const int8_t *input, int8_t *output)
{
    int32_t a, b, c, d, e;
    for (a = 0; a < p->out_dims[0]; ++a) {
        for (b = 0; b < p->out_dims[1]; ++b) {
            for (c = 0; c < p->out_dims[2]; ++c) {
                for (d = 0; d < p->out_dims[3]; ++d) {
                    const int32_t base = p->offset + a * p->in_strides[0] + b * p->in_strides[1] +
                                         c * p->in_strides[2] + d * p->in_strides[3];
                    for (e = 0; e < p->out_dims[4]; ++e) {
                        *output++ = input[base + e * p->in_strides[4]];
                    }
                }
            }
        }
    }
}
