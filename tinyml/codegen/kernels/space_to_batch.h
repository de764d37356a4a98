/* SPACE_TO_BATCH_ND on NHWC: out batch = (shift_h * block_w + shift_w) * in_n + b. */
typedef struct {
    int32_t in_dims[4], out_dims[4], block_h, block_w, pad_top, pad_left, pad_value;
} tml_space_to_batch_params;
