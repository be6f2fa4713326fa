/* Bit-packed int8 constants (docs/bundle-format.md §8): w-bit two's complement fields, LSB-first. */
#ifndef DDQ_BITUNPACK_H
#define DDQ_BITUNPACK_H

#include <stddef.h>
#include <stdint.h>

/* Unpacks n codes of width w (2…8) from ⌈n·w/8⌉ bytes at src into out, sign-extended. */
void ddq_unpack_codes(const uint8_t *src, unsigned w, size_t n, int8_t *out);

#endif
