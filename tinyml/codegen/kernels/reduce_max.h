/* REDUCE_MAX over the middle of [outer][reduced][inner] (input and output share quantization). */
typedef struct {
    int32_t outer, reduced, inner;
} tml_reduce_max_params;
