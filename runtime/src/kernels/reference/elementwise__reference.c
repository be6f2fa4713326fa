/* Elementwise ops, portable C, one element per work item: quantize and dequantize at the
 * graph's edges (f32 in exactly the order of docs/arithmetic.md §2), add (§6, TFLite's
 * structure with a 2^20 pre-scale), requantize, and reshape when it has to copy. */
#include <math.h>
#include <string.h>

#include "reference.h"

#define ADD_LEFT_SHIFT_FACTOR 1048576 /* 2^20, as a product: left-shifting a negative int is undefined */

void ddq_quantize__reference(const ddq_op_args *a, int64_t begin, int64_t end) {
    const ddq_tensor *yt = a->out;
    const float *x = a->x[0];
    uint8_t *y = a->y;
    const float scale = yt->scales[0], zp = (float)yt->zero_point;
    const float lo = (float)yt->qmin, hi = (float)yt->qmax;
    for (int64_t i = begin; i < end; i++) {
        float t = x[i] / scale;
        t = t + 0.5f;
        t = floorf(t);
        t = t + zp;
        if (isnan(t)) y[i] = (uint8_t)yt->zero_point;
        else y[i] = (uint8_t)(t < lo ? lo : t > hi ? hi : t);
    }
}

void ddq_dequantize__reference(const ddq_op_args *a, int64_t begin, int64_t end) {
    const ddq_tensor *xt = a->in[0];
    const uint8_t *x = a->x[0];
    float *y = a->y;
    const float scale = xt->scales[0];
    for (int64_t i = begin; i < end; i++) y[i] = (float)((int32_t)x[i] - xt->zero_point) * scale;
}

void ddq_add__reference(const ddq_op_args *a, int64_t begin, int64_t end) {
    const ddq_op *op = a->op;
    const uint8_t *x0 = a->x[0], *x1 = a->x[1];
    uint8_t *y = a->y;
    const int32_t zp_a = a->in[0]->zero_point, zp_b = a->in[1]->zero_point, zp_out = a->out->zero_point;
    for (int64_t i = begin; i < end; i++) {
        int64_t ya = ddq_mbqm(((int32_t)x0[i] - zp_a) * ADD_LEFT_SHIFT_FACTOR, op->add_a);
        int64_t yb = ddq_mbqm(((int32_t)x1[i] - zp_b) * ADD_LEFT_SHIFT_FACTOR, op->add_b);
        y[i] = (uint8_t)ddq_clamp_code(ddq_mbqm(ya + yb, op->multiplier), zp_out, op->act_min, op->act_max);
    }
}

void ddq_requantize__reference(const ddq_op_args *a, int64_t begin, int64_t end) {
    const ddq_op *op = a->op;
    const uint8_t *x = a->x[0];
    uint8_t *y = a->y;
    const int32_t zp_in = a->in[0]->zero_point, zp_out = a->out->zero_point;
    for (int64_t i = begin; i < end; i++)
        y[i] = (uint8_t)ddq_clamp_code(ddq_mbqm((int32_t)x[i] - zp_in, op->multiplier), zp_out, op->act_min,
                                       op->act_max);
}

void ddq_reshape__reference(const ddq_op_args *a, int64_t begin, int64_t end) {
    const size_t item = ddq_dtype_size(a->out->dtype);
    if (a->y != a->x[0])
        memcpy((uint8_t *)a->y + begin * item, (const uint8_t *)a->x[0] + begin * item, (size_t)(end - begin) * item);
}
