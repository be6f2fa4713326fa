/* The requantization of docs/arithmetic.md §5 on eight int32 lanes, AVX2, exactly:
 *
 *   out = clamp(MBQM(acc) + zp, act_min, act_max),  MBQM(x) = (x · m0 + 2^(t−1)) >> t,  t = 31 − shift ∈ [1, 62]
 *
 * AVX2 multiplies int32 into int64 only on the even lanes (_mm256_mul_epi32) and has no 64-bit
 * arithmetic right shift, so the odd lanes are moved down first and the shift is a logical one
 * (_mm256_srlv_epi64) of a sum made non-negative: with P = x · m0 (|P| < 2^62 for int32 x and
 * m0 < 2^31),
 *
 *   (P + 2^62 + 2^(t−1)) >> t  =  MBQM(x) + 2^(62−t)
 *
 * exactly (2^62 is a multiple of 2^t), and 0 ≤ P + 2^62 + 2^(t−1) < 2^64, so the logical shift
 * of the unsigned sum is the floor. Only its low 32 bits are kept: they are MBQM(x) + 2^(62−t)
 * mod 2^32, and adding zp − 2^(62−t) mod 2^32 (ddq_rq_x86.add) gives MBQM(x) + zp mod 2^32, which
 * is MBQM(x) + zp itself wherever that fits int32. It does when |MBQM(x)| ≤ 2^30 + 1: always
 * for shift < 0 (|P| / 2^t < 2^(62−t) ≤ 2^30), and for shift ≥ 0 when |x| · 2^(shift+1) < 2^31,
 * which prepare proves from the loader's accumulator bound (ddq_rq_x86_exact, the same domain as
 * the fast form of gemm_plan.h); ops outside it requantize with the scalar code.
 *
 * The narrowing to bytes saturates (int32 → int16 → uint8): a value outside int16 becomes
 * ±32767 / −32768 and then 255 / 0, on the same side of [act_min, act_max] ⊆ [0, 255] as the
 * exact value, so the clamp gives what ddq_clamp_code gives in int64. */
#ifndef DDQ_KERNELS_X86_REQUANT_AVX2_H
#define DDQ_KERNELS_X86_REQUANT_AVX2_H

#include <immintrin.h>

#include "x86.h"

/* A channel's constants, each in every lane. */
typedef struct ddq_rq_avx2 {
    __m256i m0, rnd, t, add;
} ddq_rq_avx2;

static inline ddq_rq_avx2 ddq_rq_avx2_load(const ddq_rq_x86 *q) {
    return (ddq_rq_avx2){_mm256_set1_epi32(q->m0), _mm256_set1_epi64x(q->rnd), _mm256_set1_epi64x(q->t),
                         _mm256_set1_epi32(q->add)};
}

/* MBQM(v) + zp on eight int32 lanes (in the domain above). */
static inline __m256i ddq_mbqm_zp_avx2(__m256i v, const ddq_rq_avx2 *q) {
    const __m256i even = _mm256_srlv_epi64(_mm256_add_epi64(_mm256_mul_epi32(v, q->m0), q->rnd), q->t);
    const __m256i odd =
        _mm256_srlv_epi64(_mm256_add_epi64(_mm256_mul_epi32(_mm256_srli_epi64(v, 32), q->m0), q->rnd), q->t);
    return _mm256_add_epi32(_mm256_blend_epi32(even, _mm256_slli_epi64(odd, 32), 0xAA), q->add);
}

/* Sixteen values MBQM + zp (lanes 0–3 | 8–11 in a, 4–7 | 12–15 in b, the order of
 * _mm256_unpacklo/hi_epi16) narrowed to bytes in order, clamped to [lo, hi]. */
static inline __m128i ddq_narrow16_avx2(__m256i a, __m256i b, __m128i lo, __m128i hi) {
    const __m256i h = _mm256_packs_epi32(a, b); /* 0–7 | 8–15 */
    const __m256i u = _mm256_permute4x64_epi64(_mm256_packus_epi16(h, h), 0x08);
    return _mm_min_epu8(_mm_max_epu8(_mm256_castsi256_si128(u), lo), hi);
}

#endif
