#include "npy.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAGIC "\x93NUMPY"
#define MAGIC_LEN 6
#define ARRAY_ALIGN 64
#define GROWTH_AXIS_MAX_DIGITS 21 /* numpy pads the header so the first axis can grow in place */

static int fail(char *message, size_t n, const char *path, const char *what) {
    snprintf(message, n, "%s: %s", path, what);
    return -1;
}

/* Finds 'key': in the header dict and returns the text after the colon. */
static const char *dict_value(const char *header, const char *key) {
    char quoted[32];
    snprintf(quoted, sizeof quoted, "'%s'", key);
    const char *p = strstr(header, quoted);
    if (!p) return NULL;
    p = strchr(p + strlen(quoted), ':');
    if (!p) return NULL;
    p++;
    while (*p == ' ') p++;
    return p;
}

static int parse_shape(const char *p, npy_array *a) {
    if (!p || *p != '(') return -1;
    p++;
    a->ndim = 0;
    a->elements = 1;
    for (;;) {
        while (*p == ' ' || *p == ',') p++;
        if (*p == ')') return 0;
        if (*p < '0' || *p > '9' || a->ndim == NPY_MAX_DIMS) return -1;
        char *end;
        long long v = strtoll(p, &end, 10);
        if (end == p || v < 0 || v > (1LL << 31)) return -1;
        a->shape[a->ndim++] = v;
        a->elements *= v;
        if (a->elements > (1LL << 31)) return -1;
        p = end;
    }
}

int npy_read_f32(const char *path, npy_array *out, char *message, size_t n) {
    memset(out, 0, sizeof *out);
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(message, n, "%s: cannot open: %s", path, strerror(errno));
        return -1;
    }
    unsigned char pre[12];
    int rc = -1;
    char *header = NULL;
    if (fread(pre, 1, 10, f) != 10 || memcmp(pre, MAGIC, MAGIC_LEN) != 0) {
        rc = fail(message, n, path, "not a .npy file");
        goto done;
    }
    uint32_t hlen;
    if (pre[6] == 1) {
        hlen = pre[8] | pre[9] << 8;
    } else if (pre[6] == 2 || pre[6] == 3) {
        if (fread(pre + 10, 1, 2, f) != 2) {
            rc = fail(message, n, path, "truncated header");
            goto done;
        }
        hlen = (uint32_t)pre[8] | (uint32_t)pre[9] << 8 | (uint32_t)pre[10] << 16 | (uint32_t)pre[11] << 24;
    } else {
        rc = fail(message, n, path, "unsupported .npy version");
        goto done;
    }
    if (hlen > (1u << 20)) {
        rc = fail(message, n, path, "header too large");
        goto done;
    }
    header = calloc(hlen + 1, 1);
    if (!header || fread(header, 1, hlen, f) != hlen) {
        rc = fail(message, n, path, "truncated header");
        goto done;
    }
    const char *descr = dict_value(header, "descr"), *order = dict_value(header, "fortran_order");
    int is_f8;
    if (descr && strncmp(descr, "'<f4'", 5) == 0) is_f8 = 0;
    else if (descr && strncmp(descr, "'<f8'", 5) == 0) is_f8 = 1;
    else {
        rc = fail(message, n, path, "expected float32 ('<f4') or float64 ('<f8') data");
        goto done;
    }
    if (!order || strncmp(order, "False", 5) != 0) {
        rc = fail(message, n, path, "Fortran-ordered arrays are not supported; save a C-contiguous array");
        goto done;
    }
    if (parse_shape(dict_value(header, "shape"), out) != 0) {
        rc = fail(message, n, path, "cannot parse the shape");
        goto done;
    }
    out->data = malloc(sizeof(float) * (size_t)(out->elements ? out->elements : 1));
    if (!out->data) {
        rc = fail(message, n, path, "out of memory");
        goto done;
    }
    /* little-endian data, as the descriptors say; assembled bytewise for any host */
    for (int64_t i = 0; i < out->elements; i++) {
        unsigned char b[8];
        size_t size = is_f8 ? 8 : 4;
        if (fread(b, 1, size, f) != size) {
            rc = fail(message, n, path, "truncated data");
            goto done;
        }
        if (is_f8) {
            uint64_t u = 0;
            for (int k = 7; k >= 0; k--) u = u << 8 | b[k];
            double d;
            memcpy(&d, &u, sizeof d);
            out->data[i] = (float)d;
        } else {
            uint32_t u = (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
            memcpy(&out->data[i], &u, sizeof u);
        }
    }
    rc = 0;
done:
    free(header);
    fclose(f);
    if (rc) npy_free(out);
    return rc;
}

int npy_write_f32(const char *path, const float *data, int ndim, const int64_t *shape, char *message, size_t n) {
    char dict[512], dims[256] = "";
    size_t used = 0;
    int64_t elements = 1;
    for (int d = 0; d < ndim; d++) {
        used += (size_t)snprintf(dims + used, sizeof dims - used, "%lld, ", (long long)shape[d]);
        elements *= shape[d];
    }
    if (ndim > 1) dims[used - 2] = 0; /* "(1, 10)"; a 1-d shape keeps its comma: "(10,)" */
    else if (ndim == 1) dims[used - 1] = 0;
    int len = snprintf(dict, sizeof dict, "{'descr': '<f4', 'fortran_order': False, 'shape': (%s), }", dims);
    char first[32];
    int first_digits = ndim ? snprintf(first, sizeof first, "%lld", (long long)shape[0]) : 0;
    for (int k = ndim ? GROWTH_AXIS_MAX_DIGITS - first_digits : 0; k > 0; k--) dict[len++] = ' ';
    /* pad with spaces and a final newline so the data starts on a 64-byte boundary */
    int total = MAGIC_LEN + 2 + 2 + len + 1;
    int pad = (ARRAY_ALIGN - total % ARRAY_ALIGN) % ARRAY_ALIGN;
    for (int k = 0; k < pad; k++) dict[len++] = ' ';
    dict[len++] = '\n';
    FILE *f = fopen(path, "wb");
    if (!f) {
        snprintf(message, n, "%s: cannot create: %s", path, strerror(errno));
        return -1;
    }
    unsigned char pre[10] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, (unsigned char)(len & 0xFF), (unsigned char)(len >> 8)};
    int ok = fwrite(pre, 1, sizeof pre, f) == sizeof pre && fwrite(dict, 1, (size_t)len, f) == (size_t)len;
    for (int64_t i = 0; ok && i < elements; i++) {
        uint32_t u;
        memcpy(&u, &data[i], sizeof u);
        unsigned char b[4] = {(unsigned char)u, (unsigned char)(u >> 8), (unsigned char)(u >> 16), (unsigned char)(u >> 24)};
        ok = fwrite(b, 1, 4, f) == 4;
    }
    if (fclose(f) != 0) ok = 0;
    if (!ok) {
        snprintf(message, n, "%s: write error", path);
        return -1;
    }
    return 0;
}

void npy_free(npy_array *a) {
    free(a->data);
    a->data = NULL;
}
