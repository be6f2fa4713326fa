/* fully_connected with SDOT (ARMv8.2 dot product): a GEMV over the one input pixel, 16 output
 * channels at a time.
 *
 * The input is first written as x − c (int8, the plan's offset) and zero-padded to a multiple of
 * 16 taps, so one 16-byte load holds four groups of four taps. The weights are the plan's
 * [blocks][KG][16][4] (../gemm_plan.h, group 4): one 64-byte load per group gives 16 channels ×
 * 4 taps, and four SDOT by element (lane = the group's four input taps) add them into four
 * accumulators of four channels each. Even and odd groups go to two sets of accumulators, added
 * at the end, so consecutive SDOTs do not wait on each other.
 *
 * Exactness as in conv_gemm_6x16c4__neondot.c: the int32 lanes start at the folded biases and
 * sum w · (x − c) mod 2^32, which ends at the exact accumulator (inside int32 by the loader's
 * bound); the channels come out in the lanes, so the requantization takes its per-channel
 * constants as vectors (fast form where the plan proved it exact, else the int64 form). */
#include "neondot.h"

size_t ddq_fc_scratch_bytes__neondot(const ddq_model *model, const ddq_op *op) {
    const int64_t K = model->tensors[op->inputs[0]].shape[1];
    return (size_t)ddq_round_up(ddq_round_up(K, 16), 64);
}

void ddq_fully_connected__neondot(const ddq_op_args *a, int64_t begin, int64_t end) {
    const ddq_gemm_plan *p = ((const ddq_sdot_gemm *)a->prepared)->plan;
    const ddq_op *op = a->op;
    const ddq_tensor *yt = a->out;
    const uint8_t *x = a->x[0];
    uint8_t *y = a->y;
    const int64_t K = p->K, KG = p->KG, K16 = ddq_round_up(K, 16);
    int8_t *xq = a->scratch;
    const uint8x16_t c = vdupq_n_u8((uint8_t)p->offset);
    int64_t k = 0;
    for (; k + 16 <= K; k += 16) vst1q_s8(xq + k, vreinterpretq_s8_u8(vsubq_u8(vld1q_u8(x + k), c)));
    for (; k < K; k++) xq[k] = (int8_t)(uint8_t)(x[k] - p->offset);
    for (; k < K16; k++) xq[k] = 0; /* taps past K meet zero weights */
    const int16x8_t zp = vdupq_n_s16((int16_t)yt->zero_point);
    const uint8x16_t lo = vdupq_n_u8((uint8_t)op->act_min), hi = vdupq_n_u8((uint8_t)op->act_max);
    const int64_t wblock = KG * DDQ_SDOT_FC_R * DDQ_SDOT_GROUP;
    for (int64_t o0 = begin / DDQ_SDOT_FC_R * DDQ_SDOT_FC_R; o0 < end; o0 += DDQ_SDOT_FC_R) {
        const int8_t *wp = p->w + o0 / DDQ_SDOT_FC_R * wblock;
        int32x4_t e0 = vld1q_s32(p->bias + o0), e1 = vld1q_s32(p->bias + o0 + 4);
        int32x4_t e2 = vld1q_s32(p->bias + o0 + 8), e3 = vld1q_s32(p->bias + o0 + 12);
        int32x4_t d0 = vdupq_n_s32(0), d1 = d0, d2 = d0, d3 = d0;
        /* one group: 16 channels × the four taps in lane `lane` of xv, into accumulators s */
#define GROUP(s, lane)                                           \
    do {                                                         \
        const int8x16x4_t w = vld1q_s8_x4(wp);                   \
        wp += DDQ_SDOT_FC_R * DDQ_SDOT_GROUP;                    \
        s##0 = vdotq_laneq_s32(s##0, w.val[0], xv, lane);        \
        s##1 = vdotq_laneq_s32(s##1, w.val[1], xv, lane);        \
        s##2 = vdotq_laneq_s32(s##2, w.val[2], xv, lane);        \
        s##3 = vdotq_laneq_s32(s##3, w.val[3], xv, lane);        \
    } while (0)
        int64_t g = 0;
        for (; g + 4 <= KG; g += 4) {
            const int8x16_t xv = vld1q_s8(xq + 4 * g);
            GROUP(e, 0);
            GROUP(d, 1);
            GROUP(e, 2);
            GROUP(d, 3);
        }
        if (g < KG) { /* 1–3 groups; their 16-byte load stays inside the padded input */
            const int8x16_t xv = vld1q_s8(xq + 4 * g);
            GROUP(e, 0);
            if (g + 1 < KG) GROUP(d, 1);
            if (g + 2 < KG) GROUP(e, 2);
        }
#undef GROUP
        const ddq_requant_plan *rq = &p->rq;
        const int32x4_t v0 = ddq_rq4_lanes__neondot(rq, o0, vaddq_s32(e0, d0));
        const int32x4_t v1 = ddq_rq4_lanes__neondot(rq, o0 + 4, vaddq_s32(e1, d1));
        const int32x4_t v2 = ddq_rq4_lanes__neondot(rq, o0 + 8, vaddq_s32(e2, d2));
        const int32x4_t v3 = ddq_rq4_lanes__neondot(rq, o0 + 12, vaddq_s32(e3, d3));
        const int16x8_t h0 = vqaddq_s16(vqmovn_high_s32(vqmovn_s32(v0), v1), zp);
        const int16x8_t h1 = vqaddq_s16(vqmovn_high_s32(vqmovn_s32(v2), v3), zp);
        const uint8x16_t u = vminq_u8(vmaxq_u8(vqmovun_high_s16(vqmovun_s16(h0), h1), lo), hi);
        if (o0 >= begin && o0 + DDQ_SDOT_FC_R <= end) {
            vst1q_u8(y + o0, u);
        } else { /* a block at either end of this thread's range */
            uint8_t codes[DDQ_SDOT_FC_R];
            vst1q_u8(codes, u);
            const int64_t ob = o0 > begin ? o0 : begin, oe = o0 + DDQ_SDOT_FC_R < end ? o0 + DDQ_SDOT_FC_R : end;
            memcpy(y + ob, codes + (ob - o0), (size_t)(oe - ob));
        }
    }
}
