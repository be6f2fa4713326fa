/* add and requantize (docs/arithmetic.md §6), Advanced SIMD, 16 elements per iteration; the
 * last 0–15 elements of a range run the reference code.
 *
 * add: ya = MBQM((a − zp_a) · 2^20, m_a), yb likewise, out = clamp(MBQM(ya + yb, m_out) + zp_out).
 * The loader only accepts add multipliers with shift ≤ 0. x = (a − zp_a) · 2^20 lies within
 * ±255 · 2^20 < 2^28, so the fast form of gemm_plan.h is exact for ya and yb whatever m_a and
 * m_b: MBQM(x) = SRSHL(SQDMULH(x · 2^l, m0), −r) with l = max(0, shift + 1) ≤ 1 and
 * r = t − 31 + l ≥ 1 (x · 2^l < 2^29); x · 2^l is one SSHL of the widened difference by 20 + l.
 * |ya| + |yb| < 2^29, so ya + yb is exact in int32, and the output takes the fast form too where
 * (|ya|max + |yb|max) · 2^l_out < 2^31 (the bounds from the multipliers, per call), else the int64
 * form of mbqm__neon.h. Saturating narrows, zero point and clamp as there. test_runtime compares
 * this kernel with the reference on every pair of codes, ties and both ends of the grids
 * included. (Multipliers with shift > 0, which the loader rejects, would run the reference
 * code.) */
#include "neon.h"

/* A multiplier's fast-form constants: 2^l as a left shift (with the extra `pre`), m0, −r. */
typedef struct fast_mult {
    int32x4_t lshift, m0, neg_r;
} fast_mult;

static fast_mult fast_mult_of(ddq_multiplier m, int pre) {
    const int l = m.shift >= 0 ? m.shift + 1 : 0, r = -m.shift + l;
    return (fast_mult){vdupq_n_s32(pre + l), vdupq_n_s32(m.m0), vdupq_n_s32(-r)};
}

static inline __attribute__((always_inline)) int32x4_t fast_mbqm(int32x4_t x, const fast_mult *f, const int shift) {
    return vrshlq_s32(vqdmulhq_s32(shift ? vshlq_s32(x, f->lshift) : x, f->m0), f->neg_r);
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

/* Sixteen outputs from the codes va, vb. */
static inline __attribute__((always_inline)) uint8x16_t add16(uint8x16_t va, uint8x16_t vb, uint8x16_t zpa,
                                                              uint8x16_t zpb, const fast_mult *fa, const fast_mult *fb,
                                                              const fast_mult *fo, int32x4_t mo, int64x2_t no,
                                                              int16x8_t zpo, uint8x16_t lo, uint8x16_t hi,
                                                              const int out) {
    /* a − zp in int16 (USUBL wraps modulo 2^16, which is the signed difference) */
    const int16x8_t da[2] = {vreinterpretq_s16_u16(vsubl_u8(vget_low_u8(va), vget_low_u8(zpa))),
                             vreinterpretq_s16_u16(vsubl_high_u8(va, zpa))};
    const int16x8_t db[2] = {vreinterpretq_s16_u16(vsubl_u8(vget_low_u8(vb), vget_low_u8(zpb))),
                             vreinterpretq_s16_u16(vsubl_high_u8(vb, zpb))};
    int16x8_t r[2];
    for (int h = 0; h < 2; h++) {
        const int32x4_t s0 = vaddq_s32(fast_mbqm(vmovl_s16(vget_low_s16(da[h])), fa, 1),
                                       fast_mbqm(vmovl_s16(vget_low_s16(db[h])), fb, 1));
        const int32x4_t s1 = vaddq_s32(fast_mbqm(vmovl_high_s16(da[h]), fa, 1), fast_mbqm(vmovl_high_s16(db[h]), fb, 1));
        const int shift = out == OUT_FAST_SHIFT;
        r[h] = out == OUT_INT64
                   ? mbqm_zp8(s0, s1, mo, no, zpo)
                   : vqaddq_s16(vqmovn_high_s32(vqmovn_s32(fast_mbqm(s0, fo, shift)), fast_mbqm(s1, fo, shift)), zpo);
    }
    return vminq_u8(vmaxq_u8(vqmovun_high_s16(vqmovun_s16(r[0]), r[1]), lo), hi);
}

void ddq_add__neon(const ddq_op_args *a, int64_t begin, int64_t end) {
    const ddq_op *op = a->op;
    if (op->add_a.shift > 0 || op->add_b.shift > 0) {
        ddq_add__reference(a, begin, end);
        return;
    }
    const uint8_t *x0 = a->x[0], *x1 = a->x[1];
    uint8_t *y = a->y;
    const uint8x16_t zpa = vdupq_n_u8((uint8_t)a->in[0]->zero_point), zpb = vdupq_n_u8((uint8_t)a->in[1]->zero_point);
    const fast_mult fa = fast_mult_of(op->add_a, 20), fb = fast_mult_of(op->add_b, 20);
    const fast_mult fo = fast_mult_of(op->multiplier, 0);
    const int32x4_t mo = vdupq_n_s32(op->multiplier.m0);
    const int64x2_t no = vdupq_n_s64((int64_t)op->multiplier.shift - 31);
    const int16x8_t zpo = vdupq_n_s16((int16_t)a->out->zero_point);
    const uint8x16_t lo = vdupq_n_u8((uint8_t)op->act_min), hi = vdupq_n_u8((uint8_t)op->act_max);
    const int l_out = op->multiplier.shift >= 0 ? op->multiplier.shift + 1 : 0;
    const int fast_out = l_out < 31 && ((input_bound(op->add_a) + input_bound(op->add_b)) << l_out) <= INT32_MAX;
    int64_t i = begin;
#define ADD_LOOP(out)                                                                                              \
    for (; i + 16 <= end; i += 16)                                                                                 \
        vst1q_u8(y + i, add16(vld1q_u8(x0 + i), vld1q_u8(x1 + i), zpa, zpb, &fa, &fb, &fo, mo, no, zpo, lo, hi, out))
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
