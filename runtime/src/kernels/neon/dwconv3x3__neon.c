/* Depthwise 3×3 conv2d (groups = C = O), stride 1 or 2 each way, any padding, Advanced SIMD,
 * eight channels in the lanes of a vector. Their padded inputs are interleaved as int16 x − zp
 * with 0 in the padding (fill_c8: 8 × 8 byte transposes), so the borders need no special case
 * and small maps (4×4, 2×2 at the end of a MobileNet) cost the same per output as large ones.
 *
 * An output pixel of 8 channels is nine 16-byte loads against the nine weight vectors (packed
 * [9][C + 8] at session creation, held in registers for the channel group) and then the exact
 * requantization of mbqm__neon.h with each lane's own multiplier. The products are summed
 *
 * - in int16 (one MUL and eight MLA) when every channel c of the group has
 *   Σ_k |w[c][k]| · span ≤ 32767, span = the largest |x − zp| of the input grid — the loader's
 *   accumulator bound with int16 in place of int32. The sum then fits int16, so MLA's
 *   wrap-around modulo 2^16 (defined for vector lanes) never changes it, whatever the order;
 *   the bias is added when widening to int32 (SADDW). Low-bit layers (span 7…15, |w| ≤ 31)
 *   always qualify; the check costs about twenty instructions per group of eight channels;
 * - otherwise in int32 (nine SMLAL/SMLAL2 pairs from the bias), as before.
 *
 * Pixels go in groups of eight (of four for a last group of at most four, so a 2×2 map does not
 * compute eight); pairs of results are narrowed into one vector (SQXTUN/SQXTUN2, pixels 0|2,
 * 1|3, 4|6, 5|7), transposed to channel planes with three rounds of ZIP (twelve instructions
 * for 8 × 8 bytes), clamped (the clamp commutes with the transpose) and stored 8 bytes per
 * channel plane. */
#include "neon.h"

/* The 8 × 8 byte transpose: in, eight vectors of eight; out[i] = lane i of every input. */
static inline void transpose_8x8(const uint8x8_t in[8], uint8x8_t out[8]) {
    const uint8x8x2_t t01 = vtrn_u8(in[0], in[1]), t23 = vtrn_u8(in[2], in[3]);
    const uint8x8x2_t t45 = vtrn_u8(in[4], in[5]), t67 = vtrn_u8(in[6], in[7]);
    const uint16x4x2_t u02 = vtrn_u16(vreinterpret_u16_u8(t01.val[0]), vreinterpret_u16_u8(t23.val[0]));
    const uint16x4x2_t u13 = vtrn_u16(vreinterpret_u16_u8(t01.val[1]), vreinterpret_u16_u8(t23.val[1]));
    const uint16x4x2_t u46 = vtrn_u16(vreinterpret_u16_u8(t45.val[0]), vreinterpret_u16_u8(t67.val[0]));
    const uint16x4x2_t u57 = vtrn_u16(vreinterpret_u16_u8(t45.val[1]), vreinterpret_u16_u8(t67.val[1]));
    const uint32x2x2_t v04 = vtrn_u32(vreinterpret_u32_u16(u02.val[0]), vreinterpret_u32_u16(u46.val[0]));
    const uint32x2x2_t v15 = vtrn_u32(vreinterpret_u32_u16(u13.val[0]), vreinterpret_u32_u16(u57.val[0]));
    const uint32x2x2_t v26 = vtrn_u32(vreinterpret_u32_u16(u02.val[1]), vreinterpret_u32_u16(u46.val[1]));
    const uint32x2x2_t v37 = vtrn_u32(vreinterpret_u32_u16(u13.val[1]), vreinterpret_u32_u16(u57.val[1]));
    out[0] = vreinterpret_u8_u32(v04.val[0]);
    out[1] = vreinterpret_u8_u32(v15.val[0]);
    out[2] = vreinterpret_u8_u32(v26.val[0]);
    out[3] = vreinterpret_u8_u32(v37.val[0]);
    out[4] = vreinterpret_u8_u32(v04.val[1]);
    out[5] = vreinterpret_u8_u32(v15.val[1]);
    out[6] = vreinterpret_u8_u32(v26.val[1]);
    out[7] = vreinterpret_u8_u32(v37.val[1]);
}

/* ddq_dw_fill_c8 for 8 channels: 8 consecutive pixels of each channel are loaded and transposed,
 * so that each vector holds one pixel's 8 channels, widened to x − zp (USUBL) and stored; 8
 * pixels of one row at once where they are consecutive in T. A load may run past the channel's
 * plane into the next one (its pixels are not stored) but never past the input tensor. */
static void fill_c8(const ddq_op_args *a, int64_t c0, int64_t n, ddq_dw_geometry g, int16_t *T) {
    const ddq_tensor *xt = a->in[0];
    const int64_t C = xt->shape[1], H = xt->shape[2], W = xt->shape[3], HW = H * W;
    if (n < 8) {
        ddq_dw_fill_c8(a, c0, n, g, T);
        return;
    }
    const int64_t pt = a->op->padding[0], pl = a->op->padding[1];
    const int64_t y1 = H < g.rows - pt ? H : g.rows - pt, x1 = W < g.cols - pl ? W : g.cols - pl;
    const uint8_t *x = (const uint8_t *)a->x[0] + c0 * HW;
    const uint8x8_t zp = vdup_n_u8((uint8_t)xt->zero_point);
    int64_t f = 0, iy = 0, ix = 0; /* pixel f = (iy, ix) */
    for (; f < HW && (c0 + 7) * HW + f + 8 <= C * HW; f += 8) {
        uint8x8_t in[8], px[8];
        for (int l = 0; l < 8; l++) in[l] = vld1_u8(x + l * HW + f); /* unrolled by the compiler */
        transpose_8x8(in, px);
        if (f + 8 <= HW && ix + 8 <= x1 && iy < y1) { /* one row, all inside: consecutive in T */
            int16_t *d = T + ((iy + pt) * g.cols + ix + pl) * 8;
            for (int i = 0; i < 8; i++) vst1q_s16(d + 8 * i, vreinterpretq_s16_u16(vsubl_u8(px[i], zp)));
            ix += 8;
            if (ix == W) ix = 0, iy++;
        } else {
            const int64_t count = HW - f < 8 ? HW - f : 8;
            for (int i = 0; i < count; i++) {
                if (iy < y1 && ix < x1)
                    vst1q_s16(T + ((iy + pt) * g.cols + ix + pl) * 8, vreinterpretq_s16_u16(vsubl_u8(px[i], zp)));
                if (++ix == W) ix = 0, iy++;
            }
        }
    }
    const int16_t zp16 = (int16_t)xt->zero_point;
    for (; f < HW; f++) {
        if (iy < y1 && ix < x1)
            for (int l = 0; l < 8; l++) T[((iy + pt) * g.cols + ix + pl) * 8 + l] = (int16_t)(x[l * HW + f] - zp16);
        if (++ix == W) ix = 0, iy++;
    }
}

#define DDQ_ALWAYS_INLINE static inline __attribute__((always_inline))

/* clamp-free requantization of one pixel: MBQM + zp of eight accumulators, saturated to int16 */
DDQ_ALWAYS_INLINE int16x8_t dw_pixel(const int16_t *t, int64_t row, const int16x8_t *w, int32x4_t b0, int32x4_t b1,
                                     const ddq_requant_neon *rq, const int i16) {
    const int16_t *t1 = t + row, *t2 = t + 2 * row;
    int32x4_t a0, a1;
    if (i16) {
        int16x8_t s = vmulq_s16(vld1q_s16(t), w[0]);
        s = vmlaq_s16(s, vld1q_s16(t + 8), w[1]);
        s = vmlaq_s16(s, vld1q_s16(t + 16), w[2]);
        s = vmlaq_s16(s, vld1q_s16(t1), w[3]);
        s = vmlaq_s16(s, vld1q_s16(t1 + 8), w[4]);
        s = vmlaq_s16(s, vld1q_s16(t1 + 16), w[5]);
        s = vmlaq_s16(s, vld1q_s16(t2), w[6]);
        s = vmlaq_s16(s, vld1q_s16(t2 + 8), w[7]);
        s = vmlaq_s16(s, vld1q_s16(t2 + 16), w[8]);
        a0 = vaddw_s16(b0, vget_low_s16(s));
        a1 = vaddw_high_s16(b1, s);
    } else {
        const int16_t *p[9] = {t, t + 8, t + 16, t1, t1 + 8, t1 + 16, t2, t2 + 8, t2 + 16};
        a0 = b0, a1 = b1;
        for (int k = 0; k < 9; k++) {
            const int16x8_t v = vld1q_s16(p[k]);
            a0 = vmlal_s16(a0, vget_low_s16(v), vget_low_s16(w[k]));
            a1 = vmlal_high_s16(a1, v, w[k]);
        }
    }
    const int32x4_t v0 = ddq_mbqm_neon(a0, rq->m0[0], rq->neg_t[0], rq->neg_t[1]);
    const int32x4_t v1 = ddq_mbqm_neon(a1, rq->m0[1], rq->neg_t[2], rq->neg_t[3]);
    return vqaddq_s16(vqmovn_high_s32(vqmovn_s32(v0), v1), rq->zp);
}

typedef struct dw_walk {
    const int16_t *t, *t_row; /* the next pixel's window's top left corner, and that of its row */
    int64_t ox;               /* its column */
} dw_walk;

/* `npix` (8 or 4) output pixels q … of eight channels; past the last pixel the last one repeats. */
DDQ_ALWAYS_INLINE void dw_group(dw_walk *wk, int64_t q, int64_t OHW, int64_t OW, int64_t step_x, int64_t step_y,
                                int64_t row, const int16x8_t *w, int32x4_t b0, int32x4_t b1,
                                const ddq_requant_neon *rq, uint8x16_t lo, uint8x16_t hi, uint8_t *y, int64_t n,
                                const int npix, const int i16) {
    int16x8_t v[8];
#pragma GCC unroll 8
    for (int i = 0; i < npix; i++) {
        v[i] = dw_pixel(wk->t, row, w, b0, b1, rq, i16);
        if (q + i + 1 < OHW) {
            wk->t += step_x;
            if (++wk->ox == OW) wk->ox = 0, wk->t = wk->t_row += step_y;
        }
    }
    /* P0 = pixels 0|2, P1 = 1|3, P2 = 4|6, P3 = 5|7: after the zips, channel rows in order */
    const uint8x16_t p0 = vqmovun_high_s16(vqmovun_s16(v[0]), v[2]);
    const uint8x16_t p1 = vqmovun_high_s16(vqmovun_s16(v[1]), v[3]);
    const uint8x16_t p2 = npix == 8 ? vqmovun_high_s16(vqmovun_s16(v[4]), v[6]) : p0;
    const uint8x16_t p3 = npix == 8 ? vqmovun_high_s16(vqmovun_s16(v[5]), v[7]) : p1;
    const uint8x16_t z0 = vzip1q_u8(p0, p1), z1 = vzip2q_u8(p0, p1); /* c0…7 of pixels 0 1 | 2 3 */
    const uint8x16_t z2 = vzip1q_u8(p2, p3), z3 = vzip2q_u8(p2, p3);
    const uint16x8_t u0 = vzip1q_u16(vreinterpretq_u16_u8(z0), vreinterpretq_u16_u8(z1)); /* c0…3 of 0–3 */
    const uint16x8_t u1 = vzip2q_u16(vreinterpretq_u16_u8(z0), vreinterpretq_u16_u8(z1)); /* c4…7 of 0–3 */
    const uint16x8_t u2 = vzip1q_u16(vreinterpretq_u16_u8(z2), vreinterpretq_u16_u8(z3));
    const uint16x8_t u3 = vzip2q_u16(vreinterpretq_u16_u8(z2), vreinterpretq_u16_u8(z3));
    uint8x16_t r[4];
    r[0] = vreinterpretq_u8_u32(vzip1q_u32(vreinterpretq_u32_u16(u0), vreinterpretq_u32_u16(u2))); /* c0 | c1 */
    r[1] = vreinterpretq_u8_u32(vzip2q_u32(vreinterpretq_u32_u16(u0), vreinterpretq_u32_u16(u2))); /* c2 | c3 */
    r[2] = vreinterpretq_u8_u32(vzip1q_u32(vreinterpretq_u32_u16(u1), vreinterpretq_u32_u16(u3))); /* c4 | c5 */
    r[3] = vreinterpretq_u8_u32(vzip2q_u32(vreinterpretq_u32_u16(u1), vreinterpretq_u32_u16(u3))); /* c6 | c7 */
    const int64_t count = OHW - q < npix ? OHW - q : npix;
    if (count == 8 && n == 8) {
        for (int k = 0; k < 4; k++) {
            const uint8x16_t c = vminq_u8(vmaxq_u8(r[k], lo), hi);
            vst1_u8(y + 2 * k * OHW + q, vget_low_u8(c));
            vst1_u8(y + (2 * k + 1) * OHW + q, vget_high_u8(c));
        }
    } else {
        for (int l = 0; l < n; l++) {
            const uint8x16_t c = vminq_u8(vmaxq_u8(r[l / 2], lo), hi);
            ddq_store_u8x8_partial(y + l * OHW + q, l % 2 ? vget_high_u8(c) : vget_low_u8(c), count);
        }
    }
}

void *ddq_dw_prepare__neon(const ddq_model *model, const ddq_op *op) { return ddq_prepare__generic(model, op); }
void ddq_dw_release__neon(void *prepared) { ddq_release__generic(prepared); }
size_t ddq_dw_scratch_bytes__neon(const ddq_model *model, const ddq_op *op) {
    return ddq_scratch_bytes__generic(model, op);
}

void ddq_dwconv3x3__neon(const ddq_op_args *a, int64_t begin, int64_t end) {
    const ddq_packed_conv *pc = a->prepared;
    const ddq_op *op = a->op;
    const ddq_tensor *xt = a->in[0], *yt = a->out;
    const int64_t C = yt->shape[1], Cp = C + 8, OH = yt->shape[2], OW = yt->shape[3], OHW = OH * OW;
    const ddq_dw_geometry g = ddq_dw_geometry_of(op, yt);
    const int64_t row = g.cols * 8; /* int16 values per padded row */
    const int64_t step_x = op->stride[1] * 8, step_y = op->stride[0] * row;
    const int64_t up = (int64_t)xt->qmax - xt->zero_point, down = (int64_t)xt->zero_point - xt->qmin;
    const int64_t span = up > down ? up : down;
    const int64_t i16_limit = span > 0 ? 32767 / span : 32767; /* Σ|w| · span ≤ 32767 ⟺ Σ|w| ≤ this */
    const uint8x16_t lo = vdupq_n_u8((uint8_t)op->act_min), hi = vdupq_n_u8((uint8_t)op->act_max);
    int16_t *T = a->scratch;
    ddq_dw_zero(g, T);
    for (int64_t c0 = begin; c0 < end; c0 += 8) {
        const int64_t n = end - c0 < 8 ? end - c0 : 8;
        fill_c8(a, c0, n, g, T);
        int16x8_t w[9];
        int16x8_t wsum = vdupq_n_s16(0); /* Σ_k |w| per lane (≤ 9 · 127), zero past the last channel */
        for (int k = 0; k < 9; k++) {
            w[k] = vld1q_s16(pc->w + k * Cp + c0);
            wsum = vaddq_s16(wsum, vabsq_s16(w[k]));
        }
        const int i16 = vmaxvq_s16(wsum) <= i16_limit;
        const int32x4_t b0 = vld1q_s32(pc->bias + c0), b1 = vld1q_s32(pc->bias + c0 + 4);
        const ddq_requant_neon rq =
            ddq_requant_neon_lanes(pc->rq.m0 + c0, pc->rq.neg_t + c0, yt->zero_point, op->act_min, op->act_max);
        uint8_t *y = (uint8_t *)a->y + c0 * OHW;
        dw_walk wk = {T, T, 0};
        for (int64_t q = 0; q < OHW; q += 8) {
            const int small = OHW - q <= 4;
            if (i16) {
                if (small) dw_group(&wk, q, OHW, OW, step_x, step_y, row, w, b0, b1, &rq, lo, hi, y, n, 4, 1);
                else dw_group(&wk, q, OHW, OW, step_x, step_y, row, w, b0, b1, &rq, lo, hi, y, n, 8, 1);
            } else {
                if (small) dw_group(&wk, q, OHW, OW, step_x, step_y, row, w, b0, b1, &rq, lo, hi, y, n, 4, 0);
                else dw_group(&wk, q, OHW, OW, step_x, step_y, row, w, b0, b1, &rq, lo, hi, y, n, 8, 0);
            }
        }
    }
}
