#include "crc32.h"

#include <pthread.h>
#include <string.h>

#if defined(__aarch64__) && defined(__linux__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#include <arm_acle.h>
#include <sys/auxv.h>
#define DDQ_CRC32_ARM 1
#endif

/* A bundle's CRCs cover every byte of the file, so this is on the load path of multi-megabyte
 * models. Where the CPU has the ARMv8 CRC32 instructions (optional in ARMv8.0, present on the
 * Cortex-A53, A72 and A76 of the Pis; the kernel reports HWCAP_CRC32), CRC32X takes 8 bytes an
 * instruction: the ISO-HDLC polynomial is theirs (CRC32CX is the Castagnoli one). Elsewhere
 * slicing-by-8 tables take 8 bytes in about 20 instructions. */
static uint32_t table[8][256];
#if defined(DDQ_CRC32_ARM)
static int hardware;
#endif
static pthread_once_t init_once = PTHREAD_ONCE_INIT;

static void init(void) {
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++) c = c & 1 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
        table[0][i] = c;
    }
    for (uint32_t i = 0; i < 256; i++)
        for (int t = 1; t < 8; t++) table[t][i] = (table[t - 1][i] >> 8) ^ table[0][table[t - 1][i] & 0xFF];
#if defined(DDQ_CRC32_ARM)
    hardware = (getauxval(AT_HWCAP) & (1ul << 7)) != 0; /* HWCAP_CRC32 */
#endif
}

static uint32_t le32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

#if defined(DDQ_CRC32_ARM)
__attribute__((target("+crc"))) static uint32_t crc32_arm(uint32_t c, const uint8_t *data, size_t n) {
    for (; n >= 8; n -= 8, data += 8) {
        uint64_t v;
        memcpy(&v, data, sizeof v); /* little-endian: the bytes in stream order */
        c = __crc32d(c, v);
    }
    for (; n; n--) c = __crc32b(c, *data++);
    return c;
}
#endif

uint32_t ddq_crc32(uint32_t crc, const uint8_t *data, size_t n) {
    pthread_once(&init_once, init);
    uint32_t c = ~crc;
#if defined(DDQ_CRC32_ARM)
    if (hardware) return ~crc32_arm(c, data, n);
#endif
    for (; n >= 8; n -= 8, data += 8) {
        const uint32_t a = c ^ le32(data), b = le32(data + 4);
        c = table[7][a & 0xFF] ^ table[6][(a >> 8) & 0xFF] ^ table[5][(a >> 16) & 0xFF] ^ table[4][a >> 24] ^
            table[3][b & 0xFF] ^ table[2][(b >> 8) & 0xFF] ^ table[1][(b >> 16) & 0xFF] ^ table[0][b >> 24];
    }
    for (; n; n--) c = table[0][(c ^ *data++) & 0xFF] ^ (c >> 8);
    return ~c;
}
