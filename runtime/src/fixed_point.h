/* Requantization arithmetic, bit-exact with docs/arithmetic.md §4–5 and
 * ddq_edge/reference/fixed_point.py. */
#ifndef DDQ_FIXED_POINT_H
#define DDQ_FIXED_POINT_H

#include <math.h>
#include <stdbool.h>
#include <stdint.h>

#include "model.h"

/* MBQM needs an arithmetic (flooring) right shift of negative int64 values, which C leaves to
 * the implementation; every compiler this runtime targets (GCC, Clang) shifts arithmetically. */
_Static_assert((-3LL >> 1) == -2, "arithmetic right shift of negative values required");

/* QuantizeMultiplier (§4): M ≈ m0 · 2^(shift − 31), m0 in [2^30, 2^31). False for non-finite M. */
static inline bool ddq_quantize_multiplier(double m, ddq_multiplier *out) {
    if (!isfinite(m)) return false;
    if (m == 0.0) {
        *out = (ddq_multiplier){0, 0};
        return true;
    }
    int shift;
    double q = frexp(m, &shift);
    /* q · 2^31 is exact in double; + 0.5 on its magnitude is exact too, so floor rounds half away. */
    int64_t q_fixed = (int64_t)floor(fabs(q) * 2147483648.0 + 0.5);
    if (q < 0) q_fixed = -q_fixed;
    if (q_fixed == (int64_t)1 << 31) {
        q_fixed /= 2;
        shift += 1;
    }
    if (shift < -31) {
        q_fixed = 0;
        shift = 0;
    }
    *out = (ddq_multiplier){(int32_t)q_fixed, shift};
    return true;
}

/* MBQM (§5): floor(x · m0 / 2^t + 1/2) with t = 31 − shift, one rounding, ties up. x must be an
 * int32 value (so the product fits int64) and shift ≤ 30 (checked at load). */
static inline int64_t ddq_mbqm(int64_t x, ddq_multiplier m) {
    const int t = 31 - m.shift;
    return (x * m.m0 + ((int64_t)1 << (t - 1))) >> t;
}

/* clamp(v + zero_point, lo, hi) in int64: the final step of every requantizing op. */
static inline int32_t ddq_clamp_code(int64_t v, int32_t zero_point, int32_t lo, int32_t hi) {
    v += zero_point;
    return v < lo ? lo : v > hi ? hi : (int32_t)v;
}

#endif
