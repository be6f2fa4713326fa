/* Liveness and placement.
 *
 * A tensor is alive from the op that produces it to the last op that reads it (a reshape's
 * output is a view of its input, so its readers extend its input's life). The liveness bound —
 * the most bytes alive at any one op — is a lower bound for any arena. Placement is TFLite's
 * greedy-by-size: largest first, each at the lowest offset that does not collide with an
 * already placed tensor whose lifetime overlaps — and a few other orders when that misses the
 * bound (search_placement). The session reports both numbers.
 */
#include "planner.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"

static size_t round_up(size_t n) { return (n + DDQ_ARENA_ALIGN - 1) / DDQ_ARENA_ALIGN * DDQ_ARENA_ALIGN; }

static bool overlaps(const ddq_slot *a, const ddq_slot *b) { return a->first <= b->last && b->first <= a->last; }

/* First fit in the given order: each tensor at the lowest offset free of the already placed
 * tensors whose lifetimes overlap its own. Returns the arena size; offsets[k] is order[k]'s. */
static size_t first_fit(const ddq_slot *slots, const int *order, int count, size_t *offsets) {
    size_t arena = 0;
    for (int a = 0; a < count; a++) {
        const ddq_slot *s = &slots[order[a]];
        size_t offset = 0;
        /* raise the offset past every collision; it only grows, so the result is the lowest fit */
        for (bool moved = true; moved;) {
            moved = false;
            for (int b = 0; b < a; b++) {
                const ddq_slot *p = &slots[order[b]];
                if (overlaps(s, p) && offset < offsets[b] + p->bytes && offsets[b] < offset + s->bytes) {
                    offset = offsets[b] + p->bytes;
                    moved = true;
                }
            }
        }
        offsets[a] = offset;
        if (offset + s->bytes > arena) arena = offset + s->bytes;
    }
    return arena;
}

static void sort_order(const ddq_slot *slots, int *order, int count, int (*before)(const ddq_slot *, const ddq_slot *)) {
    for (int a = 1; a < count; a++) { /* insertion sort: stable, deterministic */
        int t = order[a], b = a;
        while (b > 0 && before(&slots[t], &slots[order[b - 1]])) {
            order[b] = order[b - 1];
            b--;
        }
        order[b] = t;
    }
}

static int larger_first(const ddq_slot *a, const ddq_slot *b) {
    return a->bytes > b->bytes || (a->bytes == b->bytes && a->first < b->first);
}
static int longer_first(const ddq_slot *a, const ddq_slot *b) {
    int la = a->last - a->first, lb = b->last - b->first;
    return la > lb || (la == lb && larger_first(a, b));
}
static int earlier_first(const ddq_slot *a, const ddq_slot *b) {
    return a->first < b->first || (a->first == b->first && a->bytes > b->bytes);
}

#define PLACEMENT_ATTEMPTS 256

/* Placement is NP-hard in general, but the liveness bound is a certificate of optimality:
 * try the classic orders (largest first — TFLite's greedy-by-size —, longest-lived first,
 * earliest first), then deterministic shuffles of the largest-first order, and stop as soon as
 * an order meets the bound. The best placement found is left in slots[].offset. */
static size_t search_placement(ddq_slot *slots, int *order, int count, size_t bound, size_t *offsets, size_t *best) {
    int (*const orders[])(const ddq_slot *, const ddq_slot *) = {larger_first, longer_first, earlier_first};
    size_t best_arena = SIZE_MAX;
    int *best_order = malloc(sizeof(int) * (size_t)(count ? count : 1));
    uint64_t rng = 0x9E3779B97F4A7C15ull;
    for (int attempt = 0; best_order && attempt < PLACEMENT_ATTEMPTS && best_arena > bound; attempt++) {
        if (attempt < 3) {
            sort_order(slots, order, count, orders[attempt]);
        } else { /* swap a few neighbours of the largest-first order: small perturbations */
            sort_order(slots, order, count, larger_first);
            for (int k = 0; k < 1 + attempt / 32 && count > 1; k++) {
                rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
                int i = (int)(rng % (uint64_t)count), j = (int)((rng >> 32) % (uint64_t)count);
                int t = order[i];
                order[i] = order[j];
                order[j] = t;
            }
        }
        size_t arena = first_fit(slots, order, count, offsets);
        if (arena < best_arena) {
            best_arena = arena;
            memcpy(best, offsets, sizeof(size_t) * (size_t)count);
            memcpy(best_order, order, sizeof(int) * (size_t)count);
        }
    }
    if (!best_order) { /* out of memory for the search: plain greedy by size */
        sort_order(slots, order, count, larger_first);
        best_arena = first_fit(slots, order, count, best);
    } else {
        memcpy(order, best_order, sizeof(int) * (size_t)count);
        free(best_order);
    }
    for (int a = 0; a < count; a++) slots[order[a]].offset = best[a];
    return count ? best_arena : 0;
}

/* A reshape reuses its input's bytes unless it writes the graph output (a caller's buffer). */
static bool is_view(const ddq_model *m, const ddq_op *op) {
    return op->kind == DDQ_OP_RESHAPE && op->output != m->output;
}

ddq_status ddq_plan_memory(const ddq_model *m, ddq_plan *plan, ddq_error *error) {
    const int n = (int)m->tensor_count;
    plan->slots = calloc((size_t)(n ? n : 1), sizeof(ddq_slot));
    int *order = calloc((size_t)(n ? n : 1), sizeof(int));
    if (!plan->slots || !order) {
        free(order);
        return ddq_fail(error, DDQ_ERR_NOMEM, "out of memory for the memory plan");
    }
    for (int t = 0; t < n; t++) plan->slots[t].root = -1;
    /* roots: every op output that is not the graph output and not a view */
    for (int i = 0; i < (int)m->op_count; i++) {
        const ddq_op *op = &m->ops[i];
        ddq_slot *s = &plan->slots[op->output];
        if (is_view(m, op)) {
            s->root = plan->slots[op->inputs[0]].root; /* −1 when the source is the graph input */
            continue;
        }
        if (op->output == m->output) continue;
        const ddq_tensor *t = &m->tensors[op->output];
        s->root = (int)op->output;
        s->in_arena = 1;
        s->bytes = round_up((size_t)ddq_sample_elements(t) * ddq_dtype_size(t->dtype));
        s->first = s->last = i;
    }
    for (int i = 0; i < (int)m->op_count; i++)
        for (unsigned j = 0; j < m->ops[i].n_inputs; j++) {
            int root = plan->slots[m->ops[i].inputs[j]].root;
            if (root >= 0 && plan->slots[root].last < i) plan->slots[root].last = i;
        }
    /* the liveness bound */
    size_t bound = 0;
    for (int i = 0; i < (int)m->op_count; i++) {
        size_t alive = 0;
        for (int t = 0; t < n; t++)
            if (plan->slots[t].in_arena && plan->slots[t].first <= i && i <= plan->slots[t].last)
                alive += plan->slots[t].bytes;
        if (alive > bound) bound = alive;
    }
    int count = 0;
    for (int t = 0; t < n; t++)
        if (plan->slots[t].in_arena) order[count++] = t;
    size_t *offsets = calloc((size_t)(count ? count : 1), sizeof(size_t));
    size_t *best = calloc((size_t)(count ? count : 1), sizeof(size_t));
    if (!offsets || !best) {
        free(order);
        free(offsets);
        free(best);
        return ddq_fail(error, DDQ_ERR_NOMEM, "out of memory for the memory plan");
    }
    size_t arena = search_placement(plan->slots, order, count, bound, offsets, best);
    free(offsets);
    free(best);
    for (int t = 0; t < n; t++) /* views take their root's place */
        if (plan->slots[t].root >= 0 && plan->slots[t].root != t) {
            const ddq_slot *r = &plan->slots[plan->slots[t].root];
            plan->slots[t].offset = r->offset;
            plan->slots[t].first = r->first;
            plan->slots[t].last = r->last;
        }
    free(order);
    plan->arena_bytes = arena;
    plan->liveness_bound = bound;
    return DDQ_OK;
}

void ddq_plan_free(ddq_plan *plan) {
    free(plan->slots);
    plan->slots = NULL;
}
