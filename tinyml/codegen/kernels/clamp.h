/* RELU6 (TFLM keeps the input scale): out = clamp(in, lo, hi). */
typedef struct {
    int32_t size, lo, hi;
} tml_clamp_params;
