/* LOGISTIC / TANH int8 through gemmlowp's fixed-point logistic/tanh on Q4.27 inputs. */
typedef struct {
    int32_t size, input_zero_point, input_range_radius, input_multiplier, input_left_shift;
} tml_sigmoid_tanh_params;
