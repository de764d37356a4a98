/* MEAN over the middle of [outer][reduced][inner]: requant(sum - zp_in * reduced) + zp_out. */
typedef struct {
    int32_t outer, reduced, inner, input_zero_point, output_zero_point, multiplier, shift;
} tml_mean_params;
