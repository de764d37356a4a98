/* FULLY_CONNECTED: out[b][u] = clamp(requant_u(bias[u] + sum_d w[u][d] * in[b][d]) + output_offset),
 * weights [out_depth][accum_depth]. The input zero point is already folded into bias; requant
 * holds a record of requant_step int32 words per output channel, or one record (step 0) for a
 * per-tensor scale (portable/lowering.py). */
typedef struct {
    int32_t batches, accum_depth, out_depth;
    int32_t output_offset, act_min, act_max, requant_step;
} tml_fully_connected_params;
