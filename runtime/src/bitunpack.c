#include "bitunpack.h"

#if defined(__ARM_NEON)
#include <arm_neon.h>
#endif

/* Eight codes fill exactly W bytes. With W a constant, a group is one little-endian word
 * assembled from its W bytes (GCC merges the byte loads) and eight sign-extending bit-field
 * extracts (SBFX on aarch64): about two instructions a code, where a width known only at run
 * time costs five times that. Session creation unpacks every weight of a model. */
#define DEFINE_UNPACK(W)                                                                      \
    static void unpack_##W(const uint8_t *src, size_t groups, int8_t *out) {                  \
        for (size_t g = 0; g < groups; g++, src += (W), out += 8) {                           \
            uint64_t word = 0;                                                                \
            for (unsigned b = 0; b < (W); b++) word |= (uint64_t)src[b] << (8 * b);           \
            for (unsigned k = 0; k < 8; k++)                                                  \
                out[k] = (int8_t)((int64_t)(word << (64 - (W) * (k + 1))) >> (64 - (W)));      \
        }                                                                                     \
    }
DEFINE_UNPACK(2)
DEFINE_UNPACK(3)
DEFINE_UNPACK(4)
DEFINE_UNPACK(5)
DEFINE_UNPACK(6)
DEFINE_UNPACK(7)
#undef DEFINE_UNPACK

void ddq_unpack_codes(const uint8_t *src, unsigned w, size_t n, int8_t *out) {
    const unsigned sign = 1u << (w - 1);
    const size_t groups = n / 8;
    switch (w) {
    case 2: unpack_2(src, groups, out); break;
    case 3: unpack_3(src, groups, out); break;
    case 4: unpack_4(src, groups, out); break;
    case 5: unpack_5(src, groups, out); break;
    case 6: unpack_6(src, groups, out); break;
    case 7: unpack_7(src, groups, out); break;
    default: /* 8 bits: the bytes are the codes */
        for (size_t i = 0; i < groups * 8; i++) out[i] = (int8_t)src[i];
    }
    /* the last n mod 8 codes, bit by bit */
    for (size_t i = groups * 8; i < n; i++) {
        size_t bit = i * w;
        unsigned v = 0;
        for (unsigned b = 0; b < w; b++, bit++) v |= (unsigned)((src[bit / 8] >> (bit % 8)) & 1u) << b;
        out[i] = (int8_t)((int)(v ^ sign) - (int)sign);
    }
}

/* The sums over codes[i0 … n − 1], in int32 partial sums over chunks of 2^16 codes (at most
 * 2^16 · 128 = 2^23 in magnitude), where int64 lanes would widen each code twice. */
#define CHUNKED_SUM(i0, term)                                                 \
    int64_t total = 0;                                                        \
    for (int64_t i = (i0); i < n;) {                                          \
        const int64_t end = n - i > 65536 ? i + 65536 : n;                    \
        int32_t part = 0;                                                     \
        for (; i < end; i++) part += (term);                                  \
        total += part;                                                        \
    }

/* With NEON, 16 codes a step into 16-bit lanes (SABAL: |code − 0| accumulated, SADALP: pairs
 * accumulated), flushed into 32-bit lanes before they could overflow (255 steps of at most 256
 * per uint16 lane, 128 steps of at most 256 per int16 lane). */
int64_t ddq_codes_abs_sum(const int8_t *codes, int64_t n) {
    int64_t i0 = 0, simd = 0;
#if defined(__ARM_NEON)
    uint32x4_t acc = vdupq_n_u32(0);
    const int8x16_t zero = vdupq_n_s8(0);
    for (; i0 + 16 <= n;) {
        int16x8_t part = vdupq_n_s16(0); /* read as uint16: up to 255 · 2 · 128 = 65280 */
        for (int step = 0; step < 255 && i0 + 16 <= n; step++, i0 += 16) {
            const int8x16_t v = vld1q_s8(codes + i0);
            part = vabal_s8(part, vget_low_s8(v), vget_low_s8(zero));
            part = vabal_high_s8(part, v, zero);
        }
        acc = vpadalq_u16(acc, vreinterpretq_u16_s16(part));
    }
    simd = (int64_t)vaddlvq_u32(acc);
#endif
    CHUNKED_SUM(i0, codes[i] < 0 ? -codes[i] : codes[i])
    return simd + total;
}

int64_t ddq_codes_sum(const int8_t *codes, int64_t n) {
    int64_t i0 = 0, simd = 0;
#if defined(__ARM_NEON)
    int32x4_t acc = vdupq_n_s32(0);
    for (; i0 + 16 <= n;) {
        int16x8_t part = vdupq_n_s16(0);
        for (int step = 0; step < 128 && i0 + 16 <= n; step++, i0 += 16) part = vpadalq_s8(part, vld1q_s8(codes + i0));
        acc = vpadalq_s16(acc, part);
    }
    simd = vaddlvq_s32(acc);
#endif
    CHUNKED_SUM(i0, codes[i])
    return simd + total;
}
