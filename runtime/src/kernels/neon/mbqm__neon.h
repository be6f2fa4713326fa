/* The requantization of docs/arithmetic.md §5 on eight int32 lanes, exactly:
 *
 *   out = clamp(MBQM(acc, m0, shift) + zp, act_min, act_max),
 *   MBQM(x, m0, shift) = (int64(x) · m0 + 2^(t−1)) >> t,  t = 31 − shift ∈ [1, 62]
 *
 * SMULL/SMULL2 form the exact int64 products and SRSHL by −t is the rounding arithmetic shift
 * right: the architecture adds 2^(t−1) before shifting, with no intermediate overflow, so ties go
 * up (towards +∞) and negative values floor, exactly like `+ 2^(t−1)) >> t`. The results are
 * then narrowed with saturation, int64 → int32 → int16 (SQXTN), the zero point is added with
 * saturation in int16 (SQADD), and SQXTUN saturates to 0…255 before the clamp (UMAX/UMIN).
 * Saturation only moves a value that lies outside int16 to ±32767/−32768, which, zero point
 * (0…255) added, is still beyond 255 or below 0 on the same side; every output range
 * [act_min, act_max] lies in 0…255, so the clamp gives what ddq_clamp_code gives in int64.
 * test_runtime checks this against ddq_mbqm / ddq_clamp_code on aarch64, ties and extremes
 * included. */
#ifndef DDQ_KERNELS_NEON_MBQM_H
#define DDQ_KERNELS_NEON_MBQM_H

#include <arm_neon.h>
#include <stdint.h>

#include "../gemm_plan.h"

/* The constants of eight lanes (lanes 0–3 and 4–7 of an output vector). */
typedef struct ddq_requant_neon {
    int32x4_t m0[2];    /* m0 per lane */
    int64x2_t neg_t[4]; /* −t = shift − 31 per lane, two lanes per vector */
    int16x8_t zp;       /* output zero point */
    uint8x8_t lo, hi;   /* act_min, act_max */
} ddq_requant_neon;

/* One multiplier (m0, shift) for all eight lanes. */
static inline ddq_requant_neon ddq_requant_neon_same(int32_t m0, int64_t neg_t, int32_t zp, int32_t lo, int32_t hi) {
    ddq_requant_neon r;
    r.m0[0] = r.m0[1] = vdupq_n_s32(m0);
    r.neg_t[0] = r.neg_t[1] = r.neg_t[2] = r.neg_t[3] = vdupq_n_s64(neg_t);
    r.zp = vdupq_n_s16((int16_t)zp);
    r.lo = vdup_n_u8((uint8_t)lo);
    r.hi = vdup_n_u8((uint8_t)hi);
    return r;
}

/* Each lane its own multiplier: m0[0…7], neg_t[0…7]. */
static inline ddq_requant_neon ddq_requant_neon_lanes(const int32_t *m0, const int64_t *neg_t, int32_t zp, int32_t lo,
                                                      int32_t hi) {
    ddq_requant_neon r;
    r.m0[0] = vld1q_s32(m0);
    r.m0[1] = vld1q_s32(m0 + 4);
    for (int i = 0; i < 4; i++) r.neg_t[i] = vld1q_s64(neg_t + 2 * i);
    r.zp = vdupq_n_s16((int16_t)zp);
    r.lo = vdup_n_u8((uint8_t)lo);
    r.hi = vdup_n_u8((uint8_t)hi);
    return r;
}

/* MBQM on four lanes, saturated to int32. */
static inline int32x4_t ddq_mbqm_neon(int32x4_t x, int32x4_t m0, int64x2_t neg_t_lo, int64x2_t neg_t_hi) {
    int64x2_t lo = vmull_s32(vget_low_s32(x), vget_low_s32(m0));
    int64x2_t hi = vmull_high_s32(x, m0);
    lo = vrshlq_s64(lo, neg_t_lo);
    hi = vrshlq_s64(hi, neg_t_hi);
    return vqmovn_high_s64(vqmovn_s64(lo), hi);
}

/* clamp(MBQM(acc) + zp, lo, hi) of eight accumulators (lanes 0–3 in a0, 4–7 in a1) as bytes. */
static inline uint8x8_t ddq_requantize_neon(int32x4_t a0, int32x4_t a1, const ddq_requant_neon *r) {
    const int32x4_t v0 = ddq_mbqm_neon(a0, r->m0[0], r->neg_t[0], r->neg_t[1]);
    const int32x4_t v1 = ddq_mbqm_neon(a1, r->m0[1], r->neg_t[2], r->neg_t[3]);
    const int16x8_t v = vqaddq_s16(vqmovn_high_s32(vqmovn_s32(v0), v1), r->zp);
    return vmin_u8(vmax_u8(vqmovun_s16(v), r->lo), r->hi);
}

/* The fast form (gemm_plan.h): MBQM(x) = SRSHL(SQDMULH(x · 2^l, m0), −r), exact where the plan
 * proved |x| · 2^l < 2^31 for the channel (ddq_requant_plan.fast); six instructions for eight
 * lanes where the int64 form takes twelve. Lanes 0–3 and 4–7 of an output vector. */
typedef struct ddq_requant_fast {
    int32x4_t m0[2], lshift[2], neg_r[2];
    int16x8_t zp;
    uint8x8_t lo, hi;
} ddq_requant_fast;

/* Channel o's constants in all eight lanes. */
static inline ddq_requant_fast ddq_requant_fast_same(const ddq_requant_plan *rq, int64_t o, int32_t zp, int32_t lo,
                                                     int32_t hi) {
    ddq_requant_fast r;
    r.m0[0] = r.m0[1] = vdupq_n_s32(rq->m0[o]);
    r.lshift[0] = r.lshift[1] = vdupq_n_s32(rq->lshift[o]);
    r.neg_r[0] = r.neg_r[1] = vdupq_n_s32(rq->neg_rshift[o]);
    r.zp = vdupq_n_s16((int16_t)zp);
    r.lo = vdup_n_u8((uint8_t)lo);
    r.hi = vdup_n_u8((uint8_t)hi);
    return r;
}

/* Channels o0 … o0 + 7, one per lane. */
static inline ddq_requant_fast ddq_requant_fast_lanes(const ddq_requant_plan *rq, int64_t o0, int32_t zp, int32_t lo,
                                                      int32_t hi) {
    ddq_requant_fast r;
    for (int h = 0; h < 2; h++) {
        r.m0[h] = vld1q_s32(rq->m0 + o0 + 4 * h);
        r.lshift[h] = vld1q_s32(rq->lshift + o0 + 4 * h);
        r.neg_r[h] = vld1q_s32(rq->neg_rshift + o0 + 4 * h);
    }
    r.zp = vdupq_n_s16((int16_t)zp);
    r.lo = vdup_n_u8((uint8_t)lo);
    r.hi = vdup_n_u8((uint8_t)hi);
    return r;
}

/* MBQM(acc) + zp of eight accumulators in the fast form, one multiplier (m0, −r, l) for all
 * lanes, saturated to int16 (the narrowing of ddq_requantize_neon); `shift`: l may be > 0 (with
 * l = 0 everywhere the SSHL is skipped). */
static inline __attribute__((always_inline)) int16x8_t ddq_mbqm_fast_s16(int32x4_t a0, int32x4_t a1, int32x4_t m0,
                                                                       int32x4_t neg_r, int32x4_t l, int16x8_t zp,
                                                                       const int shift) {
    if (shift) {
        a0 = vshlq_s32(a0, l);
        a1 = vshlq_s32(a1, l);
    }
    a0 = vrshlq_s32(vqdmulhq_s32(a0, m0), neg_r);
    a1 = vrshlq_s32(vqdmulhq_s32(a1, m0), neg_r);
    return vqaddq_s16(vqmovn_high_s32(vqmovn_s32(a0), a1), zp);
}

/* clamp(MBQM(acc) + zp, lo, hi) of eight accumulators in the fast form, each lane its constants;
 * the narrowing and the clamp are those of ddq_requantize_neon. */
static inline uint8x8_t ddq_requantize_fast_neon(int32x4_t a0, int32x4_t a1, const ddq_requant_fast *r) {
    const int32x4_t v0 = vrshlq_s32(vqdmulhq_s32(vshlq_s32(a0, r->lshift[0]), r->m0[0]), r->neg_r[0]);
    const int32x4_t v1 = vrshlq_s32(vqdmulhq_s32(vshlq_s32(a1, r->lshift[1]), r->m0[1]), r->neg_r[1]);
    const int16x8_t v = vqaddq_s16(vqmovn_high_s32(vqmovn_s32(v0), v1), r->zp);
    return vmin_u8(vmax_u8(vqmovun_s16(v), r->lo), r->hi);
}

#endif
