/* requantize (docs/arithmetic.md §6), AVX2, 16 elements per iteration; the last 0–15 elements
 * of a range run the reference code: out = clamp(MBQM(x − zp_in) + zp_out, act_min, act_max).
 * The codes are zero-extended to int16, the zero point subtracted and the differences
 * sign-extended to int32 lanes in the order of _mm256_unpacklo/hi_epi16; MBQM and the narrowing
 * are those of requant__avx2.h, whose exactness domain the kernel checks (|x − zp_in| ≤ 255) before
 * taking the vector path. */
#include "requant__avx2.h"

/* clamp(MBQM(v) + zp, lo, hi) of 16 int16 lanes. */
static inline __m128i requantize16(__m256i d, const ddq_rq_avx2 *r, __m128i lo, __m128i hi) {
    const __m256i d0 = _mm256_srai_epi32(_mm256_unpacklo_epi16(d, d), 16);
    const __m256i d1 = _mm256_srai_epi32(_mm256_unpackhi_epi16(d, d), 16);
    return ddq_narrow16_avx2(ddq_mbqm_zp_avx2(d0, r, 1), ddq_mbqm_zp_avx2(d1, r, 1), lo, hi);
}

void ddq_requantize__avx2(const ddq_op_args *a, int64_t begin, int64_t end) {
    const ddq_op *op = a->op;
    if (!ddq_rq_x86_exact(op->multiplier, 255)) {
        ddq_requantize__reference(a, begin, end);
        return;
    }
    const uint8_t *x = a->x[0];
    uint8_t *y = a->y;
    const ddq_rq_x86 q = ddq_rq_x86_of(op->multiplier, a->out->zero_point);
    const ddq_rq_avx2 r = ddq_rq_avx2_load(&q);
    const __m256i zp = _mm256_set1_epi16((int16_t)a->in[0]->zero_point);
    const __m128i lo = _mm_set1_epi8((char)op->act_min), hi = _mm_set1_epi8((char)op->act_max);
    int64_t i = begin;
    for (; i + 16 <= end; i += 16) {
        const __m256i d = _mm256_sub_epi16(_mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i *)(x + i))), zp);
        _mm_storeu_si128((__m128i *)(y + i), requantize16(d, &r, lo, hi));
    }
    if (i < end) ddq_requantize__reference(a, i, end);
}

void ddq_requantize_codes__avx2(const int32_t *acc, int64_t n, ddq_multiplier m, int32_t zp, int32_t lo, int32_t hi,
                                uint8_t *out) {
    const ddq_rq_x86 q = ddq_rq_x86_of(m, zp);
    const ddq_rq_avx2 r = ddq_rq_avx2_load(&q);
    const __m128i vlo = _mm_set1_epi8((char)lo), vhi = _mm_set1_epi8((char)hi);
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        /* lanes 0–3 | 8–11 and 4–7 | 12–15, the order the narrowing expects */
        const __m256i a0 = _mm256_setr_epi32(acc[i], acc[i + 1], acc[i + 2], acc[i + 3], acc[i + 8], acc[i + 9],
                                             acc[i + 10], acc[i + 11]);
        const __m256i a1 = _mm256_setr_epi32(acc[i + 4], acc[i + 5], acc[i + 6], acc[i + 7], acc[i + 12],
                                             acc[i + 13], acc[i + 14], acc[i + 15]);
        _mm_storeu_si128((__m128i *)(out + i),
                         ddq_narrow16_avx2(ddq_mbqm_zp_avx2(a0, &r, 1), ddq_mbqm_zp_avx2(a1, &r, 1), vlo, vhi));
    }
    for (; i < n; i++) out[i] = (uint8_t)ddq_clamp_code(ddq_mbqm(acc[i], m), zp, lo, hi);
}
