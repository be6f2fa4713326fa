/* ddq-run: run a .ddqb bundle on a device without Python.
 *
 *   ddq-run model.ddqb --input x.npy --output y.npy [--threads N] [--kernels NAME]
 *   ddq-run model.ddqb --bench N [--input x.npy] [--threads N]    per-op timing table
 *   ddq-run model.ddqb --info                                      what the bundle holds
 *   ddq-run model.ddqb --count N [--input x.npy]                   instruction-count markers
 *
 * --count is for counting retired instructions under an emulator with ddq-edge's QEMU plugin
 * (ddq_edge/emulation): one warm-up inference, marker 1, N inferences, marker 2, then one more
 * inference with markers 1000 + 2·op (before) and 1001 + 2·op (after) around every op. No clock
 * is read between markers, so the counts are deterministic.
 *
 * The input is float32 NCHW: a .npy (with or without the batch dimension) or raw little-endian
 * float32 (any other extension). Exit status: 0 on success, 1 when the model fails to load or
 * run, 2 for usage errors.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ddq/ddq.h"
#include "npy.h"

#if defined(__linux__)
#include <sys/syscall.h>
#include <unistd.h>
#endif

/* The marker protocol of ddq_edge/emulation/insn_count_plugin.c: lseek(-1, 0xDD0E << 32 | id).
 * The call fails with EBADF; the plugin records the calling thread's counts at that point. */
#define COUNT_MARKER_TAG 0xDD0EULL
#define MARK_BEGIN 1
#define MARK_END 2
#define MARK_OP_BASE 1000

static void count_marker(unsigned id) {
#if defined(__linux__)
    /* long arguments: through syscall()'s varargs an int would leave x0's upper half unspecified */
    syscall(SYS_lseek, (long)-1, (long)(COUNT_MARKER_TAG << 32 | id), (long)SEEK_SET);
#else
    (void)id;
#endif
}

static void op_marker(void *context, int op, int phase) {
    (void)context;
    count_marker(MARK_OP_BASE + 2u * (unsigned)op + (unsigned)phase);
}

typedef struct options {
    const char *model, *input, *output, *kernels;
    int threads, bench, info, count;
} options;

static void usage(FILE *to) {
    fprintf(to,
            "usage: ddq-run MODEL.ddqb [--input X.npy|X.raw] [--output Y.npy] [--threads N]\n"
            "                          [--kernels reference] [--bench N] [--info] [--count N]\n"
            "Runs an edge bundle (float32 NCHW in, float32 out).\n");
}

static int parse_int(const char *text, int lo, int hi, int *out) {
    char *end;
    errno = 0;
    long v = strtol(text, &end, 10);
    if (errno || *end || end == text || v < lo || v > hi) return -1;
    *out = (int)v;
    return 0;
}

static int parse_args(int argc, char **argv, options *o) {
    *o = (options){.threads = 1};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *next = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            exit(0);
        } else if (!strcmp(a, "--info")) {
            o->info = 1;
        } else if (!strcmp(a, "--input") && next) {
            o->input = argv[++i];
        } else if (!strcmp(a, "--output") && next) {
            o->output = argv[++i];
        } else if (!strcmp(a, "--kernels") && next) {
            o->kernels = argv[++i];
        } else if (!strcmp(a, "--threads") && next) {
            if (parse_int(argv[++i], 1, DDQ_MAX_THREADS, &o->threads)) {
                fprintf(stderr, "ddq-run: --threads must be 1..%d\n", DDQ_MAX_THREADS);
                return -1;
            }
        } else if (!strcmp(a, "--bench") && next) {
            if (parse_int(argv[++i], 1, 1000000, &o->bench)) {
                fprintf(stderr, "ddq-run: --bench must be a positive count\n");
                return -1;
            }
        } else if (!strcmp(a, "--count") && next) {
            if (parse_int(argv[++i], 1, 1000000, &o->count)) {
                fprintf(stderr, "ddq-run: --count must be a positive count\n");
                return -1;
            }
        } else if (a[0] != '-' && !o->model) {
            o->model = a;
        } else {
            fprintf(stderr, "ddq-run: unexpected argument '%s'\n", a);
            return -1;
        }
    }
    if (!o->model) {
        fprintf(stderr, "ddq-run: no model given\n");
        return -1;
    }
    if (!o->info && !o->bench && !o->count && (!o->input || !o->output)) {
        fprintf(stderr, "ddq-run: give --input and --output, or --bench N, --count N or --info\n");
        return -1;
    }
    return 0;
}

static void print_shape(const ddq_tensor_info *t) {
    printf("(");
    for (int d = 0; d < t->ndim; d++) printf(d ? ", %lld" : "%lld", (long long)t->shape[d]);
    printf(")");
}

static void print_info(const ddq_model *model, const ddq_session *session) {
    ddq_model_info info;
    ddq_model_get_info(model, &info);
    printf("bundle version   %d.%d\n", info.version_major, info.version_minor);
    printf("file             %zu bytes (constants %zu)\n", info.file_bytes, info.weight_bytes);
    printf("tensors, ops     %d, %d\n", info.tensor_count, info.op_count);
    printf("input            %s ", info.input.name);
    print_shape(&info.input);
    printf(" float32\noutput           %s ", info.output.name);
    print_shape(&info.output);
    printf(" float32\n");
    printf("arena            %zu bytes (liveness bound %zu)\n", ddq_session_arena_bytes(session),
           ddq_session_liveness_bound(session));
    printf("kernels          %s (cpu: %s)\n", ddq_session_kernels(session), ddq_cpu_features());
    printf("metadata         %s\n", info.metadata_json);
}

/* Reads the input; a missing batch dimension is added. Returns the batch size, or -1. */
static int64_t load_input(const char *path, const ddq_tensor_info *spec, float **data) {
    char message[512];
    const size_t len = strlen(path);
    const int64_t per_sample = spec->elements;
    int64_t count;
    if (len >= 4 && !strcmp(path + len - 4, ".npy")) {
        npy_array a;
        if (npy_read_f32(path, &a, message, sizeof message)) {
            fprintf(stderr, "ddq-run: %s\n", message);
            return -1;
        }
        /* (C, H, W) or (N, C, H, W) for a model whose input is (1, C, H, W) */
        int batched = a.ndim == spec->ndim;
        int shape_ok = batched || a.ndim == spec->ndim - 1;
        for (int d = 1; shape_ok && d < spec->ndim; d++)
            shape_ok = a.shape[d - (batched ? 0 : 1)] == spec->shape[d];
        if (!shape_ok || a.elements == 0) {
            fprintf(stderr, "ddq-run: %s: shape does not match the model input ", path);
            print_shape(spec);
            fprintf(stderr, "\n");
            npy_free(&a);
            return -1;
        }
        *data = a.data;
        count = a.elements;
    } else {
        FILE *f = fopen(path, "rb");
        if (!f) {
            fprintf(stderr, "ddq-run: %s: cannot open: %s\n", path, strerror(errno));
            return -1;
        }
        fseek(f, 0, SEEK_END);
        long bytes = ftell(f);
        fseek(f, 0, SEEK_SET);
        if (bytes <= 0 || bytes % (long)(4 * per_sample)) {
            fprintf(stderr, "ddq-run: %s: %ld bytes is not a whole number of float32 inputs of %lld values\n", path,
                    bytes, (long long)per_sample);
            fclose(f);
            return -1;
        }
        count = bytes / 4;
        *data = malloc((size_t)bytes);
        if (!*data || fread(*data, 4, (size_t)count, f) != (size_t)count) {
            fprintf(stderr, "ddq-run: %s: read error\n", path);
            fclose(f);
            return -1;
        }
        fclose(f);
    }
    return count / per_sample;
}

static int compare_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* One warm-up, then `runs` timed runs: the median and p90 of the whole inference and each
 * op's mean share. */
static int bench(const ddq_model *model, ddq_session *session, const float *x, int64_t batch, float *y, int runs) {
    const int ops = ddq_session_op_count(session);
    uint64_t *totals = calloc((size_t)runs, sizeof *totals), *per_op = calloc((size_t)ops, sizeof *per_op);
    ddq_error error;
    if (!totals || !per_op) return 1;
    if (ddq_session_run(session, x, batch, y, &error)) goto failed;
    for (int r = 0; r < runs; r++) {
        uint64_t start = now_ns();
        if (ddq_session_run(session, x, batch, y, &error)) goto failed;
        totals[r] = now_ns() - start;
        const uint64_t *ns = ddq_session_op_nanoseconds(session);
        for (int i = 0; i < ops; i++) per_op[i] += ns[i];
    }
    qsort(totals, (size_t)runs, sizeof *totals, compare_u64);
    uint64_t all = 0;
    for (int i = 0; i < ops; i++) all += per_op[i];
    printf("%-4s %-40s %-16s %12s %7s\n", "#", "op", "kind", "mean us", "share");
    for (int i = 0; i < ops; i++)
        printf("%-4d %-40.40s %-16s %12.1f %6.1f%%\n", i, ddq_model_op_name(model, i), ddq_model_op_kind(model, i),
               per_op[i] / 1e3 / runs, all ? 100.0 * per_op[i] / all : 0.0);
    printf("inference (batch %lld, %d thread(s), %s kernels, %d runs): median %.3f ms, p90 %.3f ms\n",
           (long long)batch, ddq_session_threads(session), ddq_session_kernels(session), runs,
           totals[(runs - 1) / 2] / 1e6, totals[(runs * 9 + 9) / 10 - 1] / 1e6);
    free(totals);
    free(per_op);
    return 0;
failed:
    fprintf(stderr, "ddq-run: %s\n", error.message);
    free(totals);
    free(per_op);
    return 1;
}

static int count_instructions(ddq_session *session, const float *x, int64_t batch, float *y, int runs) {
    ddq_error error;
    if (ddq_session_run(session, x, batch, y, &error)) goto failed; /* warm-up: first-touch page faults */
    uint64_t start = now_ns(); /* clock reads stay outside the markers */
    count_marker(MARK_BEGIN);
    for (int r = 0; r < runs; r++)
        if (ddq_session_run(session, x, batch, y, &error)) goto failed;
    count_marker(MARK_END);
    double seconds = (now_ns() - start) / 1e9;
    ddq_session_set_op_observer(session, op_marker, NULL);
    if (ddq_session_run(session, x, batch, y, &error)) goto failed;
    ddq_session_set_op_observer(session, NULL, NULL);
    printf("{\"engine\": \"ddq\", \"runs\": %d, \"wall_seconds\": %.9f, \"marks\": [%d, %d], \"op_marks_from\": %d}\n",
           runs, seconds, MARK_BEGIN, MARK_END, MARK_OP_BASE);
    return 0;
failed:
    fprintf(stderr, "ddq-run: %s\n", error.message);
    return 1;
}

int main(int argc, char **argv) {
    options o;
    if (parse_args(argc, argv, &o)) {
        usage(stderr);
        return 2;
    }
    ddq_error error;
    ddq_model *model = NULL;
    ddq_session *session = NULL;
    float *x = NULL, *y = NULL;
    int status = 1;
    if (ddq_model_load_file(o.model, &model, &error)) {
        fprintf(stderr, "ddq-run: %s\n", error.message);
        return 1;
    }
    ddq_session_options opt = ddq_session_default_options();
    opt.threads = o.threads;
    opt.kernels = o.kernels;
    if (ddq_session_create(model, &opt, &session, &error)) {
        fprintf(stderr, "ddq-run: %s\n", error.message);
        goto done;
    }
    if (o.info) print_info(model, session);
    ddq_model_info info;
    ddq_model_get_info(model, &info);
    int64_t batch = 1;
    if (o.input) {
        batch = load_input(o.input, &info.input, &x);
        if (batch < 0) goto done;
    } else if (o.bench || o.count) {
        x = calloc((size_t)info.input.elements, sizeof *x); /* zeros: timing does not depend on values */
        if (!x) goto done;
    }
    if (x) {
        y = malloc(sizeof *y * (size_t)(batch * info.output.elements));
        if (!y) goto done;
        if (o.bench) {
            if (bench(model, session, x, batch, y, o.bench)) goto done;
        } else if (o.count) {
            if (count_instructions(session, x, batch, y, o.count)) goto done;
        } else if (ddq_session_run(session, x, batch, y, &error)) {
            fprintf(stderr, "ddq-run: %s\n", error.message);
            goto done;
        }
        if (o.output) {
            int64_t shape[DDQ_MAX_DIMS];
            shape[0] = batch;
            for (int d = 1; d < info.output.ndim; d++) shape[d] = info.output.shape[d];
            char message[512];
            if (npy_write_f32(o.output, y, info.output.ndim, shape, message, sizeof message)) {
                fprintf(stderr, "ddq-run: %s\n", message);
                goto done;
            }
        }
    }
    status = 0;
done:
    free(x);
    free(y);
    ddq_session_free(session);
    ddq_model_free(model);
    return status;
}
