/* The x86 GEMMs' tiles of 4 output channels × 16 (or 8) pixels on the plan of gemm_plan.h
 * (group 4, c = 0), shared by conv_gemm_4x16c4__avx2.c and conv_gemm_4x16c4__avxvnni.c: the
 * loop over panels, blocks and pixel tiles, and the epilogue (requantization, narrowing,
 * stores). Each file gives its block kernel, which sums a tile's products onto the folded
 * biases in int32 lanes, acc[i][v] = channel o0 + i, pixels 8v … 8v + 7. Included by files
 * compiled with -mavx2 (and their own further flags). */
#ifndef DDQ_KERNELS_X86_CONV_GEMM_4X16C4_H
#define DDQ_KERNELS_X86_CONV_GEMM_4X16C4_H

#include <string.h>

#include "requant__avx2.h"

#define DDQ_ALWAYS_INLINE static inline __attribute__((always_inline))
#define DDQ_X86_STEP (DDQ_X86_BLOCK * DDQ_X86_GROUP) /* weight bytes per group of taps */

/* A channel's four taps (4 bytes) in every 32-bit lane. */
static inline __m256i ddq_broadcast4(const int8_t *w) {
    int32_t v;
    memcpy(&v, w, 4);
    return _mm256_set1_epi32(v);
}

/* A block kernel: block b's sums for 8 · nv pixels from the panel at xp (pitch: bytes per
 * panel row of groups). */
typedef void (*ddq_x86_tile_fn)(const ddq_x86_gemm *g, int64_t b, const int8_t *xp, int64_t pitch,
                                __m256i acc[DDQ_X86_BLOCK][2], int nv);

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
DDQ_ALWAYS_INLINE void ddq_x86_store_tile(const gemm_out *q, __m256i acc[DDQ_X86_BLOCK][2], int64_t o0, int64_t ob,
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
            memset(bytes[i], 0, sizeof bytes[i]);
            for (int j = 0; j < count; j++)
                bytes[i][j] = (uint8_t)ddq_clamp_code(ddq_mbqm(a[j], m), q->zp, q->op->act_min, q->op->act_max);
        }
    }
    for (int i = 0; i < DDQ_X86_BLOCK; i++)
        if (o0 + i >= ob && o0 + i < oe) {
            const __m128i *b = (const __m128i *)bytes[i];
            ddq_store_partial16(y + i * q->P, nv == 2 ? _mm_loadu_si128(b) : _mm_loadl_epi64(b), count);
        }
}

/* Output channels [begin, end) of the op: panels of the plan's pixels, blocks of 4 channels,
 * tiles of 16 pixels and one of 8 for a panel's last 1–8; vector_rq as ddq_x86_store_tile's. */
DDQ_ALWAYS_INLINE void ddq_x86_gemm_4x16c4(const ddq_op_args *a, int64_t begin, int64_t end, const int vector_rq,
                                           ddq_x86_tile_fn tile) {
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
            uint8_t *yb = y + o0 * P + p0;
            __m256i acc[DDQ_X86_BLOCK][2];
            int64_t j = 0;
            for (; n - j > 8; j += 16) {
                tile(g, b, panel + j * DDQ_X86_GROUP, pitch, acc, 2);
                ddq_x86_store_tile(&q, acc, o0, begin, end, yb + j, n - j < 16 ? n - j : 16, 2, vector_rq);
            }
            if (j < n) {
                tile(g, b, panel + j * DDQ_X86_GROUP, pitch, acc, 1);
                ddq_x86_store_tile(&q, acc, o0, begin, end, yb + j, n - j, 1, vector_rq);
            }
        }
    }
}

/* The driver with the requantization the plan admits (0 scalar, 1 vector, 2 vector with l > 0). */
#define DDQ_X86_GEMM_ENTRY(name, tile)                                                                             \
    void name(const ddq_op_args *a, int64_t begin, int64_t end) {                                                  \
        const ddq_x86_gemm *g = a->prepared;                                                                        \
        if (!g->exact_rq) ddq_x86_gemm_4x16c4(a, begin, end, 0, tile);                                              \
        else if (g->lshift_any) ddq_x86_gemm_4x16c4(a, begin, end, 2, tile);                                        \
        else ddq_x86_gemm_4x16c4(a, begin, end, 1, tile);                                                           \
    }

#endif
