/* SOFTMAX int8 -> int8 (output scale 1/256, zero point -128), TFLM's fixed-point exp path. */
typedef struct {
    int32_t outer, depth, input_multiplier, input_left_shift, diff_min;
} tml_softmax_params;
