#include "bitunpack.h"

void ddq_unpack_codes(const uint8_t *src, unsigned w, size_t n, int8_t *out) {
    const unsigned mask = (1u << w) - 1, sign = 1u << (w - 1);
    /* Eight codes fill exactly w bytes: work on whole groups, then the tail bit by bit. */
    size_t groups = n / 8;
    for (size_t g = 0; g < groups; g++) {
        uint64_t word = 0;
        for (unsigned b = 0; b < w; b++) word |= (uint64_t)src[g * w + b] << (8 * b);
        for (unsigned k = 0; k < 8; k++) {
            unsigned v = (unsigned)(word >> (k * w)) & mask;
            out[g * 8 + k] = (int8_t)((int)(v ^ sign) - (int)sign);
        }
    }
    for (size_t i = groups * 8; i < n; i++) {
        size_t bit = i * w;
        unsigned v = 0;
        for (unsigned b = 0; b < w; b++, bit++) v |= (unsigned)((src[bit / 8] >> (bit % 8)) & 1u) << b;
        out[i] = (int8_t)((int)(v ^ sign) - (int)sign);
    }
}
