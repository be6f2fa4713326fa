/* The requantization of docs/arithmetic.md §5 on eight int32 lanes, AVX2, exactly:
 *
 *   out = clamp(MBQM(acc) + zp, act_min, act_max),  MBQM(x) = (x · m0 + 2^(t−1)) >> t,  t = 31 − shift ∈ [1, 62]
 *
 * AVX2 multiplies int32 into int64 only in the low half of each 64-bit lane
 * (_mm256_mul_epi32) and has no 64-bit arithmetic right shift. So:
 *
 * - For t < 32 (shift ≥ 0) the accumulator is first shifted left by l = 32 − t, which leaves
 *   MBQM unchanged (x · 2^l · m0 / 2^(t+l)) and needs x · 2^l inside int32, so u = t + l ≥ 32.
 * - With P = x · 2^l · m0 (|P| < 2^62), (P + 2^62 + 2^(u−1)) >> u = MBQM(x) + 2^(62−u) exactly
 *   (2^62 is a multiple of 2^u) and 0 ≤ P + 2^62 + 2^(u−1) < 2^64, so a logical shift of the
 *   unsigned sum (_mm256_srlv_epi64) is the floor.
 * - The even lanes are multiplied in place and shifted by u: the result's low 32 bits are in
 *   the lane's low half. The odd lanes are moved down (_mm256_shuffle_epi32), multiplied and
 *   shifted by u − 32 ≥ 0, which leaves the same 32 bits in the high half; one blend joins them.
 * - Those bits are MBQM(x) + 2^(62−u) mod 2^32; adding zp − 2^(62−u) mod 2^32 (ddq_rq_x86.add)
 *   gives MBQM(x) + zp mod 2^32, which is MBQM(x) + zp itself wherever that fits int32. It does
 *   when |MBQM(x)| ≤ 2^30 + 1: always for shift < 0 (|P| / 2^u < 2^(62−u) ≤ 2^30), and for
 *   shift ≥ 0 when |x| · 2^(shift+1) < 2^31, which also keeps x · 2^l in int32 and which prepare
 *   proves from the loader's accumulator bound (ddq_rq_x86_exact, the domain of the fast form of
 *   gemm_plan.h); ops outside it requantize with the scalar code.
 *
 * Per eight lanes that is two multiplies and two variable shifts on the multiply ports, plus a
 * shuffle, two 64-bit adds, a blend and a 32-bit add (and a shift for t < 32).
 *
 * The narrowing to bytes saturates (int32 → int16 → uint8): a value outside int16 becomes
 * ±32767 / −32768 and then 255 / 0, on the same side of [act_min, act_max] ⊆ [0, 255] as the
 * exact value, so the clamp gives what ddq_clamp_code gives in int64. */
#ifndef DDQ_KERNELS_X86_REQUANT_AVX2_H
#define DDQ_KERNELS_X86_REQUANT_AVX2_H

#include <immintrin.h>
#include <string.h>

#include "x86.h"

/* A channel's constants, each in every lane. */
typedef struct ddq_rq_avx2 {
    __m256i m0, rnd, u, u_odd, add, lshift;
} ddq_rq_avx2;

static inline ddq_rq_avx2 ddq_rq_avx2_load(const ddq_rq_x86 *q) {
    return (ddq_rq_avx2){_mm256_set1_epi32(q->m0),    _mm256_set1_epi64x(q->rnd), _mm256_set1_epi64x(q->u),
                         _mm256_set1_epi64x(q->u_odd), _mm256_set1_epi32(q->add),  _mm256_set1_epi32(q->lshift)};
}

/* MBQM(v) + zp on eight int32 lanes (in the domain above); `lshift`: some l may be > 0 (with
 * l = 0 everywhere the shift is skipped). */
static inline __attribute__((always_inline)) __m256i ddq_mbqm_zp_avx2(__m256i v, const ddq_rq_avx2 *q,
                                                                      const int lshift) {
    if (lshift) v = _mm256_sllv_epi32(v, q->lshift);
    const __m256i even = _mm256_srlv_epi64(_mm256_add_epi64(_mm256_mul_epi32(v, q->m0), q->rnd), q->u);
    const __m256i odd = _mm256_srlv_epi64(
        _mm256_add_epi64(_mm256_mul_epi32(_mm256_shuffle_epi32(v, 0xF5), q->m0), q->rnd), q->u_odd);
    return _mm256_add_epi32(_mm256_blend_epi32(even, odd, 0xAA), q->add);
}

/* Sixteen values MBQM + zp (lanes 0–3 | 8–11 in a, 4–7 | 12–15 in b, the order of
 * _mm256_unpacklo/hi_epi16) narrowed to bytes in order, clamped to [lo, hi]. */
static inline __m128i ddq_narrow16_avx2(__m256i a, __m256i b, __m128i lo, __m128i hi) {
    const __m256i h = _mm256_packs_epi32(a, b); /* 0–7 | 8–15 */
    const __m256i u = _mm256_permute4x64_epi64(_mm256_packus_epi16(h, h), 0x08);
    return _mm_min_epu8(_mm_max_epu8(_mm256_castsi256_si128(u), lo), hi);
}

/* Stores the first n (0…16) bytes of v (fixed-size copies compile to single stores; a call of
 * memcpy per short row costs more than the row's arithmetic). */
static inline void ddq_store_partial16(uint8_t *y, __m128i v, int64_t n) {
    if (n == 16) {
        _mm_storeu_si128((__m128i *)y, v);
        return;
    }
    if (n & 8) {
        _mm_storel_epi64((__m128i *)y, v);
        v = _mm_srli_si128(v, 8);
        y += 8;
    }
    if (n & 4) {
        const int32_t t = _mm_cvtsi128_si32(v);
        memcpy(y, &t, 4);
        v = _mm_srli_si128(v, 4);
        y += 4;
    }
    if (n & 2) {
        const uint16_t t = (uint16_t)_mm_extract_epi16(v, 0);
        memcpy(y, &t, 2);
        v = _mm_srli_si128(v, 2);
        y += 2;
    }
    if (n & 1) *y = (uint8_t)_mm_extract_epi8(v, 0);
}

#endif
