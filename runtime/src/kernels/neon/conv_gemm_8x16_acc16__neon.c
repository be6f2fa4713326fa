/* conv2d with groups = 1 as a GEMM on int16 with int16 accumulation ("acc16"), Advanced SIMD:
 * for a block of 8 output channels whose low-bit weights and input grid keep every partial sum
 * of a k-block inside int16, as prepare proved (ddq_packed_conv.kblk, docs/runtime.md).
 *
 * Tiles of 8 channels × 16 pixels (8 × 8 and a transposed 8 × 4 for the last pixels of a panel,
 * see tile_8x4t). Per panel row of an 8 × 16 tile:
 * one LDP of 16 pixels, one 16-byte load of 8 channel weights and 16 MLA by lane into 16 int16x8
 * accumulators (128 MACs; the int32 path's SMLAL/SMLAL2 do 64). Every kblk rows the int16 sums
 * are flushed into int32 (SADDW/SADDW2, starting from the biases) and restarted at 0.
 *
 * Exactness: prepare chose kblk so that for every channel o of the block and every k-block B,
 * Σ_{r∈B} |w[o][r]| · span ≤ 32767, span = max(qmax − zp, zp − qmin) of the input grid; every
 * panel value is x − zp (|·| ≤ span) or 0, so every partial sum of a k-block, and the block's
 * sum, lies in int16 and equals the exact integer. The int32 sums that follow are those of the
 * int32 path, kept in range by the loader's accumulator bound. Columns of the panel past the
 * last pixel may hold other pixels' values; their lanes may wrap, but are never stored. */
#include "neon.h"

#define DDQ_ALWAYS_INLINE static inline __attribute__((always_inline))

typedef struct acc16_out {
    const ddq_packed_conv *pc;
    int32_t zp, lo, hi;
} acc16_out;

/* What the stores of a tile need, copied into locals at its start: the output stores (uint8)
 * may alias anything reached through a pointer, so the compiler would reload it per channel. */
typedef struct tile_consts {
    const ddq_requant_plan *rq;
    const int32_t *bias;
    int32_t zp, lo, hi;
} tile_consts;

#define TILE_CONSTS(q) const tile_consts k_ = {&(q)->pc->rq, (q)->pc->bias, (q)->zp, (q)->lo, (q)->hi}

/* Requantizes channel o's sums n[0…2v−1] (v = 1 or 2 vectors of 8) into out[0…v−1], in the fast
 * form where the plan allows it. */
static inline void requant_same(const tile_consts *k, int64_t o, const int32x4_t *s, uint8x8_t *out, int v) {
    if (k->rq->fast) {
        const ddq_requant_fast r = ddq_requant_fast_same(k->rq, o, k->zp, k->lo, k->hi);
        for (int i = 0; i < v; i++) out[i] = ddq_requantize_fast_neon(s[2 * i], s[2 * i + 1], &r);
    } else {
        const ddq_requant_neon r = ddq_requant_neon_same(k->rq->m0[o], k->rq->neg_t[o], k->zp, k->lo, k->hi);
        for (int i = 0; i < v; i++) out[i] = ddq_requantize_neon(s[2 * i], s[2 * i + 1], &r);
    }
}

#define Z16 vdupq_n_s16(0)

/* channel i: lanes 0–7 (a) and 8–15 (b) of the 16 pixels */
#define MLA16(i) \
    do { \
        c##i##a = vmlaq_laneq_s16(c##i##a, x0, wv, i); \
        c##i##b = vmlaq_laneq_s16(c##i##b, x1, wv, i); \
    } while (0)

/* the int16 sums of rows r0 … r1 − 1 in c0a … c7b */
#define ROWS16(r0, r1) \
    int16x8_t c0a = Z16, c0b = Z16, c1a = Z16, c1b = Z16, c2a = Z16, c2b = Z16, c3a = Z16, c3b = Z16; \
    int16x8_t c4a = Z16, c4b = Z16, c5a = Z16, c5b = Z16, c6a = Z16, c6b = Z16, c7a = Z16, c7b = Z16; \
    do { \
        const int16_t *xr = xp + (r0) * nps, *wr = wp + (r0) * DDQ_GEMM_BLOCK; \
        _Pragma("GCC unroll 2") for (int64_t r = (r0); r < (r1); r++, xr += nps, wr += DDQ_GEMM_BLOCK) { \
            const int16x8_t x0 = vld1q_s16(xr), x1 = vld1q_s16(xr + 8); \
            const int16x8_t wv = vld1q_s16(wr); \
            MLA16(0); \
            MLA16(1); \
            MLA16(2); \
            MLA16(3); \
            MLA16(4); \
            MLA16(5); \
            MLA16(6); \
            MLA16(7); \
        } \
    } while (0)

/* s[0…3] += the int16 sums of channel i, widened */
#define ADD16(s, i) \
    do { \
        (s)[0] = vaddw_s16((s)[0], vget_low_s16(c##i##a)); \
        (s)[1] = vaddw_high_s16((s)[1], c##i##a); \
        (s)[2] = vaddw_s16((s)[2], vget_low_s16(c##i##b)); \
        (s)[3] = vaddw_high_s16((s)[3], c##i##b); \
    } while (0)

/* the last k-block: channel i's sums (acc[i], or its bias) plus the int16 sums, stored */
#define STORE16(i, init) \
    do { \
        if (o0 + i >= ob && o0 + i < oe) { \
            int32x4_t t[4]; \
            for (int k = 0; k < 4; k++) t[k] = init; \
            ADD16(t, i); \
            store16(&k_, o0 + i, t, y + (o0 + i) * P, count); \
        } \
    } while (0)

/* Requantizes channel o's 16 int32 sums and stores `count` (9…16) of them. */
static inline void store16(const tile_consts *k, int64_t o, const int32x4_t s[4], uint8_t *y, int64_t count) {
    uint8x8_t v[2];
    requant_same(k, o, s, v, 2);
    vst1_u8(y, v[0]);
    ddq_store_u8x8_partial(y + 8, v[1], count - 8);
}

/* Channel o's 8 int32 sums, `count` (1…8) of them stored. */
static inline void store8(const tile_consts *k, int64_t o, int32x4_t lo, int32x4_t hi, uint8_t *y, int64_t count) {
    const int32x4_t s[2] = {lo, hi};
    uint8x8_t v;
    requant_same(k, o, s, &v, 1);
    ddq_store_u8x8_partial(y, v, count);
}

/* 8 channels (o0 … o0 + 7, of which ob … oe − 1 are stored) × 16 pixels (9 ≤ count ≤ 16 of them
 * stored), y at the tile's first pixel. Flushes every kb rows; with kb ≥ K (the common case)
 * the whole tile stays in registers. */
static void tile_8x16(const acc16_out *q, const int16_t *xp, int64_t nps, const int16_t *wp, int64_t K, int64_t kb,
                      int64_t o0, int64_t ob, int64_t oe, uint8_t *y, int64_t P, int64_t count) {
    TILE_CONSTS(q);
    const int32_t *b = k_.bias + o0;
    if (kb >= K) { /* one k-block: from the biases, all in registers */
        ROWS16(0, K);
        STORE16(0, vdupq_n_s32(b[0]));
        STORE16(1, vdupq_n_s32(b[1]));
        STORE16(2, vdupq_n_s32(b[2]));
        STORE16(3, vdupq_n_s32(b[3]));
        STORE16(4, vdupq_n_s32(b[4]));
        STORE16(5, vdupq_n_s32(b[5]));
        STORE16(6, vdupq_n_s32(b[6]));
        STORE16(7, vdupq_n_s32(b[7]));
        return;
    }
    int32x4_t sums[DDQ_GEMM_BLOCK][4];
    for (int i = 0; i < DDQ_GEMM_BLOCK; i++)
        for (int k = 0; k < 4; k++) sums[i][k] = vdupq_n_s32(b[i]);
    int64_t r0 = 0;
    for (; K - r0 > kb; r0 += kb) {
        ROWS16(r0, r0 + kb);
        ADD16(sums[0], 0);
        ADD16(sums[1], 1);
        ADD16(sums[2], 2);
        ADD16(sums[3], 3);
        ADD16(sums[4], 4);
        ADD16(sums[5], 5);
        ADD16(sums[6], 6);
        ADD16(sums[7], 7);
    }
    ROWS16(r0, K);
    STORE16(0, sums[0][k]);
    STORE16(1, sums[1][k]);
    STORE16(2, sums[2][k]);
    STORE16(3, sums[3][k]);
    STORE16(4, sums[4][k]);
    STORE16(5, sums[5][k]);
    STORE16(6, sums[6][k]);
    STORE16(7, sums[7][k]);
}

#define MLA8(i) c##i = vmlaq_laneq_s16(c##i, x0, wv, i)

#define ROWS8(r0, r1) \
    int16x8_t c0 = Z16, c1 = Z16, c2 = Z16, c3 = Z16, c4 = Z16, c5 = Z16, c6 = Z16, c7 = Z16; \
    do { \
        const int16_t *xr = xp + (r0) * nps, *wr = wp + (r0) * DDQ_GEMM_BLOCK; \
        _Pragma("GCC unroll 4") for (int64_t r = (r0); r < (r1); r++, xr += nps, wr += DDQ_GEMM_BLOCK) { \
            const int16x8_t x0 = vld1q_s16(xr); \
            const int16x8_t wv = vld1q_s16(wr); \
            MLA8(0); \
            MLA8(1); \
            MLA8(2); \
            MLA8(3); \
            MLA8(4); \
            MLA8(5); \
            MLA8(6); \
            MLA8(7); \
        } \
    } while (0)

#define ADD8(s, i) \
    do { \
        (s)[0] = vaddw_s16((s)[0], vget_low_s16(c##i)); \
        (s)[1] = vaddw_high_s16((s)[1], c##i); \
    } while (0)

#define STORE8(i, init) \
    do { \
        if (o0 + i >= ob && o0 + i < oe) { \
            int32x4_t t[2]; \
            for (int k = 0; k < 2; k++) t[k] = init; \
            ADD8(t, i); \
            store8(&k_, o0 + i, t[0], t[1], y + (o0 + i) * P, count); \
        } \
    } while (0)

/* 8 channels × 8 pixels (count ≤ 8 of them stored; 5 or more from the block function). */
static void tile_8x8(const acc16_out *q, const int16_t *xp, int64_t nps, const int16_t *wp, int64_t K, int64_t kb,
                     int64_t o0, int64_t ob, int64_t oe, uint8_t *y, int64_t P, int64_t count) {
    TILE_CONSTS(q);
    const int32_t *b = k_.bias + o0;
    if (kb >= K) { /* one k-block: from the biases, all in registers */
        ROWS8(0, K);
        STORE8(0, vdupq_n_s32(b[0]));
        STORE8(1, vdupq_n_s32(b[1]));
        STORE8(2, vdupq_n_s32(b[2]));
        STORE8(3, vdupq_n_s32(b[3]));
        STORE8(4, vdupq_n_s32(b[4]));
        STORE8(5, vdupq_n_s32(b[5]));
        STORE8(6, vdupq_n_s32(b[6]));
        STORE8(7, vdupq_n_s32(b[7]));
        return;
    }
    int32x4_t sums[DDQ_GEMM_BLOCK][2];
    for (int i = 0; i < DDQ_GEMM_BLOCK; i++)
        for (int k = 0; k < 2; k++) sums[i][k] = vdupq_n_s32(b[i]);
    int64_t r0 = 0;
    for (; K - r0 > kb; r0 += kb) {
        ROWS8(r0, r0 + kb);
        ADD8(sums[0], 0);
        ADD8(sums[1], 1);
        ADD8(sums[2], 2);
        ADD8(sums[3], 3);
        ADD8(sums[4], 4);
        ADD8(sums[5], 5);
        ADD8(sums[6], 6);
        ADD8(sums[7], 7);
    }
    ROWS8(r0, K);
    STORE8(0, sums[0][k]);
    STORE8(1, sums[1][k]);
    STORE8(2, sums[2][k]);
    STORE8(3, sums[3][k]);
    STORE8(4, sums[4][k]);
    STORE8(5, sums[5][k]);
    STORE8(6, sums[6][k]);
    STORE8(7, sums[7][k]);
}

#define MLA4T(p) c##p = vmlaq_lane_s16(c##p, wv, x0, p)

#define STORE4T(l) \
    do { \
        if (o0 + l >= ob && o0 + l < oe) vst4_lane_u8(y + (o0 + l) * P, v, l); \
    } while (0)

/* Requantizes 4 pixels (s<p>l: channels o0 … o0 + 3, s<p>h: o0 + 4 … o0 + 7, int32 sums with
 * the biases) and stores channels ob … oe − 1 (within the 8), `count` pixels each. */
static inline void store_4t(const tile_consts *k, int32x4_t s0l, int32x4_t s0h, int32x4_t s1l, int32x4_t s1h,
                            int32x4_t s2l, int32x4_t s2h, int32x4_t s3l, int32x4_t s3h, int64_t o0, int64_t ob,
                            int64_t oe, uint8_t *y, int64_t P, int64_t count) {
    /* each lane its channel's multiplier; v.val[p] holds pixel p of the 8 channels */
    uint8x8x4_t v;
    if (k->rq->fast) {
        const ddq_requant_fast r = ddq_requant_fast_lanes(k->rq, o0, k->zp, k->lo, k->hi);
        v.val[0] = ddq_requantize_fast_neon(s0l, s0h, &r);
        v.val[1] = ddq_requantize_fast_neon(s1l, s1h, &r);
        v.val[2] = ddq_requantize_fast_neon(s2l, s2h, &r);
        v.val[3] = ddq_requantize_fast_neon(s3l, s3h, &r);
    } else {
        const ddq_requant_neon r = ddq_requant_neon_lanes(k->rq->m0 + o0, k->rq->neg_t + o0, k->zp, k->lo, k->hi);
        v.val[0] = ddq_requantize_neon(s0l, s0h, &r);
        v.val[1] = ddq_requantize_neon(s1l, s1h, &r);
        v.val[2] = ddq_requantize_neon(s2l, s2h, &r);
        v.val[3] = ddq_requantize_neon(s3l, s3h, &r);
    }
    if (count == 4) {
        if (P == 4 && ob == o0 && oe == o0 + 8) { /* the 8 channels' 4 pixels are 32 consecutive bytes */
            vst4_u8(y + o0 * 4, v);
            return;
        }
        STORE4T(0); /* channel o0 + l: its 4 pixels, lane l of each v.val[p] */
        STORE4T(1);
        STORE4T(2);
        STORE4T(3);
        STORE4T(4);
        STORE4T(5);
        STORE4T(6);
        STORE4T(7);
        return;
    }
    uint8_t t[4][8];
    for (int p = 0; p < 4; p++) vst1_u8(t[p], v.val[p]);
    for (int64_t o = ob > o0 ? ob : o0; o < oe && o < o0 + 8; o++)
        for (int64_t p = 0; p < count; p++) y[o * P + p] = t[p][o - o0];
}

/* 8 channels × np (1, 2 or 4) pixels (1 ≤ count ≤ np of them stored), transposed: the lanes hold
 * the 8 channels, one accumulator per pixel, so a row takes np MLA by the pixel's lane (all of
 * their MACs used) where the 8 × 8 tile would take 8. For the last pixels of a panel, e.g. the
 * whole 2 × 2 maps at the end of a MobileNet. */
DDQ_ALWAYS_INLINE void tile_8xnt(const acc16_out *q, const int16_t *xp, int64_t nps, const int16_t *wp, int64_t K,
                                 int64_t kb, int64_t o0, int64_t ob, int64_t oe, uint8_t *y, int64_t P, int64_t count,
                                 const int np) {
    TILE_CONSTS(q);
    const int32x4_t b0 = vld1q_s32(k_.bias + o0), b1 = vld1q_s32(k_.bias + o0 + 4);
    int32x4_t s0l = b0, s0h = b1, s1l = b0, s1h = b1, s2l = b0, s2h = b1, s3l = b0, s3h = b1;
    for (int64_t r0 = 0; r0 < K; r0 += kb) {
        const int64_t r1 = K - r0 < kb ? K : r0 + kb;
        int16x8_t c0 = Z16, c1 = Z16, c2 = Z16, c3 = Z16;
        const int16_t *xr = xp + r0 * nps, *wr = wp + r0 * DDQ_GEMM_BLOCK;
#pragma GCC unroll 4
        for (int64_t r = r0; r < r1; r++, xr += nps, wr += DDQ_GEMM_BLOCK) {
            int16x4_t x0 = vld1_s16(xr);
            /* keeps one LDR of the 4 pixels: GCC would otherwise load each lane apart (LD1R, LDRSH + DUP) */
            __asm__("" : "+w"(x0));
            const int16x8_t wv = vld1q_s16(wr);
            MLA4T(0);
            if (np > 1) MLA4T(1);
            if (np > 2) MLA4T(2);
            if (np > 3) MLA4T(3);
        }
        s0l = vaddw_s16(s0l, vget_low_s16(c0)), s0h = vaddw_high_s16(s0h, c0);
        s1l = vaddw_s16(s1l, vget_low_s16(c1)), s1h = vaddw_high_s16(s1h, c1);
        s2l = vaddw_s16(s2l, vget_low_s16(c2)), s2h = vaddw_high_s16(s2h, c2);
        s3l = vaddw_s16(s3l, vget_low_s16(c3)), s3h = vaddw_high_s16(s3h, c3);
    }
    store_4t(&k_, s0l, s0h, s1l, s1h, s2l, s2h, s3l, s3h, o0, ob, oe, y, P, count);
}

/* The transposed tile computes only the pixels it stores: a panel's last single pixel (7 × 7
 * maps: 49 = 3 · 16 + 1) takes one MLA a row, not four. */
static void tile_8x4t(const acc16_out *q, const int16_t *xp, int64_t nps, const int16_t *wp, int64_t K, int64_t kb,
                      int64_t o0, int64_t ob, int64_t oe, uint8_t *y, int64_t P, int64_t count) {
    if (count == 1) tile_8xnt(q, xp, nps, wp, K, kb, o0, ob, oe, y, P, count, 1);
    else if (count == 2) tile_8xnt(q, xp, nps, wp, K, kb, o0, ob, oe, y, P, count, 2);
    else tile_8xnt(q, xp, nps, wp, K, kb, o0, ob, oe, y, P, count, 4);
}

/* 16 channels (two blocks, o0 … o0 + 15, each with one k-block: kblk ≥ K) × 4 pixels,
 * transposed like tile_8x4t: per row two weight loads, one of the pixels and 8 MLA (64 MACs). */
static void tile_16x4t(const acc16_out *q, const int16_t *xp, int64_t nps, const int16_t *wp, int64_t K, int64_t o0,
                       int64_t ob, int64_t oe, uint8_t *y, int64_t P, int64_t count) {
    TILE_CONSTS(q);
    const int16_t *wp1 = wp + K * DDQ_GEMM_BLOCK; /* the next block */
    int16x8_t c0 = Z16, c1 = Z16, c2 = Z16, c3 = Z16, d0 = Z16, d1 = Z16, d2 = Z16, d3 = Z16;
    const int16_t *xr = xp;
#pragma GCC unroll 4
    for (int64_t r = 0; r < K; r++, xr += nps) {
        int16x4_t x0 = vld1_s16(xr);
        __asm__("" : "+w"(x0)); /* one LDR of the 4 pixels (see tile_8x4t) */
        const int16x8_t wv = vld1q_s16(wp + r * DDQ_GEMM_BLOCK), wv1 = vld1q_s16(wp1 + r * DDQ_GEMM_BLOCK);
        MLA4T(0);
        MLA4T(1);
        MLA4T(2);
        MLA4T(3);
        d0 = vmlaq_lane_s16(d0, wv1, x0, 0);
        d1 = vmlaq_lane_s16(d1, wv1, x0, 1);
        d2 = vmlaq_lane_s16(d2, wv1, x0, 2);
        d3 = vmlaq_lane_s16(d3, wv1, x0, 3);
    }
    for (int h = 0; h < 2; h++) {
        const int64_t o = o0 + 8 * h;
        const int32x4_t b0 = vld1q_s32(k_.bias + o), b1 = vld1q_s32(k_.bias + o + 4);
        const int16x8_t e0 = h ? d0 : c0, e1 = h ? d1 : c1, e2 = h ? d2 : c2, e3 = h ? d3 : c3;
        store_4t(&k_, vaddw_s16(b0, vget_low_s16(e0)), vaddw_high_s16(b1, e0), vaddw_s16(b0, vget_low_s16(e1)),
                 vaddw_high_s16(b1, e1), vaddw_s16(b0, vget_low_s16(e2)), vaddw_high_s16(b1, e2),
                 vaddw_s16(b0, vget_low_s16(e3)), vaddw_high_s16(b1, e3), o, ob > o ? ob : o,
                 oe < o + 8 ? oe : o + 8, y, P, count);
    }
}

/* Channel o's 16 int16 sums (c0: pixels 0–7, c1: 8–15) + its bias b, requantized in the fast
 * form (multiplier m0, −r and l in every lane) and clamped, as 16 bytes. */
DDQ_ALWAYS_INLINE uint8x16_t requant16_fast(int16x8_t c0, int16x8_t c1, int32x4_t b, int32x4_t m0, int32x4_t nr,
                                            int32x4_t l, int16x8_t zp, uint8x16_t lo, uint8x16_t hi,
                                            const int shift) {
    const int16x8_t h0 = ddq_mbqm_fast_s16(vaddw_s16(b, vget_low_s16(c0)), vaddw_high_s16(b, c0), m0, nr, l, zp, shift);
    const int16x8_t h1 = ddq_mbqm_fast_s16(vaddw_s16(b, vget_low_s16(c1)), vaddw_high_s16(b, c1), m0, nr, l, zp, shift);
    return vminq_u8(vmaxq_u8(vqmovun_high_s16(vqmovun_s16(h0), h1), lo), hi);
}

/* The common tile, straight-line: all 8 channels stored, 16 pixels, one k-block, the fast
 * requantization (the plan proved it exact). The first row multiplies (no zeroing), the
 * epilogue loads each channel's constants with LD1R and stores 16 bytes per channel. */
DDQ_ALWAYS_INLINE void tile_8x16_full(const ddq_packed_conv *pc, const int16_t *xp, int64_t nps,
                                      const int16_t *wp, int64_t K, int64_t o0, uint8_t *y, int64_t P, int16x8_t zp,
                                      uint8x16_t lo, uint8x16_t hi, const int shift) {
    int16x8_t c[8][2];
    {
        const int16x8_t x0 = vld1q_s16(xp), x1 = vld1q_s16(xp + 8), wv = vld1q_s16(wp);
        c[0][0] = vmulq_laneq_s16(x0, wv, 0), c[0][1] = vmulq_laneq_s16(x1, wv, 0);
        c[1][0] = vmulq_laneq_s16(x0, wv, 1), c[1][1] = vmulq_laneq_s16(x1, wv, 1);
        c[2][0] = vmulq_laneq_s16(x0, wv, 2), c[2][1] = vmulq_laneq_s16(x1, wv, 2);
        c[3][0] = vmulq_laneq_s16(x0, wv, 3), c[3][1] = vmulq_laneq_s16(x1, wv, 3);
        c[4][0] = vmulq_laneq_s16(x0, wv, 4), c[4][1] = vmulq_laneq_s16(x1, wv, 4);
        c[5][0] = vmulq_laneq_s16(x0, wv, 5), c[5][1] = vmulq_laneq_s16(x1, wv, 5);
        c[6][0] = vmulq_laneq_s16(x0, wv, 6), c[6][1] = vmulq_laneq_s16(x1, wv, 6);
        c[7][0] = vmulq_laneq_s16(x0, wv, 7), c[7][1] = vmulq_laneq_s16(x1, wv, 7);
    }
    const int16_t *xr = xp + nps, *wr = wp + DDQ_GEMM_BLOCK;
#pragma GCC unroll 2
    for (int64_t r = 1; r < K; r++, xr += nps, wr += DDQ_GEMM_BLOCK) {
        const int16x8_t x0 = vld1q_s16(xr), x1 = vld1q_s16(xr + 8), wv = vld1q_s16(wr);
        c[0][0] = vmlaq_laneq_s16(c[0][0], x0, wv, 0), c[0][1] = vmlaq_laneq_s16(c[0][1], x1, wv, 0);
        c[1][0] = vmlaq_laneq_s16(c[1][0], x0, wv, 1), c[1][1] = vmlaq_laneq_s16(c[1][1], x1, wv, 1);
        c[2][0] = vmlaq_laneq_s16(c[2][0], x0, wv, 2), c[2][1] = vmlaq_laneq_s16(c[2][1], x1, wv, 2);
        c[3][0] = vmlaq_laneq_s16(c[3][0], x0, wv, 3), c[3][1] = vmlaq_laneq_s16(c[3][1], x1, wv, 3);
        c[4][0] = vmlaq_laneq_s16(c[4][0], x0, wv, 4), c[4][1] = vmlaq_laneq_s16(c[4][1], x1, wv, 4);
        c[5][0] = vmlaq_laneq_s16(c[5][0], x0, wv, 5), c[5][1] = vmlaq_laneq_s16(c[5][1], x1, wv, 5);
        c[6][0] = vmlaq_laneq_s16(c[6][0], x0, wv, 6), c[6][1] = vmlaq_laneq_s16(c[6][1], x1, wv, 6);
        c[7][0] = vmlaq_laneq_s16(c[7][0], x0, wv, 7), c[7][1] = vmlaq_laneq_s16(c[7][1], x1, wv, 7);
    }
    /* loaded after the loop: the byte stores below may alias anything, so nothing read through
     * pc is kept across them */
    int32x4_t b[2], m0[2], nr[2], l[2];
    for (int h = 0; h < 2; h++) {
        b[h] = vld1q_s32(pc->bias + o0 + 4 * h);
        m0[h] = vld1q_s32(pc->rq.m0 + o0 + 4 * h);
        nr[h] = vld1q_s32(pc->rq.neg_rshift + o0 + 4 * h);
        l[h] = shift ? vld1q_s32(pc->rq.lshift + o0 + 4 * h) : b[h];
    }
    uint8_t *yo = y + o0 * P;
    /* the block's constants come in vectors of four channels; lane (i % 4) is DUP'd (a lane index
     * must be a constant expression, hence the macro) */
#define LANE(v, i) vdupq_laneq_s32((v)[(i) / 4], (i) % 4)
#define STORE_FULL(i) \
    vst1q_u8(yo + (i) * P, requant16_fast(c[i][0], c[i][1], LANE(b, i), LANE(m0, i), LANE(nr, i), LANE(l, i), zp, \
                                          lo, hi, shift))
    STORE_FULL(0);
    STORE_FULL(1);
    STORE_FULL(2);
    STORE_FULL(3);
    STORE_FULL(4);
    STORE_FULL(5);
    STORE_FULL(6);
    STORE_FULL(7);
#undef STORE_FULL
#undef LANE
}

/* Row of the bias tile's assembly loop: the 16 MLA of one panel row (pixels in X0, X1) by the 8
 * weights in W (v0–v15: MLA by a 16-bit element takes no higher register). */
#define MLA_LINE(i, X0, X1, W) \
    "mla %[c" #i "a].8h, " X0 ".8h, " W ".h[" #i "]\n\t mla %[c" #i "b].8h, " X1 ".8h, " W ".h[" #i "]\n\t"
#define MLA_ROW(X0, X1, W) DDQ_ASM_8CH(MLA_LINE, X0, X1, W)
/* both sums of channel i start at its bias, lane i of b */
#define DUP_LINE(i, _0, _1, _2) "dup %[c" #i "a].8h, %[b].h[" #i "]\n\t dup %[c" #i "b].8h, %[b].h[" #i "]\n\t"

/* The bias tile: 8 channels × 16 pixels, all of them stored, every channel with its bias in the
 * int16 sums (ddq_packed_conv.bias16_ok: bias + Σ w·(x − zp) lies in int16 for every input, so
 * the lanes, which wrap modulo 2^16, end at the exact sums). The accumulators start at the
 * biases, and the K rows run in an assembly loop, two rows an iteration: per row one LD1 of its
 * 16 pixels and one of its 8 weights, both post-indexed, and 16 MLA by element (GCC's loop
 * spends four more instructions a row on addressing). The requantization is the fast form of
 * gemm_plan.h with l = 14 + shift and r = 14: SMULL of the int16 sum by the channel's 2^l
 * (l ≤ 14, |sum · 2^l| < 2^31), SQDMULH by m0, SQRSHRN #14, which rounds, narrows and
 * saturates like SRSHL then SQXTN; then SQADD zp, SQXTUN and the clamp as in mbqm__neon.h
 * (`plain`: zp and act_min are 0, and SQXTUN's saturation at 0 is the lower clamp). */
DDQ_ALWAYS_INLINE void tile_8x16_bias16(const ddq_packed_conv *pc, const int16_t *xp, int64_t nps,
                                        const int16_t *wp, int64_t K, int64_t o0, uint8_t *y, int64_t P,
                                        int16x8_t zp, uint8x16_t lo, uint8x16_t hi, const int plain) {
    const int16x8_t b = vld1q_s16(pc->bias16 + o0);
    int16x8_t c0a, c0b, c1a, c1b, c2a, c2b, c3a, c3b, c4a, c4b, c5a, c5b, c6a, c6b, c7a, c7b;
    const int16_t *x = xp, *w = wp;
    int64_t n = K; /* ≥ 1 */
    const int64_t pitch = nps * (int64_t)sizeof(int16_t);
    /* the accumulators are outputs only (the asm starts them at the biases): in-out operands
     * count twice against GCC's limit of 30 */
    __asm__(DDQ_ASM_8CH(DUP_LINE, , , )
            "tbz %[n], #0, 1f\n\t"
            "ld1 {v30.8h, v31.8h}, [%[x]], %[pitch]\n\t"
            "ld1 {v15.8h}, [%[w]], #16\n\t" MLA_ROW("v30", "v31", "v15")
            "subs %[n], %[n], #1\n\t"
            "b.eq 2f\n"
            "1:\n\t"
            "ld1 {v30.8h, v31.8h}, [%[x]], %[pitch]\n\t"
            "ld1 {v15.8h}, [%[w]], #16\n\t"
            "ld1 {v28.8h, v29.8h}, [%[x]], %[pitch]\n\t"
            "ld1 {v14.8h}, [%[w]], #16\n\t" MLA_ROW("v30", "v31", "v15") MLA_ROW("v28", "v29", "v14")
            "subs %[n], %[n], #2\n\t"
            "b.ne 1b\n"
            "2:\n"
            : [x] "+r"(x), [w] "+r"(w), [n] "+r"(n), [c0a] "=&w"(c0a), [c0b] "=&w"(c0b), [c1a] "=&w"(c1a),
              [c1b] "=&w"(c1b), [c2a] "=&w"(c2a), [c2b] "=&w"(c2b), [c3a] "=&w"(c3a), [c3b] "=&w"(c3b),
              [c4a] "=&w"(c4a), [c4b] "=&w"(c4b), [c5a] "=&w"(c5a), [c5b] "=&w"(c5b), [c6a] "=&w"(c6a),
              [c6b] "=&w"(c6b), [c7a] "=&w"(c7a), [c7b] "=&w"(c7b)
            : [pitch] "r"(pitch), [b] "w"(b)
            : "v14", "v15", "v28", "v29", "v30", "v31", "cc", "memory");
    /* loaded after the loop: the byte stores below may alias anything read through pc */
    const int16x8_t sc = vld1q_s16(pc->scale16 + o0);
    const int32x4_t m0[2] = {vld1q_s32(pc->rq.m0 + o0), vld1q_s32(pc->rq.m0 + o0 + 4)};
    uint8_t *yo = y + o0 * P;
    /* channel i: its 2^l and m0 by element (lane indices must be constant expressions) */
#define STORE_B16(i, ca, cb) \
    do { \
        const int32x4_t a0 = vqdmulhq_laneq_s32(vmull_laneq_s16(vget_low_s16(ca), sc, i), m0[(i) / 4], (i) % 4); \
        const int32x4_t a1 = vqdmulhq_laneq_s32(vmull_high_laneq_s16(ca, sc, i), m0[(i) / 4], (i) % 4); \
        const int32x4_t a2 = vqdmulhq_laneq_s32(vmull_laneq_s16(vget_low_s16(cb), sc, i), m0[(i) / 4], (i) % 4); \
        const int32x4_t a3 = vqdmulhq_laneq_s32(vmull_high_laneq_s16(cb, sc, i), m0[(i) / 4], (i) % 4); \
        int16x8_t h0 = vqrshrn_high_n_s32(vqrshrn_n_s32(a0, 14), a1, 14); \
        int16x8_t h1 = vqrshrn_high_n_s32(vqrshrn_n_s32(a2, 14), a3, 14); \
        if (!plain) { \
            h0 = vqaddq_s16(h0, zp); \
            h1 = vqaddq_s16(h1, zp); \
        } \
        uint8x16_t u = vqmovun_high_s16(vqmovun_s16(h0), h1); \
        if (!plain) u = vmaxq_u8(u, lo); \
        vst1q_u8(yo + (i) * P, vminq_u8(u, hi)); \
    } while (0)
    STORE_B16(0, c0a, c0b);
    STORE_B16(1, c1a, c1b);
    STORE_B16(2, c2a, c2b);
    STORE_B16(3, c3a, c3b);
    STORE_B16(4, c4a, c4b);
    STORE_B16(5, c5a, c5b);
    STORE_B16(6, c6a, c6b);
    STORE_B16(7, c7a, c7b);
#undef STORE_B16
}
#undef MLA_ROW
#undef MLA_LINE
#undef DUP_LINE

/* OP (MUL or MLA) of channel i's int16 sum c<i> by the pixels in X and its weight, lane i of W. */
#define BY_ELEMENT_LINE(i, OP, X, W) OP " %[c" #i "].8h, " X ".8h, " W ".h[" #i "]\n\t"

/* 8 channels × 8 pixels, all stored, for a block whose K rows need several k-blocks (kb < K:
 * 8-bit weights, or long K): each k-block's rows run in an assembly loop into 8 int16 sums (the
 * first row multiplies, the others MLA by element; one post-indexed LD1 each of the row's pixels
 * and weights), which are then widened onto the 16 int32 sums that started at the biases. The
 * compiled loop of tile_8x8 spent about as much again on addressing and on its generality. The
 * requantization is the plan's fast form (prepared only when the plan proved it exact). */
DDQ_ALWAYS_INLINE void tile_8x8_kblocks(const ddq_packed_conv *pc, const int16_t *xp, int64_t nps, const int16_t *wp,
                                        int64_t K, int64_t kb, int64_t o0, uint8_t *y, int64_t P, int32_t zp,
                                        int32_t lo, int32_t hi, const int shift) {
    int32x4_t s[8][2];
    for (int i = 0; i < 8; i++) s[i][0] = s[i][1] = vdupq_n_s32(pc->bias[o0 + i]);
    const int16_t *x = xp, *w = wp;
    const int64_t pitch = nps * (int64_t)sizeof(int16_t);
    for (int64_t r0 = 0; r0 < K; r0 += kb) {
        int64_t n = K - r0 < kb ? K - r0 : kb;
        int16x8_t c0, c1, c2, c3, c4, c5, c6, c7;
        __asm__("ld1 {v31.8h}, [%[x]], %[pitch]\n\t"
                "ld1 {v15.8h}, [%[w]], #16\n\t"
                DDQ_ASM_8CH(BY_ELEMENT_LINE, "mul", "v31", "v15")
                "subs %[n], %[n], #1\n\t"
                "b.eq 2f\n"
                "1:\n\t"
                "ld1 {v31.8h}, [%[x]], %[pitch]\n\t"
                "ld1 {v15.8h}, [%[w]], #16\n\t"
                DDQ_ASM_8CH(BY_ELEMENT_LINE, "mla", "v31", "v15")
                "subs %[n], %[n], #1\n\t"
                "b.ne 1b\n"
                "2:\n"
                : [x] "+r"(x), [w] "+r"(w), [n] "+r"(n), [c0] "=&w"(c0), [c1] "=&w"(c1), [c2] "=&w"(c2),
                  [c3] "=&w"(c3), [c4] "=&w"(c4), [c5] "=&w"(c5), [c6] "=&w"(c6), [c7] "=&w"(c7)
                : [pitch] "r"(pitch)
                : "v15", "v31", "cc", "memory");
        const int16x8_t c[8] = {c0, c1, c2, c3, c4, c5, c6, c7};
        for (int i = 0; i < 8; i++) {
            s[i][0] = vaddw_s16(s[i][0], vget_low_s16(c[i]));
            s[i][1] = vaddw_high_s16(s[i][1], c[i]);
        }
    }
    for (int i = 0; i < 8; i++) {
        const ddq_requant_fast r = ddq_requant_fast_same(&pc->rq, o0 + i, zp, lo, hi);
        const int32x4_t l = shift ? r.lshift[0] : vdupq_n_s32(0);
        const int32x4_t v0 = vrshlq_s32(vqdmulhq_s32(shift ? vshlq_s32(s[i][0], l) : s[i][0], r.m0[0]), r.neg_r[0]);
        const int32x4_t v1 = vrshlq_s32(vqdmulhq_s32(shift ? vshlq_s32(s[i][1], l) : s[i][1], r.m0[0]), r.neg_r[0]);
        const int16x8_t v = vqaddq_s16(vqmovn_high_s32(vqmovn_s32(v0), v1), r.zp);
        vst1_u8(y + (o0 + i) * P, vmin_u8(vmax_u8(vqmovun_s16(v), r.lo), r.hi));
    }
}

void ddq_conv_gemm_acc16_block__neon(const ddq_packed_conv *pc, int32_t zp, int32_t lo, int32_t hi,
                                     const int16_t *panel, int64_t nps, int64_t n, int64_t o0, int64_t ob,
                                     int64_t oe, uint8_t *y, int64_t P, int pair) {
    const acc16_out q = {pc, zp, lo, hi};
    const int64_t K = pc->K, kb = pc->kblk[o0 / DDQ_GEMM_BLOCK];
    const int16_t *wb = pc->w + o0 * K; /* block o0 / 8 */
    if (pair) { /* n ≤ 4, and blocks o0 / 8 and o0 / 8 + 1 each have one k-block */
        tile_16x4t(&q, panel, nps, wb, K, o0, ob, oe, y, P, n);
        return;
    }
    int64_t j = 0;
    if (pc->bias16_ok[o0 / DDQ_GEMM_BLOCK] && ob == o0 && oe == o0 + DDQ_GEMM_BLOCK) {
        const int16x8_t zpv = vdupq_n_s16((int16_t)zp);
        const uint8x16_t lov = vdupq_n_u8((uint8_t)lo), hiv = vdupq_n_u8((uint8_t)hi);
        if (zp == 0 && lo == 0)
            for (; n - j >= 16; j += 16) tile_8x16_bias16(pc, panel + j, nps, wb, K, o0, y + j, P, zpv, lov, hiv, 1);
        else
            for (; n - j >= 16; j += 16) tile_8x16_bias16(pc, panel + j, nps, wb, K, o0, y + j, P, zpv, lov, hiv, 0);
    }
    if (kb < K && pc->rq.fast && ob == o0 && oe == o0 + DDQ_GEMM_BLOCK) {
        if (pc->rq.lshift_any)
            for (; n - j >= 8; j += 8) tile_8x8_kblocks(pc, panel + j, nps, wb, K, kb, o0, y + j, P, zp, lo, hi, 1);
        else
            for (; n - j >= 8; j += 8) tile_8x8_kblocks(pc, panel + j, nps, wb, K, kb, o0, y + j, P, zp, lo, hi, 0);
    }
    if (kb >= K && pc->rq.fast && ob == o0 && oe == o0 + DDQ_GEMM_BLOCK) {
        const int16x8_t zpv = vdupq_n_s16((int16_t)zp);
        const uint8x16_t lov = vdupq_n_u8((uint8_t)lo), hiv = vdupq_n_u8((uint8_t)hi);
        if (pc->rq.lshift_any)
            for (; n - j >= 16; j += 16) tile_8x16_full(pc, panel + j, nps, wb, K, o0, y + j, P, zpv, lov, hiv, 1);
        else
            for (; n - j >= 16; j += 16) tile_8x16_full(pc, panel + j, nps, wb, K, o0, y + j, P, zpv, lov, hiv, 0);
    }
    for (; n - j > 12; j += 16) { /* 13–16 pixels: 8 × 16 */
        const int64_t count = n - j < 16 ? n - j : 16;
        tile_8x16(&q, panel + j, nps, wb, K, kb, o0, ob, oe, y + j, P, count);
    }
    if (n - j > 4) { /* 5–12 pixels: 8 × 8, then 8 × 4 transposed for the rest */
        const int64_t count = n - j < 8 ? n - j : 8;
        tile_8x8(&q, panel + j, nps, wb, K, kb, o0, ob, oe, y + j, P, count);
        j += 8;
    }
    if (n > j) tile_8x4t(&q, panel + j, nps, wb, K, kb, o0, ob, oe, y + j, P, n - j);
}
