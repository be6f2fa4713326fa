/* The `neon` kernel set: aarch64 Advanced SIMD (ARMv8.0, so every Cortex-A53 and later runs it).
 * It shares the conv2d classification, the packed weights and the int16 panels with `generic`
 * (../generic/generic.h) and replaces the inner loops with intrinsics. */
#ifndef DDQ_KERNELS_NEON_H
#define DDQ_KERNELS_NEON_H

#include <arm_neon.h>
#include <string.h>

#include "../generic/generic.h"
#include "mbqm__neon.h"

/* Stores the first n (1…8) bytes of v (fixed-size copies compile to single stores). */
static inline void ddq_store_u8x8_partial(uint8_t *y, uint8x8_t v, int64_t n) {
    if (n == 8) {
        vst1_u8(y, v);
        return;
    }
    if (n & 4) {
        const uint32_t t = vget_lane_u32(vreinterpret_u32_u8(v), 0);
        memcpy(y, &t, 4);
        y += 4;
        v = vext_u8(v, v, 4);
    }
    if (n & 2) {
        const uint16_t t = vget_lane_u16(vreinterpret_u16_u8(v), 0);
        memcpy(y, &t, 2);
        y += 2;
        v = vext_u8(v, v, 2);
    }
    if (n & 1) vst1_lane_u8(y, v, 0);
}

/* Inline-assembly rows of the GEMM tiles: LINE(i, ...) for the 8 channels of a block, whose
 * weights a row holds in the 16-bit lanes 0–7 of one register. */
#define DDQ_ASM_8CH(LINE, A, B, C) \
    LINE(0, A, B, C) LINE(1, A, B, C) LINE(2, A, B, C) LINE(3, A, B, C) LINE(4, A, B, C) LINE(5, A, B, C) \
    LINE(6, A, B, C) LINE(7, A, B, C)

void ddq_conv_gemm__neon(const ddq_op_args *a, int64_t begin, int64_t end);
/* The GEMM's int16-accumulating block (conv_gemm_8x16_acc16__neon.c): output channels ob … oe − 1
 * of the block o0 … o0 + 7 (pc->kblk[o0 / 8] > 0) over the panel's n pixels, y at its first; with
 * `pair`, of the blocks o0 … o0 + 15 (n ≤ 4, both blocks with kblk ≥ K). */
void ddq_conv_gemm_acc16_block__neon(const ddq_packed_conv *pc, int32_t zp, int32_t lo, int32_t hi,
                                     const int16_t *panel, int64_t nps, int64_t n, int64_t o0, int64_t ob,
                                     int64_t oe, uint8_t *y, int64_t P, int pair);
/* The GEMMs on pairs of taps (gemm_pairs__neon.c): a gemm_plan with group 2 and blocks of 4
 * channels whose runs of pairs sum in narrow lanes, byte lanes (DDQ_CONV_GEMM_ACC8,
 * conv_gemm_4x24c2_acc8__neon.c) or int16 lanes of byte products (DDQ_CONV_GEMM_MULL,
 * conv_gemm_4x8c2_mull__neon.c). prepare returns NULL when the op's bounds do not admit the
 * path. */
#define DDQ_PAIRS_GROUP 2
#define DDQ_PAIRS_BLOCK 4
typedef struct ddq_neon_pairs {
    int path; /* DDQ_CONV_GEMM_ACC8 or DDQ_CONV_GEMM_MULL */
    ddq_gemm_plan *plan;
} ddq_neon_pairs;
/* Block b (channels 4b … 4b + 3) of such a plan: its weights and its runs. */
typedef struct ddq_pairs_block {
    const int8_t *w;
    const ddq_run *runs;
    int64_t nruns;
} ddq_pairs_block;
static inline ddq_pairs_block ddq_pairs_block_of(const ddq_gemm_plan *p, int64_t b) {
    return (ddq_pairs_block){p->w + b * p->KG * DDQ_PAIRS_BLOCK * DDQ_PAIRS_GROUP, p->runs + p->run_begin[b],
                             p->run_begin[b + 1] - p->run_begin[b]};
}
void *ddq_gemm_pairs_prepare__neon(const ddq_model *model, const ddq_op *op, int path);
void ddq_gemm_pairs_release__neon(void *prepared);
size_t ddq_gemm_pairs_scratch_bytes__neon(const ddq_model *model, const ddq_op *op);
void ddq_conv_gemm_acc8__neon(const ddq_op_args *a, int64_t begin, int64_t end);
void ddq_conv_gemm_mull__neon(const ddq_op_args *a, int64_t begin, int64_t end);
/* Depthwise 3×3 (dwconv3x3_c4x4__neon.c): its own preparation; the object starts with int
 * DDQ_CONV_DW3X3. */
void *ddq_dw_prepare__neon(const ddq_model *model, const ddq_op *op);
void ddq_dw_release__neon(void *prepared);
size_t ddq_dw_scratch_bytes__neon(const ddq_model *model, const ddq_op *op);
void ddq_dwconv3x3__neon(const ddq_op_args *a, int64_t begin, int64_t end);
/* fully_connected (fully_connected__neon.c): its own preparation (DDQ_FC_BYTES); scratch: the
 * input as int8, within generic's int16 input. */
void *ddq_fc_prepare__neon(const ddq_model *model, const ddq_op *op);
void ddq_fc_release__neon(void *prepared);
/* The set's hooks (neon_set.c), which neondot shares for the ops it does not replace. */
void *ddq_prepare__neon(const ddq_model *model, const ddq_op *op);
void ddq_release__neon(void *prepared);
size_t ddq_scratch_bytes__neon(const ddq_model *model, const ddq_op *op);
void ddq_conv2d__neon(const ddq_op_args *a, int64_t begin, int64_t end);
void ddq_fully_connected__neon(const ddq_op_args *a, int64_t begin, int64_t end);
void ddq_add__neon(const ddq_op_args *a, int64_t begin, int64_t end);
void ddq_requantize__neon(const ddq_op_args *a, int64_t begin, int64_t end);
void ddq_quantize__neon(const ddq_op_args *a, int64_t begin, int64_t end);
void ddq_global_avg_pool__neon(const ddq_op_args *a, int64_t begin, int64_t end);
/* The set's op table with its conv2d and fully_connected kernels as parameters: neondot runs
 * the neon functions for every other op. */
#define DDQ_NEON_OPS(conv2d, fully_connected)                  \
    {                                                          \
        [DDQ_OP_QUANTIZE] = ddq_quantize__neon,                \
        [DDQ_OP_DEQUANTIZE] = ddq_dequantize__reference,       \
        [DDQ_OP_CONV2D] = (conv2d),                            \
        [DDQ_OP_FULLY_CONNECTED] = (fully_connected),          \
        [DDQ_OP_ADD] = ddq_add__neon,                          \
        [DDQ_OP_AVG_POOL] = ddq_avg_pool__reference,           \
        [DDQ_OP_GLOBAL_AVG_POOL] = ddq_global_avg_pool__neon,  \
        [DDQ_OP_MAX_POOL] = ddq_max_pool__reference,           \
        [DDQ_OP_REQUANTIZE] = ddq_requantize__neon,            \
        [DDQ_OP_RESHAPE] = ddq_reshape__reference,             \
    }

#endif
