/* fully_connected, portable C: acc[o] = bias[o] + Σ_i w[o,i]·(x[i] − zp_in), one output per item. */
#include "reference.h"

void ddq_fully_connected__reference(const ddq_op_args *a, int64_t begin, int64_t end) {
    const ddq_op *op = a->op;
    const ddq_tensor *xt = a->in[0], *yt = a->out;
    const uint8_t *x = a->x[0];
    const int8_t *w = a->in[1]->data;
    const int32_t *bias = a->in[2]->data;
    uint8_t *y = a->y;
    const int64_t I = xt->shape[1];
    const int32_t zp_in = xt->zero_point;
    for (int64_t o = begin; o < end; o++) {
        const int8_t *wo = w + o * I;
        int32_t acc = bias[o];
        for (int64_t i = 0; i < I; i++) acc += (int32_t)wo[i] * ((int32_t)x[i] - zp_in);
        y[o] = (uint8_t)ddq_clamp_code(ddq_mbqm(acc, op->channel_multipliers[o]), yt->zero_point, op->act_min,
                                       op->act_max);
    }
}
