/* PAD over 5 dims: values outside the copied block are `value` (the output zero point by default). */
typedef struct {
    int32_t in_dims[5], out_dims[5], before[5], value;
} tml_pad_params;
