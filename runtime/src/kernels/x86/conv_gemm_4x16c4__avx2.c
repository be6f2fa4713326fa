/* conv2d with groups = 1 (and 1×1, im2col and the 3-channel stem alike) as a GEMM on groups of
 * 4 taps, AVX2: tiles of 4 output channels × 16 pixels (× 8 for a panel's last pixels, and for
 * the MADD blocks).
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
#include <string.h>

#include "requant__avx2.h"

#define DDQ_ALWAYS_INLINE static inline __attribute__((always_inline))
#define STEP (DDQ_X86_BLOCK * DDQ_X86_GROUP) /* weight bytes per group of taps */

static inline __m256i broadcast4(const int8_t *w) {
    int32_t v;
    memcpy(&v, w, 4);
    return _mm256_set1_epi32(v);
}

/* One group of taps (x, w) of 4 channels × 8 · nv pixels: the products started (first) or added
 * into the int16 pair lanes. Named accumulators, not an array: GCC then keeps them in registers
 * without copies. */
#define GROUP_PRODUCTS(first)                                                                                       \
    do {                                                                                                            \
        const __m256i x0 = _mm256_loadu_si256((const __m256i *)x);                                                  \
        const __m256i x1 = nv == 2 ? _mm256_loadu_si256((const __m256i *)(x + 32)) : x0;                           \
        const __m256i w0 = broadcast4(w), w1 = broadcast4(w + 4), w2 = broadcast4(w + 8), w3 = broadcast4(w + 12); \
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
        w += STEP;                                                                                                  \
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
        for (int v = 0; v < nv; v++) acc[i][v] = _mm256_add_epi32(_mm256_set1_epi32(bias[i]), _mm256_madd_epi16(s[i][v], ones));
    for (int64_t r = 1; r < nruns; r++) {
        run_products(&x, &w, pitch, runs[r].length, s, nv);
        for (int i = 0; i < DDQ_X86_BLOCK; i++)
            for (int v = 0; v < nv; v++) acc[i][v] = _mm256_add_epi32(acc[i][v], _mm256_madd_epi16(s[i][v], ones));
    }
}
#undef GROUP_PRODUCTS

/* The same with int16 operands (MADD), 8 pixels: w16 holds the block's weights as int16. */
DDQ_ALWAYS_INLINE void tile_madd(const int8_t *xp, int64_t pitch, const int16_t *w16, int64_t KG,
                                 const int32_t *bias, __m256i acc[DDQ_X86_BLOCK][2]) {
    __m256i lo[DDQ_X86_BLOCK], hi[DDQ_X86_BLOCK]; /* pixels 0–3 and 4–7, (pixel, half) per lane */
    for (int i = 0; i < DDQ_X86_BLOCK; i++) lo[i] = hi[i] = _mm256_setzero_si256();
    const int8_t *x = xp;
    for (int64_t g = 0; g < KG; g++, x += pitch, w16 += STEP) {
        const __m256i xl = _mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i *)x));
        const __m256i xh = _mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i *)(x + 16)));
        for (int i = 0; i < DDQ_X86_BLOCK; i++) {
            int64_t v;
            memcpy(&v, w16 + 4 * i, 8);
            const __m256i wv = _mm256_set1_epi64x(v);
            lo[i] = _mm256_add_epi32(lo[i], _mm256_madd_epi16(xl, wv));
            hi[i] = _mm256_add_epi32(hi[i], _mm256_madd_epi16(xh, wv));
        }
    }
    for (int i = 0; i < DDQ_X86_BLOCK; i++) {
        /* hadd: pixels 0, 1, 4, 5 | 2, 3, 6, 7; the permutation puts them in order */
        const __m256i sum = _mm256_permute4x64_epi64(_mm256_hadd_epi32(lo[i], hi[i]), 0xD8);
        acc[i][0] = _mm256_add_epi32(sum, _mm256_set1_epi32(bias[i]));
    }
}

/* What a tile's epilogue needs. */
typedef struct gemm_out {
    const ddq_x86_gemm *g;
    const ddq_op *op;
    int32_t zp;
    int64_t P; /* output pixels: the channel planes' pitch */
} gemm_out;

/* Channels o0 … o0 + 3 (those in [ob, oe) stored) of 8 · nv pixels requantized, count of them
 * stored at y (channel o0's plane). vector_rq: 0 the scalar requantization, 1 the vector one,
 * 2 the vector one with l > 0 somewhere. */
DDQ_ALWAYS_INLINE void store_tile(const gemm_out *q, __m256i acc[DDQ_X86_BLOCK][2], int64_t o0, int64_t ob,
                                  int64_t oe, uint8_t *y, int64_t count, const int nv, const int vector_rq) {
    uint8_t bytes[DDQ_X86_BLOCK][16];
    const int whole = count == 8 * nv && o0 >= ob && o0 + DDQ_X86_BLOCK <= oe;
    if (vector_rq) {
        for (int i = 0; i < DDQ_X86_BLOCK; i++) {
            const ddq_rq_avx2 c = ddq_rq_avx2_load(&q->g->rq[o0 + i]);
            for (int v = 0; v < nv; v++) acc[i][v] = ddq_mbqm_zp_avx2(acc[i][v], &c, vector_rq > 1);
        }
        const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
        const __m256i lo = _mm256_set1_epi8((char)q->op->act_min), hi = _mm256_set1_epi8((char)q->op->act_max);
        for (int i = 0; i < DDQ_X86_BLOCK; i += 2) {
            /* 16 pixels: channels i, i + 1 as int16 (pixels 0–3, 8–11 | 4–7, 12–15), bytes of both,
             * then channel i's 16 in order | channel i + 1's; 8 pixels: channels i … i + 3 */
            const __m256i u = nv == 2 ? _mm256_packus_epi16(_mm256_packs_epi32(acc[i][0], acc[i][1]),
                                                            _mm256_packs_epi32(acc[i + 1][0], acc[i + 1][1]))
                                      : _mm256_packus_epi16(_mm256_packs_epi32(acc[0][0], acc[1][0]),
                                                            _mm256_packs_epi32(acc[2][0], acc[3][0]));
            const __m256i b = _mm256_min_epu8(_mm256_max_epu8(_mm256_permutevar8x32_epi32(u, order), lo), hi);
            if (nv == 2 && whole) {
                _mm_storeu_si128((__m128i *)(y + i * q->P), _mm256_castsi256_si128(b));
                _mm_storeu_si128((__m128i *)(y + (i + 1) * q->P), _mm256_extracti128_si256(b, 1));
            } else if (nv == 2) {
                _mm_storeu_si128((__m128i *)bytes[i], _mm256_castsi256_si128(b));
                _mm_storeu_si128((__m128i *)bytes[i + 1], _mm256_extracti128_si256(b, 1));
            } else {
                const __m128i b01 = _mm256_castsi256_si128(b), b23 = _mm256_extracti128_si256(b, 1);
                _mm_storel_epi64((__m128i *)bytes[0], b01);
                _mm_storel_epi64((__m128i *)bytes[1], _mm_unpackhi_epi64(b01, b01));
                _mm_storel_epi64((__m128i *)bytes[2], b23);
                _mm_storel_epi64((__m128i *)bytes[3], _mm_unpackhi_epi64(b23, b23));
                break;
            }
        }
        if (nv == 2 && whole) return;
    } else {
        for (int i = 0; i < DDQ_X86_BLOCK; i++) {
            if (o0 + i < ob || o0 + i >= oe) continue;
            int32_t a[16];
            for (int v = 0; v < nv; v++) _mm256_storeu_si256((__m256i *)(a + 8 * v), acc[i][v]);
            const ddq_multiplier m = q->op->channel_multipliers[o0 + i];
            for (int j = 0; j < count; j++)
                bytes[i][j] = (uint8_t)ddq_clamp_code(ddq_mbqm(a[j], m), q->zp, q->op->act_min, q->op->act_max);
        }
    }
    for (int i = 0; i < DDQ_X86_BLOCK; i++)
        if (o0 + i >= ob && o0 + i < oe) memcpy(y + i * q->P, bytes[i], (size_t)count);
}

DDQ_ALWAYS_INLINE void gemm(const ddq_op_args *a, int64_t begin, int64_t end, const int vector_rq) {
    const ddq_x86_gemm *g = a->prepared;
    const ddq_gemm_plan *p = g->plan;
    const ddq_tensor *yt = a->out;
    const int64_t P = yt->shape[2] * yt->shape[3], PP = p->panel_pixels, pitch = PP * DDQ_X86_GROUP;
    int8_t *panel = a->scratch;
    int8_t *rows = panel + (p->KG * pitch + 63) / 64 * 64;
    const gemm_out q = {g, a->op, yt->zero_point, P};
    uint8_t *y = a->y;
    for (int64_t p0 = 0; p0 < P; p0 += PP) {
        const int64_t n = P - p0 < PP ? P - p0 : PP;
        ddq_build_panel(p, a->op, a->in[0], a->in[1], yt, a->x[0], p0, n, panel, rows);
        for (int64_t b = begin / DDQ_X86_BLOCK; b * DDQ_X86_BLOCK < end; b++) {
            const int64_t o0 = b * DDQ_X86_BLOCK;
            const int8_t *w = p->w + b * p->KG * STEP;
            const ddq_run *runs = p->runs + p->run_begin[b];
            const int64_t nruns = p->run_begin[b + 1] - p->run_begin[b];
            uint8_t *yb = y + o0 * P + p0;
            __m256i acc[DDQ_X86_BLOCK][2];
            int64_t j = 0;
            if (p->kernel[b] == DDQ_X86_MADD) {
                for (; j < n; j += 8) {
                    tile_madd(panel + j * DDQ_X86_GROUP, pitch, g->w16 + b * p->KG * STEP, p->KG, p->bias + o0, acc);
                    store_tile(&q, acc, o0, begin, end, yb + j, n - j < 8 ? n - j : 8, 1, vector_rq);
                }
                continue;
            }
            for (; n - j > 8; j += 16) {
                tile_maddubs(panel + j * DDQ_X86_GROUP, pitch, w, runs, nruns, p->bias + o0, acc, 2);
                store_tile(&q, acc, o0, begin, end, yb + j, n - j < 16 ? n - j : 16, 2, vector_rq);
            }
            if (j < n) {
                tile_maddubs(panel + j * DDQ_X86_GROUP, pitch, w, runs, nruns, p->bias + o0, acc, 1);
                store_tile(&q, acc, o0, begin, end, yb + j, n - j, 1, vector_rq);
            }
        }
    }
}

void ddq_conv_gemm_4x16c4__avx2(const ddq_op_args *a, int64_t begin, int64_t end) {
    const ddq_x86_gemm *g = a->prepared;
    if (!g->exact_rq) gemm(a, begin, end, 0);
    else if (g->lshift_any) gemm(a, begin, end, 2);
    else gemm(a, begin, end, 1);
}
