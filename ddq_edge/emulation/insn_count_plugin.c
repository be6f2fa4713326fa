/*
 * insn_count_plugin.c - ddq-edge's QEMU TCG plugin (plugin API v1, QEMU 7.2, linux-user).
 *
 * Counts retired AArch64 guest instructions per guest thread (qemu-user gives every guest
 * thread its own vCPU index) and per instruction class, and lets the guest snapshot its own
 * thread's counts at marks.
 *
 *   build:  cc -shared -fPIC -O2 -o insn_count.so insn_count_plugin.c   (no QEMU headers)
 *   use:    qemu-aarch64 -cpu cortex-a72 -plugin ./insn_count.so,out=/tmp/counts.jsonl ./prog
 *
 * Counting. Every instruction is classified once, when QEMU translates its translation block
 * (TB); the TB gets a compact (class, count) list and one exec callback that adds the list to
 * the executing vCPU's own counter row. A row is written only by its own thread (no atomics,
 * no races; rows are 128-byte aligned so threads do not share cache lines). Like any per-TB
 * count, a TB is counted whole when it starts: an instruction that faults in the middle of a
 * TB (a guest SIGSEGV that the guest handles) over-counts the rest of that TB. A TB ending in
 * SVC is counted (including the SVC) before the system call runs.
 *
 * Marks. A guest thread records a mark with the system call lseek (number 62 on aarch64) on
 * fd -1 and an offset (0xDD0E << 32) | id; the kernel (here: QEMU) answers EBADF, so the call
 * is harmless on a real board too. The plugin matches the low 32 bits of x0 against 0xFFFFFFFF
 * (the kernel reads fd as an unsigned int; C code that passes an int -1 through syscall() may
 * leave the upper half of x0 unspecified) and stores (id, vcpu, that vcpu's current counts).
 *   Python: try: os.lseek(-1, (0xDD0E << 32) | k, 0)  except OSError: pass
 *   C:      syscall(SYS_lseek, (long)-1, (long)((0xDD0EUL << 32) | k), 0L);
 *
 * Output (argument out=PATH; without it the same lines go to QEMU's log, "-d plugin"): JSON
 * lines, one per mark in the order they were made, written (and flushed) as the mark is made,
 *   {"mark": k, "vcpu": v, "counts": {"branch": n, ..., "other": n}}
 * then at exit one per vCPU that executed anything,
 *   {"exit": true, "vcpu": v, "counts": {...}}
 * qemu-user reuses the index of a thread that has exited for a later thread, so an exit row is
 * the sum over the threads that held that index. QEMU 7.2 runs no plugin exit hook when the
 * guest dies of a signal (SIGILL, SIGSEGV...): the marks made until then are in the file, the
 * exit rows are not. A process forked by the guest inherits the plugin; only the original
 * process records marks and writes exit rows.
 */
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- The part of QEMU 7.2's qemu-plugin.h (API version 1) that this plugin uses. ---------- */
typedef uint64_t qemu_plugin_id_t;
struct qemu_plugin_tb;
struct qemu_plugin_insn;
typedef struct qemu_info_t {
    const char *target_name; /* first member in every version of the API; nothing else read */
} qemu_info_t;
enum qemu_plugin_cb_flags { QEMU_PLUGIN_CB_NO_REGS, QEMU_PLUGIN_CB_R_REGS, QEMU_PLUGIN_CB_RW_REGS };
typedef void (*qemu_plugin_vcpu_udata_cb_t)(unsigned int vcpu_index, void *userdata);
typedef void (*qemu_plugin_udata_cb_t)(qemu_plugin_id_t id, void *userdata);
typedef void (*qemu_plugin_vcpu_tb_trans_cb_t)(qemu_plugin_id_t id, struct qemu_plugin_tb *tb);
typedef void (*qemu_plugin_vcpu_syscall_cb_t)(qemu_plugin_id_t id, unsigned int vcpu_index,
                                              int64_t num, uint64_t a1, uint64_t a2, uint64_t a3,
                                              uint64_t a4, uint64_t a5, uint64_t a6, uint64_t a7,
                                              uint64_t a8);
void qemu_plugin_register_vcpu_tb_trans_cb(qemu_plugin_id_t id, qemu_plugin_vcpu_tb_trans_cb_t cb);
void qemu_plugin_register_vcpu_tb_exec_cb(struct qemu_plugin_tb *tb, qemu_plugin_vcpu_udata_cb_t cb,
                                          enum qemu_plugin_cb_flags flags, void *userdata);
void qemu_plugin_register_vcpu_syscall_cb(qemu_plugin_id_t id, qemu_plugin_vcpu_syscall_cb_t cb);
void qemu_plugin_register_atexit_cb(qemu_plugin_id_t id, qemu_plugin_udata_cb_t cb, void *userdata);
size_t qemu_plugin_tb_n_insns(const struct qemu_plugin_tb *tb);
struct qemu_plugin_insn *qemu_plugin_tb_get_insn(const struct qemu_plugin_tb *tb, size_t idx);
const void *qemu_plugin_insn_data(const struct qemu_plugin_insn *insn);
size_t qemu_plugin_insn_size(const struct qemu_plugin_insn *insn);
void qemu_plugin_outs(const char *string);

#define EXPORT __attribute__((visibility("default")))
EXPORT int qemu_plugin_version = 1;

/* ---- Instruction classes (names and order are part of the output format). ------------------ */
enum insn_class {
    C_BRANCH, C_INT_ALU, C_INT_MUL, C_INT_DIV, C_LOAD, C_STORE, C_FP_SCALAR,
    C_SIMD_ALU, C_SIMD_MUL, C_SIMD_FP, C_SIMD_LOAD, C_SIMD_STORE, C_OTHER, N_CLASSES
};
static const char *const class_names[N_CLASSES] = {
    "branch", "int_alu", "int_mul", "int_div", "load", "store", "fp_scalar",
    "simd_alu", "simd_mul", "simd_fp", "simd_load", "simd_store", "other",
};

#define MARK_SYSCALL 62u          /* lseek on aarch64 */
#define MARK_MAGIC 0xDD0Eu        /* bits 63:32 of the lseek offset */
#define MAX_VCPUS 1024            /* index >= this shares the last row (would then race) */

/* bits hi..lo of w, hi >= lo */
#define BITS(w, hi, lo) (((w) >> (lo)) & ((1u << ((hi) - (lo) + 1)) - 1u))
#define BIT(w, n) (((w) >> (n)) & 1u)

/* ---- The decoder. Bit positions follow the Arm ARM (DDI 0487), "A64 instruction set
 * encoding": the top-level group is op0 = bits 28:25. Each function names the fields it reads. */

/* Branches, exception generating and system instructions: op0 = 101x (bits 28:26 = 101).
 *   bits 30:29 = 00          B, BL (unconditional immediate)              -> branch
 *   bits 30:29 = 01          CBZ/CBNZ (bit 25 = 0), TBZ/TBNZ (bit 25 = 1)  -> branch
 *   bits 31:29 = 010         B.cond, BC.cond                               -> branch
 *   bits 31:29 = 110, bit 25 = 1   BR, BLR, RET, ERET, BRAA... (branch register) -> branch
 *   bits 31:29 = 110, bit 25 = 0   SVC/HVC/BRK, hints (NOP, YIELD, BTI...), barriers
 *                            (DMB/DSB/ISB), PSTATE, SYS/SYSL, MRS/MSR       -> other
 *   anything else            unallocated                                   -> other */
static int classify_branch_sys(uint32_t w)
{
    uint32_t top = BITS(w, 31, 29);
    if (BITS(w, 30, 29) == 0 || BITS(w, 30, 29) == 1) return C_BRANCH;
    if (top == 2) return C_BRANCH;
    if (top == 6) return BIT(w, 25) ? C_BRANCH : C_OTHER;
    return C_OTHER;
}

/* Data processing - register: op0 = x101 (bits 27:25 = 101). Fields: bit 30, bit 28, bits 24:21,
 * bits 15:10.
 *   bit 28 = 0                        logical (shifted register), add/sub (shifted,
 *                                     extended)                                      -> int_alu
 *   bit 28 = 1, bits 24:21 = 1xxx     data-processing (3 source): MADD, MSUB, SMADDL, SMSUBL,
 *                                     UMADDL, UMSUBL, SMULH, UMULH (MUL/MNEG/SMULL/UMULL
 *                                     are aliases)                                   -> int_mul
 *   bit 28 = 1, bits 24:21 = 0110, bit 30 = 0 (data-processing, 2 source):
 *                                     opcode bits 15:10 = 00001x: UDIV, SDIV          -> int_div
 *                                     others: LSLV/LSRV/ASRV/RORV, CRC32*, PACGA...   -> int_alu
 *   bit 28 = 1, anything else         1 source (RBIT, REV, CLZ...), add/sub with carry,
 *                                     conditional compare/select, flag manipulation   -> int_alu */
static int classify_dp_reg(uint32_t w)
{
    if (!BIT(w, 28)) return C_INT_ALU;
    if (BIT(w, 24)) return C_INT_MUL;
    if (BITS(w, 24, 21) == 6 && !BIT(w, 30) && BITS(w, 15, 11) == 1) return C_INT_DIV;
    return C_INT_ALU;
}

/* Loads and stores: op0 = x1x0 (bit 27 = 1, bit 25 = 0). Bit 26 (V) selects SIMD&FP registers.
 * The sub-group is bits 29:27 (bit 27 is always 1 here), refined by bit 24, bit 21, bits 11:10.
 *   bits 29:27 = 001, V = 1   Advanced SIMD load/store multiple structures (bits 24:23 = 0x:
 *                             LD1-LD4/ST1-ST4) and single structure (1x: LD1-LD4 lane, LDnR);
 *                             L = bit 22                                   -> simd_load/simd_store
 *   bits 29:27 = 001, V = 0   exclusives and ordered (bit 24 = 0): o2 = bit 23, L = bit 22,
 *                             o1 = bit 21. o1 = 1 with o2 = 1 (CAS) or with bit 31 = 0 (CASP) is
 *                             a compare-and-swap -> load; otherwise LDXR/LDAXR/LDXP/LDAR/LDLAR
 *                             (L = 1) -> load, STXR/STLXR/STXP/STLR/STLLR (L = 0) -> store
 *   bits 29:27 = 011, bit 24 = 0   load register (literal): LDR, LDRSW, PRFM (literal)
 *                             -> load; V = 1: LDR (literal, SIMD&FP) -> simd_load
 *   bits 29:27 = 011, bit 24 = 1, V = 0: bit 21 = 1 (and bits 31:30 = 11): memory tags: LDG and
 *                             LDGM (bits 11:10 = 00 with opc = 01 or 11) -> load, STG... -> store;
 *                             bit 21 = 0, bits 11:10 = 00: LDAPUR and STLUR (RCpc unscaled): opc
 *                             (bits 23:22) = 00 -> store else load; other (CPY/SET...) -> other
 *   bits 29:27 = 101          load/store pair (no-allocate, post/pre-index, offset): L = bit 22;
 *                             V selects simd_* (LDP/STP Q, D, S) or load/store (LDP, LDPSW, STP,
 *                             STGP)
 *   bits 29:27 = 111          load/store register (immediate, unscaled, unprivileged, register
 *                             offset, unsigned offset, atomics, PAC):
 *       V = 1: store iff opc<0> (bit 22) = 0 (STR B/H/S/D/Q, STUR), else load (LDR, LDUR);
 *              bit 24 = 0, bit 21 = 1, bits 11:10 = 00 is unallocated -> other
 *       V = 0, bit 24 = 0, bit 21 = 1, bits 11:10 = 00: atomic memory operations (LDADD, LDCLR,
 *              LDEOR, LDSET, LD{S,U}{MAX,MIN}, SWP, LDAPR) -> load, except their ST<op> aliases
 *              (Rt = 31, A = bit 23 = 0, o3 = bit 15 = 0) -> store
 *       V = 0, bit 24 = 0, bit 21 = 1, bit 10 = 1: LDRAA/LDRAB -> load
 *       V = 0 otherwise: opc (bits 23:22) = 00 -> store (STR, STRB, STRH, STUR, STTR), else load
 *              (LDR*, LDRS*, PRFM/PRFUM: prefetches count as loads) */
static int classify_ldst(uint32_t w)
{
    uint32_t v = BIT(w, 26), l = BIT(w, 22), opc = BITS(w, 23, 22);
    switch (BITS(w, 29, 28)) {
    case 0: /* bits 29:27 = 001 */
        if (v) return BIT(w, 31) ? C_OTHER : (l ? C_SIMD_LOAD : C_SIMD_STORE);
        if (BIT(w, 24)) return C_OTHER;
        if (BIT(w, 21) && (BIT(w, 23) || !BIT(w, 31))) return C_LOAD; /* CAS, CASP */
        return l ? C_LOAD : C_STORE;
    case 1: /* bits 29:27 = 011 */
        if (!BIT(w, 24)) return v ? C_SIMD_LOAD : C_LOAD;
        if (v) return C_OTHER;
        if (BIT(w, 21)) {
            if (BITS(w, 11, 10) == 0 && (opc == 1 || opc == 3)) return C_LOAD; /* LDG, LDGM */
            return C_STORE;
        }
        if (BITS(w, 11, 10) == 0) return opc == 0 ? C_STORE : C_LOAD;
        return C_OTHER;
    case 2: /* bits 29:27 = 101 */
        if (v) return l ? C_SIMD_LOAD : C_SIMD_STORE;
        return l ? C_LOAD : C_STORE;
    default: /* bits 29:27 = 111 */
        if (!BIT(w, 24) && BIT(w, 21) && BITS(w, 11, 10) == 0) {
            if (v) return C_OTHER;
            if (BITS(w, 4, 0) == 31 && !BIT(w, 23) && !BIT(w, 15)) return C_STORE; /* ST<op> */
            return C_LOAD;
        }
        if (v) return l ? C_SIMD_LOAD : C_SIMD_STORE;
        if (!BIT(w, 24) && BIT(w, 21) && BIT(w, 10)) return C_LOAD; /* LDRAA, LDRAB */
        return opc == 0 ? C_STORE : C_LOAD;
    }
}

/* Advanced SIMD three same (bit 21 = 1, bit 10 = 1): opcode = bits 15:11.
 *   11xxx                      FP: FMAXNM, FMLA, FADD, FMULX, FCMEQ, FMAX, FRECPS, FMUL, FDIV,
 *                              FADDP, FABD, FCMGE, FACGE, FMINNM, FMLS, FSUB, FMIN... -> simd_fp
 *   10010, 10011, 10110        MLA/MLS, MUL/PMUL, SQDMULH/SQRDMULH              -> simd_mul
 *   others                     (U)HADD, SQADD, logic (AND/ORR/EOR/BSL...), CMxx, (U)SHL,
 *                              (U)MAX/MIN(P), (U)ABD(A), ADD/SUB, ADDP...       -> simd_alu */
static int simd_three_same(uint32_t w)
{
    uint32_t op = BITS(w, 15, 11);
    if (op >= 0x18) return C_SIMD_FP;
    if (op == 0x12 || op == 0x13 || op == 0x16) return C_SIMD_MUL;
    return C_SIMD_ALU;
}

/* Advanced SIMD two-register miscellaneous (bits 21:17 = 10000, bits 11:10 = 10), and the FP16
 * variant (bits 22:17 = 111100, same opcodes with "a" = bit 23 in place of size<1>):
 * opcode = bits 16:12, sz1 = bit 23.
 *   0xxxx below 01100          REV, (U)ADDLP, SUQADD, CLS/CLZ, CNT/NOT/RBIT, (U)ADALP, SQABS,
 *                              CMxx (zero), ABS/NEG                              -> simd_alu
 *   011xx, sz1 = 1             FCMGT/FCMEQ/FCMLT/FCMGE/FCMLE (zero), FABS, FNEG   -> simd_fp
 *   10xxx                      XTN, SQXTN, SQXTUN, SHLL, FCVTN, FCVTL, FCVTXN, BFCVTN -> simd_alu
 *   11010, 11011               FCVT{N,M,P,Z}{S,U}  (fp -> int conversions)      -> simd_alu
 *   11100                      FCVTA{S,U} (sz1 = 0), URECPE/URSQRTE (sz1 = 1)    -> simd_alu
 *   11101                      SCVTF/UCVTF (sz1 = 0)                             -> simd_alu
 *                              FRECPE/FRSQRTE (sz1 = 1)                          -> simd_fp
 *   11000, 11001, 11110, 11111 FRINT*, FRINT32/64*, FSQRT, FRECPX                -> simd_fp */
static int simd_two_reg_misc(uint32_t w)
{
    uint32_t op = BITS(w, 16, 12), sz1 = BIT(w, 23);
    if (op < 0x0C) return C_SIMD_ALU;
    if (op < 0x10) return sz1 ? C_SIMD_FP : C_SIMD_ALU;
    if (op < 0x18) return C_SIMD_ALU;
    if (op == 0x1A || op == 0x1B || op == 0x1C) return C_SIMD_ALU;
    if (op == 0x1D) return sz1 ? C_SIMD_FP : C_SIMD_ALU;
    return C_SIMD_FP;
}

/* Advanced SIMD (vector or scalar) x indexed element (bit 24 = 1, bit 10 = 0):
 * U = bit 29, size = bits 23:22, opcode = bits 15:12.
 *   FP (-> simd_fp): opcode 0001 FMLA, 0101 FMLS, 1001 FMUL/FMULX (any size: FP16 at size 00);
 *     U = 1, size = 01, opcode 0xx1 FCMLA; size = 10: U = 0 opcode 0000/0100 FMLAL/FMLSL,
 *     U = 1 opcode 1000/1100 FMLAL2/FMLSL2; U = 0, opcode 1111, size 01/11 BFDOT/BFMLAL
 *   everything else is an integer multiply (-> simd_mul): MUL, MLA, MLS, (S/U)MULL, (S/U)MLAL,
 *     (S/U)MLSL, SQDMULL, SQDMLAL, SQDMLSL, SQDMULH, SQRDMULH, SQRDMLAH, SQRDMLSH, SDOT, UDOT,
 *     SUDOT, USDOT */
static int simd_by_element(uint32_t w)
{
    uint32_t u = BIT(w, 29), size = BITS(w, 23, 22), op = BITS(w, 15, 12);
    if (op == 0x1 || op == 0x5 || op == 0x9) return C_SIMD_FP;
    if (u && size == 1 && (op & 0x9) == 0x1) return C_SIMD_FP;
    if (size == 2 && ((!u && (op == 0x0 || op == 0x4)) || (u && (op == 0x8 || op == 0xC))))
        return C_SIMD_FP;
    if (!u && op == 0xF && (size & 1)) return C_SIMD_FP;
    return C_SIMD_MUL;
}

/* Advanced SIMD, vector (bits 31,28 = 0,0) and scalar (bits 31,30,28 = 0,1,1) encodings of the
 * "Data Processing - Scalar Floating-Point and Advanced SIMD" group. Sub-groups by bit 24,
 * bit 21, bit 15, bits 11:10 and bits 20:17:
 *   bit 24 = 1, bit 10 = 0          x indexed element                 -> simd_by_element()
 *   bit 24 = 1, bit 10 = 1          shift by immediate (SHL, SSHR, SHRN, SSHLL/SXTL, SQRSHRN,
 *                                   SCVTF/FCVTZS fixed-point...) and modified immediate
 *                                   (MOVI, MVNI, ORR/BIC imm, FMOV vector imm)  -> simd_alu
 *   bit 24 = 0, bit 21 = 1, bit 10 = 1            three same          -> simd_three_same()
 *   bit 24 = 0, bit 21 = 1, bits 11:10 = 00       three different: opcode bits 15:12;
 *                     1xxx: (S/U)MLAL, SQDMLAL, (S/U)MLSL, SQDMLSL, (S/U)MULL, SQDMULL,
 *                     PMULL -> simd_mul; 0xxx: (S/U)ADDL/W, (S/U)SUBL/W, ADDHN, SUBHN,
 *                     (S/U)ABAL, (S/U)ABDL -> simd_alu
 *   bit 24 = 0, bit 21 = 1, bits 11:10 = 10       bits 20:17 select:
 *                     0000 two-register misc          -> simd_two_reg_misc()
 *                     1000 across lanes (ADDV, (S/U)MAXV, (S/U)ADDLV -> simd_alu; FMAXV,
 *                          FMINV, FMAXNMV, FMINNMV: opcode bits 16:14 = 011 -> simd_fp) and
 *                          scalar pairwise (ADDP -> simd_alu; FADDP, FMAXP...: 011xx -> simd_fp)
 *                     1100 (bit 22 = 1) two-register misc FP16 -> simd_two_reg_misc()
 *                     0100 crypto AES / SHA two-register           -> simd_alu
 *   bit 24 = 0, bit 21 = 0, bit 10 = 1:
 *                     bit 15 = 1   three-register extension: opcode bits 14:11; 0xxx SDOT,
 *                                  UDOT, USDOT, SQRDMLAH, SQRDMLSH, SMMLA, UMMLA -> simd_mul;
 *                                  1xxx FCMLA, FCADD, BFDOT, BFMMLA, BFMLAL -> simd_fp
 *                     bit 22 = 1, bits 15:14 = 00   three same FP16       -> simd_fp
 *                     bits 23:21 = 000              copy (DUP, INS, UMOV, SMOV) -> simd_alu
 *   bit 24 = 0, bit 21 = 0, bit 10 = 0, bit 15 = 0: table lookup (TBL/TBX), permute
 *                     (UZP/TRN/ZIP), extract (EXT), crypto three-register SHA -> simd_alu
 *   anything else     unallocated                                          -> other */
static int classify_simd(uint32_t w)
{
    if (BIT(w, 24)) {
        if (!BIT(w, 10)) return simd_by_element(w);
        return BIT(w, 23) ? C_OTHER : C_SIMD_ALU;
    }
    if (BIT(w, 21)) {
        if (BIT(w, 10)) return simd_three_same(w);
        if (!BIT(w, 11)) return BIT(w, 15) ? C_SIMD_MUL : C_SIMD_ALU;
        switch (BITS(w, 20, 17)) {
        case 0x0: return simd_two_reg_misc(w);
        case 0x8: return BITS(w, 16, 14) == 3 ? C_SIMD_FP : C_SIMD_ALU;
        case 0xC: return BIT(w, 22) ? simd_two_reg_misc(w) : C_OTHER;
        case 0x4: return C_SIMD_ALU;
        default: return C_OTHER;
        }
    }
    if (BIT(w, 10)) {
        if (BIT(w, 15)) return BIT(w, 14) ? C_SIMD_FP : C_SIMD_MUL;
        if (BIT(w, 22) && BITS(w, 15, 14) == 0) return C_SIMD_FP;
        if (BITS(w, 23, 21) == 0) return C_SIMD_ALU;
        return C_OTHER;
    }
    return BIT(w, 15) ? C_OTHER : C_SIMD_ALU;
}

/* Data processing - scalar FP and Advanced SIMD: op0 = x111 (bits 27:25 = 111). The group's own
 * op0 is bits 31:28:
 *   x0x1 (bit 28 = 1, bit 30 = 0)  scalar floating point: FP data-processing 1/2/3 source
 *       (FADD, FMUL, FDIV, FSQRT, FMADD, FNMSUB...), compare (FCMP, FCCMP), select (FCSEL),
 *       immediate (FMOV imm), conversions FP<->integer/fixed point (FCVTZS, SCVTF, FCVT,
 *       FMOV general<->FP)                                                  -> fp_scalar
 *   01x1 (bits 31,30,28 = 0,1,1)   Advanced SIMD scalar                  -> classify_simd()
 *   0xx0 (bits 31,28 = 0,0)        Advanced SIMD vector (crypto AES inside) -> classify_simd()
 *   1100                           crypto 3/4-register (SHA512, SM3, EOR3, BCAX, XAR) -> simd_alu
 *   anything else                  unallocated                            -> other */
static int classify_fp_simd(uint32_t w)
{
    if (BIT(w, 28)) {
        if (!BIT(w, 30)) return C_FP_SCALAR;
        return BIT(w, 31) ? C_OTHER : classify_simd(w);
    }
    if (!BIT(w, 31)) return classify_simd(w);
    return BITS(w, 31, 28) == 0xC ? C_SIMD_ALU : C_OTHER;
}

/* Top level, op0 = bits 28:25:
 *   0000 reserved (UDF) / SME, 0001 and 0011 unallocated, 0010 SVE        -> other
 *   100x data processing - immediate (ADR/ADRP, ADD/SUB imm, logical imm, MOVZ/MOVN/MOVK,
 *        bitfield (SBFM/UBFM: LSL/LSR/ASR/SXTW... imm), EXTR)                -> int_alu
 *   101x branches, exception generating and system              -> classify_branch_sys()
 *   x1x0 loads and stores                                       -> classify_ldst()
 *   x101 data processing - register                             -> classify_dp_reg()
 *   x111 data processing - scalar FP and Advanced SIMD          -> classify_fp_simd() */
static int classify(uint32_t w)
{
    uint32_t op0 = BITS(w, 28, 25);
    if ((op0 & 0xE) == 0x8) return C_INT_ALU;
    if ((op0 & 0xE) == 0xA) return classify_branch_sys(w);
    if ((op0 & 0x5) == 0x4) return classify_ldst(w);
    if ((op0 & 0x7) == 0x5) return classify_dp_reg(w);
    if ((op0 & 0x7) == 0x7) return classify_fp_simd(w);
    return C_OTHER;
}

/* ---- Counters. ------------------------------------------------------------------------------ */
struct tb_entry { uint16_t cls, n; };
struct tb_info { uint32_t n; struct tb_entry e[]; };

static struct row { uint64_t c[N_CLASSES]; } __attribute__((aligned(128))) rows[MAX_VCPUS];

static pthread_mutex_t out_lock = PTHREAD_MUTEX_INITIALIZER; /* orders and guards output */
static FILE *out_file;       /* NULL: lines go to qemu_plugin_outs */
static pid_t owner_pid;
static int alloc_failed;

static void format_counts(char *buf, size_t size, const uint64_t *c)
{
    size_t k = (size_t)snprintf(buf, size, "{");
    for (int i = 0; i < N_CLASSES && k < size; i++)
        k += (size_t)snprintf(buf + k, size - k, "%s\"%s\": %llu", i ? ", " : "", class_names[i],
                              (unsigned long long)c[i]);
    if (k < size) snprintf(buf + k, size - k, "}");
}

/* Caller holds out_lock. */
static void emit(const char *line)
{
    if (out_file) {
        fputs(line, out_file);
        fflush(out_file);
    } else {
        qemu_plugin_outs(line);
    }
}

static inline struct row *row_of(unsigned int vcpu)
{
    return &rows[vcpu < MAX_VCPUS ? vcpu : MAX_VCPUS - 1];
}

static void on_tb_exec(unsigned int vcpu, void *udata)
{
    const struct tb_info *t = udata;
    uint64_t *c = row_of(vcpu)->c;
    for (uint32_t i = 0; i < t->n; i++) c[t->e[i].cls] += t->e[i].n;
}

/* QEMU serializes translation (mmap_lock in user mode); this only reads the TB and allocates. */
static void on_tb_trans(qemu_plugin_id_t id, struct qemu_plugin_tb *tb)
{
    uint32_t per_class[N_CLASSES] = {0}, used = 0;
    size_t n = qemu_plugin_tb_n_insns(tb);
    for (size_t i = 0; i < n; i++) {
        const struct qemu_plugin_insn *insn = qemu_plugin_tb_get_insn(tb, i);
        int cls = C_OTHER;
        if (qemu_plugin_insn_size(insn) == 4) {
            uint32_t w;
            memcpy(&w, qemu_plugin_insn_data(insn), 4); /* A64 is little-endian (target checked) */
            cls = classify(w);
        }
        used += per_class[cls]++ == 0;
    }
    struct tb_info *t = malloc(sizeof *t + used * sizeof t->e[0]);
    if (!t) { alloc_failed = 1; return; }
    t->n = 0;
    for (int c = 0; c < N_CLASSES; c++)
        if (per_class[c]) t->e[t->n++] = (struct tb_entry){(uint16_t)c, (uint16_t)per_class[c]};
    qemu_plugin_register_vcpu_tb_exec_cb(tb, on_tb_exec, QEMU_PLUGIN_CB_NO_REGS, t);
}

static void on_syscall(qemu_plugin_id_t id, unsigned int vcpu, int64_t num, uint64_t a1,
                       uint64_t a2, uint64_t a3, uint64_t a4, uint64_t a5, uint64_t a6,
                       uint64_t a7, uint64_t a8)
{
    char counts[1024], line[1200];
    if (num != MARK_SYSCALL || (uint32_t)a1 != 0xFFFFFFFFu || (a2 >> 32) != MARK_MAGIC) return;
    if (getpid() != owner_pid) return; /* a forked guest child */
    format_counts(counts, sizeof counts, row_of(vcpu)->c); /* only this thread writes its row */
    snprintf(line, sizeof line, "{\"mark\": %u, \"vcpu\": %u, \"counts\": %s}\n",
             (uint32_t)a2, vcpu, counts);
    pthread_mutex_lock(&out_lock);
    emit(line);
    pthread_mutex_unlock(&out_lock);
}

/* Called once at guest exit, other vCPUs stopped (not when the guest dies of a signal). */
static void on_exit_cb(qemu_plugin_id_t id, void *udata)
{
    char counts[1024], line[1200];
    if (getpid() != owner_pid) return;
    pthread_mutex_lock(&out_lock);
    for (unsigned int v = 0; v < MAX_VCPUS; v++) {
        uint64_t any = 0;
        for (int c = 0; c < N_CLASSES; c++) any |= rows[v].c[c];
        if (!any) continue;
        format_counts(counts, sizeof counts, rows[v].c);
        snprintf(line, sizeof line, "{\"exit\": true, \"vcpu\": %u, \"counts\": %s}\n", v, counts);
        emit(line);
    }
    if (alloc_failed) emit("{\"error\": \"out of memory: counts incomplete\"}\n");
    if (out_file) fclose(out_file);
    out_file = NULL;
    pthread_mutex_unlock(&out_lock);
}

EXPORT int qemu_plugin_install(qemu_plugin_id_t id, const qemu_info_t *info, int argc, char **argv)
{
    if (!info || !info->target_name || strcmp(info->target_name, "aarch64") != 0) {
        qemu_plugin_outs("insn_count: this plugin decodes little-endian AArch64 only\n");
        return -1;
    }
    for (int i = 0; i < argc; i++) {
        if (strncmp(argv[i], "out=", 4) == 0 && argv[i][4] && !out_file) {
            if (!(out_file = fopen(argv[i] + 4, "w"))) {
                char msg[512];
                snprintf(msg, sizeof msg, "insn_count: cannot write %s\n", argv[i] + 4);
                qemu_plugin_outs(msg);
                return -1;
            }
        } else {
            char msg[512];
            snprintf(msg, sizeof msg, "insn_count: bad argument '%s' (expected one out=PATH)\n",
                     argv[i]);
            qemu_plugin_outs(msg);
            return -1;
        }
    }
    owner_pid = getpid();
    qemu_plugin_register_vcpu_tb_trans_cb(id, on_tb_trans);
    qemu_plugin_register_vcpu_syscall_cb(id, on_syscall);
    qemu_plugin_register_atexit_cb(id, on_exit_cb, NULL);
    return 0;
}
