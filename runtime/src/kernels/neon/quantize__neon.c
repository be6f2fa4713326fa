/* quantize (float → uint8 codes), Advanced SIMD, 16 values per step, in the reference's exact
 * order of IEEE single-precision operations (docs/arithmetic.md §2): t = x / scale (FDIV, the
 * correctly rounded quotient, like the scalar one), t + 0.5 (FADD), floor (FRINTM), + zp (FADD),
 * then NaN → zp and the clamp to [qmin, qmax]. FMAXNM/FMINNM clamp like the comparisons (NaN
 * lanes are replaced afterwards, by FCMEQ's mask); the clamped value is an integer in 0…255, so
 * FCVTZU and the narrowing are exact. */
#include "neon.h"

static inline uint32x4_t quantize4(float32x4_t x, float32x4_t scale, float32x4_t zp, float32x4_t lo,
                                   float32x4_t hi) {
    float32x4_t t = vdivq_f32(x, scale);
    t = vaddq_f32(t, vdupq_n_f32(0.5f));
    t = vrndmq_f32(t);
    t = vaddq_f32(t, zp);
    const float32x4_t clamped = vminnmq_f32(vmaxnmq_f32(t, lo), hi);
    return vcvtq_u32_f32(vbslq_f32(vceqq_f32(t, t), clamped, zp)); /* t ≠ t: NaN */
}

void ddq_quantize__neon(const ddq_op_args *a, int64_t begin, int64_t end) {
    const ddq_tensor *yt = a->out;
    const float *x = a->x[0];
    uint8_t *y = a->y;
    const float32x4_t scale = vdupq_n_f32(yt->scales[0]), zp = vdupq_n_f32((float)yt->zero_point);
    const float32x4_t lo = vdupq_n_f32((float)yt->qmin), hi = vdupq_n_f32((float)yt->qmax);
    int64_t i = begin;
    for (; i + 16 <= end; i += 16) {
        const uint32x4_t q0 = quantize4(vld1q_f32(x + i), scale, zp, lo, hi);
        const uint32x4_t q1 = quantize4(vld1q_f32(x + i + 4), scale, zp, lo, hi);
        const uint32x4_t q2 = quantize4(vld1q_f32(x + i + 8), scale, zp, lo, hi);
        const uint32x4_t q3 = quantize4(vld1q_f32(x + i + 12), scale, zp, lo, hi);
        const uint16x8_t h0 = vmovn_high_u32(vmovn_u32(q0), q1), h1 = vmovn_high_u32(vmovn_u32(q2), q3);
        vst1q_u8(y + i, vmovn_high_u16(vmovn_u16(h0), h1));
    }
    if (i < end) ddq_quantize__reference(a, i, end); /* the last 0…15 values */
}
