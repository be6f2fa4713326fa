/* conv2d with groups = 1 as an int8 GEMM with SDOT (ARMv8.2 dot product): tiles of 6 output
 * channels × 16 pixels (× 8, × 4 and a one-pixel GEMV for a panel's last pixels), four taps per
 * SDOT lane.
 *
 * Layout (../gemm_plan.h, group 4, blocks of 6 channels). The panel holds x − c as int8, four
 * consecutive taps of a pixel in one 32-bit lane, in tiles of 16 pixels whose groups of taps
 * follow one another ([tile][KG][16][4], plan->tiled), so one post-incremented LD1 of four
 * vectors gives a tile's 16 pixels × 4 taps of the next group. ddq_build_panel writes it for a
 * range of pixels (im2col, or an interleaving copy straight from the rows of a plain 1×1). The
 * weights of a block are [KG][6][4], 24 bytes per group, so one LD1 of three vectors holds two
 * groups. Per two groups a tile does that load, two of pixels and 48 SDOT by element (a
 * channel's four weights, one 32-bit lane, against four vectors of four pixels): 768
 * multiply-adds in 53 instructions with the loop's. The register file bounds the tile: 24
 * accumulators, 4 pixel and 3 weight vectors of 32. An accumulator holds four consecutive
 * pixels of one channel, so the epilogue writes each NCHW channel row with one 16-byte store and
 * no transpose; six channels of 16 pixels spend fewer instructions per output than eight of 12
 * (one store per row, no 4-byte remainder). A last block of 2 or 4 channels computes only those.
 *
 * Exactness. c makes x − c fit int8 (c = zp where x − zp fits), padded taps read zp − c and
 * taps past K are 0 against zero weights, so every lane sums w · (x − c); the plan folds
 * (c − zp) · Σw into the bias, and Σ w·(x − c) + bias' ≡ Σ w·(x − zp) + bias (mod 2^32). The
 * accumulators start at bias' and wrap mod 2^32; the exact result lies in int32 (the loader's
 * accumulator bound), so the final lanes equal it. The requantization is the plan's fast form
 * where it proved it exact for every channel (SQDMULH, then the rounding shift as a SQRDMULH:
 * RQ4), else the int64 form of ../neon/mbqm__neon.h; the saturating narrows and the clamp are
 * theirs: saturation only moves values that lie beyond the clamp anyway, so an output zero
 * point of 0 needs no add, act_min 0 no lower clamp (SQXTUN stops at 0) and act_max 255 no upper
 * one. Where every channel's shift is r ≤ 7 (RQ_FAST16) the rounding shift runs after the
 * narrow to int16, as SQRDMULH by 2^(15 − r) on eight lanes: exact for |H| < 2^15, and an H that
 * the narrow saturates rounds to at least 32767 / 2^7 > 255 in magnitude, beyond the clamp like
 * the exact value. Where the shifts reach past 7 but lie within a ≤ r − 1 and r − a ≤ 7 of one
 * a = 1, 2 or 3 (RQ_FAST16_S1 … S3), the narrow is SQSHRN #a, floor(H / 2^a) saturated, and the
 * SQRDMULH rounds by the remaining r − a: a floor by 2^a and then a rounding by 2^(r − a) is the
 * rounding by 2^r, and a saturated lane again rounds beyond the clamp (test_runtime checks every
 * H near the limits for each a). Where every channel of a block rounds by the same R
 * (neondot_set.c scales the weights and biases of those with smaller shifts, ddq_sdot_gemm.rshrn),
 * SQRSHRN #R does the rounding shift and the narrow in one instruction: two fewer per 16 outputs.
 * Pixels a tile computes past the panel's n read pad bytes (or, for a plain 1×1, the next
 * pixels) and are never stored. */
#include "neondot.h"

#define NEONDOT_INLINE static inline __attribute__((always_inline))
#define R DDQ_SDOT_CONV_R
#define TILE_GROUP (16 * DDQ_SDOT_GROUP) /* bytes of a group of taps of a 16-pixel tile (plan->tiled) */

/* The requantization forms: int64, fast, fast with a left shift, fast with the rounding shift
 * in int16 lanes (RQ4, ROW). */
enum { RQ_INT64, RQ_FAST, RQ_FAST_LSHIFT, RQ_FAST16, RQ_FAST16_S1, RQ_FAST16_S2, RQ_FAST16_S3 };

/* What every tile's epilogue takes from the op (by value: the byte stores may alias memory, so
 * values read through a pointer would be read again after each store). */
typedef struct tile_out {
    int16x8_t zp;
    uint8x16_t lo, hi;
} tile_out;

/* MBQM of four lanes of one channel: the fast form with that channel's m0 and k = 2^(31 − r)
 * (lanes `lane` of m0v and kv) and l, or the int64 form with its m0 and −t. The fast form's
 * rounding shift SRSHL(H, −r) is SQRDMULH(H, 2^(31 − r)) = ⌊(2·H·2^(31 − r) + 2^31) / 2^32⌋ =
 * ⌊(H + 2^(r − 1)) / 2^r⌋, exactly (r ≥ 1, so k ≤ 2^30 and nothing saturates), and takes its
 * constant by element: no DUP per channel. RQ_FAST16 stops at H (ROW rounds in int16 lanes). */
#define RQ4(v, m0v, kv, lane, l, nt)                                                         \
    (mode == RQ_INT64    ? ddq_mbqm_neon((v), vdupq_laneq_s32(m0v, lane), (nt), (nt))        \
     : mode >= RQ_FAST16 ? vqdmulhq_laneq_s32((v), m0v, lane)                                \
     : mode == RQ_FAST   ? vqrdmulhq_laneq_s32(vqdmulhq_laneq_s32((v), m0v, lane), kv, lane) \
                         : vqrdmulhq_laneq_s32(vqdmulhq_laneq_s32(vshlq_s32((v), (l)), m0v, lane), kv, lane))

/* One channel's W pixels as int16 (h0: pixels 0–7, h1: 8–15), requantized: + zp, narrowed with
 * saturation, clamped, and `count` of them stored (all W when W = 16: only a panel's last 1–15
 * pixels take the narrower tiles). */
NEONDOT_INLINE void store_codes(uint8_t *y, int16x8_t h0, int16x8_t h1, const int W, int64_t count, tile_out t,
                                const int addzp, const int clamplo, const int clamphi) {
    if (addzp) h0 = vqaddq_s16(h0, t.zp);
    if (W <= 8) {
        uint8x8_t u = vqmovun_s16(h0);
        if (clamplo) u = vmax_u8(u, vget_low_u8(t.lo));
        if (clamphi) u = vmin_u8(u, vget_low_u8(t.hi));
        if (count == 8) vst1_u8(y, u);
        else ddq_store_u8x8_partial(y, u, count);
        return;
    }
    if (addzp) h1 = vqaddq_s16(h1, t.zp);
    uint8x16_t u = vqmovun_high_s16(vqmovun_s16(h0), h1);
    if (clamplo) u = vmaxq_u8(u, t.lo);
    if (clamphi) u = vminq_u8(u, t.hi);
    vst1q_u8(y, u);
}

/* The int32 pixels r0 … r3 (each W > 4k of them) narrowed with saturation to int16. */
#define NARROW(r0, r1) (W > 4 ? vqmovn_high_s32(vqmovn_s32(r0), r1) : vcombine_s16(vqmovn_s32(r0), vqmovn_s32(r0)))
/* RQ_FAST16_S1 … S3 (16 pixels): the narrow floors by 2^a first (SQSHRN #a, saturating) */
#define SHIFT_NARROW(r0, r1, a) vqshrn_high_n_s32(vqshrn_n_s32(r0, a), r1, a)
#define NARROW16(r0, r1)                                                            \
    (mode == RQ_FAST16_S1   ? SHIFT_NARROW(r0, r1, 1)                               \
     : mode == RQ_FAST16_S2 ? SHIFT_NARROW(r0, r1, 2)                               \
     : mode == RQ_FAST16_S3 ? SHIFT_NARROW(r0, r1, 3)                               \
                            : NARROW(r0, r1))

/* `tiles` tiles side by side: channels o0 … o0 + NC − 1 (NC ≤ 6: a last block's channels
 * below O; those with their bit set in `mask` are stored) × W = 16, 8 or 4 columns of the panel
 * from xs on (`count` of each tile's stored), y at channel o0's first pixel. One call runs a
 * block's row of tiles, so the callee-saved vector registers are saved once per row, not per
 * tile. */
NEONDOT_INLINE void tiles(const ddq_gemm_plan *p, const int8_t *xs, int64_t tstride, const int8_t *wb, int64_t o0,
                          uint8_t *y, int64_t P, int64_t ntiles, const int NC, const int W, int64_t count,
                          unsigned mask, const int mode, const int RS, tile_out t, const int addzp,
                          const int clamplo, const int clamphi) {
    /* read before the first store, which may alias anything read through p */
    const int64_t pairs = p->KG / 2, odd = p->KG & 1;
    const int32_t *b = p->bias + o0, *m0p = p->rq.m0 + o0, *kp = (const int32_t *)p->extra + o0;
    const int32_t *lp = p->rq.lshift + o0;
    const int16_t *k16p = ddq_sdot_k16(p) + o0;
    const int64_t *ntp = p->rq.neg_t + o0;
    for (; ntiles > 0; ntiles--, xs += tstride, y += W) {
        const int8_t *xp = xs, *wp = wb;
        /* the accumulators start at the (folded) biases, each with its own LD1R (written out:
         * GCC loads each bias once and copies it into the other three accumulators) */
#define BIAS(c, i) __asm__ volatile("ld1r {%0.4s}, [%1]" : "=w"(a##c##i) : "r"(b + (c)), "m"(b[c]))
#define INIT(c)                              \
        do {                                 \
            if ((c) >= NC) break;            \
            BIAS(c, 0);                      \
            if (W > 4) BIAS(c, 1);           \
            else a##c##1 = a##c##0;          \
            if (W > 8) {                     \
                BIAS(c, 2);                  \
                BIAS(c, 3);                  \
            } else {                         \
                a##c##2 = a##c##3 = a##c##0; \
            }                                \
        } while (0)
        int32x4_t a00, a01, a02, a03, a10, a11, a12, a13, a20, a21, a22, a23;
        int32x4_t a30, a31, a32, a33, a40, a41, a42, a43, a50, a51, a52, a53;
        INIT(0);
        INIT(1);
        INIT(2);
        INIT(3);
        INIT(4);
        INIT(5);
#undef INIT
#undef BIAS
        int8x16_t x0, x1, x2, x3;
        /* the next group's pixels; for 16 pixels under GCC an LD1 with a post-increment written
         * out (GCC keeps a second pointer for the loop's second load), volatile so that it stays
         * after the SDOTs before it (hoisted, its four vectors would make 35 live ones and
         * spill); clang has no operand modifiers for register lists and increments by itself */
#if defined(__GNUC__) && !defined(__clang__)
#define LOAD_X16(v) __asm__ volatile("ld1 {%S0.16b - %V0.16b}, [%1], #64" : "=w"(v), "+r"(xp))
#else
#define LOAD_X16(v) (v = vld1q_s8_x4(xp), xp += TILE_GROUP)
#endif
#define LOAD_X()                                                            \
        do {                                                                \
            if (W == 16) {                                                  \
                int8x16x4_t v;                                              \
                LOAD_X16(v);                                                \
                x0 = v.val[0], x1 = v.val[1], x2 = v.val[2], x3 = v.val[3]; \
            } else {                                                        \
                if (W == 8) {                                               \
                    const int8x16x2_t v = vld1q_s8_x2(xp);                  \
                    x0 = v.val[0], x1 = v.val[1], x2 = x0, x3 = x1;         \
                } else {                                                    \
                    x0 = x1 = x2 = x3 = vld1q_s8(xp);                       \
                }                                                           \
                xp += TILE_GROUP;                                           \
            }                                                               \
        } while (0)
        /* channel c's four taps, lane `lane` of wv, against the pixels (dot: the SDOT by element
         * of a 16- or an 8-byte weight vector) */
#define DOT(c, dot, wv, lane)                                \
        do {                                                 \
            if ((c) >= NC) break;                            \
            a##c##0 = dot(a##c##0, x0, wv, lane);            \
            if (W > 4) a##c##1 = dot(a##c##1, x1, wv, lane); \
            if (W > 8) a##c##2 = dot(a##c##2, x2, wv, lane); \
            if (W > 8) a##c##3 = dot(a##c##3, x3, wv, lane); \
        } while (0)
        /* one group of taps: channel c's weights are lane lc of vector wc (dot45: the SDOT of
         * channels 4 and 5, whose vector may be an 8-byte one) */
#define GROUP(w0, l0, w1, l1, w2, l2, w3, l3, dot45, w4, l4, w5, l5) \
        do {                                                         \
            DOT(0, vdotq_laneq_s32, w0, l0);                         \
            DOT(1, vdotq_laneq_s32, w1, l1);                         \
            DOT(2, vdotq_laneq_s32, w2, l2);                         \
            DOT(3, vdotq_laneq_s32, w3, l3);                         \
            DOT(4, dot45, w4, l4);                                   \
            DOT(5, dot45, w5, l5);                                   \
        } while (0)
        /* two groups at a time: their 48 weight bytes are channels 0–5 of the first group in
         * bytes 0–23 and of the second in bytes 24–47 */
        for (const int8_t *xe = xp + pairs * 2 * TILE_GROUP; xp != xe;) {
            const int8x16x3_t w = vld1q_s8_x3(wp);
            wp += 2 * R * DDQ_SDOT_GROUP;
            LOAD_X();
            GROUP(w.val[0], 0, w.val[0], 1, w.val[0], 2, w.val[0], 3, vdotq_laneq_s32, w.val[1], 0, w.val[1], 1);
            LOAD_X();
            GROUP(w.val[1], 2, w.val[1], 3, w.val[2], 0, w.val[2], 1, vdotq_laneq_s32, w.val[2], 2, w.val[2], 3);
        }
        if (odd) { /* the last group alone: 16 + 8 weight bytes */
            const int8x16_t w0 = vld1q_s8(wp);
            const int8x8_t w1 = vld1_s8(wp + 16);
            LOAD_X();
            GROUP(w0, 0, w0, 1, w0, 2, w0, 3, vdotq_lane_s32, w1, 0, w1, 1);
        }
#undef GROUP
#undef DOT
#undef LOAD_X
#undef LOAD_X16
        /* SQRSHRN and SQRSHRN2 #RS, the immediate written out (RS is a constant only after
         * inlining) */
#define QRSHRN(v)                                                                                               \
        (RS == 1 ? vqrshrn_n_s32(v, 1) : RS == 2 ? vqrshrn_n_s32(v, 2) : RS == 3 ? vqrshrn_n_s32(v, 3) :        \
         RS == 4 ? vqrshrn_n_s32(v, 4) : RS == 5 ? vqrshrn_n_s32(v, 5) : RS == 6 ? vqrshrn_n_s32(v, 6) :        \
         RS == 7 ? vqrshrn_n_s32(v, 7) : RS == 8 ? vqrshrn_n_s32(v, 8) : RS == 9 ? vqrshrn_n_s32(v, 9) :        \
         RS == 10 ? vqrshrn_n_s32(v, 10) : RS == 11 ? vqrshrn_n_s32(v, 11) : RS == 12 ? vqrshrn_n_s32(v, 12) :  \
         RS == 13 ? vqrshrn_n_s32(v, 13) : RS == 14 ? vqrshrn_n_s32(v, 14) : RS == 15 ? vqrshrn_n_s32(v, 15) :  \
         vqrshrn_n_s32(v, 16))
#define QRSHRN_HIGH(l, v)                                                                     \
        (RS == 1 ? vqrshrn_high_n_s32(l, v, 1) : RS == 2 ? vqrshrn_high_n_s32(l, v, 2) :      \
         RS == 3 ? vqrshrn_high_n_s32(l, v, 3) : RS == 4 ? vqrshrn_high_n_s32(l, v, 4) :      \
         RS == 5 ? vqrshrn_high_n_s32(l, v, 5) : RS == 6 ? vqrshrn_high_n_s32(l, v, 6) :      \
         RS == 7 ? vqrshrn_high_n_s32(l, v, 7) : RS == 8 ? vqrshrn_high_n_s32(l, v, 8) :      \
         RS == 9 ? vqrshrn_high_n_s32(l, v, 9) : RS == 10 ? vqrshrn_high_n_s32(l, v, 10) :    \
         RS == 11 ? vqrshrn_high_n_s32(l, v, 11) : RS == 12 ? vqrshrn_high_n_s32(l, v, 12) :  \
         RS == 13 ? vqrshrn_high_n_s32(l, v, 13) : RS == 14 ? vqrshrn_high_n_s32(l, v, 14) :  \
         RS == 15 ? vqrshrn_high_n_s32(l, v, 15) :                                            \
         vqrshrn_high_n_s32(l, v, 16))
        /* the channels' constants, loaded after the loop: registers are full inside it */
        const int32x4_t m0a = vld1q_s32(m0p), m0b = vld1q_s32(m0p + 4);
        const int32x4_t ka = vld1q_s32(kp), kb = vld1q_s32(kp + 4);
        const int32x4_t la = mode == RQ_FAST_LSHIFT ? vld1q_s32(lp) : ka;
        const int32x4_t lb = mode == RQ_FAST_LSHIFT ? vld1q_s32(lp + 4) : kb;
        const int16x8_t k16 = mode >= RQ_FAST16 ? vld1q_s16(k16p) : vdupq_n_s16(0);
        int64x2_t nt[R];
        for (int c = 0; c < R; c++) nt[c] = mode == RQ_INT64 ? vld1q_dup_s64(ntp + c) : vdupq_n_s64(0);
        /* a lane index must be a constant expression, hence the macro */
#define ROW(c, m0v, kv, lv, lane)                                                         \
        do {                                                                              \
            if ((c) < NC && (mask & (1u << (c)))) {                                       \
                const int32x4_t l = vdupq_laneq_s32(lv, lane);                            \
                const int32x4_t r0 = RQ4(a##c##0, m0v, kv, lane, l, nt[c]);               \
                const int32x4_t r1 = W > 4 ? RQ4(a##c##1, m0v, kv, lane, l, nt[c]) : r0;  \
                const int32x4_t r2 = W > 8 ? RQ4(a##c##2, m0v, kv, lane, l, nt[c]) : r0;  \
                const int32x4_t r3 = W > 8 ? RQ4(a##c##3, m0v, kv, lane, l, nt[c]) : r0;  \
                int16x8_t h0, h1;                                                         \
                if (RS) { /* the block's one rounding shift and the narrow: SQRSHRN #R */ \
                    h0 = QRSHRN_HIGH(QRSHRN(r0), r1);                                     \
                    h1 = QRSHRN_HIGH(QRSHRN(r2), r3);                                     \
                } else {                                                                  \
                    h0 = NARROW16(r0, r1), h1 = NARROW16(r2, r3);                         \
                }                                                                         \
                if (mode >= RQ_FAST16 && !RS) { /* the rounding: SQRDMULH by 2^(15 − r + a) */ \
                    h0 = vqrdmulhq_laneq_s16(h0, k16, c);                                 \
                    h1 = vqrdmulhq_laneq_s16(h1, k16, c);                                 \
                }                                                                         \
                store_codes(y + (c) * P, h0, h1, W, count, t, addzp, clamplo, clamphi);   \
            }                                                                             \
        } while (0)
        ROW(0, m0a, ka, la, 0);
        ROW(1, m0a, ka, la, 1);
        ROW(2, m0a, ka, la, 2);
        ROW(3, m0a, ka, la, 3);
        ROW(4, m0b, kb, lb, 0);
        ROW(5, m0b, kb, lb, 1);
#undef ROW
#undef QRSHRN
#undef QRSHRN_HIGH
#undef NARROW16
#undef SHIFT_NARROW
#undef NARROW
    }
}

/* The common tiles, straight-line: all 6 channels and 16 pixels stored, a fast
 * requantization (m: RQ_FAST, RQ_FAST_LSHIFT or RQ_FAST16); one function per combination of the
 * form and the epilogue's optional steps. */
typedef void (*full_fn)(const ddq_gemm_plan *, const int8_t *, int64_t, const int8_t *, int64_t, uint8_t *, int64_t,
                        int64_t, tile_out);
#define FULL(m, addzp, clamplo, clamphi)                                                                     \
    static void full_##m##addzp##clamplo##clamphi(const ddq_gemm_plan *p, const int8_t *xp, int64_t tstride, \
                                                  const int8_t *wp, int64_t o0, uint8_t *y, int64_t P,       \
                                                  int64_t ntiles, tile_out t) {                              \
        tiles(p, xp, tstride, wp, o0, y, P, ntiles, R, 16, 16, 0x3fu, m, 0, t, addzp, clamplo, clamphi);     \
    }
#define FULL2(m, addzp) FULL(m, addzp, 0, 0) FULL(m, addzp, 0, 1) FULL(m, addzp, 1, 0) FULL(m, addzp, 1, 1)
#define FULL4(m) FULL2(m, 0) FULL2(m, 1)
FULL4(1) /* RQ_FAST */
FULL4(2) /* RQ_FAST_LSHIFT */
FULL4(3) /* RQ_FAST16 */
FULL4(4) /* RQ_FAST16_S1 */
FULL4(5) /* RQ_FAST16_S2 */
FULL4(6) /* RQ_FAST16_S3 */
#undef FULL4
#undef FULL2
#undef FULL
#define FULL8(m) full_##m##000, full_##m##001, full_##m##010, full_##m##011, full_##m##100, full_##m##101, \
                 full_##m##110, full_##m##111
static const full_fn FULL_TILES[6][8] = {{FULL8(1)}, {FULL8(2)}, {FULL8(3)}, {FULL8(4)}, {FULL8(5)}, {FULL8(6)}};
#undef FULL8

/* The common tiles of a block whose channels share one rounding shift RS (ddq_sdot_gemm.rshrn),
 * SQRSHRN #RS rounding and narrowing at once, for the usual epilogues: after a ReLU (output zero
 * point 0, act_min 0, act_max below 255: steps 001) and linear (+ zp, with an act_max below 255
 * or not: 101, 100). */
#define RSHRN(RS, addzp, clamphi)                                                                               \
    static void rshrn_##addzp##clamphi##_##RS(const ddq_gemm_plan *p, const int8_t *xp, int64_t tstride,        \
                                              const int8_t *wp, int64_t o0, uint8_t *y, int64_t P, int64_t ntiles, \
                                              tile_out t) {                                                       \
        tiles(p, xp, tstride, wp, o0, y, P, ntiles, R, 16, 16, 0x3fu, RQ_FAST16, RS, t, addzp, 0, clamphi);      \
    }
#define RSHRN3(RS) RSHRN(RS, 0, 1) RSHRN(RS, 1, 0) RSHRN(RS, 1, 1)
RSHRN3(1) RSHRN3(2) RSHRN3(3) RSHRN3(4) RSHRN3(5) RSHRN3(6) RSHRN3(7) RSHRN3(8)
RSHRN3(9) RSHRN3(10) RSHRN3(11) RSHRN3(12) RSHRN3(13) RSHRN3(14) RSHRN3(15) RSHRN3(16)
#undef RSHRN3
#undef RSHRN
#define RSHRN16(s)                                                                                             \
    {rshrn_##s##_1,  rshrn_##s##_2,  rshrn_##s##_3,  rshrn_##s##_4,  rshrn_##s##_5,  rshrn_##s##_6,            \
     rshrn_##s##_7,  rshrn_##s##_8,  rshrn_##s##_9,  rshrn_##s##_10, rshrn_##s##_11, rshrn_##s##_12,           \
     rshrn_##s##_13, rshrn_##s##_14, rshrn_##s##_15, rshrn_##s##_16}
static const full_fn RSHRN_TILES[3][16] = {RSHRN16(01), RSHRN16(10), RSHRN16(11)};
#undef RSHRN16

/* Any tiles: W pixels, some of them or some channels not stored, or the int64 requantization;
 * every optional epilogue step taken. NC < 6 for a last block of 2 or 4 channels (the even
 * channel counts of the usual networks leave those), whose missing channels then cost nothing. */
#define ANY(W, NC)                                                                                              \
    static void any_##W##_##NC(const ddq_gemm_plan *p, const int8_t *xp, int64_t tstride, const int8_t *wp,     \
                               int64_t o0, uint8_t *y, int64_t P, int64_t ntiles, int64_t count, unsigned mask, \
                               int mode, tile_out t) {                                                          \
        if (mode == RQ_INT64)                                                                                   \
            tiles(p, xp, tstride, wp, o0, y, P, ntiles, NC, W, count, mask, RQ_INT64, 0, t, 1, 1, 1);              \
        else if (mode == RQ_FAST)                                                                               \
            tiles(p, xp, tstride, wp, o0, y, P, ntiles, NC, W, count, mask, RQ_FAST, 0, t, 1, 1, 1);               \
        else                                                                                                    \
            tiles(p, xp, tstride, wp, o0, y, P, ntiles, NC, W, count, mask, RQ_FAST_LSHIFT, 0, t, 1, 1, 1);        \
    }
ANY(4, 6)
ANY(8, 6)
ANY(16, 6)
ANY(16, 4)
ANY(16, 2)
#undef ANY

/* One pixel (the last of a panel of 4k + 1 pixels, e.g. a 7 × 7 map), channels o0 … o0 + 5 of
 * which those in `mask` are stored: the channels in the lanes and the pixel's four taps of a
 * group broadcast, two SDOT per group of taps where the 4-pixel tile spends six on one useful
 * pixel. The pixel's taps are gathered once per panel into xg ([KG][4], 16 bytes of slack), so
 * one load holds four groups. Two groups' 48 weight bytes hold channels 0–3 | 4–5 of the first
 * and 0–1 | 2–5 of the second, so the middle vector is taken against both groups' taps, into a1
 * (its lanes 0–1 hold the first group's channels 4–5) and a2 (lanes 2–3: the second group's
 * channels 0–1); the other lanes of a1 and a2 mix the groups and are dropped. */
static void tail_1(const ddq_gemm_plan *p, const int8_t *xg, const int8_t *wp, int64_t o0, uint8_t *y, int64_t P,
                   unsigned mask, const tile_out *t) {
    int32x4_t a0 = vdupq_n_s32(0), a1 = a0, a2 = a0, a3 = a0;
    int32x2_t a4 = vdup_n_s32(0);
    int64_t g = p->KG;
    /* two groups: their weights w (three vectors) against lanes l and l + 1 of the taps x */
#define TWO_GROUPS(dot, w, x, l)                       \
    do {                                               \
        a0 = dot(a0, (w).val[0], x, l);                \
        a1 = dot(a1, (w).val[1], x, l);                \
        a2 = dot(a2, (w).val[1], x, (l) + 1);          \
        a3 = dot(a3, (w).val[2], x, (l) + 1);          \
    } while (0)
#if defined(__GNUC__) && !defined(__clang__)
    /* eight groups a step, the loads post-incremented in assembly (GCC keeps a copy of each
     * pointer and adds otherwise) */
#define LOAD_W(w) \
    __asm__ volatile("ld1 {%S0.16b - %U0.16b}, [%1], #48" : "=w"(w), "+r"(wp) : "m"(*(const int8_t(*)[48])wp))
    for (; g >= 8; g -= 8) {
        int8x16x2_t x;
        int8x16x3_t w0, w1, w2, w3;
        __asm__ volatile("ld1 {%S0.16b - %T0.16b}, [%1], #32" : "=w"(x), "+r"(xg) : "m"(*(const int8_t(*)[32])xg));
        LOAD_W(w0);
        LOAD_W(w1);
        TWO_GROUPS(vdotq_laneq_s32, w0, x.val[0], 0);
        TWO_GROUPS(vdotq_laneq_s32, w1, x.val[0], 2);
        LOAD_W(w2);
        LOAD_W(w3);
        TWO_GROUPS(vdotq_laneq_s32, w2, x.val[1], 0);
        TWO_GROUPS(vdotq_laneq_s32, w3, x.val[1], 2);
    }
#undef LOAD_W
#endif
    for (; g >= 4; g -= 4, xg += 16, wp += 4 * R * DDQ_SDOT_GROUP) {
        const int8x16_t x = vld1q_s8(xg);
        const int8x16x3_t w = vld1q_s8_x3(wp), v = vld1q_s8_x3(wp + 2 * R * DDQ_SDOT_GROUP);
        TWO_GROUPS(vdotq_laneq_s32, w, x, 0);
        TWO_GROUPS(vdotq_laneq_s32, v, x, 2);
    }
    if (g >= 2) {
        const int8x8_t x = vld1_s8(xg);
        const int8x16x3_t w = vld1q_s8_x3(wp);
        TWO_GROUPS(vdotq_lane_s32, w, x, 0);
        g -= 2, xg += 8, wp += 2 * R * DDQ_SDOT_GROUP;
    }
#undef TWO_GROUPS
    if (g) { /* the last group alone: 16 + 8 weight bytes */
        const int8x8_t x = vld1_s8(xg);
        a0 = vdotq_lane_s32(a0, vld1q_s8(wp), x, 0);
        a4 = vdot_lane_s32(a4, vld1_s8(wp + 16), x, 0);
    }
    const int32_t *b = p->bias + o0;
    const int32x4_t v03 = vaddq_s32(vaddq_s32(a0, vld1q_s32(b)), vcombine_s32(vget_high_s32(a2), vget_low_s32(a3)));
    const int32x2_t v45 = vadd_s32(vadd_s32(vget_low_s32(a1), vget_high_s32(a3)), vadd_s32(a4, vld1_s32(b + 4)));
    /* lanes 6 and 7 (the next block's channels, requantized from 0) are not stored */
    const int32x4_t r03 = ddq_rq4_lanes__neondot(&p->rq, o0, v03);
    const int32x4_t r47 = ddq_rq4_lanes__neondot(&p->rq, o0 + 4, vcombine_s32(v45, vdup_n_s32(0)));
    const uint8x8_t u = vmin_u8(vmax_u8(vqmovun_s16(vqaddq_s16(vqmovn_high_s32(vqmovn_s32(r03), r47), t->zp)),
                                        vget_low_u8(t->lo)),
                                vget_low_u8(t->hi));
#define STORE1(c)                                                \
    do {                                                         \
        if (mask & (1u << (c))) vst1_lane_u8(y + (c) * P, u, c); \
    } while (0)
    STORE1(0);
    STORE1(1);
    STORE1(2);
    STORE1(3);
    STORE1(4);
    STORE1(5);
#undef STORE1
}

void ddq_conv_gemm__neondot(const ddq_op_args *a, int64_t begin, int64_t end) {
    const ddq_sdot_gemm *g = a->prepared;
    const ddq_gemm_plan *p = g->plan;
    const ddq_tensor *yt = a->out;
    const ddq_op *op = a->op;
    uint8_t *y = a->y;
    const int64_t P = yt->shape[2] * yt->shape[3], PP = p->panel_pixels, tstride = p->KG * TILE_GROUP;
    int8_t *xg = a->scratch; /* a panel's last pixel's taps (tail_1) */
    int8_t *panel = xg + ddq_sdot_tail_bytes(p->KG);
    int8_t *rows = panel + (p->KG * PP * DDQ_SDOT_GROUP + 63) / 64 * 64;
    const tile_out t = {vdupq_n_s16((int16_t)yt->zero_point), vdupq_n_u8((uint8_t)op->act_min),
                        vdupq_n_u8((uint8_t)op->act_max)};
    /* the any tiles take RQ_FAST where the full ones take RQ_FAST16 */
    const int mode = !p->rq.fast ? RQ_INT64 : p->rq.lshift_any ? RQ_FAST_LSHIFT : RQ_FAST;
    const int full_mode = mode == RQ_FAST && g->round16 ? RQ_FAST16 + g->round16_shift : mode;
    const int steps = (yt->zero_point != 0) * 4 + (op->act_min > 0) * 2 + (op->act_max < 255);
    const full_fn full = mode == RQ_INT64 ? NULL : FULL_TILES[full_mode - RQ_FAST][steps];
    /* blocks with one rounding shift, for the usual epilogues */
    const uint8_t *rshrn = mode != RQ_INT64 && (steps == 1 || steps == 4 || steps == 5) ? g->rshrn : NULL;
    const full_fn *rshrn_tiles = RSHRN_TILES[steps == 1 ? 0 : steps == 4 ? 1 : 2];
    const int64_t wblock = p->KG * R * DDQ_SDOT_GROUP; /* weight bytes per block */
    for (int64_t p0 = 0; p0 < P; p0 += PP) {
        const int64_t n = P - p0 < PP ? P - p0 : PP;
        ddq_build_panel(p, op, a->in[0], a->in[1], yt, a->x[0], p0, n, panel, rows);
        if (n % 4 == 1) { /* the 1-pixel tail's taps, gathered */
            const int8_t *src = panel + (n - 1) / 16 * tstride + (n - 1) % 16 * DDQ_SDOT_GROUP;
            for (int64_t k = 0; k < p->KG; k++) memcpy(xg + k * DDQ_SDOT_GROUP, src + k * TILE_GROUP, DDQ_SDOT_GROUP);
        }
        for (int64_t o0 = begin - begin % R; o0 < end; o0 += R) {
            const int8_t *wb = p->w + o0 / R * wblock;
            const int64_t ob = o0 > begin ? o0 : begin, oe = o0 + R < end ? o0 + R : end;
            const unsigned mask = ((1u << (oe - o0)) - 1) & ~((1u << (ob - o0)) - 1);
            uint8_t *yb = y + o0 * P + p0;
            int64_t j = n / 16 * 16;
            if (mask == 0x3fu && mode != RQ_INT64) {
                const int rs = rshrn ? rshrn[o0 / R] : 0;
                (rs ? rshrn_tiles[rs - 1] : full)(p, panel, tstride, wb, o0, yb, P, n / 16, t);
            } else if (n >= 16) {
                const int64_t nc = ob == o0 && mask != 0x3fu ? oe - o0 : R; /* channels below oe */
                if (nc == 2) any_16_2(p, panel, tstride, wb, o0, yb, P, n / 16, 16, mask, mode, t);
                else if (nc == 4) any_16_4(p, panel, tstride, wb, o0, yb, P, n / 16, 16, mask, mode, t);
                else any_16_6(p, panel, tstride, wb, o0, yb, P, n / 16, 16, mask, mode, t);
            }
            /* The last 1–15 pixels: 8- and 4-pixel tiles, whose columns lie below round_up(n, 8),
             * which the panel fills. */
            while (j < n) {
                const int64_t rest = n - j, W = rest > 4 ? 8 : 4;
                const int64_t count = rest < W ? rest : W;
                const int8_t *xp = panel + j / 16 * tstride + j % 16 * DDQ_SDOT_GROUP;
                if (W == 8) any_8_6(p, xp, tstride, wb, o0, yb + j, P, 1, count, mask, mode, t);
                else if (count == 1) tail_1(p, xg, wb, o0, yb + j, P, mask, &t);
                else any_4_6(p, xp, tstride, wb, o0, yb + j, P, 1, count, mask, mode, t);
                j += count;
            }
        }
    }
}
