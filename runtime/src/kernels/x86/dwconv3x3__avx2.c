/* Depthwise 3×3 conv2d (groups = C = O), strides 1 or 2 each way, any padding, AVX2: one channel
 * plane at a time, 16 output pixels of a row in the int16 lanes of a vector (NCHW needs no
 * transpose).
 *
 * The input. Each channel is copied into a padded plane in scratch as int16 x − c, the signed
 * offset c of ddq_panel_offset (c = zp where x − zp fits int8), and zp − c in the padding, which
 * is written once per call (a channel only overwrites the inside). Since
 * Σ w·(x − zp) = Σ w·(x − c) + (c − zp)·Σ w, the second term is folded into the bias, and a padded
 * tap adds w·(zp − c) + (c − zp)·w = 0 as it should. With stride 1 across, an output chunk's
 * three column taps are three unaligned loads; with stride 2 the plane's rows are stored as
 * their even columns then their odd ones, so the taps are E[j], O[j] and E[j + 1], again plain
 * loads. A row's last chunk overlaps the one before (or, for rows narrower than 16, is stored
 * partially); the plane has slack for the loads past its last column.
 *
 * The products, per channel by the interval bound of its sum over v ∈ [qmin − c, qmax − c]:
 *
 * - ACC9: _mm256_mullo_epi16 and _mm256_add_epi16 sum the nine products in int16 lanes. They
 *   wrap modulo 2^16, so a lane ends at the exact sum whenever that lies in int16, whatever the
 *   partial sums; prepare admits the channel only then. Grids up to 7 bits always qualify.
 * - PAIRS: the taps' values interleaved in pairs (_mm256_unpacklo/hi_epi16) and
 *   _mm256_madd_epi16 by the weight pairs: exact int32 sums of two products, for the channels
 *   the bound refuses (8-bit inputs with large weights).
 *
 * Both then hold each output's sum in int32 lanes in the order of the unpacks (0–3 | 8–11 and
 * 4–7 | 12–15), which the narrowing of requant__avx2.h restores. The requantization is that of
 * requant__avx2.h where prepare proved it exact for the channel, else the scalar ddq_mbqm. */
#include <stdlib.h>
#include <string.h>

#include "requant__avx2.h"

#define DDQ_ALWAYS_INLINE static inline __attribute__((always_inline))

enum dw_mode { DW_ACC9, DW_PAIRS };

typedef struct dw_channel {
    int16_t w[9];
    int16_t mode;     /* enum dw_mode */
    int32_t bias;     /* bias + (c − zp)·Σw, mod 2^32 (the int32 sums wrap to the exact one) */
    int32_t exact_rq; /* the vector requantization is exact for this channel */
    ddq_rq_x86 rq;
} dw_channel;

typedef struct dw_prepared {
    int path;        /* DDQ_CONV_DW3X3 */
    int32_t offset;  /* c */
    dw_channel ch[]; /* [C] */
} dw_prepared;

/* int16 elements per plane row: stride 1, the padded columns and slack for a chunk's loads;
 * stride 2, two halves (even columns, odd columns) of that. */
static int64_t half_pitch(ddq_dw_geometry g, int64_t sx) {
    return sx == 1 ? (g.cols + 16 + 15) / 16 * 16 : ((g.cols + 1) / 2 + 17 + 15) / 16 * 16;
}
static int64_t plane_pitch(ddq_dw_geometry g, int64_t sx) { return sx == 1 ? half_pitch(g, 1) : 2 * half_pitch(g, 2); }

void *ddq_dw_prepare__x86(const ddq_model *model, const ddq_op *op) {
    const ddq_tensor *xt = &model->tensors[op->inputs[0]], *wt = &model->tensors[op->inputs[1]];
    const ddq_tensor *bt = &model->tensors[op->inputs[2]], *yt = &model->tensors[op->output];
    const int32_t c = ddq_panel_offset(xt, DDQ_OFFSET_CENTRED);
    const int64_t C = wt->shape[0], lo = xt->qmin - c, hi = xt->qmax - c;
    dw_prepared *p = malloc(sizeof *p + (size_t)C * sizeof(dw_channel));
    if (!p) return NULL;
    *p = (dw_prepared){.path = DDQ_CONV_DW3X3, .offset = c};
    const int8_t *w = wt->data;
    const int32_t *bias = bt->data;
    for (int64_t o = 0; o < C; o++) {
        dw_channel *ch = &p->ch[o];
        int64_t sum = 0, mn = 0, mx = 0;
        for (int k = 0; k < 9; k++) {
            const int64_t wk = w[o * 9 + k], a = wk * lo, b = wk * hi;
            ch->w[k] = (int16_t)wk;
            sum += wk;
            mn += a < b ? a : b;
            mx += a < b ? b : a;
        }
        ch->mode = mn >= INT16_MIN && mx <= INT16_MAX ? DW_ACC9 : DW_PAIRS;
        ch->bias = (int32_t)(uint32_t)(uint64_t)(bias[o] + ((int64_t)p->offset - xt->zero_point) * sum);
        ch->exact_rq = ddq_rq_x86_exact(op->channel_multipliers[o], op->channel_bounds[o]);
        ch->rq = ddq_rq_x86_of(op->channel_multipliers[o], yt->zero_point);
    }
    return p;
}

size_t ddq_dw_scratch_bytes__x86(const ddq_model *model, const ddq_op *op) {
    const ddq_dw_geometry g = ddq_dw_geometry_of(op, &model->tensors[op->output]);
    return (size_t)((g.rows * plane_pitch(g, op->stride[1]) * 2 + 63) / 64 * 64);
}

/* ------------------------------------------------------------------------------ the fill */

/* n (≤ 32) bytes from s, loaded whole where the input's bytes go on to x_end (the bytes past the
 * row are overwritten by the caller), else through a copy. */
static inline __m256i load_codes(const uint8_t *s, const uint8_t *x_end, int64_t n) {
    if (s + 32 <= x_end) return _mm256_loadu_si256((const __m256i *)s);
    uint8_t t[32] = {0};
    const int64_t m = n < 32 ? n : 32;
    memcpy(t, s, (size_t)(x_end - s < m ? x_end - s : m));
    return _mm256_loadu_si256((const __m256i *)t);
}

/* Channel plane x (H × W; the input ends at x_end) into T as x − c: its rows y1 and columns x1
 * that the outputs read, at padded row pt and column pl. Stride 1 across: 16 codes
 * zero-extended per store. Stride 2: even padded columns to the row's first half, odd ones to
 * its second; 32 codes per step, read as 16 int16 lanes of a pair each, whose low bytes (the
 * first of the pair) and high bytes are the two halves. A row's last store runs past its x1
 * columns into the right padding (the plane has 16 columns of slack); one store of pad values
 * after the row (in each half) restores it. */
static void fill_plane(const uint8_t *x, const uint8_t *x_end, int64_t W, int64_t y1, int64_t x1, int64_t pt,
                       int64_t pl, int64_t sx, int64_t pitch, int16_t c, int16_t pad, int16_t *T) {
    const __m256i cv = _mm256_set1_epi16(c), low = _mm256_set1_epi16(0xFF), padv = _mm256_set1_epi16(pad);
    for (int64_t iy = 0; iy < y1; iy++) {
        const uint8_t *s = x + iy * W;
        int16_t *d = T + (pt + iy) * pitch;
        if (sx == 1) {
            for (int64_t ix = 0; ix < x1; ix += 16) {
                const __m128i v = _mm256_castsi256_si128(load_codes(s + ix, x_end, x1 - ix));
                _mm256_storeu_si256((__m256i *)(d + pl + ix), _mm256_sub_epi16(_mm256_cvtepu8_epi16(v), cv));
            }
            _mm256_storeu_si256((__m256i *)(d + pl + x1), padv);
            continue;
        }
        /* padded column q = pl + ix goes to d[q / 2] (even q) or odd[q / 2] (odd q) */
        int16_t *odd = d + pitch / 2;
        int64_t ix = 0;
        if (pl & 1) { /* column 0 is odd: then pairs (even, odd) start at column 1 */
            odd[pl / 2] = (int16_t)(s[0] - c);
            ix = 1;
        }
        for (; ix < x1; ix += 32) {
            const __m256i v = load_codes(s + ix, x_end, x1 - ix);
            const int64_t q = (pl + ix) / 2;
            _mm256_storeu_si256((__m256i *)(d + q), _mm256_sub_epi16(_mm256_and_si256(v, low), cv));
            _mm256_storeu_si256((__m256i *)(odd + q), _mm256_sub_epi16(_mm256_srli_epi16(v, 8), cv));
        }
        const int64_t q0 = pl + x1; /* the first padded column right of the row */
        _mm256_storeu_si256((__m256i *)(d + (q0 + 1) / 2), padv);
        _mm256_storeu_si256((__m256i *)(odd + q0 / 2), padv);
    }
}

/* ---------------------------------------------------------------------------- the outputs */

typedef struct dw_taps {
    __m256i w[9];    /* ACC9: each weight in every lane; PAIRS: w[0…4] the pairs (w0, w1) … (w8, 0) */
    __m256i bias;
    ddq_rq_avx2 rq;
    __m128i lo, hi;
} dw_taps;

/* Tap k of 16 outputs from the three rows at the chunk's first column; with `two`, of 8 outputs
 * of two rows, the second's input rows dy elements further (rows of at most 8 outputs). */
DDQ_ALWAYS_INLINE __m256i tap(const int16_t *const r[3], int k, int64_t half, int64_t dy, const int sx,
                              const int two) {
    const int kx = k % 3;
    const int16_t *s = r[k / 3] + (sx == 1 ? kx : kx == 1 ? half : kx / 2);
    return two ? _mm256_loadu2_m128i((const __m128i *)(s + dy), (const __m128i *)s)
               : _mm256_loadu_si256((const __m256i *)s);
}

/* The int32 sums of 16 outputs, bias included: a = outputs 0–3 | 8–11, b = 4–7 | 12–15. */
DDQ_ALWAYS_INLINE void sums16(const int16_t *const r[3], int64_t half, int64_t dy, const dw_taps *q, __m256i *a,
                              __m256i *b, const int sx, const int mode, const int two) {
    if (mode == DW_ACC9) {
        __m256i s = _mm256_mullo_epi16(tap(r, 0, half, dy, sx, two), q->w[0]);
        for (int k = 1; k < 9; k++)
            s = _mm256_add_epi16(s, _mm256_mullo_epi16(tap(r, k, half, dy, sx, two), q->w[k]));
        *a = _mm256_add_epi32(_mm256_srai_epi32(_mm256_unpacklo_epi16(s, s), 16), q->bias);
        *b = _mm256_add_epi32(_mm256_srai_epi32(_mm256_unpackhi_epi16(s, s), 16), q->bias);
        return;
    }
    *a = *b = q->bias;
    for (int k = 0; k < 9; k += 2) {
        const __m256i u = tap(r, k, half, dy, sx, two);
        const __m256i v = k + 1 < 9 ? tap(r, k + 1, half, dy, sx, two) : _mm256_setzero_si256();
        *a = _mm256_add_epi32(*a, _mm256_madd_epi16(_mm256_unpacklo_epi16(u, v), q->w[k / 2]));
        *b = _mm256_add_epi32(*b, _mm256_madd_epi16(_mm256_unpackhi_epi16(u, v), q->w[k / 2]));
    }
}

/* 16 outputs from the rows r (at the chunk's first column; `two`: 8 of two rows, tap's)
 * requantized: rq 1 the vector form, 2 with l > 0; rq 0 the scalar ddq_mbqm (m), through `out`. */
DDQ_ALWAYS_INLINE __m128i chunk16(const int16_t *const r[3], int64_t half, int64_t dy, const dw_taps *q,
                                  ddq_multiplier m, const ddq_op *op, int32_t zp, const int sx, const int mode,
                                  const int rq, const int two) {
    __m256i a, b;
    sums16(r, half, dy, q, &a, &b, sx, mode, two);
    if (rq)
        return ddq_narrow16_avx2(ddq_mbqm_zp_avx2(a, &q->rq, rq > 1), ddq_mbqm_zp_avx2(b, &q->rq, rq > 1), q->lo,
                                 q->hi);
    int32_t s[16];
    uint8_t out[16];
    _mm256_storeu_si256((__m256i *)s, a);
    _mm256_storeu_si256((__m256i *)(s + 8), b);
    static const int8_t lane[16] = {0, 1, 2, 3, 8, 9, 10, 11, 4, 5, 6, 7, 12, 13, 14, 15};
    for (int j = 0; j < 16; j++)
        out[j] = (uint8_t)ddq_clamp_code(ddq_mbqm(s[lane[j]], m), zp, op->act_min, op->act_max);
    return _mm_loadu_si128((const __m128i *)out);
}

/* One channel's outputs (OH × OW at y) from its plane T: chunks of 16 outputs along each row, the
 * last one overlapping the one before (a row narrower than 16 is stored partially); rows of at
 * most 8 outputs (7 × 7 maps) two at a time. */
DDQ_ALWAYS_INLINE void channel(const int16_t *T, int64_t pitch, int64_t OH, int64_t OW, int64_t sy, const dw_taps *q,
                               ddq_multiplier m, const ddq_op *op, int32_t zp, uint8_t *y, const int sx,
                               const int mode, const int rq) {
    const int64_t half = pitch / 2;
    if (OW <= 8) {
        for (int64_t oy = 0; oy < OH; oy += 2, y += 2 * OW) {
            const int16_t *row = T + oy * sy * pitch;
            const int16_t *r[3] = {row, row + pitch, row + 2 * pitch};
            const int64_t dy = oy + 1 < OH ? sy * pitch : 0; /* an odd last row: computed twice */
            const __m128i v = chunk16(r, half, dy, q, m, op, zp, sx, mode, rq, 1);
            ddq_store_partial16(y, v, OW);
            if (oy + 1 < OH) ddq_store_partial16(y + OW, _mm_srli_si128(v, 8), OW);
        }
        return;
    }
    for (int64_t oy = 0; oy < OH; oy++, y += OW) {
        const int16_t *row = T + oy * sy * pitch;
        int64_t x0 = 0;
        for (; x0 + 16 <= OW; x0 += 16) {
            const int16_t *r[3] = {row + x0, row + pitch + x0, row + 2 * pitch + x0};
            _mm_storeu_si128((__m128i *)(y + x0), chunk16(r, half, 0, q, m, op, zp, sx, mode, rq, 0));
        }
        if (x0 == OW) continue;
        const int64_t xs = OW >= 16 ? OW - 16 : 0;
        const int16_t *r[3] = {row + xs, row + pitch + xs, row + 2 * pitch + xs};
        const __m128i v = chunk16(r, half, 0, q, m, op, zp, sx, mode, rq, 0);
        if (OW >= 16) _mm_storeu_si128((__m128i *)(y + xs), v);
        else ddq_store_partial16(y, v, OW);
    }
}

typedef void (*dw_channel_fn)(const int16_t *T, int64_t pitch, int64_t OH, int64_t OW, int64_t sy, const dw_taps *q,
                              ddq_multiplier m, const ddq_op *op, int32_t zp, uint8_t *y);
#define DW_CHANNEL(sx, mode, rq)                                                                                    \
    static void channel_##sx##_##mode##_##rq(const int16_t *T, int64_t pitch, int64_t OH, int64_t OW, int64_t sy,  \
                                             const dw_taps *q, ddq_multiplier m, const ddq_op *op, int32_t zp,    \
                                             uint8_t *y) {                                                        \
        channel(T, pitch, OH, OW, sy, q, m, op, zp, y, sx, mode, rq);                                              \
    }
#define DW_CHANNELS(sx, mode) DW_CHANNEL(sx, mode, 0) DW_CHANNEL(sx, mode, 1) DW_CHANNEL(sx, mode, 2)
DW_CHANNELS(1, DW_ACC9)
DW_CHANNELS(2, DW_ACC9)
DW_CHANNELS(1, DW_PAIRS)
DW_CHANNELS(2, DW_PAIRS)
#undef DW_CHANNELS
#undef DW_CHANNEL

/* [stride across − 1][mode][requantization: scalar, vector, vector with l > 0] */
static const dw_channel_fn CHANNEL_FNS[2][2][3] = {
    {{channel_1_DW_ACC9_0, channel_1_DW_ACC9_1, channel_1_DW_ACC9_2},
     {channel_1_DW_PAIRS_0, channel_1_DW_PAIRS_1, channel_1_DW_PAIRS_2}},
    {{channel_2_DW_ACC9_0, channel_2_DW_ACC9_1, channel_2_DW_ACC9_2},
     {channel_2_DW_PAIRS_0, channel_2_DW_PAIRS_1, channel_2_DW_PAIRS_2}},
};

void ddq_dwconv3x3__avx2(const ddq_op_args *a, int64_t begin, int64_t end) {
    const dw_prepared *p = a->prepared;
    const ddq_op *op = a->op;
    const ddq_tensor *xt = a->in[0], *yt = a->out;
    const int64_t H = xt->shape[2], W = xt->shape[3], OH = yt->shape[2], OW = yt->shape[3];
    const int64_t sy = op->stride[0], sx = op->stride[1], pt = op->padding[0], pl = op->padding[1];
    const ddq_dw_geometry g = ddq_dw_geometry_of(op, yt);
    const int64_t pitch = plane_pitch(g, sx);
    /* the input rows and columns that land inside the rows × cols the outputs read */
    const int64_t y1 = H < g.rows - pt ? H : g.rows - pt, x1 = W < g.cols - pl ? W : g.cols - pl;
    const int16_t c = (int16_t)p->offset;
    const uint8_t *x_end = (const uint8_t *)a->x[0] + xt->shape[1] * H * W;
    int16_t *T = a->scratch;
    const int16_t pad = (int16_t)(xt->zero_point - p->offset);
    for (int64_t i = 0; i < g.rows * pitch; i++) T[i] = pad;
    dw_taps q;
    q.lo = _mm_set1_epi8((char)op->act_min);
    q.hi = _mm_set1_epi8((char)op->act_max);
    for (int64_t o = begin; o < end; o++) {
        const dw_channel *ch = &p->ch[o];
        fill_plane((const uint8_t *)a->x[0] + o * H * W, x_end, W, y1, x1, pt, pl, sx, pitch, c, pad, T);
        if (ch->mode == DW_ACC9) {
            for (int k = 0; k < 9; k++) q.w[k] = _mm256_set1_epi16(ch->w[k]);
        } else {
            for (int k = 0; k < 9; k += 2)
                q.w[k / 2] = _mm256_set1_epi32((int32_t)((uint32_t)(uint16_t)ch->w[k] |
                                                         (uint32_t)(uint16_t)(k + 1 < 9 ? ch->w[k + 1] : 0) << 16));
        }
        q.bias = _mm256_set1_epi32(ch->bias);
        q.rq = ddq_rq_avx2_load(&ch->rq);
        const int rq = !ch->exact_rq ? 0 : ch->rq.lshift > 0 ? 2 : 1;
        CHANNEL_FNS[sx - 1][ch->mode][rq](T, pitch, OH, OW, sy, &q, op->channel_multipliers[o], op, yt->zero_point,
                                          (uint8_t *)a->y + o * OH * OW);
    }
}
