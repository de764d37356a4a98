/* DEPTHWISE_CONV_2D on NHWC int8, weights [1, k_h, k_w, in_c * depth_mult];
 * per-output-channel mult/shift; bias may be null. */
typedef struct {
    int32_t batches, in_h, in_w, in_c, out_h, out_w, out_c, k_h, k_w;
    int32_t stride_h, stride_w, dil_h, dil_w, pad_h, pad_w, depth_mult;
    int32_t input_offset, output_offset, act_min, act_max;
} tml_depthwise_conv_params;
