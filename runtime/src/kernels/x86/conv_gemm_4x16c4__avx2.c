/* conv2d with groups = 1 (and 1×1, im2col and the 3-channel stem alike) as a GEMM on groups of
 * 4 taps, AVX2: tiles of 4 output channels × 16 pixels (× 8 for a panel's last pixels; the MADD
 * blocks as two halves of 8).
 *
 * Layout (gemm_plan.h, group 4, c = 0): the panel holds x as unsigned bytes, four consecutive
 * taps per pixel, so one 32-byte load is 8 pixels × taps 4g … 4g + 3; the weights are packed
 * [⌈O/4⌉][K/4][4][4], so one 4-byte broadcast gives a channel's four taps in every pixel's
 * lanes. Taps past K meet zero weights. Columns past the panel's pixels hold pad bytes; lanes
 * are independent, so they only reach outputs that are not stored.
 *
 * MADDUBS blocks (x86.h): per group two loads, four broadcasts, eight _mm256_maddubs_epi16
 * (each 32 multiply-adds: pixel × pair of taps into int16 lanes, taps 4g, 4g+1 in the even lane
 * and 4g+2, 4g+3 in the odd one) and eight _mm256_add_epi16 over a run; at the end of a run
 * _mm256_madd_epi16 by ones adds each pixel's two lanes into int32. Exact: prepare admits the
 * block only if no single pair's interval bound (w·v, v ∈ [qmin, qmax]) leaves int16, so
 * maddubs never saturates; within a run the bound of each lane's sum lies in int16, so the
 * wrap-around int16 adds end at the exact sum (ddq_greedy_runs, lane_taps 2).
 *
 * MADD blocks: the bytes zero-extended to int16 (4 pixels × 4 taps per vector) and the weights
 * widened at prepare, _mm256_madd_epi16 sums products of a pair of taps exactly into int32
 * lanes (pixel, half of the group), and _mm256_hadd_epi32 joins a pixel's two halves at the end.
 *
 * int32 sums wrap mod 2^32 and end at the exact accumulator (bias + (c − zp)·Σw folded by the
 * plan), which the loader's bound keeps in int32. The requantization is requant__avx2.h where
 * prepare proved it exact, else the scalar ddq_mbqm. */
#include "conv_gemm_4x16c4.h"

#define GROUP_PRODUCTS(first)                                                                                       \
    do {                                                                                                            \
        const __m256i x0 = _mm256_loadu_si256((const __m256i *)x);                                                  \
        const __m256i x1 = nv == 2 ? _mm256_loadu_si256((const __m256i *)(x + 32)) : x0;                           \
        const __m256i w0 = ddq_broadcast4(w), w1 = ddq_broadcast4(w + 4);                                          \
        const __m256i w2 = ddq_broadcast4(w + 8), w3 = ddq_broadcast4(w + 12);                                     \
        s00 = first ? _mm256_maddubs_epi16(x0, w0) : _mm256_add_epi16(s00, _mm256_maddubs_epi16(x0, w0));          \
        s10 = first ? _mm256_maddubs_epi16(x0, w1) : _mm256_add_epi16(s10, _mm256_maddubs_epi16(x0, w1));          \
        s20 = first ? _mm256_maddubs_epi16(x0, w2) : _mm256_add_epi16(s20, _mm256_maddubs_epi16(x0, w2));          \
        s30 = first ? _mm256_maddubs_epi16(x0, w3) : _mm256_add_epi16(s30, _mm256_maddubs_epi16(x0, w3));          \
        if (nv == 2) {                                                                                              \
            s01 = first ? _mm256_maddubs_epi16(x1, w0) : _mm256_add_epi16(s01, _mm256_maddubs_epi16(x1, w0));      \
            s11 = first ? _mm256_maddubs_epi16(x1, w1) : _mm256_add_epi16(s11, _mm256_maddubs_epi16(x1, w1));      \
            s21 = first ? _mm256_maddubs_epi16(x1, w2) : _mm256_add_epi16(s21, _mm256_maddubs_epi16(x1, w2));      \
            s31 = first ? _mm256_maddubs_epi16(x1, w3) : _mm256_add_epi16(s31, _mm256_maddubs_epi16(x1, w3));      \
        }                                                                                                           \
        x += pitch;                                                                                                 \
        w += DDQ_X86_STEP;                                                                                          \
    } while (0)

/* The int16 sums of one run of `length` groups from x, w (advanced past it) into s[i][v]. Not
 * inlined: on its own GCC keeps the eight sums in registers without copies, inlined into the
 * tile it spills and copies them (twice the instructions per group). */
static __attribute__((noinline)) void run_products(const int8_t **xr, const int8_t **wr, int64_t pitch,
                                                   int64_t length, __m256i s[DDQ_X86_BLOCK][2], const int nv) {
    const int8_t *x = *xr, *w = *wr;
    __m256i s00, s10, s20, s30, s01 = _mm256_setzero_si256(), s11 = s01, s21 = s01, s31 = s01;
    GROUP_PRODUCTS(1);
    for (int64_t g = 1; g < length; g++) GROUP_PRODUCTS(0);
    s[0][0] = s00, s[1][0] = s10, s[2][0] = s20, s[3][0] = s30;
    s[0][1] = s01, s[1][1] = s11, s[2][1] = s21, s[3][1] = s31;
    *xr = x;
    *wr = w;
}

/* acc[i][v] = bias[i] + Σ over the block's runs, 8 · nv pixels from x (MADDUBS). One run (the
 * common case: a low-bit block's whole K) keeps no int32 sums live during the products. */
DDQ_ALWAYS_INLINE void tile_maddubs(const int8_t *x, int64_t pitch, const int8_t *w, const ddq_run *runs,
                                    int64_t nruns, const int32_t *bias, __m256i acc[DDQ_X86_BLOCK][2], const int nv) {
    const __m256i ones = _mm256_set1_epi16(1);
    __m256i s[DDQ_X86_BLOCK][2];
    run_products(&x, &w, pitch, runs[0].length, s, nv); /* prepare gave every MADDUBS block a run */
    for (int i = 0; i < DDQ_X86_BLOCK; i++)
        for (int v = 0; v < nv; v++)
            acc[i][v] = _mm256_add_epi32(_mm256_set1_epi32(bias[i]), _mm256_madd_epi16(s[i][v], ones));
    for (int64_t r = 1; r < nruns; r++) {
        run_products(&x, &w, pitch, runs[r].length, s, nv);
        for (int i = 0; i < DDQ_X86_BLOCK; i++)
            for (int v = 0; v < nv; v++) acc[i][v] = _mm256_add_epi32(acc[i][v], _mm256_madd_epi16(s[i][v], ones));
    }
}
#undef GROUP_PRODUCTS

/* The same with int16 operands (MADD), 8 pixels: w16 holds the block's weights as int16, acc[i][0]
 * gets channel i. A function of its own with named accumulators, as run_products. */
static __attribute__((noinline)) void tile_madd(const int8_t *x, int64_t pitch, const int16_t *w16, int64_t KG,
                                                const int32_t *bias, __m256i acc[DDQ_X86_BLOCK][2]) {
    /* pixels 0–3 (l) and 4–7 (h) of channels 0–3, (pixel, half of the group) per lane */
    __m256i l0 = _mm256_setzero_si256(), l1 = l0, l2 = l0, l3 = l0, h0 = l0, h1 = l0, h2 = l0, h3 = l0;
    for (int64_t g = 0; g < KG; g++, x += pitch, w16 += DDQ_X86_STEP) {
        const __m256i xl = _mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i *)x));
        const __m256i xh = _mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i *)(x + 16)));
        int64_t v[DDQ_X86_BLOCK];
        memcpy(v, w16, sizeof v);
        const __m256i w0 = _mm256_set1_epi64x(v[0]), w1 = _mm256_set1_epi64x(v[1]);
        const __m256i w2 = _mm256_set1_epi64x(v[2]), w3 = _mm256_set1_epi64x(v[3]);
        l0 = _mm256_add_epi32(l0, _mm256_madd_epi16(xl, w0));
        h0 = _mm256_add_epi32(h0, _mm256_madd_epi16(xh, w0));
        l1 = _mm256_add_epi32(l1, _mm256_madd_epi16(xl, w1));
        h1 = _mm256_add_epi32(h1, _mm256_madd_epi16(xh, w1));
        l2 = _mm256_add_epi32(l2, _mm256_madd_epi16(xl, w2));
        h2 = _mm256_add_epi32(h2, _mm256_madd_epi16(xh, w2));
        l3 = _mm256_add_epi32(l3, _mm256_madd_epi16(xl, w3));
        h3 = _mm256_add_epi32(h3, _mm256_madd_epi16(xh, w3));
    }
    const __m256i lo[DDQ_X86_BLOCK] = {l0, l1, l2, l3}, hi[DDQ_X86_BLOCK] = {h0, h1, h2, h3};
    for (int i = 0; i < DDQ_X86_BLOCK; i++) {
        /* hadd: pixels 0, 1, 4, 5 | 2, 3, 6, 7; the permutation puts them in order */
        const __m256i sum = _mm256_permute4x64_epi64(_mm256_hadd_epi32(lo[i], hi[i]), 0xD8);
        acc[i][0] = _mm256_add_epi32(sum, _mm256_set1_epi32(bias[i]));
    }
}

/* Block b's kernel (MADDUBS or MADD, x86.h) on 8 · nv pixels. */
DDQ_ALWAYS_INLINE void tile_avx2(const ddq_x86_gemm *g, int64_t b, const int8_t *xp, int64_t pitch,
                                 __m256i acc[DDQ_X86_BLOCK][2], const int nv) {
    const ddq_gemm_plan *p = g->plan;
    const int32_t *bias = p->bias + b * DDQ_X86_BLOCK;
    if (p->kernel[b] == DDQ_X86_MADD) {
        const int16_t *w16 = g->w16 + b * p->KG * DDQ_X86_STEP;
        __m256i half[DDQ_X86_BLOCK][2];
        for (int v = 0; v < nv; v++) {
            tile_madd(xp + 32 * v, pitch, w16, p->KG, bias, half);
            for (int i = 0; i < DDQ_X86_BLOCK; i++) acc[i][v] = half[i][0];
        }
        return;
    }
    tile_maddubs(xp, pitch, p->w + b * p->KG * DDQ_X86_STEP, p->runs + p->run_begin[b],
                 p->run_begin[b + 1] - p->run_begin[b], bias, acc, nv);
}

DDQ_X86_GEMM_ENTRY(ddq_conv_gemm_4x16c4__avx2, tile_avx2)
