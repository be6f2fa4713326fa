/* fully_connected, portable C: x − zp converted to int16 once per call (in the thread's scratch),
 * then one int16 dot product per output, which compilers vectorize. */
#include "generic.h"

void ddq_fully_connected__generic(const ddq_op_args *a, int64_t begin, int64_t end) {
    const ddq_op *op = a->op;
    const ddq_tensor *xt = a->in[0], *yt = a->out;
    const uint8_t *x = a->x[0];
    const int8_t *w = a->in[1]->data;
    const int32_t *bias = a->in[2]->data;
    uint8_t *y = a->y;
    const int64_t I = xt->shape[1];
    int16_t *restrict xs = a->scratch;
    const int16_t zp = (int16_t)xt->zero_point;
    for (int64_t i = 0; i < I; i++) xs[i] = (int16_t)(x[i] - zp);
    for (int64_t o = begin; o < end; o++) {
        const int8_t *restrict wo = w + o * I;
        int32_t acc = 0;
        for (int64_t i = 0; i < I; i++) acc += wo[i] * xs[i];
        ddq_requantize_row(&acc, 1, bias[o], op->channel_multipliers[o], yt->zero_point, op->act_min, op->act_max,
                           y + o);
    }
}
