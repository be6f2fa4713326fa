/* global_avg_pool, Advanced SIMD: each channel's codes summed 16 at a time (UADDLP into 16-bit
 * pairs, UADALP into 32-bit lanes: no lane can overflow), then Σ (x − zp) = Σ x − HW · zp and the
 * reference's requantization (ddq_mbqm, clamp). The sum is the reference's integer sum,
 * reordered. */
#include "neon.h"

void ddq_global_avg_pool__neon(const ddq_op_args *a, int64_t begin, int64_t end) {
    const ddq_op *op = a->op;
    const int64_t HW = a->in[0]->shape[2] * a->in[0]->shape[3];
    const int32_t zp_in = a->in[0]->zero_point, zp_out = a->out->zero_point;
    for (int64_t c = begin; c < end; c++) {
        const uint8_t *x = (const uint8_t *)a->x[0] + c * HW;
        uint32x4_t s = vdupq_n_u32(0);
        int64_t i = 0;
        for (; i + 16 <= HW; i += 16) s = vpadalq_u16(s, vpaddlq_u8(vld1q_u8(x + i)));
        uint32_t sum = vaddvq_u32(s);
        for (; i < HW; i++) sum += x[i];
        const int32_t acc = (int32_t)((int64_t)sum - HW * zp_in);
        ((uint8_t *)a->y)[c] = (uint8_t)ddq_clamp_code(ddq_mbqm(acc, op->multiplier), zp_out, op->act_min, op->act_max);
    }
}
