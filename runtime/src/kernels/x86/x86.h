/* The `x86` kernel set: AVX2 integer code (Haswell / Zen and later), for x86-64 builds; and
 * `x86vnni`, the same with its GEMM on AVX-VNNI. The kernel files are compiled with -mavx2 only
 * (the AVX-VNNI GEMM with -mavx2 -mavxvnni; CMakeLists.txt); x86_set.c, which holds the sets'
 * tables and available(), and prepare__x86.c are not, so the library still loads and runs the
 * other sets on a CPU without AVX2, and dispatch.c picks a set only where cpuid reports its
 * features.
 *
 * It shares the conv2d classification and the depthwise geometry with `generic`
 * (../generic/generic.h) and the GEMM preparation with the other SIMD sets (../gemm_plan.h).
 * Every prepared object of the set starts with its enum ddq_conv_path. */
#ifndef DDQ_KERNELS_X86_H
#define DDQ_KERNELS_X86_H

#include "../gemm_plan.h"
#include "../generic/generic.h"

/* ------------------------------------------------------------------- the requantization */

/* Per output channel constants of the vector requantization (requant__avx2.h): with
 * t = 31 − shift, l = max(0, 32 − t) and u = t + l ≥ 32, MBQM(acc) + zp as
 * (acc · 2^l · m0 + rnd) >> u on 64-bit lanes, rnd = 2^62 + 2^(u−1), then + add in 32-bit lanes,
 * add = zp − 2^(62−u) (mod 2^32). */
typedef struct ddq_rq_x86 {
    int64_t rnd;
    int64_t u;      /* the even lanes' shift */
    int64_t u_odd;  /* u − 32: the odd lanes' shift, which leaves their result in the high half */
    int32_t m0;
    int32_t add;
    int32_t lshift; /* l */
} ddq_rq_x86;

/* The constants of multiplier m with output zero point zp. */
ddq_rq_x86 ddq_rq_x86_of(ddq_multiplier m, int32_t zp);
/* Whether the vector form is exact for every accumulator |acc| ≤ bound: acc · 2^l must fit
 * int32, and MBQM(acc) with room for the zero point; both hold for shift < 0 always and
 * otherwise when bound · 2^(shift + 1) < 2^31 (the fast form's domain, ddq_requant_plan_init). */
int ddq_rq_x86_exact(ddq_multiplier m, int64_t bound);

/* --------------------------------------------------------------------------- conv2d GEMM */

/* The GEMM on groups of 4 taps (gemm_plan.h: group 4, blocks of 4 output channels, the panel
 * holding x as unsigned bytes, c = 0). Each block takes one of two kernels
 * (conv_gemm_4x16c4__avx2.c), chosen in prepare by the interval bounds (ddq_gemm_plan.kernel):
 *
 * - MADDUBS: _mm256_maddubs_epi16 multiplies unsigned panel bytes by signed weight bytes and
 *   adds each pair of taps into an int16 lane with signed saturation. Admitted for a block
 *   when no pair's interval bound leaves int16 (then it never saturates and is exact); the
 *   pair lanes are summed in int16 over runs of groups whose interval bound per lane lies in
 *   int16 (ddq_greedy_runs with lane_taps 2), then widened into int32.
 * - MADD: _mm256_madd_epi16 on int16 operands (bytes zero-extended, weights widened at
 *   prepare): always exact, for blocks whose pairs could saturate (8-bit inputs times large
 *   8-bit weights). */
#define DDQ_X86_GROUP 4
#define DDQ_X86_BLOCK 4
/* Panels of up to 32 KiB: a panel and a block's weights stay in a 48 KiB L1 on recent cores. */
#define DDQ_X86_PANEL_BYTES 32768

enum ddq_x86_block_kernel { DDQ_X86_MADDUBS = 0, DDQ_X86_MADD = 1 };

typedef struct ddq_x86_gemm {
    int path;            /* DDQ_CONV_GEMM */
    int exact_rq;        /* the vector requantization is exact for every channel */
    int lshift_any;      /* some channel's requantization shifts left first (ddq_rq_x86.lshift) */
    ddq_gemm_plan *plan; /* kernel[b], runs of MADDUBS blocks */
    ddq_rq_x86 *rq;      /* [blocks · 4] */
    int16_t *w16;        /* MADD blocks' weights [blocks][KG][4][4] as int16 (NULL if none) */
    int64_t madd_blocks;
} ddq_x86_gemm;

/* vnni: for the AVX-VNNI kernel, which needs no bounds (no kernel[] or runs are computed). */
void *ddq_gemm_prepare__x86(const ddq_model *model, const ddq_op *op, int vnni);
void ddq_gemm_release__x86(void *prepared);
size_t ddq_gemm_scratch_bytes__x86(const ddq_model *model, const ddq_op *op);
void ddq_conv_gemm_4x16c4__avx2(const ddq_op_args *a, int64_t begin, int64_t end);
#if defined(DDQ_HAVE_X86VNNI_KERNELS)
void ddq_conv_gemm_4x16c4__avxvnni(const ddq_op_args *a, int64_t begin, int64_t end);
#endif

/* ------------------------------------------------------------------------ depthwise 3×3 */

void *ddq_dw_prepare__x86(const ddq_model *model, const ddq_op *op);
size_t ddq_dw_scratch_bytes__x86(const ddq_model *model, const ddq_op *op);
void ddq_dwconv3x3__avx2(const ddq_op_args *a, int64_t begin, int64_t end);

/* ------------------------------------------------------------------------------- others */

size_t ddq_fc_scratch_bytes__x86(const ddq_model *model, const ddq_op *op);
void ddq_fully_connected__avx2(const ddq_op_args *a, int64_t begin, int64_t end);
void ddq_add__avx2(const ddq_op_args *a, int64_t begin, int64_t end);
void ddq_requantize__avx2(const ddq_op_args *a, int64_t begin, int64_t end);
void ddq_quantize__avx2(const ddq_op_args *a, int64_t begin, int64_t end);

/* The vector requantization on n accumulators (requant__avx2.h), for test_runtime's comparison
 * with ddq_mbqm / ddq_clamp_code: out[i] = clamp(MBQM(acc[i]) + zp, lo, hi). */
void ddq_requantize_codes__avx2(const int32_t *acc, int64_t n, ddq_multiplier m, int32_t zp, int32_t lo, int32_t hi,
                                uint8_t *out);

#endif
