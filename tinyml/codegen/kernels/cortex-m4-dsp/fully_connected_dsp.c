/* requires: dsp */
/* FULLY_CONNECTED on the M4 DSP extension (see dsp.c for the weight layout): each batch row is
 * widened to int16 once (2 bytes of stack per input), then one matrix-vector product, four
 * output channels per pass over it. */
typedef struct {
    int32_t batches, accum_depth, out_depth;
    int32_t output_offset, act_min, act_max, requant_step;
} tml_fully_connected_dsp_params;

static void tml_fully_connected_dsp(const tml_fully_connected_dsp_params *p, const int8_t *input,
                                    const int32_t *weights, const int32_t *bias, const int32_t *requant,
                                    int8_t *output)
{
    const tml_out_range r = {p->output_offset, p->act_min, p->act_max, p->requant_step};
    int32_t x[2 * ((p->accum_depth + 3) >> 2)];
    int32_t b;
    for (b = 0; b < p->batches; ++b) {
        tml_widen(x, input + b * p->accum_depth, p->accum_depth);
        tml_dsp_matvec(x, p->accum_depth, weights, p->out_depth, bias, requant, &r, output + b * p->out_depth);
    }
}
