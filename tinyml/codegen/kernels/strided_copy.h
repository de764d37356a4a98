/* TRANSPOSE over 5 dims: output index i reads the input at sum(i[d] * in_strides[d]). */
typedef struct {
    int32_t out_dims[5], in_strides[5];
} tml_transpose_params;
