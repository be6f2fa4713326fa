/* quantize (float → uint8 codes), AVX2, 32 values per step, in the reference's exact order of
 * IEEE single-precision operations (docs/arithmetic.md §2): t = x / scale (_mm256_div_ps, the
 * correctly rounded quotient like the scalar division), t + 0.5, floor (_mm256_floor_ps),
 * + zp, then the clamp to [qmin, qmax] and NaN → zp (by an unordered compare of t with itself;
 * _mm256_max_ps / _mm256_min_ps return their second operand for a NaN, and those lanes are
 * replaced). The clamped values are integers in 0…255, so the conversion and the narrowing are
 * exact. The last 0–31 values run the reference code. */
#include "x86.h"

#include <immintrin.h>

static inline __m256i quantize8(__m256 x, __m256 scale, __m256 zp, __m256 lo, __m256 hi) {
    __m256 t = _mm256_div_ps(x, scale);
    t = _mm256_add_ps(t, _mm256_set1_ps(0.5f));
    t = _mm256_floor_ps(t);
    t = _mm256_add_ps(t, zp);
    const __m256 clamped = _mm256_min_ps(_mm256_max_ps(t, lo), hi);
    return _mm256_cvtps_epi32(_mm256_blendv_ps(clamped, zp, _mm256_cmp_ps(t, t, _CMP_UNORD_Q)));
}

void ddq_quantize__avx2(const ddq_op_args *a, int64_t begin, int64_t end) {
    const ddq_tensor *yt = a->out;
    const float *x = a->x[0];
    uint8_t *y = a->y;
    const __m256 scale = _mm256_set1_ps(yt->scales[0]), zp = _mm256_set1_ps((float)yt->zero_point);
    const __m256 lo = _mm256_set1_ps((float)yt->qmin), hi = _mm256_set1_ps((float)yt->qmax);
    int64_t i = begin;
    for (; i + 32 <= end; i += 32) {
        __m256i q[4];
        for (int k = 0; k < 4; k++) q[k] = quantize8(_mm256_loadu_ps(x + i + 8 * k), scale, zp, lo, hi);
        /* q0 0–3, q1 0–3, q2 0–3, q3 0–3 | the same of 4–7, as bytes; then in order */
        const __m256i u = _mm256_packus_epi16(_mm256_packs_epi32(q[0], q[1]), _mm256_packs_epi32(q[2], q[3]));
        const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
        _mm256_storeu_si256((__m256i *)(y + i), _mm256_permutevar8x32_epi32(u, order));
    }
    if (i < end) ddq_quantize__reference(a, i, end);
}
