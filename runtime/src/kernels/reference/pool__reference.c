/* Pooling, portable C, one channel plane per work item (docs/arithmetic.md §6): avg_pool
 * (count-exclude-pad, rounding half away from zero), max_pool (padding never wins),
 * global_avg_pool (a mean through a requantization multiplier, TFLite's MEAN). */
#include "reference.h"

typedef struct window {
    int64_t y0, y1, x0, x1; /* the part of the window inside the input: [y0, y1) × [x0, x1) */
} window;

static window clip_window(const ddq_op *op, int64_t oy, int64_t ox, int64_t H, int64_t W) {
    int64_t top = oy * op->stride[0] - op->padding[0], left = ox * op->stride[1] - op->padding[1];
    window w = {top, top + op->kernel[0], left, left + op->kernel[1]};
    if (w.y0 < 0) w.y0 = 0;
    if (w.x0 < 0) w.x0 = 0;
    if (w.y1 > H) w.y1 = H;
    if (w.x1 > W) w.x1 = W;
    return w; /* non-empty: the loader rejects windows entirely in the padding */
}

void ddq_avg_pool__reference(const ddq_op_args *a, int64_t begin, int64_t end) {
    const ddq_op *op = a->op;
    const int64_t H = a->in[0]->shape[2], W = a->in[0]->shape[3];
    const int64_t OH = a->out->shape[2], OW = a->out->shape[3];
    for (int64_t c = begin; c < end; c++) {
        const uint8_t *x = (const uint8_t *)a->x[0] + c * H * W;
        uint8_t *y = (uint8_t *)a->y + c * OH * OW;
        for (int64_t oy = 0; oy < OH; oy++)
            for (int64_t ox = 0; ox < OW; ox++) {
                window w = clip_window(op, oy, ox, H, W);
                int32_t acc = 0;
                for (int64_t iy = w.y0; iy < w.y1; iy++)
                    for (int64_t ix = w.x0; ix < w.x1; ix++) acc += x[iy * W + ix];
                const int32_t n = (int32_t)((w.y1 - w.y0) * (w.x1 - w.x0));
                /* codes are ≥ 0, so acc ≥ 0 and this is (acc + n/2) / n: ties away from zero */
                int32_t avg = acc > 0 ? (acc + n / 2) / n : (acc - n / 2) / n;
                y[oy * OW + ox] = (uint8_t)(avg < op->act_min ? op->act_min : avg > op->act_max ? op->act_max : avg);
            }
    }
}

void ddq_max_pool__reference(const ddq_op_args *a, int64_t begin, int64_t end) {
    const ddq_op *op = a->op;
    const int64_t H = a->in[0]->shape[2], W = a->in[0]->shape[3];
    const int64_t OH = a->out->shape[2], OW = a->out->shape[3];
    for (int64_t c = begin; c < end; c++) {
        const uint8_t *x = (const uint8_t *)a->x[0] + c * H * W;
        uint8_t *y = (uint8_t *)a->y + c * OH * OW;
        for (int64_t oy = 0; oy < OH; oy++)
            for (int64_t ox = 0; ox < OW; ox++) {
                window w = clip_window(op, oy, ox, H, W);
                uint8_t best = 0;
                for (int64_t iy = w.y0; iy < w.y1; iy++)
                    for (int64_t ix = w.x0; ix < w.x1; ix++)
                        if (x[iy * W + ix] > best) best = x[iy * W + ix];
                y[oy * OW + ox] = best;
            }
    }
}

void ddq_global_avg_pool__reference(const ddq_op_args *a, int64_t begin, int64_t end) {
    const ddq_op *op = a->op;
    const int64_t HW = a->in[0]->shape[2] * a->in[0]->shape[3];
    const int32_t zp_in = a->in[0]->zero_point, zp_out = a->out->zero_point;
    for (int64_t c = begin; c < end; c++) {
        const uint8_t *x = (const uint8_t *)a->x[0] + c * HW;
        int32_t acc = 0;
        for (int64_t i = 0; i < HW; i++) acc += (int32_t)x[i] - zp_in;
        ((uint8_t *)a->y)[c] = (uint8_t)ddq_clamp_code(ddq_mbqm(acc, op->multiplier), zp_out, op->act_min, op->act_max);
    }
}
