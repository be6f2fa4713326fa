/* The kernel interface: one function per op kind, called on a range of work items.
 *
 * A kernel set (reference, and later neon / neondot / x86) fills a ddq_kernel_set; the
 * dispatch (dispatch.c) picks one per session from the CPU's features. The executor splits an
 * op's work items (ddq_op_work: output channels for conv/fc, channels for pools, elements for
 * elementwise ops) into contiguous ranges, one per thread, so every kernel must compute each
 * item independently of how the range was split: outputs do not depend on the thread count.
 */
#ifndef DDQ_KERNELS_H
#define DDQ_KERNELS_H

#include <stdint.h>

#include "../model.h"

typedef struct ddq_op_args {
    const ddq_op *op;
    const ddq_tensor *in[3]; /* tensor descriptions (shape, grid); constants carry their data */
    const ddq_tensor *out;
    const void *x[3];        /* this sample's input data */
    void *y;                 /* this sample's output data */
} ddq_op_args;

typedef void (*ddq_kernel_fn)(const ddq_op_args *args, int64_t begin, int64_t end);

typedef struct ddq_kernel_set {
    const char *name;
    int (*available)(void);  /* 1 when this CPU can run the set */
    ddq_kernel_fn ops[DDQ_OP_KIND_COUNT];
} ddq_kernel_set;

/* Work items of an op per sample, and the smallest range worth handing to a thread. */
typedef struct ddq_work {
    int64_t items;
    int64_t grain;
} ddq_work;

ddq_work ddq_op_work(const ddq_model *model, const ddq_op *op);

extern const ddq_kernel_set ddq_kernels_reference;

#endif
