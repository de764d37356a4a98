/* TRANSPOSE, SLICE, STRIDED_SLICE: output index i (5 dims) reads input[offset + sum(i[d] * in_strides[d])]. */
typedef struct {
    int32_t out_dims[5], in_strides[5], offset;
} tml_strided_copy_params;
