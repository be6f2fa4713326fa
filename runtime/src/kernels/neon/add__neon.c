/* add and requantize (docs/arithmetic.md §6), Advanced SIMD, 16 elements per iteration; the
 * last 0–15 elements of a range run the reference code.
 *
 * add: ya = MBQM((a − zp_a) · 2^20, m_a), yb likewise, out = clamp(MBQM(ya + yb, m_out) + zp_out).
 * With d = a − zp_a (|d| ≤ 255) and t = 31 − shift_a, ya = ⌊(d·m0·2^20 + 2^(t − 1)) / 2^t⌋ =
 * ⌊(d·m0 + 2^(T − 1)) / 2^T⌋ with T = 11 − shift_a, one rounding of d·m0, and:
 *
 * - SQRDMULH(d · 2^k, m0) = ⌊(2·d·2^k·m0 + 2^31) / 2^32⌋ is that value for k = 20 + shift_a,
 *   which needs −20 ≤ shift_a ≤ 0 (nothing saturates: |d · 2^k| < 2^28). d · 2^k is one SMULL of
 *   d · 2^p (int16, p = max(0, k − 14) ≤ 6: |d| · 64 < 2^15) by 2^(k − p) ≤ 2^14.
 * - Where m0 = 2^30, ya = d · 2^(19 + shift_a) exactly (the half added is dropped by the
 *   floor) for shift_a ≥ −19, and one SMLAL of d · 2^p by 2^(19 + shift_a − p) adds it to the
 *   other input's term.
 *
 * add_multipliers gives the input of the larger scale m = 1/2 = 2^30 · 2^−31, so every add takes
 * the second form for that input (P) and the first for the other (Q), whatever the scales, as
 * long as Q's shift is ≥ −20 (scales within 2^20 of each other); others run the reference code.
 * |ya| + |yb| < 2^29 keeps the sum exact in int32. The output takes the fast form of
 * gemm_plan.h, MBQM(x) = SRSHL(SQDMULH(x · 2^l, m0), −r), where (|ya|max + |yb|max) · 2^l < 2^31
 * (the bounds from the multipliers, per call), else the int64 form of mbqm__neon.h. Saturating
 * narrows, zero point and clamp as there. test_runtime compares this kernel with the reference
 * on every pair of codes, ties and both ends of the grids included. */
#include "neon.h"

/* The output multiplier's fast-form constants: 2^l as a left shift, m0, −r. */
typedef struct fast_mult {
    int32x4_t lshift, m0, neg_r;
} fast_mult;

static fast_mult fast_mult_of(ddq_multiplier m) {
    const int l = m.shift >= 0 ? m.shift + 1 : 0, r = -m.shift + l;
    return (fast_mult){vdupq_n_s32(l), vdupq_n_s32(m.m0), vdupq_n_s32(-r)};
}

/* An input's term: d · 2^p in int16 (pre: p as SSHL's shift), then SMULL or SMLAL by mul. */
typedef struct add_input {
    uint8x16_t zp;
    int16x8_t pre, mul;
    int32x4_t m0; /* Q only */
} add_input;

static add_input add_input_of(int32_t zero_point, ddq_multiplier m, int k) {
    const int p = k > 14 ? k - 14 : 0;
    return (add_input){vdupq_n_u8((uint8_t)zero_point), vdupq_n_s16((int16_t)p), vdupq_n_s16((int16_t)(1 << (k - p))),
                       vdupq_n_s32(m.m0)};
}

/* The output's requantization: the int64 form, or the fast form without or with its left shift. */
enum { OUT_INT64, OUT_FAST, OUT_FAST_SHIFT };

/* MBQM(acc) + zp of eight int32 lanes, saturated to int16 (the first steps of
 * ddq_requantize_neon; the byte narrowing and the clamp follow for 16 lanes at once). */
static inline int16x8_t mbqm_zp8(int32x4_t a0, int32x4_t a1, int32x4_t m0, int64x2_t neg_t, int16x8_t zp) {
    const int32x4_t v0 = ddq_mbqm_neon(a0, m0, neg_t, neg_t), v1 = ddq_mbqm_neon(a1, m0, neg_t, neg_t);
    return vqaddq_s16(vqmovn_high_s32(vqmovn_s32(v0), v1), zp);
}

/* The largest |MBQM(255 · 2^20, m)|, bounding |ya| (the result grows with |x|). */
static int64_t input_bound(ddq_multiplier m) {
    const int t = 31 - m.shift;
    return ((((int64_t)255 << 20) * m.m0 + ((int64_t)1 << (t - 1))) >> t) + 1; /* + 1: negative x rounds away */
}

/* (codes − zp) · 2^p of the low and high eight lanes (USUBL wraps modulo 2^16, which is the
 * signed difference). */
static inline __attribute__((always_inline)) void scaled_differences(uint8x16_t v, const add_input *in,
                                                                      int16x8_t d[2]) {
    d[0] = vshlq_s16(vreinterpretq_s16_u16(vsubl_u8(vget_low_u8(v), vget_low_u8(in->zp))), in->pre);
    d[1] = vshlq_s16(vreinterpretq_s16_u16(vsubl_high_u8(v, in->zp)), in->pre);
}

/* Sixteen outputs from the codes vp, vq of inputs P and Q. */
static inline __attribute__((always_inline)) uint8x16_t add16(uint8x16_t vp, uint8x16_t vq, const add_input *P,
                                                              const add_input *Q, const fast_mult *fo, int64x2_t no,
                                                              int16x8_t zpo, uint8x16_t lo, uint8x16_t hi,
                                                              const int out) {
    int16x8_t dp[2], dq[2], r[2];
    scaled_differences(vp, P, dp);
    scaled_differences(vq, Q, dq);
    for (int h = 0; h < 2; h++) {
        int32x4_t s0 = vqrdmulhq_s32(vmull_s16(vget_low_s16(dq[h]), vget_low_s16(Q->mul)), Q->m0);
        int32x4_t s1 = vqrdmulhq_s32(vmull_high_s16(dq[h], Q->mul), Q->m0);
        s0 = vmlal_s16(s0, vget_low_s16(dp[h]), vget_low_s16(P->mul));
        s1 = vmlal_high_s16(s1, dp[h], P->mul);
        if (out == OUT_INT64) {
            r[h] = mbqm_zp8(s0, s1, fo->m0, no, zpo);
            continue;
        }
        if (out == OUT_FAST_SHIFT) {
            s0 = vshlq_s32(s0, fo->lshift);
            s1 = vshlq_s32(s1, fo->lshift);
        }
        s0 = vrshlq_s32(vqdmulhq_s32(s0, fo->m0), fo->neg_r);
        s1 = vrshlq_s32(vqdmulhq_s32(s1, fo->m0), fo->neg_r);
        r[h] = vqaddq_s16(vqmovn_high_s32(vqmovn_s32(s0), s1), zpo);
    }
    return vminq_u8(vmaxq_u8(vqmovun_high_s16(vqmovun_s16(r[0]), r[1]), lo), hi);
}

void ddq_add__neon(const ddq_op_args *a, int64_t begin, int64_t end) {
    const ddq_op *op = a->op;
    /* P: an input whose multiplier is a power of two (the larger shift where both are) */
    const int b_is_p = op->add_b.m0 == 1 << 30 && (op->add_a.m0 != 1 << 30 || op->add_b.shift > op->add_a.shift);
    const ddq_multiplier mp = b_is_p ? op->add_b : op->add_a, mq = b_is_p ? op->add_a : op->add_b;
    if (mp.m0 != 1 << 30 || mp.shift < -19 || mp.shift > 0 || mq.shift < -20 || mq.shift > 0) {
        ddq_add__reference(a, begin, end);
        return;
    }
    const uint8_t *xp = a->x[b_is_p], *xq = a->x[!b_is_p];
    uint8_t *y = a->y;
    const add_input P = add_input_of(a->in[b_is_p]->zero_point, mp, 19 + mp.shift);
    const add_input Q = add_input_of(a->in[!b_is_p]->zero_point, mq, 20 + mq.shift);
    const fast_mult fo = fast_mult_of(op->multiplier);
    const int64x2_t no = vdupq_n_s64((int64_t)op->multiplier.shift - 31);
    const int16x8_t zpo = vdupq_n_s16((int16_t)a->out->zero_point);
    const uint8x16_t lo = vdupq_n_u8((uint8_t)op->act_min), hi = vdupq_n_u8((uint8_t)op->act_max);
    const int l_out = op->multiplier.shift >= 0 ? op->multiplier.shift + 1 : 0;
    const int fast_out = l_out < 31 && ((input_bound(op->add_a) + input_bound(op->add_b)) << l_out) <= INT32_MAX;
    int64_t i = begin;
#define ADD_LOOP(out)                                                                                              \
    for (; i + 16 <= end; i += 16)                                                                                 \
        vst1q_u8(y + i, add16(vld1q_u8(xp + i), vld1q_u8(xq + i), &P, &Q, &fo, no, zpo, lo, hi, out))
    if (!fast_out) ADD_LOOP(OUT_INT64);
    else if (l_out) ADD_LOOP(OUT_FAST_SHIFT);
    else ADD_LOOP(OUT_FAST);
#undef ADD_LOOP
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
