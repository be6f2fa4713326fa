/* fully_connected, Advanced SIMD: four outputs at a time, byte products summed in int16 lanes.
 *
 * The input is offset once per call into scratch as int8 x − c (c = ddq_panel_offset: x − c
 * fits int8 for every grid up to 8 bits), and Σ w·(x − zp) = Σ w·(x − c) + (c − zp)·Σw, the
 * second term folded into the biases at session creation. Per 16 inputs: one load of x − c,
 * one load of each of the four outputs' weights and SMULL/SMLAL (low half) and SMLAL2 (high
 * half) into one int16x8 sum per output: 64 multiply-adds in 13 instructions, where widening
 * both operands to int16 first took 13 for 16. A lane gathers two products per 16 inputs, so
 * after `run` steps of 16 (prepare: 2 · run · max|w| · max|x − c| ≤ 32767, so every partial
 * sum fits) SADALP adds the lanes pairwise into int32; at the end ADDV reduces them, and the
 * last I mod 16 inputs are added in scalar code. The int32 sums wrap modulo 2^32 and end at
 * the exact accumulator, which the loader's bound keeps in int32; the requantization is
 * ddq_mbqm. */
#include <stdlib.h>

#include "neon.h"

/* What prepare() returns for a fully_connected. */
typedef struct fc_prepared {
    int path;        /* DDQ_FC_BYTES */
    int32_t offset;  /* c */
    int64_t run;     /* steps of 16 inputs summed in int16 */
    int32_t bias[];  /* [O]: bias + (c − zp)·Σw mod 2^32 */
} fc_prepared;

void *ddq_fc_prepare__neon(const ddq_model *model, const ddq_op *op) {
    const ddq_tensor *xt = &model->tensors[op->inputs[0]], *wt = &model->tensors[op->inputs[1]];
    const int32_t *bias = model->tensors[op->inputs[2]].data;
    const int64_t O = wt->shape[0], I = wt->shape[1];
    fc_prepared *p = malloc(sizeof *p + (size_t)O * sizeof(int32_t));
    if (!p) return NULL;
    p->path = DDQ_FC_BYTES;
    p->offset = ddq_panel_offset(xt, DDQ_OFFSET_CENTRED);
    const int64_t lo = xt->qmin - p->offset, hi = xt->qmax - p->offset;
    const int64_t xmax = -lo > hi ? -lo : hi;
    const int8_t *w = wt->data;
    int64_t wmax = 0;
    for (int64_t o = 0; o < O; o++) {
        int64_t sum = 0;
        for (int64_t i = 0; i < I; i++) {
            const int64_t v = w[o * I + i];
            sum += v;
            wmax = (v < 0 ? -v : v) > wmax ? (v < 0 ? -v : v) : wmax;
        }
        p->bias[o] = (int32_t)(uint32_t)(uint64_t)(bias[o] + ((int64_t)p->offset - xt->zero_point) * sum);
    }
    /* |w| ≤ 127 and |x − c| ≤ 128 keep two products inside int16, so a run is at least one step */
    p->run = wmax * xmax ? INT16_MAX / (2 * wmax * xmax) : I;
    if (p->run < 1) p->run = 1;
    return p;
}

void ddq_fc_release__neon(void *prepared) { free(prepared); }

/* Σ w·(x − c) of four weight rows over the first I16 = 16·⌊I / 16⌋ inputs of xc, as int32. */
static inline int32x4_t dot4(const int8_t *const w[4], const int8_t *xc, int64_t I16, int64_t run) {
    int32x4_t acc[4] = {vdupq_n_s32(0), vdupq_n_s32(0), vdupq_n_s32(0), vdupq_n_s32(0)};
    for (int64_t k0 = 0; k0 < I16; k0 += 16 * run) {
        const int64_t k1 = I16 - k0 < 16 * run ? I16 : k0 + 16 * run;
        const int8x16_t x0 = vld1q_s8(xc + k0);
        int16x8_t s[4];
        for (int r = 0; r < 4; r++) {
            const int8x16_t wv = vld1q_s8(w[r] + k0);
            s[r] = vmlal_high_s8(vmull_s8(vget_low_s8(wv), vget_low_s8(x0)), wv, x0);
        }
        for (int64_t k = k0 + 16; k < k1; k += 16) {
            const int8x16_t xv = vld1q_s8(xc + k);
            for (int r = 0; r < 4; r++) {
                const int8x16_t wv = vld1q_s8(w[r] + k);
                s[r] = vmlal_high_s8(vmlal_s8(s[r], vget_low_s8(wv), vget_low_s8(xv)), wv, xv);
            }
        }
        for (int r = 0; r < 4; r++) acc[r] = vpadalq_s16(acc[r], s[r]);
    }
    /* the four totals in the lanes of one vector */
    return vpaddq_s32(vpaddq_s32(acc[0], acc[1]), vpaddq_s32(acc[2], acc[3]));
}

void ddq_fully_connected__neon(const ddq_op_args *a, int64_t begin, int64_t end) {
    const fc_prepared *p = a->prepared;
    if (!p) {
        ddq_fully_connected__reference(a, begin, end);
        return;
    }
    const ddq_op *op = a->op;
    const ddq_tensor *xt = a->in[0], *yt = a->out;
    const int64_t I = xt->shape[1], I16 = I / 16 * 16;
    const uint8_t *x = a->x[0];
    const int8_t *w = a->in[1]->data;
    int8_t *xc = a->scratch;
    const uint8x16_t c = vdupq_n_u8((uint8_t)p->offset);
    for (int64_t i = 0; i < I16; i += 16) vst1q_s8(xc + i, vreinterpretq_s8_u8(vsubq_u8(vld1q_u8(x + i), c)));
    for (int64_t i = I16; i < I; i++) xc[i] = (int8_t)(x[i] - p->offset);
    uint8_t *y = a->y;
    for (int64_t o = begin; o < end; o += 4) {
        const int n = end - o < 4 ? (int)(end - o) : 4;
        const int8_t *wr[4];
        for (int r = 0; r < 4; r++) wr[r] = w + (o + (r < n ? r : n - 1)) * I;
        int32_t acc[4];
        vst1q_s32(acc, dot4(wr, xc, I16, p->run));
        for (int r = 0; r < n; r++) {
            uint32_t sum = (uint32_t)acc[r] + (uint32_t)p->bias[o + r]; /* wraps to the exact sum */
            for (int64_t i = I16; i < I; i++) sum += (uint32_t)((int32_t)wr[r][i] * xc[i]);
            y[o + r] = (uint8_t)ddq_clamp_code(ddq_mbqm((int32_t)sum, op->channel_multipliers[o + r]),
                                               yt->zero_point, op->act_min, op->act_max);
        }
    }
}
