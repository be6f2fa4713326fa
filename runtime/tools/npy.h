/* Reading and writing NumPy .npy files (format versions 1–3), float32 data, C order. */
#ifndef DDQ_NPY_H
#define DDQ_NPY_H

#include <stddef.h>
#include <stdint.h>

#define NPY_MAX_DIMS 8

typedef struct npy_array {
    int ndim;
    int64_t shape[NPY_MAX_DIMS];
    int64_t elements;
    float *data; /* malloc'ed; float64 files are converted (rounded to nearest) */
} npy_array;

/* 0 on success; otherwise -1 with a message in `message`. */
int npy_read_f32(const char *path, npy_array *out, char *message, size_t message_size);
/* Writes the bytes numpy.save writes for the same float32 array. */
int npy_write_f32(const char *path, const float *data, int ndim, const int64_t *shape, char *message,
                  size_t message_size);
void npy_free(npy_array *a);

#endif
