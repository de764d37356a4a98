/* LEAKY_RELU: identity multiplier for x >= 0, alpha multiplier below. */
typedef struct {
    int32_t size, input_zero_point, output_zero_point, m_identity, s_identity, m_alpha, s_alpha;
} tml_leaky_relu_params;
