/* conv2d with groups = 1 as a GEMM on int16, Advanced SIMD: 8 output channels × 8 pixels per
 * tile (8 × 4 for a short last tile), over K = C·KH·KW rows of the int16 panel (x − zp, im2col
 * for kernels other than 1×1, ddq_im2col_panel) and the weights packed [⌈O/8⌉][K][8] at session
 * creation. Per row: one 16-byte load of 8 pixels, one of 8 channel weights, and 16 SMLAL/SMLAL2
 * by lane into 16 int32x4 accumulators (64 MACs). int16 × int16 products are exact in int32 and
 * the loader's accumulator bound keeps every partial sum inside int32. */
#include "neon.h"

/* What the stores of an op need. */
typedef struct gemm_out {
    const ddq_packed_conv *pc;
    int32_t zp, lo, hi;
} gemm_out;

/* Requantizes channel o's 8 (or 4) pixels and stores `count` of them. */
static inline void store_row(const gemm_out *q, int64_t o, int32x4_t lo, int32x4_t hi, uint8_t *y, int64_t count) {
    const ddq_requant_plan *rq = &q->pc->rq;
    if (rq->fast) {
        const ddq_requant_fast r = ddq_requant_fast_same(rq, o, q->zp, q->lo, q->hi);
        ddq_store_u8x8_partial(y, ddq_requantize_fast_neon(lo, hi, &r), count);
    } else {
        const ddq_requant_neon r = ddq_requant_neon_same(rq->m0[o], rq->neg_t[o], q->zp, q->lo, q->hi);
        ddq_store_u8x8_partial(y, ddq_requantize_neon(lo, hi, &r), count);
    }
}

#define MLA8(i, lane)                                                 \
    do {                                                              \
        a##i##l = vmlal_laneq_s16(a##i##l, vget_low_s16(xv), wv, lane); \
        a##i##h = vmlal_high_laneq_s16(a##i##h, xv, wv, lane);        \
    } while (0)

#define MLA4(i, lane) a##i##l = vmlal_laneq_s16(a##i##l, xv4, wv, lane)

#define STORE(i)                                                                          \
    do {                                                                                  \
        if (o0 + i >= ob && o0 + i < oe) store_row(q, o0 + i, a##i##l, a##i##h, y + (o0 + i) * P, count); \
    } while (0)

#define DDQ_ALWAYS_INLINE static inline __attribute__((always_inline))

/* Channel o's 8 sums (lo, hi) requantized in the fast form (m0, −r, l in every lane) and clamped. */
DDQ_ALWAYS_INLINE uint8x8_t requant8_fast(int32x4_t lo, int32x4_t hi, int32x4_t m0, int32x4_t nr, int32x4_t l,
                                          int16x8_t zp, uint8x8_t cmin, uint8x8_t cmax, const int shift) {
    return vmin_u8(vmax_u8(vqmovun_s16(ddq_mbqm_fast_s16(lo, hi, m0, nr, l, zp, shift)), cmin), cmax);
}

/* One block of 8 channels (o0 … o0 + 7, of which ob … oe − 1 are stored) over the panel's
 * pixels j … j + 7 (count of them are real), y already offset to the panel's first pixel.
 * `full`: all 8 channels and 8 pixels are stored and the plan admits the fast requantization,
 * so the epilogue runs straight-line, with each channel's constants taken from four-channel
 * vectors (`shift`: some channel has l > 0). */
/* The 16 SMLAL/SMLAL2 of one row (pixels in X, the 8 channels' weights in W, v0–v15). */
#define SMLAL_LINE(i, X, W, _) \
    "smlal %[a" #i "l].4s, " X ".4h, " W ".h[" #i "]\n\t smlal2 %[a" #i "h].4s, " X ".8h, " W ".h[" #i "]\n\t"
#define SMLAL_ROW(X, W) DDQ_ASM_8CH(SMLAL_LINE, X, W, )

DDQ_ALWAYS_INLINE void tile_8x8(const gemm_out *q, const int16_t *xp, int64_t nps, const int16_t *wp, int64_t K,
                                int64_t o0, int64_t ob, int64_t oe, uint8_t *y, int64_t P, int64_t count,
                                const int full, const int shift) {
    const int32_t *b = q->pc->bias + o0; /* the accumulators start at the biases */
    int32x4_t a0l, a0h, a1l, a1h, a2l, a2h, a3l, a3h, a4l, a4h, a5l, a5h, a6l, a6h, a7l, a7h;
    if (full) {
        /* the rows in assembly, two an iteration: per row one post-indexed LD1 each of the pixels
         * and the weights and 16 SMLAL by element (GCC's loop spends two or three more on
         * addressing). The accumulators are outputs only, started at the biases inside (in-out
         * operands count twice against GCC's limit of 30). */
        const int32x4_t b0 = vld1q_s32(b), b1 = vld1q_s32(b + 4);
        const int16_t *x = xp, *w = wp;
        int64_t n = K; /* ≥ 1 */
        const int64_t pitch = nps * (int64_t)sizeof(int16_t);
        __asm__("dup %[a0l].4s, %[b0].s[0]\n\t dup %[a0h].4s, %[b0].s[0]\n\t"
                "dup %[a1l].4s, %[b0].s[1]\n\t dup %[a1h].4s, %[b0].s[1]\n\t"
                "dup %[a2l].4s, %[b0].s[2]\n\t dup %[a2h].4s, %[b0].s[2]\n\t"
                "dup %[a3l].4s, %[b0].s[3]\n\t dup %[a3h].4s, %[b0].s[3]\n\t"
                "dup %[a4l].4s, %[b1].s[0]\n\t dup %[a4h].4s, %[b1].s[0]\n\t"
                "dup %[a5l].4s, %[b1].s[1]\n\t dup %[a5h].4s, %[b1].s[1]\n\t"
                "dup %[a6l].4s, %[b1].s[2]\n\t dup %[a6h].4s, %[b1].s[2]\n\t"
                "dup %[a7l].4s, %[b1].s[3]\n\t dup %[a7h].4s, %[b1].s[3]\n\t"
                "tbz %[n], #0, 1f\n\t"
                "ld1 {v31.8h}, [%[x]], %[pitch]\n\t"
                "ld1 {v15.8h}, [%[w]], #16\n\t" SMLAL_ROW("v31", "v15")
                "subs %[n], %[n], #1\n\t"
                "b.eq 2f\n"
                "1:\n\t"
                "ld1 {v31.8h}, [%[x]], %[pitch]\n\t"
                "ld1 {v15.8h}, [%[w]], #16\n\t"
                "ld1 {v30.8h}, [%[x]], %[pitch]\n\t"
                "ld1 {v14.8h}, [%[w]], #16\n\t" SMLAL_ROW("v31", "v15") SMLAL_ROW("v30", "v14")
                "subs %[n], %[n], #2\n\t"
                "b.ne 1b\n"
                "2:\n"
                : [x] "+r"(x), [w] "+r"(w), [n] "+r"(n), [a0l] "=&w"(a0l), [a0h] "=&w"(a0h), [a1l] "=&w"(a1l),
                  [a1h] "=&w"(a1h), [a2l] "=&w"(a2l), [a2h] "=&w"(a2h), [a3l] "=&w"(a3l), [a3h] "=&w"(a3h),
                  [a4l] "=&w"(a4l), [a4h] "=&w"(a4h), [a5l] "=&w"(a5l), [a5h] "=&w"(a5h), [a6l] "=&w"(a6l),
                  [a6h] "=&w"(a6h), [a7l] "=&w"(a7l), [a7h] "=&w"(a7h)
                : [pitch] "r"(pitch), [b0] "w"(b0), [b1] "w"(b1)
                : "v14", "v15", "v30", "v31", "cc", "memory");
    } else {
        a0l = a0h = vld1q_dup_s32(b), a1l = a1h = vld1q_dup_s32(b + 1);
        a2l = a2h = vld1q_dup_s32(b + 2), a3l = a3h = vld1q_dup_s32(b + 3);
        a4l = a4h = vld1q_dup_s32(b + 4), a5l = a5h = vld1q_dup_s32(b + 5);
        a6l = a6h = vld1q_dup_s32(b + 6), a7l = a7h = vld1q_dup_s32(b + 7);
#pragma GCC unroll 2
        for (int64_t r = 0; r < K; r++) {
            const int16x8_t xv = vld1q_s16(xp + r * nps);
            const int16x8_t wv = vld1q_s16(wp + r * DDQ_GEMM_BLOCK);
            MLA8(0, 0);
            MLA8(1, 1);
            MLA8(2, 2);
            MLA8(3, 3);
            MLA8(4, 4);
            MLA8(5, 5);
            MLA8(6, 6);
            MLA8(7, 7);
        }
    }
    if (!full) {
        STORE(0);
        STORE(1);
        STORE(2);
        STORE(3);
        STORE(4);
        STORE(5);
        STORE(6);
        STORE(7);
        return;
    }
    /* loaded after the loop: the byte stores may alias anything read through pc */
    const ddq_packed_conv *pc = q->pc;
    int32x4_t m0[2], nr[2], l[2];
    for (int h = 0; h < 2; h++) {
        m0[h] = vld1q_s32(pc->rq.m0 + o0 + 4 * h);
        nr[h] = vld1q_s32(pc->rq.neg_rshift + o0 + 4 * h);
        l[h] = shift ? vld1q_s32(pc->rq.lshift + o0 + 4 * h) : m0[h];
    }
    const int16x8_t zp = vdupq_n_s16((int16_t)q->zp);
    const uint8x8_t cmin = vdup_n_u8((uint8_t)q->lo), cmax = vdup_n_u8((uint8_t)q->hi);
    uint8_t *yo = y + o0 * P;
    /* lane (i % 4) of the four-channel vectors, DUP'd (a lane index must be a constant) */
#define LANE(v, i) vdupq_laneq_s32((v)[(i) / 4], (i) % 4)
#define STORE_FULL(i) \
    vst1_u8(yo + (i) * P, requant8_fast(a##i##l, a##i##h, LANE(m0, i), LANE(nr, i), LANE(l, i), zp, cmin, cmax, shift))
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

/* The same for 4 pixels (count ≤ 4): the last tile of a panel whose width is 4 modulo 8 or
 * less, e.g. the 2×2 maps at the end of a MobileNet. */
static void tile_8x4(const gemm_out *q, const int16_t *xp, int64_t nps, const int16_t *wp, int64_t K, int64_t o0,
                     int64_t ob, int64_t oe, uint8_t *y, int64_t P, int64_t count) {
    const int32_t *b = q->pc->bias + o0; /* the accumulators start at the biases */
    int32x4_t a0l = vdupq_n_s32(b[0]), a1l = vdupq_n_s32(b[1]), a2l = vdupq_n_s32(b[2]), a3l = vdupq_n_s32(b[3]);
    int32x4_t a4l = vdupq_n_s32(b[4]), a5l = vdupq_n_s32(b[5]), a6l = vdupq_n_s32(b[6]), a7l = vdupq_n_s32(b[7]);
    const int32x4_t a0h = a0l, a1h = a1l, a2h = a2l, a3h = a3l, a4h = a4l, a5h = a5l, a6h = a6l, a7h = a7l;
#pragma GCC unroll 4
    for (int64_t r = 0; r < K; r++) {
        const int16x4_t xv4 = vld1_s16(xp + r * nps);
        const int16x8_t wv = vld1q_s16(wp + r * DDQ_GEMM_BLOCK);
        MLA4(0, 0);
        MLA4(1, 1);
        MLA4(2, 2);
        MLA4(3, 3);
        MLA4(4, 4);
        MLA4(5, 5);
        MLA4(6, 6);
        MLA4(7, 7);
    }
    STORE(0);
    STORE(1);
    STORE(2);
    STORE(3);
    STORE(4);
    STORE(5);
    STORE(6);
    STORE(7);
}

/* ddq_im2col_panel for a plain 1×1 convolution (stride 1, no padding), 8 pixels per USUBL. A
 * short last group reads 8 pixels where that stays inside the input tensor; the columns past n
 * then hold other pixels' values, which only reach outputs that are not stored. */
static void panel_1x1(const ddq_op_args *a, int64_t p0, int64_t n, int64_t nps, int16_t *panel) {
    const ddq_tensor *xt = a->in[0];
    const int64_t C = xt->shape[1], HW = xt->shape[2] * xt->shape[3];
    const uint8_t *x = (const uint8_t *)a->x[0] + p0;
    const uint8x8_t zp = vdup_n_u8((uint8_t)xt->zero_point);
    const uint8x16_t zpq = vdupq_n_u8((uint8_t)xt->zero_point);
    for (int64_t c = 0; c < C; c++) {
        const uint8_t *s = x + c * HW;
        int16_t *d = panel + c * nps;
        int64_t j = 0;
        for (; j + 32 <= n; j += 32) { /* one LD1 and one ST1 of four registers: 32 pixels */
            const uint8x16x2_t v = vld1q_u8_x2(s + j);
            const int16x8x4_t t = {{vreinterpretq_s16_u16(vsubl_u8(vget_low_u8(v.val[0]), zp)),
                                    vreinterpretq_s16_u16(vsubl_high_u8(v.val[0], zpq)),
                                    vreinterpretq_s16_u16(vsubl_u8(vget_low_u8(v.val[1]), zp)),
                                    vreinterpretq_s16_u16(vsubl_high_u8(v.val[1], zpq))}};
            vst1q_s16_x4(d + j, t);
        }
        for (; j + 8 <= n; j += 8) vst1q_s16(d + j, vreinterpretq_s16_u16(vsubl_u8(vld1_u8(s + j), zp)));
        if (j == n) continue;
        if (c * HW + p0 + j + 8 <= C * HW) {
            vst1q_s16(d + j, vreinterpretq_s16_u16(vsubl_u8(vld1_u8(s + j), zp)));
        } else {
            for (; j < n; j++) d[j] = (int16_t)(s[j] - xt->zero_point);
            for (; j % 8; j++) d[j] = 0;
        }
    }
}

void ddq_conv_gemm__neon(const ddq_op_args *a, int64_t begin, int64_t end) {
    const ddq_packed_conv *pc = a->prepared;
    const ddq_tensor *yt = a->out;
    uint8_t *y = a->y;
    const int64_t P = yt->shape[2] * yt->shape[3], K = pc->K, nps = pc->panel_pixels;
    int16_t *panel = a->scratch;
    const gemm_out q = {pc, yt->zero_point, a->op->act_min, a->op->act_max};
    const ddq_op *op = a->op;
    const int plain_1x1 = a->in[1]->shape[2] == 1 && a->in[1]->shape[3] == 1 && op->stride[0] == 1 &&
                          op->stride[1] == 1 && op->padding[0] == 0 && op->padding[1] == 0 && op->padding[2] == 0 &&
                          op->padding[3] == 0;
    for (int64_t p0 = 0; p0 < P; p0 += nps) {
        const int64_t n = P - p0 < nps ? P - p0 : nps;
        if (plain_1x1) panel_1x1(a, p0, n, nps, panel);
        else ddq_im2col_panel(a, p0, n, nps, panel);
        for (int64_t o0 = begin / DDQ_GEMM_BLOCK * DDQ_GEMM_BLOCK; o0 < end; o0 += DDQ_GEMM_BLOCK) {
            const int16_t *wb = pc->w + o0 * K; /* block o0 / 8 */
            const int64_t ob = o0 > begin ? o0 : begin;
            const int64_t oe = o0 + DDQ_GEMM_BLOCK < end ? o0 + DDQ_GEMM_BLOCK : end;
            if (pc->kblk[o0 / DDQ_GEMM_BLOCK]) { /* low bits: int16 accumulation */
                /* at most 4 pixels: two blocks at a time, when both sum all K rows in int16 */
                const int pair = n <= 4 && o0 + DDQ_GEMM_BLOCK < end && pc->kblk[o0 / DDQ_GEMM_BLOCK] >= K &&
                                 pc->kblk[o0 / DDQ_GEMM_BLOCK + 1] >= K;
                const int64_t oe2 = pair ? (o0 + 2 * DDQ_GEMM_BLOCK < end ? o0 + 2 * DDQ_GEMM_BLOCK : end) : oe;
                ddq_conv_gemm_acc16_block__neon(pc, q.zp, q.lo, q.hi, panel, nps, n, o0, ob, oe2, y + p0, P, pair);
                if (pair) o0 += DDQ_GEMM_BLOCK;
                continue;
            }
            int64_t j = 0;
            if (pc->rq.fast && ob == o0 && oe == o0 + DDQ_GEMM_BLOCK) {
                if (pc->rq.lshift_any)
                    for (; n - j >= 8; j += 8) tile_8x8(&q, panel + j, nps, wb, K, o0, o0, oe, y + p0 + j, P, 8, 1, 1);
                else
                    for (; n - j >= 8; j += 8) tile_8x8(&q, panel + j, nps, wb, K, o0, o0, oe, y + p0 + j, P, 8, 1, 0);
            }
            for (; j < n; j += 8) {
                const int64_t count = n - j < 8 ? n - j : 8;
                if (count > 4) tile_8x8(&q, panel + j, nps, wb, K, o0, ob, oe, y + p0 + j, P, count, 0, 0);
                else tile_8x4(&q, panel + j, nps, wb, K, o0, ob, oe, y + p0 + j, P, count);
            }
        }
    }
}
