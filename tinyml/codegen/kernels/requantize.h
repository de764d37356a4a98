/* QUANTIZE int8 -> int8 and RELU: out = clamp(requant(in - zp_in) + zp_out, act_min, act_max). */
typedef struct {
    int32_t size, input_zero_point, output_zero_point, multiplier, shift, act_min, act_max;
} tml_requantize_params;
