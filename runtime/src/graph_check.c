/* The graph's semantics, checked once at load so the kernels can trust every index:
 * dataflow order (bundle format §14.10), tensor roles (activation / weight / bias), shapes,
 * attributes, quantization grids, the int32 accumulator bound of every op, and the
 * requantization multipliers derived from the float32 scales (docs/arithmetic.md §3). */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bitunpack.h"
#include "error.h"
#include "fixed_point.h"
#include "model.h"

#define INT32_LIMIT 2147483647LL

typedef struct checker {
    ddq_model *model;
    ddq_error *error;
    const ddq_op *op;
    char where[192];
} checker;

#define FAIL(c, status, ...) op_fail((c), (status), __VA_ARGS__)

static ddq_status op_fail(checker *c, ddq_status status, const char *format, ...) DDQ_PRINTF(3, 4);
static ddq_status op_fail(checker *c, ddq_status status, const char *format, ...) {
    char detail[384];
    va_list args;
    va_start(args, format);
    vsnprintf(detail, sizeof detail, format, args);
    va_end(args);
    return ddq_fail(c->error, status, "%s: %s: %s", c->model->source, c->where, detail);
}

static const ddq_tensor *tensor(const checker *c, uint32_t index) { return &c->model->tensors[index]; }

static bool scales_valid(const ddq_tensor *t) {
    for (uint32_t k = 0; k < t->scale_count; k++)
        if (!(isfinite(t->scales[k]) && t->scales[k] > 0.0f)) return false;
    return true;
}

static bool same_shape(const ddq_tensor *a, const ddq_tensor *b) {
    if (a->ndim != b->ndim) return false;
    for (int d = 0; d < a->ndim; d++)
        if (a->shape[d] != b->shape[d]) return false;
    return true;
}

static void shape_text(const ddq_tensor *t, char *buf, size_t n) {
    size_t used = (size_t)snprintf(buf, n, "(");
    for (int d = 0; d < t->ndim && used < n; d++)
        used += (size_t)snprintf(buf + used, n - used, d ? ", %lld" : "%lld", (long long)t->shape[d]);
    if (used < n) snprintf(buf + used, n - used, ")");
}

/* A batch-1 tensor computed at run time, with every dimension ≥ 1. */
static ddq_status check_runtime_tensor(checker *c, const ddq_tensor *t, const char *role) {
    if (t->flags & DDQ_FLAG_CONSTANT)
        return FAIL(c, DDQ_ERR_UNSUPPORTED, "%s '%s' is a constant; this runtime computes it", role, t->name);
    if (t->ndim < 1 || t->shape[0] != 1)
        return FAIL(c, DDQ_ERR_GRAPH, "%s '%s' must have a batch dimension stored as 1", role, t->name);
    for (int d = 1; d < t->ndim; d++)
        if (t->shape[d] < 1)
            return FAIL(c, DDQ_ERR_UNSUPPORTED, "%s '%s' has an empty dimension %d", role, t->name, d);
    return DDQ_OK;
}

/* uint8 codes on a per-tensor grid 0 ≤ qmin ≤ zero_point ≤ qmax ≤ 255 with a positive scale. */
static ddq_status check_activation(checker *c, const ddq_tensor *t, const char *role, int ndim) {
    ddq_status st = check_runtime_tensor(c, t, role);
    if (st) return st;
    if (t->dtype != DDQ_U8 || !(t->flags & DDQ_FLAG_QUANT))
        return FAIL(c, DDQ_ERR_GRAPH, "%s '%s' must be a quantized uint8 tensor", role, t->name);
    if (ndim && t->ndim != ndim)
        return FAIL(c, DDQ_ERR_GRAPH, "%s '%s' must have %d dimensions, has %u", role, t->name, ndim, t->ndim);
    if (t->scale_count != 1)
        return FAIL(c, DDQ_ERR_GRAPH, "%s '%s' must have one scale, has %u", role, t->name, t->scale_count);
    if (!scales_valid(t))
        return FAIL(c, DDQ_ERR_GRAPH, "%s '%s' has a scale that is not finite and positive", role, t->name);
    if (t->qmin < 0 || t->qmax > 255 || t->zero_point < t->qmin || t->zero_point > t->qmax)
        return FAIL(c, DDQ_ERR_GRAPH, "%s '%s': grid [%d, %d] with zero point %d must satisfy 0 <= qmin <= zero "
                    "point <= qmax <= 255", role, t->name, t->qmin, t->qmax, t->zero_point);
    return DDQ_OK;
}

static ddq_status check_float(checker *c, const ddq_tensor *t, const char *role) {
    ddq_status st = check_runtime_tensor(c, t, role);
    if (st) return st;
    if (t->dtype != DDQ_F32) return FAIL(c, DDQ_ERR_GRAPH, "%s '%s' must be float32", role, t->name);
    return DDQ_OK;
}

static ddq_status check_same_shape(checker *c, const ddq_tensor *a, const ddq_tensor *b) {
    if (same_shape(a, b)) return DDQ_OK;
    char sa[96], sb[96];
    shape_text(a, sa, sizeof sa);
    shape_text(b, sb, sizeof sb);
    return FAIL(c, DDQ_ERR_GRAPH, "'%s' %s and '%s' %s must have the same shape", a->name, sa, b->name, sb);
}

static ddq_status check_output_shape(checker *c, const ddq_tensor *out, int64_t n1, int64_t n2, int64_t n3) {
    int64_t want[4] = {1, n1, n2, n3};
    int ndim = n2 < 0 ? 2 : 4;
    bool ok = out->ndim == ndim;
    for (int d = 0; ok && d < ndim; d++) ok = out->shape[d] == want[d];
    if (ok) return DDQ_OK;
    char have[96];
    shape_text(out, have, sizeof have);
    if (ndim == 2)
        return FAIL(c, DDQ_ERR_GRAPH, "output '%s' is stored as %s, the op computes (1, %lld)", out->name, have,
                    (long long)n1);
    return FAIL(c, DDQ_ERR_GRAPH, "output '%s' is stored as %s, the op computes (1, %lld, %lld, %lld)", out->name,
                have, (long long)n1, (long long)n2, (long long)n3);
}

static ddq_status check_act_range(checker *c, const ddq_tensor *out) {
    const ddq_op *op = c->op;
    if (!(out->qmin <= op->act_min && op->act_min <= op->act_max && op->act_max <= out->qmax))
        return FAIL(c, DDQ_ERR_GRAPH, "activation range [%d, %d] not inside the output grid [%d, %d]", op->act_min,
                    op->act_max, out->qmin, out->qmax);
    return DDQ_OK;
}

static ddq_status derive_multiplier(checker *c, double m, const char *what, ddq_multiplier *out) {
    if (!ddq_quantize_multiplier(m, out))
        return FAIL(c, DDQ_ERR_GRAPH, "the %s multiplier %g is not finite", what, m);
    if (out->shift > 30)
        return FAIL(c, DDQ_ERR_GRAPH, "the %s multiplier %g is too large (>= 2^30)", what, m);
    return DDQ_OK;
}

/* |x − zero_point| ≤ span for every code the grid allows. */
static int64_t code_span(const ddq_tensor *t) {
    int64_t up = (int64_t)t->qmax - t->zero_point, down = (int64_t)t->zero_point - t->qmin;
    return up > down ? up : down;
}

/* Weight (O, …) int8 constant codes on a zero-point-0 grid, bias (O,) int32 constant; the
 * accumulator bound Σ|w|·span + |bias| ≤ 2^31 − 1 per output channel; the per-channel
 * multipliers (s_in · s_w[o]) / s_out. */
static ddq_status check_weights(checker *c, const ddq_tensor *x, const ddq_tensor *w, const ddq_tensor *b,
                                const ddq_tensor *out, int64_t n_out, int64_t fan_in) {
    ddq_op *op = (ddq_op *)c->op;
    if (w->dtype != DDQ_I8 || !(w->flags & DDQ_FLAG_CONSTANT) || !(w->flags & DDQ_FLAG_QUANT))
        return FAIL(c, DDQ_ERR_GRAPH, "weight '%s' must be a quantized int8 constant", w->name);
    if (w->zero_point != 0)
        return FAIL(c, DDQ_ERR_GRAPH, "weight '%s' zero point must be 0, got %d", w->name, w->zero_point);
    if (w->scale_count != 1 && w->scale_count != n_out)
        return FAIL(c, DDQ_ERR_GRAPH, "weight '%s' has %u scales for %lld output channels", w->name,
                    w->scale_count, (long long)n_out);
    if (!scales_valid(w))
        return FAIL(c, DDQ_ERR_GRAPH, "weight '%s' has a scale that is not finite and positive", w->name);
    if (b->dtype != DDQ_I32 || !(b->flags & DDQ_FLAG_CONSTANT) || b->ndim != 1 || b->shape[0] != n_out)
        return FAIL(c, DDQ_ERR_GRAPH, "bias '%s' must be an int32 constant of shape (%lld,)", b->name,
                    (long long)n_out);
    const int8_t *codes = w->data;
    const int32_t *bias = b->data;
    const int64_t span = code_span(x);
    op->channel_bounds = malloc(sizeof(int64_t) * (size_t)n_out);
    if (!op->channel_bounds) return FAIL(c, DDQ_ERR_NOMEM, "out of memory");
    for (int64_t o = 0; o < n_out; o++) {
        const int64_t bound = ddq_codes_abs_sum(codes + o * fan_in, fan_in) * span + llabs((long long)bias[o]);
        if (bound > INT32_LIMIT)
            return FAIL(c, DDQ_ERR_GRAPH, "output channel %lld: the int32 accumulator could overflow (bound %lld "
                        "> 2^31-1)", (long long)o, (long long)bound);
        op->channel_bounds[o] = bound; /* kept: every kernel set's prepare reads it */
    }
    op->channel_multipliers = malloc(sizeof(ddq_multiplier) * (size_t)n_out);
    if (!op->channel_multipliers) return FAIL(c, DDQ_ERR_NOMEM, "out of memory");
    const double s_in = x->scales[0], s_out = out->scales[0];
    for (int64_t o = 0; o < n_out; o++) {
        double s_w = w->scales[w->scale_count == 1 ? 0 : o];
        ddq_status st = derive_multiplier(c, (s_in * s_w) / s_out, "output channel", &op->channel_multipliers[o]);
        if (st) return st;
    }
    return check_act_range(c, out);
}

static ddq_status check_conv2d(checker *c, const ddq_tensor *x, const ddq_tensor *w, const ddq_tensor *b,
                               const ddq_tensor *out) {
    const ddq_op *op = c->op;
    ddq_status st = check_activation(c, x, "input", 4);
    if (!st) st = check_activation(c, out, "output", 4);
    if (st) return st;
    if (w->ndim != 4) return FAIL(c, DDQ_ERR_GRAPH, "weight '%s' must have 4 dimensions", w->name);
    const int64_t C = x->shape[1], H = x->shape[2], W = x->shape[3];
    const int64_t O = w->shape[0], Cg = w->shape[1], kh = w->shape[2], kw = w->shape[3];
    if (op->stride[0] < 1 || op->stride[1] < 1 || op->dilation[0] < 1 || op->dilation[1] < 1)
        return FAIL(c, DDQ_ERR_GRAPH, "stride and dilation must be >= 1");
    for (int k = 0; k < 4; k++)
        if (op->padding[k] < 0) return FAIL(c, DDQ_ERR_GRAPH, "padding must be >= 0");
    if (op->groups < 1 || O < 1 || kh < 1 || kw < 1 || C % op->groups || O % op->groups || Cg != C / op->groups)
        return FAIL(c, DDQ_ERR_GRAPH, "input channels %lld, weight (%lld, %lld, %lld, %lld) and groups %d disagree",
                    (long long)C, (long long)O, (long long)Cg, (long long)kh, (long long)kw, op->groups);
    const int64_t eh = (int64_t)op->dilation[0] * (kh - 1) + 1, ew = (int64_t)op->dilation[1] * (kw - 1) + 1;
    const int64_t hp = H + op->padding[0] + op->padding[2], wp = W + op->padding[1] + op->padding[3];
    if (hp < eh || wp < ew)
        return FAIL(c, DDQ_ERR_GRAPH, "padded input %lldx%lld smaller than the kernel extent %lldx%lld",
                    (long long)hp, (long long)wp, (long long)eh, (long long)ew);
    st = check_output_shape(c, out, O, (hp - eh) / op->stride[0] + 1, (wp - ew) / op->stride[1] + 1);
    if (st) return st;
    return check_weights(c, x, w, b, out, O, Cg * kh * kw);
}

static ddq_status check_fully_connected(checker *c, const ddq_tensor *x, const ddq_tensor *w, const ddq_tensor *b,
                                        const ddq_tensor *out) {
    ddq_status st = check_activation(c, x, "input", 2);
    if (!st) st = check_activation(c, out, "output", 2);
    if (st) return st;
    if (w->ndim != 2 || w->shape[1] != x->shape[1] || w->shape[0] < 1)
        return FAIL(c, DDQ_ERR_GRAPH, "weight '%s' must have shape (O, %lld)", w->name, (long long)x->shape[1]);
    st = check_output_shape(c, out, w->shape[0], -1, -1);
    if (st) return st;
    return check_weights(c, x, w, b, out, w->shape[0], w->shape[1]);
}

static ddq_status check_add(checker *c, const ddq_tensor *a, const ddq_tensor *b, const ddq_tensor *out) {
    ddq_op *op = (ddq_op *)c->op;
    ddq_status st = check_activation(c, a, "input a", 0);
    if (!st) st = check_activation(c, b, "input b", 0);
    if (!st) st = check_activation(c, out, "output", 0);
    if (!st) st = check_same_shape(c, a, b);
    if (!st) st = check_same_shape(c, a, out);
    if (!st) st = check_act_range(c, out);
    if (st) return st;
    const double s_a = a->scales[0], s_b = b->scales[0], s_out = out->scales[0];
    const double twice_max = 2.0 * (s_a > s_b ? s_a : s_b);
    const struct { const char *name; double m; ddq_multiplier *dst; } parts[3] = {
        {"input a", s_a / twice_max, &op->add_a},
        {"input b", s_b / twice_max, &op->add_b},
        {"output", twice_max / (1048576.0 * s_out), &op->multiplier}};
    for (int k = 0; k < 3; k++) {
        st = derive_multiplier(c, parts[k].m, parts[k].name, parts[k].dst);
        if (st) return st;
        if (parts[k].dst->shift > 0)
            return FAIL(c, DDQ_ERR_GRAPH, "the %s multiplier %g is >= 1; the output scale is too small for the "
                        "inputs' scales", parts[k].name, parts[k].m);
    }
    return DDQ_OK;
}

/* Pools: input and output share one grid; every window overlaps the input. */
static ddq_status check_pool(checker *c, const ddq_tensor *x, const ddq_tensor *out, bool average) {
    const ddq_op *op = c->op;
    ddq_status st = check_activation(c, x, "input", 4);
    if (!st) st = check_activation(c, out, "output", 4);
    if (st) return st;
    if (x->scales[0] != out->scales[0] || x->zero_point != out->zero_point || x->qmin != out->qmin ||
        x->qmax != out->qmax)
        return FAIL(c, DDQ_ERR_GRAPH, "input '%s' and output '%s' must share one grid", x->name, out->name);
    const int64_t kh = op->kernel[0], kw = op->kernel[1], sh = op->stride[0], sw = op->stride[1];
    if (kh < 1 || kw < 1 || sh < 1 || sw < 1) return FAIL(c, DDQ_ERR_GRAPH, "kernel and stride must be >= 1");
    for (int k = 0; k < 4; k++)
        if (op->padding[k] < 0) return FAIL(c, DDQ_ERR_GRAPH, "padding must be >= 0");
    const int64_t H = x->shape[2], W = x->shape[3];
    const int64_t hp = H + op->padding[0] + op->padding[2], wp = W + op->padding[1] + op->padding[3];
    if (hp < kh || wp < kw)
        return FAIL(c, DDQ_ERR_GRAPH, "padded input %lldx%lld smaller than the kernel %lldx%lld", (long long)hp,
                    (long long)wp, (long long)kh, (long long)kw);
    const int64_t OH = (hp - kh) / sh + 1, OW = (wp - kw) / sw + 1;
    st = check_output_shape(c, out, x->shape[1], OH, OW);
    if (st) return st;
    /* rows and columns of a window are independent: a window is empty iff its rows or its columns are */
    for (int64_t oy = 0; oy < OH; oy++) {
        int64_t top = oy * sh - op->padding[0];
        if (top + kh <= 0 || top >= H) return FAIL(c, DDQ_ERR_GRAPH, "a pooling window lies entirely in the padding");
    }
    for (int64_t ox = 0; ox < OW; ox++) {
        int64_t left = ox * sw - op->padding[1];
        if (left + kw <= 0 || left >= W) return FAIL(c, DDQ_ERR_GRAPH, "a pooling window lies entirely in the padding");
    }
    if (average) {
        if (kh * kw > INT32_LIMIT / 255)
            return FAIL(c, DDQ_ERR_GRAPH, "a %lldx%lld window could overflow the int32 sum", (long long)kh, (long long)kw);
        return check_act_range(c, out);
    }
    return DDQ_OK;
}

static ddq_status check_global_avg_pool(checker *c, const ddq_tensor *x, const ddq_tensor *out) {
    ddq_op *op = (ddq_op *)c->op;
    ddq_status st = check_activation(c, x, "input", 4);
    if (!st) st = check_activation(c, out, "output", 4);
    if (!st) st = check_output_shape(c, out, x->shape[1], 1, 1);
    if (!st) st = check_act_range(c, out);
    if (st) return st;
    const int64_t n = x->shape[2] * x->shape[3];
    if (n > INT32_LIMIT / (code_span(x) ? code_span(x) : 1))
        return FAIL(c, DDQ_ERR_GRAPH, "%lld positions could overflow the int32 sum", (long long)n);
    return derive_multiplier(c, (double)x->scales[0] / ((double)out->scales[0] * (double)n), "mean", &op->multiplier);
}

static ddq_status check_requantize(checker *c, const ddq_tensor *x, const ddq_tensor *out) {
    ddq_op *op = (ddq_op *)c->op;
    ddq_status st = check_activation(c, x, "input", 0);
    if (!st) st = check_activation(c, out, "output", 0);
    if (!st) st = check_same_shape(c, x, out);
    if (!st) st = check_act_range(c, out);
    if (st) return st;
    return derive_multiplier(c, (double)x->scales[0] / (double)out->scales[0], "requantization", &op->multiplier);
}

/* Reshape keeps codes and grid; the attribute is the output shape with the batch stored as 1. */
static ddq_status check_reshape(checker *c, const ddq_tensor *x, const ddq_tensor *out) {
    const ddq_op *op = c->op;
    ddq_status st = x->dtype == DDQ_U8 ? check_activation(c, x, "input", 0) : check_float(c, x, "input");
    if (st) return st;
    st = x->dtype == DDQ_U8 ? check_activation(c, out, "output", 0) : check_float(c, out, "output");
    if (st) return st;
    if (out->dtype != x->dtype) return FAIL(c, DDQ_ERR_GRAPH, "input and output dtypes differ");
    if (x->dtype == DDQ_U8 && (x->scales[0] != out->scales[0] || x->zero_point != out->zero_point ||
                               x->qmin != out->qmin || x->qmax != out->qmax))
        return FAIL(c, DDQ_ERR_GRAPH, "input '%s' and output '%s' must share one grid", x->name, out->name);
    bool ok = op->reshape_ndim == out->ndim;
    for (int d = 1; ok && d < out->ndim; d++) ok = op->reshape_shape[d] == out->shape[d];
    if (!ok) return FAIL(c, DDQ_ERR_GRAPH, "attribute 'shape' disagrees with output '%s'", out->name);
    if (x->elements != out->elements)
        return FAIL(c, DDQ_ERR_GRAPH, "cannot reshape %lld elements into %lld", (long long)x->elements,
                    (long long)out->elements);
    return DDQ_OK;
}

static ddq_status check_op(checker *c) {
    const ddq_op *op = c->op;
    const ddq_tensor *x = tensor(c, op->inputs[0]), *out = tensor(c, op->output);
    switch ((enum ddq_op_kind)op->kind) {
    case DDQ_OP_QUANTIZE: {
        ddq_status st = check_float(c, x, "input");
        if (!st) st = check_activation(c, out, "output", 0);
        return st ? st : check_same_shape(c, x, out);
    }
    case DDQ_OP_DEQUANTIZE: {
        ddq_status st = check_activation(c, x, "input", 0);
        if (!st) st = check_float(c, out, "output");
        return st ? st : check_same_shape(c, x, out);
    }
    case DDQ_OP_CONV2D: return check_conv2d(c, x, tensor(c, op->inputs[1]), tensor(c, op->inputs[2]), out);
    case DDQ_OP_FULLY_CONNECTED:
        return check_fully_connected(c, x, tensor(c, op->inputs[1]), tensor(c, op->inputs[2]), out);
    case DDQ_OP_ADD: return check_add(c, x, tensor(c, op->inputs[1]), out);
    case DDQ_OP_AVG_POOL: return check_pool(c, x, out, true);
    case DDQ_OP_MAX_POOL: return check_pool(c, x, out, false);
    case DDQ_OP_GLOBAL_AVG_POOL: return check_global_avg_pool(c, x, out);
    case DDQ_OP_REQUANTIZE: return check_requantize(c, x, out);
    case DDQ_OP_RESHAPE: return check_reshape(c, x, out);
    case DDQ_OP_KIND_COUNT: break;
    }
    return FAIL(c, DDQ_ERR_UNSUPPORTED, "no kernel for this op kind");
}

ddq_status ddq_check_graph(ddq_model *model, ddq_error *error) {
    checker c = {.model = model, .error = error};
    snprintf(c.where, sizeof c.where, "graph");
    ddq_tensor *input = &model->tensors[model->input];
    if (input->dtype != DDQ_F32 || (input->flags & DDQ_FLAG_CONSTANT))
        return ddq_fail(error, DDQ_ERR_UNSUPPORTED, "%s: graph input '%s' must be a float32 tensor", model->source,
                        input->name);
    if (model->tensors[model->output].dtype != DDQ_F32)
        return ddq_fail(error, DDQ_ERR_UNSUPPORTED, "%s: graph output '%s' must be a float32 tensor", model->source,
                        model->tensors[model->output].name);
    if (model->input == model->output)
        return ddq_fail(error, DDQ_ERR_UNSUPPORTED, "%s: the graph output is its input; there is nothing to run",
                        model->source);
    for (uint32_t i = 0; i < model->op_count; i++) {
        ddq_op *op = &model->ops[i];
        c.op = op;
        snprintf(c.where, sizeof c.where, "op #%u ('%.100s', %s)", i, op->name, ddq_op_kind_names[op->kind]);
        /* dataflow: inputs exist (graph input, constant or an earlier op's output) */
        for (unsigned j = 0; j < op->n_inputs; j++) {
            const ddq_tensor *t = &model->tensors[op->inputs[j]];
            bool ready = op->inputs[j] == model->input || (t->flags & DDQ_FLAG_CONSTANT) || t->producer >= 0;
            if (!ready)
                return ddq_fail(error, DDQ_ERR_GRAPH, "%s: %s reads '%s' before it is produced", model->source,
                                c.where, t->name);
        }
        ddq_tensor *out = &model->tensors[op->output];
        if (out->producer >= 0 || op->output == model->input || (out->flags & DDQ_FLAG_CONSTANT))
            return ddq_fail(error, DDQ_ERR_GRAPH, "%s: %s writes '%s', which is already a graph input, a constant "
                            "or another op's output", model->source, c.where, out->name);
        ddq_status st = check_op(&c);
        if (st) return st;
        out->producer = (int)i;
    }
    if (model->tensors[model->output].producer < 0)
        return ddq_fail(error, DDQ_ERR_GRAPH, "%s: graph output '%s' is never produced", model->source,
                        model->tensors[model->output].name);
    return DDQ_OK;
}
