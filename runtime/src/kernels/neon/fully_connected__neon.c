/* fully_connected, Advanced SIMD: one output per work item, 16 inputs per step: USUBL forms
 * x − zp as int16 (exact: |x − zp| ≤ 255), SXTL widens the int8 weights, and SMLAL/SMLAL2 sum
 * the int16 products into four int32x4 accumulators, reduced at the end (ADDV). The sum is the
 * reference's, reordered; integer sums do not depend on the order. */
#include "neon.h"

void ddq_fully_connected__neon(const ddq_op_args *a, int64_t begin, int64_t end) {
    const ddq_op *op = a->op;
    const ddq_tensor *xt = a->in[0], *yt = a->out;
    const uint8_t *x = a->x[0];
    const int8_t *w = a->in[1]->data;
    const int32_t *bias = a->in[2]->data;
    uint8_t *y = a->y;
    const int64_t I = xt->shape[1];
    const int32_t zp = xt->zero_point;
    const uint8x16_t zpv = vdupq_n_u8((uint8_t)zp);
    for (int64_t o = begin; o < end; o++) {
        const int8_t *wo = w + o * I;
        int32x4_t s0 = vdupq_n_s32(0), s1 = s0, s2 = s0, s3 = s0;
        int64_t i = 0;
        for (; i + 16 <= I; i += 16) {
            const uint8x16_t xv = vld1q_u8(x + i);
            const int8x16_t wv = vld1q_s8(wo + i);
            const int16x8_t xl = vreinterpretq_s16_u16(vsubl_u8(vget_low_u8(xv), vget_low_u8(zpv)));
            const int16x8_t xh = vreinterpretq_s16_u16(vsubl_high_u8(xv, zpv));
            const int16x8_t wl = vmovl_s8(vget_low_s8(wv)), wh = vmovl_high_s8(wv);
            s0 = vmlal_s16(s0, vget_low_s16(xl), vget_low_s16(wl));
            s1 = vmlal_high_s16(s1, xl, wl);
            s2 = vmlal_s16(s2, vget_low_s16(xh), vget_low_s16(wh));
            s3 = vmlal_high_s16(s3, xh, wh);
        }
        int32_t acc = vaddvq_s32(vaddq_s32(vaddq_s32(s0, s1), vaddq_s32(s2, s3)));
        for (; i < I; i++) acc += (int32_t)wo[i] * ((int32_t)x[i] - zp);
        y[o] = (uint8_t)ddq_clamp_code(ddq_mbqm(acc + bias[o], op->channel_multipliers[o]), yt->zero_point,
                                       op->act_min, op->act_max);
    }
}
