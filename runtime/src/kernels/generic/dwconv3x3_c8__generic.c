/* Depthwise 3×3 conv2d (groups = C = O), stride 1 or 2 each way, any padding, portable C, eight
 * channels at a time: their padded inputs are interleaved as int16 x − zp with 0 in the padding
 * (ddq_dw_fill_c8), so every output of every channel is the same nine products, and the loops
 * over the 8 channels (weights packed [9][C + 8] by prepare) vectorize. No border cases. */
#include "generic.h"

void ddq_dwconv3x3_c8__generic(const ddq_op_args *a, int64_t begin, int64_t end) {
    const ddq_packed_conv *pc = a->prepared;
    const ddq_op *op = a->op;
    const ddq_tensor *yt = a->out;
    const int64_t C = yt->shape[1], Cp = C + 8, OH = yt->shape[2], OW = yt->shape[3];
    const int64_t sh = op->stride[0], sw = op->stride[1];
    const int32_t zp = yt->zero_point, lo = op->act_min, hi = op->act_max;
    const ddq_dw_geometry g = ddq_dw_geometry_of(op, yt);
    int16_t *T = a->scratch;
    ddq_dw_zero(g, T);
    int64_t tap[9]; /* offsets of the nine taps in T */
    for (int k = 0; k < 9; k++) tap[k] = ((k / 3) * g.cols + k % 3) * 8;
    for (int64_t c0 = begin; c0 < end; c0 += 8) {
        const int64_t n = end - c0 < 8 ? end - c0 : 8;
        ddq_dw_fill_c8(a, c0, n, g, T);
        int16_t w[9][8];
        for (int k = 0; k < 9; k++)
            for (int l = 0; l < 8; l++) w[k][l] = pc->w[k * Cp + c0 + l];
        uint8_t *y = (uint8_t *)a->y + c0 * OH * OW;
        for (int64_t oy = 0; oy < OH; oy++)
            for (int64_t ox = 0; ox < OW; ox++) {
                const int16_t *t = T + ((oy * sh) * g.cols + ox * sw) * 8;
                int32_t acc[8];
                for (int l = 0; l < 8; l++) acc[l] = pc->bias[c0 + l];
                for (int k = 0; k < 9; k++)
                    for (int l = 0; l < 8; l++) acc[l] += w[k][l] * t[tap[k] + l];
                for (int64_t l = 0; l < n; l++)
                    ddq_requantize_row(acc + l, 1, 0, op->channel_multipliers[c0 + l], zp, lo, hi,
                                       y + l * OH * OW + oy * OW + ox);
            }
    }
}
