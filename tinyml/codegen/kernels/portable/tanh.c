/* requires: sigmoid_tanh */
static void tml_tanh(const tml_tanh_params *p, const int8_t *input, int8_t *output)
{
    tml_sigmoid_tanh(p, input, output, 1);
}
