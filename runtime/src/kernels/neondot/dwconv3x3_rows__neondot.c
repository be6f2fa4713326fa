/* Depthwise 3×3 conv2d with stride 1 (groups = C = O, any padding) with SDOT, channel by channel
 * on the NCHW rows: no interleaving of channels on the way in or out.
 *
 * The products. An SDOT lane sums four byte products. A window of four input columns
 * x[c … c + 3] of one row serves two outputs of the kernel row ky: the pixel that reads columns
 * c … c + 2 with the weights A = (w[ky][0], w[ky][1], w[ky][2], 0), and the next one, which reads
 * c + 1 … c + 3, with B = (0, w[ky][0], w[ky][1], w[ky][2]). Windows two columns apart thus give
 * the even outputs of a row in one accumulator and the odd ones in another, and one TBL builds
 * four windows (eight outputs) from the table registers loaded at the chunk's first column: per
 * eight outputs and kernel row, a TBL and two SDOT by element (A and B hold the three kernel
 * rows as their 32-bit elements 0 … 2). A chunk is 16 outputs of a row (two TBL vectors of
 * windows, 17 input bytes from two table registers); a row's last chunk has 1 … 16, of one
 * vector where 8 suffice. A pass computes four output rows, which share their input rows (six
 * loads for four rows); rows of a single chunk take passes of two (four would spill
 * accumulators). Chunks go from right to left, so a chunk that stores all its lanes past a row's
 * end writes over the next row's start, which a later chunk stores; past the map they land on the
 * next channel's plane, stored later by the same thread, so only the range's last channel stores
 * exactly.
 *
 * The input. Each channel's plane is copied into a buffer of rows with zero rows above and below
 * as its vertical padding, as int8 x − zp (the support check requires it to fit int8), so a
 * padded tap reads 0 and the bias needs no correction. The left and right padding are TBL
 * indices out of range (0xFF), which read 0 too. The buffer's slack before and after its rows
 * keeps every table load inside it.
 *
 * The requantization is the conv GEMM's int16 form (conv_gemm_6x16c4__neondot.c, RQ_FAST16 and
 * S1 … S3): SQDMULH by the channel's m0, the narrow to int16 (SQSHRN #a, a floor by 2^a with
 * saturation, a = 0 … 3 for the layer), the remaining rounding shift r − a ≤ 7 as SQRDMULH by
 * 2^(15 − r + a), then + zp, SQXTUN, a TBL that interleaves the even and odd outputs, and the
 * clamp. The support check requires what that needs: the plan's fast form for every channel
 * without a left shift, and one a for all channels. Stride 2 stays with the neon set's kernel:
 * its windows serve one output each, and the plane to copy is four times the map (MobileNetV2's
 * 112² → 56² layer under qemu, cortex-a76: 1.25 against 1.03 M instructions). */
#include <stdlib.h>

#include "neondot.h"

#define DWS_INLINE static inline __attribute__((always_inline))
#define DWS_HEAD 64 /* buffer bytes before the first row (reads from column −pl on; pl ≤ 16) */
#define DWS_TAIL 64 /* and after the last: a table load reads 32 bytes from a chunk's start */
/* Maps at most this wide stay with the neon set's kernel, which puts four channels side by side:
 * here a row's one vector of windows would compute 8 outputs for 4 or fewer. (7 × 7 maps gain:
 * 0.259 against 0.263 M instructions for 960 channels at 4 bits under qemu, cortex-a76.) */
#define DWS_MIN_WIDTH 4

/* The TBL indices of a chunk's two vectors of windows: lane q of vector v (outputs 8v + 2q and
 * 8v + 2q + 1 of the chunk) holds bytes 8v + 2q + 0 … 3 of the tables, 0xFF (zero) where a byte
 * is a padded column. */
typedef struct dws_indices {
    uint8_t v[2][16];
} dws_indices;

struct ddq_sdot_dw {
    int path;  /* DDQ_DW3X3_SDOT */
    int a;     /* the narrow's floor shift */
    int64_t H, W, OH, OW, pt, pl;
    int64_t rows;   /* buffer rows: the padded rows that the passes over the output rows read */
    int64_t chunks; /* per output row: chunks − 1 of 16 outputs, then one of last_count */
    int64_t last_count;
    dws_indices first, mid, last; /* chunk 0 (of several), the others but the last, the last */
    int32_t zp;
    int8_t *w;      /* [C][2][16]: A, then B, each kernel row one 32-bit element, then 0 */
    int32_t *bias;  /* [C] */
    int32_t *m0;    /* [C] */
    int16_t *k16;   /* [C]: 2^(15 − r + a) */
};

/* The buffer: DWS_HEAD, rows of W, DWS_TAIL. A pass over four output rows reads six rows; the
 * last pass computes up to 4 rows, some past the map (for a channel other than the range's last
 * stored onto the next channel's plane, which is stored later). */
static int64_t buffer_rows(int64_t OH) { return ddq_round_up(OH, 4) + 2; }
static size_t buffer_bytes(int64_t rows, int64_t W) { return (size_t)(DWS_HEAD + rows * W + DWS_TAIL); }

/* The indices of the chunk starting at output column p0 with n outputs; returns 0 when a window
 * byte that an output reads is a padded column. */
static int chunk_indices(const ddq_sdot_dw *d, int64_t p0, int64_t n, dws_indices *out) {
    int inside = 1;
    memset(out, 0xFF, sizeof *out);
    for (int64_t j = 0; j < n; j += 2) {
        for (int b = 0; b < 4; b++) {
            const int64_t col = p0 + j - d->pl + b;
            const int read = b < 3 || j + 1 < n; /* byte 3 only for the odd output */
            if (col < 0 || col >= d->W) inside &= !read;
            else out->v[j / 8][(j % 8) / 2 * 4 + b] = (uint8_t)(j + b);
        }
    }
    return inside;
}

ddq_sdot_dw *ddq_dw_prepare__neondot(const ddq_model *model, const ddq_op *op) {
    const ddq_tensor *xt = &model->tensors[op->inputs[0]], *wt = &model->tensors[op->inputs[1]];
    const ddq_tensor *bt = &model->tensors[op->inputs[2]], *yt = &model->tensors[op->output];
    /* x − zp must fit int8; stride 1; wider than DWS_MIN_WIDTH; paddings the buffer's slack covers */
    if (xt->qmax - xt->zero_point > 127 || xt->zero_point - xt->qmin > 128 || op->stride[0] != 1 ||
        yt->shape[3] <= DWS_MIN_WIDTH ||
        op->stride[1] != 1 || op->padding[0] > 16 || op->padding[1] > 16 || op->padding[2] > 16 ||
        op->padding[3] > 16)
        return NULL;
    const int64_t C = wt->shape[0];
    ddq_requant_plan rq = {0};
    const int ok = ddq_requant_plan_init(&rq, op->channel_multipliers, op->channel_bounds, C);
    const int a = ok ? ddq_sdot_round16_shift(&rq, C) : -1;
    ddq_sdot_dw *d = NULL;
    if (ok && rq.fast && !rq.lshift_any && a >= 0) d = calloc(1, sizeof *d);
    if (d) {
        d->path = DDQ_DW3X3_SDOT;
        d->a = a;
        d->H = xt->shape[2];
        d->W = xt->shape[3];
        d->OH = yt->shape[2];
        d->OW = yt->shape[3];
        d->pt = op->padding[0];
        d->pl = op->padding[1];
        d->rows = buffer_rows(d->OH);
        d->chunks = (d->OW + 15) / 16;
        d->last_count = d->OW - (d->chunks - 1) * 16;
        d->zp = xt->zero_point;
        chunk_indices(d, 0, 16, &d->first);
        chunk_indices(d, 16, 16, &d->mid);
        chunk_indices(d, (d->chunks - 1) * 16, d->last_count, &d->last);
        /* every chunk between the first and the last reads inside the row (mid's indices) */
        dws_indices check;
        for (int64_t j = 1; j + 1 < d->chunks; j++) {
            if (!chunk_indices(d, j * 16, 16, &check)) {
                free(d);
                d = NULL;
                break;
            }
        }
    }
    if (d) {
        d->w = aligned_alloc(64, (size_t)ddq_round_up(C * 32, 64));
        d->bias = malloc((size_t)C * sizeof *d->bias);
        d->m0 = malloc((size_t)C * sizeof *d->m0);
        d->k16 = malloc((size_t)C * sizeof *d->k16);
        if (!d->w || !d->bias || !d->m0 || !d->k16) {
            ddq_dw_release__neondot(d);
            d = NULL;
        }
    }
    if (d) {
        const int8_t *w = wt->data;
        const int32_t *bias = bt->data;
        memset(d->w, 0, (size_t)ddq_round_up(C * 32, 64));
        for (int64_t o = 0; o < C; o++) {
            for (int k = 0; k < 9; k++) {
                d->w[o * 32 + k / 3 * 4 + k % 3] = w[o * 9 + k];          /* A */
                d->w[o * 32 + 16 + k / 3 * 4 + k % 3 + 1] = w[o * 9 + k]; /* B */
            }
            d->bias[o] = bias[o];
            d->m0[o] = rq.m0[o];
            d->k16[o] = ddq_sdot_k16_of(&rq, o, a);
        }
    }
    ddq_requant_plan_free(&rq);
    return d;
}

void ddq_dw_release__neondot(ddq_sdot_dw *d) {
    if (!d) return;
    free(d->w);
    free(d->bias);
    free(d->m0);
    free(d->k16);
    free(d);
}

size_t ddq_dw_scratch_bytes__neondot(const ddq_model *model, const ddq_op *op) {
    const ddq_tensor *xt = &model->tensors[op->inputs[0]], *yt = &model->tensors[op->output];
    return buffer_bytes(buffer_rows(yt->shape[2]), xt->shape[3]);
}

/* What a row's requantization takes from the op, and from the channel. */
typedef struct dws_out {
    int16x8_t zp;
    uint8x16_t lo, hi;
    uint8x16_t interleave[2]; /* INTERLEAVE */
} dws_out;
typedef struct dws_channel {
    int8x16_t wa, wb;
    int32x4_t bias, m0;
    int16x8_t k16;
} dws_channel;

/* The first n (1 … 16) bytes of u. */
DWS_INLINE void store_partial16(uint8_t *y, uint8x16_t u, int64_t n) {
    if (n == 16) {
        vst1q_u8(y, u);
        return;
    }
    uint8x8_t v = vget_low_u8(u);
    if (n >= 8) {
        vst1_u8(y, v);
        y += 8;
        n -= 8;
        v = vget_high_u8(u);
    }
    if (n > 0) ddq_store_u8x8_partial(y, v, n);
}

/* Interleaving the even and odd outputs: of one vector of windows, the int16 lanes 0 … 3 (even
 * outputs) and 4 … 7 (odd ones) before the narrow to bytes; of two, bytes 0 … 7 and 8 … 15 after
 * it. */
static const uint8_t INTERLEAVE[2][16] = {{0, 1, 8, 9, 2, 3, 10, 11, 4, 5, 12, 13, 6, 7, 14, 15},
                                          {0, 8, 1, 9, 2, 10, 3, 11, 4, 12, 5, 13, 6, 14, 7, 15}};

/* The int32 sums of one channel's row (e0, e1: even outputs, o0, o1: odd ones; the second of
 * each with NV = 2), requantized (module comment), `count` of them stored at y. */
#define NARROW_A(v) \
    (A == 1 ? vqshrn_n_s32(v, 1) : A == 2 ? vqshrn_n_s32(v, 2) : A == 3 ? vqshrn_n_s32(v, 3) : vqmovn_s32(v))
/* the rounding shift in int16 lanes, + zp */
#define ROUND16(h) (PLAIN ? vqrdmulhq_s16((h), k->k16) : vqaddq_s16(vqrdmulhq_s16((h), k->k16), o.zp))
DWS_INLINE void store_row(uint8_t *y, int64_t count, const int NV, const int A, const int PLAIN, int32x4_t e0,
                          int32x4_t e1, int32x4_t o0, int32x4_t o1, const dws_channel *k, dws_out o) {
    e0 = vqdmulhq_s32(e0, k->m0);
    o0 = vqdmulhq_s32(o0, k->m0);
    if (NV == 1) {
        (void)e1, (void)o1;
        int16x8_t h = ROUND16(vcombine_s16(NARROW_A(e0), NARROW_A(o0)));
        h = vreinterpretq_s16_u8(vqtbl1q_u8(vreinterpretq_u8_s16(h), o.interleave[0]));
        uint8x8_t u = vqmovun_s16(h);
        if (!PLAIN) u = vmax_u8(u, vget_low_u8(o.lo));
        u = vmin_u8(u, vget_low_u8(o.hi));
        ddq_store_u8x8_partial(y, u, count);
        return;
    }
    e1 = vqdmulhq_s32(e1, k->m0);
    o1 = vqdmulhq_s32(o1, k->m0);
    const int16x8_t he = ROUND16(vcombine_s16(NARROW_A(e0), NARROW_A(e1)));
    const int16x8_t ho = ROUND16(vcombine_s16(NARROW_A(o0), NARROW_A(o1)));
    uint8x16_t u = vqtbl1q_u8(vqmovun_high_s16(vqmovun_s16(he), ho), o.interleave[1]);
    if (!PLAIN) u = vmaxq_u8(u, o.lo);
    u = vminq_u8(u, o.hi);
    store_partial16(y, u, count);
}
#undef ROUND16
#undef NARROW_A

/* One chunk of ROWS (2 or 4) output rows: NV window vectors (8·NV outputs of each row), input
 * rows r, r + W, … (ROWS + 2 of them) from the chunk's first column on, indices ix0, ix1; output
 * row i at y + i·OW. With EXACT, `count` outputs of each of the first `valid` rows are stored;
 * else all 8·NV of every row (the bytes past `count` are the next row's, stored later). */
DWS_INLINE void chunk(const int8_t *r, int64_t W, uint8x16_t ix0, uint8x16_t ix1, uint8_t *y, int64_t OW,
                      int64_t count, int64_t valid, const int ROWS, const int NV, const int EXACT, const int A,
                      const int PLAIN, const dws_channel *k, dws_out o) {
    /* output row i: even outputs ei0 (and ei1), odd ones oi0 (oi1) */
    int32x4_t e00 = k->bias, e01 = k->bias, o00 = k->bias, o01 = k->bias;
    int32x4_t e10 = k->bias, e11 = k->bias, o10 = k->bias, o11 = k->bias;
    int32x4_t e20 = k->bias, e21 = k->bias, o20 = k->bias, o21 = k->bias;
    int32x4_t e30 = k->bias, e31 = k->bias, o30 = k->bias, o31 = k->bias;
    int8x16_t d0, d1 = vdupq_n_s8(0);
    /* the windows of input row p: 9 bytes (one table register) for one vector, 17 for two */
#define WINDOWS(p)                                   \
    do {                                             \
        if (NV == 1) {                               \
            d0 = vqtbl1q_s8(vld1q_s8(p), ix0);       \
        } else {                                     \
            const int8x16x2_t t = vld1q_s8_x2(p);    \
            d0 = vqtbl2q_s8(t, ix0);                 \
            d1 = vqtbl2q_s8(t, ix1);                 \
        }                                            \
    } while (0)
    /* output row `row` += the windows · kernel row ky (even outputs: A, odd: B) */
#define DOTS(row, ky)                                                      \
    do {                                                                   \
        if ((row) < ROWS) {                                                \
            e##row##0 = vdotq_laneq_s32(e##row##0, d0, k->wa, ky);         \
            o##row##0 = vdotq_laneq_s32(o##row##0, d0, k->wb, ky);         \
            if (NV > 1) e##row##1 = vdotq_laneq_s32(e##row##1, d1, k->wa, ky); \
            if (NV > 1) o##row##1 = vdotq_laneq_s32(o##row##1, d1, k->wb, ky); \
        }                                                                  \
    } while (0)
    WINDOWS(r);
    DOTS(0, 0);
    WINDOWS(r + W);
    DOTS(0, 1);
    DOTS(1, 0);
    WINDOWS(r + 2 * W);
    DOTS(0, 2);
    DOTS(1, 1);
    DOTS(2, 0);
    WINDOWS(r + 3 * W);
    DOTS(1, 2);
    DOTS(2, 1);
    DOTS(3, 0);
    if (ROWS == 4) {
        WINDOWS(r + 4 * W);
        DOTS(2, 2);
        DOTS(3, 1);
        WINDOWS(r + 5 * W);
        DOTS(3, 2);
    }
#undef DOTS
#undef WINDOWS
    const int64_t n = EXACT ? count : 8 * NV;
    store_row(y, n, NV, A, PLAIN, e00, e01, o00, o01, k, o);
    if (!EXACT || valid > 1) store_row(y + OW, n, NV, A, PLAIN, e10, e11, o10, o11, k, o);
    if (ROWS == 4 && (!EXACT || valid > 2)) store_row(y + 2 * OW, n, NV, A, PLAIN, e20, e21, o20, o21, k, o);
    if (ROWS == 4 && (!EXACT || valid > 3)) store_row(y + 3 * OW, n, NV, A, PLAIN, e30, e31, o30, o31, k, o);
}

/* One pass over ROWS output rows from y on (input rows from r at column −pl on), its chunks
 * from right to left: a chunk's stores past a row's end, with !EXACT, land on the next row's
 * start, which a later chunk (or pass) stores. A channel's last pass stores exactly, `valid`
 * rows. */
DWS_INLINE void pass(const int8_t *r, int64_t W, uint8_t *y, int64_t OW, int64_t valid, int64_t chunks,
                     int64_t last_count, const uint8x16_t *ix, const int ROWS, const int EXACT, const int A,
                     const int PLAIN, const dws_channel *k, dws_out o) {
    int64_t j = chunks - 1;
    if (last_count > 8)
        chunk(r + j * 16, W, ix[4], ix[5], y + j * 16, OW, last_count, valid, ROWS, 2, EXACT, A, PLAIN, k, o);
    else
        chunk(r + j * 16, W, ix[4], ix[5], y + j * 16, OW, last_count, valid, ROWS, 1, EXACT, A, PLAIN, k, o);
    if (j == 0) return;
    for (j--; j > 0; j--)
        chunk(r + j * 16, W, ix[2], ix[3], y + j * 16, OW, 16, valid, ROWS, 2, EXACT, A, PLAIN, k, o);
    chunk(r, W, ix[0], ix[1], y, OW, 16, valid, ROWS, 2, EXACT, A, PLAIN, k, o);
}

/* The shapes of a row: one chunk of one vector of windows (maps up to 8 wide), one chunk of two
 * (up to 16), several chunks. */
enum { ONE_NARROW = 1, ONE_WIDE = 2, SEVERAL = 3 };

/* Channels [begin, end) of the op, for one narrow shift, epilogue and row shape. */
DWS_INLINE void channels(const ddq_sdot_dw *d, const ddq_op_args *args, int64_t begin, int64_t end, const int A,
                         const int PLAIN, const int SHAPE) {
    /* read once: the stores below may alias anything read through d */
    const int64_t H = d->H, W = d->W, OH = d->OH, OW = d->OW, HW = H * W;
    const int64_t chunks = d->chunks, last_count = d->last_count, zp = d->zp;
    const size_t bytes_total = buffer_bytes(d->rows, W);
    int8_t *buf = (int8_t *)args->scratch + DWS_HEAD; /* row 0 of the buffer */
    memset(args->scratch, 0, bytes_total);
    const int64_t row0 = d->pt < d->rows ? d->pt : d->rows;        /* the plane's first row in the buffer */
    const int64_t nrows = H < d->rows - row0 ? H : d->rows - row0; /* and how many of its rows it holds */
    const int64_t bytes = nrows * W;
    int8_t *dst = buf + row0 * W;
    const dws_out o = {vdupq_n_s16((int16_t)args->out->zero_point), vdupq_n_u8((uint8_t)args->op->act_min),
                       vdupq_n_u8((uint8_t)args->op->act_max), {vld1q_u8(INTERLEAVE[0]), vld1q_u8(INTERLEAVE[1])}};
    const uint8x16_t ix[6] = {vld1q_u8(d->first.v[0]), vld1q_u8(d->first.v[1]), vld1q_u8(d->mid.v[0]),
                              vld1q_u8(d->mid.v[1]),   vld1q_u8(d->last.v[0]),  vld1q_u8(d->last.v[1])};
    const int8_t *w = d->w + begin * 32;
    const int32_t *bias = d->bias + begin, *m0 = d->m0 + begin;
    const int16_t *k16 = d->k16 + begin;
    const uint8_t *x = args->x[0] + begin * HW;
    uint8_t *y = (uint8_t *)args->y + begin * OH * OW;
    for (int64_t c = begin; c < end; c++, w += 32, bias++, m0++, k16++, x += HW) {
        ddq_offset_copy(dst, x, bytes, (uint8_t)zp);
        const dws_channel k = {vld1q_s8(w), vld1q_s8(w + 16), vld1q_dup_s32(bias), vld1q_dup_s32(m0),
                               vld1q_dup_s16(k16)};
        const int8_t *r = buf - d->pl;
        int64_t oy = 0;
        /* Only the range's last channel stores exactly: the others' stores past a row's end or
         * past the map land on the next channel's plane, which this thread stores later. Rows of
         * one chunk take passes of two rows (four would spill accumulators). */
        const int64_t exact_rows = c + 1 == end ? (SHAPE == SEVERAL ? 4 : 2) : 0;
        for (; OH - oy > exact_rows; oy += 2 * (1 + (SHAPE == SEVERAL)), r += 2 * (1 + (SHAPE == SEVERAL)) * W,
                                     y += 2 * (1 + (SHAPE == SEVERAL)) * OW) {
            if (SHAPE == SEVERAL) pass(r, W, y, OW, 4, chunks, last_count, ix, 4, 0, A, PLAIN, &k, o);
            else chunk(r, W, ix[4], ix[5], y, OW, last_count, 2, 2, SHAPE, 0, A, PLAIN, &k, o);
        }
        if (exact_rows) { /* the last 1 … 4 rows */
            const int64_t left = OH - oy;
            if (left > 2) pass(r, W, y, OW, left, chunks, last_count, ix, 4, 1, A, PLAIN, &k, o);
            else pass(r, W, y, OW, left, chunks, last_count, ix, 2, 1, A, PLAIN, &k, o);
        }
        y += (OH - oy) * OW;
    }
}

/* One function per narrow shift, epilogue (PLAIN: zp 0, act_min 0) and row shape. */
typedef void (*channels_fn)(const ddq_sdot_dw *, const ddq_op_args *, int64_t, int64_t);
#define CHANNELS(A, PLAIN, SHAPE)                                                                                 \
    static void channels_##A##PLAIN##SHAPE(const ddq_sdot_dw *d, const ddq_op_args *a, int64_t b, int64_t e) { \
        channels(d, a, b, e, A, PLAIN, SHAPE);                                                                    \
    }
#define CHANNELS_P(A, PLAIN) CHANNELS(A, PLAIN, 1) CHANNELS(A, PLAIN, 2) CHANNELS(A, PLAIN, 3)
#define CHANNELS_A(A) CHANNELS_P(A, 0) CHANNELS_P(A, 1)
CHANNELS_A(0)
CHANNELS_A(1)
CHANNELS_A(2)
CHANNELS_A(3)
#undef CHANNELS_A
#undef CHANNELS_P
#undef CHANNELS
#define FNS_P(A, P) {channels_##A##P##1, channels_##A##P##2, channels_##A##P##3}
#define FNS_A(A) {FNS_P(A, 0), FNS_P(A, 1)}
static const channels_fn CHANNEL_FNS[4][2][3] = {FNS_A(0), FNS_A(1), FNS_A(2), FNS_A(3)};
#undef FNS_A
#undef FNS_P

void ddq_dwconv3x3__neondot(const ddq_op_args *a, int64_t begin, int64_t end) {
    const ddq_sdot_dw *d = a->prepared;
    const int plain = a->out->zero_point == 0 && a->op->act_min == 0;
    const int shape = d->chunks > 1 ? SEVERAL : d->last_count > 8 ? ONE_WIDE : ONE_NARROW;
    CHANNEL_FNS[d->a][plain][shape - 1](d, a, begin, end);
}
