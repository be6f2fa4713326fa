/* The plans of the neon GEMMs on pairs of taps (neon.h): which ops they admit, and each block's
 * runs of pairs summed in narrow lanes before widening.
 *
 * Both read the panel of x − c bytes (gemm_plan.h, group 2: c makes x − c fit a byte) against
 * the int8 weights, and hold in a lane the products of one tap parity of one pixel over a run.
 * ddq_greedy_runs splits a block's pairs into the longest runs whose per-lane interval bound lies
 * in the lane type; every product's interval contains 0, so every partial sum of a run does too.
 *
 * - acc8: byte lanes, [−128, 127]. Each block's whole sum must also be bounded in int16 (the
 *   kernel widens runs into int16 lanes, SADALP) and the fast requantization must hold.
 * - mull: int16 lanes of SMULL/SMLAL byte products, [−32768, 32767]; a single product always
 *   fits (|w · v| ≤ 128 · 128), so every op qualifies. Runs widen into int32, which wraps and ends
 *   at the exact accumulator (the loader's bound). */
#include <stdlib.h>

#include "neon.h"

void *ddq_gemm_pairs_prepare__neon(const ddq_model *model, const ddq_op *op, int path) {
    const int acc8 = path == DDQ_CONV_GEMM_ACC8;
    ddq_gemm_plan *p =
        ddq_gemm_plan_create(model, op, DDQ_PAIRS_GROUP, DDQ_PAIRS_BLOCK, DDQ_OFFSET_CENTRED, DDQ_GEMM_PANEL_BYTES);
    if (!p) return NULL;
    uint16_t *lengths = malloc((size_t)(p->KG + 1) * sizeof *lengths);
    ddq_neon_pairs *a = calloc(1, sizeof *a);
    int ok = lengths && a && (p->rq.fast || !acc8);
    const int64_t lane_min = acc8 ? INT8_MIN : INT16_MIN, lane_max = acc8 ? INT8_MAX : INT16_MAX;
    int64_t used = 0;
    for (int64_t b = 0; ok && b < p->blocks; b++) {
        const int64_t o0 = b * DDQ_PAIRS_BLOCK;
        /* acc8: the whole of K in int16 (one run of every pair, both parities together) */
        if (acc8)
            ok = ddq_greedy_runs(p, o0, DDQ_PAIRS_BLOCK, 0, p->KG, 0, INT16_MIN, INT16_MAX, p->KG, lengths) == 1;
        const int64_t runs =
            ok ? ddq_greedy_runs(p, o0, DDQ_PAIRS_BLOCK, 0, p->KG, 1, lane_min, lane_max, UINT16_MAX, lengths) : -1;
        ok = runs > 0;
        p->run_begin[b] = used;
        for (int64_t r = 0; ok && r < runs; r++) p->runs[used++] = (ddq_run){lengths[r], 0};
    }
    free(lengths);
    if (!ok) {
        free(a);
        ddq_gemm_plan_free(p);
        return NULL;
    }
    p->run_begin[p->blocks] = used;
    a->path = path;
    a->plan = p;
    return a;
}

void ddq_gemm_pairs_release__neon(void *prepared) {
    ddq_neon_pairs *a = prepared;
    ddq_gemm_plan_free(a->plan);
    free(a);
}

size_t ddq_gemm_pairs_scratch_bytes__neon(const ddq_model *model, const ddq_op *op) {
    return ddq_gemm_scratch_bytes(model, op, DDQ_PAIRS_GROUP, DDQ_GEMM_PANEL_BYTES);
}
