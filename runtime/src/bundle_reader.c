/* The .ddqb container and records: docs/bundle-format.md, validated in the order of its §14.
 *
 * Every read goes through a bounds check against the section or file it belongs to, every
 * count is checked against the bytes that would have to hold it before anything is allocated,
 * and every failure names the file, the place and what was expected. Values are read byte by
 * byte (little-endian), so the file may sit at any alignment on any host.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bitunpack.h"
#include "crc32.h"
#include "error.h"
#include "model.h"

#define HEADER_SIZE 32u
#define HEADER_CRC_END 28u
#define SECTION_ENTRY_SIZE 24u
#define MAX_SECTIONS 64u
#define SECTION_ALIGN 8u
#define DATA_ALIGN 64u
#define SMALL_BLOB_ALIGN 4u
#define LARGE_BLOB 64u
#define TENSOR_RECORD_SIZE 64u
#define OP_RECORD_FIXED_SIZE 16u
#define ATTR_FIXED_SIZE 8u
#define MAX_ATTRS 64
#define INT32_MAX_ELEMENTS 2147483647LL

enum { SEC_STRINGS = 1, SEC_TENSORS, SEC_OPS, SEC_IO, SEC_METADATA, SEC_DATA, SEC_REQUIRED = 6 };

static const uint8_t MAGIC[8] = {0x44, 0x44, 0x51, 0x42, 0x0D, 0x0A, 0x1A, 0x0A};
static const char *const SECTION_NAMES[SEC_REQUIRED + 1] = {
    NULL, "STRINGS", "TENSORS", "OPS", "IO", "METADATA", "DATA"};
static const char *const DTYPE_NAMES[DDQ_DTYPE_COUNT] = {"float32", "uint8", "int8", "int32"};
/* Inputs and outputs per op kind (ddq_edge.ir.OP_KINDS). */
static const uint8_t KIND_ARITY[DDQ_OP_KIND_COUNT][2] = {
    {1, 1}, {1, 1}, {3, 1}, {3, 1}, {2, 1}, {1, 1}, {1, 1}, {1, 1}, {1, 1}, {1, 1}};

const char *const ddq_op_kind_names[DDQ_OP_KIND_COUNT] = {
    "quantize", "dequantize", "conv2d", "fully_connected", "add", "avg_pool", "global_avg_pool",
    "max_pool", "requantize", "reshape"};

static uint16_t rd16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }
static uint32_t rd32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static int32_t rdi32(const uint8_t *p) {
    uint32_t u = rd32(p);
    int32_t v;
    memcpy(&v, &u, sizeof v); /* two's complement reinterpretation without implementation-defined casts */
    return v;
}
static uint64_t rd64(const uint8_t *p) { return (uint64_t)rd32(p) | (uint64_t)rd32(p + 4) << 32; }

typedef struct section {
    uint32_t id, crc;
    uint64_t offset, length;
} section;

typedef struct reader {
    ddq_model *model;
    const uint8_t *buf;
    uint64_t size;
    ddq_error *error;
    bool newer_minor;
    section sections[SEC_REQUIRED + 1]; /* required sections by id */
} reader;

#define FAIL(r, status, ...) ddq_fail((r)->error, (status), __VA_ARGS__)
#define SRC(r) ((r)->model->source)

static const char *section_name(uint32_t id, char *scratch, size_t n) {
    if (id >= 1 && id <= SEC_REQUIRED) return SECTION_NAMES[id];
    snprintf(scratch, n, "#%u (unknown)", id);
    return scratch;
}

static const uint8_t *sec(const reader *r, int id) { return r->buf + r->sections[id].offset; }
static uint64_t sec_len(const reader *r, int id) { return r->sections[id].length; }

/* ------------------------------------------------------------------ §1–5: header and table */

static ddq_status check_zero(reader *r, uint64_t start, uint64_t end, const char *where) {
    for (uint64_t i = start; i < end; i++)
        if (r->buf[i])
            return FAIL(r, DDQ_ERR_FORMAT, "%s: padding byte %llu %s is 0x%02x, expected 0", SRC(r),
                        (unsigned long long)i, where, r->buf[i]);
    return DDQ_OK;
}

static ddq_status parse_container(reader *r) {
    const uint8_t *b = r->buf;
    uint64_t n = r->size;
    if (n < sizeof MAGIC && memcmp(b, MAGIC, (size_t)n) == 0)
        return FAIL(r, DDQ_ERR_FORMAT, "%s: truncated: the header needs %u bytes but the file has %llu bytes",
                    SRC(r), HEADER_SIZE, (unsigned long long)n);
    if (n < sizeof MAGIC || memcmp(b, MAGIC, sizeof MAGIC) != 0)
        return FAIL(r, DDQ_ERR_FORMAT, "%s: bad magic: not a .ddqb edge bundle", SRC(r));
    if (n < HEADER_SIZE)
        return FAIL(r, DDQ_ERR_FORMAT, "%s: truncated: the header needs %u bytes but the file has %llu bytes",
                    SRC(r), HEADER_SIZE, (unsigned long long)n);
    int major = rd16(b + 8), minor = rd16(b + 10);
    r->model->version_major = major;
    r->model->version_minor = minor;
    if (major > DDQ_BUNDLE_MAJOR)
        return FAIL(r, DDQ_ERR_VERSION, "%s: version %d.%d is newer than this reader (%d.x); upgrade "
                    "ddq-edge to read it", SRC(r), major, minor, DDQ_BUNDLE_MAJOR);
    if (major < DDQ_BUNDLE_MAJOR)
        return FAIL(r, DDQ_ERR_VERSION, "%s: version %d.%d is not supported (this reader reads %d.x)",
                    SRC(r), major, minor, DDQ_BUNDLE_MAJOR);
    r->newer_minor = minor > DDQ_BUNDLE_MINOR;
    uint32_t header_size = rd32(b + 12), count = rd32(b + 24), header_crc = rd32(b + 28);
    uint64_t file_size = rd64(b + 16);
    if (header_size < HEADER_SIZE || header_size % 8 || (header_size != HEADER_SIZE && !r->newer_minor))
        return FAIL(r, DDQ_ERR_FORMAT, "%s: header: header_size is %u, expected %u%s", SRC(r), header_size,
                    HEADER_SIZE, r->newer_minor ? " or a larger multiple of 8" : "");
    if (count > MAX_SECTIONS)
        return FAIL(r, DDQ_ERR_FORMAT, "%s: header: section_count is %u, at most %u expected", SRC(r),
                    count, MAX_SECTIONS);
    uint64_t table_end = (uint64_t)header_size + (uint64_t)SECTION_ENTRY_SIZE * count;
    if (table_end > n)
        return FAIL(r, DDQ_ERR_FORMAT, "%s: truncated: the section table ends at byte %llu but the file "
                    "has %llu bytes", SRC(r), (unsigned long long)table_end, (unsigned long long)n);
    uint32_t crc = ddq_crc32(ddq_crc32(0, b, HEADER_CRC_END), b + HEADER_SIZE, (size_t)(table_end - HEADER_SIZE));
    if (crc != header_crc)
        return FAIL(r, DDQ_ERR_FORMAT, "%s: checksum mismatch in the header and section table: stored "
                    "0x%08x, computed 0x%08x", SRC(r), header_crc, crc);

    section entries[MAX_SECTIONS];
    for (uint32_t i = 0; i < count; i++) {
        const uint8_t *e = b + header_size + SECTION_ENTRY_SIZE * i;
        entries[i] = (section){rd32(e), rd32(e + 4), rd64(e + 8), rd64(e + 16)};
    }
    char scratch[32];
    if (file_size != n) {
        if (n < file_size) {
            /* name the section that ends first past the end of the file */
            int first = -1;
            for (uint32_t i = 0; i < count; i++) {
                const section *s = &entries[i];
                bool past = s->offset > n || s->length > n - s->offset;
                if (past && (first < 0 || s->offset + s->length < entries[first].offset + entries[first].length))
                    first = (int)i;
            }
            if (first >= 0)
                return FAIL(r, DDQ_ERR_FORMAT, "%s: truncated: section %s ends past the end of the file "
                            "(%llu bytes)", SRC(r), section_name(entries[first].id, scratch, sizeof scratch),
                            (unsigned long long)n);
            return FAIL(r, DDQ_ERR_FORMAT, "%s: truncated: the header records %llu bytes but the file has "
                        "%llu bytes", SRC(r), (unsigned long long)file_size, (unsigned long long)n);
        }
        return FAIL(r, DDQ_ERR_FORMAT, "%s: %llu unexpected bytes after the end: the header records %llu "
                    "bytes but the file has %llu bytes", SRC(r), (unsigned long long)(n - file_size),
                    (unsigned long long)file_size, (unsigned long long)n);
    }
    bool seen[SEC_REQUIRED + 1] = {false};
    for (uint32_t i = 0; i < count; i++) {
        const section *s = &entries[i];
        const char *name = section_name(s->id, scratch, sizeof scratch);
        uint64_t align = s->id == SEC_DATA ? DATA_ALIGN : SECTION_ALIGN;
        if (s->offset % align)
            return FAIL(r, DDQ_ERR_FORMAT, "%s: section %s: offset %llu is not a multiple of %llu", SRC(r),
                        name, (unsigned long long)s->offset, (unsigned long long)align);
        if (s->offset < table_end)
            return FAIL(r, DDQ_ERR_FORMAT, "%s: section %s: offset %llu lies inside the header and section "
                        "table (which end at byte %llu)", SRC(r), name, (unsigned long long)s->offset,
                        (unsigned long long)table_end);
        if (s->offset > n || s->length > n - s->offset)
            return FAIL(r, DDQ_ERR_FORMAT, "%s: truncated: section %s ends past the end of the file (%llu "
                        "bytes)", SRC(r), name, (unsigned long long)n);
        for (uint32_t j = 0; j < i; j++)
            if (entries[j].id == s->id)
                return FAIL(r, DDQ_ERR_FORMAT, "%s: section %s appears more than once in the section table",
                            SRC(r), name);
        if (s->id >= 1 && s->id <= SEC_REQUIRED) {
            r->sections[s->id] = *s;
            seen[s->id] = true;
        }
    }
    /* overlap and zero padding: walk the sections in file order (count ≤ 64: selection order) */
    uint64_t pos = table_end;
    bool done[MAX_SECTIONS] = {false};
    for (uint32_t k = 0; k < count; k++) {
        int next = -1;
        for (uint32_t i = 0; i < count; i++)
            if (!done[i] && (next < 0 || entries[i].offset < entries[next].offset ||
                             (entries[i].offset == entries[next].offset && entries[i].length < entries[next].length)))
                next = (int)i;
        done[next] = true;
        const section *s = &entries[next];
        if (s->offset < pos)
            return FAIL(r, DDQ_ERR_FORMAT, "%s: section %s (bytes %llu..%llu) overlaps the bytes before it, "
                        "which end at byte %llu", SRC(r), section_name(s->id, scratch, sizeof scratch),
                        (unsigned long long)s->offset, (unsigned long long)(s->offset + s->length),
                        (unsigned long long)pos);
        ddq_status st = check_zero(r, pos, s->offset, "between sections");
        if (st) return st;
        pos = s->offset + s->length;
    }
    ddq_status st = check_zero(r, pos, n, "after the last section");
    if (st) return st;
    for (int id = 1; id <= SEC_REQUIRED; id++)
        if (!seen[id]) return FAIL(r, DDQ_ERR_FORMAT, "%s: missing section %s", SRC(r), SECTION_NAMES[id]);
    for (uint32_t i = 0; i < count; i++) {
        const section *s = &entries[i];
        uint32_t actual = ddq_crc32(0, b + s->offset, (size_t)s->length);
        if (actual != s->crc)
            return FAIL(r, DDQ_ERR_FORMAT, "%s: checksum mismatch in section %s: stored 0x%08x, computed "
                        "0x%08x", SRC(r), section_name(s->id, scratch, sizeof scratch), s->crc, actual);
    }
    return DDQ_OK;
}

/* ------------------------------------------------------------------ strings, UTF-8, blobs */

/* RFC 3629 UTF-8: no overlongs, no surrogates, nothing above U+10FFFF. Returns the index of
 * the first bad byte, or n when all is well. */
static size_t utf8_invalid_at(const uint8_t *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        uint8_t c = s[i];
        size_t len;
        uint8_t lo = 0x80, hi = 0xBF;
        if (c < 0x80) { i++; continue; }
        if (c >= 0xC2 && c <= 0xDF) len = 2;
        else if (c >= 0xE0 && c <= 0xEF) { len = 3; if (c == 0xE0) lo = 0xA0; if (c == 0xED) hi = 0x9F; }
        else if (c >= 0xF0 && c <= 0xF4) { len = 4; if (c == 0xF0) lo = 0x90; if (c == 0xF4) hi = 0x8F; }
        else return i;
        if (len > n - i) return i;
        if (s[i + 1] < lo || s[i + 1] > hi) return i;
        for (size_t k = 2; k < len; k++)
            if ((s[i + k] & 0xC0) != 0x80) return i;
        i += len;
    }
    return n;
}

/* A string reference → the NUL-terminated text inside the model's copy of the file. */
static ddq_status string_at(reader *r, uint32_t ref, const char *where, const char **out) {
    uint64_t length = sec_len(r, SEC_STRINGS);
    const uint8_t *base = sec(r, SEC_STRINGS);
    if (ref % 4) return FAIL(r, DDQ_ERR_FORMAT, "%s: %s: string offset %u is not a multiple of 4", SRC(r), where, ref);
    if ((uint64_t)ref + 4 > length)
        return FAIL(r, DDQ_ERR_FORMAT, "%s: %s: string offset %u is outside section STRINGS (%llu bytes)",
                    SRC(r), where, ref, (unsigned long long)length);
    uint32_t size = rd32(base + ref);
    uint64_t end = (uint64_t)ref + 4 + size;
    if (end + 1 > length)
        return FAIL(r, DDQ_ERR_FORMAT, "%s: %s: string at offset %u of %u bytes runs past the end of section "
                    "STRINGS (%llu bytes)", SRC(r), where, ref, size, (unsigned long long)length);
    if (base[end] != 0)
        return FAIL(r, DDQ_ERR_FORMAT, "%s: %s: string at offset %u is not NUL-terminated", SRC(r), where, ref);
    const uint8_t *text = base + ref + 4;
    if (memchr(text, 0, size))
        return FAIL(r, DDQ_ERR_FORMAT, "%s: %s: string at offset %u contains a NUL byte", SRC(r), where, ref);
    size_t bad = utf8_invalid_at(text, size);
    if (bad != size)
        return FAIL(r, DDQ_ERR_FORMAT, "%s: %s: string at offset %u is not valid UTF-8 (byte %zu)", SRC(r),
                    where, ref, bad);
    *out = (const char *)text;
    return DDQ_OK;
}

/* A DATA blob's alignment and bounds; its bytes on success. */
static ddq_status blob_at(reader *r, uint32_t offset, uint64_t size, const char *where, const uint8_t **out) {
    uint64_t length = sec_len(r, SEC_DATA);
    if (size == 0) {
        if (offset != 0)
            return FAIL(r, DDQ_ERR_FORMAT, "%s: %s: an empty blob must have offset 0, got %u", SRC(r), where, offset);
        *out = sec(r, SEC_DATA);
        return DDQ_OK;
    }
    if (offset % SMALL_BLOB_ALIGN)
        return FAIL(r, DDQ_ERR_FORMAT, "%s: %s: offset %u in DATA is not a multiple of %u", SRC(r), where,
                    offset, SMALL_BLOB_ALIGN);
    if (size >= LARGE_BLOB && offset % DATA_ALIGN)
        return FAIL(r, DDQ_ERR_FORMAT, "%s: %s: a %llu-byte blob must start at a multiple of %u in DATA, got "
                    "offset %u", SRC(r), where, (unsigned long long)size, DATA_ALIGN, offset);
    if (offset > length || size > length - offset)
        return FAIL(r, DDQ_ERR_FORMAT, "%s: %s: bytes %u..%llu lie outside section DATA (%llu bytes)", SRC(r),
                    where, offset, (unsigned long long)(offset + size), (unsigned long long)length);
    *out = sec(r, SEC_DATA) + offset;
    return DDQ_OK;
}

/* ------------------------------------------------------------------ §6–7: tensors */

static ddq_status decode_constant(reader *r, ddq_tensor *t, uint32_t data_offset, uint32_t data_size,
                                  const char *where) {
    uint64_t n = (uint64_t)t->elements;
    uint64_t expected;
    unsigned width;
    if (t->dtype == DDQ_I8) {
        width = (t->flags & DDQ_FLAG_QUANT) ? t->bits : 8;
        if (width < 2 || width > 8)
            return FAIL(r, DDQ_ERR_FORMAT, "%s: %s: int8 constants are packed at 2..8 bits, the tensor has %u",
                        SRC(r), where, width);
        expected = (n * width + 7) / 8;
    } else {
        width = (unsigned)ddq_dtype_size(t->dtype) * 8;
        expected = n * ddq_dtype_size(t->dtype);
    }
    if (data_size != expected)
        return FAIL(r, DDQ_ERR_FORMAT, "%s: %s: data_size is %u bytes, expected %llu for %llu %s element(s) at "
                    "%u bits", SRC(r), where, data_size, (unsigned long long)expected, (unsigned long long)n,
                    DTYPE_NAMES[t->dtype], width);
    const uint8_t *src;
    ddq_status st = blob_at(r, data_offset, data_size, where, &src);
    if (st) return st;
    t->stored_bytes = data_size;
    size_t bytes = (size_t)n * ddq_dtype_size(t->dtype);
    t->data = malloc(bytes ? bytes : 1);
    if (!t->data) return FAIL(r, DDQ_ERR_NOMEM, "%s: %s: out of memory for %zu bytes", SRC(r), where, bytes);
    if (t->dtype == DDQ_I8) {
        if ((n * width) % 8 && (src[data_size - 1] >> ((n * width) % 8)))
            return FAIL(r, DDQ_ERR_FORMAT, "%s: %s: the unused high bits of the last packed byte are not zero",
                        SRC(r), where);
        int8_t *codes = t->data;
        ddq_unpack_codes(src, width, (size_t)n, codes);
        if (t->flags & DDQ_FLAG_QUANT) {
            const int lo = -((1 << (width - 1)) - 1);
            /* the smallest code first (a loop without an exit vectorizes), the culprit only on failure */
            int8_t smallest = INT8_MAX;
            for (uint64_t i = 0; i < n; i++) smallest = codes[i] < smallest ? codes[i] : smallest;
            for (uint64_t i = 0; smallest < lo && i < n; i++)
                if (codes[i] < lo)
                    return FAIL(r, DDQ_ERR_FORMAT, "%s: %s: weight code %d is outside the %u-bit narrow range "
                                "[%d, %d]", SRC(r), where, codes[i], width, lo, -lo);
        }
    } else if (t->dtype == DDQ_U8) {
        memcpy(t->data, src, bytes);
    } else {
        /* float32 / int32: little-endian words, assembled so any host byte order works */
        uint32_t *words = t->data;
        for (uint64_t i = 0; i < n; i++) words[i] = rd32(src + 4 * i);
    }
    return DDQ_OK;
}

static ddq_status parse_tensor(reader *r, uint32_t i, const uint8_t *rec) {
    ddq_tensor *t = &r->model->tensors[i];
    char where[192];
    snprintf(where, sizeof where, "section TENSORS, tensor #%u", i);
    char name_where[224];
    snprintf(name_where, sizeof name_where, "%s: name", where);
    ddq_status st = string_at(r, rd32(rec), name_where, &t->name);
    if (st) return st;
    snprintf(where, sizeof where, "section TENSORS, tensor #%u ('%.120s')", i, t->name);
    for (uint32_t j = 0; j < i; j++)
        if (strcmp(r->model->tensors[j].name, t->name) == 0)
            return FAIL(r, DDQ_ERR_FORMAT, "%s: %s: duplicate tensor name", SRC(r), where);
    t->dtype = rec[4];
    t->ndim = rec[5];
    t->flags = rec[6];
    t->bits = rec[7];
    t->zero_point = rdi32(rec + 8);
    t->qmin = rdi32(rec + 12);
    t->qmax = rdi32(rec + 16);
    uint32_t scale_count = rd32(rec + 44), scale_offset = rd32(rec + 48);
    uint32_t data_offset = rd32(rec + 52), data_size = rd32(rec + 56), reserved = rd32(rec + 60);
    t->producer = -1;
    if (t->dtype >= DDQ_DTYPE_COUNT)
        return FAIL(r, DDQ_ERR_FORMAT, "%s: %s: dtype code %u is not one of 0=float32, 1=uint8, 2=int8, 3=int32",
                    SRC(r), where, t->dtype);
    if (t->ndim > DDQ_MAX_DIMS)
        return FAIL(r, DDQ_ERR_FORMAT, "%s: %s: ndim %u exceeds %d", SRC(r), where, t->ndim, DDQ_MAX_DIMS);
    int64_t elements = 1;
    for (int d = 0; d < DDQ_MAX_DIMS; d++) {
        int32_t dim = rdi32(rec + 20 + 4 * d);
        if ((d < t->ndim && dim < 0) || (d >= t->ndim && dim != 0))
            return FAIL(r, DDQ_ERR_FORMAT, "%s: %s: shape field %d is %d; dimensions must be >= 0 for the first "
                        "%u and 0 after", SRC(r), where, d, dim, t->ndim);
        t->shape[d] = dim;
        if (d < t->ndim) {
            elements *= dim;
            if (elements > INT32_MAX_ELEMENTS) elements = INT32_MAX_ELEMENTS + 1; /* saturate, reported below */
        }
    }
    for (int d = 0; d < t->ndim; d++)
        if (t->shape[d] == 0) elements = 0;
    if (elements > INT32_MAX_ELEMENTS)
        return FAIL(r, DDQ_ERR_FORMAT, "%s: %s: the shape has more than 2^31-1 elements", SRC(r), where);
    t->elements = elements;
    if (t->flags & ~(DDQ_FLAG_QUANT | DDQ_FLAG_CONSTANT))
        return FAIL(r, DDQ_ERR_FORMAT, "%s: %s: unknown flag bits 0x%02x (known: 0x01 quant, 0x02 constant)",
                    SRC(r), where, t->flags);
    if (reserved)
        return FAIL(r, DDQ_ERR_FORMAT, "%s: %s: reserved field is %u, expected 0", SRC(r), where, reserved);
    if (t->flags & DDQ_FLAG_QUANT) {
        unsigned max_bits = t->dtype == DDQ_U8 || t->dtype == DDQ_I8 ? 8 : 32;
        if (t->bits < 1 || t->bits > max_bits)
            return FAIL(r, DDQ_ERR_FORMAT, "%s: %s: quant bits %u outside 1..%u for %s", SRC(r), where, t->bits,
                        max_bits, DTYPE_NAMES[t->dtype]);
        if (t->qmin > t->qmax)
            return FAIL(r, DDQ_ERR_FORMAT, "%s: %s: qmin %d > qmax %d", SRC(r), where, t->qmin, t->qmax);
        if (scale_count < 1)
            return FAIL(r, DDQ_ERR_FORMAT, "%s: %s: a quantized tensor needs at least one scale, scale_count is 0",
                        SRC(r), where);
        char scale_where[224];
        snprintf(scale_where, sizeof scale_where, "%s: scales", where);
        const uint8_t *src;
        st = blob_at(r, scale_offset, 4ull * scale_count, scale_where, &src);
        if (st) return st;
        float *scales = malloc(sizeof(float) * scale_count);
        if (!scales) return FAIL(r, DDQ_ERR_NOMEM, "%s: %s: out of memory", SRC(r), where);
        for (uint32_t k = 0; k < scale_count; k++) {
            uint32_t word = rd32(src + 4 * k);
            memcpy(&scales[k], &word, sizeof word);
        }
        t->scales = scales;
        t->scale_count = scale_count;
    } else if (t->bits || t->zero_point || t->qmin || t->qmax || scale_count || scale_offset) {
        return FAIL(r, DDQ_ERR_FORMAT, "%s: %s: not quantized (flag 0x01 clear) but bits/zero_point/qmin/qmax/"
                    "scale fields are not all 0", SRC(r), where);
    }
    if (t->flags & DDQ_FLAG_CONSTANT) {
        char data_where[224];
        snprintf(data_where, sizeof data_where, "%s: data", where);
        st = decode_constant(r, t, data_offset, data_size, data_where);
        if (st) return st;
        r->model->weight_bytes += data_size;
    } else if (data_offset || data_size) {
        return FAIL(r, DDQ_ERR_FORMAT, "%s: %s: not constant (flag 0x02 clear) but data_offset/data_size are "
                    "%u/%u, expected 0/0", SRC(r), where, data_offset, data_size);
    }
    return DDQ_OK;
}

static ddq_status parse_tensors(reader *r) {
    const uint8_t *base = sec(r, SEC_TENSORS);
    uint64_t length = sec_len(r, SEC_TENSORS);
    if (length < 8)
        return FAIL(r, DDQ_ERR_FORMAT, "%s: section TENSORS: %llu bytes, too short for its 8-byte preamble",
                    SRC(r), (unsigned long long)length);
    uint32_t count = rd32(base), record_size = rd32(base + 4);
    if (record_size < TENSOR_RECORD_SIZE || record_size % 4 || (record_size != TENSOR_RECORD_SIZE && !r->newer_minor))
        return FAIL(r, DDQ_ERR_FORMAT, "%s: section TENSORS: record_size is %u, expected %u", SRC(r), record_size,
                    TENSOR_RECORD_SIZE);
    if (length != 8 + (uint64_t)count * record_size)
        return FAIL(r, DDQ_ERR_FORMAT, "%s: section TENSORS: %u records of %u bytes need %llu bytes but the "
                    "section has %llu", SRC(r), count, record_size,
                    (unsigned long long)(8 + (uint64_t)count * record_size), (unsigned long long)length);
    /* count is now bounded by the section length, so this allocation is by a checked count */
    r->model->tensors = calloc(count ? count : 1, sizeof(ddq_tensor));
    if (!r->model->tensors) return FAIL(r, DDQ_ERR_NOMEM, "%s: out of memory for %u tensors", SRC(r), count);
    r->model->tensor_count = count;
    for (uint32_t i = 0; i < count; i++) {
        ddq_status st = parse_tensor(r, i, base + 8 + (uint64_t)i * record_size);
        if (st) return st;
    }
    return DDQ_OK;
}

/* ------------------------------------------------------------------ §9: ops */

typedef enum { ATTR_INT = 0, ATTR_INT_LIST = 1 } attr_type;

/* Stores the attributes this runtime uses; graph_check.c verifies presence per kind. */
typedef struct attr_seen {
    uint32_t mask;
} attr_seen;

enum {
    A_STRIDE = 1u << 0, A_PADDING = 1u << 1, A_DILATION = 1u << 2, A_GROUPS = 1u << 3,
    A_ACT_MIN = 1u << 4, A_ACT_MAX = 1u << 5, A_KERNEL = 1u << 6, A_SHAPE = 1u << 7,
};

typedef struct attr_spec {
    const char *key;
    uint32_t bit;
    attr_type type;
    int count; /* for lists: the exact count, or -1 for 0…DDQ_MAX_DIMS (shape) */
} attr_spec;

static const attr_spec ATTRS[] = {
    {"stride", A_STRIDE, ATTR_INT_LIST, 2},   {"padding", A_PADDING, ATTR_INT_LIST, 4},
    {"dilation", A_DILATION, ATTR_INT_LIST, 2}, {"groups", A_GROUPS, ATTR_INT, 1},
    {"act_min", A_ACT_MIN, ATTR_INT, 1},      {"act_max", A_ACT_MAX, ATTR_INT, 1},
    {"kernel", A_KERNEL, ATTR_INT_LIST, 2},   {"shape", A_SHAPE, ATTR_INT_LIST, -1},
};

/* The attributes each kind needs (the bundle format does not check them; the runtime does). */
static const uint32_t KIND_ATTRS[DDQ_OP_KIND_COUNT] = {
    [DDQ_OP_QUANTIZE] = 0,
    [DDQ_OP_DEQUANTIZE] = 0,
    [DDQ_OP_CONV2D] = A_STRIDE | A_PADDING | A_DILATION | A_GROUPS | A_ACT_MIN | A_ACT_MAX,
    [DDQ_OP_FULLY_CONNECTED] = A_ACT_MIN | A_ACT_MAX,
    [DDQ_OP_ADD] = A_ACT_MIN | A_ACT_MAX,
    [DDQ_OP_AVG_POOL] = A_KERNEL | A_STRIDE | A_PADDING | A_ACT_MIN | A_ACT_MAX,
    [DDQ_OP_GLOBAL_AVG_POOL] = A_ACT_MIN | A_ACT_MAX,
    [DDQ_OP_MAX_POOL] = A_KERNEL | A_STRIDE | A_PADDING,
    [DDQ_OP_REQUANTIZE] = A_ACT_MIN | A_ACT_MAX,
    [DDQ_OP_RESHAPE] = A_SHAPE,
};

static ddq_status store_attr(reader *r, ddq_op *op, const char *key, attr_type type, uint16_t count,
                             const uint8_t *values, const char *where, uint32_t *seen) {
    for (size_t a = 0; a < sizeof ATTRS / sizeof ATTRS[0]; a++) {
        const attr_spec *spec = &ATTRS[a];
        if (strcmp(spec->key, key) != 0) continue;
        if (!(KIND_ATTRS[op->kind] & spec->bit)) return DDQ_OK; /* not used by this kind: ignored */
        bool count_ok = spec->count >= 0 ? count == spec->count : count <= DDQ_MAX_DIMS;
        if (type != spec->type || !count_ok)
            return FAIL(r, DDQ_ERR_GRAPH, "%s: %s: attribute '%s' must be %s, got %s of %u value(s)", SRC(r),
                        where, key, spec->type == ATTR_INT ? "an int" : "an int list of the right length",
                        type == ATTR_INT ? "an int" : "a list", count);
        int32_t v[DDQ_MAX_DIMS];
        for (uint16_t k = 0; k < count; k++) v[k] = rdi32(values + 4 * k);
        switch (spec->bit) {
        case A_STRIDE: op->stride[0] = v[0]; op->stride[1] = v[1]; break;
        case A_PADDING: memcpy(op->padding, v, sizeof op->padding); break;
        case A_DILATION: op->dilation[0] = v[0]; op->dilation[1] = v[1]; break;
        case A_GROUPS: op->groups = v[0]; break;
        case A_ACT_MIN: op->act_min = v[0]; break;
        case A_ACT_MAX: op->act_max = v[0]; break;
        case A_KERNEL: op->kernel[0] = v[0]; op->kernel[1] = v[1]; break;
        case A_SHAPE:
            op->reshape_ndim = count;
            for (uint16_t k = 0; k < count; k++) op->reshape_shape[k] = v[k];
            break;
        }
        *seen |= spec->bit;
        return DDQ_OK;
    }
    return DDQ_OK; /* unknown keys are allowed by the format */
}

static ddq_status parse_ops(reader *r) {
    const uint8_t *base = sec(r, SEC_OPS);
    uint64_t length = sec_len(r, SEC_OPS);
    if (length < 8)
        return FAIL(r, DDQ_ERR_FORMAT, "%s: section OPS: %llu bytes, too short for its 8-byte preamble", SRC(r),
                    (unsigned long long)length);
    uint32_t count = rd32(base), reserved = rd32(base + 4);
    if (reserved)
        return FAIL(r, DDQ_ERR_FORMAT, "%s: section OPS: reserved field is %u, expected 0", SRC(r), reserved);
    if (count > (length - 8) / OP_RECORD_FIXED_SIZE)
        return FAIL(r, DDQ_ERR_FORMAT, "%s: section OPS: %u ops cannot fit in %llu bytes", SRC(r), count,
                    (unsigned long long)length);
    r->model->ops = calloc(count ? count : 1, sizeof(ddq_op));
    if (!r->model->ops) return FAIL(r, DDQ_ERR_NOMEM, "%s: out of memory for %u ops", SRC(r), count);
    r->model->op_count = count;
    uint64_t pos = 8;
    for (uint32_t i = 0; i < count; i++) {
        ddq_op *op = &r->model->ops[i];
        char where[192];
        snprintf(where, sizeof where, "section OPS, op #%u", i);
        if (pos + OP_RECORD_FIXED_SIZE > length)
            return FAIL(r, DDQ_ERR_FORMAT, "%s: %s: record at byte %llu runs past the end of the section (%llu "
                        "bytes)", SRC(r), where, (unsigned long long)pos, (unsigned long long)length);
        const uint8_t *rec = base + pos;
        uint32_t size = rd32(rec), name_ref = rd32(rec + 4);
        uint16_t kind = rd16(rec + 8), n_attrs = rd16(rec + 12), op_reserved = rd16(rec + 14);
        uint8_t n_in = rec[10], n_out = rec[11];
        if (size < OP_RECORD_FIXED_SIZE || size % 4 || size > length - pos)
            return FAIL(r, DDQ_ERR_FORMAT, "%s: %s: record size %u must be a multiple of 4, >= %u and within "
                        "the section (%llu bytes left)", SRC(r), where, size, OP_RECORD_FIXED_SIZE,
                        (unsigned long long)(length - pos));
        uint64_t end = pos + size;
        char name_where[224];
        snprintf(name_where, sizeof name_where, "%s: name", where);
        ddq_status st = string_at(r, name_ref, name_where, &op->name);
        if (st) return st;
        if (kind >= DDQ_OP_KIND_COUNT)
            return FAIL(r, DDQ_ERR_FORMAT, "%s: %s ('%.120s'): op kind code %u is unknown to this reader (known: "
                        "0..%d)", SRC(r), where, op->name, kind, DDQ_OP_KIND_COUNT - 1);
        op->kind = kind;
        snprintf(where, sizeof where, "section OPS, op #%u ('%.120s', %s)", i, op->name, ddq_op_kind_names[kind]);
        if (n_in != KIND_ARITY[kind][0] || n_out != KIND_ARITY[kind][1])
            return FAIL(r, DDQ_ERR_FORMAT, "%s: %s: %u input(s) and %u output(s), expected %u and %u", SRC(r),
                        where, n_in, n_out, KIND_ARITY[kind][0], KIND_ARITY[kind][1]);
        if (op_reserved)
            return FAIL(r, DDQ_ERR_FORMAT, "%s: %s: reserved field is %u, expected 0", SRC(r), where, op_reserved);
        uint64_t p = pos + OP_RECORD_FIXED_SIZE + 4ull * (n_in + n_out);
        if (p > end)
            return FAIL(r, DDQ_ERR_FORMAT, "%s: %s: record size %u cannot hold %u tensor references", SRC(r),
                        where, size, n_in + n_out);
        op->n_inputs = n_in;
        op->n_outputs = n_out;
        for (unsigned j = 0; j < (unsigned)(n_in + n_out); j++) {
            uint32_t ref = rd32(rec + OP_RECORD_FIXED_SIZE + 4 * j);
            if (ref >= r->model->tensor_count)
                return FAIL(r, DDQ_ERR_FORMAT, "%s: %s: %s %u refers to tensor #%u but the file has %u tensors",
                            SRC(r), where, j < n_in ? "input" : "output", j < n_in ? j : j - n_in, ref,
                            r->model->tensor_count);
            if (j < n_in) op->inputs[j] = ref;
            else op->output = ref;
        }
        uint32_t seen = 0;
        /* Ops of the converter carry at most 6 attributes; a cap keeps the uniqueness check small. */
        const char *keys[MAX_ATTRS];
        if (n_attrs > MAX_ATTRS)
            return FAIL(r, DDQ_ERR_UNSUPPORTED, "%s: %s: %u attributes; this runtime reads at most %d per op",
                        SRC(r), where, n_attrs, MAX_ATTRS);
        for (uint16_t k = 0; k < n_attrs; k++) {
            char what[512];
            snprintf(what, sizeof what, "%s, attribute #%u", where, k);
            if (p + ATTR_FIXED_SIZE > end)
                return FAIL(r, DDQ_ERR_FORMAT, "%s: %s: runs past the end of the op record", SRC(r), what);
            const uint8_t *a = base + p;
            const char *key;
            char key_where[640];
            snprintf(key_where, sizeof key_where, "%s: key", what);
            st = string_at(r, rd32(a), key_where, &key);
            if (st) return st;
            uint16_t type = rd16(a + 4), n_values = rd16(a + 6);
            snprintf(what, sizeof what, "%s, attribute '%.60s'", where, key);
            if (!key[0]) return FAIL(r, DDQ_ERR_FORMAT, "%s: %s: empty attribute name", SRC(r), what);
            for (uint16_t j = 0; j < k; j++)
                if (strcmp(keys[j], key) == 0)
                    return FAIL(r, DDQ_ERR_FORMAT, "%s: %s: duplicate attribute", SRC(r), what);
            keys[k] = key;
            if (type != ATTR_INT && type != ATTR_INT_LIST)
                return FAIL(r, DDQ_ERR_FORMAT, "%s: %s: value type %u, expected 0 (int) or 1 (int list)", SRC(r),
                            what, type);
            if (type == ATTR_INT && n_values != 1)
                return FAIL(r, DDQ_ERR_FORMAT, "%s: %s: an int attribute has count 1, got %u", SRC(r), what,
                            n_values);
            if (p + ATTR_FIXED_SIZE + 4ull * n_values > end)
                return FAIL(r, DDQ_ERR_FORMAT, "%s: %s: %u values run past the end of the op record", SRC(r),
                            what, n_values);
            st = store_attr(r, op, key, (attr_type)type, n_values, a + ATTR_FIXED_SIZE, where, &seen);
            if (st) return st;
            p += ATTR_FIXED_SIZE + 4ull * n_values;
        }
        if (p != end && !r->newer_minor)
            return FAIL(r, DDQ_ERR_FORMAT, "%s: %s: record size %u but its fields take %llu bytes", SRC(r), where,
                        size, (unsigned long long)(p - pos));
        uint32_t missing = KIND_ATTRS[kind] & ~seen;
        for (size_t a = 0; a < sizeof ATTRS / sizeof ATTRS[0]; a++)
            if (missing & ATTRS[a].bit)
                return FAIL(r, DDQ_ERR_GRAPH, "%s: %s: missing attribute '%s'", SRC(r), where, ATTRS[a].key);
        pos = end;
    }
    if (pos != length)
        return FAIL(r, DDQ_ERR_FORMAT, "%s: section OPS: %llu unexpected bytes after the last op", SRC(r),
                    (unsigned long long)(length - pos));
    return DDQ_OK;
}

/* ------------------------------------------------------------------ §11–12: IO, metadata */

static ddq_status parse_io(reader *r) {
    const uint8_t *base = sec(r, SEC_IO);
    uint64_t length = sec_len(r, SEC_IO);
    if (length < 8)
        return FAIL(r, DDQ_ERR_FORMAT, "%s: section IO: %llu bytes, too short for its 8-byte preamble", SRC(r),
                    (unsigned long long)length);
    uint32_t n_in = rd32(base), n_out = rd32(base + 4);
    if (length != 8 + 4ull * n_in + 4ull * n_out)
        return FAIL(r, DDQ_ERR_FORMAT, "%s: section IO: %u inputs and %u outputs need %llu bytes but the section "
                    "has %llu", SRC(r), n_in, n_out, (unsigned long long)(8 + 4ull * n_in + 4ull * n_out),
                    (unsigned long long)length);
    for (uint64_t j = 0; j < (uint64_t)n_in + n_out; j++) {
        uint32_t ref = rd32(base + 8 + 4 * j);
        if (ref >= r->model->tensor_count)
            return FAIL(r, DDQ_ERR_FORMAT, "%s: section IO: graph %s %llu refers to tensor #%u but the file has "
                        "%u tensors", SRC(r), j < n_in ? "input" : "output",
                        (unsigned long long)(j < n_in ? j : j - n_in), ref, r->model->tensor_count);
    }
    /* The runtime executes graphs with one input and one output (what the converter writes). */
    if (n_in != 1 || n_out != 1)
        return FAIL(r, DDQ_ERR_UNSUPPORTED, "%s: the graph has %u inputs and %u outputs; this runtime runs graphs "
                    "with exactly one of each", SRC(r), n_in, n_out);
    r->model->input = rd32(base + 8);
    r->model->output = rd32(base + 12);
    return DDQ_OK;
}

/* §9 of the format lets a runtime that does not parse JSON skip the metadata; we check what is
 * cheap and certain (UTF-8, an object's braces) and hand the text to callers unparsed. */
static ddq_status parse_metadata(reader *r) {
    const uint8_t *text = sec(r, SEC_METADATA);
    size_t length = (size_t)sec_len(r, SEC_METADATA);
    size_t bad = utf8_invalid_at(text, length);
    if (bad != length)
        return FAIL(r, DDQ_ERR_FORMAT, "%s: section METADATA: not valid UTF-8 (byte %zu)", SRC(r), bad);
    size_t first = 0, last = length;
    while (first < length && (text[first] == ' ' || text[first] == '\t' || text[first] == '\n' || text[first] == '\r'))
        first++;
    while (last > first && (text[last - 1] == ' ' || text[last - 1] == '\t' || text[last - 1] == '\n' ||
                            text[last - 1] == '\r'))
        last--;
    if (last - first < 2 || text[first] != '{' || text[last - 1] != '}')
        return FAIL(r, DDQ_ERR_FORMAT, "%s: section METADATA: expected a JSON object", SRC(r));
    r->model->metadata = malloc(length + 1);
    if (!r->model->metadata) return FAIL(r, DDQ_ERR_NOMEM, "%s: out of memory", SRC(r));
    memcpy(r->model->metadata, text, length);
    r->model->metadata[length] = 0;
    r->model->metadata_length = length;
    return DDQ_OK;
}

ddq_status ddq_read_bundle(ddq_model *model, ddq_error *error) {
    reader r = {.model = model, .buf = model->bytes, .size = model->size, .error = error};
    ddq_status st = parse_container(&r);
    if (!st) st = parse_tensors(&r);
    if (!st) st = parse_ops(&r);
    if (!st) st = parse_io(&r);
    if (!st) st = parse_metadata(&r);
    return st;
}
