/* The fast sets' per-op preparation (shared by `generic` and `neon`): which path a conv2d takes,
 * its weights packed for the GEMM, and the per-thread scratch each op's kernel needs. */
#include <stdlib.h>
#include <string.h>

#include "generic.h"

static size_t round_up_64(size_t n) { return (n + 63) / 64 * 64; }

int ddq_conv_path(const ddq_op *op, const ddq_tensor *x, const ddq_tensor *w) {
    if (op->kind != DDQ_OP_CONV2D) return DDQ_CONV_REFERENCE;
    const int64_t C = x->shape[1], O = w->shape[0], Cg = w->shape[1], KH = w->shape[2], KW = w->shape[3];
    if (op->groups == 1) return DDQ_CONV_GEMM;
    if (op->groups == C && O == C && Cg == 1 && KH == 3 && KW == 3 && op->dilation[0] == 1 &&
        op->dilation[1] == 1 && (op->stride[0] == 1 || op->stride[0] == 2) &&
        (op->stride[1] == 1 || op->stride[1] == 2))
        return DDQ_CONV_DW3X3;
    return DDQ_CONV_REFERENCE;
}

int64_t ddq_gemm_panel_pixels(int64_t K, int64_t P) {
    int64_t n = DDQ_GEMM_PANEL_BYTES / (2 * K) / 8 * 8;
    const int64_t all = (P + 7) / 8 * 8;
    if (n < 8) n = 8;
    return n < all ? n : all;
}

ddq_dw_geometry ddq_dw_geometry_of(const ddq_op *op, const ddq_tensor *y) {
    return (ddq_dw_geometry){(y->shape[2] - 1) * op->stride[0] + 3, (y->shape[3] - 1) * op->stride[1] + 3};
}

/* Per-channel biases and requantization constants, zero (−31 for −t) from channel O on: vector
 * loads of 8 channels from any channel below O stay inside the arrays. */
static int pack_channels(ddq_packed_conv *p, const ddq_op *op, const ddq_tensor *bt, int64_t O) {
    const int64_t n = (O + 7) / 8 * 8 + 8;
    p->bias = calloc((size_t)n, sizeof *p->bias);
    if (!p->bias) return 0;
    const int32_t *bias = bt->data;
    for (int64_t o = 0; o < O; o++) p->bias[o] = bias[o];
    return ddq_requant_plan_init(&p->rq, op->channel_multipliers, op->channel_bounds, O);
}

int64_t ddq_acc16_kblk(const int8_t *w, int64_t n, int64_t K, int64_t span) {
    /* No k-block can be longer than the first one, [0, first), that fits every channel (the
     * sums only grow with e): a scan per channel that stops where its prefix passes the limit,
     * which for 8-bit weights is after a few taps, so most blocks are settled without the table
     * below (whose search from K − 1 down was quadratic in K). */
    int64_t first = K;
    for (int64_t o = 0; o < n; o++) {
        int64_t sum = 0, e = 0;
        for (; e < first; e++) {
            sum += (w[o * K + e] < 0 ? -w[o * K + e] : w[o * K + e]) * span;
            if (sum > DDQ_ACC16_LIMIT) break;
        }
        first = e;
    }
    if (first == K) return K; /* the common case: one k-block */
    if (first < DDQ_ACC16_MIN_KBLK) return 0;
    /* S[o][r] = Σ_{r' < r} |w[o][r']| · span; a k-block [s, e) fits when S[o][e] − S[o][s] ≤ limit */
    int64_t *S = malloc((size_t)(n * (K + 1)) * sizeof *S);
    if (!S) return 0; /* the int32 path is always exact */
    for (int64_t o = 0; o < n; o++) {
        int64_t *so = S + o * (K + 1);
        so[0] = 0;
        for (int64_t r = 0; r < K; r++) so[r + 1] = so[r] + (w[o * K + r] < 0 ? -w[o * K + r] : w[o * K + r]) * span;
    }
    int64_t found = 0;
    for (int64_t k = first; !found && k >= DDQ_ACC16_MIN_KBLK; k--) {
        int fits = 1;
        for (int64_t b = 0; fits && b < K; b += k) {
            const int64_t e = K - b < k ? K : b + k;
            for (int64_t o = 0; o < n; o++)
                if (S[o * (K + 1) + e] - S[o * (K + 1) + b] > DDQ_ACC16_LIMIT) {
                    fits = 0;
                    break;
                }
        }
        if (fits) found = k;
    }
    free(S);
    return found;
}

/* Per block of 8 output channels, K_blk for the int16 accumulation (0: int32), from the
 * weights and the input grid. */
static int plan_acc16(ddq_packed_conv *p, const ddq_tensor *xt, const ddq_tensor *wt, int64_t O, int64_t K) {
    const int64_t blocks = (O + DDQ_GEMM_BLOCK - 1) / DDQ_GEMM_BLOCK;
    const int64_t up = xt->qmax - xt->zero_point, down = xt->zero_point - xt->qmin;
    const int64_t span = up > down ? up : down;
    p->kblk = calloc((size_t)blocks, sizeof *p->kblk);
    if (!p->kblk) return 0;
    const int8_t *w = wt->data;
    for (int64_t b = 0; b < blocks; b++) {
        const int64_t o0 = b * DDQ_GEMM_BLOCK, n = O - o0 < DDQ_GEMM_BLOCK ? O - o0 : DDQ_GEMM_BLOCK;
        p->kblk[b] = K >= DDQ_ACC16_MIN_KBLK ? ddq_acc16_kblk(w + o0 * K, n, K, span) : 0;
        p->acc16_blocks += p->kblk[b] > 0;
    }
    return 1;
}

/* The int16 sums with the bias (ddq_packed_conv.bias16): channel o qualifies when
 * bias + Σ_r w[o][r]·v lies in int16 for every v ∈ [qmin − zp, qmax − zp] (interval arithmetic
 * per product; the panel's padding reads 0, which is inside), so the sum is exact in int16
 * lanes whatever the order, and when l = 14 + shift ∈ [0, 14], so that the sum times 2^l is an
 * int16 × int16 product and |sum · 2^l| < 2^31 holds for the fast requantization. */
static int plan_bias16(ddq_packed_conv *p, const ddq_op *op, const ddq_tensor *xt, const ddq_tensor *wt,
                       const ddq_tensor *bt, int64_t O, int64_t K) {
    const int64_t blocks = (O + DDQ_GEMM_BLOCK - 1) / DDQ_GEMM_BLOCK, n = blocks * DDQ_GEMM_BLOCK + 8;
    p->bias16 = calloc((size_t)n, sizeof *p->bias16);
    p->scale16 = calloc((size_t)n, sizeof *p->scale16);
    p->bias16_ok = calloc((size_t)blocks, 1);
    if (!p->bias16 || !p->scale16 || !p->bias16_ok) return 0;
    const int64_t lo = xt->qmin - xt->zero_point, hi = xt->qmax - xt->zero_point;
    const int8_t *w = wt->data;
    const int32_t *bias = bt->data;
    for (int64_t b = 0; b < blocks; b++) p->bias16_ok[b] = 1;
    for (int64_t o = 0; o < n; o++) p->scale16[o] = 1;
    for (int64_t o = 0; o < O; o++) {
        int64_t mn = bias[o], mx = bias[o];
        /* int32 partial sums (|w·v| ≤ 128 · 255), over chunks that cannot overflow: the loop
         * vectorizes */
        for (int64_t r0 = 0; r0 < K; r0 += 65536) {
            const int64_t r1 = K - r0 < 65536 ? K : r0 + 65536;
            int32_t pmn = 0, pmx = 0;
            for (int64_t r = r0; r < r1; r++) {
                const int32_t a = w[o * K + r] * (int32_t)lo, c = w[o * K + r] * (int32_t)hi;
                pmn += a < c ? a : c;
                pmx += a < c ? c : a;
            }
            mn += pmn;
            mx += pmx;
        }
        const int l = 14 + op->channel_multipliers[o].shift;
        if (mn < INT16_MIN || mx > INT16_MAX || l < 0 || l > 14) {
            p->bias16_ok[o / DDQ_GEMM_BLOCK] = 0;
            continue;
        }
        p->bias16[o] = (int16_t)bias[o];
        p->scale16[o] = (int16_t)(1 << l);
    }
    return 1;
}

static ddq_packed_conv *pack_gemm(const ddq_op *op, const ddq_tensor *xt, const ddq_tensor *wt,
                                  const ddq_tensor *bt, const ddq_tensor *yt) {
    ddq_packed_conv *p = calloc(1, sizeof *p);
    if (!p) return NULL;
    const int64_t O = wt->shape[0], K = wt->shape[1] * wt->shape[2] * wt->shape[3];
    const int64_t blocks = (O + DDQ_GEMM_BLOCK - 1) / DDQ_GEMM_BLOCK;
    const size_t bytes = round_up_64((size_t)(blocks * K * DDQ_GEMM_BLOCK) * sizeof(int16_t));
    p->path = DDQ_CONV_GEMM;
    p->w = aligned_alloc(64, bytes);
    if (!p->w || !pack_channels(p, op, bt, O) || !plan_acc16(p, xt, wt, O, K) ||
        !plan_bias16(p, op, xt, wt, bt, O, K)) {
        ddq_release__generic(p);
        return NULL;
    }
    memset(p->w, 0, bytes);
    const int8_t *w = wt->data;
    for (int64_t o = 0; o < O; o++)
        for (int64_t r = 0; r < K; r++)
            p->w[((o / DDQ_GEMM_BLOCK) * K + r) * DDQ_GEMM_BLOCK + o % DDQ_GEMM_BLOCK] = w[o * K + r];
    p->K = K;
    p->panel_pixels = ddq_gemm_panel_pixels(K, yt->shape[2] * yt->shape[3]);
    return p;
}

static ddq_packed_conv *pack_dw(const ddq_op *op, const ddq_tensor *xt, const ddq_tensor *wt,
                                const ddq_tensor *bt) {
    ddq_packed_conv *p = calloc(1, sizeof *p);
    if (!p) return NULL;
    const int64_t C = wt->shape[0], Cp = C + 8;
    p->path = DDQ_CONV_DW3X3;
    p->w = calloc((size_t)(9 * Cp), sizeof *p->w);
    if (!p->w || !pack_channels(p, op, bt, C)) {
        ddq_release__generic(p);
        return NULL;
    }
    const int8_t *w = wt->data;
    for (int64_t c = 0; c < C; c++)
        for (int k = 0; k < 9; k++) p->w[k * Cp + c] = w[c * 9 + k];
    return p;
}

void *ddq_prepare__generic(const ddq_model *model, const ddq_op *op) {
    if (op->kind != DDQ_OP_CONV2D) return NULL;
    const ddq_tensor *xt = &model->tensors[op->inputs[0]], *wt = &model->tensors[op->inputs[1]];
    switch (ddq_conv_path(op, xt, wt)) {
    case DDQ_CONV_GEMM:
        return pack_gemm(op, xt, wt, &model->tensors[op->inputs[2]], &model->tensors[op->output]);
    case DDQ_CONV_DW3X3:
        return pack_dw(op, xt, wt, &model->tensors[op->inputs[2]]);
    default:
        return NULL; /* a NULL also stands for "no memory": the kernel then runs the reference code */
    }
}

void ddq_release__generic(void *prepared) {
    ddq_packed_conv *p = prepared;
    free(p->w);
    free(p->kblk);
    free(p->bias16);
    free(p->scale16);
    free(p->bias16_ok);
    free(p->bias);
    ddq_requant_plan_free(&p->rq);
    free(p);
}

size_t ddq_scratch_bytes__generic(const ddq_model *model, const ddq_op *op) {
    const ddq_tensor *xt = &model->tensors[op->inputs[0]], *yt = &model->tensors[op->output];
    if (op->kind == DDQ_OP_FULLY_CONNECTED) return (size_t)xt->shape[1] * sizeof(int16_t); /* x − zp */
    if (op->kind != DDQ_OP_CONV2D) return 0;
    const ddq_tensor *wt = &model->tensors[op->inputs[1]];
    switch (ddq_conv_path(op, xt, wt)) {
    case DDQ_CONV_GEMM: {
        /* K panel rows and one of slack: GCC 12 vectorizes tile_8x4 on aarch64 with each row's
         * four pixels loaded together with the next row's (a lane load it then drops), so the
         * last row's tile reads one row past the panel (a fault where the panel ends a page) */
        const int64_t K = wt->shape[1] * wt->shape[2] * wt->shape[3];
        return (size_t)((K + 1) * ddq_gemm_panel_pixels(K, yt->shape[2] * yt->shape[3])) * sizeof(int16_t);
    }
    case DDQ_CONV_DW3X3: {
        const ddq_dw_geometry g = ddq_dw_geometry_of(op, yt);
        return (size_t)(g.rows * g.cols * 8) * sizeof(int16_t);
    }
    default:
        return 0;
    }
}
