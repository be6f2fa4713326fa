/* The static memory plan: every intermediate tensor gets an arena offset fixed at session
 * creation; tensors whose lifetimes do not overlap share bytes. */
#ifndef DDQ_PLANNER_H
#define DDQ_PLANNER_H

#include <stddef.h>

#include "model.h"

#define DDQ_ARENA_ALIGN 64

typedef struct ddq_slot {
    int root;         /* tensor whose bytes this one uses (itself, or a reshape's source); -1: none */
    size_t offset;    /* in the arena (roots placed in the arena only) */
    size_t bytes;     /* rounded up to DDQ_ARENA_ALIGN */
    int first, last;  /* ops that produce and last read the root */
    int in_arena;
} ddq_slot;

typedef struct ddq_plan {
    ddq_slot *slots;        /* one per tensor */
    size_t arena_bytes;     /* max offset + bytes over the placed tensors */
    size_t liveness_bound;  /* max over ops of the bytes alive at that op */
} ddq_plan;

ddq_status ddq_plan_memory(const ddq_model *model, ddq_plan *plan, ddq_error *error);
void ddq_plan_free(ddq_plan *plan);

#endif
