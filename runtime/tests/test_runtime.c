/* C unit tests of the runtime: the pinned bundle of docs/bundle-format.md §16, the fixed-point
 * primitives on the examples of docs/arithmetic.md §4–5, CRC32, error paths, thread-count
 * independence, and that a session allocates nothing while it runs (malloc and friends are
 * wrapped at link time and counted), for every kernel set this CPU runs; on aarch64 the NEON
 * requantization against the scalar one, on x86-64 with AVX2 the x86 set's, and the x86 GEMM
 * plans. Bundles given as arguments run through every kernel set and thread count (see
 * test_bundle_kernel_sets). The bit-exactness grid against the numpy reference lives in
 * tests/test_runtime*.py, which drive this build. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bitunpack.h"
#include "crc32.h"
#include "ddq/ddq.h"
#include "fixed_point.h"
#include "kernels/generic/generic.h"
#include "kernels/kernels.h"
#if defined(__aarch64__)
#include "kernels/neon/neon.h"
#include "kernels/neondot/neondot.h"
extern const ddq_kernel_set ddq_kernels_neon;
extern const ddq_kernel_set ddq_kernels_neondot;
#endif
#if defined(__x86_64__)
#include "kernels/x86/x86.h"
extern const ddq_kernel_set ddq_kernels_x86;
#endif

/* The kernel sets a build can have; those this CPU cannot run are skipped. */
static const char *const KERNEL_SETS[] = {"neondot", "neon", "x86vnni", "x86", "generic", "reference"};
#define KERNEL_SET_COUNT (sizeof KERNEL_SETS / sizeof KERNEL_SETS[0])

/* ------------------------------------------------------------------ allocation counting */

void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t m);
void *__real_realloc(void *p, size_t n);
void *__real_aligned_alloc(size_t a, size_t n);
static long allocations;
void *__wrap_malloc(size_t n) { allocations++; return __real_malloc(n); }
void *__wrap_calloc(size_t n, size_t m) { allocations++; return __real_calloc(n, m); }
void *__wrap_realloc(void *p, size_t n) { allocations++; return __real_realloc(p, n); }
void *__wrap_aligned_alloc(size_t a, size_t n) { allocations++; return __real_aligned_alloc(a, n); }

/* ------------------------------------------------------------------ fixtures */

/* docs/bundle-format.md §16 byte for byte, and the same graph ending in a dequantize op. */
static const unsigned char PINNED_BUNDLE[796] = {
    0x44, 0x44, 0x51, 0x42, 0x0d, 0x0a, 0x1a, 0x0a, 0x01, 0x00, 0x00, 0x00, 0x20, 0x00, 0x00, 0x00,
    0x1c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x06, 0x00, 0x00, 0x00, 0xd3, 0xf4, 0x3f, 0x53,
    0x01, 0x00, 0x00, 0x00, 0x3d, 0xcc, 0xe7, 0xe0, 0xb0, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x54, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00, 0x9e, 0x43, 0x82, 0x31,
    0x08, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x48, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x03, 0x00, 0x00, 0x00, 0xb1, 0x66, 0xa7, 0x34, 0x50, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x58, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x04, 0x00, 0x00, 0x00, 0xfc, 0x01, 0x14, 0x56,
    0xa8, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x10, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x05, 0x00, 0x00, 0x00, 0x7b, 0x67, 0xf3, 0x30, 0xb8, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x24, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x06, 0x00, 0x00, 0x00, 0xb2, 0x27, 0xd2, 0xf9,
    0x00, 0x03, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x1c, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x01, 0x00, 0x00, 0x00, 0x78, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x71, 0x00, 0x00, 0x00,
    0x01, 0x00, 0x00, 0x00, 0x77, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x62, 0x00, 0x00, 0x00,
    0x01, 0x00, 0x00, 0x00, 0x79, 0x00, 0x00, 0x00, 0x05, 0x00, 0x00, 0x00, 0x71, 0x75, 0x61, 0x6e,
    0x74, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00, 0x66, 0x63, 0x00, 0x00, 0x07, 0x00, 0x00, 0x00,
    0x61, 0x63, 0x74, 0x5f, 0x6d, 0x69, 0x6e, 0x00, 0x07, 0x00, 0x00, 0x00, 0x61, 0x63, 0x74, 0x5f,
    0x6d, 0x61, 0x78, 0x00, 0x00, 0x00, 0x00, 0x00, 0x05, 0x00, 0x00, 0x00, 0x40, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x04, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x08, 0x00, 0x00, 0x00, 0x01, 0x02, 0x01, 0x08, 0x03, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0xff, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x04, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x10, 0x00, 0x00, 0x00, 0x02, 0x02, 0x03, 0x04, 0x00, 0x00, 0x00, 0x00, 0xf9, 0xff, 0xff, 0xff,
    0x07, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00, 0x04, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00,
    0x04, 0x00, 0x00, 0x00, 0x0c, 0x00, 0x00, 0x00, 0x04, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x18, 0x00, 0x00, 0x00, 0x03, 0x01, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x10, 0x00, 0x00, 0x00, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x20, 0x00, 0x00, 0x00, 0x01, 0x02, 0x01, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0xff, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00,
    0x18, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x18, 0x00, 0x00, 0x00, 0x28, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x01, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00,
    0x38, 0x00, 0x00, 0x00, 0x34, 0x00, 0x00, 0x00, 0x03, 0x00, 0x03, 0x01, 0x02, 0x00, 0x00, 0x00,
    0x01, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00, 0x03, 0x00, 0x00, 0x00, 0x04, 0x00, 0x00, 0x00,
    0x3c, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x48, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x01, 0x00, 0xff, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x04, 0x00, 0x00, 0x00, 0x7b, 0x22, 0x73, 0x6f, 0x75, 0x72, 0x63, 0x65,
    0x22, 0x3a, 0x22, 0x70, 0x69, 0x6e, 0x22, 0x2c, 0x22, 0x6c, 0x61, 0x62, 0x65, 0x6c, 0x73, 0x22,
    0x3a, 0x5b, 0x22, 0x61, 0x22, 0x2c, 0x22, 0xc3, 0x9f, 0x22, 0x5d, 0x7d, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x3f, 0x00, 0x00, 0x80, 0x3e, 0x00, 0x00, 0x00, 0x3e, 0xf1, 0xd2, 0x97, 0x50,
    0x64, 0x00, 0x00, 0x00, 0x38, 0xff, 0xff, 0xff, 0x00, 0x00, 0x40, 0x3f,
};
static const unsigned char RUNNABLE_BUNDLE[924] = {
    0x44, 0x44, 0x51, 0x42, 0x0d, 0x0a, 0x1a, 0x0a, 0x01, 0x00, 0x00, 0x00, 0x20, 0x00, 0x00, 0x00,
    0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x06, 0x00, 0x00, 0x00, 0xb4, 0x82, 0x3d, 0x40,
    0x01, 0x00, 0x00, 0x00, 0x71, 0x02, 0x8e, 0xe4, 0xb0, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x64, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00, 0x45, 0x78, 0x56, 0xcc,
    0x18, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x88, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x03, 0x00, 0x00, 0x00, 0x61, 0x57, 0x07, 0x55, 0xa0, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x70, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x04, 0x00, 0x00, 0x00, 0x99, 0x66, 0xa8, 0xee,
    0x10, 0x03, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x10, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x05, 0x00, 0x00, 0x00, 0x7b, 0x67, 0xf3, 0x30, 0x20, 0x03, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x24, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x06, 0x00, 0x00, 0x00, 0xb2, 0x27, 0xd2, 0xf9,
    0x80, 0x03, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x1c, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x01, 0x00, 0x00, 0x00, 0x78, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x71, 0x00, 0x00, 0x00,
    0x01, 0x00, 0x00, 0x00, 0x77, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x62, 0x00, 0x00, 0x00,
    0x01, 0x00, 0x00, 0x00, 0x79, 0x00, 0x00, 0x00, 0x03, 0x00, 0x00, 0x00, 0x6f, 0x75, 0x74, 0x00,
    0x05, 0x00, 0x00, 0x00, 0x71, 0x75, 0x61, 0x6e, 0x74, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00,
    0x66, 0x63, 0x00, 0x00, 0x07, 0x00, 0x00, 0x00, 0x61, 0x63, 0x74, 0x5f, 0x6d, 0x69, 0x6e, 0x00,
    0x07, 0x00, 0x00, 0x00, 0x61, 0x63, 0x74, 0x5f, 0x6d, 0x61, 0x78, 0x00, 0x03, 0x00, 0x00, 0x00,
    0x64, 0x65, 0x71, 0x00, 0x00, 0x00, 0x00, 0x00, 0x06, 0x00, 0x00, 0x00, 0x40, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x04, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x08, 0x00, 0x00, 0x00, 0x01, 0x02, 0x01, 0x08, 0x03, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0xff, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x04, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x10, 0x00, 0x00, 0x00, 0x02, 0x02, 0x03, 0x04, 0x00, 0x00, 0x00, 0x00, 0xf9, 0xff, 0xff, 0xff,
    0x07, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00, 0x04, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00,
    0x04, 0x00, 0x00, 0x00, 0x0c, 0x00, 0x00, 0x00, 0x04, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x18, 0x00, 0x00, 0x00, 0x03, 0x01, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x10, 0x00, 0x00, 0x00, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x20, 0x00, 0x00, 0x00, 0x01, 0x02, 0x01, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0xff, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00,
    0x18, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x28, 0x00, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x03, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x18, 0x00, 0x00, 0x00, 0x30, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x01, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00,
    0x38, 0x00, 0x00, 0x00, 0x3c, 0x00, 0x00, 0x00, 0x03, 0x00, 0x03, 0x01, 0x02, 0x00, 0x00, 0x00,
    0x01, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00, 0x03, 0x00, 0x00, 0x00, 0x04, 0x00, 0x00, 0x00,
    0x44, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x50, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x01, 0x00, 0xff, 0x00, 0x00, 0x00, 0x18, 0x00, 0x00, 0x00, 0x5c, 0x00, 0x00, 0x00,
    0x01, 0x00, 0x01, 0x01, 0x00, 0x00, 0x00, 0x00, 0x04, 0x00, 0x00, 0x00, 0x05, 0x00, 0x00, 0x00,
    0x01, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x05, 0x00, 0x00, 0x00,
    0x7b, 0x22, 0x73, 0x6f, 0x75, 0x72, 0x63, 0x65, 0x22, 0x3a, 0x22, 0x70, 0x69, 0x6e, 0x22, 0x2c,
    0x22, 0x6c, 0x61, 0x62, 0x65, 0x6c, 0x73, 0x22, 0x3a, 0x5b, 0x22, 0x61, 0x22, 0x2c, 0x22, 0xc3,
    0x9f, 0x22, 0x5d, 0x7d, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x3f, 0x00, 0x00, 0x80, 0x3e, 0x00, 0x00, 0x00, 0x3e, 0xf1, 0xd2, 0x97, 0x50,
    0x64, 0x00, 0x00, 0x00, 0x38, 0xff, 0xff, 0xff, 0x00, 0x00, 0x40, 0x3f,
};
static const float RUNNABLE_INPUT[8] = {1.0f, -0.75f, 2.25f, 100.0f, 0.30000001192092896f, 0.20000000298023224f, -5.0f, 7.25f};
static const float RUNNABLE_EXPECTED[4] = {0.0f, 51.0f, 6.0f, 0.0f};

static int failures;
#define CHECK(cond, ...)                                                  \
    do {                                                                  \
        if (!(cond)) {                                                    \
            failures++;                                                   \
            fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond); \
            fprintf(stderr, __VA_ARGS__);                                 \
            fputc('\n', stderr);                                          \
        }                                                                 \
    } while (0)

static uint32_t crc32_bitwise(uint32_t crc, const uint8_t *data, size_t n) {
    uint32_t c = ~crc;
    while (n--) {
        c ^= *data++;
        for (int k = 0; k < 8; k++) c = c & 1 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
    }
    return ~c;
}

static void test_crc32(void) {
    CHECK(ddq_crc32(0, (const uint8_t *)"123456789", 9) == 0xCBF43926u, "check value");
    uint32_t split = ddq_crc32(ddq_crc32(0, (const uint8_t *)"12345", 5), (const uint8_t *)"6789", 4);
    CHECK(split == 0xCBF43926u, "incremental");
    CHECK(ddq_crc32(0, PINNED_BUNDLE, sizeof PINNED_BUNDLE) == 0xb057068du, "whole-file CRC of §16");
    /* every length and alignment around the 8-byte steps (tables or CRC32X) and their tails */
    uint8_t bytes[64];
    for (int i = 0; i < 64; i++) bytes[i] = (uint8_t)(i * 151 + 7);
    for (size_t start = 0; start < 8; start++)
        for (size_t n = 0; start + n <= 64; n++)
            CHECK(ddq_crc32(0x1234u, bytes + start, n) == crc32_bitwise(0x1234u, bytes + start, n),
                  "crc32 of %zu bytes at offset %zu", n, start);
}

/* ddq_unpack_codes against a bit-at-a-time reading of docs/bundle-format.md §8, every width and
 * every count whose codes fit 48 bytes (whole groups of 8 and every tail); and the code sums. */
static void test_unpack_codes(void) {
    uint8_t packed[48];
    for (int i = 0; i < 48; i++) packed[i] = (uint8_t)(i * 97 + 13);
    for (unsigned w = 2; w <= 8; w++)
        for (size_t n = 0; n * w <= 8 * sizeof packed; n++) {
            int8_t out[8 * sizeof packed / 2];
            ddq_unpack_codes(packed, w, n, out);
            int64_t sum = 0, abs_sum = 0;
            for (size_t i = 0; i < n; i++) {
                int v = 0;
                for (unsigned b = 0; b < w; b++) v |= ((packed[(i * w + b) / 8] >> ((i * w + b) % 8)) & 1) << b;
                if (v >= 1 << (w - 1)) v -= 1 << w;
                CHECK(out[i] == v, "unpack %u bits, n = %zu: code %zu is %d, expected %d", w, n, i, out[i], v);
                sum += v;
                abs_sum += v < 0 ? -v : v;
            }
            CHECK(ddq_codes_sum(out, (int64_t)n) == sum && ddq_codes_abs_sum(out, (int64_t)n) == abs_sum,
                  "code sums, %u bits, n = %zu", w, n);
        }
    /* chunked sums past 2^16 codes */
    static int8_t many[200000];
    for (int i = 0; i < 200000; i++) many[i] = -128;
    CHECK(ddq_codes_sum(many, 200000) == -25600000 && ddq_codes_abs_sum(many, 200000) == 25600000,
          "code sums of 200000 codes");
}

static void test_quantize_multiplier(void) {
    const struct { double m; int32_t m0, shift; } cases[] = {
        {0.5, 1 << 30, 0}, {1.0, 1 << 30, 1}, {0.75, 3 << 29, 0}, {ldexp(1.0, -32), 1 << 30, -31},
        {ldexp(1.0, -33), 0, 0}, {1.0 - ldexp(1.0, -40), 1 << 30, 1}, {0.5 + ldexp(1.0, -32), (1 << 30) + 1, 0},
        {0.0, 0, 0}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        ddq_multiplier m = {0, 0};
        CHECK(ddq_quantize_multiplier(cases[i].m, &m), "finite");
        CHECK(m.m0 == cases[i].m0 && m.shift == cases[i].shift, "M=%.17g gives (%d, %d), expected (%d, %d)",
              cases[i].m, m.m0, m.shift, cases[i].m0, cases[i].shift);
    }
    ddq_multiplier m = {0, 0};
    CHECK(!ddq_quantize_multiplier(INFINITY, &m), "inf rejected");
    CHECK(!ddq_quantize_multiplier(NAN, &m), "nan rejected");
}

static void test_mbqm(void) {
    /* exact product rounded once, ties up: 8 · 0.0614 = 0.4912 → 0 (double rounding gives 1) */
    ddq_multiplier m = {0, 0};
    ddq_quantize_multiplier(0.0614, &m);
    CHECK(ddq_mbqm(8, m) == 0, "small accumulator rounds once");
    ddq_quantize_multiplier(0.5, &m);
    CHECK(ddq_mbqm(5, m) == 3 && ddq_mbqm(-5, m) == -2, "ties go up: 2.5 → 3, -2.5 → -2");
    CHECK(ddq_mbqm(2147483647, m) == 1073741824, "int32 max");
    CHECK(ddq_mbqm(-2147483647 - 1, m) == -1073741824, "int32 min");
    /* against exact rational arithmetic for a spread of values: floor(x·m0/2^t + 1/2) */
    ddq_quantize_multiplier(0.3217, &m);
    for (int64_t x = -100000; x <= 100000; x += 7) {
        const int t = 31 - m.shift;
        const int64_t num = x * m.m0, den = (int64_t)1 << t;
        int64_t fl = num >= 0 ? num / den : -((-num + den - 1) / den); /* floor(num / den) */
        int64_t expect = fl + ((num - fl * den) * 2 >= den ? 1 : 0);
        if (ddq_mbqm(x, m) != expect) {
            CHECK(0, "x=%lld", (long long)x);
            break;
        }
    }
}

/* Random numbers and accumulators for the SIMD requantization tests. */
static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static uint64_t next_random(void) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

/* An accumulator of kind `kind` for (m0, t): int32 extremes, small values, exact ties
 * (x · m0 = odd · 2^(t − 1)), values that land near the output codes, or any int32. */
static int32_t test_accumulator(int kind, int32_t m0, int t) {
    const uint64_t r = next_random();
    const int64_t odd = 2 * ((int64_t)(r % 64) - 32) + 1;
    switch (kind) {
    case 0: return INT32_MIN + (int32_t)(r % 4);
    case 1: return INT32_MAX - (int32_t)(r % 4);
    case 2: return (int32_t)(r % 2001) - 1000;
    case 3: /* ties: m0 odd and t ≤ 31: x = odd · 2^(t − 1); m0 = 2^30 and t ≥ 31: x = odd · 2^(t − 31) */
        if ((m0 & 1) && t <= 31) {
            int64_t x = odd * ((int64_t)1 << (t - 1));
            if (x < INT32_MIN || x > INT32_MAX) x = (odd > 0 ? 1 : -1) * ((int64_t)1 << (t - 1));
            return (int32_t)x;
        }
        if (m0 == 1 << 30 && t >= 31 && t - 31 <= 24) return (int32_t)(odd * ((int64_t)1 << (t - 31)));
        return (int32_t)(r % 65536) - 32768;
    case 4: { /* about ±300 codes after the multiplier */
        const double real = ldexp((double)m0, -t);
        const double x = real > 0 ? ((double)(r % 601) - 300.0 + 0.5) / real : 0.0;
        return x > INT32_MAX ? INT32_MAX : x < INT32_MIN ? INT32_MIN : (int32_t)x;
    }
    default: return (int32_t)(uint32_t)r;
    }
}

/* A SIMD requantization of n accumulators: out[i] = clamp(MBQM(acc[i]) + zp, lo, hi). */
typedef void (*requantize_fn)(const int32_t *acc, int64_t n, ddq_multiplier m, int32_t zp, int32_t lo, int32_t hi,
                              uint8_t *out);

/* A fast SIMD requantization (neon's SQDMULH/SRSHL form, x86's 64-bit lanes) against
 * ddq_mbqm / ddq_clamp_code on the domain their preparation admits them for, |acc| · 2^l < 2^31
 * with l = max(0, shift + 1): every shift, the multipliers' extremes, accumulators at the
 * domain's ends, ties and random ones, output zero points and ranges at both ends; and the
 * preparation's verdict (`admits`) at the domain's edge and one past it. */
static void check_fast_requantization(const char *name, requantize_fn requantize,
                                      int (*admits)(ddq_multiplier m, int64_t bound)) {
    static const struct { int32_t zp, lo, hi; } grids[] = {
        {0, 0, 255}, {255, 0, 255}, {128, 3, 200}, {40, 0, 15}, {7, 7, 7}, {255, 255, 255}};
    long checked = 0, bad = 0;
    for (int32_t shift = -31; shift <= 30; shift++) {
        const int t = 31 - shift, l = shift >= 0 ? shift + 1 : 0;
        const int64_t limit = (((int64_t)1 << 31) - 1) >> l; /* the largest |acc| admitted */
        for (int mi = 0; mi < 6; mi++) {
            const int32_t m0 = mi == 0   ? 1 << 30
                               : mi == 1 ? INT32_MAX
                               : mi == 2 ? (1 << 30) + 1
                                         : (int32_t)((1u << 30) | (uint32_t)(next_random() & 0x3FFFFFFF));
            const ddq_multiplier m = {m0, shift};
            CHECK(admits(m, limit), "%s: admitted at |acc| <= %lld, shift %d", name, (long long)limit, shift);
            if (l > 0) CHECK(!admits(m, limit + 1), "%s: refused past the domain, shift %d", name, shift);
            for (int round = 0; round < 24; round++) {
                int32_t acc[37];
                uint8_t got[37];
                for (int k = 0; k < 37; k++) {
                    int64_t a = round < 2 ? (k % 2 ? limit : -limit) + (k / 2) * (k % 2 ? -1 : 1)
                                          : test_accumulator((round + k) % 6, m0, t);
                    if (a > limit || a < -limit) a = a % (limit + 1); /* inside the domain */
                    acc[k] = (int32_t)a;
                }
                for (size_t gi = 0; gi < sizeof grids / sizeof grids[0]; gi++) {
                    requantize(acc, 37, m, grids[gi].zp, grids[gi].lo, grids[gi].hi, got);
                    for (int k = 0; k < 37; k++) {
                        const int32_t want = ddq_clamp_code(ddq_mbqm(acc[k], m), grids[gi].zp, grids[gi].lo,
                                                            grids[gi].hi);
                        checked++;
                        if (got[k] != want && bad++ < 5)
                            CHECK(0, "%s: acc %d m0 %d shift %d zp %d: %d, scalar %d", name, acc[k], m0, shift,
                                  grids[gi].zp, got[k], want);
                    }
                }
            }
        }
    }
    CHECK(bad == 0, "%ld of %ld %s requantizations differ", bad, checked, name);
}

#if defined(__aarch64__)
/* The NEON requantization (SMULL + SRSHL by −t + saturating narrows, mbqm__neon.h) against
 * ddq_mbqm / ddq_clamp_code: every shift, extreme and random m0, accumulators at the int32
 * limits, exact ties of both signs, and output ranges at 0 and 255. */
static void test_neon_requantization(void) {
    static const struct { int32_t zp, lo, hi; } grids[] = {
        {0, 0, 255}, {255, 0, 255}, {128, 3, 200}, {7, 7, 7}, {0, 0, 0}, {255, 255, 255}, {40, 0, 15}};
    long checked = 0, bad = 0;
    for (int32_t shift = -31; shift <= 30; shift++) {
        const int t = 31 - shift;
        for (int mi = 0; mi < 8; mi++) {
            const int32_t m0 = mi == 0   ? 1 << 30
                               : mi == 1 ? INT32_MAX
                               : mi == 2 ? (1 << 30) + 1
                               : mi == 3 ? 0
                                         : (int32_t)((1u << 30) | (uint32_t)(next_random() & 0x3FFFFFFF));
            const ddq_multiplier m = {m0, shift};
            for (int round = 0; round < 48; round++) {
                int32_t acc[8];
                for (int l = 0; l < 8; l++) acc[l] = test_accumulator((round + l) % 6, m0, t);
                /* MBQM alone, saturated to int32 */
                for (int h = 0; h < 2; h++) {
                    int32_t got[4];
                    vst1q_s32(got, ddq_mbqm_neon(vld1q_s32(acc + 4 * h), vdupq_n_s32(m0), vdupq_n_s64((int64_t)shift - 31),
                                                 vdupq_n_s64((int64_t)shift - 31)));
                    for (int l = 0; l < 4; l++) {
                        int64_t want = ddq_mbqm(acc[4 * h + l], m);
                        want = want > INT32_MAX ? INT32_MAX : want < INT32_MIN ? INT32_MIN : want;
                        checked++;
                        if (got[l] != want && bad++ < 5)
                            CHECK(0, "MBQM(%d, %d, %d): neon %d, scalar %lld", acc[4 * h + l], m0, shift, got[l],
                                  (long long)want);
                    }
                }
                /* the whole requantization, one multiplier for all lanes and each lane its own */
                for (size_t gi = 0; gi < sizeof grids / sizeof grids[0]; gi++) {
                    int32_t m0s[8];
                    int64_t neg_t[8];
                    ddq_multiplier ms[8];
                    for (int l = 0; l < 8; l++) {
                        ms[l] = l % 2 ? m : (ddq_multiplier){(int32_t)((1u << 30) | (next_random() & 0x3FFFFFFF)),
                                                             (int32_t)(next_random() % 62) - 31};
                        m0s[l] = ms[l].m0;
                        neg_t[l] = (int64_t)ms[l].shift - 31;
                    }
                    const ddq_requant_neon same =
                        ddq_requant_neon_same(m0, (int64_t)shift - 31, grids[gi].zp, grids[gi].lo, grids[gi].hi);
                    const ddq_requant_neon lanes =
                        ddq_requant_neon_lanes(m0s, neg_t, grids[gi].zp, grids[gi].lo, grids[gi].hi);
                    uint8_t got_same[8], got_lanes[8];
                    vst1_u8(got_same, ddq_requantize_neon(vld1q_s32(acc), vld1q_s32(acc + 4), &same));
                    vst1_u8(got_lanes, ddq_requantize_neon(vld1q_s32(acc), vld1q_s32(acc + 4), &lanes));
                    for (int l = 0; l < 8; l++) {
                        const int32_t want_same = ddq_clamp_code(ddq_mbqm(acc[l], m), grids[gi].zp, grids[gi].lo,
                                                                 grids[gi].hi);
                        const int32_t want_lanes = ddq_clamp_code(ddq_mbqm(acc[l], ms[l]), grids[gi].zp,
                                                                  grids[gi].lo, grids[gi].hi);
                        checked += 2;
                        if ((got_same[l] != want_same || got_lanes[l] != want_lanes) && bad++ < 5)
                            CHECK(0, "acc %d zp %d: neon %d / %d, scalar %d / %d", acc[l], grids[gi].zp, got_same[l],
                                  got_lanes[l], want_same, want_lanes);
                    }
                }
            }
        }
    }
    CHECK(bad == 0, "%ld of %ld NEON requantizations differ", bad, checked);
}

/* The fast form (SQDMULH/SRSHL, gemm_plan.h) on eight lanes at a time, and
 * ddq_requant_plan_init's verdict on it. */
static void neon_fast_requantize(const int32_t *acc, int64_t n, ddq_multiplier m, int32_t zp, int32_t lo, int32_t hi,
                                 uint8_t *out) {
    ddq_requant_plan rq;
    int64_t bound = 0;
    if (!ddq_requant_plan_init(&rq, &m, &bound, 1)) return;
    const ddq_requant_fast r = ddq_requant_fast_same(&rq, 0, zp, lo, hi);
    for (int64_t i = 0; i < n; i += 8) {
        int32_t a[8] = {0};
        uint8_t y[8];
        memcpy(a, acc + i, (size_t)(n - i < 8 ? n - i : 8) * sizeof *a);
        vst1_u8(y, ddq_requantize_fast_neon(vld1q_s32(a), vld1q_s32(a + 4), &r));
        memcpy(out + i, y, (size_t)(n - i < 8 ? n - i : 8));
    }
    ddq_requant_plan_free(&rq);
}

/* The narrow of RQ_FAST16 (a = 0: SQXTN) and RQ_FAST16_S1 … S3 (SQSHRN #a). */
static int16x8_t floor_narrow(int32x4_t a, int32x4_t b, int shift) {
    switch (shift) {
    case 0: return vqmovn_high_s32(vqmovn_s32(a), b);
    case 1: return vqshrn_high_n_s32(vqshrn_n_s32(a, 1), b, 1);
    case 2: return vqshrn_high_n_s32(vqshrn_n_s32(a, 2), b, 2);
    default: return vqshrn_high_n_s32(vqshrn_n_s32(a, 3), b, 3);
    }
}

typedef struct round16_grid {
    int16_t zp;
    uint8_t lo, hi;
} round16_grid;
static const round16_grid ROUND16_GRIDS[] = {{0, 0, 255}, {255, 0, 255}, {128, 3, 200}, {0, 0, 15}, {3, 0, 7}};

/* Eight H rounded by r both ways: SRSHL in int32 with the usual narrows, and the narrow (floored
 * by 2^a) then SQRDMULH by 2^(15 − r + a) in int16; the codes must agree. */
static void check_round16(const int32_t H[8], int r, int a, round16_grid g, long *checked, long *bad) {
    const int32x4_t x = vld1q_s32(H), y = vld1q_s32(H + 4), nr = vdupq_n_s32(-r);
    const int16x8_t zp = vdupq_n_s16(g.zp);
    const uint8x8_t lo = vdup_n_u8(g.lo), hi = vdup_n_u8(g.hi);
    const int16x8_t wide = vqmovn_high_s32(vqmovn_s32(vrshlq_s32(x, nr)), vrshlq_s32(y, nr));
    const int16x8_t narrow = vqrdmulhq_s16(floor_narrow(x, y, a), vdupq_n_s16((int16_t)(1 << (15 - r + a))));
    uint8_t want[8], got[8];
    vst1_u8(want, vmin_u8(vmax_u8(vqmovun_s16(vqaddq_s16(wide, zp)), lo), hi));
    vst1_u8(got, vmin_u8(vmax_u8(vqmovun_s16(vqaddq_s16(narrow, zp)), lo), hi));
    for (int k = 0; k < 8; k++) {
        ++*checked;
        if (got[k] != want[k] && (*bad)++ < 5)
            CHECK(0, "int16 rounding of H %d by %d after a floor by %d, zp %d: %d, int32 %d", H[k], r, a, g.zp, got[k],
                  want[k]);
    }
}

/* neondot's rounding shift in int16 lanes (conv_gemm_6x16c4__neondot.c, RQ_FAST16): for r ≤ 7,
 * H = SQDMULH(acc, m0) narrowed with saturation to int16, SQRDMULH by 2^(15 − r), + zp, SQXTUN
 * and the clamp give the same code as SRSHL(H, −r) in int32 with the usual narrows, whatever H:
 * every H in [−2^17, 2^17] (saturating from ±2^15 on), the int32 extremes and random ones. */
static void test_neondot_round16(void) {
    long checked = 0, bad = 0;
    for (int r = 1; r <= 7; r++)
        for (size_t gi = 0; gi < sizeof ROUND16_GRIDS / sizeof ROUND16_GRIDS[0]; gi++)
            for (int64_t h0 = -(1 << 17) - 8; h0 <= (1 << 17) + 8 + 64; h0 += 8) {
                int32_t H[8];
                for (int k = 0; k < 8; k++) {
                    const int64_t v = h0 > (1 << 17) + 8 ? (int64_t)(next_random() & 0xFFFFFFFFu) - 2147483648LL
                                                          : h0 + k;
                    H[k] = (int32_t)(h0 == -(1 << 17) - 8 ? (k % 2 ? INT32_MAX : INT32_MIN) : v);
                }
                check_round16(H, r, 0, ROUND16_GRIDS[gi], &checked, &bad);
            }
    CHECK(bad == 0, "%ld of %ld int16 roundings differ", bad, checked);
}

/* neondot's int16 rounding after a floor (RQ_FAST16_S1 … S3): for a = 1 … 3 and r = a + 1 …
 * a + 7, SQSHRN #a (floor(H / 2^a), saturated to int16), SQRDMULH by 2^(15 − r + a), + zp,
 * SQXTUN and the clamp give the code of SRSHL(H, −r) in int32: every H in windows of 2^(r + 3)
 * around 0 and around both saturation points ±2^(15 + a), and random ones. */
static void test_neondot_round16_floored(void) {
    long checked = 0, bad = 0;
    for (int a = 1; a <= 3; a++)
        for (int r = a + 1; r <= a + 7; r++)
            for (size_t gi = 0; gi < sizeof ROUND16_GRIDS / sizeof ROUND16_GRIDS[0]; gi++) {
                const int64_t window = (int64_t)1 << (r + 3), centres[3] = {0, (int64_t)1 << (15 + a),
                                                                            -((int64_t)1 << (15 + a))};
                for (int c = 0; c <= 3; c++)
                    for (int64_t h0 = -window; h0 <= window; h0 += 8) {
                        int32_t H[8];
                        for (int k = 0; k < 8; k++)
                            H[k] = c < 3 ? (int32_t)(centres[c] + h0 + k)
                                         : (int32_t)((int64_t)(next_random() & 0xFFFFFFFFu) - 2147483648LL);
                        check_round16(H, r, a, ROUND16_GRIDS[gi], &checked, &bad);
                        if (c == 3 && h0 > -window + 8 * 64) break; /* 64 random vectors */
                    }
            }
    CHECK(bad == 0, "%ld of %ld floored int16 roundings differ", bad, checked);
}

/* neondot's rounding shift as a multiply (conv_gemm_6x16c4__neondot.c): SQRDMULH(H, 2^(31 − r))
 * equals SRSHL(H, −r) for every r ≥ 1: the int32 extremes, the values around the ties
 * (multiples of 2^(r−1)) and random ones. */
static void test_neondot_rounding_multiply(void) {
    long checked = 0, bad = 0;
    for (int r = 1; r <= 31; r++)
        for (int round = 0; round < 64; round++) {
            int32_t H[4];
            for (int k = 0; k < 4; k++) {
                int64_t v = round == 0  ? (k % 2 ? INT32_MAX : INT32_MIN)
                            : round < 16 ? (int64_t)(round - 8) * ((int64_t)1 << (r - 1)) + k - 2
                                         : (int64_t)(next_random() & 0xFFFFFFFFu) - 2147483648LL;
                if (v > INT32_MAX) v = INT32_MAX;
                if (v < INT32_MIN) v = INT32_MIN;
                H[k] = (int32_t)v;
            }
            int32_t shifted[4], multiplied[4];
            vst1q_s32(shifted, vrshlq_s32(vld1q_s32(H), vdupq_n_s32(-r)));
            vst1q_s32(multiplied, vqrdmulhq_s32(vld1q_s32(H), vdupq_n_s32((int32_t)(1u << (31 - r)))));
            for (int k = 0; k < 4; k++) {
                checked++;
                if (shifted[k] != multiplied[k] && bad++ < 5)
                    CHECK(0, "rounding shift of %d by %d: SRSHL %d, SQRDMULH %d", H[k], r, shifted[k], multiplied[k]);
            }
        }
    CHECK(bad == 0, "%ld of %ld rounding multiplies differ", bad, checked);
}

static int neon_fast_admits(ddq_multiplier m, int64_t bound) {
    ddq_requant_plan rq;
    const int fast = ddq_requant_plan_init(&rq, &m, &bound, 1) && rq.fast;
    ddq_requant_plan_free(&rq);
    return fast;
}
#endif

/* A SIMD set's add and requantize (neon: add__neon.c, which folds add's 2^20 pre-scale into the
 * rounding shift; x86: add__avx2.c, requantize__avx2.c) against the reference kernels: every
 * pair of codes (every code for requantize), zero points at both ends of the grid and inside,
 * clamped and full activation ranges, multipliers that make ties at every rounding
 * (power-of-two scales) and random ones, and ranges whose 0–15 last elements take the scalar
 * tail. */
static void test_elementwise(const ddq_kernel_set *set) {
    static const struct { float sa, sb, so; } scales[] = {
        {1.0f, 1.0f, 1.0f},   {1.0f, 1.0f, 2.0f},      {1.0f, 0.25f, 0.5f}, {0.5f, 1.0f, 4.0f},
        {1.0f, 0.125f, 8.0f}, {0.03f, 0.07f, 0.011f}, {0.9f, 0.0013f, 0.4f}, {1e-3f, 1e-3f, 1e-1f}};
    static const struct { int32_t za, zb, zo, lo, hi; } grids[] = {
        {0, 0, 0, 0, 255}, {255, 255, 255, 0, 255}, {0, 255, 128, 128, 255}, {255, 0, 3, 0, 20},
        {128, 17, 250, 250, 250}, {77, 200, 0, 5, 200}};
    static uint8_t xa[65536], xb[65536], want[65536], got[65536];
    for (int i = 0; i < 65536; i++) xa[i] = (uint8_t)(i >> 8), xb[i] = (uint8_t)i;
    long bad = 0, checked = 0;
    for (size_t si = 0; si < sizeof scales / sizeof scales[0]; si++)
        for (size_t gi = 0; gi < sizeof grids / sizeof grids[0]; gi++) {
            const double sa = scales[si].sa, sb = scales[si].sb, so = scales[si].so;
            const double twice_max = 2.0 * (sa > sb ? sa : sb);
            ddq_op op = {0};
            op.act_min = grids[gi].lo;
            op.act_max = grids[gi].hi;
            ddq_quantize_multiplier(sa / twice_max, &op.add_a);
            ddq_quantize_multiplier(sb / twice_max, &op.add_b);
            ddq_quantize_multiplier(twice_max / (1048576.0 * so), &op.multiplier);
            ddq_tensor ta = {0}, tb = {0}, to = {0};
            ta.zero_point = grids[gi].za, tb.zero_point = grids[gi].zb, to.zero_point = grids[gi].zo;
            ddq_op_args args = {.op = &op, .in = {&ta, &tb}, .out = &to, .x = {xa, xb}};
            for (int kind = 0; kind < 2; kind++) {
                const int kernel = kind ? DDQ_OP_REQUANTIZE : DDQ_OP_ADD;
                if (kind) ddq_quantize_multiplier(sa / so, &op.multiplier);
                args.x[0] = kind ? xb : xa; /* requantize: every code */
                const int64_t n = kind ? 256 + 15 : 65536;
                memset(want, 0, sizeof want);
                memset(got, 0xA5, sizeof got);
                args.y = want;
                ddq_kernels_reference.ops[kernel](&args, 0, n);
                /* ranges of 1…37 elements: every tail length, and starts off the 16-byte grid */
                args.y = got;
                for (int64_t b = 0, len = 1; b < n; b += len, len = len % 37 + 1)
                    set->ops[kernel](&args, b, b + len < n ? b + len : n);
                for (int64_t i = 0; i < n; i++) {
                    checked++;
                    if (got[i] != want[i] && bad++ < 5)
                        CHECK(0, "%s %d, %d (scales %zu, grids %zu): %s %d, reference %d",
                              kind ? "requantize" : "add", xa[i], xb[i], si, gi, set->name, got[i], want[i]);
                }
            }
        }
    CHECK(bad == 0, "%ld of %ld %s add / requantize outputs differ", bad, checked, set->name);
}

/* The bundle at path, loaded; NULL (and a failed check) where it does not load. */
static ddq_model *load_or_fail(const char *path) {
    ddq_model *model = NULL;
    ddq_error error;
    if (ddq_model_load_file(path, &model, &error) != DDQ_OK) {
        CHECK(0, "%s: %s", path, error.message);
        return NULL;
    }
    return model;
}

#if defined(__x86_64__)
/* The x86 set's GEMM plans (prepare__x86.c) of every GEMM conv2d of a bundle, against a direct
 * computation from the int8 weights: a block of 4 channels takes maddubs exactly when, for
 * every channel, group of 4 taps and pair of taps in it, the interval bound of the pair's
 * products (w · v, v ∈ [qmin, qmax]: the unsigned panel) lies in int16; its runs cover every
 * group, each the longest whose per-pair-lane bound lies in int16. Prints how many blocks take
 * which kernel. */
static void interval_pair(const int8_t *w, int64_t K, int64_t o, int64_t k0, int64_t lo, int64_t hi, int64_t *mn,
                          int64_t *mx) {
    for (int64_t k = k0; k < k0 + 2 && k < K; k++) {
        const int64_t a = w[o * K + k] * lo, b = w[o * K + k] * hi;
        *mn += a < b ? a : b;
        *mx += a < b ? b : a;
    }
}

static void test_x86_gemm_plans(const char *path) {
    ddq_model *model = load_or_fail(path);
    if (!model) return;
    long blocks[2] = {0, 0}, runs_total = 0;
    int convs = 0;
    for (uint32_t i = 0; i < model->op_count; i++) {
        const ddq_op *op = &model->ops[i];
        const ddq_tensor *xt = &model->tensors[op->inputs[0]], *wt = &model->tensors[op->inputs[1]];
        if (op->kind != DDQ_OP_CONV2D || ddq_conv_path(op, xt, wt) != DDQ_CONV_GEMM) continue;
        ddq_x86_gemm *g = ddq_kernels_x86.prepare(model, op);
        CHECK(g != NULL && g->path == DDQ_CONV_GEMM, "%s: op %u not prepared", path, i);
        if (!g) continue;
        convs++;
        const ddq_gemm_plan *p = g->plan;
        const int64_t O = wt->shape[0], K = wt->elements / O, KG = (K + 3) / 4, lo = xt->qmin, hi = xt->qmax;
        const int8_t *w = wt->data;
        for (int64_t b = 0; b * 4 < O; b++) {
            int fits = 1;
            for (int64_t o = 4 * b; o < 4 * b + 4 && o < O; o++)
                for (int64_t k0 = 0; k0 < K; k0 += 2) {
                    int64_t mn = 0, mx = 0;
                    interval_pair(w, K, o, k0, lo, hi, &mn, &mx);
                    fits &= mn >= INT16_MIN && mx <= INT16_MAX;
                }
            CHECK(p->kernel[b] == (fits ? DDQ_X86_MADDUBS : DDQ_X86_MADD), "%s: op %u block %ld: kernel %d",
                  path, i, (long)b, p->kernel[b]);
            blocks[p->kernel[b]]++;
            if (!fits) continue;
            int64_t g0 = 0, r = p->run_begin[b];
            while (g0 < KG) { /* the greedy runs, found again */
                int64_t mn[4][2] = {{0}}, mx[4][2] = {{0}}, g1 = g0;
                for (; g1 < KG; g1++) {
                    int64_t nmn[4][2], nmx[4][2];
                    int ok = 1;
                    memcpy(nmn, mn, sizeof mn);
                    memcpy(nmx, mx, sizeof mx);
                    for (int64_t o = 4 * b; o < 4 * b + 4 && o < O; o++)
                        for (int h = 0; h < 2; h++) {
                            interval_pair(w, K, o, 4 * g1 + 2 * h, lo, hi, &nmn[o - 4 * b][h], &nmx[o - 4 * b][h]);
                            ok &= nmn[o - 4 * b][h] >= INT16_MIN && nmx[o - 4 * b][h] <= INT16_MAX;
                        }
                    if (!ok) break;
                    memcpy(mn, nmn, sizeof mn);
                    memcpy(mx, nmx, sizeof mx);
                }
                CHECK(r < p->run_begin[b + 1] && p->runs[r].length == g1 - g0,
                      "%s: op %u block %ld run %ld: length %d, expected %ld", path, i, (long)b, (long)r,
                      r < p->run_begin[b + 1] ? p->runs[r].length : -1, (long)(g1 - g0));
                g0 = g1;
                r++;
            }
            CHECK(r == p->run_begin[b + 1], "%s: op %u block %ld: %ld runs, expected %ld", path, i, (long)b,
                  (long)(p->run_begin[b + 1] - p->run_begin[b]), (long)(r - p->run_begin[b]));
            runs_total += r - p->run_begin[b];
        }
        ddq_kernels_x86.release(g);
    }
    printf("%s: x86 GEMM blocks of 4 channels in %d convolutions: maddubs %ld (%ld runs), madd %ld\n", path, convs,
           blocks[DDQ_X86_MADDUBS], runs_total, blocks[DDQ_X86_MADD]);
    ddq_model_free(model);
}
#endif

static void test_pinned_bundle(void) {
    ddq_model *model = NULL;
    ddq_error error;
    ddq_status st = ddq_model_load_memory(PINNED_BUNDLE, sizeof PINNED_BUNDLE, "pin.ddqb", &model, &error);
    /* the §16 example is well-formed but ends in uint8 codes: the runtime says why it will not run it */
    CHECK(st == DDQ_ERR_UNSUPPORTED, "status %d: %s", st, error.message);
    CHECK(strstr(error.message, "graph output 'y' must be a float32 tensor") != NULL, "%s", error.message);

    unsigned char bad[sizeof PINNED_BUNDLE];
    memcpy(bad, PINNED_BUNDLE, sizeof bad);
    bad[8] = 2; /* version 2.0 */
    st = ddq_model_load_memory(bad, sizeof bad, "v2.ddqb", &model, &error);
    CHECK(st == DDQ_ERR_VERSION && strstr(error.message, "version 2.0 is newer than this reader (1.x)"), "%s",
          error.message);
    memcpy(bad, PINNED_BUNDLE, sizeof bad);
    bad[0] = 'X';
    st = ddq_model_load_memory(bad, sizeof bad, "junk.ddqb", &model, &error);
    CHECK(st == DDQ_ERR_FORMAT && strstr(error.message, "bad magic"), "%s", error.message);
    st = ddq_model_load_memory(PINNED_BUNDLE, 5, "short.ddqb", &model, &error);
    CHECK(st == DDQ_ERR_FORMAT && strstr(error.message, "truncated"), "%s", error.message);
    memcpy(bad, PINNED_BUNDLE, sizeof bad);
    bad[0x30c] ^= 0x01; /* a weight byte: caught by the DATA checksum */
    st = ddq_model_load_memory(bad, sizeof bad, "flip.ddqb", &model, &error);
    CHECK(st == DDQ_ERR_FORMAT && strstr(error.message, "checksum mismatch in section DATA"), "%s", error.message);
    st = ddq_model_load_file("/nonexistent/model.ddqb", &model, &error);
    CHECK(st == DDQ_ERR_IO && model == NULL, "%s", error.message);
}

/* Whether this build has kernel set `name` and this CPU runs it. */
static int kernel_set_runs(const char *name) {
    ddq_model *model = NULL;
    ddq_error error;
    if (ddq_model_load_memory(RUNNABLE_BUNDLE, sizeof RUNNABLE_BUNDLE, "probe", &model, &error) != DDQ_OK) return 0;
    ddq_session_options opt = ddq_session_default_options();
    opt.kernels = name;
    ddq_session *s = NULL;
    const int runs = ddq_session_create(model, &opt, &s, &error) == DDQ_OK;
    ddq_session_free(s);
    ddq_model_free(model);
    return runs;
}

static void test_run_and_threads(void) {
    ddq_model *model = NULL;
    ddq_error error;
    ddq_status st = ddq_model_load_memory(RUNNABLE_BUNDLE, sizeof RUNNABLE_BUNDLE, "pin+dequantize", &model, &error);
    CHECK(st == DDQ_OK, "%s", error.message);
    if (st) return;
    ddq_model_info info;
    ddq_model_get_info(model, &info);
    CHECK(info.input.elements == 4 && info.output.elements == 2 && info.op_count == 3, "info");
    CHECK(strcmp(info.metadata_json, "{\"source\":\"pin\",\"labels\":[\"a\",\"\xc3\x9f\"]}") == 0, "%s",
          info.metadata_json);
    for (size_t k = 0; k <= KERNEL_SET_COUNT; k++) /* every set, then the default choice */
        for (int threads = 1; threads <= 4; threads++) {
            const char *set = k < KERNEL_SET_COUNT ? KERNEL_SETS[k] : NULL;
            if (set && !kernel_set_runs(set)) break;
            ddq_session_options opt = ddq_session_default_options();
            opt.threads = threads;
            opt.kernels = set;
            ddq_session *s = NULL;
            st = ddq_session_create(model, &opt, &s, &error);
            CHECK(st == DDQ_OK, "%s", error.message);
            if (st) continue;
            float y[4] = {-1, -1, -1, -1};
            long before = allocations;
            st = ddq_session_run(s, RUNNABLE_INPUT, 2, y, &error);
            CHECK(allocations == before, "%ld allocation(s) while running %s with %d thread(s)", allocations - before,
                  ddq_session_kernels(s), threads);
            CHECK(st == DDQ_OK, "%s", error.message);
            CHECK(memcmp(y, RUNNABLE_EXPECTED, sizeof y) == 0, "%s, threads %d: %g %g %g %g", ddq_session_kernels(s),
                  threads, y[0], y[1], y[2], y[3]);
            CHECK(ddq_session_arena_bytes(s) == ddq_session_liveness_bound(s), "arena %zu, bound %zu",
                  ddq_session_arena_bytes(s), ddq_session_liveness_bound(s));
            CHECK(ddq_session_op_count(s) == 3, "op count");
            CHECK(!set || strcmp(ddq_session_kernels(s), set) == 0, "asked for %s, got %s", set, ddq_session_kernels(s));
            ddq_session_free(s);
        }
    ddq_session_options opt = ddq_session_default_options();
    ddq_session *s = NULL;
    opt.kernels = "no-such-set";
    CHECK(ddq_session_create(model, &opt, &s, &error) == DDQ_ERR_ARGUMENT && strstr(error.message, "unknown kernel set"),
          "%s", error.message);
    opt.kernels = NULL;
    opt.threads = 0;
    CHECK(ddq_session_create(model, &opt, &s, &error) == DDQ_ERR_ARGUMENT, "%s", error.message);
    ddq_model_free(model);
}

/* A bundle given on the command line (e.g. the demo MobileNet, whose convolutions take every
 * fast path): every kernel set with 1–4 threads, on a batch of 2 patterned inputs, allocates
 * nothing while running and writes the same bytes as the reference set with 1 thread. */
static void test_bundle_kernel_sets(const char *path) {
    ddq_model *model = NULL;
    ddq_error error;
    ddq_status st = ddq_model_load_file(path, &model, &error);
    CHECK(st == DDQ_OK, "%s", error.message);
    if (st) return;
    ddq_model_info info;
    ddq_model_get_info(model, &info);
    const size_t n_in = (size_t)(2 * info.input.elements), n_out = (size_t)(2 * info.output.elements);
    float *x = malloc(n_in * sizeof *x), *want = malloc(n_out * sizeof *want), *got = malloc(n_out * sizeof *got);
    if (!x || !want || !got) {
        CHECK(0, "out of memory");
        goto done;
    }
    /* values from about 2^−8 to 2^8 in magnitude, both signs: the input grid's range and beyond */
    for (size_t i = 0; i < n_in; i++)
        x[i] = ldexpf((float)((i * 7919u) % 1000u) / 250.0f - 2.0f, (int)((i * 31u) % 17u) - 8);
    int runs = 0;
    for (size_t k = KERNEL_SET_COUNT; k-- > 0;) { /* reference first: it gives `want` */
        if (!kernel_set_runs(KERNEL_SETS[k])) continue;
        for (int threads = 1; threads <= 4; threads++) {
            ddq_session_options opt = ddq_session_default_options();
            opt.threads = threads;
            opt.kernels = KERNEL_SETS[k];
            ddq_session *s = NULL;
            st = ddq_session_create(model, &opt, &s, &error);
            CHECK(st == DDQ_OK, "%s: %s", KERNEL_SETS[k], error.message);
            if (st) continue;
            float *y = runs ? got : want;
            long before = allocations;
            st = ddq_session_run(s, x, 2, y, &error);
            CHECK(st == DDQ_OK, "%s", error.message);
            CHECK(allocations == before, "%s: %ld allocation(s) while running %s with %d thread(s)", path,
                  allocations - before, KERNEL_SETS[k], threads);
            CHECK(!runs || memcmp(got, want, n_out * sizeof *got) == 0, "%s: %s with %d thread(s) differs from reference",
                  path, KERNEL_SETS[k], threads);
            runs++;
            ddq_session_free(s);
        }
    }
done:
    free(x);
    free(want);
    free(got);
    ddq_model_free(model);
}

/* The int16 accumulation plan (prepare__generic.c, ddq_packed_conv.kblk) of every GEMM conv2d
 * of a bundle: each block of 8 channels gets the largest K_blk ≥ 4 whose k-blocks all keep
 * Σ|w| · span within 32767 (found here by brute force), or 0 (int32) when there is none.
 * Prints how many convolutions and blocks take the acc16 path (tests/test_runtime_builds.py
 * checks the demo model's numbers). */
static void test_acc16_plan(const char *path) {
    ddq_model *model = load_or_fail(path);
    if (!model) return;
    int convs = 0, acc16_convs = 0;
    long blocks = 0, acc16_blocks = 0;
    for (uint32_t i = 0; i < model->op_count; i++) {
        const ddq_op *op = &model->ops[i];
        const ddq_tensor *xt = &model->tensors[op->inputs[0]], *wt = &model->tensors[op->inputs[1]];
        if (op->kind != DDQ_OP_CONV2D || ddq_conv_path(op, xt, wt) != DDQ_CONV_GEMM) continue;
        ddq_packed_conv *p = ddq_prepare__generic(model, op);
        CHECK(p != NULL, "%s: op %u not prepared", path, i);
        if (!p) continue;
        const int64_t O = wt->shape[0], K = wt->shape[1] * wt->shape[2] * wt->shape[3];
        const int64_t span = xt->qmax - xt->zero_point > xt->zero_point - xt->qmin ? xt->qmax - xt->zero_point
                                                                                 : xt->zero_point - xt->qmin;
        const int8_t *w = wt->data;
        int64_t op_acc16 = 0;
        for (int64_t o0 = 0; o0 < O; o0 += 8, blocks++) {
            const int64_t n = O - o0 < 8 ? O - o0 : 8;
            int64_t best = 0;
            for (int64_t k = K; k >= 4 && !best; k--) {
                int fits = 1;
                for (int64_t o = o0; o < o0 + n && fits; o++)
                    for (int64_t b = 0; b < K && fits; b += k) {
                        int64_t sum = 0;
                        for (int64_t r = b; r < b + k && r < K; r++) sum += (w[o * K + r] < 0 ? -w[o * K + r] : w[o * K + r]) * span;
                        fits = sum <= 32767;
                    }
                if (fits) best = k;
            }
            CHECK(p->kblk[o0 / 8] == best, "%s: op %u block %ld: K_blk %ld, expected %ld", path, i, (long)(o0 / 8),
                  (long)p->kblk[o0 / 8], (long)best);
            op_acc16 += best > 0;
        }
        CHECK(p->acc16_blocks == op_acc16, "%s: op %u: %ld acc16 blocks counted", path, i, (long)p->acc16_blocks);
        convs++;
        acc16_convs += op_acc16 == (O + 7) / 8;
        acc16_blocks += op_acc16;
        ddq_release__generic(p);
    }
    printf("%s: int16 accumulation in %d of %d GEMM convolutions (%ld of %ld blocks of 8 channels)\n", path,
           acc16_convs, convs, acc16_blocks, blocks);
    ddq_model_free(model);
}

#if defined(__aarch64__)
/* The neon set's plans on pairs of taps (gemm_pairs__neon.c) of every GEMM conv2d of a bundle,
 * against a direct computation from the int8 weights, for both lane types (int8: acc8, int16:
 * mull): an admitted op's runs cover every pair of taps of each block of 4 channels; per channel
 * and tap parity the interval bound of a run's sum (w · v, v ∈ [qmin − c, qmax − c]) lies in the
 * lane type, and the run is as long as it can be; for acc8 the bound of the whole sum lies in
 * int16 and the fast requantization holds. A refused op breaks one of these. Prints which path
 * the neon set takes for how many convolutions. */
static void interval_add(int64_t w, int64_t lo, int64_t hi, int64_t *mn, int64_t *mx) {
    *mn += w * lo < w * hi ? w * lo : w * hi;
    *mx += w * lo < w * hi ? w * hi : w * lo;
}

static void check_pairs_plan(const char *path, const ddq_model *model, uint32_t i, int kind) {
    const ddq_op *op = &model->ops[i];
    const ddq_tensor *xt = &model->tensors[op->inputs[0]], *wt = &model->tensors[op->inputs[1]];
    const int64_t O = wt->shape[0], K = wt->shape[1] * wt->shape[2] * wt->shape[3], KG = (K + 1) / 2;
    const int64_t lane_min = kind == DDQ_CONV_GEMM_ACC8 ? INT8_MIN : INT16_MIN;
    const int64_t lane_max = kind == DDQ_CONV_GEMM_ACC8 ? INT8_MAX : INT16_MAX;
    const int8_t *w = wt->data;
    ddq_neon_pairs *a = ddq_gemm_pairs_prepare__neon(model, op, kind);
    const int32_t c = ddq_panel_offset(xt, 1);
    const int64_t lo = xt->qmin - c, hi = xt->qmax - c;
    CHECK(lo >= -128 && hi <= 127, "%s: op %u: x − c in [%lld, %lld]", path, i, (long long)lo, (long long)hi);
    int admissible = 1;
    for (int64_t o0 = 0; o0 < O; o0 += 4) {
        const ddq_run *runs = a ? a->plan->runs + a->plan->run_begin[o0 / 4] : NULL;
        const int64_t nruns = a ? a->plan->run_begin[o0 / 4 + 1] - a->plan->run_begin[o0 / 4] : 0;
        int64_t g = 0, r = 0;
        for (int64_t o = o0; kind == DDQ_CONV_GEMM_ACC8 && o < o0 + 4 && o < O; o++) { /* the whole sum in int16 */
            int64_t mn = 0, mx = 0;
            for (int64_t k = 0; k < K; k++) interval_add(w[o * K + k], lo, hi, &mn, &mx);
            if (mn < INT16_MIN || mx > INT16_MAX) admissible = 0;
        }
        while (g < KG) { /* the greedy runs, found again */
            int64_t mn[4][2] = {{0}}, mx[4][2] = {{0}}, length = 0;
            for (; g < KG; g++, length++) {
                int fits = 1;
                int64_t nmn[4][2], nmx[4][2];
                for (int64_t o = o0; o < o0 + 4; o++)
                    for (int j = 0; j < 2; j++) {
                        const int64_t k = 2 * g + j;
                        nmn[o - o0][j] = mn[o - o0][j], nmx[o - o0][j] = mx[o - o0][j];
                        if (o < O && k < K) interval_add(w[o * K + k], lo, hi, &nmn[o - o0][j], &nmx[o - o0][j]);
                        fits &= nmn[o - o0][j] >= lane_min && nmx[o - o0][j] <= lane_max;
                    }
                if (!fits) break;
                memcpy(mn, nmn, sizeof mn);
                memcpy(mx, nmx, sizeof mx);
            }
            if (length == 0) {
                admissible = 0;
                break;
            }
            if (a)
                CHECK(r < nruns && runs[r].length == length, "%s: op %u block %ld run %ld: length %d, expected %ld",
                      path, i, (long)(o0 / 4), (long)r, r < nruns ? runs[r].length : -1, (long)length);
            r++;
        }
        if (a) CHECK(r == nruns, "%s: op %u block %ld: %ld runs, expected %ld", path, i, (long)(o0 / 4), (long)nruns, (long)r);
    }
    if (kind == DDQ_CONV_GEMM_ACC8) {
        ddq_requant_plan rq = {0};
        CHECK(ddq_requant_plan_init(&rq, op->channel_multipliers, op->channel_bounds, O), "requant plan");
        admissible &= rq.fast;
        ddq_requant_plan_free(&rq);
    }
    CHECK(admissible == (a != NULL), "%s: op %u: path %d %s, expected %s", path, i, kind, a ? "taken" : "refused",
          admissible ? "taken" : "refused");
    if (a) ddq_gemm_pairs_release__neon(a);
}

static void test_pairs_plans(const char *path) {
    ddq_model *model = load_or_fail(path);
    if (!model) return;
    int convs = 0, taken[DDQ_CONV_GEMM_MULL + 1] = {0};
    for (uint32_t i = 0; i < model->op_count; i++) {
        const ddq_op *op = &model->ops[i];
        if (op->kind != DDQ_OP_CONV2D ||
            ddq_conv_path(op, &model->tensors[op->inputs[0]], &model->tensors[op->inputs[1]]) != DDQ_CONV_GEMM)
            continue;
        convs++;
        check_pairs_plan(path, model, i, DDQ_CONV_GEMM_ACC8);
        check_pairs_plan(path, model, i, DDQ_CONV_GEMM_MULL);
        void *prepared = ddq_kernels_neon.prepare(model, op);
        CHECK(prepared != NULL, "%s: op %u not prepared", path, i);
        if (!prepared) continue;
        taken[*(const int *)prepared]++;
        ddq_kernels_neon.release(prepared);
    }
    printf("%s: neon GEMM paths of %d convolutions: int8 accumulation %d, int16 %d, byte products in int16 %d\n",
           path, convs, taken[DDQ_CONV_GEMM_ACC8], taken[DDQ_CONV_GEMM], taken[DDQ_CONV_GEMM_MULL]);
    ddq_model_free(model);
}

/* What the neondot set prepares: the depthwise 3×3 convolutions it runs on its SDOT rows
 * (inputs whose x − zp fit int8, maps wider than 4, the int16 requantization; the others run on
 * the neon set's kernel), and the blocks of GEMM channels that share one rounding shift
 * (weights and biases scaled, SQRSHRN). Every packed weight is checked against the model's: w ·
 * 2^l with l = R + shift in such a block (for a channel with a multiplier), w elsewhere. */
static void test_neondot_paths(const char *path) {
    ddq_model *model = load_or_fail(path);
    if (!model) return;
    int dw = 0, rows = 0, blocks = 0, uniform = 0;
    for (uint32_t i = 0; i < model->op_count; i++) {
        const ddq_op *op = &model->ops[i];
        if (op->kind != DDQ_OP_CONV2D) continue;
        const ddq_tensor *wt = &model->tensors[op->inputs[1]];
        const int kind = ddq_conv_path(op, &model->tensors[op->inputs[0]], wt);
        if (kind != DDQ_CONV_DW3X3 && kind != DDQ_CONV_GEMM) continue;
        void *prepared = ddq_kernels_neondot.prepare(model, op);
        CHECK(prepared != NULL, "%s: op %u not prepared", path, i);
        if (!prepared) continue;
        if (kind == DDQ_CONV_DW3X3) {
            dw++;
            rows += *(const int *)prepared == DDQ_DW3X3_SDOT;
        } else {
            const ddq_sdot_gemm *g = prepared;
            const ddq_gemm_plan *p = g->plan;
            blocks += p->blocks;
            for (int64_t b = 0; g->rshrn && b < p->blocks; b++) uniform += g->rshrn[b] > 0;
            for (int64_t o = 0; o < p->O; o++) {
                const ddq_multiplier m = op->channel_multipliers[o];
                const int R = g->rshrn ? g->rshrn[o / p->R] : 0, l = m.m0 && R ? R + m.shift : 0;
                CHECK(p->rq.neg_rshift[o] == -R || !m.m0 || !R, "%s: op %u channel %ld: shift", path, i, (long)o);
                for (int64_t k = 0; k < p->K; k++) {
                    const int8_t want = ((const int8_t *)wt->data)[o * p->K + k];
                    const int8_t got = p->w[((o / p->R * p->KG + k / 4) * p->R + o % p->R) * 4 + k % 4];
                    CHECK(got == want * (1 << l), "%s: op %u channel %ld tap %ld: %d, expected %d · 2^%d", path, i,
                          (long)o, (long)k, got, want, l);
                }
            }
        }
        ddq_kernels_neondot.release(prepared);
    }
    printf("%s: neondot depthwise rows for %d of %d depthwise convolutions, one rounding shift in %d of %d GEMM "
           "blocks\n", path, rows, dw, uniform, blocks);
    ddq_model_free(model);
}
#endif

int main(int argc, char **argv) {
    test_crc32();
    test_unpack_codes();
    test_quantize_multiplier();
    test_mbqm();
    test_pinned_bundle();
#if defined(__aarch64__)
    test_neon_requantization();
    check_fast_requantization("neon fast form", neon_fast_requantize, neon_fast_admits);
    test_neondot_round16();
    test_neondot_round16_floored();
    test_neondot_rounding_multiply();
    test_elementwise(&ddq_kernels_neon);
#endif
#if defined(__x86_64__)
    const int x86 = kernel_set_runs("x86");
    if (x86) {
        check_fast_requantization("x86", ddq_requantize_codes__avx2, ddq_rq_x86_exact);
        test_elementwise(&ddq_kernels_x86);
    }
#endif
    test_run_and_threads();
    for (int i = 1; i < argc; i++) test_bundle_kernel_sets(argv[i]);
    for (int i = 1; i < argc; i++) test_acc16_plan(argv[i]);
#if defined(__aarch64__)
    for (int i = 1; i < argc; i++) test_pairs_plans(argv[i]);
    for (int i = 1; kernel_set_runs("neondot") && i < argc; i++) test_neondot_paths(argv[i]);
#endif
#if defined(__x86_64__)
    for (int i = 1; x86 && i < argc; i++) test_x86_gemm_plans(argv[i]);
#endif
    if (failures) {
        fprintf(stderr, "%d check(s) failed\n", failures);
        return 1;
    }
    printf("test_runtime: all checks passed (cpu: %s)\n", ddq_cpu_features());
    return 0;
}
