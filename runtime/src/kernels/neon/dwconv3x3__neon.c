/* Depthwise 3×3 conv2d (groups = C = O), stride 1 or 2 each way, any padding, Advanced SIMD,
 * one channel plane at a time with output pixels of one row in the lanes (NCHW needs no
 * transpose).
 *
 * The input. Each channel is copied once into a padded plane in scratch as int8 x − c, the
 * offset c of ddq_panel_offset (c = zp where x − zp fits int8, as for every grid of up to 7
 * bits); padding reads zp − c. Since Σ w·(x − zp) = Σ w·(x − c) + (c − zp)·Σ w, the second term
 * goes into the bias, and a padded tap adds w·(zp − c) + (c − zp)·w = 0 as it should. The plane's
 * padding is written once per call; a channel only overwrites its inside. A row of 16 (or 8)
 * outputs reads its three column taps as three unaligned loads (stride 1) or two LD2
 * deinterleaving loads (stride 2: even columns, odd columns, even columns one further).
 *
 * The products. Weights are scalars duplicated into vectors; SMULL/SMLAL multiply int8 × int8
 * into int16 lanes. The loops walk down a column strip and load each input row once: it adds
 * its three weight rows to the (up to) three output rows it belongs to, and one output row is
 * finished per input row (stride 1; stride 2: two input rows per output row). Per channel, the
 * interval bound of a sum of products over v ∈ [qmin − c, qmax − c] picks
 *
 * - ACC9: all nine taps summed in int16. SMLAL wraps modulo 2^16 (defined for vector lanes),
 *   so the lane ends at the exact sum whenever that sum lies in int16, whatever the order and
 *   whatever the partial sums; it is then widened once. Grids up to 7 bits always qualify.
 * - ACC3: each weight row's three taps summed in int16, widened into int32 per row (8-bit
 *   grids with moderate weights).
 * - GENERAL: each product widened (|w·v| ≤ 2^14 always fits int16), then the int64
 *   requantization of mbqm__neon.h: channels the two above cannot take, and unequal strides.
 *
 * The requantization (ACC9, ACC3). With t = 31 − shift, the fast form of gemm_plan.h holds for
 * any l ≥ 0 with r = t − 31 + l ≥ 1 as long as x·2^l stays in int32; l = 15 + shift gives r = 15
 * for every channel, so the final rounding shift is an immediate and SQRSHRN #15 does it and the
 * narrowing to int16 at once (rounding ties up, saturating: the same as SRSHL then SQXTN). The
 * widening multiplies by 2^l (SMLAL by element, so l ≤ 14) onto the bias · 2^l, then SQDMULH by
 * m0. A channel qualifies when −15 ≤ shift ≤ −1 and bound · 2^l < 2^31, bound the loader's
 * |acc + bias| ≤ Σ|w|·span + |bias|; int32 sums wrap and end at the exact (acc + bias) · 2^l.
 * SQADD zp, SQXTUN and the clamp follow as in mbqm__neon.h (saturation keeps its side). */
#include <stdlib.h>

#include "neon.h"

#define DDQ_ALWAYS_INLINE static inline __attribute__((always_inline))

enum dw_mode { DW_ACC9, DW_ACC3, DW_GENERAL };

/* The final rounding shift of the fast requantization, an immediate of SQRSHRN. */
#define DW_R 15

typedef struct dw_channel {
    int8_t w[9];
    int8_t mode;     /* enum dw_mode */
    int16_t scale;   /* ACC9, ACC3: 2^l */
    int32_t bias;    /* ACC9, ACC3: (bias + (c − zp)·Σw) · 2^l mod 2^32; GENERAL: the unscaled sum */
    int32_t m0;
    int64_t neg_t;   /* GENERAL: shift − 31 */
} dw_channel;

typedef struct dw_prepared {
    int path;        /* DDQ_CONV_DW3X3: the set's prepared objects start with their path */
    int32_t offset;  /* c */
    dw_channel ch[]; /* [C] */
} dw_prepared;

/* The padded plane: the rows × cols positions the outputs read, and slack to the right for the
 * 16-byte stores of the fill and the loads of a last chunk. */
static int64_t plane_pitch(ddq_dw_geometry g) { return (g.cols + 33 + 15) / 16 * 16; }

/* [min, max] of Σ w·v over taps k0 … k1 − 1 for v ∈ [lo, hi] inside int16. */
static int fits_int16(const int8_t *w, int k0, int k1, int64_t lo, int64_t hi) {
    int64_t mn = 0, mx = 0;
    for (int k = k0; k < k1; k++) {
        const int64_t a = w[k] * lo, b = w[k] * hi;
        mn += a < b ? a : b;
        mx += a < b ? b : a;
    }
    return mn >= INT16_MIN && mx <= INT16_MAX;
}

void *ddq_dw_prepare__neon(const ddq_model *model, const ddq_op *op) {
    const ddq_tensor *xt = &model->tensors[op->inputs[0]], *wt = &model->tensors[op->inputs[1]];
    const ddq_tensor *bt = &model->tensors[op->inputs[2]];
    const int64_t C = wt->shape[0];
    dw_prepared *p = malloc(sizeof *p + (size_t)C * sizeof(dw_channel));
    if (!p) return NULL;
    p->path = DDQ_CONV_DW3X3;
    p->offset = ddq_panel_offset(xt, 1);
    const int64_t lo = xt->qmin - p->offset, hi = xt->qmax - p->offset;
    const int square = op->stride[0] == op->stride[1];
    const int8_t *w = wt->data;
    const int32_t *bias = bt->data;
    for (int64_t o = 0; o < C; o++) {
        dw_channel *ch = &p->ch[o];
        int64_t sum = 0;
        for (int k = 0; k < 9; k++) {
            ch->w[k] = w[o * 9 + k];
            sum += ch->w[k];
        }
        const int64_t folded = bias[o] + ((int64_t)p->offset - xt->zero_point) * sum;
        const ddq_multiplier m = op->channel_multipliers[o];
        const int l = DW_R + m.shift;
        const int64_t bound = ddq_accumulator_bound(xt, wt, bt, o);
        const int fast = square && l >= 0 && l <= 14 && (bound << l) <= INT32_MAX;
        int rows_fit = 1;
        for (int ky = 0; ky < 3; ky++) rows_fit &= fits_int16(ch->w, 3 * ky, 3 * ky + 3, lo, hi);
        ch->mode = !fast ? DW_GENERAL : fits_int16(ch->w, 0, 9, lo, hi) ? DW_ACC9 : rows_fit ? DW_ACC3 : DW_GENERAL;
        ch->m0 = m.m0;
        ch->neg_t = (int64_t)m.shift - 31;
        if (ch->mode == DW_GENERAL) {
            ch->scale = 1;
            ch->bias = (int32_t)(uint32_t)(uint64_t)folded; /* the int32 sums wrap to the exact one */
        } else {
            ch->scale = (int16_t)(1 << l);
            ch->bias = (int32_t)(uint32_t)((uint64_t)folded << l);
        }
    }
    return p;
}

void ddq_dw_release__neon(void *prepared) { free(prepared); }

size_t ddq_dw_scratch_bytes__neon(const ddq_model *model, const ddq_op *op) {
    const ddq_dw_geometry g = ddq_dw_geometry_of(op, &model->tensors[op->output]);
    return (size_t)((g.rows * plane_pitch(g) + 63) / 64 * 64);
}

/* ------------------------------------------------------------------------------ the fill */

/* Channel plane x (H × W, ending no later than x_end) into P as x − c: rows y1 and columns x1
 * of it (what the outputs read) at (pt, pl). Each row is written in 16-byte stores, the last of
 * which runs into the right padding; one store of pad bytes after the row restores it. */
static void fill_plane(const uint8_t *x, const uint8_t *x_end, int64_t W, int64_t y1, int64_t x1, int64_t pt,
                       int64_t pl, int64_t pitch, uint8_t c, int8_t pad, int8_t *P) {
    const uint8x16_t cv = vdupq_n_u8(c);
    const int8x16_t padv = vdupq_n_s8(pad);
    for (int64_t iy = 0; iy < y1; iy++) {
        const uint8_t *s = x + iy * W;
        int8_t *d = P + (pt + iy) * pitch + pl;
        for (int64_t j = 0; j < x1; j += 16) {
            uint8x16_t v;
            if (s + j + 16 <= x_end) {
                v = vld1q_u8(s + j); /* may read the next row or channel: those bytes are repaired */
            } else {
                uint8_t t[16] = {0};
                memcpy(t, s + j, (size_t)(x_end - (s + j)));
                v = vld1q_u8(t);
            }
            vst1q_s8(d + j, vreinterpretq_s8_u8(vsubq_u8(v, cv)));
        }
        vst1q_s8(d + x1, padv);
    }
}

/* ---------------------------------------------------------------- ACC9 and ACC3 strips */

typedef struct dw_consts {
    int8x16_t w[9];  /* each tap in all lanes */
    int32x4_t bias;  /* bias · 2^l */
    int16x4_t scale; /* 2^l in lane 0 */
    int32x4_t m0;
    int16x8_t zp;
    uint8x16_t lo, hi;
} dw_consts;

/* The three column taps of one input row for 16 outputs (lanes 0 … 7 serve a chunk of 8) from
 * p, the row at the chunk's first input column. */
DDQ_ALWAYS_INLINE void load_taps(const int8_t *p, const int s, int8x16_t k[3]) {
    if (s == 1) {
        k[0] = vld1q_s8(p);
        k[1] = vld1q_s8(p + 1);
        k[2] = vld1q_s8(p + 2);
    } else {
        const int8x16x2_t e = vld2q_s8(p), f = vld2q_s8(p + 2);
        k[0] = e.val[0];
        k[1] = e.val[1];
        k[2] = f.val[0];
    }
}

/* An output row's sums: ACC9 int16 lanes s (two vectors for 16 outputs), ACC3 int32 lanes a. */
typedef struct dw_acc {
    int16x8_t s[2];
    int32x4_t a[4];
} dw_acc;

/* Σ over the row's taps of k · w[3·ky + kx] in int16 lanes: half h (lanes 8h … 8h + 7). */
DDQ_ALWAYS_INLINE int16x8_t row_sum(const int8x16_t k[3], const dw_consts *q, int ky, int h, int start,
                                    int16x8_t s) {
    const int8x16_t *w = q->w + 3 * ky;
    if (h == 0) {
        s = start ? vmull_s8(vget_low_s8(k[0]), vget_low_s8(w[0])) : vmlal_s8(s, vget_low_s8(k[0]), vget_low_s8(w[0]));
        s = vmlal_s8(s, vget_low_s8(k[1]), vget_low_s8(w[1]));
        s = vmlal_s8(s, vget_low_s8(k[2]), vget_low_s8(w[2]));
    } else {
        s = start ? vmull_high_s8(k[0], w[0]) : vmlal_high_s8(s, k[0], w[0]);
        s = vmlal_high_s8(s, k[1], w[1]);
        s = vmlal_high_s8(s, k[2], w[2]);
    }
    return s;
}

/* Adds weight row ky of one input row's taps to an output row (start: its first row). */
DDQ_ALWAYS_INLINE void acc_row(dw_acc *r, const int8x16_t k[3], const dw_consts *q, int ky, const int start,
                               const int mode, const int nl) {
    for (int h = 0; h < nl / 8; h++) {
        if (mode == DW_ACC9) {
            r->s[h] = row_sum(k, q, ky, h, start, r->s[h]);
        } else {
            const int16x8_t p = row_sum(k, q, ky, h, 1, vdupq_n_s16(0));
            r->a[2 * h] = vmlal_lane_s16(start ? q->bias : r->a[2 * h], vget_low_s16(p), q->scale, 0);
            r->a[2 * h + 1] = vmlal_high_lane_s16(start ? q->bias : r->a[2 * h + 1], p, q->scale, 0);
        }
    }
}

/* Requantizes a finished output row and stores its first `count` outputs at y. */
DDQ_ALWAYS_INLINE void finish_row(const dw_acc *r, const dw_consts *q, uint8_t *y, int64_t count, const int mode,
                                  const int nl) {
    int16x8_t v[2];
    for (int h = 0; h < nl / 8; h++) {
        const int32x4_t a0 = mode == DW_ACC9 ? vmlal_lane_s16(q->bias, vget_low_s16(r->s[h]), q->scale, 0) : r->a[2 * h];
        const int32x4_t a1 = mode == DW_ACC9 ? vmlal_high_lane_s16(q->bias, r->s[h], q->scale, 0) : r->a[2 * h + 1];
        const int16x4_t n0 = vqrshrn_n_s32(vqdmulhq_s32(a0, q->m0), DW_R);
        v[h] = vqaddq_s16(vqrshrn_high_n_s32(n0, vqdmulhq_s32(a1, q->m0), DW_R), q->zp);
    }
    if (nl == 16) {
        const uint8x16_t b = vqmovun_high_s16(vqmovun_s16(v[0]), v[1]);
        vst1q_u8(y, vminq_u8(vmaxq_u8(b, q->lo), q->hi));
    } else {
        const uint8x8_t b = vmin_u8(vmax_u8(vqmovun_s16(v[0]), vget_low_u8(q->lo)), vget_low_u8(q->hi));
        ddq_store_u8x8_partial(y, b, count);
    }
}

/* One column strip: outputs x0 … x0 + count − 1 (count ≤ nl) of every row, stride s both ways;
 * P at input column x0 · s of padded row 0, y at output column x0 of row 0. */
DDQ_ALWAYS_INLINE void strip(const int8_t *P, int64_t pitch, int64_t OH, uint8_t *y, int64_t OW, int64_t count,
                             const dw_consts *q, const int s, const int mode, const int nl) {
    int8x16_t k[3];
    dw_acc A, B, C;
    load_taps(P, s, k);
    acc_row(&A, k, q, 0, 1, mode, nl);
    if (s == 1) {
        /* input row oy + 2 ends output row oy, continues oy + 1 and begins oy + 2; the roles
         * of A, B, C rotate, so the loop is unrolled three times */
        load_taps(P + pitch, s, k);
        acc_row(&A, k, q, 1, 0, mode, nl);
        acc_row(&B, k, q, 0, 1, mode, nl);
#define DW_STEP1(X, Y, Z)                                                                                           \
    load_taps(P + (oy + 2) * pitch, s, k);                                                                     \
    acc_row(&X, k, q, 2, 0, mode, nl);                                                                              \
    finish_row(&X, q, y + oy * OW, count, mode, nl);                                                               \
    if (++oy == OH) break;                                                                                          \
    acc_row(&Y, k, q, 1, 0, mode, nl);                                                                              \
    acc_row(&Z, k, q, 0, 1, mode, nl);
        for (int64_t oy = 0;;) {
            DW_STEP1(A, B, C)
            DW_STEP1(B, C, A)
            DW_STEP1(C, A, B)
        }
#undef DW_STEP1
    } else {
        /* input row 2·oy + 1 continues output row oy; row 2·oy + 2 ends it and begins oy + 1 */
#define DW_STEP2(X, Y)                                                                                              \
    load_taps(P + (2 * oy + 1) * pitch, s, k);                                                                 \
    acc_row(&X, k, q, 1, 0, mode, nl);                                                                              \
    load_taps(P + (2 * oy + 2) * pitch, s, k);                                                                 \
    acc_row(&X, k, q, 2, 0, mode, nl);                                                                              \
    finish_row(&X, q, y + oy * OW, count, mode, nl);                                                               \
    if (++oy == OH) break;                                                                                          \
    acc_row(&Y, k, q, 0, 1, mode, nl);
        for (int64_t oy = 0;;) {
            DW_STEP2(A, B)
            DW_STEP2(B, A)
        }
#undef DW_STEP2
    }
}

typedef void (*dw_strip_fn)(const int8_t *P, int64_t pitch, int64_t OH, uint8_t *y, int64_t OW, int64_t count,
                            const dw_consts *q);
#define DW_STRIP(name, s, mode, nl)                                                                                 \
    static void name(const int8_t *P, int64_t pitch, int64_t OH, uint8_t *y, int64_t OW, int64_t count,            \
                     const dw_consts *q) {                                                                          \
        strip(P, pitch, OH, y, OW, count, q, s, mode, nl);                                                          \
    }
DW_STRIP(strip_s1_acc9_16, 1, DW_ACC9, 16)
DW_STRIP(strip_s1_acc9_8, 1, DW_ACC9, 8)
DW_STRIP(strip_s1_acc3_8, 1, DW_ACC3, 8)
DW_STRIP(strip_s2_acc9_16, 2, DW_ACC9, 16)
DW_STRIP(strip_s2_acc9_8, 2, DW_ACC9, 8)
DW_STRIP(strip_s2_acc3_8, 2, DW_ACC3, 8)
#undef DW_STRIP

/* ------------------------------------------------------------------------------- GENERAL */

/* Column tap kx of 8 outputs at input column p (stride sx). */
static inline int8x8_t general_tap(const int8_t *p, int kx, int64_t sx) {
    if (sx == 1) return vld1_s8(p + kx);
    return kx == 1 ? vld2_s8(p).val[1] : vld2_s8(p + kx).val[0];
}

/* Outputs x0 … x0 + count − 1 (count ≤ 8) of every row: int32 sums, the int64 requantization. */
static void general_strip(const int8_t *P, int64_t pitch, int64_t OH, uint8_t *y, int64_t OW, int64_t count,
                          int64_t sy, int64_t sx, const dw_channel *ch, const ddq_requant_neon *rq) {
    int8x8_t w[9];
    for (int k = 0; k < 9; k++) w[k] = vdup_n_s8(ch->w[k]);
    const int32x4_t bias = vdupq_n_s32(ch->bias);
    for (int64_t oy = 0; oy < OH; oy++) {
        int32x4_t a0 = bias, a1 = bias;
        for (int ky = 0; ky < 3; ky++) {
            const int8_t *row = P + (oy * sy + ky) * pitch;
            for (int kx = 0; kx < 3; kx++) {
                const int16x8_t p = vmull_s8(general_tap(row, kx, sx), w[3 * ky + kx]);
                a0 = vaddw_s16(a0, vget_low_s16(p));
                a1 = vaddw_high_s16(a1, p);
            }
        }
        ddq_store_u8x8_partial(y + oy * OW, ddq_requantize_neon(a0, a1, rq), count);
    }
}

/* ------------------------------------------------------------------------------- the op */

void ddq_dwconv3x3__neon(const ddq_op_args *a, int64_t begin, int64_t end) {
    const dw_prepared *pp = a->prepared;
    if (!pp) {
        ddq_conv2d__reference(a, begin, end);
        return;
    }
    const ddq_op *op = a->op;
    const ddq_tensor *xt = a->in[0], *yt = a->out;
    const int64_t C = xt->shape[1], H = xt->shape[2], W = xt->shape[3];
    const int64_t OH = yt->shape[2], OW = yt->shape[3];
    const int64_t sy = op->stride[0], sx = op->stride[1], pt = op->padding[0], pl = op->padding[1];
    const ddq_dw_geometry g = ddq_dw_geometry_of(op, yt);
    const int64_t pitch = plane_pitch(g);
    const int64_t y1 = H < g.rows - pt ? H : g.rows - pt, x1 = W < g.cols - pl ? W : g.cols - pl;
    const uint8_t c = (uint8_t)pp->offset;
    const int8_t pad = (int8_t)(xt->zero_point - pp->offset);
    int8_t *P = a->scratch;
    memset(P, (uint8_t)pad, (size_t)(g.rows * pitch));
    const uint8_t *x = a->x[0];
    dw_consts q;
    q.zp = vdupq_n_s16((int16_t)yt->zero_point);
    q.lo = vdupq_n_u8((uint8_t)op->act_min);
    q.hi = vdupq_n_u8((uint8_t)op->act_max);
    for (int64_t o = begin; o < end; o++) {
        const dw_channel *ch = &pp->ch[o];
        uint8_t *y = (uint8_t *)a->y + o * OH * OW;
        if (y1 > 0 && x1 > 0) fill_plane(x + o * H * W, x + C * H * W, W, y1, x1, pt, pl, pitch, c, pad, P);
        if (ch->mode == DW_GENERAL) {
            const ddq_requant_neon rq =
                ddq_requant_neon_same(ch->m0, ch->neg_t, yt->zero_point, op->act_min, op->act_max);
            if (OW < 8) general_strip(P, pitch, OH, y, OW, OW, sy, sx, ch, &rq);
            for (int64_t x0 = 0; OW >= 8 && x0 < OW; x0 += 8) {
                const int64_t xs = x0 + 8 <= OW ? x0 : OW - 8; /* the last chunk overlaps the one before */
                general_strip(P + xs * sx, pitch, OH, y + xs, OW, 8, sy, sx, ch, &rq);
            }
            continue;
        }
        for (int k = 0; k < 9; k++) q.w[k] = vdupq_n_s8(ch->w[k]);
        q.bias = vdupq_n_s32(ch->bias);
        q.scale = vdup_n_s16(ch->scale);
        q.m0 = vdupq_n_s32(ch->m0);
        const int s2 = sy == 2; /* the prepare sent unequal strides to GENERAL */
        const dw_strip_fn f16 = s2 ? strip_s2_acc9_16 : strip_s1_acc9_16;
        const dw_strip_fn f8 = ch->mode == DW_ACC9 ? (s2 ? strip_s2_acc9_8 : strip_s1_acc9_8)
                                                   : (s2 ? strip_s2_acc3_8 : strip_s1_acc3_8);
        /* chunks of 16 outputs (ACC9) while 16 remain, then one of 16 overlapping the one before
         * or of 8; chunks of 8 otherwise, the last overlapping; a row narrower than 8 partially */
        int64_t x0 = 0;
        if (ch->mode == DW_ACC9 && OW >= 16) {
            for (; x0 + 16 <= OW; x0 += 16) f16(P + x0 * sx, pitch, OH, y + x0, OW, 16, &q);
            if (OW - x0 > 8) {
                f16(P + (OW - 16) * sx, pitch, OH, y + OW - 16, OW, 16, &q);
                x0 = OW;
            }
        }
        if (OW < 8) f8(P, pitch, OH, y, OW, OW, &q);
        for (; OW >= 8 && x0 < OW; x0 += 8) {
            const int64_t xs = x0 + 8 <= OW ? x0 : OW - 8;
            f8(P + xs * sx, pitch, OH, y + xs, OW, 8, &q);
        }
    }
}
