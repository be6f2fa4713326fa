/* conv2d with groups = 1 as an int8 GEMM with SDOT (ARMv8.2 dot product): tiles of 8 output
 * channels × 12 pixels (× 8 and × 4 for a panel's last pixels), four taps per SDOT lane.
 *
 * Data (../gemm_plan.h, group 4). The panel holds x − c as int8, four consecutive taps of a
 * pixel in one 32-bit lane, so one 16-byte load gives 4 pixels × 4 taps; ddq_build_panel writes
 * it for a range of pixels (im2col, or an interleaving copy for a plain 1×1). The weights of a
 * block of 8 channels are [KG][8][4]: two 16-byte loads give 8 channels × 4 taps. Per group of
 * four taps the tile does one load of 12 pixels, one of the block's weights and 24 SDOT by
 * element (the weight lane of one channel against three vectors of four pixels): 384 MACs. An
 * accumulator holds one channel's four consecutive pixels, so the epilogue writes the NCHW
 * channel rows directly, without a transpose.
 *
 * Exactness. c makes x − c fit int8 (c = zp where x − zp fits), the padded taps read zp − c and
 * the taps past K are 0 against zero weights, so every lane sums w · (x − c) over the taps; the
 * plan folds (c − zp) · Σw into the bias, and Σ w·(x − c) + bias' ≡ Σ w·(x − zp) + bias (mod
 * 2^32). The accumulators start at bias' and wrap mod 2^32; the exact result lies in int32 (the
 * loader's accumulator bound), so the final lanes equal it. The requantization is the plan's
 * fast form where it proved it exact for every channel (SQDMULH, SRSHL), else the int64 form of
 * ../neon/mbqm__neon.h; the saturating narrows and the clamp are theirs: saturation only moves
 * values that lie beyond the clamp anyway. Output zero point 0 and act_min 0 need no add and
 * no lower clamp (SQXTUN already stops at 0). Pixels the tile computes past the panel's n read
 * pad bytes (or, for a plain 1×1, the next pixels) and are never stored. */
#include "neondot.h"

#define NEONDOT_INLINE static inline __attribute__((always_inline))

static int64_t round_up(int64_t n, int64_t m) { return (n + m - 1) / m * m; }

enum { RQ_INT64, RQ_FAST, RQ_FAST_LSHIFT };

/* What the tiles of one op share. */
typedef struct tile_ctx {
    const ddq_gemm_plan *p;
    int64_t pitch; /* bytes from one group of taps to the next in the panel */
    int64_t P;     /* pixels per output channel plane */
    int16x8_t zp;
    uint8x16_t lo, hi;
} tile_ctx;

/* MBQM of four lanes of one channel: the fast form with that channel's m0, −r and l in every
 * lane, or the int64 form with its m0 and −t. */
NEONDOT_INLINE int32x4_t rq4(int32x4_t v, int32x4_t m0, int32x4_t nr, int32x4_t l, int64x2_t nt, const int mode) {
    if (mode == RQ_INT64) {
        const int64x2_t lo = vrshlq_s64(vmull_s32(vget_low_s32(v), vget_low_s32(m0)), nt);
        const int64x2_t hi = vrshlq_s64(vmull_high_s32(v, m0), nt);
        return vqmovn_high_s64(vqmovn_s64(lo), hi);
    }
    if (mode == RQ_FAST_LSHIFT) v = vshlq_s32(v, l);
    return vrshlq_s32(vqdmulhq_s32(v, m0), nr);
}

/* Stores the first n (1…16) bytes of v. */
NEONDOT_INLINE void store_partial(uint8_t *y, uint8x16_t v, int64_t n) {
    if (n > 8) {
        vst1_u8(y, vget_low_u8(v));
        ddq_store_u8x8_partial(y + 8, vget_high_u8(v), n - 8);
    } else {
        ddq_store_u8x8_partial(y, vget_low_u8(v), n);
    }
}

/* One channel's W pixels (v0 … v2, requantized int32) as codes: + zp, narrowed with saturation,
 * clamped, and `count` of them stored (all W when count == W). */
NEONDOT_INLINE void store_row(const tile_ctx *t, uint8_t *y, int32x4_t v0, int32x4_t v1, int32x4_t v2, const int W,
                              int64_t count, const int addzp, const int clamplo) {
    int16x8_t h0 = vqmovn_high_s32(vqmovn_s32(v0), W > 4 ? v1 : v0);
    if (addzp) h0 = vqaddq_s16(h0, t->zp);
    if (W <= 8) {
        uint8x8_t u = vqmovun_s16(h0);
        if (clamplo) u = vmax_u8(u, vget_low_u8(t->lo));
        u = vmin_u8(u, vget_low_u8(t->hi));
        if (count == W && W == 8) vst1_u8(y, u);
        else ddq_store_u8x8_partial(y, u, count);
        return;
    }
    int16x4_t h1 = vqmovn_s32(v2);
    if (addzp) h1 = vqadd_s16(h1, vget_low_s16(t->zp));
    uint8x16_t u = vqmovun_high_s16(vqmovun_s16(h0), vcombine_s16(h1, vdup_n_s16(0)));
    if (clamplo) u = vmaxq_u8(u, t->lo);
    u = vminq_u8(u, t->hi);
    if (count == 12) {
        vst1_u8(y, vget_low_u8(u));
        vst1q_lane_u32((uint32_t *)(void *)(y + 8), vreinterpretq_u32_u8(u), 2);
    } else {
        store_partial(y, u, count);
    }
}

/* The tile: channels o0 … o0 + 7 (those with their bit set in `mask` are stored) × pixels at
 * xp (W = 4, 8 or 12 columns of the panel; `count` of them stored), y at channel o0's first. */
NEONDOT_INLINE void tile(const tile_ctx *t, const int8_t *xp, const int8_t *wp, int64_t o0, uint8_t *y, const int W,
                         int64_t count, unsigned mask, const int mode, const int addzp, const int clamplo) {
    const ddq_gemm_plan *p = t->p;
    const int64_t pitch = t->pitch;
    const int32_t *b = p->bias + o0; /* the accumulators start at the (folded) biases */
    int32x4_t a00 = vld1q_dup_s32(b + 0), a01 = a00, a02 = a00;
    int32x4_t a10 = vld1q_dup_s32(b + 1), a11 = a10, a12 = a10;
    int32x4_t a20 = vld1q_dup_s32(b + 2), a21 = a20, a22 = a20;
    int32x4_t a30 = vld1q_dup_s32(b + 3), a31 = a30, a32 = a30;
    int32x4_t a40 = vld1q_dup_s32(b + 4), a41 = a40, a42 = a40;
    int32x4_t a50 = vld1q_dup_s32(b + 5), a51 = a50, a52 = a50;
    int32x4_t a60 = vld1q_dup_s32(b + 6), a61 = a60, a62 = a60;
    int32x4_t a70 = vld1q_dup_s32(b + 7), a71 = a70, a72 = a70;
#define DOT(c, wv, lane)                                                   \
    do {                                                                   \
        a##c##0 = vdotq_laneq_s32(a##c##0, x0, wv, lane);                  \
        if (W > 4) a##c##1 = vdotq_laneq_s32(a##c##1, x1, wv, lane);       \
        if (W > 8) a##c##2 = vdotq_laneq_s32(a##c##2, x2, wv, lane);       \
    } while (0)
#pragma GCC unroll 2
    for (int64_t g = 0; g < p->KG; g++) {
        int8x16_t x0, x1, x2;
        if (W == 12) {
            const int8x16x3_t x = vld1q_s8_x3(xp);
            x0 = x.val[0], x1 = x.val[1], x2 = x.val[2];
        } else if (W == 8) {
            const int8x16x2_t x = vld1q_s8_x2(xp);
            x0 = x.val[0], x1 = x.val[1], x2 = x0;
        } else {
            x0 = x1 = x2 = vld1q_s8(xp);
        }
        const int8x16x2_t w = vld1q_s8_x2(wp);
        xp += pitch;
        wp += DDQ_SDOT_CONV_R * DDQ_SDOT_GROUP;
        DOT(0, w.val[0], 0);
        DOT(1, w.val[0], 1);
        DOT(2, w.val[0], 2);
        DOT(3, w.val[0], 3);
        DOT(4, w.val[1], 0);
        DOT(5, w.val[1], 1);
        DOT(6, w.val[1], 2);
        DOT(7, w.val[1], 3);
    }
#undef DOT
    /* loaded after the loop: the byte stores may alias anything read through p */
    const ddq_requant_plan *rq = &p->rq;
    const int32x4_t m0a = vld1q_s32(rq->m0 + o0), m0b = vld1q_s32(rq->m0 + o0 + 4);
    const int32x4_t nra = vld1q_s32(rq->neg_rshift + o0), nrb = vld1q_s32(rq->neg_rshift + o0 + 4);
    const int32x4_t la = mode == RQ_FAST_LSHIFT ? vld1q_s32(rq->lshift + o0) : m0a;
    const int32x4_t lb = mode == RQ_FAST_LSHIFT ? vld1q_s32(rq->lshift + o0 + 4) : m0b;
    const int64_t P = t->P;
    /* a lane index must be a constant expression, hence the macro */
#define ROW(c, m0v, nrv, lv, lane)                                                                   \
    do {                                                                                              \
        if (mask & (1u << (c))) {                                                                     \
            const int32x4_t m = vdupq_laneq_s32(m0v, lane), nr = vdupq_laneq_s32(nrv, lane);          \
            const int32x4_t l = vdupq_laneq_s32(lv, lane);                                            \
            const int64x2_t nt = mode == RQ_INT64 ? vld1q_dup_s64(rq->neg_t + o0 + (c)) : vdupq_n_s64(0); \
            const int32x4_t v0 = rq4(a##c##0, m, nr, l, nt, mode);                                    \
            const int32x4_t v1 = W > 4 ? rq4(a##c##1, m, nr, l, nt, mode) : v0;                       \
            const int32x4_t v2 = W > 8 ? rq4(a##c##2, m, nr, l, nt, mode) : v0;                       \
            store_row(t, y + (c) * P, v0, v1, v2, W, count, addzp, clamplo);                          \
        }                                                                                             \
    } while (0)
    ROW(0, m0a, nra, la, 0);
    ROW(1, m0a, nra, la, 1);
    ROW(2, m0a, nra, la, 2);
    ROW(3, m0a, nra, la, 3);
    ROW(4, m0b, nrb, lb, 0);
    ROW(5, m0b, nrb, lb, 1);
    ROW(6, m0b, nrb, lb, 2);
    ROW(7, m0b, nrb, lb, 3);
#undef ROW
}

/* The common tile, straight-line: all 8 channels and 12 pixels stored, the fast requantization. */
#define FULL(name, lsh, addzp, clamplo)                                                              \
    static void name(const tile_ctx *t, const int8_t *xp, const int8_t *wp, int64_t o0, uint8_t *y) { \
        tile(t, xp, wp, o0, y, 12, 12, 0xffu, (lsh) ? RQ_FAST_LSHIFT : RQ_FAST, addzp, clamplo);      \
    }
FULL(full_000, 0, 0, 0)
FULL(full_001, 0, 0, 1)
FULL(full_010, 0, 1, 0)
FULL(full_011, 0, 1, 1)
FULL(full_100, 1, 0, 0)
FULL(full_101, 1, 0, 1)
FULL(full_110, 1, 1, 0)
FULL(full_111, 1, 1, 1)
#undef FULL

typedef void (*full_fn)(const tile_ctx *, const int8_t *, const int8_t *, int64_t, uint8_t *);
static const full_fn FULL_TILES[8] = {full_000, full_001, full_010, full_011, full_100, full_101, full_110, full_111};

/* Any tile: a W-pixel tile with some pixels or channels not stored, or the int64 requantization. */
#define ANY(W)                                                                                          \
    static void any_##W(const tile_ctx *t, const int8_t *xp, const int8_t *wp, int64_t o0, uint8_t *y, \
                        int64_t count, unsigned mask, int mode) {                                      \
        if (mode == RQ_INT64) tile(t, xp, wp, o0, y, W, count, mask, RQ_INT64, 1, 1);                   \
        else if (mode == RQ_FAST) tile(t, xp, wp, o0, y, W, count, mask, RQ_FAST, 1, 1);                \
        else tile(t, xp, wp, o0, y, W, count, mask, RQ_FAST_LSHIFT, 1, 1);                              \
    }
ANY(4)
ANY(8)
ANY(12)
#undef ANY

void ddq_conv_gemm__neondot(const ddq_op_args *a, int64_t begin, int64_t end) {
    const ddq_gemm_plan *p = ((const ddq_sdot_gemm *)a->prepared)->plan;
    const ddq_tensor *yt = a->out;
    const ddq_op *op = a->op;
    uint8_t *y = a->y;
    const int64_t P = yt->shape[2] * yt->shape[3], PP = p->panel_pixels;
    int8_t *panel = a->scratch;
    int8_t *rows = panel + round_up(p->KG * PP * DDQ_SDOT_GROUP, 64);
    const tile_ctx t = {p, PP * DDQ_SDOT_GROUP, P, vdupq_n_s16((int16_t)yt->zero_point),
                        vdupq_n_u8((uint8_t)op->act_min), vdupq_n_u8((uint8_t)op->act_max)};
    const int mode = !p->rq.fast ? RQ_INT64 : p->rq.lshift_any ? RQ_FAST_LSHIFT : RQ_FAST;
    const full_fn full = FULL_TILES[(mode == RQ_FAST_LSHIFT) * 4 + (yt->zero_point != 0) * 2 + (op->act_min > 0)];
    const int64_t wblock = p->KG * DDQ_SDOT_CONV_R * DDQ_SDOT_GROUP; /* weight bytes per block */
    for (int64_t p0 = 0; p0 < P; p0 += PP) {
        const int64_t n = P - p0 < PP ? P - p0 : PP;
        ddq_build_panel(p, op, a->in[0], a->in[1], yt, a->x[0], p0, n, panel, rows);
        for (int64_t o0 = begin / DDQ_SDOT_CONV_R * DDQ_SDOT_CONV_R; o0 < end; o0 += DDQ_SDOT_CONV_R) {
            const int8_t *wb = p->w + o0 / DDQ_SDOT_CONV_R * wblock;
            const int64_t ob = o0 > begin ? o0 : begin;
            const int64_t oe = o0 + DDQ_SDOT_CONV_R < end ? o0 + DDQ_SDOT_CONV_R : end;
            const unsigned mask = ((1u << (oe - o0)) - 1) & ~((1u << (ob - o0)) - 1);
            uint8_t *yb = y + o0 * P + p0;
            int64_t j = 0;
            if (mask == 0xffu && mode != RQ_INT64)
                for (; n - j >= 12; j += 12) full(&t, panel + j * DDQ_SDOT_GROUP, wb, o0, yb + j);
            /* The rest, 12 pixels at a time, the last 1–8 with a narrower tile. Every tile's
             * columns lie below round_up(n, 8), which the panel fills. */
            while (j < n) {
                const int64_t rest = n - j, W = rest > 8 ? 12 : rest > 4 ? 8 : 4;
                const int64_t count = rest < W ? rest : W;
                const int8_t *xp = panel + j * DDQ_SDOT_GROUP;
                if (W == 12) any_12(&t, xp, wb, o0, yb + j, count, mask, mode);
                else if (W == 8) any_8(&t, xp, wb, o0, yb + j, count, mask, mode);
                else any_4(&t, xp, wb, o0, yb + j, count, mask, mode);
                j += count;
            }
        }
    }
}
