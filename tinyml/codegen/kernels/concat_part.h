/* One CONCATENATION input: outer blocks of chunk values land at out_offset in blocks of out_stride. */
typedef struct {
    int32_t outer, chunk, out_stride, out_offset;
} tml_concat_part_params;
