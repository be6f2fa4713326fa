/* The loaded model: decoded tensors and ops with everything the kernels need precomputed. */
#ifndef DDQ_MODEL_H
#define DDQ_MODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ddq/ddq.h"

enum ddq_dtype { DDQ_F32 = 0, DDQ_U8 = 1, DDQ_I8 = 2, DDQ_I32 = 3, DDQ_DTYPE_COUNT };

enum ddq_op_kind {
    DDQ_OP_QUANTIZE = 0,
    DDQ_OP_DEQUANTIZE = 1,
    DDQ_OP_CONV2D = 2,
    DDQ_OP_FULLY_CONNECTED = 3,
    DDQ_OP_ADD = 4,
    DDQ_OP_AVG_POOL = 5,
    DDQ_OP_GLOBAL_AVG_POOL = 6,
    DDQ_OP_MAX_POOL = 7,
    DDQ_OP_REQUANTIZE = 8,
    DDQ_OP_RESHAPE = 9,
    DDQ_OP_KIND_COUNT
};

#define DDQ_FLAG_QUANT 0x01u
#define DDQ_FLAG_CONSTANT 0x02u

typedef struct ddq_tensor {
    const char *name; /* points into the model's copy of STRINGS */
    uint8_t dtype, ndim, flags, bits;
    int32_t zero_point, qmin, qmax;
    int64_t shape[DDQ_MAX_DIMS];
    int64_t elements;       /* all dimensions */
    uint32_t scale_count;
    const float *scales;    /* scale_count values (QUANT), owned by the model */
    void *data;             /* CONSTANT: float32 / uint8 / int8 codes unpacked / int32 */
    uint32_t stored_bytes;  /* CONSTANT: data_size in the file */
    /* set by the graph check */
    int producer;           /* op index, -1 for graph inputs and constants */
} ddq_tensor;

/* A requantization multiplier: real M ≈ m0 · 2^(shift − 31) (docs/arithmetic.md §4). */
typedef struct ddq_multiplier {
    int32_t m0;
    int32_t shift;
} ddq_multiplier;

typedef struct ddq_op {
    const char *name;
    uint16_t kind;
    uint8_t n_inputs, n_outputs;
    uint32_t inputs[3];
    uint32_t output;
    /* attributes (those the kind has) */
    int32_t stride[2], padding[4], dilation[2], kernel[2], groups;
    int32_t act_min, act_max;
    int32_t reshape_ndim;
    int64_t reshape_shape[DDQ_MAX_DIMS];
    /* derived at load */
    ddq_multiplier *channel_multipliers; /* conv2d, fully_connected: one per output channel */
    /* conv2d, fully_connected, per output channel: Σ|w|·span + |bias| ≤ 2^31 − 1 (span: the input
     * grid's largest |x − zp|), which bounds |acc + bias| for every input; the kernel sets' exact
     * forms are proven from it */
    int64_t *channel_bounds;
    ddq_multiplier multiplier;           /* requantize, global_avg_pool: the one; add: output */
    ddq_multiplier add_a, add_b;         /* add: the input rescalings */
} ddq_op;

struct ddq_model {
    char *source;            /* file name for messages */
    uint8_t *bytes;          /* the whole file */
    size_t size;
    int version_major, version_minor;
    uint32_t tensor_count, op_count;
    ddq_tensor *tensors;
    ddq_op *ops;
    uint32_t input, output;  /* the graph's single input and output tensor */
    char *metadata;          /* NUL-terminated copy */
    size_t metadata_length;
    size_t weight_bytes;
};

extern const char *const ddq_op_kind_names[DDQ_OP_KIND_COUNT];

/* Per-sample element count of an activation (shape[0] is the batch, stored as 1). */
static inline int64_t ddq_sample_elements(const ddq_tensor *t) {
    return t->ndim == 0 ? 1 : t->elements / (t->shape[0] ? t->shape[0] : 1);
}

static inline size_t ddq_dtype_size(uint8_t dtype) {
    return dtype == DDQ_F32 || dtype == DDQ_I32 ? 4 : 1;
}

/* Parses and validates the container and records (bundle_reader.c), then the graph's
 * semantics and derived quantities (graph_check.c). */
ddq_status ddq_read_bundle(ddq_model *model, ddq_error *error);
ddq_status ddq_check_graph(ddq_model *model, ddq_error *error);

#endif
