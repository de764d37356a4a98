/* MAX_POOL_2D / AVERAGE_POOL_2D on NHWC int8; the window is clipped to the input. */
typedef struct {
    int32_t batches, in_h, in_w, channels, out_h, out_w, k_h, k_w;
    int32_t stride_h, stride_w, pad_h, pad_w, act_min, act_max;
} tml_pool_params;
