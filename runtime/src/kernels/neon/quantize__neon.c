/* quantize (float → uint8 codes), Advanced SIMD, 16 values per step, in the reference's exact
 * order of IEEE single-precision operations (docs/arithmetic.md §2): t = x / scale (FDIV, the
 * correctly rounded quotient, like the scalar one), t + 0.5 (FADD), then floor, + zp and the
 * clamp. The floor is FCVTMS, which rounds towards −∞ and converts to int32 at once, saturating
 * at the int32 limits, with NaN → 0; then saturating narrows to int16, SQADD zp, SQXTUN and the
 * clamp. That equals the reference's float floor, + zp, NaN → zp and clamp: below 2^24 in
 * magnitude the integer sum is the float one; beyond it, and for saturated lanes, both end at
 * the same end of the clamp; NaN gives 0 + zp = zp, which the clamp keeps (the loader holds
 * qmin ≤ zp ≤ qmax), as the reference gives. */
#include "neon.h"

static inline int16x8_t floors8(float32x4_t a, float32x4_t b, float32x4_t scale) {
    const float32x4_t half = vdupq_n_f32(0.5f);
    const int32x4_t ia = vcvtmq_s32_f32(vaddq_f32(vdivq_f32(a, scale), half));
    const int32x4_t ib = vcvtmq_s32_f32(vaddq_f32(vdivq_f32(b, scale), half));
    return vqmovn_high_s32(vqmovn_s32(ia), ib);
}

void ddq_quantize__neon(const ddq_op_args *a, int64_t begin, int64_t end) {
    const ddq_tensor *yt = a->out;
    const float *x = a->x[0];
    uint8_t *y = a->y;
    const float32x4_t scale = vdupq_n_f32(yt->scales[0]);
    const int16x8_t zp = vdupq_n_s16((int16_t)yt->zero_point);
    const uint8x16_t lo = vdupq_n_u8((uint8_t)yt->qmin), hi = vdupq_n_u8((uint8_t)yt->qmax);
    int64_t i = begin;
#define QUANTIZE_LOOP(clamp)                                                                              \
    for (; i + 16 <= end; i += 16) {                                                                      \
        const int16x8_t f0 = vqaddq_s16(floors8(vld1q_f32(x + i), vld1q_f32(x + i + 4), scale), zp);      \
        const int16x8_t f1 = vqaddq_s16(floors8(vld1q_f32(x + i + 8), vld1q_f32(x + i + 12), scale), zp); \
        const uint8x16_t u = vqmovun_high_s16(vqmovun_s16(f0), f1);                                       \
        vst1q_u8(y + i, clamp ? vminq_u8(vmaxq_u8(u, lo), hi) : u);                                       \
    }
    /* an 8-bit grid [0, 255] is SQXTUN's own saturation: no clamp */
    if (yt->qmin == 0 && yt->qmax == 255) QUANTIZE_LOOP(0)
    else QUANTIZE_LOOP(1)
#undef QUANTIZE_LOOP
    if (i < end) ddq_quantize__reference(a, i, end); /* the last 0…15 values */
}
