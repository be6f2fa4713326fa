/* ddq-edge runtime: load a .ddqb edge bundle, plan it, run it.
 *
 * C11, libc and pthreads only. The arithmetic of every op is docs/arithmetic.md; the file
 * format is docs/bundle-format.md. Typical use:
 *
 *     ddq_error err;
 *     ddq_model *model;
 *     if (ddq_model_load_file("model.ddqb", &model, &err) != DDQ_OK) { puts(err.message); ... }
 *     ddq_session_options opt = ddq_session_default_options();
 *     opt.threads = 4;
 *     ddq_session *s;
 *     ddq_session_create(model, &opt, &s, &err);
 *     ddq_session_run(s, input, batch, output, &err);   // float32 NCHW in, float32 out
 *     ddq_session_free(s);
 *     ddq_model_free(model);
 *
 * A model is immutable after loading and may be shared by several sessions (one per thread
 * that runs). A session owns the activation arena and the worker threads; ddq_session_run
 * allocates nothing.
 */
#ifndef DDQ_DDQ_H
#define DDQ_DDQ_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define DDQ_VERSION_STRING "0.1.0"
/* The bundle major version this runtime reads (any minor of it). */
#define DDQ_BUNDLE_MAJOR 1
#define DDQ_BUNDLE_MINOR 0
#define DDQ_MAX_DIMS 6
#define DDQ_MAX_THREADS 64

typedef enum ddq_status {
    DDQ_OK = 0,
    DDQ_ERR_IO = 1,          /* the file cannot be opened or read */
    DDQ_ERR_FORMAT = 2,      /* the bytes are not a well-formed bundle (docs/bundle-format.md §14) */
    DDQ_ERR_VERSION = 3,     /* a bundle major version this runtime does not read */
    DDQ_ERR_GRAPH = 4,       /* well-formed, but the graph is not executable (shapes, grids, bounds) */
    DDQ_ERR_UNSUPPORTED = 5, /* a valid construct this runtime does not implement */
    DDQ_ERR_ARGUMENT = 6,    /* a bad argument to an API call */
    DDQ_ERR_NOMEM = 7,
    DDQ_ERR_THREAD = 8,      /* worker threads could not be started */
} ddq_status;

/* Every call that can fail fills one of these (when non-NULL) with a message naming the place. */
typedef struct ddq_error {
    ddq_status status;
    char message[512];
} ddq_error;

const char *ddq_status_name(ddq_status status);

/* ------------------------------------------------------------------------------- models */

typedef struct ddq_model ddq_model;

/* Reads and validates a bundle: every offset, size, checksum, shape, op arity, attribute,
 * quantization grid and int32 accumulator bound is checked before anything runs. */
ddq_status ddq_model_load_file(const char *path, ddq_model **model, ddq_error *error);
/* The same from memory; the bytes are copied, the caller keeps ownership of `data`. */
ddq_status ddq_model_load_memory(const void *data, size_t size, const char *source_name,
                                 ddq_model **model, ddq_error *error);
void ddq_model_free(ddq_model *model);

typedef struct ddq_tensor_info {
    const char *name;
    int ndim;
    int64_t shape[DDQ_MAX_DIMS]; /* shape[0] is the batch dimension, stored as 1 */
    int64_t elements;            /* per sample (product of shape[1..]) */
} ddq_tensor_info;

typedef struct ddq_model_info {
    int version_major, version_minor;
    int tensor_count, op_count;
    size_t file_bytes;
    size_t weight_bytes;          /* constant data as stored (bit-packed weights, biases) */
    ddq_tensor_info input, output;
    const char *metadata_json;    /* the METADATA section, NUL-terminated */
    size_t metadata_length;
} ddq_model_info;

void ddq_model_get_info(const ddq_model *model, ddq_model_info *info);
/* Op i's name and kind ("conv2d", ...); NULL when i is out of range. */
const char *ddq_model_op_name(const ddq_model *model, int i);
const char *ddq_model_op_kind(const ddq_model *model, int i);

/* ------------------------------------------------------------------------------- sessions */

typedef struct ddq_session ddq_session;

typedef struct ddq_session_options {
    int threads;         /* 1 … DDQ_MAX_THREADS; the calling thread is one of them */
    const char *kernels; /* kernel set: NULL = best for this CPU (or $DDQ_KERNELS); "reference" */
} ddq_session_options;

ddq_session_options ddq_session_default_options(void);

ddq_status ddq_session_create(const ddq_model *model, const ddq_session_options *options,
                              ddq_session **session, ddq_error *error);
void ddq_session_free(ddq_session *session);

/* Runs `batch` samples: `input` holds batch × input.elements float32 values (NCHW, C order),
 * `output` receives batch × output.elements float32 values. Allocates nothing. */
ddq_status ddq_session_run(ddq_session *session, const float *input, int64_t batch, float *output,
                           ddq_error *error);

/* The activation arena: bytes allocated, and the planner's liveness bound (the largest sum of
 * the sizes of tensors alive at the same time). The plan places every tensor so the two agree
 * whenever that is possible; see docs/runtime.md. */
size_t ddq_session_arena_bytes(const ddq_session *session);
size_t ddq_session_liveness_bound(const ddq_session *session);
/* Where the planner put intermediate tensor `tensor` (an index into the bundle's tensors):
 * arena offset, bytes, and the first and last op that use it. Returns 0 when the tensor has no
 * arena slot (constants, graph input/output, reshape views). */
int ddq_session_tensor_plan(const ddq_session *session, int tensor, size_t *offset, size_t *bytes,
                            int *first_op, int *last_op);

const char *ddq_session_kernels(const ddq_session *session); /* the kernel set in use */
int ddq_session_threads(const ddq_session *session);

/* Wall time of each op summed over the samples of the last run, in nanoseconds. */
int ddq_session_op_count(const ddq_session *session);
const uint64_t *ddq_session_op_nanoseconds(const ddq_session *session);

/* An observer called on the running thread before (phase 0) and after (phase 1) every op of
 * every sample, e.g. to attribute time or instruction counts to ops. NULL removes it. */
typedef void (*ddq_op_observer)(void *context, int op_index, int phase);
void ddq_session_set_op_observer(ddq_session *session, ddq_op_observer observer, void *context);

/* The CPU features the kernel dispatch sees, e.g. "asimd asimddp" or "sse4.1 avx2". */
const char *ddq_cpu_features(void);

#ifdef __cplusplus
}
#endif
#endif /* DDQ_DDQ_H */
