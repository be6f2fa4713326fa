/* The `x86` set (AVX2): conv2d (GEMM for groups = 1, depthwise 3×3), fully_connected, add,
 * requantize and quantize; every other op, and every conv2d without a fast path, runs the
 * reference code. And `x86vnni`, the same with the GEMM on AVX-VNNI. This file is compiled
 * without -mavx2: available() runs on any x86 CPU (the features come from dispatch.c). */
#include <stdlib.h>

#include "../../dispatch.h"
#include "x86.h"

static int x86_available(void) { return ddq_cpu_has("avx2"); }

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

static void *prepare_for(const ddq_model *model, const ddq_op *op, int vnni) {
    switch (conv_path(model, op)) {
    case DDQ_CONV_GEMM:
        return ddq_gemm_prepare__x86(model, op, vnni);
    case DDQ_CONV_DW3X3:
        return ddq_dw_prepare__x86(model, op);
    default:
        return NULL; /* a NULL also stands for "no memory": the kernel then runs the reference code */
    }
}

static void *prepare(const ddq_model *model, const ddq_op *op) { return prepare_for(model, op, 0); }

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

#define X86_OPS(conv)                                                                                               \
    {                                                                                                               \
        [DDQ_OP_QUANTIZE] = ddq_quantize__avx2, [DDQ_OP_DEQUANTIZE] = ddq_dequantize__reference,                    \
        [DDQ_OP_CONV2D] = conv, [DDQ_OP_FULLY_CONNECTED] = ddq_fully_connected__avx2, [DDQ_OP_ADD] = ddq_add__avx2,  \
        [DDQ_OP_AVG_POOL] = ddq_avg_pool__reference, [DDQ_OP_GLOBAL_AVG_POOL] = ddq_global_avg_pool__reference,      \
        [DDQ_OP_MAX_POOL] = ddq_max_pool__reference, [DDQ_OP_REQUANTIZE] = ddq_requantize__avx2,                    \
        [DDQ_OP_RESHAPE] = ddq_reshape__reference,                                                                  \
    }

const ddq_kernel_set ddq_kernels_x86 = {
    .name = "x86",
    .available = x86_available,
    .ops = X86_OPS(conv2d),
    .prepare = prepare,
    .release = release,
    .scratch_bytes = scratch_bytes,
};

#if defined(DDQ_HAVE_X86VNNI_KERNELS)
/* `x86vnni`: the x86 set with its GEMM on _mm256_dpbusd_avx_epi32 (conv_gemm_4x16c4__avxvnni.c),
 * where the CPU has AVX-VNNI as well as AVX2. */
static int x86vnni_available(void) { return ddq_cpu_has("avx2") && ddq_cpu_has("avxvnni"); }

static void conv2d_vnni(const ddq_op_args *a, int64_t begin, int64_t end) {
    const int *path = a->prepared;
    if (path && *path == DDQ_CONV_GEMM) ddq_conv_gemm_4x16c4__avxvnni(a, begin, end);
    else conv2d(a, begin, end);
}

static void *prepare_vnni(const ddq_model *model, const ddq_op *op) { return prepare_for(model, op, 1); }

const ddq_kernel_set ddq_kernels_x86vnni = {
    .name = "x86vnni",
    .available = x86vnni_available,
    .ops = X86_OPS(conv2d_vnni),
    .prepare = prepare_vnni,
    .release = release,
    .scratch_bytes = scratch_bytes,
};
#endif
