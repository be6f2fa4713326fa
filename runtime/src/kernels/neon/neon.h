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

void ddq_conv_gemm__neon(const ddq_op_args *a, int64_t begin, int64_t end);
void ddq_dwconv3x3_c8__neon(const ddq_op_args *a, int64_t begin, int64_t end);
void ddq_conv2d__neon(const ddq_op_args *a, int64_t begin, int64_t end);
void ddq_fully_connected__neon(const ddq_op_args *a, int64_t begin, int64_t end);

#endif
