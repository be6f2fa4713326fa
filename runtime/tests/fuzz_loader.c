/* libFuzzer harness for the bundle loader: any byte string must load cleanly or fail cleanly.
 *
 * Every input is tried twice: as it is (the checksum and container checks), and with its
 * section and header CRC32s recomputed, so mutations reach the record parsers, the graph
 * checks and — for inputs that load — the memory planner of a session and the per-op
 * preparation of the `generic` kernel set and (on x86-64 CPUs with AVX2, AVX-VNNI) the `x86`
 * and `x86vnni` sets. Seeds are valid bundles (tests/test_runtime_builds.py writes them);
 * crashes found are kept in runtime/tests/fuzz_regressions/ and replayed by the tests.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "crc32.h"
#include "ddq/ddq.h"

static uint32_t rd32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static uint64_t rd64(const uint8_t *p) { return (uint64_t)rd32(p) | (uint64_t)rd32(p + 4) << 32; }
static void wr32(uint8_t *p, uint32_t v) {
    for (int k = 0; k < 4; k++) p[k] = (uint8_t)(v >> (8 * k));
}

/* Rewrites the CRCs of a container whose header and table are in bounds; 0 if it cannot. */
static int fix_checksums(uint8_t *b, size_t n) {
    if (n < 32) return 0;
    uint64_t header_size = rd32(b + 12), count = rd32(b + 24);
    if (count > 64 || header_size < 32 || header_size + 24 * count > n) return 0;
    for (uint64_t i = 0; i < count; i++) {
        uint8_t *e = b + header_size + 24 * i;
        uint64_t offset = rd64(e + 8), length = rd64(e + 16);
        if (offset <= n && length <= n - offset) wr32(e + 4, ddq_crc32(0, b + offset, (size_t)length));
    }
    uint32_t crc = ddq_crc32(ddq_crc32(0, b, 28), b + 32, (size_t)(header_size + 24 * count - 32));
    wr32(b + 28, crc);
    return 1;
}

static void load(const uint8_t *data, size_t size) {
    ddq_model *model = NULL;
    ddq_error error;
    if (ddq_model_load_memory(data, size, "fuzz", &model, &error) != DDQ_OK) return;
    /* the planner, and the fast sets' per-op preparation (packed weights, plans, scratch sizes);
     * a set this build or CPU lacks fails cleanly */
    static const char *const kernel_sets[] = {"reference", "generic", "x86", "x86vnni"};
    for (size_t k = 0; k < sizeof kernel_sets / sizeof kernel_sets[0]; k++) {
        ddq_session *session = NULL;
        ddq_session_options options = ddq_session_default_options();
        options.kernels = kernel_sets[k];
        if (ddq_session_create(model, &options, &session, &error) == DDQ_OK) ddq_session_free(session);
    }
    ddq_model_free(model);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    load(data, size);
    uint8_t *copy = malloc(size ? size : 1);
    if (!copy) return 0;
    memcpy(copy, data, size);
    if (fix_checksums(copy, size)) load(copy, size);
    free(copy);
    return 0;
}
