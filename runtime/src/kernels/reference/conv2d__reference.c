/* conv2d, portable C: the direct definition of docs/arithmetic.md §6, one output channel per
 * work item. Any bits 2…8 (codes are unpacked to int8 at load), groups, stride, dilation,
 * asymmetric padding (padded taps contribute nothing: padding is with the zero point). */
#include "reference.h"

void ddq_conv2d__reference(const ddq_op_args *a, int64_t begin, int64_t end) {
    const ddq_op *op = a->op;
    const ddq_tensor *xt = a->in[0], *wt = a->in[1], *yt = a->out;
    const uint8_t *x = a->x[0];
    const int8_t *w = wt->data;
    const int32_t *bias = a->in[2]->data;
    uint8_t *y = a->y;
    const int64_t C = xt->shape[1], H = xt->shape[2], W = xt->shape[3];
    const int64_t O = wt->shape[0], Cg = wt->shape[1], KH = wt->shape[2], KW = wt->shape[3];
    const int64_t OH = yt->shape[2], OW = yt->shape[3];
    const int64_t Og = O / op->groups;
    const int64_t sh = op->stride[0], sw = op->stride[1], dh = op->dilation[0], dw = op->dilation[1];
    const int64_t pt = op->padding[0], pl = op->padding[1];
    const int32_t zp_in = xt->zero_point, zp_out = yt->zero_point;
    (void)C;
    for (int64_t o = begin; o < end; o++) {
        const int64_t c0 = (o / Og) * Cg;
        const int8_t *wo = w + o * Cg * KH * KW;
        const ddq_multiplier m = op->channel_multipliers[o];
        uint8_t *yo = y + o * OH * OW;
        for (int64_t oy = 0; oy < OH; oy++) {
            for (int64_t ox = 0; ox < OW; ox++) {
                int32_t acc = bias[o];
                for (int64_t ci = 0; ci < Cg; ci++) {
                    const uint8_t *xc = x + (c0 + ci) * H * W;
                    const int8_t *wc = wo + ci * KH * KW;
                    for (int64_t ky = 0; ky < KH; ky++) {
                        const int64_t iy = oy * sh - pt + ky * dh;
                        if (iy < 0 || iy >= H) continue;
                        for (int64_t kx = 0; kx < KW; kx++) {
                            const int64_t ix = ox * sw - pl + kx * dw;
                            if (ix < 0 || ix >= W) continue;
                            acc += (int32_t)wc[ky * KW + kx] * ((int32_t)xc[iy * W + ix] - zp_in);
                        }
                    }
                }
                yo[oy * OW + ox] = (uint8_t)ddq_clamp_code(ddq_mbqm(acc, m), zp_out, op->act_min, op->act_max);
            }
        }
    }
}
