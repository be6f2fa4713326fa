#include "reference.h"

static int always_available(void) { return 1; }

const ddq_kernel_set ddq_kernels_reference = {
    .name = "reference",
    .available = always_available,
    .ops = {
        [DDQ_OP_QUANTIZE] = ddq_quantize__reference,
        [DDQ_OP_DEQUANTIZE] = ddq_dequantize__reference,
        [DDQ_OP_CONV2D] = ddq_conv2d__reference,
        [DDQ_OP_FULLY_CONNECTED] = ddq_fully_connected__reference,
        [DDQ_OP_ADD] = ddq_add__reference,
        [DDQ_OP_AVG_POOL] = ddq_avg_pool__reference,
        [DDQ_OP_GLOBAL_AVG_POOL] = ddq_global_avg_pool__reference,
        [DDQ_OP_MAX_POOL] = ddq_max_pool__reference,
        [DDQ_OP_REQUANTIZE] = ddq_requantize__reference,
        [DDQ_OP_RESHAPE] = ddq_reshape__reference,
    },
};
