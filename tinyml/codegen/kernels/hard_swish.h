/* HARD_SWISH int8 with TFLM's int16 fixed-point pipeline (multipliers pre-scaled to int16). */
typedef struct {
    int32_t size, input_zero_point, output_zero_point;
    int32_t output_multiplier, output_exponent, reluish_multiplier, reluish_exponent;
} tml_hard_swish_params;
