static void tml_concat_part(const tml_concat_part_params *p, const int8_t *input, int8_t *output)
{
    int32_t o;
    for (o = 0; o < p->outer; ++o) {
        memcpy(output + o * p->out_stride + p->out_offset, input + o * p->chunk, (size_t)p->chunk);
    }
}
