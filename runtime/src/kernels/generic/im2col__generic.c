/* The int16 panels of the fast sets (shared by `generic` and `neon`): codes minus the zero point,
 * so padding (which is "with the zero point") becomes 0 and needs no test in the inner loops.
 * The copy loops are plain C that compilers vectorize. */
#include <string.h>

#include "generic.h"

#if defined(__ARM_NEON)
#include <arm_neon.h>
#endif

static void centered(int16_t *restrict d, const uint8_t *restrict s, int64_t n, int16_t zp) {
    for (int64_t i = 0; i < n; i++) d[i] = (int16_t)(s[i] - zp);
}

static void centered_strided(int16_t *restrict d, const uint8_t *restrict s, int64_t n, int64_t stride, int16_t zp) {
    if (stride == 2) {
        int64_t i = 0;
#if defined(__ARM_NEON)
        /* LD2 splits off the even bytes, USUBL widens them minus the zero point (6 instructions
         * per 16 where GCC's loop takes 10); a load only while element i + 16 is still read, so
         * the 32 bytes stay inside the row */
        const uint8x16_t z = vdupq_n_u8((uint8_t)zp);
        for (; i + 16 < n; i += 16) {
            const uint8x16_t v = vld2q_u8(s + 2 * i).val[0];
            vst1q_s16(d + i, vreinterpretq_s16_u16(vsubl_u8(vget_low_u8(v), vget_low_u8(z))));
            vst1q_s16(d + i + 8, vreinterpretq_s16_u16(vsubl_high_u8(v, z)));
        }
#endif
        for (; i < n; i++) d[i] = (int16_t)(s[2 * i] - zp);
    } else {
        for (int64_t i = 0; i < n; i++) d[i] = (int16_t)(s[i * stride] - zp);
    }
}

static void zeros(int16_t *d, int64_t n) {
    if (n > 2) memset(d, 0, (size_t)n * sizeof *d);
    else for (int64_t i = 0; i < n; i++) d[i] = 0; /* a padding column or two: no call */
}

void ddq_im2col_panel(const ddq_op_args *a, int64_t p0, int64_t n, int64_t nps, int16_t *panel) {
    const ddq_op *op = a->op;
    const ddq_tensor *xt = a->in[0], *wt = a->in[1];
    const uint8_t *x = a->x[0];
    const int64_t H = xt->shape[2], W = xt->shape[3];
    const int64_t Cg = wt->shape[1], KH = wt->shape[2], KW = wt->shape[3];
    const int64_t OW = a->out->shape[3];
    const int64_t sh = op->stride[0], sw = op->stride[1], dh = op->dilation[0], dw = op->dilation[1];
    const int64_t pt = op->padding[0], pl = op->padding[1];
    const int16_t zp = (int16_t)xt->zero_point;
    const int64_t tail = (n + 7) / 8 * 8 - n;
    if (KH == 1 && KW == 1 && sh == 1 && sw == 1 && pt == 0 && pl == 0 && op->padding[2] == 0 && op->padding[3] == 0) {
        /* a plain 1×1 convolution: output pixel p reads input pixel p of every channel */
        for (int64_t c = 0; c < Cg; c++) {
            centered(panel + c * nps, x + c * H * W + p0, n, zp);
            zeros(panel + c * nps + n, tail);
        }
        return;
    }
    int64_t r = 0;
    for (int64_t c = 0; c < Cg; c++)
        for (int64_t ky = 0; ky < KH; ky++)
            for (int64_t kx = 0; kx < KW; kx++, r++) {
                int16_t *d = panel + r * nps;
                const uint8_t *xc = x + c * H * W;
                /* ix = ox·sw + off lies in [0, W) for ox in [lo, hi) */
                const int64_t off = kx * dw - pl;
                const int64_t lo = ddq_div_ceil(-off, sw) > 0 ? ddq_div_ceil(-off, sw) : 0;
                const int64_t hi = ddq_div_floor(W - 1 - off, sw) + 1;
                for (int64_t j = 0; j < n;) {
                    const int64_t p = p0 + j, oy = p / OW, ox = p % OW;
                    const int64_t count = OW - ox < n - j ? OW - ox : n - j; /* the rest of output row oy */
                    const int64_t iy = oy * sh - pt + ky * dh;
                    if (iy < 0 || iy >= H) {
                        zeros(d + j, count);
                    } else {
                        const int64_t end = ox + count;
                        int64_t b = lo > ox ? lo : ox, e = hi < end ? hi : end;
                        if (b > end) b = end;
                        if (e < b) e = b;
                        zeros(d + j, b - ox);
                        if (sw == 1) centered(d + j + (b - ox), xc + iy * W + b + off, e - b, zp);
                        else centered_strided(d + j + (b - ox), xc + iy * W + b * sw + off, e - b, sw, zp);
                        zeros(d + j + (e - ox), ox + count - e);
                    }
                    j += count;
                }
                zeros(d + n, tail);
            }
}

void ddq_dw_zero(ddq_dw_geometry g, int16_t *T) { zeros(T, g.rows * g.cols * 8); }

void ddq_dw_fill_c8(const ddq_op_args *a, int64_t c0, int64_t n, ddq_dw_geometry g, int16_t *T) {
    const ddq_tensor *xt = a->in[0];
    const int64_t H = xt->shape[2], W = xt->shape[3];
    const int64_t pt = a->op->padding[0], pl = a->op->padding[1];
    const int16_t zp = (int16_t)xt->zero_point;
    /* the input rows and columns that land inside the rows × cols the outputs read */
    const int64_t y1 = H < g.rows - pt ? H : g.rows - pt, x1 = W < g.cols - pl ? W : g.cols - pl;
    for (int64_t l = 0; l < n; l++) {
        const uint8_t *x = (const uint8_t *)a->x[0] + (c0 + l) * H * W;
        for (int64_t iy = 0; iy < y1; iy++) {
            int16_t *d = T + ((iy + pt) * g.cols + pl) * 8 + l;
            const uint8_t *s = x + iy * W;
            for (int64_t ix = 0; ix < x1; ix++) d[ix * 8] = (int16_t)(s[ix] - zp);
        }
    }
}
