/* Depthwise 3×3 conv2d (groups = C = O), stride 1 or 2 each way, any padding, Advanced SIMD,
 * eight channels in the lanes of a vector. Their padded inputs are interleaved as int16 x − zp
 * with 0 in the padding (fill_c8: 8 × 8 byte transposes), so the borders need no special case
 * and small maps (4×4, 2×2 at the end of a MobileNet) cost the same per output as large ones:
 * an output pixel of 8 channels is nine 16-byte loads and nine SMLAL/SMLAL2 pairs against the
 * weights packed [9][C + 8] at session creation, then the exact requantization of mbqm__neon.h
 * with each lane's own multiplier. Eight output pixels are transposed back and stored as 8
 * bytes per channel plane. */
#include "neon.h"

#define TAP(k, ptr)                                                                  \
    do {                                                                             \
        const int16x8_t v = vld1q_s16(ptr);                                          \
        acc0 = vmlal_s16(acc0, vget_low_s16(v), vget_low_s16(w##k));                 \
        acc1 = vmlal_high_s16(acc1, v, w##k);                                        \
    } while (0)

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

void ddq_dwconv3x3_c8__neon(const ddq_op_args *a, int64_t begin, int64_t end) {
    const ddq_packed_conv *pc = a->prepared;
    const ddq_op *op = a->op;
    const ddq_tensor *yt = a->out;
    const int64_t C = yt->shape[1], Cp = C + 8, OH = yt->shape[2], OW = yt->shape[3], OHW = OH * OW;
    const int64_t sh = op->stride[0], sw = op->stride[1];
    const ddq_dw_geometry g = ddq_dw_geometry_of(op, yt);
    const int64_t row = g.cols * 8; /* int16 values per padded row */
    int16_t *T = a->scratch;
    ddq_dw_zero(g, T);
    for (int64_t c0 = begin; c0 < end; c0 += 8) {
        const int64_t n = end - c0 < 8 ? end - c0 : 8;
        fill_c8(a, c0, n, g, T);
        const int16_t *wp = pc->w + c0;
        const int16x8_t w0 = vld1q_s16(wp), w1 = vld1q_s16(wp + Cp), w2 = vld1q_s16(wp + 2 * Cp);
        const int16x8_t w3 = vld1q_s16(wp + 3 * Cp), w4 = vld1q_s16(wp + 4 * Cp), w5 = vld1q_s16(wp + 5 * Cp);
        const int16x8_t w6 = vld1q_s16(wp + 6 * Cp), w7 = vld1q_s16(wp + 7 * Cp), w8 = vld1q_s16(wp + 8 * Cp);
        const int32x4_t b0 = vld1q_s32(pc->bias + c0), b1 = vld1q_s32(pc->bias + c0 + 4);
        const ddq_requant_neon rq = ddq_requant_neon_lanes(pc->m0 + c0, pc->neg_t + c0, yt->zero_point, op->act_min,
                                                           op->act_max);
        uint8_t *y = (uint8_t *)a->y + c0 * OHW;
        int64_t ox = 0;                  /* column of the output pixel q + i */
        const int16_t *t = T, *t_row = T; /* its window's top left corner, and that of its row */
        for (int64_t q = 0; q < OHW; q += 8) {
            /* 8 output pixels (the last group repeats its last pixel) × 8 channels */
            uint8x8_t px[8], ch[8];
#pragma GCC unroll 8
            for (int i = 0; i < 8; i++) {
                int32x4_t acc0 = b0, acc1 = b1;
                TAP(0, t);
                TAP(1, t + 8);
                TAP(2, t + 16);
                TAP(3, t + row);
                TAP(4, t + row + 8);
                TAP(5, t + row + 16);
                TAP(6, t + 2 * row);
                TAP(7, t + 2 * row + 8);
                TAP(8, t + 2 * row + 16);
                px[i] = ddq_requantize_neon(acc0, acc1, &rq);
                if (q + i + 1 < OHW) {
                    t += sw * 8;
                    if (++ox == OW) ox = 0, t = t_row += sh * row;
                }
            }
            transpose_8x8(px, ch);
            const int64_t count = OHW - q < 8 ? OHW - q : 8;
            for (int l = 0; l < n; l++) ddq_store_u8x8_partial(y + l * OHW + q, ch[l], count);
        }
    }
}
