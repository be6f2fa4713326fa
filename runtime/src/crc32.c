#include "crc32.h"

#include <pthread.h>

/* Slicing-by-4 tables, built once; a bundle's CRCs cover every byte of the file, so this is on
 * the load path of multi-megabyte models. */
static uint32_t table[4][256];
static pthread_once_t table_once = PTHREAD_ONCE_INIT;

static void build_table(void) {
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++) c = c & 1 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
        table[0][i] = c;
    }
    for (uint32_t i = 0; i < 256; i++)
        for (int t = 1; t < 4; t++) table[t][i] = (table[t - 1][i] >> 8) ^ table[0][table[t - 1][i] & 0xFF];
}

uint32_t ddq_crc32(uint32_t crc, const uint8_t *data, size_t n) {
    pthread_once(&table_once, build_table);
    uint32_t c = ~crc;
    while (n >= 4) {
        c ^= (uint32_t)data[0] | (uint32_t)data[1] << 8 | (uint32_t)data[2] << 16 | (uint32_t)data[3] << 24;
        c = table[3][c & 0xFF] ^ table[2][(c >> 8) & 0xFF] ^ table[1][(c >> 16) & 0xFF] ^ table[0][c >> 24];
        data += 4;
        n -= 4;
    }
    while (n--) c = table[0][(c ^ *data++) & 0xFF] ^ (c >> 8);
    return ~c;
}
