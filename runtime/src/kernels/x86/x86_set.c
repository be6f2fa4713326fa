/* The `x86` set (AVX2): conv2d (GEMM for groups = 1, depthwise 3×3), fully_connected, add,
 * requantize and quantize; every other op, and every conv2d without a fast path, runs the
 * reference code. This file is compiled without -mavx2: available() runs on any x86 CPU. */
#include <stdlib.h>

#include "x86.h"

static int x86_available(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2");
}

static void conv2d(const ddq_op_args *a, int64_t begin, int64_t end) {
    const int *path = a->prepared;
    if (!path) ddq_conv2d__reference(a, begin, end);
    else if (*path == DDQ_CONV_GEMM) ddq_conv_gemm_4x16c4__avx2(a, begin, end);
    else ddq_dwconv3x3__avx2(a, begin, end);
}

static int conv_path(const ddq_model *model, const ddq_op *op) {
    if (op->kind != DDQ_OP_CONV2D) return DDQ_CONV_REFERENCE;
    return ddq_conv_path(op, &model->tensors[op->inputs[0]], &model->tensors[op->inputs[1]]);
}

static void *prepare(const ddq_model *model, const ddq_op *op) {
    switch (conv_path(model, op)) {
    case DDQ_CONV_GEMM:
        return ddq_gemm_prepare__x86(model, op);
    case DDQ_CONV_DW3X3:
        return ddq_dw_prepare__x86(model, op);
    default:
        return NULL; /* a NULL also stands for "no memory": the kernel then runs the reference code */
    }
}

static void release(void *prepared) {
    if (*(const int *)prepared == DDQ_CONV_GEMM) ddq_gemm_release__x86(prepared);
    else free(prepared);
}

static size_t scratch_bytes(const ddq_model *model, const ddq_op *op) {
    if (op->kind == DDQ_OP_FULLY_CONNECTED) return ddq_fc_scratch_bytes__x86(model, op);
    const int path = conv_path(model, op);
    return path == DDQ_CONV_GEMM    ? ddq_gemm_scratch_bytes__x86(model, op)
           : path == DDQ_CONV_DW3X3 ? ddq_dw_scratch_bytes__x86(model, op)
                                    : 0;
}

const ddq_kernel_set ddq_kernels_x86 = {
    .name = "x86",
    .available = x86_available,
    .ops = {
        [DDQ_OP_QUANTIZE] = ddq_quantize__avx2,
        [DDQ_OP_DEQUANTIZE] = ddq_dequantize__reference,
        [DDQ_OP_CONV2D] = conv2d,
        [DDQ_OP_FULLY_CONNECTED] = ddq_fully_connected__avx2,
        [DDQ_OP_ADD] = ddq_add__avx2,
        [DDQ_OP_AVG_POOL] = ddq_avg_pool__reference,
        [DDQ_OP_GLOBAL_AVG_POOL] = ddq_global_avg_pool__reference,
        [DDQ_OP_MAX_POOL] = ddq_max_pool__reference,
        [DDQ_OP_REQUANTIZE] = ddq_requantize__avx2,
        [DDQ_OP_RESHAPE] = ddq_reshape__reference,
    },
    .prepare = prepare,
    .release = release,
    .scratch_bytes = scratch_bytes,
};
