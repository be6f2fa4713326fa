/* add (docs/arithmetic.md §6), AVX2, 16 elements per iteration; the last 0–15 elements of a
 * range run the reference code:
 *
 *   ya = MBQM((a − zp_a) · 2^20, m_a),  yb likewise,  out = clamp(MBQM(ya + yb, m_out) + zp_out)
 *
 * The codes are zero-extended to int16, the zero point subtracted (|a − zp_a| ≤ 255), and each
 * difference placed in the high half of an int32 lane (_mm256_unpacklo/hi_epi16 with zero), so
 * that a left shift by 4 gives (a − zp_a) · 2^20 exactly (|·| < 2^28). The three MBQMs are those
 * of requant__avx2.h; its exactness domain holds whenever the loader's add multipliers do
 * (every shift ≤ 0: |ya|, |yb| ≤ 2^27, so ya + yb fits int32 and the domain is met), which the
 * kernel checks with ddq_rq_x86_exact before taking the vector path. */
#include "requant__avx2.h"

/* (v − zp) · 2^20 of 16 codes: lanes 0–3 | 8–11 and 4–7 | 12–15. */
static inline void prescaled(__m128i v, __m256i zp, __m256i *lo, __m256i *hi) {
    const __m256i d = _mm256_sub_epi16(_mm256_cvtepu8_epi16(v), zp), zero = _mm256_setzero_si256();
    *lo = _mm256_slli_epi32(_mm256_unpacklo_epi16(zero, d), 4);
    *hi = _mm256_slli_epi32(_mm256_unpackhi_epi16(zero, d), 4);
}

void ddq_add__avx2(const ddq_op_args *a, int64_t begin, int64_t end) {
    const ddq_op *op = a->op;
    const int64_t prescaled_bound = (int64_t)255 << 20, sum_bound = (int64_t)1 << 28;
    if (!ddq_rq_x86_exact(op->add_a, prescaled_bound) || !ddq_rq_x86_exact(op->add_b, prescaled_bound) ||
        op->add_a.shift > 0 || op->add_b.shift > 0 || !ddq_rq_x86_exact(op->multiplier, sum_bound)) {
        ddq_add__reference(a, begin, end);
        return;
    }
    const uint8_t *x0 = a->x[0], *x1 = a->x[1];
    uint8_t *y = a->y;
    const ddq_rq_x86 qa = ddq_rq_x86_of(op->add_a, 0), qb = ddq_rq_x86_of(op->add_b, 0);
    const ddq_rq_x86 qo = ddq_rq_x86_of(op->multiplier, a->out->zero_point);
    const ddq_rq_avx2 ra = ddq_rq_avx2_load(&qa), rb = ddq_rq_avx2_load(&qb), ro = ddq_rq_avx2_load(&qo);
    const __m256i zpa = _mm256_set1_epi16((int16_t)a->in[0]->zero_point);
    const __m256i zpb = _mm256_set1_epi16((int16_t)a->in[1]->zero_point);
    const __m128i lo = _mm_set1_epi8((char)op->act_min), hi = _mm_set1_epi8((char)op->act_max);
    int64_t i = begin;
    for (; i + 16 <= end; i += 16) {
        __m256i a0, a1, b0, b1;
        prescaled(_mm_loadu_si128((const __m128i *)(x0 + i)), zpa, &a0, &a1);
        prescaled(_mm_loadu_si128((const __m128i *)(x1 + i)), zpb, &b0, &b1);
        const __m256i s0 = _mm256_add_epi32(ddq_mbqm_zp_avx2(a0, &ra, 1), ddq_mbqm_zp_avx2(b0, &rb, 1));
        const __m256i s1 = _mm256_add_epi32(ddq_mbqm_zp_avx2(a1, &ra, 1), ddq_mbqm_zp_avx2(b1, &rb, 1));
        _mm_storeu_si128((__m128i *)(y + i),
                         ddq_narrow16_avx2(ddq_mbqm_zp_avx2(s0, &ro, 1), ddq_mbqm_zp_avx2(s1, &ro, 1), lo, hi));
    }
    if (i < end) ddq_add__reference(a, i, end);
}
