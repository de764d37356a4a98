/* requires: dsp */
/* FULLY_CONNECTED on the M4 DSP extension (see dsp.c for the weight layout): each batch row is
 * one matrix-vector product, four output channels per pass over the input. */
typedef struct {
    int32_t batches, accum_depth, out_depth;
    int32_t output_offset, act_min, act_max, per_channel;
} tml_fully_connected_dsp_params;

static void tml_fully_connected_dsp(const tml_fully_connected_dsp_params *p, const int8_t *input,
                                    const int32_t *weights, const int32_t *bias, const int32_t *mult,
                                    const int8_t *shift, int8_t *output)
{
    const tml_dsp_out o = {bias, mult, shift, p->per_channel ? 1 : 0, p->output_offset, p->act_min, p->act_max};
    int32_t b;
    for (b = 0; b < p->batches; ++b)
        tml_dsp_matvec(input + b * p->accum_depth, p->accum_depth, weights, p->out_depth, &o,
                       output + b * p->out_depth);
}
