"""ddq_edge.emulation: the counting plugin's instruction classes (decoder table and executed
asm blocks), per-thread counting, determinism, the marker protocol, and the cached lab.

The plugin tests need only qemu-user, the aarch64 cross gcc and the host cc (a missing tool
skips them, or fails them under DDQ_REQUIRE_TOOLCHAINS=1 as in `make test`). Tests that run the
emulated CPython need the lab (~700 MB, downloaded by `ddq-edge emulator setup`): they run only
when it is set up and DDQ_TEST_EMULATOR=1.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import textwrap
from pathlib import Path

import pytest

from ddq_edge import emulation
from ddq_edge.emulation import CLASSES, MARK_MAGIC, Lab, subtract

PLUGIN_SOURCE = Path(emulation.__file__).parent / "insn_count_plugin.c"
N = 1000  # loop trip count of every asm block below


def need(*tools: str) -> None:
    missing = [t for t in tools if shutil.which(t) is None]
    if "aarch64-linux-gnu-gcc" in tools and not Path("/usr/aarch64-linux-gnu/lib/libc.a").exists():
        missing.append("libc6-dev-arm64-cross")
    if missing:
        message = (f"missing tools: {', '.join(missing)} "
                   "(scripts/install-toolchains.sh installs them)")
        if os.environ.get("DDQ_REQUIRE_TOOLCHAINS") == "1":
            pytest.fail(message)
        pytest.skip(message)


def counts(**nonzero: int) -> dict[str, int]:
    unknown = set(nonzero) - set(CLASSES)
    assert not unknown, unknown
    return {name: nonzero.get(name, 0) for name in CLASSES}


# --------------------------------------------------------------------------- decoder table
# Each line is assembled (with every extension the assembler knows, so encodings the modelled
# cores lack are decoded too) and classified by the plugin's own classify(), compiled into a
# host harness: the table covers far more than can be executed on cortex-a53/a72/a76.

DECODER_TABLE: dict[str, list[str]] = {
    "branch": ["b .", "bl .", "b.ne .", "cbz x0, .", "cbnz w1, .", "tbz x0, #3, .",
               "tbnz w0, #0, .", "br x1", "blr x2", "ret", "braa x1, x2", "retaa"],
    "int_alu": ["add x0, x1, x2", "adds w0, w1, #4", "sub x0, x1, x2, lsl #3",
                "add x0, sp, w1, uxtw", "and x0, x1, #0xff", "orr w0, w1, w2",
                "eor x0, x1, x2, ror #5", "mov x0, #1234", "movk x0, #1, lsl #16", "mov x0, #-1",
                "adr x0, .", "adrp x0, .", "lsl x0, x1, #3", "asr x0, x1, x2",
                "ubfx x0, x1, #4, #8",
                "sxtw x0, w1", "extr x0, x1, x2, #3", "csel x0, x1, x2, eq", "cset w0, ne",
                "ccmp x0, x1, #0, ne", "adc x0, x1, x2", "clz x0, x1", "rbit w0, w1", "rev x0, x1",
                "crc32cx w0, w1, x2", "cmp x0, #5", "tst x0, #1", "neg x0, x1", "mvn x0, x1",
                "mov x0, x1", "setf8 w0"],
    "int_mul": ["mul x0, x1, x2", "madd w0, w1, w2, w3", "msub x0, x1, x2, x3",
                "smull x0, w1, w2", "umull x0, w1, w2", "smulh x0, x1, x2", "umulh x0, x1, x2",
                "umaddl x0, w1, w2, x3", "mneg x0, x1, x2"],
    "int_div": ["sdiv x0, x1, x2", "udiv w0, w1, w2"],
    "load": ["ldr x0, [x1]", "ldr w0, [x1, #4]!", "ldr x0, [x1], #8", "ldrb w0, [x1, x2]",
             "ldrsh x0, [x1]", "ldrsw x0, [x1, #4]", "ldur x0, [x1, #-8]", "ldr x0, .",
             "ldrsw x0, .", "ldp x0, x1, [sp]", "ldpsw x0, x1, [x2]", "ldnp x0, x1, [x2]",
             "ldxr x0, [x1]", "ldaxr w0, [x1]", "ldar x0, [x1]", "ldxp x0, x1, [x2]",
             "prfm pldl1keep, [x0]", "prfm pldl1keep, .", "prfum pldl1keep, [x0, #1]",
             "ldtr x0, [x1]", "ldadd x0, x1, [x2]", "swp x0, x1, [x2]", "cas x0, x1, [x2]",
             "casp x0, x1, x2, x3, [x4]", "ldapr x0, [x1]", "ldapur x0, [x1]", "ldraa x0, [x1]",
             "ldg x0, [x1]", "ldlar x0, [x1]", "ldaddal w0, w1, [x2]"],
    "store": ["str x0, [x1]", "strb w0, [x1, #1]", "strh w0, [x1], #2", "stur x0, [x1, #-8]",
              "str x0, [x1, x2, lsl #3]", "stp x0, x1, [sp, #-16]!", "stnp x0, x1, [x2]",
              "stxr w3, x0, [x1]", "stlxr w3, x0, [x1]", "stlr x0, [x1]",
              "stxp w4, x0, x1, [x2]", "sttr x0, [x1]", "stadd x0, [x2]", "stlur x0, [x1]",
              "stg x0, [x1]", "stgp x0, x1, [x2]"],
    "fp_scalar": ["fadd d0, d1, d2", "fsub s0, s1, s2", "fmul d0, d1, d2", "fdiv s0, s1, s2",
                  "fmadd d0, d1, d2, d3", "fnmsub s0, s1, s2, s3", "fsqrt d0, d1", "fabs s0, s1",
                  "fneg d0, d1", "fcvt d0, s1", "fcvtzs w0, d1", "fcvtzs x0, s1, #4",
                  "scvtf d0, x1", "ucvtf s0, w1", "fmov d0, x1", "fmov w0, s1", "fmov d0, #1.0",
                  "fmov s0, s1", "fcmp d0, d1", "fcmp s0, #0.0", "fccmp d0, d1, #0, ne",
                  "fcsel d0, d1, d2, eq", "frintn d0, d1", "fmax d0, d1, d2", "fadd h0, h1, h2",
                  "fmov v0.d[1], x1"],
    "simd_alu": ["add v0.16b, v1.16b, v2.16b", "sub v0.4s, v1.4s, v2.4s",
                 "and v0.16b, v1.16b, v2.16b", "mov v0.16b, v1.16b", "bsl v0.16b, v1.16b, v2.16b",
                 "cmgt v0.4s, v1.4s, v2.4s", "cmeq v0.4s, v1.4s, #0", "smax v0.4s, v1.4s, v2.4s",
                 "umin v0.8h, v1.8h, v2.8h", "sabd v0.4s, v1.4s, v2.4s", "uaba v0.8h, v1.8h, v2.8h",
                 "addp v0.4s, v1.4s, v2.4s", "sqadd v0.16b, v1.16b, v2.16b",
                 "uqsub v0.8h, v1.8h, v2.8h", "sshl v0.4s, v1.4s, v2.4s", "ushr v0.4s, v1.4s, #3",
                 "shl v0.2d, v1.2d, #7", "sxtl v0.8h, v1.8b", "shrn v0.8b, v1.8h, #4",
                 "sqrshrn v0.4h, v1.4s, #8", "xtn v0.8b, v1.8h", "sqxtn v0.4h, v1.4s",
                 "saddl v0.8h, v1.8b, v2.8b", "uaddw v0.4s, v1.4s, v2.4h",
                 "addhn v0.8b, v1.8h, v2.8h", "abs v0.4s, v1.4s", "neg v0.4s, v1.4s",
                 "cnt v0.8b, v1.8b", "rev64 v0.4s, v1.4s", "not v0.16b, v1.16b", "addv s0, v1.4s",
                 "umaxv b0, v1.16b", "saddlv d0, v1.4s", "uzp1 v0.4s, v1.4s, v2.4s",
                 "zip2 v0.8h, v1.8h, v2.8h", "trn1 v0.16b, v1.16b, v2.16b",
                 "ext v0.16b, v1.16b, v2.16b, #3", "tbl v0.16b, {v1.16b}, v2.16b",
                 "tbx v0.8b, {v1.16b, v2.16b}, v3.8b", "dup v0.4s, w1", "dup v0.4s, v1.s[1]",
                 "ins v0.s[1], w1", "mov v0.s[1], v1.s[0]", "umov w0, v1.s[1]", "smov x0, v1.h[2]",
                 "movi v0.4s, #0", "mvni v0.8h, #1", "fmov v0.4s, #1.0", "orr v0.4s, #1",
                 "fcvtzs v0.4s, v1.4s", "scvtf v0.4s, v1.4s", "ucvtf v0.2d, v1.2d",
                 "fcvtn v0.4h, v1.4s", "fcvtl v0.4s, v1.4h", "scvtf v0.4s, v1.4s, #3",
                 "fcvtzu v0.4s, v1.4s, #3", "fcvtzs v0.8h, v1.8h", "add d0, d1, d2",
                 "cmge d0, d1, #0", "sqxtn s0, d1", "mov s0, v1.s[1]", "scvtf s0, s1",
                 "fcvtzs s0, s1", "aese v0.16b, v1.16b", "sha256h q0, q1, v2.4s", "sha1h s0, s1",
                 "eor3 v0.16b, v1.16b, v2.16b, v3.16b", "sha512h q0, q1, v2.2d",
                 "urecpe v0.4s, v1.4s"],
    "simd_mul": ["mul v0.4s, v1.4s, v2.4s", "mla v0.8h, v1.8h, v2.8h", "mls v0.4s, v1.4s, v2.4s",
                 "pmul v0.16b, v1.16b, v2.16b", "sqdmulh v0.4s, v1.4s, v2.4s",
                 "sqrdmulh v0.8h, v1.8h, v2.8h", "smull v0.8h, v1.8b, v2.8b",
                 "umull2 v0.4s, v1.8h, v2.8h", "smlal v0.4s, v1.4h, v2.4h",
                 "umlal2 v0.2d, v1.4s, v2.4s", "smlsl v0.8h, v1.8b, v2.8b",
                 "sqdmull v0.4s, v1.4h, v2.4h", "sqdmlal v0.2d, v1.2s, v2.2s",
                 "pmull v0.8h, v1.8b, v2.8b", "mul v0.4s, v1.4s, v2.s[1]",
                 "mla v0.8h, v1.8h, v2.h[3]", "smull v0.4s, v1.4h, v2.h[1]",
                 "umlal v0.2d, v1.2s, v2.s[3]", "sqdmulh v0.4s, v1.4s, v2.s[0]",
                 "sqrdmulh s0, s1, v2.s[1]", "sqdmulh s0, s1, s2", "sqdmull d0, s1, s2",
                 "sdot v0.4s, v1.16b, v2.16b", "udot v0.2s, v1.8b, v2.8b",
                 "sdot v0.4s, v1.16b, v2.4b[1]", "udot v0.4s, v1.16b, v2.4b[3]",
                 "usdot v0.4s, v1.16b, v2.16b", "usdot v0.4s, v1.16b, v2.4b[0]",
                 "sudot v0.4s, v1.16b, v2.4b[2]", "smmla v0.4s, v1.16b, v2.16b",
                 "ummla v0.4s, v1.16b, v2.16b", "sqrdmlah v0.4s, v1.4s, v2.4s",
                 "sqrdmlah v0.4s, v1.4s, v2.s[1]", "sqrdmlsh s0, s1, s2"],
    "simd_fp": ["fadd v0.4s, v1.4s, v2.4s", "fsub v0.2d, v1.2d, v2.2d", "fmul v0.4s, v1.4s, v2.4s",
                "fdiv v0.4s, v1.4s, v2.4s", "fmla v0.4s, v1.4s, v2.4s", "fmls v0.2d, v1.2d, v2.2d",
                "fmax v0.4s, v1.4s, v2.4s", "fminnm v0.4s, v1.4s, v2.4s",
                "faddp v0.4s, v1.4s, v2.4s", "fabd v0.4s, v1.4s, v2.4s",
                "fcmeq v0.4s, v1.4s, v2.4s", "fcmge v0.2d, v1.2d, v2.2d",
                "facgt v0.4s, v1.4s, v2.4s", "frecps v0.4s, v1.4s, v2.4s",
                "frsqrts v0.4s, v1.4s, v2.4s", "fmulx v0.4s, v1.4s, v2.4s",
                "fmla v0.4s, v1.4s, v2.s[1]", "fmul v0.2d, v1.2d, v2.d[1]",
                "fmulx v0.4s, v1.4s, v2.s[0]", "fmls v0.4s, v1.4s, v2.s[3]",
                "fmul s0, s1, v2.s[1]", "fabs v0.4s, v1.4s", "fneg v0.2d, v1.2d",
                "fsqrt v0.4s, v1.4s", "frecpe v0.4s, v1.4s", "frsqrte v0.2d, v1.2d",
                "frintn v0.4s, v1.4s", "frintz v0.2d, v1.2d", "fcmeq v0.4s, v1.4s, #0.0",
                "fcmlt v0.4s, v1.4s, #0.0", "fmaxv s0, v1.4s", "fminnmv s0, v1.4s",
                "faddp s0, v1.2s", "fmaxp d0, v1.2d", "fadd v0.8h, v1.8h, v2.8h",
                "fmla v0.8h, v1.8h, v2.h[1]", "fabs v0.8h, v1.8h", "frecpe v0.8h, v1.8h",
                "fcmla v0.4s, v1.4s, v2.4s, #90", "fcadd v0.4s, v1.4s, v2.4s, #90",
                "fcmla v0.4s, v1.4s, v2.s[1], #0", "fmlal v0.4s, v1.4h, v2.4h",
                "fmlal v0.4s, v1.4h, v2.h[1]", "fmlal2 v0.4s, v1.4h, v2.h[7]",
                "bfdot v0.4s, v1.8h, v2.8h", "bfdot v0.4s, v1.8h, v2.2h[1]",
                "bfmmla v0.4s, v1.8h, v2.8h", "bfmlalb v0.4s, v1.8h, v2.8h", "frecpe s0, s1",
                "fabd s0, s1, s2", "fcmgt s0, s1, #0.0", "frecpx d0, d1"],
    "simd_load": ["ld1 {v0.4s}, [x0]", "ld1 {v0.16b, v1.16b}, [x0], #32",
                  "ld2 {v0.4s, v1.4s}, [x0]", "ld3 {v0.8b, v1.8b, v2.8b}, [x0]",
                  "ld4 {v0.8h, v1.8h, v2.8h, v3.8h}, [x0]", "ld1 {v0.s}[1], [x0]",
                  "ld1r {v0.4s}, [x0]", "ld4r {v0.4s, v1.4s, v2.4s, v3.4s}, [x0], x1",
                  "ldr q0, [x0]", "ldr d0, [x0, #8]", "ldr s0, [x0], #4", "ldur q0, [x0, #-16]",
                  "ldr b0, [x0, x1]", "ldp q0, q1, [x0]", "ldp d0, d1, [x0], #16",
                  "ldnp q0, q1, [x0]", "ldr q0, .", "ldr d0, ."],
    "simd_store": ["st1 {v0.4s}, [x0]", "st1 {v0.16b, v1.16b, v2.16b, v3.16b}, [x0], #64",
                   "st2 {v0.4s, v1.4s}, [x0]", "st3 {v0.8b, v1.8b, v2.8b}, [x0]",
                   "st4 {v0.2d, v1.2d, v2.2d, v3.2d}, [x0]", "st1 {v0.s}[1], [x0]",
                   "str q0, [x0]", "str d0, [x0, #8]", "stur s0, [x0, #-4]", "str h0, [x0]",
                   "stp q0, q1, [sp, #-32]!", "stnp d0, d1, [x0]", "str b0, [x0, x1]"],
    "other": ["nop", "yield", "svc #0", "brk #1", "bti c", "dmb ish", "dsb sy", "isb",
              "mrs x0, tpidr_el0", "msr tpidr_el0, x0", "mrs x0, midr_el1", "msr nzcv, x0",
              "dc civac, x0", "ic ivau, x0", "udf #0", "paciasp", "autiasp", "clrex", "wfe",
              "add z0.s, z1.s, z2.s", ".inst 0x00000000"],
}
ASM_MARCH = ("-march=armv8.6-a+crypto+sha3+sm4+fp16+fp16fml+dotprod+i8mm+bf16+rcpc+memtag"
             "+pauth+sve")

DECODER_HARNESS = r"""
#include "@PLUGIN@"
/* stubs for the QEMU functions the plugin calls (never called here) */
void qemu_plugin_register_vcpu_tb_trans_cb(qemu_plugin_id_t id,
                                           qemu_plugin_vcpu_tb_trans_cb_t cb) {}
void qemu_plugin_register_vcpu_tb_exec_cb(struct qemu_plugin_tb *tb, qemu_plugin_vcpu_udata_cb_t cb,
                                          enum qemu_plugin_cb_flags f, void *u) {}
void qemu_plugin_register_vcpu_syscall_cb(qemu_plugin_id_t id, qemu_plugin_vcpu_syscall_cb_t cb) {}
void qemu_plugin_register_atexit_cb(qemu_plugin_id_t id, qemu_plugin_udata_cb_t cb, void *u) {}
size_t qemu_plugin_tb_n_insns(const struct qemu_plugin_tb *tb) { return 0; }
struct qemu_plugin_insn *qemu_plugin_tb_get_insn(const struct qemu_plugin_tb *tb, size_t i)
{ return 0; }
const void *qemu_plugin_insn_data(const struct qemu_plugin_insn *insn) { return 0; }
size_t qemu_plugin_insn_size(const struct qemu_plugin_insn *insn) { return 0; }
void qemu_plugin_outs(const char *s) {}
int main(int argc, char **argv)
{
    FILE *f = fopen(argv[1], "rb");
    uint32_t w;
    while (fread(&w, 4, 1, f) == 1) printf("%08x %s\n", w, class_names[classify(w)]);
    return 0;
}
"""


def test_decoder_table(tmp_path):
    need("cc", "aarch64-linux-gnu-gcc")
    lines = [(cls, insn) for cls, insns in DECODER_TABLE.items() for insn in insns]
    asm = tmp_path / "table.s"
    asm.write_text("".join(f"{insn}\n" for _, insn in lines))
    obj, binary = tmp_path / "table.o", tmp_path / "table.bin"
    subprocess.run(["aarch64-linux-gnu-gcc", ASM_MARCH, "-c", "-o", obj, asm], check=True)
    subprocess.run(["aarch64-linux-gnu-objcopy", "-O", "binary", "-j", ".text", obj, binary],
                   check=True)
    assert binary.stat().st_size == 4 * len(lines), "one 4-byte encoding per table line"
    harness = tmp_path / "harness.c"
    harness.write_text(DECODER_HARNESS.replace("@PLUGIN@", str(PLUGIN_SOURCE)))
    exe = tmp_path / "harness"
    subprocess.run(["cc", "-O1", "-Wall", "-Wno-unused-parameter", "-Wno-unused-function",
                    "-o", exe, harness, "-lpthread"], check=True)
    out = subprocess.run([exe, binary], capture_output=True, text=True, check=True).stdout
    wrong = [f"{insn!r} ({word}): {got}, expected {cls}"
             for (cls, insn), row in zip(lines, out.splitlines(), strict=True)
             for word, got in [row.split()] if got != cls]
    assert not wrong, "\n".join(wrong)


# --------------------------------------------------------------------------- executed blocks
# Every block runs its body N times between two marks made from inline asm (x8 = 62, x0 = -1,
# x1 = magic | k, svc), so the instructions between the marks are known exactly:
#   mov x9, #N; N x (body; subs; b.ne); mark: 5 moves + svc
# i.e. the empty block counts int_alu N + 6, branch N, other 1, and a block minus the empty one
# is exactly N x its body.

GUEST_C = r"""
#include <pthread.h>
#include <stdint.h>
#include <string.h>
#define STR_(x) #x
#define STR(x) STR_(x)
#define N 1000
#define MARK(k) "mov x8, #62\n\tmov x0, #-1\n\tmovz x1, #" STR(k) "\n\t" \
                "movk x1, #0xDD0E, lsl #32\n\tmov x2, #0\n\tsvc #0\n\t"
#define CLOBBERS "x0", "x1", "x2", "x8", "x9", "x10", "x11", "x12", "x13", "x14", \
                 "v0", "v1", "v2", "v3", "v4", "cc", "memory"
#define SETUP "mov x10, %0\n\tmov x11, #7\n\tmov x12, #3\n\tmov x13, #5\n\t" \
              "ldr q1, [x10, #64]\n\tldr q2, [x10, #80]\n\tfmov d4, #1.0\n\tmovi v0.16b, #0\n\t"
#define BLOCK(k, body) __asm__ volatile(SETUP MARK(k) "mov x9, #" STR(N) "\n1:\n\t" body \
                                        "\n\tsubs x9, x9, #1\n\tb.ne 1b\n\t" MARK(k + 1) \
                                        :: "r"(buf) : CLOBBERS)

static uint8_t buf[256] __attribute__((aligned(64)));
static pthread_barrier_t barrier;

#define LOOP_CLOBBERS "x0", "x1", "x2", "x8", "x9", "x11", "cc"

static void *worker(void *arg)
{
    long t = (long)arg, n = t == 0 ? 1000 : 3000;
    pthread_barrier_wait(&barrier);
    if (t == 0)
        __asm__ volatile(MARK(100) "mov x9, %0\n1:\n\tadd x11, x11, #1\n\tsubs x9, x9, #1\n\t"
                         "b.ne 1b\n\t" MARK(101) :: "r"(n) : LOOP_CLOBBERS);
    else
        __asm__ volatile(MARK(102) "mov x9, %0\n1:\n\tadd x11, x11, #1\n\tsubs x9, x9, #1\n\t"
                         "b.ne 1b\n\t" MARK(103) :: "r"(n) : LOOP_CLOBBERS);
    pthread_barrier_wait(&barrier); /* both alive until both are done: two vCPU indices */
    return 0;
}

int main(int argc, char **argv)
{
    const char *mode = argc > 1 ? argv[1] : "classes";
    for (int i = 0; i < 256; i++) buf[i] = (uint8_t)(i * 37 + 1);
    if (strcmp(mode, "threads") == 0) {
        pthread_t th[2];
        __asm__ volatile(MARK(1) ::: "x0", "x1", "x2", "x8", "memory");
        pthread_barrier_init(&barrier, 0, 2);
        for (long t = 0; t < 2; t++) pthread_create(&th[t], 0, worker, (void *)t);
        for (int t = 0; t < 2; t++) pthread_join(th[t], 0);
        return 0;
    }
    BLOCK(2, "");
    BLOCK(4, "add x11, x11, x12");
    BLOCK(6, "mul x11, x11, x12");
    BLOCK(8, "sdiv x11, x11, x12");
    BLOCK(10, "ldr x13, [x10]");
    BLOCK(12, "str x11, [x10, #32]");
    BLOCK(14, "b 2f\n2:");
    BLOCK(16, "fadd d0, d0, d4");
    BLOCK(18, "fadd v0.4s, v0.4s, v1.4s");
    BLOCK(20, "mul v0.4s, v0.4s, v1.4s");
    BLOCK(22, "add v0.16b, v0.16b, v1.16b");
    BLOCK(24, "ld1 {v3.4s}, [x10]");
    BLOCK(26, "st1 {v0.4s}, [x10]");
    BLOCK(28, "ldp x13, x14, [x10]\n\tstp x13, x14, [x10, #96]\n\tfmla v0.4s, v1.4s, v2.s[1]\n\t"
              "smull v3.8h, v1.8b, v2.8b\n\tdup v3.4s, w11\n\tumov w13, v1.s[0]\n\t"
              "udiv x13, x11, x12\n\tmadd x13, x11, x12, x13\n\tnop\n\tcbz x12, 3f\n3:\n\t"
              "ldr q3, [x10, #64]\n\tstr q0, [x10, #128]\n\tfcvtzs v3.4s, v1.4s\n\t"
              "scvtf d3, x11\n\ttbl v3.16b, {v1.16b}, v2.16b\n\taddv s3, v1.4s\n\t"
              "fmaxv s3, v1.4s\n\tsqrdmulh v3.4s, v1.4s, v2.4s\n\tld1r {v3.4s}, [x10]\n\t"
              "st1 {v0.s}[1], [x10]\n\tld2 {v3.4s, v4.4s}, [x10]\n\tprfm pldl1keep, [x10]\n\t"
              "mrs x14, tpidr_el0");
    if (strcmp(mode, "classes+dot") == 0)
        BLOCK(30, ".inst 0x4e829420"); /* sdot v0.4s, v1.16b, v2.16b */
    return 0;
}
"""

BLOCKS: dict[int, dict[str, int]] = {
    4: counts(int_alu=1), 6: counts(int_mul=1), 8: counts(int_div=1), 10: counts(load=1),
    12: counts(store=1), 14: counts(branch=1), 16: counts(fp_scalar=1), 18: counts(simd_fp=1),
    20: counts(simd_mul=1), 22: counts(simd_alu=1), 24: counts(simd_load=1),
    26: counts(simd_store=1),
    28: counts(load=2, store=1, simd_fp=2, simd_mul=2, simd_alu=5, int_div=1, int_mul=1,
               other=2, branch=1, simd_load=3, simd_store=2, fp_scalar=1),
}
EMPTY_BLOCK = counts(int_alu=N + 6, branch=N, other=1)


@pytest.fixture(scope="module")
def guest(tmp_path_factory) -> Path:
    need("aarch64-linux-gnu-gcc")
    folder = tmp_path_factory.mktemp("guest")
    src = folder / "guest.c"
    src.write_text(GUEST_C)
    exe = folder / "guest"
    subprocess.run(["aarch64-linux-gnu-gcc", "-O1", "-static", "-pthread", "-o", exe, src],
                   check=True)
    return exe


@pytest.fixture(scope="module")
def lab(tmp_path_factory) -> Lab:
    """A private, download-free lab: plugin and core roots only (enough for static binaries)."""
    need("qemu-aarch64", "cc")
    return Lab(tmp_path_factory.mktemp("emulab"))


@pytest.mark.parametrize("core", ["a53", "a72", "a76"])
def test_each_class_counts_exactly(lab, guest, core, tmp_path):
    mode = "classes+dot" if core == "a76" else "classes"
    run = lab.run_counted(core, [guest, mode], cwd=tmp_path).check()
    assert [m.id for m in run.marks] == list(range(2, 30 + (2 if core == "a76" else 0)))
    assert len({m.vcpu for m in run.marks}) == 1
    empty = run.between(2, 3)
    assert empty == EMPTY_BLOCK
    expected = dict(BLOCKS)
    if core == "a76":
        expected[30] = counts(simd_mul=1)
    for k, body in expected.items():
        got = subtract(run.between(k, k + 1), empty)
        assert got == {name: N * n for name, n in body.items()}, f"block {k}"
    assert run.instructions == sum(run.totals.values()) > run.marks[-1].instructions


def test_dot_product_traps_on_cortex_a72_and_counts_survive(lab, guest, tmp_path):
    run = lab.run_counted("a72", [guest, "classes+dot"], cwd=tmp_path)
    assert run.returncode == -4  # SIGILL: QEMU's cortex-a72 has no FEAT_DotProd
    assert [m.id for m in run.marks] == list(range(2, 31))  # marks are written as they are made


def test_counts_per_thread(lab, guest, tmp_path):
    run = lab.run_counted("a72", [guest, "threads"], cwd=tmp_path).check()
    main = run.mark(1).vcpu
    first, second = run.mark(100).vcpu, run.mark(102).vcpu
    assert len({main, first, second}) == 3
    for a, n in ((100, 1000), (102, 3000)):
        assert run.between(a, a + 1) == counts(int_alu=2 * n + 6, branch=n, other=1)
    assert {main, first, second} <= set(run.exits)
    for vcpu in (first, second):  # each thread's own row holds at least its loop
        assert run.exits[vcpu]["int_alu"] >= 2 * 1000


def test_counts_are_deterministic(lab, guest, tmp_path):
    a = lab.run_counted("a53", [guest, "classes"], cwd=tmp_path)
    b = lab.run_counted("a53", [guest, "classes"], cwd=tmp_path)
    assert a.marks == b.marks and a.exits == b.exits
    # With threads, what a thread counts while it synchronizes (barrier, futex, join) depends on
    # timing, and so does the order of marks from different threads: a section between two marks
    # of one thread that does not synchronize is still exact.
    t1 = lab.run_counted("a76", [guest, "threads"], cwd=tmp_path)
    t2 = lab.run_counted("a76", [guest, "threads"], cwd=tmp_path)
    assert sorted(m.id for m in t1.marks) == sorted(m.id for m in t2.marks)
    for a in (100, 102):
        assert t1.between(a, a + 1) == t2.between(a, a + 1)


def test_plain_run_and_fake_cpuinfo(lab, tmp_path):
    need("aarch64-linux-gnu-gcc")
    src = tmp_path / "cpuinfo.c"
    src.write_text(textwrap.dedent("""\
        #include <stdio.h>
        int main(void) { char line[256]; FILE *f = fopen("/proc/cpuinfo", "r");
          while (f && fgets(line, sizeof line, f)) fputs(line, stdout); return 0; }
    """))
    exe = tmp_path / "cpuinfo"
    subprocess.run(["aarch64-linux-gnu-gcc", "-O1", "-static", "-o", exe, src], check=True)
    for core, part in (("a53", "0xd03"), ("a72", "0xd08"), ("a76", "0xd0b")):
        run = lab.run_plain(core, [exe]).check()
        assert f"CPU part\t: {part}" in run.stdout and run.wall_s > 0
        assert ("asimddp" in run.stdout) == (core == "a76")


def test_plugin_rejects_unknown_arguments(lab, guest):
    qemu = shutil.which("qemu-aarch64")
    result = subprocess.run([qemu, "-plugin", f"{lab.plugin()},bogus=1", guest],
                            capture_output=True, text=True)
    assert result.returncode != 0


def test_missing_tools_name_the_apt_packages(monkeypatch):
    from ddq_edge.emulation import lab as lab_module
    monkeypatch.setitem(lab_module._TOOL_CHECKS, "qemu-aarch64", (lambda: False, "qemu-user"))
    with pytest.raises(emulation.EmulatorUnavailable) as info:
        lab_module.check_tools("run")
    assert "apt-get install -y qemu-user" in str(info.value)
    assert info.value.install_line.endswith("apt-get install -y qemu-user")


def test_cache_location(monkeypatch, tmp_path):
    monkeypatch.setenv("DDQ_EDGE_CACHE", str(tmp_path / "c"))
    assert Lab().dir == (tmp_path / "c").resolve() / f"lab-v{emulation.LAB_VERSION}"
    monkeypatch.delenv("DDQ_EDGE_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "x"))
    assert emulation.default_cache_base() == tmp_path / "x" / "ddq-edge" / "emulator"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert emulation.default_cache_base() == Path.home() / ".cache" / "ddq-edge" / "emulator"


# --------------------------------------------------------------------------- the full lab

def _full_lab() -> Lab:
    if os.environ.get("DDQ_TEST_EMULATOR") != "1":
        pytest.skip("set DDQ_TEST_EMULATOR=1 to run the emulated-Python tests "
                    "(after `ddq-edge emulator setup`)")
    full = Lab()
    if not full.is_ready():
        pytest.skip(f"the emulator lab is not set up in {full.dir} (ddq-edge emulator setup)")
    return full


# The marker as the profiler's harness sets it, inlined: the harness imports numpy first.
PY_MARKS = textwrap.dedent(f"""\
    import os
    def ddq_mark(k):
        try:
            os.lseek(-1, ({MARK_MAGIC} << 32) | k, 0)
        except OSError:
            pass
    ddq_mark(1)
    import numpy
    ddq_mark(2)
    print(numpy.__version__)
""")


def test_python_marks_are_deterministic():
    full = _full_lab()
    a = full.run_counted("a72", ["python", "-c", PY_MARKS], site="ort").check()
    b = full.run_counted("a72", ["python", "-c", PY_MARKS], site="ort").check()
    assert [m.id for m in a.marks] == [1, 2]  # os.lseek(-1, ...) reached the kernel (QEMU)
    assert a.between(1, 2) == b.between(1, 2) and a.exits == b.exits
    assert sum(a.between(1, 2).values()) > 1_000_000
    assert a.stdout.strip() == full.status().sites["ort"]["numpy"]


@pytest.mark.parametrize("site, module", [("ort", "onnxruntime"), ("litert", "ai_edge_litert")])
def test_sites_import_on_every_core(site, module):
    full = _full_lab()
    for core in ("a53", "a76"):
        run = full.run_plain(core, ["python", "-c", f"import {module}; print('ok')"], site=site)
        assert run.check().stdout.strip() == "ok", run.stderr


def test_ddq_run_under_the_counter():
    full = _full_lab()
    bundle = Path(__file__).parent / "data" / "demo-mnv2-ddq4.ddqb"
    run = full.run_counted("a53", ["ddq-run", bundle, "--info"]).check()
    assert "arena" in run.stdout and run.instructions > 0
