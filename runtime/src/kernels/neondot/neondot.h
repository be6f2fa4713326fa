/* The `neondot` kernel set: ARMv8.2 dot product (SDOT, FEAT_DotProd: Cortex-A76 / Pi 5 and later).
 * conv2d with groups = 1 and fully_connected run as int8 GEMMs on the shared preparation of
 * ../gemm_plan.h (four taps per pixel in the panel, one SDOT lane per four taps); every other
 * op, and the depthwise path, are the `neon` set's functions. */
#ifndef DDQ_KERNELS_NEONDOT_H
#define DDQ_KERNELS_NEONDOT_H

#include "../neon/neon.h"

/* The path value of this set's own prepared objects: outside enum ddq_conv_path, whose values
 * the neon set's objects (which this set also returns, for the ops it shares) carry, so that
 * release can tell the two apart. */
#define DDQ_CONV_GEMM_SDOT 0x5d07

/* Taps per SDOT lane, and the panel the conv GEMM builds at most at a time. */
#define DDQ_SDOT_GROUP 4
#define DDQ_SDOT_PANEL_BYTES (128 * 1024)
/* Output channels per weight block: the conv tile's 6, fully_connected's 16. */
#define DDQ_SDOT_CONV_R 6
#define DDQ_SDOT_FC_R 16

/* What prepare() returns for a GEMM conv2d or a fully_connected. */
typedef struct ddq_sdot_gemm {
    int path; /* DDQ_CONV_GEMM_SDOT */
    ddq_gemm_plan *plan;
} ddq_sdot_gemm;

void ddq_conv_gemm__neondot(const ddq_op_args *a, int64_t begin, int64_t end);
void ddq_fully_connected__neondot(const ddq_op_args *a, int64_t begin, int64_t end);
/* fully_connected's per-thread scratch: the input, offset and zero-padded to 16 taps. */
size_t ddq_fc_scratch_bytes__neondot(const ddq_model *model, const ddq_op *op);

#endif
