/* conv2d with groups = 1 as a GEMM with int8 accumulation ("acc8"), Advanced SIMD: for the
 * lowest-bit layers, whose products w · (x − c) are small enough that several of them add up
 * inside a signed byte. MLA on sixteen byte lanes does 16 multiply-adds per instruction, twice
 * what int16 lanes (MLA by lane, conv_gemm_8x16_acc16__neon.c) and four times what int32 lanes
 * (SMLAL) do: the one way ARMv8.0 without the dot product multiplies faster than 8 per cycle.
 *
 * Layout (gemm_plan.h, group 2): the panel holds x − c as bytes, pairs of taps interleaved per
 * pixel, so a 16-byte vector is 8 pixels × taps (2g, 2g + 1); the weights are packed
 * [⌈O/4⌉][K/2][4][2], so one LD4R.8h gives the four channels' weight pairs, each repeated over
 * the 8 pixels. A tile is 4 channels × 24 pixels (12 byte accumulators; 16 and 8 for the last
 * pixels of a panel): per pair of taps one LD1 of three vectors, one LD4R and 12 MLA (192
 * multiply-adds). At the end of a run of pairs SADALP adds each pixel's two byte lanes into its
 * int16 lane; at the end of K the int16 sums are widened onto the (folded) biases, requantized
 * in the fast form and stored.
 *
 * Exactness. A byte lane holds the products of one tap parity of one pixel over a run. prepare
 * splits each block's pairs into runs (ddq_greedy_runs, per lane) such that the interval bound
 * of that lane's sum, w · v summed with v ∈ [qmin − c, qmax − c], lies in [−128, 127]; since
 * every product's interval contains 0, every partial sum of the run lies there too, so no lane
 * wraps. The int16 lanes hold partial sums over whole runs of both parities, and prepare admits
 * the op only if the bound of the sum over all of K lies in int16 (again containing every
 * partial sum). The int32 sum + folded bias is then the exact accumulator, and the fast
 * requantization is exact by the plan's bound check (ddq_requant_plan.fast). Columns past the
 * panel's pixels hold other values; lanes are independent and SADALP pairs the lanes of one
 * pixel, so they only reach outputs that are not stored. */
#include "neon.h"

#define ACC8_GROUP DDQ_PAIRS_GROUP
#define ACC8_BLOCK DDQ_PAIRS_BLOCK /* output channels per tile */
#define DDQ_ALWAYS_INLINE static inline __attribute__((always_inline))

/* What a tile's epilogue needs. */
typedef struct acc8_out {
    const ddq_gemm_plan *p;
    int16x8_t zp;
    uint8x16_t lo, hi;
    int64_t P; /* output pixels: the channel planes' pitch */
} acc8_out;

/* Channel o's nv × 8 int16 sums, + its folded bias, requantized and stored (count pixels; all
 * 8 · nv unless the tile is the panel's last). */
DDQ_ALWAYS_INLINE void store_channel(const acc8_out *q, int64_t o, const int16x8_t *s, uint8_t *y, int64_t count,
                                     const int nv, const int shift) {
    const ddq_requant_plan *rq = &q->p->rq;
    const int32x4_t b = vld1q_dup_s32(q->p->bias + o), m0 = vld1q_dup_s32(rq->m0 + o);
    const int32x4_t nr = vld1q_dup_s32(rq->neg_rshift + o);
    const int32x4_t l = shift ? vld1q_dup_s32(rq->lshift + o) : m0;
    int16x8_t h[3];
    for (int v = 0; v < nv; v++)
        h[v] = ddq_mbqm_fast_s16(vaddw_s16(b, vget_low_s16(s[v])), vaddw_high_s16(b, s[v]), m0, nr, l, q->zp, shift);
    const uint8x16_t u01 = nv > 1 ? vqmovun_high_s16(vqmovun_s16(h[0]), h[1]) : vcombine_u8(vqmovun_s16(h[0]),
                                                                                               vqmovun_s16(h[0]));
    const uint8x16_t c01 = vminq_u8(vmaxq_u8(u01, q->lo), q->hi);
    if (count == 8 * nv) {
        if (nv == 1) {
            vst1_u8(y, vget_low_u8(c01));
            return;
        }
        vst1q_u8(y, c01);
        if (nv == 3) vst1_u8(y + 16, vmin_u8(vmax_u8(vqmovun_s16(h[2]), vget_low_u8(q->lo)), vget_low_u8(q->hi)));
        return;
    }
    ddq_store_u8x8_partial(y, vget_low_u8(c01), count < 8 ? count : 8);
    if (count > 8) ddq_store_u8x8_partial(y + 8, vget_high_u8(c01), count - 8 < 8 ? count - 8 : 8);
    if (count > 16)
        ddq_store_u8x8_partial(y + 16, vmin_u8(vmax_u8(vqmovun_s16(h[2]), vget_low_u8(q->lo)), vget_low_u8(q->hi)),
                               count - 16);
}

/* nv vectors of the panel at x: one LD1 of nv registers (where the compiler sees separate loads
 * it emits an LDP and an LDR plus the pointer update). */
DDQ_ALWAYS_INLINE void load_x(const int8_t *x, int8x16_t xv[3], const int nv) {
    if (nv == 3) {
        const int8x16x3_t t = vld1q_s8_x3(x);
        xv[0] = t.val[0], xv[1] = t.val[1], xv[2] = t.val[2];
    } else if (nv == 2) {
        const int8x16x2_t t = vld1q_s8_x2(x);
        xv[0] = t.val[0], xv[1] = t.val[1];
    } else {
        xv[0] = vld1q_s8(x);
    }
}

/* The full tile's sums (nv = 3) in assembly: every run of the block, each pair one post-indexed
 * LD4R of the four channels' weight pairs, one post-indexed LD1 of the 24 pixels' pairs and 12
 * MUL (a run's first pair) or MLA into byte accumulators in fixed registers (v0–v7, v16–v19),
 * then SADDLP (first run) or SADALP into the int16 sums s. In C the compiler spilled the 12 int16
 * sums around every run (the byte accumulators, the loads' consecutive registers and the sums
 * fill the register file); here they stay in registers, and GCC's two or three addressing
 * instructions a pair are gone. Run lengths come from ddq_run (4 bytes: length, widen). */
#define ACC8_PAIR(OP) \
    OP " v0.16b, v28.16b, v24.16b\n\t " OP " v1.16b, v29.16b, v24.16b\n\t " OP " v2.16b, v30.16b, v24.16b\n\t" \
    OP " v3.16b, v28.16b, v25.16b\n\t " OP " v4.16b, v29.16b, v25.16b\n\t " OP " v5.16b, v30.16b, v25.16b\n\t" \
    OP " v6.16b, v28.16b, v26.16b\n\t " OP " v7.16b, v29.16b, v26.16b\n\t " OP " v16.16b, v30.16b, v26.16b\n\t" \
    OP " v17.16b, v28.16b, v27.16b\n\t " OP " v18.16b, v29.16b, v27.16b\n\t " OP " v19.16b, v30.16b, v27.16b\n\t"
#define ACC8_LOADS "ld4r {v24.8h-v27.8h}, [%[w]], #8\n\t ld1 {v28.16b-v30.16b}, [%[x]], %[pitch]\n\t"
/* one run: length in n (≥ 1), labels unique per use (L) */
#define ACC8_RUN(L) \
    "ldrh %w[n], [%[runs]], #4\n\t" ACC8_LOADS ACC8_PAIR("mul") "subs %[n], %[n], #1\n\t b.eq " L "2f\n" L \
    "1:\n\t" ACC8_LOADS ACC8_PAIR("mla") "subs %[n], %[n], #1\n\t b.ne " L "1b\n" L "2:\n\t"
#define ACC8_WIDEN(OP) \
    OP " %[s00].8h, v0.16b\n\t " OP " %[s01].8h, v1.16b\n\t " OP " %[s02].8h, v2.16b\n\t" \
    OP " %[s10].8h, v3.16b\n\t " OP " %[s11].8h, v4.16b\n\t " OP " %[s12].8h, v5.16b\n\t" \
    OP " %[s20].8h, v6.16b\n\t " OP " %[s21].8h, v7.16b\n\t " OP " %[s22].8h, v16.16b\n\t" \
    OP " %[s30].8h, v17.16b\n\t " OP " %[s31].8h, v18.16b\n\t " OP " %[s32].8h, v19.16b\n\t"

DDQ_ALWAYS_INLINE void sums_24(const int8_t *x, int64_t pitch, const ddq_pairs_block *blk,
                               int16x8_t s[ACC8_BLOCK][3]) {
    const int8_t *w = blk->w;
    const ddq_run *runs = blk->runs;
    int64_t left = blk->nruns, n; /* ≥ 1 run */
    __asm__(ACC8_RUN("3") ACC8_WIDEN("saddlp") "subs %[left], %[left], #1\n\t b.eq 6f\n"
            "5:\n\t" ACC8_RUN("4") ACC8_WIDEN("sadalp") "subs %[left], %[left], #1\n\t b.ne 5b\n"
            "6:\n"
            : [x] "+r"(x), [w] "+r"(w), [runs] "+r"(runs), [left] "+r"(left), [n] "=&r"(n),
              [s00] "=&w"(s[0][0]), [s01] "=&w"(s[0][1]), [s02] "=&w"(s[0][2]), [s10] "=&w"(s[1][0]),
              [s11] "=&w"(s[1][1]), [s12] "=&w"(s[1][2]), [s20] "=&w"(s[2][0]), [s21] "=&w"(s[2][1]),
              [s22] "=&w"(s[2][2]), [s30] "=&w"(s[3][0]), [s31] "=&w"(s[3][1]), [s32] "=&w"(s[3][2])
            : [pitch] "r"(pitch)
            : "v0", "v1", "v2", "v3", "v4", "v5", "v6", "v7", "v16", "v17", "v18", "v19", "v24", "v25", "v26", "v27",
              "v28", "v29", "v30", "cc", "memory");
}
#undef ACC8_WIDEN
#undef ACC8_RUN
#undef ACC8_LOADS
#undef ACC8_PAIR

/* The byte sums of one run of `length` pairs from xr / wr (advanced past it) into c. */
DDQ_ALWAYS_INLINE void run_bytes(const int8_t **xr, const int8_t **wr, int64_t pitch, int64_t length,
                                 int8x16_t c[ACC8_BLOCK][3], const int nv) {
    const int8_t *x = *xr, *w = *wr;
    { /* the run's first pair: MUL, so nothing needs zeroing */
        const int16x8x4_t wv = vld4q_dup_s16((const int16_t *)w);
        int8x16_t xv[3];
        load_x(x, xv, nv);
        for (int i = 0; i < ACC8_BLOCK; i++)
            for (int v = 0; v < nv; v++) c[i][v] = vmulq_s8(xv[v], vreinterpretq_s8_s16(wv.val[i]));
        x += pitch;
        w += ACC8_BLOCK * ACC8_GROUP;
    }
#pragma GCC unroll 2
    for (int64_t g = 1; g < length; g++, x += pitch, w += ACC8_BLOCK * ACC8_GROUP) {
        const int16x8x4_t wv = vld4q_dup_s16((const int16_t *)w);
        int8x16_t xv[3];
        load_x(x, xv, nv);
        for (int i = 0; i < ACC8_BLOCK; i++)
            for (int v = 0; v < nv; v++) c[i][v] = vmlaq_s8(c[i][v], xv[v], vreinterpretq_s8_s16(wv.val[i]));
    }
    *xr = x;
    *wr = w;
}

/* 4 channels (o0 … o0 + 3; those in [ob, oe) stored) × 8 · nv pixels of the panel from xp
 * (pitch: bytes per panel row of pairs), count of them stored at y. */
DDQ_ALWAYS_INLINE void tile_4xN(const acc8_out *q, const int8_t *xp, int64_t pitch, const ddq_pairs_block *blk,
                                int64_t o0, int64_t ob, int64_t oe, uint8_t *y, int64_t count, const int nv,
                                const int shift) {
    const ddq_run *runs = blk->runs;
    int16x8_t s[ACC8_BLOCK][3];
    if (nv == 3) {
        sums_24(xp, pitch, blk, s);
    } else {
        int8x16_t c[ACC8_BLOCK][3];
        const int8_t *xr = xp, *wr = blk->w;
        /* prepare gave every block at least one run; each pixel's two parities go into its int16 lane */
        run_bytes(&xr, &wr, pitch, runs[0].length, c, nv);
        for (int i = 0; i < ACC8_BLOCK; i++)
            for (int v = 0; v < nv; v++) s[i][v] = vpaddlq_s8(c[i][v]);
        for (int64_t ri = 1; ri < blk->nruns; ri++) {
            run_bytes(&xr, &wr, pitch, runs[ri].length, c, nv);
            for (int i = 0; i < ACC8_BLOCK; i++)
                for (int v = 0; v < nv; v++) s[i][v] = vpadalq_s8(s[i][v], c[i][v]);
        }
    }
    for (int i = 0; i < ACC8_BLOCK; i++)
        if (o0 + i >= ob && o0 + i < oe) store_channel(q, o0 + i, s[i], y + (o0 + i) * q->P, count, nv, shift);
}

/* A panel's single last pixel (7 × 7 maps: 49 = 2 · 24 + 1), where an 8-pixel tile would compute
 * seven pixels in vain: the four channels × two taps of a pair in eight byte lanes, two pairs a
 * vector (the pixel's two taps of each pair repeated over the channels by LD1R, the pairs'
 * weights one 16-byte load), so a pair of pairs is 4 instructions where the tile takes 12. A
 * lane sums a subset of the products a tile's lane sums over the same run, and each product's
 * interval contains 0, so the plan's run bounds hold; the two halves (pairs of either parity)
 * are added in int16, within the bound of the channel's whole sum. The requantization is the
 * plan's fast form with each lane's channel constants; one byte per channel is stored. */
DDQ_ALWAYS_INLINE void tail_1px(const acc8_out *q, const int8_t *xp, int64_t pitch, const ddq_pairs_block *blk,
                                int64_t o0, int64_t ob, int64_t oe, uint8_t *y, const int shift) {
    const int8_t *x = xp, *w = blk->w;
    int16x8_t s = vdupq_n_s16(0);
    for (int64_t ri = 0; ri < blk->nruns; ri++) {
        const int64_t length = blk->runs[ri].length;
        int8x16_t c = vdupq_n_s8(0);
        int64_t g = 0;
        for (; g + 2 <= length; g += 2, x += 2 * pitch, w += 2 * ACC8_BLOCK * ACC8_GROUP) {
            const int8x16_t xv = vreinterpretq_s8_s16(
                vcombine_s16(vld1_dup_s16((const int16_t *)x), vld1_dup_s16((const int16_t *)(x + pitch))));
            c = vmlaq_s8(c, xv, vld1q_s8(w));
        }
        if (g < length) {
            const int8x8_t xv = vreinterpret_s8_s16(vld1_dup_s16((const int16_t *)x));
            c = vcombine_s8(vmla_s8(vget_low_s8(c), xv, vld1_s8(w)), vget_high_s8(c));
            x += pitch, w += ACC8_BLOCK * ACC8_GROUP;
        }
        s = vpadalq_s8(s, c);
    }
    const ddq_requant_plan *rq = &q->p->rq;
    int32x4_t v = vaddw_s16(vld1q_s32(q->p->bias + o0), vadd_s16(vget_low_s16(s), vget_high_s16(s)));
    if (shift) v = vshlq_s32(v, vld1q_s32(rq->lshift + o0));
    v = vrshlq_s32(vqdmulhq_s32(v, vld1q_s32(rq->m0 + o0)), vld1q_s32(rq->neg_rshift + o0));
    const uint8x8_t u = vqmovun_s16(vqaddq_s16(vcombine_s16(vqmovn_s32(v), vqmovn_s32(v)), q->zp));
    const uint8x8_t code = vmin_u8(vmax_u8(u, vget_low_u8(q->lo)), vget_low_u8(q->hi));
    uint8_t codes[8];
    vst1_u8(codes, code);
    for (int i = 0; i < ACC8_BLOCK; i++)
        if (o0 + i >= ob && o0 + i < oe) y[(o0 + i) * q->P] = codes[i];
}

DDQ_ALWAYS_INLINE void gemm_acc8(const ddq_op_args *a, int64_t begin, int64_t end, const int shift) {
    const ddq_gemm_plan *p = ((const ddq_neon_pairs *)a->prepared)->plan;
    const ddq_tensor *yt = a->out;
    const int64_t P = yt->shape[2] * yt->shape[3], PP = p->panel_pixels, pitch = PP * ACC8_GROUP;
    int8_t *panel = a->scratch;
    int8_t *rows = panel + (p->KG * pitch + 63) / 64 * 64;
    const acc8_out q = {p, vdupq_n_s16((int16_t)yt->zero_point), vdupq_n_u8((uint8_t)a->op->act_min),
                        vdupq_n_u8((uint8_t)a->op->act_max), P};
    uint8_t *y = a->y;
    for (int64_t p0 = 0; p0 < P; p0 += PP) {
        const int64_t n = P - p0 < PP ? P - p0 : PP;
        ddq_build_panel(p, a->op, a->in[0], a->in[1], yt, a->x[0], p0, n, panel, rows);
        for (int64_t b = begin / ACC8_BLOCK; b * ACC8_BLOCK < end; b++) {
            const ddq_pairs_block blk = ddq_pairs_block_of(p, b);
            const int64_t o0 = b * ACC8_BLOCK;
            int64_t j = 0;
            for (; n - j >= 24; j += 24)
                tile_4xN(&q, panel + j * ACC8_GROUP, pitch, &blk, o0, begin, end, y + p0 + j, 24, 3, shift);
            const int64_t rest = n - j;
            const int8_t *xp = panel + j * ACC8_GROUP;
            if (rest > 16) tile_4xN(&q, xp, pitch, &blk, o0, begin, end, y + p0 + j, rest, 3, shift);
            else if (rest > 8) tile_4xN(&q, xp, pitch, &blk, o0, begin, end, y + p0 + j, rest, 2, shift);
            else if (rest > 1) tile_4xN(&q, xp, pitch, &blk, o0, begin, end, y + p0 + j, rest, 1, shift);
            else if (rest == 1) tail_1px(&q, xp, pitch, &blk, o0, begin, end, y + p0 + j, shift);
        }
    }
}

void ddq_conv_gemm_acc8__neon(const ddq_op_args *a, int64_t begin, int64_t end) {
    if (((const ddq_neon_pairs *)a->prepared)->plan->rq.lshift_any) gemm_acc8(a, begin, end, 1);
    else gemm_acc8(a, begin, end, 0);
}
