/* Depthwise 3×3 conv2d (groups = C = O), stride 1 or 2 each way, any padding, Advanced SIMD:
 * four channels × four output pixels in the sixteen byte lanes of a vector.
 *
 * The layout. A group of four channels is interleaved once into scratch: T holds the group's
 * padded input (the positions its outputs read, ddq_dw_geometry) pixel by pixel, the four
 * channels' bytes of a pixel side by side (ST4 of four channel rows), as int8 x − c. Tap
 * (ky, kx) of output pixels c … c + 3 of row r lies in row r·sy + ky: with stride 1 as one
 * 16-byte load at pixel c + kx; with stride 2 the pixels 2c + kx + {0, 2, 4, 6}, which one LD2
 * of eight pixels (32-bit elements) splits off for kx = 0 and 1, a second two pixels further for
 * kx = 2. A vector holds 16 outputs whatever the map's size (a 7 × 7 map computes 8 pixels a row
 * where rows in the lanes would compute 16), and a channel's fixed costs are shared by four. Two
 * output rows are computed together, their shared input rows loaded once. The results go to a
 * staging buffer in the same pixel-major order, one row after the other (a row's last vector
 * spills past it onto the next row's start, which is stored later); LD4 then gives 16
 * consecutive outputs of each of the four channels, stored straight into their NCHW planes.
 *
 * The input. T holds x − c as int8, the offset c of ddq_panel_offset (c = zp where x − zp fits
 * int8, as for every grid of up to 7 bits); padding reads zp − c. Since Σ w·(x − zp) =
 * Σ w·(x − c) + (c − zp)·Σ w, the second term goes into the bias, and a padded tap adds
 * w·(zp − c) + (c − zp)·w = 0 as it should. The padding is written once per call; a group only
 * overwrites the inside (16 pixels per ST4, then one 64-byte store of pad bytes repairs what
 * the last ST4 wrote past the row).
 *
 * The products. A tap's weights are one 32-bit load of the group's four weights (packed
 * tap-major at session creation) repeated over the four pixels; SMULL/SMLAL multiply int8 ×
 * int8 into int16 lanes, and runs of taps are summed there before they are widened into int32.
 * SMLAL wraps modulo 2^16 (defined for vector lanes), so a lane ends at the exact sum of its run
 * whenever that sum lies in int16, whatever the partial sums. Per channel the interval bound of a
 * run's sum over v ∈ [qmin − c, qmax − c] picks the longest runs that fit: all nine taps with
 * the bias (RUNS9B) or without it (RUNS9: every grid up to 7 bits), the three rows of the
 * kernel (RUNS3), pairs (RUNS2: every 8-bit grid with narrow-range weights, |w·v| ≤ 127 · 128),
 * single products (RUNS1); a group takes the shortest runs any of its channels needs.
 *
 * The requantization. With t = 31 − shift, the fast form of gemm_plan.h holds for any l ≥ 0 with
 * r = t − 31 + l ≥ 1 as long as x·2^l stays in int32; l = 14 + shift gives r = 14 for every
 * channel, so SQRSHRN #14 does the final rounding shift and the narrowing to int16 at once
 * (rounding ties up, saturating: the same as SRSHL then SQXTN), and each lane's own 2^l is a
 * multiplier of the widening (SMLAL onto the bias · 2^l, or SMULL of the int16 sum with the
 * bias in it), then SQDMULH by the lane's m0 (RQ_FAST). A channel qualifies when
 * −14 ≤ shift ≤ 0 (multipliers in [2^−15, 1): l ≤ 14 keeps 2^l an int16) and
 * bound · 2^l < 2^31, bound the loader's |acc + bias|; the int32 sums wrap
 * and end at the exact (acc + bias) · 2^l. A group with any other channel sums unscaled and takes
 * the int64 requantization of mbqm__neon.h (RQ_INT64). SQADD zp, SQXTUN and the clamp follow as
 * in mbqm__neon.h (saturation keeps its side). Lanes past a row's end compute values that are
 * overwritten or never stored. */
#include <stdlib.h>

#include "neon.h"

#define DDQ_ALWAYS_INLINE static inline __attribute__((always_inline))

enum dw_runs { RUNS9B, RUNS9, RUNS3, RUNS2, RUNS1 }; /* longest first: a group takes the largest */
enum dw_rq { RQ_FAST, RQ_INT64 };

/* Channels per group, and the final rounding shift of the fast requantization (an immediate). */
#define DW_G 4
#define DW_R 14

/* Per channel, for C + DW_G channels (the ones past C: zero weights, the fastest modes). */
typedef struct dw_prepared {
    int path;        /* DDQ_CONV_DW3X3: the set's prepared objects start with their path */
    int32_t offset;  /* c */
    int64_t Cp;      /* C + DW_G */
    int8_t *w;       /* [9][Cp]: tap-major, so a group's weights of one tap are one 32-bit load */
    int32_t *bias;   /* RQ_FAST: (bias + (c − zp)·Σw) · 2^l mod 2^32 */
    int32_t *bias1;  /* RQ_INT64: bias + (c − zp)·Σw mod 2^32 */
    int16_t *bias16; /* RUNS9B: bias + (c − zp)·Σw */
    int16_t *scale;  /* 2^l (RQ_FAST channels; 1 otherwise) */
    int32_t *m0;
    int64_t *neg_t;  /* shift − 31 */
    uint8_t *runs;   /* enum dw_runs */
    uint8_t *rq;     /* enum dw_rq */
} dw_prepared;

/* Where everything lies for one op (all of it follows from the shapes). */
typedef struct dw_layout {
    int64_t sy, sx, pt, pl;
    int64_t W, HW, OH, OW;
    int64_t y1, x1;       /* input rows and columns the outputs read */
    int64_t RB;           /* bytes per row of T: Pc pixels × 4 channels */
    int64_t T_bytes;      /* T, slack included */
} dw_layout;

static dw_layout layout_of(const ddq_op *op, const ddq_tensor *xt, const ddq_tensor *yt) {
    dw_layout L;
    const ddq_dw_geometry g = ddq_dw_geometry_of(op, yt);
    L.sy = op->stride[0];
    L.sx = op->stride[1];
    L.pt = op->padding[0];
    L.pl = op->padding[1];
    L.W = xt->shape[3];
    L.HW = xt->shape[2] * xt->shape[3];
    L.OH = yt->shape[2];
    L.OW = yt->shape[3];
    const int64_t H = xt->shape[2];
    L.y1 = H < g.rows - L.pt ? H : g.rows - L.pt;
    L.x1 = L.W < g.cols - L.pl ? L.W : g.cols - L.pl;
    /* a row: every padded column (cols = (OW − 1)·sx + 3), and what the last vector of an output
     * row reads: pixels up to round_up(OW, 4) + 1 (stride 1), or two LD2 of eight pixels from
     * 2·(round_up(OW, 4) − 4) and two further (stride 2) */
    L.RB = (L.sx == 1 ? ddq_round_up(L.OW, 4) + 2 : 2 * ddq_round_up(L.OW, 4) + 4) * DW_G;
    /* the fill writes up to 31 pixels past a row's inside */
    L.T_bytes = ddq_round_up(g.rows * L.RB + 32 * DW_G, 64);
    return L;
}

/* The staging buffer's pixels: the map, and the spill of the last row's last vector. */
static int64_t staged_pixels(const dw_layout *L) { return ddq_round_up(L->OH * L->OW + 4, 16); }

/* base + Σ w·v over taps k0 … k1 − 1 lies inside int16 for every v ∈ [lo, hi]. */
static int fits_int16(const int8_t *w, int k0, int k1, int64_t lo, int64_t hi, int64_t base) {
    int64_t mn = base, mx = base;
    for (int k = k0; k < k1; k++) {
        const int64_t a = w[k] * lo, b = w[k] * hi;
        mn += a < b ? a : b;
        mx += a < b ? b : a;
    }
    return mn >= INT16_MIN && mx <= INT16_MAX;
}

/* The longest runs of taps (all nine with the bias, all nine, rows, pairs, singles) whose sums
 * fit int16. */
static int longest_runs(const int8_t *w, int64_t lo, int64_t hi, int64_t bias) {
    if (fits_int16(w, 0, 9, lo, hi, bias)) return RUNS9B;
    static const int lengths[] = {9, 9, 3, 2};
    for (int r = RUNS9; r < RUNS1; r++) {
        int fit = 1;
        for (int k = 0; k < 9; k += lengths[r]) fit &= fits_int16(w, k, k + lengths[r] < 9 ? k + lengths[r] : 9, lo, hi, 0);
        if (fit) return r;
    }
    return RUNS1;
}

void *ddq_dw_prepare__neon(const ddq_model *model, const ddq_op *op) {
    const ddq_tensor *xt = &model->tensors[op->inputs[0]], *wt = &model->tensors[op->inputs[1]];
    const ddq_tensor *bt = &model->tensors[op->inputs[2]];
    const int64_t C = wt->shape[0], Cp = C + DW_G;
    const size_t n = (size_t)Cp;
    /* one block: the header, then the arrays, widest first so each stays aligned */
    const size_t bytes = sizeof(dw_prepared) + n * (sizeof(int64_t) + 3 * sizeof(int32_t) + 2 * sizeof(int16_t) +
                                                    9 + 2);
    dw_prepared *p = calloc(1, bytes);
    if (!p) return NULL;
    p->path = DDQ_CONV_DW3X3;
    p->offset = ddq_panel_offset(xt, DDQ_OFFSET_CENTRED);
    p->Cp = Cp;
    char *at = (char *)(p + 1);
    p->neg_t = (int64_t *)at, at += n * sizeof(int64_t);
    p->bias = (int32_t *)at, at += n * sizeof(int32_t);
    p->bias1 = (int32_t *)at, at += n * sizeof(int32_t);
    p->m0 = (int32_t *)at, at += n * sizeof(int32_t);
    p->bias16 = (int16_t *)at, at += n * sizeof(int16_t);
    p->scale = (int16_t *)at, at += n * sizeof(int16_t);
    p->w = (int8_t *)at, at += 9 * n;
    p->runs = (uint8_t *)at, at += n;
    p->rq = (uint8_t *)at;
    const int64_t lo = xt->qmin - p->offset, hi = xt->qmax - p->offset;
    const int8_t *w = wt->data;
    const int32_t *bias = bt->data;
    for (int64_t o = C; o < Cp; o++) p->scale[o] = 1;
    for (int64_t o = 0; o < C; o++) {
        int8_t wk[9];
        int64_t sum = 0;
        for (int k = 0; k < 9; k++) {
            wk[k] = w[o * 9 + k];
            p->w[k * Cp + o] = wk[k];
            sum += wk[k];
        }
        const int64_t folded = bias[o] + ((int64_t)p->offset - xt->zero_point) * sum;
        const ddq_multiplier m = op->channel_multipliers[o];
        const int l = DW_R + m.shift;
        p->runs[o] = (uint8_t)longest_runs(wk, lo, hi, folded);
        p->rq[o] = l >= 0 && l <= 14 && (op->channel_bounds[o] << l) <= INT32_MAX ? RQ_FAST : RQ_INT64;
        p->scale[o] = (int16_t)(p->rq[o] == RQ_FAST ? 1 << l : 1);
        p->bias[o] = (int32_t)(uint32_t)((uint64_t)folded * (uint64_t)p->scale[o]); /* wraps to the exact sum */
        p->bias1[o] = (int32_t)(uint32_t)(uint64_t)folded;
        p->bias16[o] = (int16_t)(p->runs[o] == RUNS9B ? folded : 0);
        p->m0[o] = m.m0;
        p->neg_t[o] = (int64_t)m.shift - 31;
    }
    return p;
}

void ddq_dw_release__neon(void *prepared) { free(prepared); }

size_t ddq_dw_scratch_bytes__neon(const ddq_model *model, const ddq_op *op) {
    const dw_layout L = layout_of(op, &model->tensors[op->inputs[0]], &model->tensors[op->output]);
    return (size_t)(L.T_bytes + staged_pixels(&L) * DW_G);
}

/* ------------------------------------------------------------------------------ the fill */

/* 16 bytes of the input from s, of which fewer than 16 (maybe none) remain before x_end. */
static __attribute__((noinline)) uint8x16_t load_tail(const uint8_t *s, const uint8_t *x_end) {
    uint8_t t[16] = {0};
    if (s < x_end) memcpy(t, s, (size_t)(x_end - s));
    return vld1q_u8(t);
}

/* Input rows j0 … j1 − 1 of the group's channels (src[ch] at row j0) into T as x − c, sixteen
 * pixels × four channels per ST4 (input column i at padded column i + pl), then one 64-byte
 * store of pad bytes after the inside; for the rows whose 16-byte loads may reach past x_end
 * (the rest take fill_rows_safe). `sub`: c ≠ 0 (c = 0, codes of up to 7 bits on a zero point 0,
 * are stored as they are). */
DDQ_ALWAYS_INLINE void fill_rows(const dw_layout *L, const uint8_t *const src[DW_G], int64_t j0, int64_t j1,
                                 uint8x16_t c, uint8x16x4_t pad, int8_t *T, const int sub, const uint8_t *x_end) {
    const int64_t x1 = L->x1, RB = L->RB, W = L->W;
    /* local copies: the stores into T may alias src[], which would reload it every row */
    const uint8_t *s0 = src[0], *s1 = src[1], *s2 = src[2], *s3 = src[3];
    uint8_t *row = (uint8_t *)T + (j0 + L->pt) * RB + L->pl * DW_G;
    for (int64_t j = j0; j < j1; j++, row += RB, s0 += W, s1 += W, s2 += W, s3 += W) {
        for (int64_t i = 0; i < x1; i += 16) {
            uint8x16x4_t e;
            for (int ch = 0; ch < DW_G; ch++) {
                const uint8_t *sc = (ch == 0 ? s0 : ch == 1 ? s1 : ch == 2 ? s2 : s3) + i;
                e.val[ch] = sc + 16 <= x_end ? vld1q_u8(sc) : load_tail(sc, x_end);
                if (sub) e.val[ch] = vsubq_u8(e.val[ch], c);
            }
            vst4q_u8(row + i * DW_G, e);
        }
        vst1q_u8_x4(row + x1 * DW_G, pad);
    }
}

/* The loads and stores of one chunk of 16 pixels: four channel rows (post-indexed by `step`),
 * minus c in v16 where `SUB`, one ST4. */
#define DW_FILL_LOADS(step)                                                                        \
    "ld1 {v0.16b}, [%[s0]], " step "\n\t ld1 {v1.16b}, [%[s1]], " step "\n\t"                     \
    "ld1 {v2.16b}, [%[s2]], " step "\n\t ld1 {v3.16b}, [%[s3]], " step "\n\t"
#define DW_FILL_SUB                                                                                \
    "sub v0.16b, v0.16b, v16.16b\n\t sub v1.16b, v1.16b, v16.16b\n\t"                             \
    "sub v2.16b, v2.16b, v16.16b\n\t sub v3.16b, v3.16b, v16.16b\n\t"
#define DW_FILL_CONSTS "dup v4.16b, %w[pad]\n\t mov v5.16b, v4.16b\n\t mov v6.16b, v4.16b\n\t" \
                       "mov v7.16b, v4.16b\n\t dup v16.16b, %w[c]\n\t"
/* one row of one chunk: loads post-indexed to the next row, the ST4 and the pad store to theirs */
#define DW_FILL_ONE(SUB)                                                                           \
    __asm__ volatile(DW_FILL_CONSTS "1:\n\t" DW_FILL_LOADS("%[W]") SUB                             \
                     "st4 {v0.16b-v3.16b}, [%[row]], %[RB]\n\t st1 {v4.16b-v7.16b}, [%[tail]], %[RB]\n\t" \
                     "subs %[n], %[n], #1\n\t b.ne 1b"                                              \
                     : [s0] "+r"(s0), [s1] "+r"(s1), [s2] "+r"(s2), [s3] "+r"(s3), [row] "+r"(row),  \
                       [tail] "+r"(tail), [n] "+r"(rows)                                            \
                     : [W] "r"(W), [RB] "r"(RB), [pad] "r"((uint32_t)pad), [c] "r"((uint32_t)c)       \
                     : "v0", "v1", "v2", "v3", "v4", "v5", "v6", "v7", "v16", "cc", "memory")
/* rows of several chunks: the chunks post-indexed, then each pointer on to the next row */
#define DW_FILL_CHUNKS(SUB)                                                                        \
    __asm__ volatile(DW_FILL_CONSTS "1:\n\t mov %[k], %[chunks]\n\t 2:\n\t" DW_FILL_LOADS("#16") SUB \
                     "st4 {v0.16b-v3.16b}, [%[row]], #64\n\t subs %[k], %[k], #1\n\t b.ne 2b\n\t"  \
                     "st1 {v4.16b-v7.16b}, [%[tail]], %[RB]\n\t add %[s0], %[s0], %[ds]\n\t"       \
                     "add %[s1], %[s1], %[ds]\n\t add %[s2], %[s2], %[ds]\n\t add %[s3], %[s3], %[ds]\n\t" \
                     "add %[row], %[row], %[dr]\n\t subs %[n], %[n], #1\n\t b.ne 1b"                \
                     : [s0] "+r"(s0), [s1] "+r"(s1), [s2] "+r"(s2), [s3] "+r"(s3), [row] "+r"(row),  \
                       [tail] "+r"(tail), [n] "+r"(rows), [k] "=&r"(k)                              \
                     : [chunks] "r"(chunks), [ds] "r"(W - chunks * 16), [dr] "r"(RB - chunks * 64),   \
                       [RB] "r"(RB), [pad] "r"((uint32_t)pad), [c] "r"((uint32_t)c)                  \
                     : "v0", "v1", "v2", "v3", "v4", "v5", "v6", "v7", "v16", "cc", "memory")

/* fill_rows for rows whose loads all lie before x_end, in assembly: GCC keeps the four pad
 * vectors on the stack, reloading them for every row, and addresses every row afresh (15
 * instructions for a row of one chunk where this takes 8). */
static void fill_rows_safe(const dw_layout *L, const uint8_t *const src[DW_G], int64_t j0, int64_t j1, uint8_t c,
                           uint8_t pad, int8_t *T, const int sub) {
    int64_t rows = j1 - j0, k;
    if (rows <= 0) return;
    const int64_t x1 = L->x1, RB = L->RB, W = L->W, chunks = (x1 + 15) / 16;
    const uint8_t *s0 = src[0], *s1 = src[1], *s2 = src[2], *s3 = src[3];
    uint8_t *row = (uint8_t *)T + (j0 + L->pt) * RB + L->pl * DW_G, *tail = row + x1 * DW_G;
    if (chunks == 1 && sub) DW_FILL_ONE(DW_FILL_SUB);
    else if (chunks == 1) DW_FILL_ONE("");
    else if (sub) DW_FILL_CHUNKS(DW_FILL_SUB);
    else DW_FILL_CHUNKS("");
    (void)k;
}
#undef DW_FILL_CHUNKS
#undef DW_FILL_ONE
#undef DW_FILL_CONSTS
#undef DW_FILL_SUB
#undef DW_FILL_LOADS

/* The group's input rows into T: the rows whose loads all lie before x_end, then the others (the
 * group holding the tensor's last channel). src[ch]: the channels' planes, the last real one
 * repeated for channels past C. */
DDQ_ALWAYS_INLINE void fill_group(const dw_layout *L, const uint8_t *const src[DW_G], const uint8_t *x_end,
                                  uint8x16_t c, uint8x16x4_t pad, int8_t *T, const int sub) {
    const int64_t x1 = L->x1, W = L->W, y1 = L->y1;
    const int64_t span = ddq_round_up(x1, 16); /* bytes a row's loads read */
    const uint8_t *last = src[0];
    for (int ch = 1; ch < DW_G; ch++) last = src[ch] > last ? src[ch] : last;
    const int64_t room = (x_end - last) - span; /* row j is safe while j · W ≤ room */
    const int64_t safe_rows = room < 0 ? 0 : room / W + 1 < y1 ? room / W + 1 : y1;
    fill_rows_safe(L, src, 0, safe_rows, vgetq_lane_u8(c, 0), vgetq_lane_u8(pad.val[0], 0), T, sub);
    if (safe_rows == y1) return;
    const uint8_t *rest[DW_G];
    for (int ch = 0; ch < DW_G; ch++) rest[ch] = src[ch] + safe_rows * W;
    fill_rows(L, rest, safe_rows, y1, c, pad, T, sub, x_end);
}

typedef void (*dw_fill_fn)(const dw_layout *L, const uint8_t *const src[DW_G], const uint8_t *x_end, uint8x16_t c,
                           uint8x16x4_t pad, int8_t *T);
static void fill_c(const dw_layout *L, const uint8_t *const src[DW_G], const uint8_t *x_end, uint8x16_t c,
                   uint8x16x4_t pad, int8_t *T) {
    fill_group(L, src, x_end, c, pad, T, 1);
}
static void fill_c0(const dw_layout *L, const uint8_t *const src[DW_G], const uint8_t *x_end, uint8x16_t c,
                    uint8x16x4_t pad, int8_t *T) {
    fill_group(L, src, x_end, c, pad, T, 0);
}

/* ---------------------------------------------------------------------------- the vectors */

/* The output grid of an op. */
typedef struct dw_out {
    int32_t zp, lo, hi;
} dw_out;

/* A group's constants: each lane's channel is its index mod 4. */
typedef struct dw_consts {
    int8x16_t w[9];
    int32x4_t bias;   /* bias · scale (RQ_FAST) or bias (RQ_INT64) */
    int16x8_t bias16; /* RUNS9B */
    int16x8_t scale;
    int32x4_t m0;
    ddq_requant_neon rq; /* RQ_INT64 */
    int16x8_t zp;
    uint8x16_t lo, hi;
} dw_consts;

/* Channels o … o + 3's constants as vectors, built in the function that uses them (byte stores
 * could alias a struct in memory and force reloads). */
DDQ_ALWAYS_INLINE dw_consts consts_of(const dw_prepared *p, int64_t o, const dw_out *out, const int rq) {
    dw_consts q;
    for (int k = 0; k < 9; k++) {
        int32_t w4;
        memcpy(&w4, p->w + k * p->Cp + o, 4);
        q.w[k] = vreinterpretq_s8_s32(vdupq_n_s32(w4));
    }
    q.bias = vld1q_s32((rq == RQ_FAST ? p->bias : p->bias1) + o);
    const int16x4_t b16 = vld1_s16(p->bias16 + o), s4 = rq == RQ_FAST ? vld1_s16(p->scale + o) : vdup_n_s16(1);
    q.bias16 = vcombine_s16(b16, b16);
    q.scale = vcombine_s16(s4, s4);
    q.m0 = vld1q_s32(p->m0 + o);
    if (rq == RQ_INT64) {
        q.rq.m0[0] = q.rq.m0[1] = q.m0;
        q.rq.neg_t[0] = q.rq.neg_t[2] = vld1q_s64(p->neg_t + o);
        q.rq.neg_t[1] = q.rq.neg_t[3] = vld1q_s64(p->neg_t + o + 2);
        q.rq.zp = vdupq_n_s16((int16_t)out->zp);
        q.rq.lo = vdup_n_u8((uint8_t)out->lo);
        q.rq.hi = vdup_n_u8((uint8_t)out->hi);
    }
    q.zp = vdupq_n_s16((int16_t)out->zp);
    q.lo = vdupq_n_u8((uint8_t)out->lo);
    q.hi = vdupq_n_u8((uint8_t)out->hi);
    return q;
}

DDQ_ALWAYS_INLINE int run_ends_at(int k, const int runs) {
    return runs <= RUNS9 ? k == 8 : runs == RUNS3 ? k % 3 == 2 : runs == RUNS2 ? (k & 1) || k == 8 : 1;
}

/* The sums of one vector of 16 outputs while its taps come in: int16 runs (s0: pixels 0–1 of
 * the four channels, s1: pixels 2–3) and the int32 sums they widen into. */
typedef struct dw_acc {
    int16x8_t s0, s1;
    int32x4_t a[4];
} dw_acc;

DDQ_ALWAYS_INLINE void acc_init(dw_acc *c, const dw_consts *q, const int runs) {
    if (runs == RUNS9B) c->s0 = c->s1 = q->bias16;
    else c->a[0] = c->a[1] = c->a[2] = c->a[3] = q->bias;
}

/* SMLAL / SMULL of the low halves, written out: GCC copies the low half of a weight vector into
 * a register of its own (nine more live registers, which spill in the stride-2 loop). */
DDQ_ALWAYS_INLINE int16x8_t smlal_lo(int16x8_t acc, int8x16_t a, int8x16_t b) {
    __asm__("smlal %0.8h, %1.8b, %2.8b" : "+w"(acc) : "w"(a), "w"(b));
    return acc;
}
DDQ_ALWAYS_INLINE int16x8_t smull_lo(int8x16_t a, int8x16_t b) {
    int16x8_t r;
    __asm__("smull %0.8h, %1.8b, %2.8b" : "=w"(r) : "w"(a), "w"(b));
    return r;
}

/* Tap k (taps come in order 0 … 8) of the 16 outputs: its input vector v. */
DDQ_ALWAYS_INLINE void acc_tap(dw_acc *c, int8x16_t v, const int k, const dw_consts *q, const int runs) {
    const int start = runs == RUNS9B ? 0 : k == 0 || run_ends_at(k - 1, runs);
    c->s0 = start ? smull_lo(v, q->w[k]) : smlal_lo(c->s0, v, q->w[k]);
    c->s1 = start ? vmull_high_s8(v, q->w[k]) : vmlal_high_s8(c->s1, v, q->w[k]);
    if (!run_ends_at(k, runs)) return;
    if (runs == RUNS9B) { /* (s + bias) · scale, the sum exact in int16 */
        c->a[0] = vmull_s16(vget_low_s16(c->s0), vget_low_s16(q->scale));
        c->a[1] = vmull_high_s16(c->s0, q->scale);
        c->a[2] = vmull_s16(vget_low_s16(c->s1), vget_low_s16(q->scale));
        c->a[3] = vmull_high_s16(c->s1, q->scale);
    } else {
        c->a[0] = vmlal_s16(c->a[0], vget_low_s16(c->s0), vget_low_s16(q->scale));
        c->a[1] = vmlal_high_s16(c->a[1], c->s0, q->scale);
        c->a[2] = vmlal_s16(c->a[2], vget_low_s16(c->s1), vget_low_s16(q->scale));
        c->a[3] = vmlal_high_s16(c->a[3], c->s1, q->scale);
    }
}

/* The 16 outputs of the summed taps, requantized. `plain`: the output zero point and act_min
 * are 0, so SQXTUN's own saturation at 0 is the lower clamp. */
DDQ_ALWAYS_INLINE uint8x16_t acc_codes(const dw_acc *c, const dw_consts *q, const int rq, const int plain) {
    const int32x4_t *a = c->a;
    if (rq == RQ_INT64)
        return vcombine_u8(ddq_requantize_neon(a[0], a[1], &q->rq), ddq_requantize_neon(a[2], a[3], &q->rq));
    int16x8_t h0 = vqrshrn_high_n_s32(vqrshrn_n_s32(vqdmulhq_s32(a[0], q->m0), DW_R), vqdmulhq_s32(a[1], q->m0), DW_R);
    int16x8_t h1 = vqrshrn_high_n_s32(vqrshrn_n_s32(vqdmulhq_s32(a[2], q->m0), DW_R), vqdmulhq_s32(a[3], q->m0), DW_R);
    if (!plain) {
        h0 = vqaddq_s16(h0, q->zp);
        h1 = vqaddq_s16(h1, q->zp);
    }
    uint8x16_t u = vqmovun_high_s16(vqmovun_s16(h0), h1);
    if (!plain) u = vmaxq_u8(u, q->lo);
    return vminq_u8(u, q->hi);
}

/* The 16 outputs of the nine tap vectors v, requantized. */
DDQ_ALWAYS_INLINE uint8x16_t codes_of(const int8x16_t v[9], const dw_consts *q, const int runs, const int rq,
                                      const int plain) {
    dw_acc c;
    acc_init(&c, q, runs);
    for (int k = 0; k < 9; k++) acc_tap(&c, v[k], k, q, runs);
    return acc_codes(&c, q, rq, plain);
}

/* The three column taps of four output pixels from padded input row `row`, output pixel c0:
 * stride 1, pixels c0 + kx (three loads); stride 2, pixels 2·c0 + kx + {0, 2, 4, 6}: one LD2
 * of eight pixels gives kx = 0 and 1, a second from two pixels further kx = 2. */
DDQ_ALWAYS_INLINE void row_taps(const int8_t *row, int64_t c0, int8x16_t v[3], const int sx) {
    if (sx == 1) {
        for (int kx = 0; kx < 3; kx++) v[kx] = vld1q_s8(row + (c0 + kx) * DW_G);
        return;
    }
    const int32x4x2_t ab = vld2q_s32((const int32_t *)(row + 2 * c0 * DW_G));
    v[0] = vreinterpretq_s8_s32(ab.val[0]);
    v[1] = vreinterpretq_s8_s32(ab.val[1]);
    v[2] = vreinterpretq_s8_s32(vld2q_s32((const int32_t *)(row + (2 * c0 + 2) * DW_G)).val[0]);
}

/* row_taps for stride 2 across from *x, the row's byte 2·c0·4, by two post-indexed LD2: *x
 * moves on by 8 bytes, then back by 40, to the next vector's pixels (c0 − 4). GCC computes
 * each LD2's address with an add of its own (LD2 has no offset form). T is written only by the
 * fill, a call of its own before this function runs, so the loads need no memory operands
 * (which cost an address register each) to stay after those stores. */
DDQ_ALWAYS_INLINE void row_taps_s2_next(const int8_t **x, int64_t step8, int64_t back40, int8x16_t v[3]) {
    int32x4x2_t ab, cd;
    __asm__ volatile("ld2 {%S0.4s, %T0.4s}, [%1], %2" : "=w"(ab), "+r"(*x) : "r"(step8));
    __asm__ volatile("ld2 {%S0.4s, %T0.4s}, [%1], %2" : "=w"(cd), "+r"(*x) : "r"(back40));
    v[0] = vreinterpretq_s8_s32(ab.val[0]);
    v[1] = vreinterpretq_s8_s32(ab.val[1]);
    v[2] = vreinterpretq_s8_s32(cd.val[0]);
}

/* The group's outputs, four pixels per vector, into the staging buffer S: two output rows at a
 * time, whose taps come from sy + 3 input rows (the shared ones loaded once: 12 loads for two
 * vectors instead of 18 with stride 1, 10 instead of 12 LD2 with stride 2), then a last odd row.
 * A vector spills past its row's end onto the next row's start; the pairs run their vectors
 * from the last one back, so that a row's first vector is stored after the spill of the row
 * above. */
DDQ_ALWAYS_INLINE void group_rows(const int8_t *T, const dw_layout *L, const dw_consts *q, uint8_t *S, const int runs,
                                  const int rq, const int plain, const int sy, const int sx) {
    const int64_t OH = L->OH, OW = L->OW, RB = L->RB, last = (OW - 1) / 4 * 4;
    int64_t r = 0;
    for (; r + 2 <= OH; r += 2) {
        const int8_t *x[5]; /* stride 2 across: input row j's pixel 2·c0 */
        for (int j = 0; j < sy + 3; j++) x[j] = T + (sy * r + j) * RB + 2 * last * DW_G;
        uint8_t *s = S + (r * OW + last) * DW_G, *const s0 = S + r * OW * DW_G; /* as in group_rows_s1 */
        for (; s >= s0; s -= 4 * DW_G) {
            const int64_t c0 = (s - s0) / DW_G;
            if (runs > RUNS9) { /* int32 sums besides the int16 ones: all taps loaded first */
                int8x16_t R[5][3], va[9], vb[9];
                for (int j = 0; j < sy + 3; j++) row_taps(T + (sy * r + j) * RB, c0, R[j], sx);
                for (int k = 0; k < 9; k++) va[k] = R[k / 3][k % 3], vb[k] = R[sy + k / 3][k % 3];
                vst1q_u8(s, codes_of(va, q, runs, rq, plain));
                vst1q_u8(s + OW * DW_G, codes_of(vb, q, runs, rq, plain));
                continue;
            }
            /* input row j feeds kernel row j of the upper output row and j − sy of the lower
             * one: taken one row at a time, only three input vectors are live (two vectors'
             * int16 sums, the weights and these fit the registers) */
            dw_acc A, B;
            acc_init(&A, q, runs);
            acc_init(&B, q, runs);
            for (int j = 0; j < sy + 3; j++) {
                int8x16_t v[3];
                if (sx == 2) row_taps_s2_next(&x[j], 2 * DW_G, -10 * DW_G, v);
                else row_taps(T + (sy * r + j) * RB, c0, v, sx);
                for (int kx = 0; kx < 3; kx++) {
                    if (j < 3) acc_tap(&A, v[kx], 3 * j + kx, q, runs);
                    if (j >= sy) acc_tap(&B, v[kx], 3 * (j - sy) + kx, q, runs);
                }
            }
            vst1q_u8(s, acc_codes(&A, q, rq, plain));
            vst1q_u8(s + OW * DW_G, acc_codes(&B, q, rq, plain));
        }
    }
    for (; r < OH; r++)
        for (int64_t c0 = 0; c0 < OW; c0 += 4) {
            int8x16_t R[3][3], v[9];
            for (int j = 0; j < 3; j++) row_taps(T + (sy * r + j) * RB, c0, R[j], sx);
            for (int k = 0; k < 9; k++) v[k] = R[k / 3][k % 3];
            vst1q_u8(S + (r * OW + c0) * DW_G, codes_of(v, q, runs, rq, plain));
        }
}

/* group_rows for stride 1, the rows' taps addressed from one base (GCC's addressing of the
 * general loop costs about 3 % more there). */
DDQ_ALWAYS_INLINE void group_rows_s1(const int8_t *T, const dw_layout *L, const dw_consts *q, uint8_t *S,
                                     const int runs, const int rq, const int plain) {
    const int64_t OH = L->OH, OW = L->OW, RB = L->RB, last = (OW - 1) / 4 * 4;
    int64_t r = 0;
    for (; r + 2 <= OH; r += 2) {
        /* one pointer each into T and S, stepped back a vector at a time, the lower row's store
         * at a fixed offset (GCC otherwise adds the address of each) */
        const int8_t *x = T + r * RB + last * DW_G, *const x0 = T + r * RB;
        uint8_t *s = S + (r * OW + last) * DW_G;
        for (; x >= x0; x -= 4 * DW_G, s -= 4 * DW_G) {
            int8x16_t rows[4][3], va[9], vb[9];
            for (int j = 0; j < 4; j++)
                for (int kx = 0; kx < 3; kx++) rows[j][kx] = vld1q_s8(x + j * RB + kx * DW_G);
            for (int k = 0; k < 9; k++) va[k] = rows[k / 3][k % 3], vb[k] = rows[k / 3 + 1][k % 3];
            vst1q_u8(s, codes_of(va, q, runs, rq, plain));
            vst1q_u8(s + OW * DW_G, codes_of(vb, q, runs, rq, plain));
        }
    }
    for (; r < OH; r++)
        for (int64_t c0 = 0; c0 < OW; c0 += 4) {
            const int8_t *x = T + r * RB + c0 * DW_G;
            int8x16_t v[9];
            for (int k = 0; k < 9; k++) v[k] = vld1q_s8(x + (k / 3) * RB + (k % 3) * DW_G);
            vst1q_u8(S + (r * OW + c0) * DW_G, codes_of(v, q, runs, rq, plain));
        }
}

/* s1: stride 1 both ways, in a function of its own (the other strides' loops, inlined beside
 * it, cost its prologue and registers). */
DDQ_ALWAYS_INLINE void group_vectors(const int8_t *T, const dw_layout *L, const dw_prepared *p, int64_t o,
                                     const dw_out *out, uint8_t *S, const int runs, const int rq, const int plain,
                                     const int s1) {
    const dw_consts q = consts_of(p, o, out, rq);
    if (s1) group_rows_s1(T, L, &q, S, runs, rq, plain);
    else if (L->sy == 2 && L->sx == 2) group_rows(T, L, &q, S, runs, rq, plain, 2, 2);
    else if (L->sy == 1) group_rows(T, L, &q, S, runs, rq, plain, 1, 2);
    else group_rows(T, L, &q, S, runs, rq, plain, 2, 1);
}

typedef void (*dw_vectors_fn)(const int8_t *T, const dw_layout *L, const dw_prepared *p, int64_t o,
                              const dw_out *out, uint8_t *S);
#define DW_VECTORS(runs, rq, plain, s1)                                                                            \
    static void vectors_##runs##_##rq##_##plain##_##s1(const int8_t *T, const dw_layout *L, const dw_prepared *p, \
                                                       int64_t o, const dw_out *out, uint8_t *S) {               \
        group_vectors(T, L, p, o, out, S, runs, rq, plain, s1);                                                    \
    }
#define DW_VECTORS_OF(runs)                                                                         \
    DW_VECTORS(runs, RQ_FAST, 1, 1) DW_VECTORS(runs, RQ_FAST, 0, 1) DW_VECTORS(runs, RQ_INT64, 0, 1) \
    DW_VECTORS(runs, RQ_FAST, 1, 0) DW_VECTORS(runs, RQ_FAST, 0, 0) DW_VECTORS(runs, RQ_INT64, 0, 0)
DW_VECTORS_OF(RUNS9B)
DW_VECTORS_OF(RUNS9)
DW_VECTORS_OF(RUNS3)
DW_VECTORS_OF(RUNS2)
DW_VECTORS_OF(RUNS1)
#undef DW_VECTORS_OF
#undef DW_VECTORS
#define DW_ROW(runs, s1) \
    {vectors_##runs##_RQ_FAST_1_##s1, vectors_##runs##_RQ_FAST_0_##s1, vectors_##runs##_RQ_INT64_0_##s1}
/* [other strides, stride 1][runs][plain fast, fast, int64] */
static const dw_vectors_fn VECTORS[2][5][3] = {
    {DW_ROW(RUNS9B, 0), DW_ROW(RUNS9, 0), DW_ROW(RUNS3, 0), DW_ROW(RUNS2, 0), DW_ROW(RUNS1, 0)},
    {DW_ROW(RUNS9B, 1), DW_ROW(RUNS9, 1), DW_ROW(RUNS3, 1), DW_ROW(RUNS2, 1), DW_ROW(RUNS1, 1)}};
#undef DW_ROW

/* The staged outputs (pixel-major, four channels a pixel) to the planes y[ch] of the group's n
 * channels: sixteen pixels per LD4, then the last sixteen overlapping the ones before. */
DDQ_ALWAYS_INLINE void store_vectors(const uint8_t *S, int64_t pixels, uint8_t *const y[DW_G], const int n) {
    int64_t i = 0;
    for (; i + 16 <= pixels; i += 16) {
        const uint8x16x4_t v = vld4q_u8(S + i * DW_G);
        for (int ch = 0; ch < n; ch++) vst1q_u8(y[ch] + i, v.val[ch]);
    }
    if (i < pixels) {
        const int64_t at = pixels - 16;
        const uint8x16x4_t v = vld4q_u8(S + at * DW_G);
        for (int ch = 0; ch < n; ch++) vst1q_u8(y[ch] + at, v.val[ch]);
    }
}

static void store_group(const uint8_t *S, int64_t pixels, uint8_t *const y[DW_G], int n) {
    if (pixels < 16) {
        for (int64_t i = 0; i < pixels; i++)
            for (int ch = 0; ch < n; ch++) y[ch][i] = S[i * DW_G + ch];
    } else if (n == DW_G) { /* every group but maybe the last: no test per channel */
        /* 32 pixels a step in assembly: two LD4, and each channel's 32 bytes one post-indexed STP
         * (GCC: one LD4 and four indexed stores per 16, and the index's add) */
        int64_t steps = pixels / 32;
        if (steps > 0) {
            const uint8_t *s = S;
            uint8_t *y0 = y[0], *y1 = y[1], *y2 = y[2], *y3 = y[3];
            __asm__ volatile("1:\n\t ld4 {v0.16b-v3.16b}, [%[s]], #64\n\t ld4 {v4.16b-v7.16b}, [%[s]], #64\n\t"
                             "stp q0, q4, [%[y0]], #32\n\t stp q1, q5, [%[y1]], #32\n\t"
                             "stp q2, q6, [%[y2]], #32\n\t stp q3, q7, [%[y3]], #32\n\t"
                             "subs %[n], %[n], #1\n\t b.ne 1b"
                             : [s] "+r"(s), [y0] "+r"(y0), [y1] "+r"(y1), [y2] "+r"(y2), [y3] "+r"(y3),
                               [n] "+r"(steps)
                             :
                             : "v0", "v1", "v2", "v3", "v4", "v5", "v6", "v7", "cc", "memory");
        }
        /* the rest: 16 more, and the last 16 overlapping; with fewer than 16 left (pixels ≥ 32
         * here) those 16 reach back over pixels already stored, rewriting the same codes */
        const int64_t done = pixels / 32 * 32;
        if (done < pixels) {
            uint8_t *const rest[DW_G] = {y[0] + done, y[1] + done, y[2] + done, y[3] + done};
            store_vectors(S + done * DW_G, pixels - done, rest, DW_G);
        }
    } else {
        store_vectors(S, pixels, y, n);
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
    const dw_layout L = layout_of(op, xt, yt);
    const int64_t C = xt->shape[1], HW = L.HW, P = L.OH * L.OW;
    const uint8_t pad = (uint8_t)(xt->zero_point - pp->offset);
    int8_t *T = a->scratch;
    uint8_t *S = (uint8_t *)a->scratch + L.T_bytes;
    memset(T, pad, (size_t)L.T_bytes);
    const uint8_t *x = a->x[0];
    const uint8x16_t cv = vdupq_n_u8((uint8_t)pp->offset);
    const uint8x16x4_t padv = {{vdupq_n_u8(pad), vdupq_n_u8(pad), vdupq_n_u8(pad), vdupq_n_u8(pad)}};
    const dw_fill_fn fill = pp->offset ? fill_c : fill_c0;
    const dw_out out = {yt->zero_point, op->act_min, op->act_max};
    const int plain = out.zp == 0 && out.lo == 0;
    const int s1 = L.sy == 1 && L.sx == 1;
    for (int64_t o = begin; o < end; o += DW_G) {
        const int n = end - o < DW_G ? (int)(end - o) : DW_G;
        const uint8_t *src[DW_G];
        uint8_t *y[DW_G];
        int runs = RUNS9B, rq = RQ_FAST;
        for (int ch = 0; ch < DW_G; ch++) {
            const int64_t oc = o + (ch < n ? ch : n - 1);
            src[ch] = x + oc * HW;
            y[ch] = (uint8_t *)a->y + oc * P;
            /* the channels past the range are computed with the group's modes and not stored */
            if (ch < n) {
                runs = pp->runs[o + ch] > runs ? pp->runs[o + ch] : runs;
                rq = pp->rq[o + ch] > rq ? pp->rq[o + ch] : rq;
            }
        }
        if (L.y1 > 0 && L.x1 > 0) fill(&L, src, x + C * HW, cv, padv, T);
        VECTORS[s1][runs][rq == RQ_INT64 ? 2 : plain ? 0 : 1](T, &L, pp, o, &out, S);
        store_group(S, P, y, n);
    }
}
