/* CONV_2D on NHWC int8 with OHWI weights (filter_in_c < in_c means grouped convolution);
 * per-output-channel mult/shift; bias may be null. */
typedef struct {
    int32_t batches, in_h, in_w, in_c, out_h, out_w, out_c, k_h, k_w;
    int32_t stride_h, stride_w, dil_h, dil_w, pad_h, pad_w, filter_in_c;
    int32_t input_offset, output_offset, act_min, act_max;
} tml_conv_params;
