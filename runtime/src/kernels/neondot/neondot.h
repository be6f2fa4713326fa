/* The `neondot` kernel set: ARMv8.2 dot product (SDOT, FEAT_DotProd: Cortex-A76 / Pi 5 and later).
 * conv2d with groups = 1 and fully_connected run as int8 GEMMs on the shared preparation of
 * ../gemm_plan.h (four taps per pixel in the panel, one SDOT lane per four taps); every other
 * op, and the depthwise path, are the `neon` set's functions. */
#ifndef DDQ_KERNELS_NEONDOT_H
#define DDQ_KERNELS_NEONDOT_H

#include "../neon/neon.h"

/* The path value of this set's own prepared objects: outside enum ddq_conv_path, whose values
 * the neon set's objects (which this set also returns, for the ops it shares) carry, so that
 * release can tell the two apart. */
#define DDQ_CONV_GEMM_SDOT 0x5d07
#define DDQ_DW3X3_SDOT 0x5d08

/* Taps per SDOT lane, and the panel the conv GEMM builds at most at a time. */
#define DDQ_SDOT_GROUP 4
#define DDQ_SDOT_PANEL_BYTES (128 * 1024)
/* Output channels per weight block: the conv tile's 6, fully_connected's 16. */
#define DDQ_SDOT_CONV_R 6
#define DDQ_SDOT_FC_R 16

/* The conv GEMM's scratch starts with a panel's last pixel's taps, [KG][4] and slack. */
static inline int64_t ddq_sdot_tail_bytes(int64_t KG) { return (KG * DDQ_SDOT_GROUP + 16 + 63) / 64 * 64; }

/* What prepare() returns for a GEMM conv2d or a fully_connected. */
typedef struct ddq_sdot_gemm {
    int path; /* DDQ_CONV_GEMM_SDOT */
    ddq_gemm_plan *plan;
    /* conv: the fast form's rounding shifts r, after a floor by 2^round16_shift (0 … 3), are
     * 1 … 7 for every channel, so that the rounding may run in int16 lanes
     * (conv_gemm_6x16c4__neondot.c) */
    int round16, round16_shift;
    /* conv: per block of DDQ_SDOT_CONV_R channels, the rounding shift R (1 … 16) that every
     * channel of the block has (neondot_set.c scaled weights and biases to make it so), or 0;
     * NULL where no block has one */
    uint8_t *rshrn;
} ddq_sdot_gemm;

/* A conv plan's extra data (neondot_set.c): per channel, blocks · 6 + DDQ_PLAN_CHANNEL_SLACK of
 * them, k = 2^(31 − r) (int32), then k16 = 2^(15 − r + round16_shift) (int16; 0 without
 * round16). */
static inline int64_t ddq_sdot_channels(const ddq_gemm_plan *p) { return p->blocks * p->R + DDQ_PLAN_CHANNEL_SLACK; }
static inline const int16_t *ddq_sdot_k16(const ddq_gemm_plan *p) {
    return (const int16_t *)((const int32_t *)p->extra + ddq_sdot_channels(p));
}

/* MBQM of four channels o … o + 3, one per lane, with their constants as vectors: the plan's
 * fast form where it proved it exact, else the int64 form (../neon/mbqm__neon.h). */
static inline int32x4_t ddq_rq4_lanes__neondot(const ddq_requant_plan *rq, int64_t o, int32x4_t v) {
    const int32x4_t m0 = vld1q_s32(rq->m0 + o);
    if (!rq->fast) return ddq_mbqm_neon(v, m0, vld1q_s64(rq->neg_t + o), vld1q_s64(rq->neg_t + o + 2));
    if (rq->lshift_any) v = vshlq_s32(v, vld1q_s32(rq->lshift + o));
    return vrshlq_s32(vqdmulhq_s32(v, m0), vld1q_s32(rq->neg_rshift + o));
}

/* The int16 rounding of the fast form (the conv GEMM's RQ_FAST16 … S3, the depthwise rows):
 * the floor shift a = 0 … 3 of the narrow to int16 after which every one of the n channels'
 * rounding shifts r lies in a + 1 … a + 7, so that SQRDMULH by k16 = 2^(15 − r + a) rounds the
 * rest in int16 lanes; −1 where no a does. */
static inline int ddq_sdot_round16_shift(const ddq_requant_plan *rq, int64_t n) {
    int r_min = 31, r_max = 0;
    for (int64_t o = 0; o < n; o++) {
        const int r = -rq->neg_rshift[o];
        r_min = r < r_min ? r : r_min;
        r_max = r > r_max ? r : r_max;
    }
    const int a = r_max > 7 ? r_max - 7 : 0;
    return n > 0 && a <= 3 && a <= r_min - 1 ? a : -1;
}
static inline int16_t ddq_sdot_k16_of(const ddq_requant_plan *rq, int64_t o, int a) {
    return (int16_t)(1 << (15 + a + rq->neg_rshift[o]));
}

void ddq_conv_gemm__neondot(const ddq_op_args *a, int64_t begin, int64_t end);

/* Depthwise 3×3 on NCHW rows with SDOT (dwconv3x3_rows__neondot.c): prepare returns NULL where the
 * op is outside what the kernel supports (then the neon set's depthwise kernel runs it). */
typedef struct ddq_sdot_dw ddq_sdot_dw;
ddq_sdot_dw *ddq_dw_prepare__neondot(const ddq_model *model, const ddq_op *op);
void ddq_dw_release__neondot(ddq_sdot_dw *d);
size_t ddq_dw_scratch_bytes__neondot(const ddq_model *model, const ddq_op *op);
void ddq_dwconv3x3__neondot(const ddq_op_args *a, int64_t begin, int64_t end);
void ddq_fully_connected__neondot(const ddq_op_args *a, int64_t begin, int64_t end);
/* fully_connected's per-thread scratch: the input, offset and zero-padded to 16 taps. */
size_t ddq_fc_scratch_bytes__neondot(const ddq_model *model, const ddq_op *op);

#endif
