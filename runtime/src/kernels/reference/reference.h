/* The portable C kernels: the C statement of docs/arithmetic.md that every faster kernel set
 * is tested against. */
#ifndef DDQ_KERNELS_REFERENCE_H
#define DDQ_KERNELS_REFERENCE_H

#include "../../fixed_point.h"
#include "../kernels.h"

void ddq_quantize__reference(const ddq_op_args *a, int64_t begin, int64_t end);
void ddq_dequantize__reference(const ddq_op_args *a, int64_t begin, int64_t end);
void ddq_conv2d__reference(const ddq_op_args *a, int64_t begin, int64_t end);
void ddq_fully_connected__reference(const ddq_op_args *a, int64_t begin, int64_t end);
void ddq_add__reference(const ddq_op_args *a, int64_t begin, int64_t end);
void ddq_avg_pool__reference(const ddq_op_args *a, int64_t begin, int64_t end);
void ddq_global_avg_pool__reference(const ddq_op_args *a, int64_t begin, int64_t end);
void ddq_max_pool__reference(const ddq_op_args *a, int64_t begin, int64_t end);
void ddq_requantize__reference(const ddq_op_args *a, int64_t begin, int64_t end);
void ddq_reshape__reference(const ddq_op_args *a, int64_t begin, int64_t end);

#endif
