/* conv2d with groups = 1 as a GEMM on int16, portable C: output channels in blocks of 8 (weights
 * packed [⌈O/8⌉][K][8] by prepare) times pixels in tiles of 4, over K = C·KH·KW panel rows
 * (im2col of x − zp, ddq_im2col_panel; a 1×1 convolution with stride 1 and no padding is a
 * plain conversion). The tile's loops are written for the compiler to vectorize over pixels. */
#include "generic.h"

/* acc[o][p] = Σ_r w[r][o] · x[r][p] for a block of 8 channels and 4 pixels: 32 int32
 * accumulators, which stay in registers on SSE2 (x86-64's baseline) as well as on NEON. */
static inline void tile_8x4(const int16_t *restrict xp, int64_t nps, const int16_t *restrict wp, int64_t K,
                            int32_t acc[DDQ_GEMM_BLOCK][4]) {
    for (int o = 0; o < DDQ_GEMM_BLOCK; o++)
        for (int p = 0; p < 4; p++) acc[o][p] = 0;
    for (int64_t r = 0; r < K; r++) {
        const int16_t *restrict xr = xp + r * nps;
        const int16_t *restrict wr = wp + r * DDQ_GEMM_BLOCK;
        for (int o = 0; o < DDQ_GEMM_BLOCK; o++)
            for (int p = 0; p < 4; p++) acc[o][p] += wr[o] * xr[p];
    }
}

void ddq_conv_gemm__generic(const ddq_op_args *a, int64_t begin, int64_t end) {
    const ddq_packed_conv *pc = a->prepared;
    const ddq_op *op = a->op;
    const ddq_tensor *yt = a->out;
    const int32_t *bias = a->in[2]->data;
    uint8_t *y = a->y;
    const int64_t P = yt->shape[2] * yt->shape[3], K = pc->K, nps = pc->panel_pixels;
    const int32_t zp = yt->zero_point;
    int16_t *panel = a->scratch;
    int32_t acc[DDQ_GEMM_BLOCK][4];
    for (int64_t p0 = 0; p0 < P; p0 += nps) {
        const int64_t n = P - p0 < nps ? P - p0 : nps;
        ddq_im2col_panel(a, p0, n, nps, panel);
        for (int64_t o0 = begin / DDQ_GEMM_BLOCK * DDQ_GEMM_BLOCK; o0 < end; o0 += DDQ_GEMM_BLOCK) {
            const int16_t *wb = pc->w + o0 * K; /* block o0 / 8 */
            const int64_t ob = o0 > begin ? o0 : begin;
            const int64_t oe = o0 + DDQ_GEMM_BLOCK < end ? o0 + DDQ_GEMM_BLOCK : end;
            for (int64_t j = 0; j < n; j += 4) {
                const int64_t count = n - j < 4 ? n - j : 4;
                tile_8x4(panel + j, nps, wb, K, acc);
                for (int64_t o = ob; o < oe; o++)
                    ddq_requantize_row(acc[o - o0], count, bias[o], op->channel_multipliers[o], zp, op->act_min,
                                       op->act_max, y + o * P + p0 + j);
            }
        }
    }
}
