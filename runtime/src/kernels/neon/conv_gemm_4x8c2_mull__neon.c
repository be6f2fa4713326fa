/* conv2d with groups = 1 as a GEMM on byte operands with products summed in int16 lanes
 * ("mull"), Advanced SIMD: for the convolutions whose products do not fit the int16 path's
 * bounds, 8-bit inputs times 8-bit weights above all (the stem of a MobileNet, or a whole 8-bit
 * model). SMULL / SMLAL multiply 8 byte pairs into int16 lanes, and SADALP adds each pixel's
 * two lanes (its two taps) into int32: per pair of taps and 4 pixels of a channel that is
 * 16 multiply-adds in 3 instructions over a run of two pairs, where the int32 path's SMLAL by
 * lane takes 4 (5.3 multiply-adds per instruction instead of 4).
 *
 * Layout (gemm_plan.h, group 2, gemm_pairs__neon.c): the panel holds x − c as bytes, pairs of
 * taps per pixel (16 bytes: 8 pixels × 2 taps); one LD4R.8h gives four channels' weight pairs.
 * A tile is 4 channels × 8 pixels: per pair of taps one LD1, one LD4R and 8 SMULL/SMLAL(2)
 * into 8 int16 accumulators; per run 8 SADALP into the int32 accumulators, which start at the
 * folded biases.
 *
 * Exactness: prepare splits each block's pairs into runs whose per-lane interval bound lies in
 * int16 (every partial sum too, the intervals containing 0); products of bytes are exact in
 * int16. The int32 sums wrap mod 2^32 and end at the exact accumulator, which the loader's bound
 * keeps in int32. The requantization is the fast form where the plan admits it, else the int64
 * form. Columns past the panel's pixels only reach outputs that are not stored. */
#include "neon.h"

#define DDQ_ALWAYS_INLINE static inline __attribute__((always_inline))

typedef struct mull_out {
    const ddq_gemm_plan *p;
    int32_t zp, lo, hi;
    int64_t P; /* output pixels: the channel planes' pitch */
} mull_out;

/* Channel o's 8 int32 sums requantized and stored (count pixels). */
DDQ_ALWAYS_INLINE void store_channel(const mull_out *q, int64_t o, int32x4_t s0, int32x4_t s1, uint8_t *y,
                                     int64_t count, const int fast) {
    const ddq_requant_plan *rq = &q->p->rq;
    uint8x8_t v;
    if (fast) {
        const ddq_requant_fast r = ddq_requant_fast_same(rq, o, q->zp, q->lo, q->hi);
        v = ddq_requantize_fast_neon(s0, s1, &r);
    } else {
        const ddq_requant_neon r = ddq_requant_neon_same(rq->m0[o], rq->neg_t[o], q->zp, q->lo, q->hi);
        v = ddq_requantize_neon(s0, s1, &r);
    }
    if (count == 8) vst1_u8(y, v);
    else ddq_store_u8x8_partial(y, v, count);
}

/* The products of one pair of taps (x, w) of 4 channels × 8 pixels, started (SMULL) or added
 * (SMLAL) into the int16 lanes c. */
DDQ_ALWAYS_INLINE void pair_products(int16x8_t c[DDQ_PAIRS_BLOCK][2], const int8_t *x, const int8_t *w,
                                     const int first) {
    const int16x8x4_t wv = vld4q_dup_s16((const int16_t *)w);
    const int8x16_t xv = vld1q_s8(x);
    for (int i = 0; i < DDQ_PAIRS_BLOCK; i++) {
        const int8x16_t wi = vreinterpretq_s8_s16(wv.val[i]);
        c[i][0] = first ? vmull_s8(vget_low_s8(xv), vget_low_s8(wi)) : vmlal_s8(c[i][0], vget_low_s8(xv), vget_low_s8(wi));
        c[i][1] = first ? vmull_high_s8(xv, wi) : vmlal_high_s8(c[i][1], xv, wi);
    }
}

/* each pixel's two taps into its int32 lane */
DDQ_ALWAYS_INLINE void widen(int32x4_t s[DDQ_PAIRS_BLOCK][2], int16x8_t c[DDQ_PAIRS_BLOCK][2]) {
    for (int i = 0; i < DDQ_PAIRS_BLOCK; i++) {
        s[i][0] = vpadalq_s16(s[i][0], c[i][0]);
        s[i][1] = vpadalq_s16(s[i][1], c[i][1]);
    }
}

/* 4 channels (o0 … o0 + 3; those in [ob, oe) stored) × 8 pixels of the panel from xp (pitch:
 * bytes per panel row of pairs), count of them stored at y. */
DDQ_ALWAYS_INLINE void tile_4x8(const mull_out *q, const int8_t *xp, int64_t pitch, const ddq_pairs_block *blk,
                                int64_t o0, int64_t ob, int64_t oe, uint8_t *y, int64_t count, const int fast) {
    int32x4_t s[DDQ_PAIRS_BLOCK][2];
    for (int i = 0; i < DDQ_PAIRS_BLOCK; i++) s[i][0] = s[i][1] = vld1q_dup_s32(q->p->bias + o0 + i);
    const int8_t *x = xp, *w = blk->w;
    const int64_t step = DDQ_PAIRS_BLOCK * DDQ_PAIRS_GROUP; /* weight bytes per pair of taps */
    for (int64_t ri = 0; ri < blk->nruns; ri++) {
        int16x8_t c[DDQ_PAIRS_BLOCK][2];
        pair_products(c, x, w, 1); /* SMULL: nothing needs zeroing */
        x += pitch, w += step;
        for (int64_t g = 1; g < blk->runs[ri].length; g++, x += pitch, w += step) pair_products(c, x, w, 0);
        widen(s, c);
    }
    for (int i = 0; i < DDQ_PAIRS_BLOCK; i++)
        if (o0 + i >= ob && o0 + i < oe) store_channel(q, o0 + i, s[i][0], s[i][1], y + (o0 + i) * q->P, count, fast);
}

DDQ_ALWAYS_INLINE void gemm_mull(const ddq_op_args *a, int64_t begin, int64_t end, const int fast) {
    const ddq_gemm_plan *p = ((const ddq_neon_pairs *)a->prepared)->plan;
    const ddq_tensor *yt = a->out;
    const int64_t P = yt->shape[2] * yt->shape[3], PP = p->panel_pixels, pitch = PP * DDQ_PAIRS_GROUP;
    int8_t *panel = a->scratch;
    int8_t *rows = panel + (p->KG * pitch + 63) / 64 * 64;
    const mull_out q = {p, yt->zero_point, a->op->act_min, a->op->act_max, P};
    uint8_t *y = a->y;
    for (int64_t p0 = 0; p0 < P; p0 += PP) {
        const int64_t n = P - p0 < PP ? P - p0 : PP;
        ddq_build_panel(p, a->op, a->in[0], a->in[1], yt, a->x[0], p0, n, panel, rows);
        for (int64_t b = begin / DDQ_PAIRS_BLOCK; b * DDQ_PAIRS_BLOCK < end; b++) {
            const ddq_pairs_block blk = ddq_pairs_block_of(p, b);
            for (int64_t j = 0; j < n; j += 8)
                tile_4x8(&q, panel + j * DDQ_PAIRS_GROUP, pitch, &blk, b * DDQ_PAIRS_BLOCK, begin, end, y + p0 + j,
                         n - j < 8 ? n - j : 8, fast);
        }
    }
}

void ddq_conv_gemm_mull__neon(const ddq_op_args *a, int64_t begin, int64_t end) {
    if (((const ddq_neon_pairs *)a->prepared)->plan->rq.fast) gemm_mull(a, begin, end, 1);
    else gemm_mull(a, begin, end, 0);
}
