/* The kernel interface: one function per op kind, called on a range of work items.
 *
 * A kernel set (reference, generic, neon, neondot, x86, x86vnni) fills a ddq_kernel_set; the
 * dispatch (dispatch.c) picks one per session from the CPU's features. The executor splits an
 * op's work items (ddq_op_work: output channels for conv/fc, channels for pools, elements for
 * elementwise ops) into contiguous ranges, one per thread, so every kernel must compute each
 * item independently of how the range was split: outputs do not depend on the thread count.
 *
 * A set may prepare per-op data once per session (packed weights: `prepare`, freed with
 * `release`) and ask for per-thread scratch memory (`scratch_bytes`). The session calls both
 * at creation, where it may allocate; a run allocates nothing.
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
    const void *prepared;    /* what the set's prepare() returned for this op (may be NULL) */
    void *scratch;           /* this thread's scratch: scratch_bytes() of the op, 64-byte aligned */
} ddq_op_args;

typedef void (*ddq_kernel_fn)(const ddq_op_args *args, int64_t begin, int64_t end);

typedef struct ddq_kernel_set {
    const char *name;
    int (*available)(void);  /* 1 when this CPU can run the set */
    ddq_kernel_fn ops[DDQ_OP_KIND_COUNT];
    /* Optional (NULL in the reference set). prepare() runs once per op at session creation and
     * returns data the op's kernel finds in ddq_op_args.prepared, or NULL: nothing to prepare,
     * or no memory for it. A kernel must then still compute the op (the sets here fall back to
     * the reference code), so a NULL never changes a result. release() frees what prepare()
     * returned (never called with NULL). scratch_bytes() is the per-thread scratch the op needs;
     * the session allocates the largest over all ops once per thread. */
    void *(*prepare)(const ddq_model *model, const ddq_op *op);
    void (*release)(void *prepared);
    size_t (*scratch_bytes)(const ddq_model *model, const ddq_op *op);
} ddq_kernel_set;

/* Work items of an op per sample, and the smallest range worth handing to a thread. */
typedef struct ddq_work {
    int64_t items;
    int64_t grain;
} ddq_work;

ddq_work ddq_op_work(const ddq_model *model, const ddq_op *op);

extern const ddq_kernel_set ddq_kernels_reference;
extern const ddq_kernel_set ddq_kernels_generic; /* portable C written for auto-vectorization */
#if defined(DDQ_HAVE_NEON_KERNELS)
extern const ddq_kernel_set ddq_kernels_neon;    /* aarch64 Advanced SIMD (ARMv8.0) */
#endif
#if defined(DDQ_HAVE_NEONDOT_KERNELS)
extern const ddq_kernel_set ddq_kernels_neondot; /* ARMv8.2 dot product (SDOT) */
#endif
#if defined(DDQ_HAVE_X86_KERNELS)
extern const ddq_kernel_set ddq_kernels_x86;     /* x86-64 AVX2 */
#endif
#if defined(DDQ_HAVE_X86VNNI_KERNELS)
extern const ddq_kernel_set ddq_kernels_x86vnni; /* x86-64 AVX2 + AVX-VNNI */
#endif

#endif
