/* requires: noinline */
/* Dot products of int8 rows with an offset int8 vector, four rows at a time: each input is
 * loaded and offset once for four multiply-accumulates (the TFLM reference kernels reload it
 * for every output channel). */

/* acc[k] += sum_i w[k * stride + i] * (x[i] + offset), for k < 4 and 0 <= i < n, n > 0. The
 * arguments used in the loop come first, in registers; stride and acc, used once, may stay on
 * the stack; the loop tests at its end (n > 0), one branch per input. */
TML_NOINLINE static void tml_dot4(const int8_t *x, const int8_t *w, int32_t offset, int32_t n, int32_t stride,
                                  int32_t *acc)
{
    const int8_t *w1 = w + stride, *w2 = w1 + stride, *w3 = w2 + stride;
    const int8_t *end = x + n;
    int32_t a0 = acc[0], a1 = acc[1], a2 = acc[2], a3 = acc[3];
    do {
        const int32_t v = (int32_t)*x++ + offset;
        a0 += (int32_t)*w++ * v;
        a1 += (int32_t)*w1++ * v;
        a2 += (int32_t)*w2++ * v;
        a3 += (int32_t)*w3++ * v;
    } while (x != end);
    acc[0] = a0;
    acc[1] = a1;
    acc[2] = a2;
    acc[3] = a3;
}

/* acc + sum_i w[i] * (x[i] + offset), for i < n */
static int32_t tml_dot1(const int8_t *x, const int8_t *w, int32_t n, int32_t offset, int32_t acc)
{
    int32_t i;
    for (i = 0; i < n; ++i) {
        acc += (int32_t)w[i] * ((int32_t)x[i] + offset);
    }
    return acc;
}
