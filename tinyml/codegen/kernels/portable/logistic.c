/* requires: sigmoid_tanh */
static void tml_logistic(const tml_logistic_params *p, const int8_t *input, int8_t *output)
{
    tml_sigmoid_tanh(p, input, output, 0);
}
