/* The one place that maps CPU features to kernel sets.
 *
 * Features come from the kernel's auxiliary vector on Linux/aarch64 (getauxval(AT_HWCAP):
 * the hardware capability bits, which QEMU's -cpu model sets faithfully) and from cpuid on
 * x86. Sets are listed best first; a session takes the first available one unless the caller
 * or the DDQ_KERNELS environment variable names a set (tests force "reference" that way).
 */
#include "dispatch.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"

#if (defined(__x86_64__) || defined(__i386__)) && defined(__GNUC__)
#include <cpuid.h>
#endif
#if defined(__aarch64__) && defined(__linux__)
#include <sys/auxv.h>
#define HWCAP_BIT_ASIMD (1ul << 1)
#define HWCAP_BIT_ASIMDHP (1ul << 10)
#define HWCAP_BIT_ASIMDDP (1ul << 20)
#define HWCAP2_BIT_I8MM (1ul << 13)
#endif

/* Best first: neondot and neon (aarch64 builds) or x86vnni and x86 (x86-64 builds, AVX2), generic
 * (portable C, vectorized by the compiler), reference. */
static const ddq_kernel_set *const KERNEL_SETS[] = {
#if defined(DDQ_HAVE_NEONDOT_KERNELS)
    &ddq_kernels_neondot,
#endif
#if defined(DDQ_HAVE_NEON_KERNELS)
    &ddq_kernels_neon,
#endif
#if defined(DDQ_HAVE_X86VNNI_KERNELS)
    &ddq_kernels_x86vnni,
#endif
#if defined(DDQ_HAVE_X86_KERNELS)
    &ddq_kernels_x86,
#endif
    &ddq_kernels_generic,
    &ddq_kernels_reference,
};
#define KERNEL_SET_COUNT (sizeof KERNEL_SETS / sizeof KERNEL_SETS[0])

static char features[128];
static pthread_once_t features_once = PTHREAD_ONCE_INIT;

static void append(const char *name) {
    size_t used = strlen(features);
    snprintf(features + used, sizeof features - used, used ? " %s" : "%s", name);
}

static void detect_features(void) {
#if defined(__aarch64__) && defined(__linux__)
    unsigned long hwcap = getauxval(AT_HWCAP), hwcap2 = getauxval(AT_HWCAP2);
    if (hwcap & HWCAP_BIT_ASIMD) append("asimd");
    if (hwcap & HWCAP_BIT_ASIMDHP) append("asimdhp");
    if (hwcap & HWCAP_BIT_ASIMDDP) append("asimddp");
    if (hwcap2 & HWCAP2_BIT_I8MM) append("i8mm");
#elif (defined(__x86_64__) || defined(__i386__)) && defined(__GNUC__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("sse4.1")) append("sse4.1");
    if (__builtin_cpu_supports("avx2")) append("avx2");
    if (__builtin_cpu_supports("avx512bw")) append("avx512bw");
    /* AVX-VNNI: cpuid leaf 7, subleaf 1, EAX bit 4 (compilers' __builtin_cpu_supports do not all
     * know it); its VEX instructions use the YMM state that the AVX2 test above checks */
    unsigned a, b, c, d;
    if (__builtin_cpu_supports("avx2") && __get_cpuid_count(7, 1, &a, &b, &c, &d) && (a >> 4 & 1)) append("avxvnni");
#endif
    if (!features[0]) append("none");
}

int ddq_cpu_has(const char *feature) {
    const size_t n = strlen(feature);
    for (const char *f = ddq_cpu_features(); (f = strstr(f, feature)) != NULL; f += n)
        if ((f == features || f[-1] == ' ') && (f[n] == ' ' || f[n] == '\0')) return 1;
    return 0;
}

const char *ddq_cpu_features(void) {
    pthread_once(&features_once, detect_features);
    return features;
}

ddq_status ddq_select_kernels(const char *requested, const ddq_kernel_set **out, ddq_error *error) {
    ddq_cpu_features();
    if (!requested || !requested[0]) requested = getenv("DDQ_KERNELS");
    if (!requested || !requested[0]) {
        for (size_t i = 0; i < KERNEL_SET_COUNT; i++)
            if (KERNEL_SETS[i]->available()) {
                *out = KERNEL_SETS[i];
                return DDQ_OK;
            }
        return ddq_fail(error, DDQ_ERR_UNSUPPORTED, "no kernel set runs on this CPU (%s)", features);
    }
    for (size_t i = 0; i < KERNEL_SET_COUNT; i++) {
        if (strcmp(KERNEL_SETS[i]->name, requested) != 0) continue;
        if (!KERNEL_SETS[i]->available())
            return ddq_fail(error, DDQ_ERR_UNSUPPORTED, "kernel set '%s' does not run on this CPU (%s)", requested,
                            features);
        *out = KERNEL_SETS[i];
        return DDQ_OK;
    }
    char known[128] = "";
    for (size_t i = 0; i < KERNEL_SET_COUNT; i++) {
        size_t used = strlen(known);
        snprintf(known + used, sizeof known - used, i ? ", %s" : "%s", KERNEL_SETS[i]->name);
    }
    return ddq_fail(error, DDQ_ERR_ARGUMENT, "unknown kernel set '%s' (known: %s)", requested, known);
}
