/* Feeds every truncation and random bit flips of a valid bundle to the loader: each must give a
 * clean error (status and message), never a crash, a leak or a sanitizer report (this program
 * is built with ASan+UBSan in CI).
 *
 *   test_corruption BUNDLE [FLIPS] [SEED] [STRIDE]
 *
 * STRIDE > 1 tries every STRIDE-th truncation (plus the last ten), for large bundles.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ddq/ddq.h"

static unsigned long long rng_state;
static unsigned long long next_random(void) { /* splitmix64: reproducible from the seed */
    unsigned long long z = (rng_state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: test_corruption BUNDLE [FLIPS] [SEED] [STRIDE]\n");
        return 2;
    }
    long flips = argc > 2 ? strtol(argv[2], NULL, 10) : 300;
    rng_state = argc > 3 ? strtoull(argv[3], NULL, 10) : 1;
    long stride = argc > 4 ? strtol(argv[4], NULL, 10) : 1;
    if (flips < 0 || stride < 1) {
        fprintf(stderr, "FLIPS must be >= 0 and STRIDE >= 1\n");
        return 2;
    }
    FILE *f = fopen(argv[1], "rb");
    if (!f) {
        perror(argv[1]);
        return 2;
    }
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *bytes = malloc((size_t)n), *copy = malloc((size_t)n);
    if (!bytes || !copy || fread(bytes, 1, (size_t)n, f) != (size_t)n) return 2;
    fclose(f);

    ddq_model *model = NULL;
    ddq_error error;
    if (ddq_model_load_memory(bytes, (size_t)n, argv[1], &model, &error) != DDQ_OK) {
        fprintf(stderr, "the unmodified bundle does not load: %s\n", error.message);
        return 1;
    }
    ddq_model_free(model);
    int failures = 0;
    long truncations = 0;
    for (long cut = 0; cut < n; cut = cut + stride < n - 10 ? cut + stride : cut + 1) {
        truncations++;
        ddq_status st = ddq_model_load_memory(bytes, (size_t)cut, "cut", &model, &error);
        if (st != DDQ_ERR_FORMAT || model != NULL || !error.message[0]) {
            fprintf(stderr, "truncation to %ld bytes: status %d (%s)\n", cut, st, error.message);
            failures++;
            ddq_model_free(model);
        }
    }
    for (long k = 0; k < flips; k++) {
        memcpy(copy, bytes, (size_t)n);
        unsigned long long bit = next_random() % (unsigned long long)(8 * n);
        copy[bit / 8] ^= (unsigned char)(1u << (bit % 8));
        error.message[0] = 0;
        ddq_status st = ddq_model_load_memory(copy, (size_t)n, "flip", &model, &error);
        if (st == DDQ_OK || model != NULL || !error.message[0]) {
            fprintf(stderr, "bit flip at bit %llu: status %d (%s)\n", bit, st, error.message);
            failures++;
            ddq_model_free(model);
        }
    }
    printf("test_corruption: %ld truncations and %ld bit flips of %s (%ld bytes): %d accepted\n", truncations, flips,
           argv[1], n, failures);
    free(bytes);
    free(copy);
    return failures ? 1 : 0;
}
