/* zlib-compatible CRC32 (ISO-HDLC, reflected 0xEDB88320): crc = ddq_crc32(crc, bytes, n). */
#ifndef DDQ_CRC32_H
#define DDQ_CRC32_H

#include <stddef.h>
#include <stdint.h>

uint32_t ddq_crc32(uint32_t crc, const uint8_t *data, size_t n);

#endif
