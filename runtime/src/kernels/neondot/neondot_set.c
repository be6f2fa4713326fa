/* The `neondot` set (ARMv8.2 dot product): conv2d with groups = 1 and fully_connected as SDOT
 * GEMMs on the shared preparation of ../gemm_plan.h, depthwise 3×3 with SDOT on NCHW rows where
 * its support check passes; every other op, and every other conv2d path (reference), is the
 * `neon` set's. Chosen where the kernel reports
 * HWCAP_ASIMDDP (Cortex-A76 / Pi 5; QEMU's cortex-a53 and cortex-a72 models hide it). */
#include <stdlib.h>
#include <string.h>

#include "neondot.h"

#if defined(__linux__)
#include <sys/auxv.h>
#endif

static int neondot_available(void) {
#if defined(__linux__)
    return (getauxval(AT_HWCAP) & (1ul << 20)) != 0; /* HWCAP_ASIMDDP */
#else
    return 0; /* FEAT_DotProd is optional before ARMv8.4: without the kernel's word, never assume it */
#endif
}

static int is_sdot_gemm(const ddq_model *model, const ddq_op *op) {
    if (op->kind == DDQ_OP_FULLY_CONNECTED) return 1;
    return op->kind == DDQ_OP_CONV2D &&
           ddq_conv_path(op, &model->tensors[op->inputs[0]], &model->tensors[op->inputs[1]]) == DDQ_CONV_GEMM;
}

/* The conv GEMM's panel width: a multiple of 16 pixels (the tiles'), so that of a map split into
 * several panels only the last one has a tail, and whole tiles of 16 fit a map's last panel. */
static int64_t conv_panel_pixels(const ddq_model *model, const ddq_op *op) {
    const ddq_tensor *wt = &model->tensors[op->inputs[1]], *yt = &model->tensors[op->output];
    const int64_t K = wt->elements / wt->shape[0], P = yt->shape[2] * yt->shape[3], OW = yt->shape[3];
    const int64_t n = ddq_gemm_panel_pixels_for(K, P, DDQ_SDOT_PANEL_BYTES);
    if (n >= P) return (P + 15) / 16 * 16;
    /* whole output rows where they are tiles (ddq_build_panel's 3×3 stride-2 path) */
    if (OW % 16 == 0 && n >= OW) return n / OW * OW;
    return n >= 16 ? n / 16 * 16 : n;
}

static int is_dw3x3(const ddq_model *model, const ddq_op *op) {
    return op->kind == DDQ_OP_CONV2D &&
           ddq_conv_path(op, &model->tensors[op->inputs[0]], &model->tensors[op->inputs[1]]) == DDQ_CONV_DW3X3;
}

static void neondot_release(void *prepared) {
    ddq_sdot_gemm *g = prepared;
    if (g->path == DDQ_DW3X3_SDOT) {
        ddq_dw_release__neondot(prepared);
        return;
    }
    if (g->path != DDQ_CONV_GEMM_SDOT) {
        ddq_release__neon(prepared);
        return;
    }
    ddq_gemm_plan_free(g->plan);
    free(g->rshrn);
    free(g);
}

/* One rounding shift R for every channel of a block of a conv plan: channel o's rounding shift
 * in the fast form is r = −shift (multipliers below 1; the fast form's left shift takes the
 * others), and with its weights and bias scaled by 2^l, l = R − r, its accumulator is
 * (acc + bias)·2^l and the fast form with that l rounds by R (gemm_plan.h: SQDMULH(x·2^l, m0)
 * rounded by t − 31 + l). So with R the block's largest r (at least 1), every channel of the
 * block rounds by R where the scaled weights still fit int8 and the bound of the scaled
 * accumulators int32; then one immediate shift serves the block's tiles (SQRSHRN #R,
 * conv_gemm_6x16c4__neondot.c). A block rather than the whole op: the spread of shifts, and so
 * of scales, is smaller among 6 channels than among all of them. Returns R, or 0 (the block
 * unchanged) where some channel does not admit it. */
static int block_rounding_shift(const ddq_model *model, const ddq_op *op, ddq_gemm_plan *p, int64_t b) {
    const ddq_tensor *wt = &model->tensors[op->inputs[1]];
    const ddq_multiplier *m = op->channel_multipliers;
    const int64_t BR = p->R, o0 = b * BR, o1 = o0 + BR < p->O ? o0 + BR : p->O;
    int R = 1;
    for (int64_t o = o0; o < o1; o++)
        if (m[o].m0 != 0 && -m[o].shift > R) R = -m[o].shift;
    if (R > 16) return 0;
    /* the check on the model's rows (contiguous), before anything changes */
    for (int64_t o = o0; o < o1; o++) {
        if (m[o].m0 == 0) continue; /* its outputs are the zero point whatever its sums */
        const int l = R + m[o].shift;
        if (l > 7 || (op->channel_bounds[o] << l) > INT32_MAX) return 0;
        const int8_t *w = (const int8_t *)wt->data + o * p->K;
        int8_t lo = 0, hi = 0; /* bytes: SMIN / SMAX on 16 of them at a time */
        for (int64_t k = 0; k < p->K; k++) {
            lo = w[k] < lo ? w[k] : lo;
            hi = w[k] > hi ? w[k] : hi;
        }
        if (lo * (1 << l) < INT8_MIN || hi * (1 << l) > INT8_MAX) return 0;
    }
    /* the block's packed weights [KG][R][4], each channel's four taps of a group by its 2^l: as
     * one 32-bit word shifted by l, each byte's low l bits cleared of what the byte below
     * shifted in (the products fit a byte, so each is the low byte of b · 2^l) */
    uint8_t *w = (uint8_t *)p->w + b * p->KG * BR * DDQ_SDOT_GROUP;
    for (int64_t g = 0; g < p->KG; g++)
        for (int64_t o = o0; o < o0 + BR; o++, w += DDQ_SDOT_GROUP) {
            const int l = o < o1 && m[o].m0 != 0 ? R + m[o].shift : 0;
            uint32_t v;
            memcpy(&v, w, sizeof v);
            v = (v << l) & (0x01010101u * ((0xFFu << l) & 0xFFu));
            memcpy(w, &v, sizeof v);
        }
    for (int64_t o = o0; o < o1; o++) {
        if (m[o].m0 == 0) continue;
        p->bias[o] = (int32_t)((uint32_t)p->bias[o] << (R + m[o].shift)); /* mod 2^32, as the sums wrap */
        p->rq.lshift[o] = 0;
        p->rq.neg_rshift[o] = -R;
    }
    return R;
}

/* block_rounding_shift for every block: g->rshrn, or NULL where no block has one (or no memory:
 * the tiles then take the other forms). */
static void block_rounding_shifts(const ddq_model *model, const ddq_op *op, ddq_sdot_gemm *g) {
    ddq_gemm_plan *p = g->plan;
    if (!p->rq.fast || !(g->rshrn = calloc((size_t)p->blocks, 1))) return;
    int any = 0;
    for (int64_t b = 0; b < p->blocks; b++) any |= (g->rshrn[b] = (uint8_t)block_rounding_shift(model, op, p, b));
    int lshift_any = 0;
    for (int64_t o = 0; o < p->O; o++) lshift_any |= p->rq.lshift[o] != 0;
    p->rq.lshift_any = lshift_any;
    if (!any) {
        free(g->rshrn);
        g->rshrn = NULL;
    }
}

static void *neondot_prepare(const ddq_model *model, const ddq_op *op) {
    if (is_dw3x3(model, op)) {
        ddq_sdot_dw *d = ddq_dw_prepare__neondot(model, op);
        return d ? (void *)d : ddq_prepare__neon(model, op);
    }
    if (!is_sdot_gemm(model, op)) return ddq_prepare__neon(model, op);
    const int fc = op->kind == DDQ_OP_FULLY_CONNECTED;
    ddq_sdot_gemm *g = calloc(1, sizeof *g);
    if (!g) return NULL;
    g->path = DDQ_CONV_GEMM_SDOT;
    g->plan = ddq_gemm_plan_create(model, op, DDQ_SDOT_GROUP, fc ? DDQ_SDOT_FC_R : DDQ_SDOT_CONV_R,
                                   DDQ_OFFSET_ZERO_IF_FITS, DDQ_SDOT_PANEL_BYTES);
    if (!g->plan) {
        free(g);
        return NULL;
    }
    if (!fc) {
        ddq_gemm_plan *p = g->plan;
        p->panel_pixels = conv_panel_pixels(model, op);
        p->tiled = 1;
        block_rounding_shifts(model, op, g);
        /* the fast requantization's rounding shifts as SQRDMULH multipliers k = 2^(31 − r) and,
         * where every channel's r lies in a + 1 … a + 7 for one a = 0 … 3 (the narrow to int16
         * floors by 2^a first), k16 = 2^(15 − r + a) (conv_gemm_6x16c4__neondot.c); r = 0 only
         * past O, where m0 = 0 */
        const int64_t channels = ddq_sdot_channels(p);
        int32_t *k = calloc((size_t)channels, sizeof(int32_t) + sizeof(int16_t));
        if (!k) {
            neondot_release(g);
            return NULL;
        }
        int16_t *k16 = (int16_t *)(k + channels);
        for (int64_t o = 0; o < channels && o < p->O + DDQ_PLAN_CHANNEL_SLACK; o++) {
            const int r = -p->rq.neg_rshift[o];
            if (r >= 1) k[o] = (int32_t)(1u << (31 - r));
        }
        const int a = ddq_sdot_round16_shift(&p->rq, p->O);
        g->round16 = a >= 0;
        g->round16_shift = g->round16 ? a : 0;
        for (int64_t o = 0; g->round16 && o < p->O; o++) k16[o] = ddq_sdot_k16_of(&p->rq, o, a);
        p->extra = k;
    }
    return g;
}

static size_t neondot_scratch_bytes(const ddq_model *model, const ddq_op *op) {
    if (op->kind == DDQ_OP_FULLY_CONNECTED) return ddq_fc_scratch_bytes__neondot(model, op);
    if (is_sdot_gemm(model, op)) {
        const ddq_tensor *wt = &model->tensors[op->inputs[1]];
        const int64_t KG = (wt->elements / wt->shape[0] + DDQ_SDOT_GROUP - 1) / DDQ_SDOT_GROUP;
        const size_t rows = (size_t)ddq_panel_rows_bytes_3x3s2(op, &model->tensors[op->inputs[0]], wt,
                                                               &model->tensors[op->output]);
        const int64_t PP = conv_panel_pixels(model, op);
        const size_t bytes = ddq_gemm_panel_scratch_bytes(KG, DDQ_SDOT_GROUP, PP);
        /* the 3×3 stride-2 panel's padded rows take the place of the tap rows, after the panel */
        const size_t panel = (size_t)ddq_round_up(KG * PP * DDQ_SDOT_GROUP, 64);
        return (size_t)ddq_sdot_tail_bytes(KG) + (bytes > panel + rows ? bytes : panel + rows);
    }
    const size_t neon = ddq_scratch_bytes__neon(model, op);
    if (!is_dw3x3(model, op)) return neon;
    /* either depthwise kernel (prepare picks one) */
    const size_t rows = ddq_dw_scratch_bytes__neondot(model, op);
    return rows > neon ? rows : neon;
}

/* A NULL (no memory at session creation) falls back to the neon set's code, which computes the
 * op without its own preparation. */
static void neondot_conv2d(const ddq_op_args *a, int64_t begin, int64_t end) {
    const int *path = a->prepared;
    if (path && *path == DDQ_CONV_GEMM_SDOT) ddq_conv_gemm__neondot(a, begin, end);
    else if (path && *path == DDQ_DW3X3_SDOT) ddq_dwconv3x3__neondot(a, begin, end);
    else ddq_conv2d__neon(a, begin, end);
}

static void neondot_fully_connected(const ddq_op_args *a, int64_t begin, int64_t end) {
    if (a->prepared) ddq_fully_connected__neondot(a, begin, end);
    else ddq_fully_connected__neon(a, begin, end);
}

const ddq_kernel_set ddq_kernels_neondot = {
    .name = "neondot",
    .available = neondot_available,
    .ops = DDQ_NEON_OPS(neondot_conv2d, neondot_fully_connected),
    .prepare = neondot_prepare,
    .release = neondot_release,
    .scratch_bytes = neondot_scratch_bytes,
};
