/* conv2d with groups = 1 as a GEMM on groups of 4 taps, AVX2 + AVX-VNNI (Alder Lake, Sapphire
 * Rapids, Zen 5 and later): tiles of 4 output channels × 16 pixels (× 8 for a panel's last
 * pixels) on the layout of conv_gemm_4x16c4__avx2.c (the unsigned panel, weights
 * [⌈O/4⌉][K/4][4][4], one 4-byte broadcast per channel and group).
 *
 * _mm256_dpbusd_avx_epi32 multiplies the unsigned panel bytes by the signed weight bytes and
 * adds each pixel's four products into its int32 lane, without saturation and wrapping like
 * _mm256_add_epi32: per group two loads, four broadcasts and eight dpbusd for 256 multiply-adds,
 * where AVX2 needs sixteen maddubs and adds and a widening per run. Exact for every block and
 * bit width: each product |w · x| ≤ 127 · 255 and the int32 sums wrap mod 2^32 to the exact
 * accumulator (bias + (c − zp)·Σw folded by the plan), which the loader's bound keeps in int32.
 * So prepare computes no interval bounds for this kernel. The epilogue is conv_gemm_4x16c4.h's. */
#include "conv_gemm_4x16c4.h"

/* The sums of KG groups onto the biases, 8 · nv pixels, into acc. A function of its own with
 * named accumulators: GCC then keeps them in registers; inlined into the driver it copies and
 * spills them around every dpbusd. */
static __attribute__((noinline)) void tile_sums(const int8_t *x, int64_t pitch, const int8_t *w, int64_t KG,
                                                const int32_t *bias, __m256i acc[DDQ_X86_BLOCK][2], const int nv) {
    __m256i a00 = _mm256_set1_epi32(bias[0]), a10 = _mm256_set1_epi32(bias[1]);
    __m256i a20 = _mm256_set1_epi32(bias[2]), a30 = _mm256_set1_epi32(bias[3]);
    __m256i a01 = a00, a11 = a10, a21 = a20, a31 = a30;
    for (int64_t k = 0; k < KG; k++, x += pitch, w += DDQ_X86_STEP) {
        const __m256i x0 = _mm256_loadu_si256((const __m256i *)x);
        const __m256i w0 = ddq_broadcast4(w), w1 = ddq_broadcast4(w + 4);
        const __m256i w2 = ddq_broadcast4(w + 8), w3 = ddq_broadcast4(w + 12);
        a00 = _mm256_dpbusd_avx_epi32(a00, x0, w0);
        a10 = _mm256_dpbusd_avx_epi32(a10, x0, w1);
        a20 = _mm256_dpbusd_avx_epi32(a20, x0, w2);
        a30 = _mm256_dpbusd_avx_epi32(a30, x0, w3);
        if (nv == 2) {
            const __m256i x1 = _mm256_loadu_si256((const __m256i *)(x + 32));
            a01 = _mm256_dpbusd_avx_epi32(a01, x1, w0);
            a11 = _mm256_dpbusd_avx_epi32(a11, x1, w1);
            a21 = _mm256_dpbusd_avx_epi32(a21, x1, w2);
            a31 = _mm256_dpbusd_avx_epi32(a31, x1, w3);
        }
    }
    acc[0][0] = a00, acc[1][0] = a10, acc[2][0] = a20, acc[3][0] = a30;
    acc[0][1] = a01, acc[1][1] = a11, acc[2][1] = a21, acc[3][1] = a31;
}

DDQ_ALWAYS_INLINE void tile_vnni(const ddq_x86_gemm *g, int64_t b, const int8_t *xp, int64_t pitch,
                                 __m256i acc[DDQ_X86_BLOCK][2], const int nv) {
    const ddq_gemm_plan *p = g->plan;
    tile_sums(xp, pitch, p->w + b * p->KG * DDQ_X86_STEP, p->KG, p->bias + b * DDQ_X86_BLOCK, acc, nv);
}

DDQ_X86_GEMM_ENTRY(ddq_conv_gemm_4x16c4__avxvnni, tile_vnni)
