/* fully_connected, AVX2: x − zp converted to int16 once per call (in the thread's scratch, zero
 * to a multiple of 16), then per output the int8 weights sign-extended to int16
 * (_mm256_cvtepi8_epi16) and _mm256_madd_epi16: each pair of products |w · (x − zp)| ≤ 127 · 255
 * summed exactly into an int32 lane. The lanes' int32 sums wrap and end at the exact
 * accumulator, which the loader's bound keeps in int32; integer sums do not depend on their
 * order. The requantization is the scalar ddq_mbqm (one value per output). */
#include "x86.h"

#include <immintrin.h>

void ddq_fully_connected__avx2(const ddq_op_args *a, int64_t begin, int64_t end) {
    const int64_t I = a->in[0]->shape[1], I16 = (I + 15) / 16 * 16;
    int16_t *xs = a->scratch;
    for (int64_t i = 0; i < I; i++) xs[i] = (int16_t)(((const uint8_t *)a->x[0])[i] - a->in[0]->zero_point);
    for (int64_t i = I; i < I16; i++) xs[i] = 0;
    const ddq_op *op = a->op;
    const int32_t *bias = a->in[2]->data;
    for (int64_t o = begin; o < end; o++) {
        const int8_t *wo = (const int8_t *)a->in[1]->data + o * I;
        __m256i s0 = _mm256_setzero_si256(), s1 = s0;
        int64_t i = 0;
        for (; i + 32 <= I; i += 32) {
            const __m256i w0 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(wo + i)));
            const __m256i w1 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(wo + i + 16)));
            s0 = _mm256_add_epi32(s0, _mm256_madd_epi16(_mm256_loadu_si256((const __m256i *)(xs + i)), w0));
            s1 = _mm256_add_epi32(s1, _mm256_madd_epi16(_mm256_loadu_si256((const __m256i *)(xs + i + 16)), w1));
        }
        if (i + 16 <= I) {
            const __m256i w0 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(wo + i)));
            s0 = _mm256_add_epi32(s0, _mm256_madd_epi16(_mm256_loadu_si256((const __m256i *)(xs + i)), w0));
            i += 16;
        }
        const __m256i s = _mm256_add_epi32(s0, s1);
        __m128i h = _mm_add_epi32(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1));
        h = _mm_add_epi32(h, _mm_shuffle_epi32(h, 0x4E));
        h = _mm_add_epi32(h, _mm_shuffle_epi32(h, 0xB1));
        uint32_t acc = (uint32_t)_mm_cvtsi128_si32(h);
        for (; i < I; i++) acc += (uint32_t)(wo[i] * xs[i]); /* mod 2^32, as the lanes */
        ((uint8_t *)a->y)[o] = (uint8_t)ddq_clamp_code(ddq_mbqm((int32_t)(acc + (uint32_t)bias[o]),
                                                                op->channel_multipliers[o]),
                                                       a->out->zero_point, op->act_min, op->act_max);
    }
}
