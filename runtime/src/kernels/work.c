#include "kernels.h"

/* Grains keep a thread's share large enough to outweigh waking it (a few microseconds). */
#define ELEMENTWISE_GRAIN 4096

ddq_work ddq_op_work(const ddq_model *model, const ddq_op *op) {
    const ddq_tensor *out = &model->tensors[op->output];
    switch ((enum ddq_op_kind)op->kind) {
    case DDQ_OP_CONV2D:
    case DDQ_OP_FULLY_CONNECTED:
    case DDQ_OP_AVG_POOL:
    case DDQ_OP_MAX_POOL:
    case DDQ_OP_GLOBAL_AVG_POOL:
        return (ddq_work){out->shape[1], 1}; /* output channels (planes) */
    default:
        return (ddq_work){ddq_sample_elements(out), ELEMENTWISE_GRAIN};
    }
}
