/* The x86 set's per-op preparation, portable C: the requantization constants, the GEMM plan on
 * groups of 4 taps with each block's kernel and runs (x86.h), and the scratch sizes. */
#include <stdlib.h>
#include <string.h>

#include "x86.h"

ddq_rq_x86 ddq_rq_x86_of(ddq_multiplier m, int32_t zp) {
    const int t = 31 - m.shift, l = t < 32 ? 32 - t : 0, u = t + l;
    ddq_rq_x86 q;
    q.m0 = m.m0;
    q.lshift = l;
    q.u = u;
    q.u_odd = u - 32;
    q.rnd = (int64_t)(((uint64_t)1 << 62) + ((uint64_t)1 << (u - 1)));
    q.add = (int32_t)((uint32_t)zp - (uint32_t)(((uint64_t)1 << (62 - u)) & 0xFFFFFFFFu));
    return q;
}

int ddq_rq_x86_exact(ddq_multiplier m, int64_t bound) {
    if (m.shift < 0) return 1;
    return m.shift + 1 <= 31 && (bound << (m.shift + 1)) <= INT32_MAX;
}

/* ------------------------------------------------------------------------------ the GEMM */

/* Whether block b's pairs of taps cannot saturate maddubs: every single group's pair lanes
 * bounded in int16 (a run of one group each). */
static int pairs_fit(const ddq_gemm_plan *p, int64_t b, uint16_t *lengths) {
    return ddq_greedy_runs(p, b * DDQ_X86_BLOCK, DDQ_X86_BLOCK, 0, p->KG, 2, INT16_MIN, INT16_MAX, 1, lengths) ==
           p->KG;
}

void *ddq_gemm_prepare__x86(const ddq_model *model, const ddq_op *op, int vnni) {
    const ddq_tensor *yt = &model->tensors[op->output];
    ddq_x86_gemm *g = calloc(1, sizeof *g);
    if (!g) return NULL;
    g->path = DDQ_CONV_GEMM;
    ddq_gemm_plan *p = g->plan =
        ddq_gemm_plan_create(model, op, DDQ_X86_GROUP, DDQ_X86_BLOCK, DDQ_OFFSET_UNSIGNED, DDQ_X86_PANEL_BYTES);
    uint16_t *lengths = p ? malloc((size_t)(p->KG + 1) * sizeof *lengths) : NULL;
    if (!lengths) goto fail;
    const int64_t channels = p->blocks * DDQ_X86_BLOCK;
    g->rq = calloc((size_t)channels, sizeof *g->rq);
    if (!g->rq) goto fail;
    g->exact_rq = 1;
    for (int64_t o = 0; o < channels; o++) {
        const ddq_multiplier m = o < p->O ? op->channel_multipliers[o] : (ddq_multiplier){0, 0};
        g->rq[o] = ddq_rq_x86_of(m, yt->zero_point);
        g->lshift_any |= g->rq[o].lshift > 0;
        if (o < p->O && !ddq_rq_x86_exact(m, op->channel_bounds[o])) g->exact_rq = 0;
    }
    int64_t used = 0;
    for (int64_t b = 0; !vnni && b < p->blocks; b++) {
        p->run_begin[b] = used;
        if (!pairs_fit(p, b, lengths)) {
            p->kernel[b] = DDQ_X86_MADD;
            g->madd_blocks++;
            continue;
        }
        /* every single group fits, so the greedy split exists */
        const int64_t runs = ddq_greedy_runs(p, b * DDQ_X86_BLOCK, DDQ_X86_BLOCK, 0, p->KG, 2, INT16_MIN, INT16_MAX,
                                             UINT16_MAX, lengths);
        p->kernel[b] = DDQ_X86_MADDUBS;
        for (int64_t r = 0; r < runs; r++) p->runs[used++] = (ddq_run){lengths[r], 0};
    }
    p->run_begin[p->blocks] = used;
    if (g->madd_blocks) {
        const int64_t n = p->blocks * p->KG * DDQ_X86_BLOCK * DDQ_X86_GROUP;
        g->w16 = aligned_alloc(64, (size_t)((n * 2 + 63) / 64 * 64));
        if (!g->w16) goto fail;
        for (int64_t i = 0; i < n; i++) g->w16[i] = p->w[i];
    }
    free(lengths);
    return g;
fail:
    free(lengths);
    ddq_gemm_release__x86(g);
    return NULL;
}

void ddq_gemm_release__x86(void *prepared) {
    ddq_x86_gemm *g = prepared;
    ddq_gemm_plan_free(g->plan);
    free(g->rq);
    free(g->w16);
    free(g);
}

size_t ddq_gemm_scratch_bytes__x86(const ddq_model *model, const ddq_op *op) {
    return ddq_gemm_scratch_bytes(model, op, DDQ_X86_GROUP, DDQ_X86_PANEL_BYTES);
}

size_t ddq_fc_scratch_bytes__x86(const ddq_model *model, const ddq_op *op) {
    const int64_t I = model->tensors[op->inputs[0]].shape[1];
    return (size_t)((I + 15) / 16 * 16) * sizeof(int16_t); /* x − zp, zero to a multiple of 16 */
}
