/* conv2d with groups = 1 (and 1×1, im2col and the 3-channel stem alike) as a GEMM on groups of
 * 4 taps, AVX2: tiles of 4 output channels × 8 pixels.
 *
 * Layout (gemm_plan.h, group 4, c = 0): the panel holds x as unsigned bytes, four consecutive
 * taps per pixel, so one 32-byte load is 8 pixels × taps 4g … 4g + 3; the weights are packed
 * [⌈O/4⌉][K/4][4][4], so one 4-byte broadcast gives a channel's four taps in every pixel's
 * lanes. Taps past K meet zero weights. Columns past the panel's pixels hold pad bytes; lanes
 * are independent, so they only reach outputs that are not stored.
 *
 * MADDUBS blocks (x86.h): per group one load, four broadcasts, four _mm256_maddubs_epi16 (each
 * 32 multiply-adds: pixel × pair of taps into int16 lanes, taps 4g, 4g+1 in the even lane and
 * 4g+2, 4g+3 in the odd one) and four _mm256_add_epi16 over a run; at the end of a run
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

/* acc[i] = bias[i] + Σ over the block's runs of 8 pixels from xp (MADDUBS). */
DDQ_ALWAYS_INLINE void tile_maddubs(const int8_t *xp, int64_t pitch, const int8_t *w, const ddq_run *runs,
                                    int64_t nruns, const int32_t *bias, __m256i acc[DDQ_X86_BLOCK]) {
    const __m256i ones = _mm256_set1_epi16(1);
    const int8_t *x = xp;
    for (int i = 0; i < DDQ_X86_BLOCK; i++) acc[i] = _mm256_set1_epi32(bias[i]);
    for (int64_t r = 0; r < nruns; r++) {
        __m256i s[DDQ_X86_BLOCK];
        __m256i xv = _mm256_loadu_si256((const __m256i *)x);
        for (int i = 0; i < DDQ_X86_BLOCK; i++) s[i] = _mm256_maddubs_epi16(xv, broadcast4(w + 4 * i));
        x += pitch;
        w += STEP;
        for (int64_t g = 1; g < runs[r].length; g++, x += pitch, w += STEP) {
            xv = _mm256_loadu_si256((const __m256i *)x);
            for (int i = 0; i < DDQ_X86_BLOCK; i++)
                s[i] = _mm256_add_epi16(s[i], _mm256_maddubs_epi16(xv, broadcast4(w + 4 * i)));
        }
        for (int i = 0; i < DDQ_X86_BLOCK; i++) acc[i] = _mm256_add_epi32(acc[i], _mm256_madd_epi16(s[i], ones));
    }
}

/* The same with int16 operands (MADD): w16 holds the block's weights as int16. */
DDQ_ALWAYS_INLINE void tile_madd(const int8_t *xp, int64_t pitch, const int16_t *w16, int64_t KG,
                                 const int32_t *bias, __m256i acc[DDQ_X86_BLOCK]) {
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
        acc[i] = _mm256_add_epi32(sum, _mm256_set1_epi32(bias[i]));
    }
}

/* What a tile's epilogue needs. */
typedef struct gemm_out {
    const ddq_x86_gemm *g;
    const ddq_op *op;
    int32_t zp;
    int64_t P; /* output pixels: the channel planes' pitch */
} gemm_out;

/* Channels o0 … o0 + 3 (those in [ob, oe) stored) of 8 pixels requantized, count of them stored
 * at y (channel o0's plane). */
DDQ_ALWAYS_INLINE void store_tile(const gemm_out *q, const __m256i acc[DDQ_X86_BLOCK], int64_t o0, int64_t ob,
                                  int64_t oe, uint8_t *y, int64_t count, const int vector_rq) {
    uint8_t bytes[DDQ_X86_BLOCK][8];
    if (vector_rq) {
        __m256i r[DDQ_X86_BLOCK];
        for (int i = 0; i < DDQ_X86_BLOCK; i++) {
            const ddq_rq_avx2 c = ddq_rq_avx2_load(&q->g->rq[o0 + i]);
            r[i] = ddq_mbqm_zp_avx2(acc[i], &c);
        }
        /* channels 0, 1 | 2, 3 as int16, then bytes: c0 p0–3, c1 p0–3, c2 p0–3, c3 p0–3 | p4–7 */
        const __m256i u = _mm256_packus_epi16(_mm256_packs_epi32(r[0], r[1]), _mm256_packs_epi32(r[2], r[3]));
        __m256i v = _mm256_permutevar8x32_epi32(u, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
        v = _mm256_min_epu8(_mm256_max_epu8(v, _mm256_set1_epi8((char)q->op->act_min)),
                            _mm256_set1_epi8((char)q->op->act_max));
        if (count == 8 && o0 >= ob && o0 + DDQ_X86_BLOCK <= oe) {
            const __m128i v01 = _mm256_castsi256_si128(v), v23 = _mm256_extracti128_si256(v, 1);
            _mm_storel_epi64((__m128i *)y, v01);
            _mm_storel_epi64((__m128i *)(y + q->P), _mm_unpackhi_epi64(v01, v01));
            _mm_storel_epi64((__m128i *)(y + 2 * q->P), v23);
            _mm_storel_epi64((__m128i *)(y + 3 * q->P), _mm_unpackhi_epi64(v23, v23));
            return;
        }
        _mm256_storeu_si256((__m256i *)bytes, v);
    } else {
        for (int i = 0; i < DDQ_X86_BLOCK; i++) {
            if (o0 + i < ob || o0 + i >= oe) continue;
            int32_t a[8];
            _mm256_storeu_si256((__m256i *)a, acc[i]);
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
            const int madd = p->kernel[b] == DDQ_X86_MADD;
            for (int64_t j = 0; j < n; j += 8) {
                __m256i acc[DDQ_X86_BLOCK];
                const int8_t *xp = panel + j * DDQ_X86_GROUP;
                if (madd) tile_madd(xp, pitch, g->w16 + b * p->KG * STEP, p->KG, p->bias + o0, acc);
                else tile_maddubs(xp, pitch, w, runs, nruns, p->bias + o0, acc);
                store_tile(&q, acc, o0, begin, end, y + o0 * P + p0 + j, n - j < 8 ? n - j : 8, vector_rq);
            }
        }
    }
}

void ddq_conv_gemm_4x8c4__avx2(const ddq_op_args *a, int64_t begin, int64_t end) {
    if (((const ddq_x86_gemm *)a->prepared)->exact_rq) gemm(a, begin, end, 1);
    else gemm(a, begin, end, 0);
}
