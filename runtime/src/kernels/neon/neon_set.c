/* The `neon` set (aarch64 Advanced SIMD, ARMv8.0): fast conv2d (GEMM for groups = 1, depthwise
 * 3×3), fully_connected, add, requantize and global_avg_pool; every other op, and every conv2d without a fast
 * path, runs the reference code. Chosen where the kernel reports HWCAP_ASIMD. */
#include "neon.h"

#if defined(__linux__)
#include <sys/auxv.h>
#endif

static int neon_available(void) {
#if defined(__linux__)
    return (getauxval(AT_HWCAP) & (1ul << 1)) != 0; /* HWCAP_ASIMD */
#else
    return 1; /* Advanced SIMD is mandatory in ARMv8-A application profiles */
#endif
}

void ddq_conv2d__neon(const ddq_op_args *a, int64_t begin, int64_t end) {
    const int *path = a->prepared;
    if (!path) {
        ddq_conv2d__reference(a, begin, end);
        return;
    }
    if (*path == DDQ_CONV_GEMM) ddq_conv_gemm__neon(a, begin, end);
    else if (*path == DDQ_CONV_GEMM_ACC8) ddq_conv_gemm_acc8__neon(a, begin, end);
    else if (*path == DDQ_CONV_GEMM_MULL) ddq_conv_gemm_mull__neon(a, begin, end);
    else ddq_dwconv3x3__neon(a, begin, end);
}

static int conv_path(const ddq_model *model, const ddq_op *op) {
    if (op->kind != DDQ_OP_CONV2D) return DDQ_CONV_REFERENCE;
    return ddq_conv_path(op, &model->tensors[op->inputs[0]], &model->tensors[op->inputs[1]]);
}

/* Every prepared object of this set starts with its enum ddq_conv_path. A GEMM takes int8
 * accumulation where its bounds admit it, else int16 accumulation where every block of 8
 * channels has it, else int16 lanes of byte products (mull) when K is long enough, else the
 * int32 path of the shared int16 packing. Below MULL_MIN_K taps the 4 × 8 mull tile's per-output
 * work outweighs its faster products (MobileNetV2-224 at 8 bits under qemu, cortex-a72: K = 16…32
 * are 7–23 % slower with mull, K ≥ 64 are 3–16 % faster). */
#define MULL_MIN_K 48
void *ddq_prepare__neon(const ddq_model *model, const ddq_op *op) {
    if (op->kind == DDQ_OP_FULLY_CONNECTED) return ddq_fc_prepare__neon(model, op);
    switch (conv_path(model, op)) {
    case DDQ_CONV_DW3X3:
        return ddq_dw_prepare__neon(model, op);
    case DDQ_CONV_GEMM: {
        void *pairs = ddq_gemm_pairs_prepare__neon(model, op, DDQ_CONV_GEMM_ACC8);
        if (pairs) return pairs;
        ddq_packed_conv *packed = ddq_prepare__generic(model, op);
        const ddq_tensor *wt = &model->tensors[op->inputs[1]];
        if (packed && (packed->acc16_blocks == (wt->shape[0] + DDQ_GEMM_BLOCK - 1) / DDQ_GEMM_BLOCK ||
                       packed->K < MULL_MIN_K))
            return packed;
        pairs = ddq_gemm_pairs_prepare__neon(model, op, DDQ_CONV_GEMM_MULL);
        if (!pairs) return packed;
        if (packed) ddq_release__generic(packed);
        return pairs;
    }
    default:
        return ddq_prepare__generic(model, op);
    }
}

void ddq_release__neon(void *prepared) {
    switch (*(const int *)prepared) {
    case DDQ_CONV_DW3X3:
        ddq_dw_release__neon(prepared);
        break;
    case DDQ_CONV_GEMM_ACC8:
    case DDQ_CONV_GEMM_MULL:
        ddq_gemm_pairs_release__neon(prepared);
        break;
    case DDQ_FC_BYTES:
        ddq_fc_release__neon(prepared);
        break;
    default:
        ddq_release__generic(prepared);
    }
}

/* The largest of what the op's possible paths need (prepare picks one of them). */
size_t ddq_scratch_bytes__neon(const ddq_model *model, const ddq_op *op) {
    switch (conv_path(model, op)) {
    case DDQ_CONV_DW3X3:
        return ddq_dw_scratch_bytes__neon(model, op);
    case DDQ_CONV_GEMM: {
        const size_t pairs = ddq_gemm_pairs_scratch_bytes__neon(model, op);
        const size_t packed = ddq_scratch_bytes__generic(model, op);
        return pairs > packed ? pairs : packed;
    }
    default:
        return ddq_scratch_bytes__generic(model, op);
    }
}

const ddq_kernel_set ddq_kernels_neon = {
    .name = "neon",
    .available = neon_available,
    .ops = DDQ_NEON_OPS(ddq_conv2d__neon, ddq_fully_connected__neon),
    .prepare = ddq_prepare__neon,
    .release = ddq_release__neon,
    .scratch_bytes = ddq_scratch_bytes__neon,
};
