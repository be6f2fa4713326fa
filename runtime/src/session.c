/* Sessions: the arena, the worker threads and the op loop. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dispatch.h"
#include "error.h"
#include "kernels/kernels.h"
#include "model.h"
#include "planner.h"
#include "thread_pool.h"

typedef struct op_job {
    ddq_kernel_fn kernel;
    ddq_op_args args;
    int64_t items;
    int tasks;
    uint8_t *scratch;        /* task t uses scratch + t · scratch_stride */
    size_t scratch_stride;
} op_job;

struct ddq_session {
    const ddq_model *model;
    const ddq_kernel_set *kernels;
    int threads;
    ddq_plan plan;
    uint8_t *arena;
    ddq_thread_pool *pool;
    ddq_work *work;          /* per op */
    void **prepared;         /* per op: the kernel set's prepare() result, or NULL */
    uint8_t *scratch;        /* threads × scratch_stride bytes, 64-byte aligned, or NULL */
    size_t scratch_stride;   /* the largest scratch_bytes() over the ops, rounded to 64 */
    uint64_t *op_ns;         /* per op, last run */
    ddq_op_observer observer;
    void *observer_context;
};

/* The kernel set's per-op data and the per-thread scratch, made once: a run allocates nothing. */
static ddq_status prepare_kernels(ddq_session *s, ddq_error *error) {
    const ddq_model *m = s->model;
    const ddq_kernel_set *k = s->kernels;
    s->prepared = calloc(m->op_count ? m->op_count : 1, sizeof *s->prepared);
    if (!s->prepared) return ddq_fail(error, DDQ_ERR_NOMEM, "out of memory for the kernels' data");
    size_t scratch = 0;
    for (uint32_t i = 0; i < m->op_count; i++) {
        if (k->prepare) s->prepared[i] = k->prepare(m, &m->ops[i]);
        if (k->scratch_bytes) {
            size_t need = k->scratch_bytes(m, &m->ops[i]);
            if (need > scratch) scratch = need;
        }
    }
    if (!scratch) return DDQ_OK;
    if (scratch > SIZE_MAX / 2 / (size_t)s->threads)
        return ddq_fail(error, DDQ_ERR_NOMEM, "kernel scratch of %zu bytes per thread is too large", scratch);
    s->scratch_stride = (scratch + DDQ_ARENA_ALIGN - 1) / DDQ_ARENA_ALIGN * DDQ_ARENA_ALIGN;
    s->scratch = aligned_alloc(DDQ_ARENA_ALIGN, s->scratch_stride * (size_t)s->threads);
    if (!s->scratch)
        return ddq_fail(error, DDQ_ERR_NOMEM, "out of memory for %d x %zu bytes of kernel scratch", s->threads,
                        s->scratch_stride);
    return DDQ_OK;
}

ddq_session_options ddq_session_default_options(void) { return (ddq_session_options){.threads = 1, .kernels = NULL}; }

ddq_status ddq_session_create(const ddq_model *model, const ddq_session_options *options, ddq_session **out,
                              ddq_error *error) {
    if (!model || !out) return ddq_fail(error, DDQ_ERR_ARGUMENT, "ddq_session_create: NULL argument");
    *out = NULL;
    ddq_session_options opt = options ? *options : ddq_session_default_options();
    if (opt.threads < 1 || opt.threads > DDQ_MAX_THREADS)
        return ddq_fail(error, DDQ_ERR_ARGUMENT, "threads must be 1..%d, got %d", DDQ_MAX_THREADS, opt.threads);
    ddq_session *s = calloc(1, sizeof *s);
    if (!s) return ddq_fail(error, DDQ_ERR_NOMEM, "out of memory");
    s->model = model;
    s->threads = opt.threads;
    ddq_status st = ddq_select_kernels(opt.kernels, &s->kernels, error);
    if (!st) st = ddq_plan_memory(model, &s->plan, error);
    if (!st) {
        s->arena = aligned_alloc(DDQ_ARENA_ALIGN, s->plan.arena_bytes ? s->plan.arena_bytes : DDQ_ARENA_ALIGN);
        s->work = calloc(model->op_count ? model->op_count : 1, sizeof *s->work);
        s->op_ns = calloc(model->op_count ? model->op_count : 1, sizeof *s->op_ns);
        if (!s->arena || !s->work || !s->op_ns) st = ddq_fail(error, DDQ_ERR_NOMEM, "out of memory for the arena");
    }
    if (!st) st = prepare_kernels(s, error);
    if (!st) st = ddq_thread_pool_create(opt.threads, &s->pool, error);
    if (st) {
        ddq_session_free(s);
        return st;
    }
    for (uint32_t i = 0; i < model->op_count; i++) s->work[i] = ddq_op_work(model, &model->ops[i]);
    *out = s;
    return DDQ_OK;
}

void ddq_session_free(ddq_session *s) {
    if (!s) return;
    ddq_thread_pool_free(s->pool);
    ddq_plan_free(&s->plan);
    if (s->prepared)
        for (uint32_t i = 0; i < s->model->op_count; i++)
            if (s->prepared[i]) s->kernels->release(s->prepared[i]);
    free(s->prepared);
    free(s->scratch);
    free(s->arena);
    free(s->work);
    free(s->op_ns);
    free(s);
}

/* Thread t computes the t-th of `tasks` contiguous, near-equal ranges of the op's items. */
static void run_task(void *context, int t) {
    const op_job *job = context;
    int64_t begin = job->items * t / job->tasks, end = job->items * (t + 1) / job->tasks;
    if (begin >= end) return;
    ddq_op_args args = job->args;
    args.scratch = job->scratch ? job->scratch + (size_t)t * job->scratch_stride : NULL;
    job->kernel(&args, begin, end);
}

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Where tensor t lives for the current sample. */
static void *tensor_data(const ddq_session *s, uint32_t t, const float *input, float *output) {
    const ddq_model *m = s->model;
    if (t == m->input) return (void *)input;
    if (t == m->output) return output;
    const ddq_tensor *tensor = &m->tensors[t];
    if (tensor->flags & DDQ_FLAG_CONSTANT) return tensor->data;
    int root = s->plan.slots[t].root;
    if (root < 0) return (void *)input; /* a view of the graph input */
    return s->arena + s->plan.slots[root].offset;
}

ddq_status ddq_session_run(ddq_session *s, const float *input, int64_t batch, float *output, ddq_error *error) {
    if (!s || !input || !output) return ddq_fail(error, DDQ_ERR_ARGUMENT, "ddq_session_run: NULL argument");
    if (batch < 1) return ddq_fail(error, DDQ_ERR_ARGUMENT, "ddq_session_run: batch must be >= 1, got %lld", (long long)batch);
    const ddq_model *m = s->model;
    const int64_t in_elems = ddq_sample_elements(&m->tensors[m->input]);
    const int64_t out_elems = ddq_sample_elements(&m->tensors[m->output]);
    memset(s->op_ns, 0, sizeof *s->op_ns * m->op_count);
    for (int64_t n = 0; n < batch; n++) {
        const float *x = input + n * in_elems;
        float *y = output + n * out_elems;
        for (uint32_t i = 0; i < m->op_count; i++) {
            const ddq_op *op = &m->ops[i];
            op_job job = {.kernel = s->kernels->ops[op->kind], .items = s->work[i].items,
                          .scratch = s->scratch, .scratch_stride = s->scratch_stride};
            job.args.op = op;
            job.args.prepared = s->prepared[i];
            job.args.out = &m->tensors[op->output];
            job.args.y = tensor_data(s, op->output, x, y);
            for (unsigned j = 0; j < op->n_inputs; j++) {
                job.args.in[j] = &m->tensors[op->inputs[j]];
                job.args.x[j] = tensor_data(s, op->inputs[j], x, y);
            }
            int64_t by_grain = (job.items + s->work[i].grain - 1) / s->work[i].grain;
            job.tasks = by_grain < s->threads ? (int)by_grain : s->threads;
            if (s->observer) s->observer(s->observer_context, (int)i, 0);
            uint64_t start = now_ns();
            ddq_thread_pool_run(s->pool, run_task, &job, job.tasks);
            s->op_ns[i] += now_ns() - start;
            if (s->observer) s->observer(s->observer_context, (int)i, 1);
        }
    }
    return DDQ_OK;
}

void ddq_session_set_op_observer(ddq_session *s, ddq_op_observer observer, void *context) {
    s->observer = observer;
    s->observer_context = context;
}

size_t ddq_session_arena_bytes(const ddq_session *s) { return s->plan.arena_bytes; }
size_t ddq_session_liveness_bound(const ddq_session *s) { return s->plan.liveness_bound; }
const char *ddq_session_kernels(const ddq_session *s) { return s->kernels->name; }
int ddq_session_threads(const ddq_session *s) { return s->threads; }
int ddq_session_op_count(const ddq_session *s) { return (int)s->model->op_count; }
const uint64_t *ddq_session_op_nanoseconds(const ddq_session *s) { return s->op_ns; }

int ddq_session_tensor_plan(const ddq_session *s, int t, size_t *offset, size_t *bytes, int *first, int *last) {
    if (t < 0 || (uint32_t)t >= s->model->tensor_count) return 0;
    const ddq_slot *slot = &s->plan.slots[t];
    if (!slot->in_arena) return 0;
    if (offset) *offset = slot->offset;
    if (bytes) *bytes = slot->bytes;
    if (first) *first = slot->first;
    if (last) *last = slot->last;
    return 1;
}
