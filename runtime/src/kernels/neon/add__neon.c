/* add and requantize (docs/arithmetic.md §6), Advanced SIMD, 16 elements per iteration; the
 * last 0–15 elements of a range run the reference code.
 *
 * add: ya = MBQM((a − zp_a) · 2^20, m_a), yb likewise, out = clamp(MBQM(ya + yb, m_out) + zp_out).
 * The loader only accepts add multipliers with shift ≤ 0, so t = 31 − shift ≥ 31 for m_a and
 * m_b, and the pre-scale folds into the rounding shift, exactly:
 *
 *   (d · 2^20 · m0 + 2^(t−1)) >> t  =  floor(2^20 · (d · m0 + 2^(t−21)) / 2^t)
 *                                   =  (d · m0 + 2^(t−21)) >> (t − 20)
 *
 * so ya is SMULL of the int32 lanes d = a − zp_a (|d| ≤ 255) by m0 and SRSHL by −(t − 20): the
 * same exact product and the same single rounding (ties up, negative values floored) as
 * mbqm__neon.h, whose equivalence with ddq_mbqm test_runtime checks. ya and yb are added in
 * int64 and narrowed (|ya|, |yb| < 2^27, so the sum fits int32 and the narrowing is exact),
 * then the output requantization is that of mbqm__neon.h: exact MBQM, saturating narrows, zero
 * point, clamp. test_runtime also compares this kernel with the reference on every pair of
 * codes, ties and both ends of the grids included. (Multipliers with shift > 0, which the
 * loader rejects, would run the reference code.) */
#include "neon.h"

/* MBQM(d · 2^20, m) on four int32 lanes, as int64 (see above: neg_t20 = −(t − 20)). */
static inline void prescaled_mbqm(int32x4_t d, int32x4_t m0, int64x2_t neg_t20, int64x2_t *lo, int64x2_t *hi) {
    *lo = vrshlq_s64(vmull_s32(vget_low_s32(d), vget_low_s32(m0)), neg_t20);
    *hi = vrshlq_s64(vmull_high_s32(d, m0), neg_t20);
}

/* ya + yb of four lanes (int16 differences widened), narrowed to int32. */
static inline int32x4_t add4(int16x4_t da, int16x4_t db, int32x4_t ma, int64x2_t na, int32x4_t mb, int64x2_t nb) {
    int64x2_t alo, ahi, blo, bhi;
    prescaled_mbqm(vmovl_s16(da), ma, na, &alo, &ahi);
    prescaled_mbqm(vmovl_s16(db), mb, nb, &blo, &bhi);
    return vmovn_high_s64(vmovn_s64(vaddq_s64(alo, blo)), vaddq_s64(ahi, bhi));
}

/* MBQM(acc) + zp of eight int32 lanes, saturated to int16 (the first steps of
 * ddq_requantize_neon; the byte narrowing and the clamp follow for 16 lanes at once). */
static inline int16x8_t mbqm_zp8(int32x4_t a0, int32x4_t a1, int32x4_t m0, int64x2_t neg_t, int16x8_t zp) {
    const int32x4_t v0 = ddq_mbqm_neon(a0, m0, neg_t, neg_t), v1 = ddq_mbqm_neon(a1, m0, neg_t, neg_t);
    return vqaddq_s16(vqmovn_high_s32(vqmovn_s32(v0), v1), zp);
}

void ddq_add__neon(const ddq_op_args *a, int64_t begin, int64_t end) {
    const ddq_op *op = a->op;
    if (op->add_a.shift > 0 || op->add_b.shift > 0) {
        ddq_add__reference(a, begin, end);
        return;
    }
    const uint8_t *x0 = a->x[0], *x1 = a->x[1];
    uint8_t *y = a->y;
    const uint8x16_t zpa16 = vdupq_n_u8((uint8_t)a->in[0]->zero_point), zpb16 = vdupq_n_u8((uint8_t)a->in[1]->zero_point);
    const int32x4_t ma = vdupq_n_s32(op->add_a.m0), mb = vdupq_n_s32(op->add_b.m0), mo = vdupq_n_s32(op->multiplier.m0);
    const int64x2_t na = vdupq_n_s64((int64_t)op->add_a.shift - 31 + 20);
    const int64x2_t nb = vdupq_n_s64((int64_t)op->add_b.shift - 31 + 20);
    const int64x2_t no = vdupq_n_s64((int64_t)op->multiplier.shift - 31);
    const int16x8_t zpo = vdupq_n_s16((int16_t)a->out->zero_point);
    const uint8x16_t lo = vdupq_n_u8((uint8_t)op->act_min), hi = vdupq_n_u8((uint8_t)op->act_max);
    int64_t i = begin;
    for (; i + 16 <= end; i += 16) {
        const uint8x16_t va = vld1q_u8(x0 + i), vb = vld1q_u8(x1 + i);
        /* a − zp in int16 (USUBL wraps modulo 2^16, which is the signed difference) */
        const int16x8_t da0 = vreinterpretq_s16_u16(vsubl_u8(vget_low_u8(va), vget_low_u8(zpa16)));
        const int16x8_t da1 = vreinterpretq_s16_u16(vsubl_high_u8(va, zpa16));
        const int16x8_t db0 = vreinterpretq_s16_u16(vsubl_u8(vget_low_u8(vb), vget_low_u8(zpb16)));
        const int16x8_t db1 = vreinterpretq_s16_u16(vsubl_high_u8(vb, zpb16));
        const int32x4_t s0 = add4(vget_low_s16(da0), vget_low_s16(db0), ma, na, mb, nb);
        const int32x4_t s1 = add4(vget_high_s16(da0), vget_high_s16(db0), ma, na, mb, nb);
        const int32x4_t s2 = add4(vget_low_s16(da1), vget_low_s16(db1), ma, na, mb, nb);
        const int32x4_t s3 = add4(vget_high_s16(da1), vget_high_s16(db1), ma, na, mb, nb);
        const int16x8_t r0 = mbqm_zp8(s0, s1, mo, no, zpo), r1 = mbqm_zp8(s2, s3, mo, no, zpo);
        vst1q_u8(y + i, vminq_u8(vmaxq_u8(vqmovun_high_s16(vqmovun_s16(r0), r1), lo), hi));
    }
    if (i < end) ddq_add__reference(a, i, end);
}

void ddq_requantize__neon(const ddq_op_args *a, int64_t begin, int64_t end) {
    const ddq_op *op = a->op;
    const uint8_t *x = a->x[0];
    uint8_t *y = a->y;
    const uint8x16_t zpi = vdupq_n_u8((uint8_t)a->in[0]->zero_point);
    const int32x4_t m0 = vdupq_n_s32(op->multiplier.m0);
    const int64x2_t neg_t = vdupq_n_s64((int64_t)op->multiplier.shift - 31);
    const int16x8_t zpo = vdupq_n_s16((int16_t)a->out->zero_point);
    const uint8x16_t lo = vdupq_n_u8((uint8_t)op->act_min), hi = vdupq_n_u8((uint8_t)op->act_max);
    int64_t i = begin;
    for (; i + 16 <= end; i += 16) {
        const uint8x16_t v = vld1q_u8(x + i);
        const int16x8_t d0 = vreinterpretq_s16_u16(vsubl_u8(vget_low_u8(v), vget_low_u8(zpi)));
        const int16x8_t d1 = vreinterpretq_s16_u16(vsubl_high_u8(v, zpi));
        const int16x8_t r0 = mbqm_zp8(vmovl_s16(vget_low_s16(d0)), vmovl_high_s16(d0), m0, neg_t, zpo);
        const int16x8_t r1 = mbqm_zp8(vmovl_s16(vget_low_s16(d1)), vmovl_high_s16(d1), m0, neg_t, zpo);
        vst1q_u8(y + i, vminq_u8(vmaxq_u8(vqmovun_high_s16(vqmovun_s16(r0), r1), lo), hi));
    }
    if (i < end) ddq_requantize__reference(a, i, end);
}
