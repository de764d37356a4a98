/* FULLY_CONNECTED: out[b][u] = requant(sum_d w[u][d] * (in[b][d] + input_offset) + bias[u]).
 * mult/shift hold out_depth entries when per_channel, else one; bias may be null. */
typedef struct {
    int32_t batches, accum_depth, out_depth;
    int32_t input_offset, output_offset, act_min, act_max, per_channel;
} tml_fully_connected_params;
