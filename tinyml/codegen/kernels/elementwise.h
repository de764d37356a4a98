/* ADD (op 0), SUB (op 1), MUL (op 2) on int8 with broadcasting over 5 dims (stride 0 = broadcast). */
typedef struct {
    int32_t op, dims[5], a_strides[5], b_strides[5];
    int32_t a_offset, b_offset, out_offset, left_shift;
    int32_t m1, s1, m2, s2, m_out, s_out, act_min, act_max;
} tml_elementwise_params;
