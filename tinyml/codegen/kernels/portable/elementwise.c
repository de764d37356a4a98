/* requires: fixedpoint */
static int8_t tml_elementwise_one(const tml_elementwise_params *p, int32_t a, int32_t b)
{
    int32_t r;
    a += p->a_offset;
    b += p->b_offset;
    if (p->op == 2) {
        r = tml_requant(a * b, p->m_out, p->s_out);
    } else {
        const int32_t sa = tml_requant((int32_t)((uint32_t)a << p->left_shift), p->m1, p->s1);
        const int32_t sb = tml_requant((int32_t)((uint32_t)b << p->left_shift), p->m2, p->s2);
        r = tml_requant(p->op == 0 ? sa + sb : sa - sb, p->m_out, p->s_out);
    }
    return tml_clamp8(r + p->out_offset, p->act_min, p->act_max);
}

static void tml_elementwise(const tml_elementwise_params *p, const int8_t *a, const int8_t *b, int8_t *out)
{
    int32_t i0, i1, i2, i3, i4;
    for (i0 = 0; i0 < p->dims[0]; ++i0) {
        for (i1 = 0; i1 < p->dims[1]; ++i1) {
            for (i2 = 0; i2 < p->dims[2]; ++i2) {
                for (i3 = 0; i3 < p->dims[3]; ++i3) {
                    const int32_t ao = i0 * p->a_strides[0] + i1 * p->a_strides[1] + i2 * p->a_strides[2] +
                                       i3 * p->a_strides[3];
                    const int32_t bo = i0 * p->b_strides[0] + i1 * p->b_strides[1] + i2 * p->b_strides[2] +
                                       i3 * p->b_strides[3];
                    for (i4 = 0; i4 < p->dims[4]; ++i4) {
                        *out++ = tml_elementwise_one(p, a[ao + i4 * p->a_strides[4]], b[bo + i4 * p->b_strides[4]]);
                    }
                }
            }
        }
    }
}
