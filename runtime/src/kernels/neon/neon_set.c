/* The `neon` set (aarch64 Advanced SIMD, ARMv8.0): fast conv2d (GEMM for groups = 1, depthwise
 * 3×3), fully_connected, add and requantize; every other op, and every conv2d without a fast
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
    else ddq_dwconv3x3__neon(a, begin, end);
}

static int conv_path(const ddq_model *model, const ddq_op *op) {
    if (op->kind != DDQ_OP_CONV2D) return DDQ_CONV_REFERENCE;
    return ddq_conv_path(op, &model->tensors[op->inputs[0]], &model->tensors[op->inputs[1]]);
}

/* Every prepared object of this set starts with its enum ddq_conv_path. A GEMM takes int8
 * accumulation where its bounds admit it, else the int16 / int32 paths. */
void *ddq_prepare__neon(const ddq_model *model, const ddq_op *op) {
    switch (conv_path(model, op)) {
    case DDQ_CONV_DW3X3:
        return ddq_dw_prepare__neon(model, op);
    case DDQ_CONV_GEMM: {
        void *acc8 = ddq_gemm_acc8_prepare__neon(model, op);
        return acc8 ? acc8 : ddq_prepare__generic(model, op);
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
        ddq_gemm_acc8_release__neon(prepared);
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
        const size_t acc8 = ddq_gemm_acc8_scratch_bytes__neon(model, op), other = ddq_scratch_bytes__generic(model, op);
        return acc8 > other ? acc8 : other;
    }
    default:
        return ddq_scratch_bytes__generic(model, op);
    }
}

const ddq_kernel_set ddq_kernels_neon = {
    .name = "neon",
    .available = neon_available,
    .ops = {
        [DDQ_OP_QUANTIZE] = ddq_quantize__neon,
        [DDQ_OP_DEQUANTIZE] = ddq_dequantize__reference,
        [DDQ_OP_CONV2D] = ddq_conv2d__neon,
        [DDQ_OP_FULLY_CONNECTED] = ddq_fully_connected__neon,
        [DDQ_OP_ADD] = ddq_add__neon,
        [DDQ_OP_AVG_POOL] = ddq_avg_pool__reference,
        [DDQ_OP_GLOBAL_AVG_POOL] = ddq_global_avg_pool__reference,
        [DDQ_OP_MAX_POOL] = ddq_max_pool__reference,
        [DDQ_OP_REQUANTIZE] = ddq_requantize__neon,
        [DDQ_OP_RESHAPE] = ddq_reshape__reference,
    },
    .prepare = ddq_prepare__neon,
    .release = ddq_release__neon,
    .scratch_bytes = ddq_scratch_bytes__neon,
};
