/* The SIMD sets' GEMM preparation and panels (gemm_plan.h). */
#include "gemm_plan.h"
#include "../bitunpack.h"

#include <stdlib.h>
#include <string.h>
#if defined(__ARM_NEON)
#include <arm_neon.h>
#endif

int32_t ddq_panel_offset(const ddq_tensor *x, int offset_rule) {
    if (offset_rule == DDQ_OFFSET_UNSIGNED || (offset_rule == DDQ_OFFSET_ZERO_IF_FITS && x->qmax <= 127)) return 0;
    int32_t c = x->zero_point;
    if (x->qmax - c > 127) c = x->qmax - 127;
    if (c - x->qmin > 128) c = x->qmin + 128;
    return c;
}

int ddq_requant_plan_init(ddq_requant_plan *rq, const ddq_multiplier *m, const int64_t *bound, int64_t n) {
    const int64_t total = n + DDQ_PLAN_CHANNEL_SLACK;
    rq->m0 = calloc((size_t)total, sizeof *rq->m0);
    rq->lshift = calloc((size_t)total, sizeof *rq->lshift);
    rq->neg_rshift = calloc((size_t)total, sizeof *rq->neg_rshift);
    rq->neg_t = calloc((size_t)total, sizeof *rq->neg_t);
    if (!rq->m0 || !rq->lshift || !rq->neg_rshift || !rq->neg_t) return 0;
    rq->fast = 1;
    rq->lshift_any = 0;
    for (int64_t o = 0; o < total; o++) {
        const ddq_multiplier mo = o < n ? m[o] : (ddq_multiplier){0, 0};
        const int l = mo.shift >= 0 ? mo.shift + 1 : 0;
        rq->m0[o] = mo.m0;
        rq->lshift[o] = l;
        rq->neg_rshift[o] = -((31 - mo.shift) - 31 + l); /* −r, r = t − 31 + l ≥ 1 */
        rq->neg_t[o] = (int64_t)mo.shift - 31;
        if (l > 0 && o < n) {
            rq->lshift_any = 1;
            /* x · 2^l must stay inside int32 for every accumulator the channel can produce */
            if (l > 31 || (bound[o] << l) > INT32_MAX) rq->fast = 0;
        }
    }
    return 1;
}

void ddq_requant_plan_free(ddq_requant_plan *rq) {
    free(rq->m0);
    free(rq->lshift);
    free(rq->neg_rshift);
    free(rq->neg_t);
}

int64_t ddq_gemm_panel_pixels_for(int64_t K, int64_t P, int64_t panel_bytes) {
    int64_t n = panel_bytes / (ddq_round_up(K, 4) > 0 ? ddq_round_up(K, 4) : 1) / 8 * 8;
    const int64_t all = ddq_round_up(P, 8);
    if (n < 8) n = 8;
    return n < all ? n : all;
}

static int64_t op_pixels(const ddq_op *op, const ddq_tensor *yt) {
    return op->kind == DDQ_OP_CONV2D ? yt->shape[2] * yt->shape[3] : 1;
}

/* One channel's K weights into the packed layout: group after group of `group` taps, `pitch`
 * bytes apart (the other channels of its block in between); the last group's taps past K stay 0.
 * Groups of 2 and 4 copy as one 16- or 32-bit word: session creation packs every weight. */
static void pack_row(const int8_t *row, int64_t K, int group, int64_t pitch, int8_t *dst) {
    int64_t k = 0;
    if (group == 4)
        for (; k + 4 <= K; k += 4, dst += pitch) memcpy(dst, row + k, 4);
    else if (group == 2)
        for (; k + 2 <= K; k += 2, dst += pitch) memcpy(dst, row + k, 2);
    for (int j = 0; k < K; k++, j++) {
        if (j == group) j = 0, dst += pitch;
        dst[j] = row[k];
    }
}

ddq_gemm_plan *ddq_gemm_plan_create(const ddq_model *model, const ddq_op *op, int group, int R, int offset_rule,
                                    int64_t panel_bytes) {
    const ddq_tensor *xt = &model->tensors[op->inputs[0]], *wt = &model->tensors[op->inputs[1]];
    const ddq_tensor *bt = &model->tensors[op->inputs[2]], *yt = &model->tensors[op->output];
    ddq_gemm_plan *p = calloc(1, sizeof *p);
    if (!p) return NULL;
    const int64_t O = wt->shape[0], K = wt->elements / O;
    p->O = O;
    p->K = K;
    p->group = group;
    p->R = R;
    p->KG = (K + group - 1) / group;
    p->blocks = (O + R - 1) / R;
    p->offset = ddq_panel_offset(xt, offset_rule);
    p->pad = (uint8_t)(xt->zero_point - p->offset);
    p->lo = xt->qmin - p->offset;
    p->hi = xt->qmax - p->offset;
    p->panel_pixels = ddq_gemm_panel_pixels_for(K, op_pixels(op, yt), panel_bytes);
    const int64_t channels = p->blocks * R;
    const size_t wbytes = (size_t)ddq_round_up(p->blocks * p->KG * R * group, 64);
    p->w = aligned_alloc(64, wbytes);
    p->bias = calloc((size_t)(channels + DDQ_PLAN_CHANNEL_SLACK), sizeof *p->bias);
    p->kernel = calloc((size_t)p->blocks, 1);
    p->run_begin = calloc((size_t)p->blocks + 1, sizeof *p->run_begin);
    p->runs = calloc((size_t)(p->blocks * (p->KG + 1)), sizeof *p->runs);
    if (!p->w || !p->bias || !p->kernel || !p->run_begin || !p->runs) {
        ddq_gemm_plan_free(p);
        return NULL;
    }
    memset(p->w, 0, wbytes);
    const int32_t *bias = bt->data;
    for (int64_t o = 0; o < O; o++) {
        const int8_t *row = (const int8_t *)wt->data + o * K;
        pack_row(row, K, group, R * group, p->w + ((o / R) * p->KG * R + o % R) * group);
        /* mod 2^32: the int32 sums wrap and end at the exact accumulator */
        const int64_t folded = (int64_t)bias[o] + ((int64_t)p->offset - xt->zero_point) * ddq_codes_sum(row, K);
        p->bias[o] = (int32_t)(uint32_t)(uint64_t)folded;
    }
    if (!ddq_requant_plan_init(&p->rq, op->channel_multipliers, op->channel_bounds, O)) {
        ddq_gemm_plan_free(p);
        return NULL;
    }
    return p;
}

void ddq_gemm_plan_free(ddq_gemm_plan *p) {
    if (!p) return;
    free(p->w);
    free(p->bias);
    ddq_requant_plan_free(&p->rq);
    free(p->kernel);
    free(p->run_begin);
    free(p->runs);
    free(p->extra);
    free(p);
}

/* The bounds mn / mx of `lanes` lanes of `taps` weights each, extended by one more group of
 * weights w where every lane stays in [lim_lo, lim_hi] (returns 1), else left alone (0).
 * int32 lanes (ddq_greedy_runs keeps the sums in range); inlined with taps a constant. */
static inline __attribute__((always_inline)) int extend_lanes(const int8_t *w, int64_t lanes, const int taps,
                                                              int32_t lo, int32_t hi, int32_t lim_lo, int32_t lim_hi,
                                                              int32_t *mn, int32_t *mx) {
    int32_t nmn[64 * 4], nmx[64 * 4];
    int outside = 0;
    for (int64_t k = 0; k < lanes; k++) {
        int32_t smn = mn[k], smx = mx[k];
        for (int t = 0; t < taps; t++) { /* w · v for v ∈ [lo, hi]: between the two ends */
            const int32_t u = w[k * taps + t] * lo, v = w[k * taps + t] * hi;
            smn += u < v ? u : v;
            smx += u < v ? v : u;
        }
        nmn[k] = smn;
        nmx[k] = smx;
        outside |= (smn < lim_lo) | (smx > lim_hi);
    }
    if (outside) return 0;
    memcpy(mn, nmn, (size_t)lanes * sizeof *mn);
    memcpy(mx, nmx, (size_t)lanes * sizeof *mx);
    return 1;
}

#if defined(__ARM_NEON)
/* extend_lanes for one group of 8 weights (4 channels × 2 taps: the blocks of the byte-lane
 * GEMMs) as 8 lanes of 1 tap or 4 lanes of 2, in NEON: the compiler keeps the scalar loop
 * scalar, and this is most of the run planning of a model on the neon set. */
static inline __attribute__((always_inline)) int extend_8(const int8_t *w, const int taps, int16_t lo, int16_t hi,
                                                          int32_t lim_lo, int32_t lim_hi, int32_t *mn, int32_t *mx) {
    const int16x8_t wv = vmovl_s8(vld1_s8(w));
    const int32x4_t u0 = vmull_n_s16(vget_low_s16(wv), lo), u1 = vmull_high_n_s16(wv, lo);
    const int32x4_t v0 = vmull_n_s16(vget_low_s16(wv), hi), v1 = vmull_high_n_s16(wv, hi);
    int32x4_t cmn[2] = {vminq_s32(u0, v0), vminq_s32(u1, v1)}, cmx[2] = {vmaxq_s32(u0, v0), vmaxq_s32(u1, v1)};
    if (taps == 2) { /* lane k: elements 2k and 2k + 1 */
        cmn[0] = vpaddq_s32(cmn[0], cmn[1]);
        cmx[0] = vpaddq_s32(cmx[0], cmx[1]);
    }
    const int n = taps == 2 ? 1 : 2;
    int32x4_t nmn[2], nmx[2];
    uint32x4_t outside = vdupq_n_u32(0);
    for (int i = 0; i < n; i++) {
        nmn[i] = vaddq_s32(vld1q_s32(mn + 4 * i), cmn[i]);
        nmx[i] = vaddq_s32(vld1q_s32(mx + 4 * i), cmx[i]);
        outside = vorrq_u32(outside, vorrq_u32(vcltq_s32(nmn[i], vdupq_n_s32(lim_lo)),
                                               vcgtq_s32(nmx[i], vdupq_n_s32(lim_hi))));
    }
    if (vmaxvq_u32(outside)) return 0;
    for (int i = 0; i < n; i++) {
        vst1q_s32(mn + 4 * i, nmn[i]);
        vst1q_s32(mx + 4 * i, nmx[i]);
    }
    return 1;
}
#endif

int64_t ddq_greedy_runs(const ddq_gemm_plan *p, int64_t o0, int64_t n, int64_t g0, int64_t g1, int lane_taps,
                        int64_t lim_lo, int64_t lim_hi, int64_t max_length, uint16_t *out) {
    const int G = p->group, taps = lane_taps > 0 && lane_taps < G ? lane_taps : G;
    /* int32 lanes: a run's bounds lie within the limits, and one more group adds at most
     * G · 128 · 255 to them (|w| ≤ 128, |v| ≤ 255) */
    if (n > 64 || G > 4 || lim_lo < -(1 << 24) || lim_hi > (1 << 24)) return -1;
    /* A group's weights of channels o0 … o0 + n − 1 as one row of n·G bytes (a whole block's are
     * contiguous in the packed layout, zeros past O; any other range is gathered), lane k holding
     * bytes k·taps … k·taps + taps − 1; per lane the bounds of the current run's sum, which a
     * group extends when every lane still fits. Session creation runs this over every weight of
     * a model, several times: the loops stay flat. */
    const int64_t m = n * G, lanes = m / taps;
    const int32_t lo = p->lo, hi = p->hi, lmin = (int32_t)lim_lo, lmax = (int32_t)lim_hi;
    const int whole_block = o0 % p->R == 0 && n == p->R;
    int32_t mn[64 * 4], mx[64 * 4];
#if defined(__ARM_NEON)
    const int eight = m == 8 && (taps == 1 || taps == 2); /* |lo|, |hi| ≤ 255: int16 */
#endif
    int8_t gathered[64 * 4];
    int64_t count = 0, g = g0;
    while (g < g1) {
        for (int64_t k = 0; k < lanes; k++) mn[k] = mx[k] = 0;
        int64_t length = 0;
        for (; g < g1 && length < max_length; g++, length++) {
            const int8_t *w = p->w + ((o0 / p->R) * p->KG + g) * p->R * G;
            if (!whole_block) {
                for (int64_t i = 0; i < n; i++) {
                    const int64_t o = o0 + i;
                    for (int j = 0; j < G; j++)
                        gathered[i * G + j] = o < p->O ? p->w[((o / p->R * p->KG + g) * p->R + o % p->R) * G + j] : 0;
                }
                w = gathered;
            }
            int fits;
#if defined(__ARM_NEON)
            if (eight)
                fits = taps == 1 ? extend_8(w, 1, (int16_t)lo, (int16_t)hi, lmin, lmax, mn, mx)
                                 : extend_8(w, 2, (int16_t)lo, (int16_t)hi, lmin, lmax, mn, mx);
            else
#endif
                fits = taps == 1   ? extend_lanes(w, lanes, 1, lo, hi, lmin, lmax, mn, mx)
                       : taps == 2 ? extend_lanes(w, lanes, 2, lo, hi, lmin, lmax, mn, mx)
                                   : extend_lanes(w, lanes, taps, lo, hi, lmin, lmax, mn, mx);
            if (!fits) break;
        }
        if (length == 0) return -1; /* one group alone overflows the lanes */
        out[count++] = (uint16_t)length;
    }
    return count;
}

/* ------------------------------------------------------------------------------------ panels */

/* build_panel_3x3s2 keeps a pointer per tap: up to 16 input channels (144 taps). */
#define DDQ_MAX_PANEL_GROUPS_3X3S2 36

static void offset_copy_strided(int8_t *restrict d, const uint8_t *restrict s, int64_t n, int64_t stride, uint8_t c) {
#if defined(__ARM_NEON)
    /* Stride 2 (a 3×3/2 stem's im2col rows): LD2 keeps the even bytes. The compiler's own loop
     * stops a block early (LD2 reads one byte past the last even one) and ends in scalar code;
     * here the last 16 come from one LD2 that starts a byte early and keeps the odd lanes, so
     * every read stays within s[0] … s[2(n − 1)]. */
    if (stride == 2 && n > 16) {
        const uint8x16_t cv = vdupq_n_u8(c);
        for (int64_t i = 0; i + 16 < n; i += 16)
            vst1q_s8(d + i, vreinterpretq_s8_u8(vsubq_u8(vld2q_u8(s + 2 * i).val[0], cv)));
        vst1q_s8(d + n - 16, vreinterpretq_s8_u8(vsubq_u8(vld2q_u8(s + 2 * (n - 16) - 1).val[1], cv)));
        return;
    }
#endif
    if (stride == 2) {
        for (int64_t i = 0; i < n; i++) d[i] = (int8_t)(uint8_t)(s[2 * i] - c);
    } else {
        for (int64_t i = 0; i < n; i++) d[i] = (int8_t)(uint8_t)(s[i * stride] - c);
    }
}

/* Tap r = (ci, ky, kx) of output pixels p0 … p0 + n − 1 as x − c (pad where the tap is padding). */
static void tap_row(const ddq_gemm_plan *p, const ddq_op *op, const ddq_tensor *xt, const ddq_tensor *wt,
                    const ddq_tensor *yt, const uint8_t *x, int64_t r, int64_t p0, int64_t n, int8_t *d) {
    const int64_t H = xt->shape[2], W = xt->shape[3], KH = wt->shape[2], KW = wt->shape[3];
    const int64_t OW = yt->shape[3], sh = op->stride[0], sw = op->stride[1];
    const int64_t ci = r / (KH * KW), ky = r / KW % KH, kx = r % KW;
    const uint8_t *xc = x + ci * H * W;
    const int64_t off = kx * op->dilation[1] - op->padding[1];
    /* ix = ox·sw + off lies in [0, W) for ox in [lo, hi) */
    const int64_t lo = ddq_div_ceil(-off, sw) > 0 ? ddq_div_ceil(-off, sw) : 0;
    const int64_t hi = ddq_div_floor(W - 1 - off, sw) + 1;
    const uint8_t c = (uint8_t)p->offset;
    /* the padding first, in one memset; the taps inside the input are copied over it (per output
     * row, two small memsets of the borders cost more than the copy) */
    memset(d, p->pad, (size_t)n);
    for (int64_t j = 0; j < n;) {
        const int64_t q = p0 + j, oy = q / OW, ox = q % OW;
        const int64_t count = OW - ox < n - j ? OW - ox : n - j; /* the rest of output row oy */
        const int64_t iy = oy * sh - op->padding[0] + ky * op->dilation[0];
        const int64_t end = ox + count, b = lo > ox ? lo : ox, e = hi < end ? hi : end;
        if (iy >= 0 && iy < H && e > b) {
            if (sw == 1) ddq_offset_copy(d + j + (b - ox), xc + iy * W + b + off, e - b, c);
            else offset_copy_strided(d + j + (b - ox), xc + iy * W + b * sw + off, e - b, sw, c);
        }
        j += count;
    }
}

/* panel row g from `group` source rows of `cols` bytes, each minus `c` (0 when already offset). */
static void interleave2(int8_t *restrict d, const int8_t *restrict s0, const int8_t *restrict s1, int64_t cols,
                        int8_t c) {
    if (c == 0) { /* the common case (codes on a zero point 0): a loop the compiler vectorizes without SUBs */
        for (int64_t i = 0; i < cols; i++) {
            d[2 * i] = s0[i];
            d[2 * i + 1] = s1[i];
        }
        return;
    }
    for (int64_t i = 0; i < cols; i++) {
        d[2 * i] = (int8_t)(s0[i] - c);
        d[2 * i + 1] = (int8_t)(s1[i] - c);
    }
}

static void interleave4(int8_t *restrict d, const int8_t *restrict s0, const int8_t *restrict s1,
                        const int8_t *restrict s2, const int8_t *restrict s3, int64_t cols, int8_t c) {
    if (c == 0) {
        for (int64_t i = 0; i < cols; i++) {
            d[4 * i] = s0[i];
            d[4 * i + 1] = s1[i];
            d[4 * i + 2] = s2[i];
            d[4 * i + 3] = s3[i];
        }
        return;
    }
    for (int64_t i = 0; i < cols; i++) {
        d[4 * i] = (int8_t)(s0[i] - c);
        d[4 * i + 1] = (int8_t)(s1[i] - c);
        d[4 * i + 2] = (int8_t)(s2[i] - c);
        d[4 * i + 3] = (int8_t)(s3[i] - c);
    }
}

/* interleave4 into tiles of 16 columns, `stride` bytes apart (plan->tiled) */
static void interleave4_tiled(int8_t *restrict d, int64_t stride, const int8_t *restrict s0, const int8_t *restrict s1,
                              const int8_t *restrict s2, const int8_t *restrict s3, int64_t cols, int8_t c) {
    int64_t i = 0;
#if defined(__aarch64__) && defined(__GNUC__)
    if (c == 0) { /* ST4 of the four rows, no SUBs; in assembly, as GCC passes the four registers
                   * through the stack and its own loop subtracts even a zero c; two tiles a step */
        const int8_t *a0 = s0, *a1 = s1, *a2 = s2, *a3 = s3;
        for (; i + 32 <= cols; i += 32, d += 2 * stride)
            __asm__ volatile("ld1 {v0.16b}, [%[a0]], #16\n\t ld1 {v1.16b}, [%[a1]], #16\n\t"
                             "ld1 {v2.16b}, [%[a2]], #16\n\t ld1 {v3.16b}, [%[a3]], #16\n\t"
                             "st4 {v0.16b-v3.16b}, [%[d]]\n\t"
                             "ld1 {v4.16b}, [%[a0]], #16\n\t ld1 {v5.16b}, [%[a1]], #16\n\t"
                             "ld1 {v6.16b}, [%[a2]], #16\n\t ld1 {v7.16b}, [%[a3]], #16\n\t"
                             "st4 {v4.16b-v7.16b}, [%[d2]]"
                             : [a0] "+r"(a0), [a1] "+r"(a1), [a2] "+r"(a2), [a3] "+r"(a3)
                             : [d] "r"(d), [d2] "r"(d + stride)
                             : "v0", "v1", "v2", "v3", "v4", "v5", "v6", "v7", "memory");
        for (; i + 16 <= cols; i += 16, d += stride) /* volatile: its outputs are unused after the loop */
            __asm__ volatile("ld1 {v0.16b}, [%[a0]], #16\n\t ld1 {v1.16b}, [%[a1]], #16\n\t"
                             "ld1 {v2.16b}, [%[a2]], #16\n\t ld1 {v3.16b}, [%[a3]], #16\n\t"
                             "st4 {v0.16b-v3.16b}, [%[d]]"
                             : [a0] "+r"(a0), [a1] "+r"(a1), [a2] "+r"(a2), [a3] "+r"(a3)
                             : [d] "r"(d)
                             : "v0", "v1", "v2", "v3", "memory");
        if (i + 8 <= cols) { /* a last half tile (cols is a multiple of 8): the same with 8 bytes */
            __asm__ volatile("ld1 {v0.8b}, [%[a0]]\n\t ld1 {v1.8b}, [%[a1]]\n\t"
                             "ld1 {v2.8b}, [%[a2]]\n\t ld1 {v3.8b}, [%[a3]]\n\t"
                             "st4 {v0.8b-v3.8b}, [%[d]]"
                             :
                             : [a0] "r"(a0), [a1] "r"(a1), [a2] "r"(a2), [a3] "r"(a3), [d] "r"(d)
                             : "v0", "v1", "v2", "v3", "memory");
            i += 8;
        }
    }
#endif
    for (; i + 16 <= cols; i += 16, d += stride)
        for (int k = 0; k < 16; k++) {
            d[4 * k] = (int8_t)(s0[i + k] - c);
            d[4 * k + 1] = (int8_t)(s1[i + k] - c);
            d[4 * k + 2] = (int8_t)(s2[i + k] - c);
            d[4 * k + 3] = (int8_t)(s3[i + k] - c);
        }
    if (i < cols) interleave4(d, s0 + i, s1 + i, s2 + i, s3 + i, cols - i, c);
}

/* A padded input row of build_panel_3x3s2: the LD2s of an output row's last tile read up to
 * padded byte 2·OW + 33. */
static int64_t padded_row_bytes_3x3s2(const ddq_tensor *yt) { return ddq_round_up(2 * yt->shape[3] + 2 + 32, 16); }

int64_t ddq_panel_rows_bytes_3x3s2(const ddq_op *op, const ddq_tensor *xt, const ddq_tensor *wt,
                                   const ddq_tensor *yt) {
    const int64_t C = xt->shape[1], RW = padded_row_bytes_3x3s2(yt);
    if (op->kind != DDQ_OP_CONV2D || wt->shape[1] != C || wt->shape[2] != 3 || wt->shape[3] != 3 ||
        op->stride[0] != 2 || op->stride[1] != 2 || op->dilation[0] != 1 || op->dilation[1] != 1 ||
        op->padding[0] > 1 || op->padding[1] > 1 || yt->shape[3] % 16 || op->padding[1] + xt->shape[3] > RW ||
        ddq_div_ceil(C * 9, 4) > DDQ_MAX_PANEL_GROUPS_3X3S2)
        return 0;
    return (3 * C + 1) * RW;
}

#if defined(__ARM_NEON) && defined(__aarch64__)
/* A 3×3 stride-2 convolution's tiled panel (the stem) built straight from its input rows, for
 * panels of whole output rows whose width is a multiple of 16 (every 16-pixel tile lies in one
 * output row). Per output row, each of the C·3 input rows its taps read is copied once into
 * `rows` as x − c between pad bytes (a padded row: pl pad bytes, the row, pad to its end; rows
 * outside the input are all pad). Tap (ci, ky, kx) of pixels ox0 … ox0 + 15 is then padded
 * columns 2·ox0 + kx + {0, 2, …, 30}: the even bytes of one LD2 at padded byte 2·ox0 + kx, and
 * four taps go into their tile by one ST4. The general path (tap_row, then the interleave)
 * writes every tap row first and costs about four times more. Returns 0 where it does not
 * apply; the set's scratch gives `rows` ddq_panel_rows_bytes_3x3s2 bytes where it does. */
static int build_panel_3x3s2(const ddq_gemm_plan *p, const ddq_op *op, const ddq_tensor *xt, const ddq_tensor *wt,
                             const ddq_tensor *yt, const uint8_t *x, int64_t p0, int64_t n, int8_t *panel,
                             int8_t *rows) {
    const int64_t C = xt->shape[1], H = xt->shape[2], W = xt->shape[3], OW = yt->shape[3];
    const int64_t pt = op->padding[0], pl = op->padding[1], RW = padded_row_bytes_3x3s2(yt);
    if (!p->tiled || p->group != 4 || p0 % OW || n % OW || !ddq_panel_rows_bytes_3x3s2(op, xt, wt, yt)) return 0;
    const uint8_t c = (uint8_t)p->offset;
    int8_t *zero = rows + 3 * C * RW; /* the taps past K (zero weights) */
    memset(zero, 0, (size_t)RW);
    const int8_t *tap[4 * DDQ_MAX_PANEL_GROUPS_3X3S2];
    for (int64_t r = 0; r < p->KG * 4; r++) /* tap r = (ci, ky, kx): padded row ci·3 + ky, byte kx */
        tap[r] = r < p->K ? rows + (r / 3) * RW + r % 3 : zero;
    const int64_t tile_bytes = p->KG * 64;
    const int8x16_t padv = vdupq_n_s8((int8_t)p->pad);
    for (int64_t q = p0; q < p0 + n; q += OW) {
        const int64_t oy = q / OW;
        for (int64_t ci = 0; ci < C; ci++)
            for (int64_t ky = 0; ky < 3; ky++) {
                int8_t *d = rows + (ci * 3 + ky) * RW;
                const int64_t iy = 2 * oy - pt + ky;
                if (iy < 0 || iy >= H) {
                    memset(d, p->pad, (size_t)RW);
                    continue;
                }
                /* the pad around the row: pl ≤ 1 byte before it, 16-byte stores after it to RW */
                if (pl) d[0] = (int8_t)p->pad;
                for (int64_t e = pl + W; e < RW; e += 16) vst1q_s8(d + (e + 16 <= RW ? e : RW - 16), padv);
                ddq_offset_copy(d + pl, x + (ci * H + iy) * W, W, c);
            }
        /* group by group, the tiles of the row: LD2 into overlapping register pairs leaves the
         * even bytes of the four loads in v0 … v3, ready for the ST4 */
        int8_t *const t0 = panel + (q - p0) / 16 * tile_bytes;
        for (int64_t g = 0; g < p->KG; g++) {
            const int8_t *a0 = tap[4 * g], *a1 = tap[4 * g + 1], *a2 = tap[4 * g + 2], *a3 = tap[4 * g + 3];
            int8_t *d = t0 + g * 64;
            for (int64_t ox0 = 0; ox0 < OW; ox0 += 16)
                __asm__ volatile("ld2 {v0.16b, v1.16b}, [%[a0]], #32\n\t ld2 {v1.16b, v2.16b}, [%[a1]], #32\n\t"
                                 "ld2 {v2.16b, v3.16b}, [%[a2]], #32\n\t ld2 {v3.16b, v4.16b}, [%[a3]], #32\n\t"
                                 "st4 {v0.16b-v3.16b}, [%[d]], %[step]"
                                 : [a0] "+r"(a0), [a1] "+r"(a1), [a2] "+r"(a2), [a3] "+r"(a3), [d] "+r"(d)
                                 : [step] "r"(tile_bytes)
                                 : "v0", "v1", "v2", "v3", "v4", "memory");
        }
    }
    return 1;
}
#endif

void ddq_build_panel(const ddq_gemm_plan *p, const ddq_op *op, const ddq_tensor *xt, const ddq_tensor *wt,
                     const ddq_tensor *yt, const uint8_t *x, int64_t p0, int64_t n, int8_t *panel, int8_t *rows) {
    const int G = p->group;
    const int64_t PP = p->panel_pixels, cols = ddq_round_up(n, 8), pitch = PP * G;
    const int plain_1x1 = op->kind == DDQ_OP_FULLY_CONNECTED ||
                          (wt->shape[2] == 1 && wt->shape[3] == 1 && op->stride[0] == 1 && op->stride[1] == 1 &&
                           op->padding[0] == 0 && op->padding[1] == 0 && op->padding[2] == 0 && op->padding[3] == 0);
    const int64_t HW = op->kind == DDQ_OP_FULLY_CONNECTED ? 1 : xt->shape[2] * xt->shape[3];
    /* A plain 1×1 reads its rows straight from x (the interleave subtracts c): a row's columns
     * past n hold the next pixels, whose outputs are not stored, and only a row whose columns
     * would run past the end of x is first copied into `rows`. Other convolutions write each tap
     * row, offset, into `rows`. */
    const int direct = plain_1x1;
#if defined(__ARM_NEON) && defined(__aarch64__)
    if (!direct && build_panel_3x3s2(p, op, xt, wt, yt, x, p0, n, panel, rows)) return;
#endif
    int64_t g = 0;
    if (direct && p->tiled) {
        /* the groups whose four rows all lie inside x, straight from it (no per-row cases) */
        const int8_t c = (int8_t)(uint8_t)p->offset;
        const uint8_t *r0 = x + p0;
        for (; 4 * g + 3 < p->K && (4 * g + 3) * HW + p0 + cols <= p->K * HW; g++, r0 += 4 * HW)
            interleave4_tiled(panel + g * 64, p->KG * 64, (const int8_t *)r0, (const int8_t *)(r0 + HW),
                              (const int8_t *)(r0 + 2 * HW), (const int8_t *)(r0 + 3 * HW), cols, c);
    }
    for (; g < p->KG; g++) {
        const int8_t *src[4];
        for (int j = 0; j < G; j++) {
            const int64_t r = g * G + j;
            int8_t *d = rows + j * PP;
            if (r >= p->K) {
                memset(d, direct ? p->offset : 0, (size_t)cols); /* taps past K meet zero weights */
            } else if (direct && r * HW + p0 + cols <= p->K * HW) {
                d = (int8_t *)(x + r * HW + p0);
            } else if (direct) {
                memcpy(d, x + r * HW + p0, (size_t)n);
                memset(d + n, p->offset, (size_t)(cols - n));
            } else {
                tap_row(p, op, xt, wt, yt, x, r, p0, n, d);
                memset(d + n, p->pad, (size_t)(cols - n));
            }
            src[j] = d;
        }
        const int8_t c = direct ? (int8_t)(uint8_t)p->offset : 0;
        if (p->tiled) {
            interleave4_tiled(panel + g * 16 * G, p->KG * 16 * G, src[0], src[1], src[2], src[3], cols, c);
            continue;
        }
        int8_t *dst = panel + g * pitch;
        if (G == 2) interleave2(dst, src[0], src[1], cols, c);
        else interleave4(dst, src[0], src[1], src[2], src[3], cols, c);
    }
}

size_t ddq_gemm_panel_scratch_bytes(int64_t KG, int group, int64_t panel_pixels) {
    return (size_t)(ddq_round_up(KG * panel_pixels * group, 64) + ddq_round_up(group * panel_pixels, 64));
}

size_t ddq_gemm_scratch_bytes(const ddq_model *model, const ddq_op *op, int group, int64_t panel_bytes) {
    const ddq_tensor *wt = &model->tensors[op->inputs[1]], *yt = &model->tensors[op->output];
    const int64_t K = wt->elements / wt->shape[0];
    const int64_t PP = ddq_gemm_panel_pixels_for(K, op_pixels(op, yt), panel_bytes);
    return ddq_gemm_panel_scratch_bytes((K + group - 1) / group, group, PP);
}
