/* Int8 weight codes: unpacked from the bundle's bit-packed constants (docs/bundle-format.md §8:
 * w-bit two's complement fields, LSB-first), and summed for the accumulator bounds. */
#ifndef DDQ_BITUNPACK_H
#define DDQ_BITUNPACK_H

#include <stddef.h>
#include <stdint.h>

/* Unpacks n codes of width w (2…8) from ⌈n·w/8⌉ bytes at src into out, sign-extended. */
void ddq_unpack_codes(const uint8_t *src, unsigned w, size_t n, int8_t *out);

/* Σ |codes[i]| and Σ codes[i] over i < n: the loader's check and every kernel set's prepare bound
 * each output channel's accumulator with the first; the GEMM plans fold the second into the bias. */
int64_t ddq_codes_abs_sum(const int8_t *codes, int64_t n);
int64_t ddq_codes_sum(const int8_t *codes, int64_t n);

#endif
