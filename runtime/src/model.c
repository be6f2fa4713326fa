/* Loading a model: read the file, validate it (bundle_reader.c, graph_check.c), keep what
 * the kernels need. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "model.h"

static char *copy_string(const char *s) {
    size_t n = strlen(s) + 1;
    char *copy = malloc(n);
    if (copy) memcpy(copy, s, n);
    return copy;
}

ddq_status ddq_model_load_memory(const void *data, size_t size, const char *source_name, ddq_model **out,
                                 ddq_error *error) {
    if (!out || (!data && size)) return ddq_fail(error, DDQ_ERR_ARGUMENT, "ddq_model_load_memory: NULL argument");
    *out = NULL;
    ddq_model *model = calloc(1, sizeof *model);
    if (!model) return ddq_fail(error, DDQ_ERR_NOMEM, "out of memory");
    model->source = copy_string(source_name ? source_name : "<memory>");
    model->bytes = malloc(size ? size : 1);
    if (!model->source || !model->bytes) {
        ddq_model_free(model);
        return ddq_fail(error, DDQ_ERR_NOMEM, "out of memory for a %zu-byte bundle", size);
    }
    if (size) memcpy(model->bytes, data, size);
    model->size = size;
    ddq_status st = ddq_read_bundle(model, error);
    if (!st) st = ddq_check_graph(model, error);
    if (st) {
        ddq_model_free(model);
        return st;
    }
    *out = model;
    return DDQ_OK;
}

ddq_status ddq_model_load_file(const char *path, ddq_model **out, ddq_error *error) {
    if (!path || !out) return ddq_fail(error, DDQ_ERR_ARGUMENT, "ddq_model_load_file: NULL argument");
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) return ddq_fail(error, DDQ_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    uint8_t *bytes = NULL;
    size_t size = 0, capacity = 0;
    /* read to the end rather than trusting a size from stat: works for pipes and special files */
    for (;;) {
        if (size == capacity) {
            size_t grown = capacity ? capacity * 2 : 1 << 16;
            uint8_t *more = realloc(bytes, grown);
            if (!more) {
                free(bytes);
                fclose(f);
                return ddq_fail(error, DDQ_ERR_NOMEM, "%s: out of memory while reading", path);
            }
            bytes = more;
            capacity = grown;
        }
        size_t got = fread(bytes + size, 1, capacity - size, f);
        size += got;
        if (got == 0) break;
    }
    int failed = ferror(f);
    fclose(f);
    if (failed) {
        free(bytes);
        return ddq_fail(error, DDQ_ERR_IO, "%s: read error", path);
    }
    ddq_status st = ddq_model_load_memory(bytes, size, path, out, error);
    free(bytes);
    return st;
}

void ddq_model_free(ddq_model *model) {
    if (!model) return;
    if (model->tensors)
        for (uint32_t i = 0; i < model->tensor_count; i++) {
            free((void *)model->tensors[i].scales);
            free(model->tensors[i].data);
        }
    if (model->ops)
        for (uint32_t i = 0; i < model->op_count; i++) {
            free(model->ops[i].channel_multipliers);
            free(model->ops[i].channel_bounds);
        }
    free(model->tensors);
    free(model->ops);
    free(model->metadata);
    free(model->bytes);
    free(model->source);
    free(model);
}

static void tensor_info(const ddq_tensor *t, ddq_tensor_info *info) {
    info->name = t->name;
    info->ndim = t->ndim;
    for (int d = 0; d < DDQ_MAX_DIMS; d++) info->shape[d] = t->shape[d];
    info->elements = ddq_sample_elements(t);
}

void ddq_model_get_info(const ddq_model *model, ddq_model_info *info) {
    memset(info, 0, sizeof *info);
    info->version_major = model->version_major;
    info->version_minor = model->version_minor;
    info->tensor_count = (int)model->tensor_count;
    info->op_count = (int)model->op_count;
    info->file_bytes = model->size;
    info->weight_bytes = model->weight_bytes;
    tensor_info(&model->tensors[model->input], &info->input);
    tensor_info(&model->tensors[model->output], &info->output);
    info->metadata_json = model->metadata;
    info->metadata_length = model->metadata_length;
}

const char *ddq_model_op_name(const ddq_model *model, int i) {
    return i >= 0 && (uint32_t)i < model->op_count ? model->ops[i].name : NULL;
}

const char *ddq_model_op_kind(const ddq_model *model, int i) {
    return i >= 0 && (uint32_t)i < model->op_count ? ddq_op_kind_names[model->ops[i].kind] : NULL;
}
