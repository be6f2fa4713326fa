/* What the SIMD kernel sets (neon, neondot, x86) prepare once per conv2d / fully_connected: the
 * weights in an interleaved int8 layout, biases that absorb the panel's offset, the exact fast
 * requantization constants, and the accumulator bounds that pick each block's narrowest exact
 * accumulation. Portable C; the sets' kernels only read it.
 *
 * The panel. A convolution is a GEMM y[o][p] = Σ_k w[o][k] · (x[k][p] − zp) over the K = C·KH·KW
 * taps of output pixel p (im2col). The kernels read the activations as bytes x − c ("offset" c,
 * mod 256), interleaved in groups of `group` consecutive taps: panel[g][p][j] = x[g·group + j][p]
 * − c, so a 16-byte vector holds 16 / group pixels × group taps. A padded tap reads as zp − c
 * ("pad"), taps past K as 0 (with zero weights there). Since
 *
 *     Σ_k w·(x − zp) = Σ_k w·(x − c) + (c − zp)·Σ_k w,
 *
 * the second term is folded into the bias. Sets that multiply signed bytes choose c so that
 * x − c fits int8 (c = zp where it does); x86's unsigned×signed multiply takes c = 0.
 *
 * Exactness. Kernels add products in int8, int16 or int32 lanes with wrap-around vector
 * arithmetic. A lane is exact while every partial sum it holds lies in its type: the plan bounds
 * each product by interval arithmetic, w·v for v ∈ [lo, hi] = [qmin − c, qmax − c], and splits
 * the groups of taps into runs within which the bound holds (ddq_greedy_runs). int32 sums wrap
 * mod 2^32 and equal the exact accumulator at the end, which the loader's bound keeps in int32;
 * the partial sums in between need no bound of their own.
 *
 * The fast requantization (docs/runtime.md): with t = 31 − shift,
 *
 *     MBQM(x) = SRSHL(SQDMULH(x · 2^l, m0), −r),  l = max(0, shift + 1),  r = t − 31 + l,
 *
 * exactly: SQDMULH gives H = floor(x·2^l·m0 / 2^31), and for r ≥ 1 floor((H + 2^(r−1)) / 2^r) =
 * floor((x·m0 + 2^(t−1)) / 2^t) because the dropped fraction of the product is below one unit
 * of H. It needs x · 2^l inside int32, which the plan proves per channel from the loader's
 * accumulator bound; an op where it cannot falls back to the int64 form. */
#ifndef DDQ_KERNELS_GEMM_PLAN_H
#define DDQ_KERNELS_GEMM_PLAN_H

#include <stdint.h>

#include "../model.h"
#if defined(__ARM_NEON) && defined(__aarch64__)
#include <arm_neon.h>
#endif

/* Integer helpers of the kernels' layouts: n rounded up to a multiple of m (n ≥ 0, m > 0), and
 * a / b rounded up or down for b > 0 and either sign of a. */
static inline int64_t ddq_round_up(int64_t n, int64_t m) { return (n + m - 1) / m * m; }
static inline int64_t ddq_div_ceil(int64_t a, int64_t b) { return a >= 0 ? (a + b - 1) / b : -((-a) / b); }
static inline int64_t ddq_div_floor(int64_t a, int64_t b) { return a >= 0 ? a / b : -((-a + b - 1) / b); }

/* d[i] = s[i] − c (mod 256) for n bytes: codes as the kernels' signed bytes x − c. On aarch64 64
 * bytes a step (one LD1 and one ST1 of four vectors), then 16, the last 16 again where n is no
 * multiple (n ≥ 16; they write the same values); bytewise elsewhere. */
static inline void ddq_offset_copy(int8_t *restrict d, const uint8_t *restrict s, int64_t n, uint8_t c) {
    int64_t i = 0;
#if defined(__ARM_NEON) && defined(__aarch64__)
    if (n >= 16) {
        const uint8x16_t cv = vdupq_n_u8(c);
        for (; i + 64 <= n; i += 64) {
            const uint8x16x4_t v = vld1q_u8_x4(s + i);
            vst1q_s8_x4(d + i, (int8x16x4_t){{vreinterpretq_s8_u8(vsubq_u8(v.val[0], cv)),
                                              vreinterpretq_s8_u8(vsubq_u8(v.val[1], cv)),
                                              vreinterpretq_s8_u8(vsubq_u8(v.val[2], cv)),
                                              vreinterpretq_s8_u8(vsubq_u8(v.val[3], cv))}});
        }
        for (; i + 16 <= n; i += 16) vst1q_s8(d + i, vreinterpretq_s8_u8(vsubq_u8(vld1q_u8(s + i), cv)));
        if (i < n) vst1q_s8(d + n - 16, vreinterpretq_s8_u8(vsubq_u8(vld1q_u8(s + n - 16), cv)));
        return;
    }
#endif
    for (; i < n; i++) d[i] = (int8_t)(uint8_t)(s[i] - c);
}

/* Channel slack past the last block, so vector loads of per-channel constants stay inside. */
#define DDQ_PLAN_CHANNEL_SLACK 16

/* Per output channel requantization constants (fast form, and the int64 form as a fallback). */
typedef struct ddq_requant_plan {
    int32_t *m0;        /* [channels + slack] */
    int32_t *lshift;    /* l */
    int32_t *neg_rshift; /* −r (SRSHL's shift) */
    int64_t *neg_t;     /* shift − 31, for the int64 form */
    int fast;           /* the fast form is exact for every channel */
    int lshift_any;     /* some channel has l > 0 */
} ddq_requant_plan;

/* A run of consecutive groups of taps summed in the narrow lanes before they are widened:
 * `length` groups; `widen` marks the end of a run of the middle level (see the sets' kernels). */
typedef struct ddq_run {
    uint16_t length;
    uint16_t widen;
} ddq_run;

typedef struct ddq_gemm_plan {
    int64_t O, K;           /* output channels, taps per output */
    int64_t KG;             /* groups of taps: ceil(K / group) */
    int group;              /* taps interleaved per pixel in the panel (2 or 4) */
    int R;                  /* output channels per weight block */
    int64_t blocks;         /* ceil(O / R) */
    int32_t offset;         /* c: the panel holds x − c */
    uint8_t pad;            /* (zp − c) mod 256: what a padded tap reads */
    int32_t lo, hi;         /* the panel's values x − c lie in [lo, hi] */
    int64_t panel_pixels;   /* pixels per panel, a multiple of 8 */
    /* the panel's layout: 0, rows of groups [KG][panel_pixels][group]; 1 (group 4), tiles of 16
     * pixels [⌈panel_pixels / 16⌉][KG][16][4], so that a 16-pixel tile reads its groups of taps
     * one after the other (the set sets it) */
    int tiled;
    int8_t *w;              /* [blocks][KG][R][group], zero past O and K */
    int32_t *bias;          /* [blocks·R + slack]: bias + (c − zp)·Σw, mod 2^32; 0 past O */
    ddq_requant_plan rq;
    /* per block: which of the set's kernels computes it, and its runs runs[run_begin[b] …
     * run_begin[b + 1]) (the set fills these) */
    uint8_t *kernel;
    int64_t *run_begin;
    ddq_run *runs;
    void *extra;            /* set-specific data, freed with the plan */
} ddq_gemm_plan;

/* How a set offsets its panel (the `offset` argument below): 0 for unsigned bytes (x86);
 * signed bytes centred on the zero point, zp when x − zp fits int8, else the nearest value that
 * makes it fit (the narrowest product bounds: the neon set's int8 and int16 runs); or signed
 * bytes with c = 0 wherever the codes fit int8 as they are (grids of up to 7 bits), so that the
 * panel is a plain interleave (neondot: SDOT sums in int32 whatever the bounds), else centred. */
enum { DDQ_OFFSET_UNSIGNED, DDQ_OFFSET_CENTRED, DDQ_OFFSET_ZERO_IF_FITS };
int32_t ddq_panel_offset(const ddq_tensor *x, int offset_rule);

/* Packs a conv2d (groups = 1) or fully_connected op: weights [blocks][KG][R][group], biases,
 * requantization constants. kernel / runs are left for the set (allocated with KG + 1 runs per
 * block). NULL when out of memory. */
ddq_gemm_plan *ddq_gemm_plan_create(const ddq_model *model, const ddq_op *op, int group, int R, int offset_rule,
                                    int64_t panel_bytes);
void ddq_gemm_plan_free(ddq_gemm_plan *plan);

/* The requantization constants of `n` channels with multipliers m[] and accumulator bounds
 * bound[] (|acc + bias| ≤ bound), padded with DDQ_PLAN_CHANNEL_SLACK zero channels. */
int ddq_requant_plan_init(ddq_requant_plan *rq, const ddq_multiplier *m, const int64_t *bound, int64_t n);
void ddq_requant_plan_free(ddq_requant_plan *rq);

/* Interval-sum bounds over runs of groups. For channels o0 … o0 + n − 1 of the plan's packed
 * weights and groups [g0, g1): splits them greedily into runs as long as possible such that,
 * for every channel, the bound of Σ w·v (v ∈ [lo, hi]) over the run's taps of one lane lies in
 * [lim_lo, lim_hi]. A lane holds `lane_taps` consecutive taps of each group (1: every tap its
 * own lane; 2: pairs of taps, x86's maddubs; 0 or group: the whole group). Writes the run
 * lengths (each ≤ max_length) to out and returns their count, or −1 when a single group does
 * not fit. */
int64_t ddq_greedy_runs(const ddq_gemm_plan *plan, int64_t o0, int64_t n, int64_t g0, int64_t g1, int lane_taps,
                        int64_t lim_lo, int64_t lim_hi, int64_t max_length, uint16_t *out);

/* Panel building (portable C, vectorized by the compiler). Fills the panel's groups of taps for
 * output pixels p0 … p0 + n − 1 into columns 0 … n − 1 (row pitch plan->panel_pixels · group
 * bytes, or tiles of 16 columns: plan->tiled); columns n … round_up(n, 8) − 1 get pad bytes
 * (a plain 1×1: the next pixels' values), whose outputs are not stored. `row` is scratch of
 * group · panel_pixels bytes. */
void ddq_build_panel(const ddq_gemm_plan *plan, const ddq_op *op, const ddq_tensor *xt, const ddq_tensor *wt,
                     const ddq_tensor *yt, const uint8_t *x, int64_t p0, int64_t n, int8_t *panel, int8_t *row);

/* Per-thread scratch a GEMM needs: the panel and one row (of KG groups, panel_pixels wide). */
int64_t ddq_gemm_panel_pixels_for(int64_t K, int64_t P, int64_t panel_bytes);
size_t ddq_gemm_panel_scratch_bytes(int64_t KG, int group, int64_t panel_pixels);
/* The scratch that a tiled panel's 3×3 stride-2 path (ddq_build_panel, aarch64) needs for its
 * padded input rows, 0 where the op does not take it: a set that builds tiled panels makes its
 * `rows` at least this large. */
int64_t ddq_panel_rows_bytes_3x3s2(const ddq_op *op, const ddq_tensor *xt, const ddq_tensor *wt,
                                   const ddq_tensor *yt);
size_t ddq_gemm_scratch_bytes(const ddq_model *model, const ddq_op *op, int group, int64_t panel_bytes);

#endif
