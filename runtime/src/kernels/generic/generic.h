/* The `generic` kernel set: portable C11 written so that compilers vectorize it (SSE2/AVX on
 * x86, Advanced SIMD on aarch64), and the parts the `neon` set shares with it: how a conv2d is
 * classified, its prepared (packed) weights, and the int16 panels the fast kernels read.
 *
 * Exactness: every product w · (x − zp) is formed from int16 operands (|w| ≤ 127 as int8 codes,
 * |x − zp| ≤ 255) into int32, and sums stay in int32, which the loader's accumulator bound
 * (docs/runtime.md) guarantees for every partial sum in any order. Integer sums do not depend
 * on their order, so the kernels match the reference bit for bit; the requantization is
 * ddq_mbqm (docs/arithmetic.md §5) or an exact vector form of it. */
#ifndef DDQ_KERNELS_GENERIC_H
#define DDQ_KERNELS_GENERIC_H

#include "../gemm_plan.h"
#include "../reference/reference.h"

/* How the fast sets compute a conv2d. */
enum ddq_conv_path {
    DDQ_CONV_REFERENCE = 0, /* anything else: the reference kernel */
    DDQ_CONV_GEMM,          /* groups = 1, any kernel, stride, dilation, padding: int16 im2col + GEMM */
    DDQ_CONV_DW3X3,         /* depthwise (groups = C = O), 3×3, stride 1 or 2 each way, dilation 1 */
    /* never a classification: what neon prepared for a GEMM on pairs of taps (neon.h), and for a
     * fully_connected (fully_connected__neon.c) */
    DDQ_CONV_GEMM_ACC8,
    DDQ_CONV_GEMM_MULL,
    DDQ_FC_BYTES,
};

/* The GEMM's output-channel block: weights are packed [⌈O/8⌉][K][8] (K = C·KH·KW). */
#define DDQ_GEMM_BLOCK 8
/* Largest int16 input panel: big enough that most layers take their whole map in one panel (few
 * partial tiles); rows are read in order once per block of channels. */
#define DDQ_GEMM_PANEL_BYTES 49152

/* What prepare() returns for a conv2d the fast sets compute themselves. */
typedef struct ddq_packed_conv {
    int path;             /* enum ddq_conv_path, never DDQ_CONV_REFERENCE */
    int64_t K;            /* GEMM: rows of the panel and of each weight block, C·KH·KW */
    int64_t panel_pixels; /* GEMM: pixels (columns) per panel, a multiple of 8 */
    int16_t *w;           /* GEMM: [⌈O/8⌉][K][8]; DW3X3: [9][O + 8]; zero past the last channel */
    /* GEMM: per block of 8 output channels, the rows K_blk of a k-block summed in int16 lanes
     * (neon's acc16 path; ddq_acc16_kblk), or 0: the int32 path. NULL for DW3X3. */
    int64_t *kblk;
    int64_t acc16_blocks; /* GEMM: how many blocks have kblk > 0 */
    /* per output channel, [round_up(O, 8) + 8], zero past O: the biases */
    int32_t *bias;
    /* the requantization constants per output channel (int64 form, and the fast form where the
     * accumulator bounds allow it: gemm_plan.h) */
    ddq_requant_plan rq;
    /* GEMM, neon's int16 tiles with the bias in the sums (plan_bias16): per output channel
     * [round_up(O, 8) + 8] the bias as int16 and 2^l (l = 14 + shift), and per block of 8 whether
     * every channel of it qualifies: bias + Σ w·v within int16 for every input v and
     * 0 ≤ l ≤ 14. */
    int16_t *bias16, *scale16;
    uint8_t *bias16_ok;
} ddq_packed_conv;

int ddq_conv_path(const ddq_op *op, const ddq_tensor *x, const ddq_tensor *w);

/* int16 accumulation ("acc16"): the largest K_blk in [DDQ_ACC16_MIN_KBLK, K] such that, for each
 * of the n (≤ 8) channels of w (row-major [n][K] int8 codes) and each k-block
 * [i·K_blk, min((i + 1)·K_blk, K)), Σ |w[o][r]| · span ≤ DDQ_ACC16_LIMIT, where span =
 * max(qmax − zp, zp − qmin) of the input grid; 0 if there is none. Every partial sum of
 * w · (x − zp) within a k-block then fits int16 (the same exact-bound style as the loader's
 * int32 accumulator check). */
#define DDQ_ACC16_LIMIT 32767
#define DDQ_ACC16_MIN_KBLK 4
int64_t ddq_acc16_kblk(const int8_t *w, int64_t n, int64_t K, int64_t span);
/* Panel width for K rows and P output pixels: a multiple of 8, at most round_up(P, 8). */
int64_t ddq_gemm_panel_pixels(int64_t K, int64_t P);

/* The hooks of both fast sets (same packing, same scratch). */
void *ddq_prepare__generic(const ddq_model *model, const ddq_op *op);
void ddq_release__generic(void *prepared);
size_t ddq_scratch_bytes__generic(const ddq_model *model, const ddq_op *op);

/* im2col into int16: panel[r · nps + j] = x − zp of the input tap r = (ci, ky, kx) read by output
 * pixel p0 + j, 0 for padding, for j < n; and 0 for n ≤ j < round_up(n, 8). */
void ddq_im2col_panel(const ddq_op_args *a, int64_t p0, int64_t n, int64_t nps, int16_t *panel);

/* Depthwise: the padded input of 8 channels c0 … c0 + 7 interleaved, int16 x − zp, 0 in the
 * padding: T[(py · cols + px) · 8 + lane] for the rows × cols padded positions the outputs read.
 * ddq_dw_zero clears it (once per call: the padding stays 0), ddq_dw_fill_c8 writes the inside
 * for lanes 0 … n − 1 (lanes ≥ n keep what they had; their outputs are not stored). */
typedef struct ddq_dw_geometry {
    int64_t rows, cols;
} ddq_dw_geometry;
ddq_dw_geometry ddq_dw_geometry_of(const ddq_op *op, const ddq_tensor *y);
void ddq_dw_zero(ddq_dw_geometry g, int16_t *T);
void ddq_dw_fill_c8(const ddq_op_args *a, int64_t c0, int64_t n, ddq_dw_geometry g, int16_t *T);

/* y[i] = clamp(MBQM(acc[i] + bias, m) + zp, lo, hi): ddq_mbqm and ddq_clamp_code, in a loop. */
static inline void ddq_requantize_row(const int32_t *restrict acc, int64_t n, int32_t bias, ddq_multiplier m,
                                      int32_t zp, int32_t lo, int32_t hi, uint8_t *restrict y) {
    const int t = 31 - m.shift;
    const int64_t round = (int64_t)1 << (t - 1);
    for (int64_t i = 0; i < n; i++) {
        const int64_t v = ((((int64_t)(acc[i] + bias) * m.m0 + round) >> t)) + zp;
        y[i] = (uint8_t)(v < lo ? lo : v > hi ? hi : v);
    }
}

void ddq_conv_gemm__generic(const ddq_op_args *a, int64_t begin, int64_t end);
void ddq_dwconv3x3_c8__generic(const ddq_op_args *a, int64_t begin, int64_t end);
void ddq_conv2d__generic(const ddq_op_args *a, int64_t begin, int64_t end);
void ddq_fully_connected__generic(const ddq_op_args *a, int64_t begin, int64_t end);

#endif
