static void tml_clamp(const tml_clamp_params *p, const int8_t *input, int8_t *output)
{
    int32_t i;
    for (i = 0; i < p->size; ++i) {
        const int32_t v = input[i];
        output[i] = (int8_t)(v < p->lo ? p->lo : (v > p->hi ? p->hi : v));
    }
}
