/* BATCH_TO_SPACE_ND on NHWC, cropping pad_top/pad_left (and what lies past the output). */
typedef struct {
    int32_t in_dims[4], out_dims[4], block_h, block_w, pad_top, pad_left;
} tml_batch_to_space_params;
