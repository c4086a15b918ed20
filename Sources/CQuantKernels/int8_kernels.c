// Products on 8-bit activations (ALPHAEDIT_ACTIVATIONS=int8); see include/quant_kernels.h for the contract.
// Why: with float32 activations a one-token product converts every weight to float32 (widen, convert,
// scale: ≈ 12 vector operations a block of 32), and on CPUs that split 256-bit operations into halves
// (Zen 1) that conversion, not memory, bounds a generation step (README, "On an AVX2-only machine").
// Here each token row is rounded once per call to int8 in blocks of 32, each with its float32 scale d_x
// (d_x = max|x| / 127, q = x / d_x rounded to nearest), and a weight block is multiplied as bytes:
// vpmaddubsw (unsigned × signed bytes, pairs summed into int16) and vpmaddwd (pairs into int32), then one
// conversion and one FMA with the block's scale d_w·d_x. The weights are never converted to float32.
//
// Every block's sum Σ w·x̂ (x̂ = d_x·q) is exact in integers; the product differs from the float32
// kernels by x's rounding only (≤ d_x / 2 per activation), as llama.cpp's products do (it rounds x the
// same way, with f16 scales). Per-block float terms:
//   signed weights (Q8_0, IQ4_NL, IQ4_XS, Q6_K's q − 32):  d_w·d_x·Σ q_w·q_x   (|q_w| as unsigned bytes,
//     q_x given q_w's sign: vpsignb, as llama.cpp does)
//   unsigned weights with an offset (Q4_0, Q5_0: m = −8d, −16d; Q4_1, Q5_1: m; Q4_K, Q5_K: −dmin·m_j):
//     d_w·d_x·Σ q_w·q_x + m·(d_x·Σ q_x), the second factor computed once per activation block (`s`).
// Rows of up to 4 output rows by up to 4 token rows share each block's unpacking and each load of x.
#include "qk_common.h"
#include "dequant_q32.h"
#include "dequant_k.h"

#include <stdint.h>
#include <stdlib.h>

int qk_q8_supports(qk_format format) {
    switch (format) {
    case QK_Q8_0: case QK_Q4_0: case QK_Q4_1: case QK_Q5_0: case QK_Q5_1: case QK_IQ4_NL:
    case QK_Q4_K: case QK_Q5_K: case QK_Q6_K: case QK_IQ4_XS: return 1;
    default: return 0;
    }
}

int64_t qk_q8_row_bytes(int64_t in) {
    const int64_t bytes = in + 8 * (in / QK_BLOCK);  // q, then d_x and s per block of 32
    return (bytes + 63) & ~(int64_t)63;
}

/// Row r of the quantized activations: its bytes q, scales d_x and sums s = d_x·Σq (per block of 32).
typedef struct { const int8_t *q; const float *d, *s; } q8_row;

QK_INLINE q8_row q8_at(const void *xq, int64_t in, int64_t r) {
    const uint8_t *p = (const uint8_t *)xq + r * qk_q8_row_bytes(in);
    return (q8_row){ (const int8_t *)p, (const float *)(p + in), (const float *)(p + in) + in / QK_BLOCK };
}

static QK_AVX2 void quantize_row_256(const float *x, int64_t in, uint8_t *out) {
    int8_t *q = (int8_t *)out;
    float *d = (float *)(out + in), *s = d + in / QK_BLOCK;
    const __m256 signBit = _mm256_set1_ps(-0.0f);
    for (int64_t b = 0; b < in / QK_BLOCK; b++) {
        const float *xb = x + QK_BLOCK * b;
        __m256 v[4], m = _mm256_setzero_ps();
        for (int i = 0; i < 4; i++) { v[i] = _mm256_loadu_ps(xb + 8 * i); m = _mm256_max_ps(m, _mm256_andnot_ps(signBit, v[i])); }
        __m128 h = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
        h = _mm_max_ps(h, _mm_movehl_ps(h, h));
        h = _mm_max_ss(h, _mm_movehdup_ps(h));
        const float amax = _mm_cvtss_f32(h), db = amax / 127.0f, id = db != 0.0f ? 1.0f / db : 0.0f;
        const __m256 bid = _mm256_set1_ps(id);
        __m256i i32[4];
        for (int i = 0; i < 4; i++) i32[i] = _mm256_cvtps_epi32(_mm256_mul_ps(v[i], bid));  // to nearest, ties to even
        // Pack 32 int32 to 32 int8 in order: packs work per 128-bit lane, so fix the order after.
        const __m256i p16a = _mm256_packs_epi32(i32[0], i32[1]), p16b = _mm256_packs_epi32(i32[2], i32[3]);
        __m256i p8 = _mm256_packs_epi16(p16a, p16b);
        p8 = _mm256_permutevar8x32_epi32(p8, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
        _mm256_storeu_si256((__m256i *)(q + QK_BLOCK * b), p8);
        const __m256i sum32 = _mm256_add_epi32(_mm256_add_epi32(i32[0], i32[1]), _mm256_add_epi32(i32[2], i32[3]));
        __m128i t = _mm_add_epi32(_mm256_castsi256_si128(sum32), _mm256_extracti128_si256(sum32, 1));
        t = _mm_add_epi32(t, _mm_shuffle_epi32(t, 0x4E));
        t = _mm_add_epi32(t, _mm_shuffle_epi32(t, 0xB1));
        d[b] = db;
        s[b] = db * (float)_mm_cvtsi128_si32(t);
    }
}

int qk_quantize_q8(qk_isa isa, const float *x, int64_t t, int64_t ldx, int64_t in, void *xq) {
    if (!x || !xq || t < 0 || in <= 0 || in % QK_BLOCK != 0 || ldx < in) return -1;
    if (isa == QK_ISA_NONE || isa > qk_best_isa()) return -1;
    for (int64_t r = 0; r < t; r++) quantize_row_256(x + r * ldx, in, (uint8_t *)xq + r * qk_q8_row_bytes(in));
    return 0;
}

// ---- one block of weights as bytes ----

/// A super-block's scales (the float32 kernels' decoders; nothing for the formats of 32).
QK_INLINE QK_AVX2 void q8_prepare(int fmt, const uint8_t *b, qk_scales *s) {
    if (fmt == QK_Q4_K || fmt == QK_Q5_K) prepare_q4_k(b, s);
    else if (fmt == QK_Q6_K) prepare_q6_k(b, s);
    else if (fmt == QK_IQ4_XS) prepare_iq4_xs(b, s);
    else (void)s;
}

/// Whether `fmt`'s bytes are signed (multiplied by the sign trick) or unsigned with an offset m.
QK_INLINE int q8_signed(int fmt) {
    return fmt == QK_Q8_0 || fmt == QK_IQ4_NL || fmt == QK_IQ4_XS || fmt == QK_Q6_K;
}

/// Block j of the (super-)block at b: its 32 weights' integers (weight l in byte l), the scale by which
/// each lane of the int32 dot (lanes 0–3: bytes 0–15; 4–7: bytes 16–31) is multiplied, and the offset m.
QK_INLINE QK_AVX2 __m256i q8_unpack(int fmt, const uint8_t *b, int j, const qk_scales *s, __m256 *scale, float *m) {
    const __m256i low4 = _mm256_set1_epi8(0x0F);
    switch (fmt) {
    case QK_Q8_0:
        *scale = bcast_f16_256(b); *m = 0;
        return _mm256_loadu_si256((const __m256i *)(b + 2));
    case QK_Q4_0: case QK_Q4_1: {
        const int off = fmt == QK_Q4_0 ? 2 : 4;
        const float d = f16_to_f32(b);
        *scale = _mm256_set1_ps(d);
        *m = fmt == QK_Q4_0 ? -8.0f * d : f16_to_f32(b + 2);
        const __m128i n = _mm_loadu_si128((const __m128i *)(b + off));
        return _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(n, 4), n), low4);
    }
    case QK_Q5_0: case QK_Q5_1: {
        const float d = f16_to_f32(b);
        *scale = _mm256_set1_ps(d);
        if (fmt == QK_Q5_0) { *m = -16.0f * d; return q5_bytes_256(load_u32(b + 2), b + 6); }
        *m = f16_to_f32(b + 2);
        return q5_bytes_256(load_u32(b + 4), b + 8);
    }
    case QK_IQ4_NL:
        *scale = bcast_f16_256(b); *m = 0;
        return iq4_bytes_256(b + 2);
    case QK_IQ4_XS:
        *scale = _mm256_broadcast_ss(&s->d[j]); *m = 0;
        return iq4_bytes_256(b + 8 + 16 * j);
    case QK_Q4_K: {
        const __m256i bytes = _mm256_loadu_si256((const __m256i *)(b + 16 + 32 * (j >> 1)));
        *scale = _mm256_broadcast_ss(&s->d[j]); *m = s->m[j];
        return _mm256_and_si256(j & 1 ? _mm256_srli_epi16(bytes, 4) : bytes, low4);
    }
    case QK_Q5_K: {
        const __m256i bytes = _mm256_loadu_si256((const __m256i *)(b + 48 + 32 * (j >> 1)));
        const __m256i qh = _mm256_loadu_si256((const __m256i *)(b + 16));
        const __m256i lo = _mm256_and_si256(j & 1 ? _mm256_srli_epi16(bytes, 4) : bytes, low4);
        const __m256i hi = _mm256_and_si256(_mm256_srl_epi16(qh, _mm_cvtsi32_si128(j)), _mm256_set1_epi8(0x01));
        *scale = _mm256_broadcast_ss(&s->d[j]); *m = s->m[j];
        return _mm256_or_si256(lo, _mm256_slli_epi16(hi, 4));
    }
    default: {  // Q6_K: scales d·sc for weights 0–15 and 16–31
        const float *sc = s->d + 8 * (j >> 2) + 2 * (j & 3);
        *scale = _mm256_set_m128(_mm_broadcast_ss(&sc[1]), _mm_broadcast_ss(&sc[0]));
        *m = 0;
        return q6_k_bytes(b, j);
    }
    }
}

/// Σ over pairs → int32 lanes of w·x (bytes), for the format's signedness; `aw` is |w| for signed formats.
QK_INLINE QK_AVX2 __m256 q8_dot(int fmt, __m256i w, __m256i aw, __m256i x) {
    const __m256i p16 = q8_signed(fmt) ? _mm256_maddubs_epi16(aw, _mm256_sign_epi8(x, w)) : _mm256_maddubs_epi16(w, x);
    return _mm256_cvtepi32_ps(_mm256_madd_epi16(p16, _mm256_set1_epi16(1)));
}

// Output rows [o, o + R) × token rows [u0, u0 + U) of y over the whole input.
QK_INLINE QK_AVX2 void q8_tile(int fmt, int R, int U, const uint8_t *w, int64_t rowBytes, int64_t nsb,
                               const void *xq, int64_t in, int64_t u0, float *y, int64_t ldy, int accumulate) {
    __m256 acc[4][4];
    float off[4][4];
    q8_row xr[4];
    for (int u = 0; u < U; u++) xr[u] = q8_at(xq, in, u0 + u);
    for (int r = 0; r < R; r++)
        for (int u = 0; u < U; u++) { acc[r][u] = _mm256_setzero_ps(); off[r][u] = 0; }
    const int nb = (int)(fmt_block(fmt) / QK_BLOCK);
    const int64_t bytes = fmt_bytes(fmt);
    if (u0 == 0) prefetch_ahead(w, R * rowBytes);
    for (int64_t sb = 0; sb < nsb; sb++) {
        qk_scales s[4];
        // The same (super-)block of the next tile's rows, one tile ahead (the float32 kernels' prefetch_next_tile).
        for (int r = 0; r < R; r++) {
            const uint8_t *p = w + r * rowBytes + sb * bytes, *next = p + R * rowBytes;
            if (nb > 1) {
                for (int64_t o = 0; o < bytes; o += 64) _mm_prefetch((const char *)(next + o), _MM_HINT_T0);
                _mm_prefetch((const char *)(next + bytes - 1), _MM_HINT_T0);
                q8_prepare(fmt, p, &s[r]);
            } else if (((uintptr_t)next & 63) < (uintptr_t)bytes) {
                _mm_prefetch((const char *)next, _MM_HINT_T0);
            }
        }
        for (int j = 0; j < nb; j++) {
            const int64_t blk = sb * nb + j;
            __m256i wv[4], aw[4];
            __m256 sc[4];
            float m[4];
            for (int r = 0; r < R; r++) {
                wv[r] = q8_unpack(fmt, w + r * rowBytes + sb * bytes, j, &s[r], &sc[r], &m[r]);
                aw[r] = q8_signed(fmt) ? _mm256_sign_epi8(wv[r], wv[r]) : wv[r];
            }
            for (int u = 0; u < U; u++) {
                const __m256i xv = _mm256_load_si256((const __m256i *)(xr[u].q + QK_BLOCK * blk));
                const __m256 dx = _mm256_broadcast_ss(&xr[u].d[blk]);
                for (int r = 0; r < R; r++) {
                    acc[r][u] = _mm256_fmadd_ps(q8_dot(fmt, wv[r], aw[r], xv), _mm256_mul_ps(sc[r], dx), acc[r][u]);
                    if (!q8_signed(fmt)) off[r][u] += m[r] * xr[u].s[blk];
                }
            }
        }
    }
    for (int u = 0; u < U; u++)
        for (int r = 0; r < R; r++) store(y + (u0 + u) * ldy + r, hsum256(acc[r][u]) + off[r][u], accumulate);
}

#define Q8_TILE_U(R, wr, yr) \
    switch (U) { \
    case 1: q8_tile(fmt, R, 1, wr, rowBytes, nsb, xq, in, u0, yr, ldy, accumulate); break; \
    case 2: q8_tile(fmt, R, 2, wr, rowBytes, nsb, xq, in, u0, yr, ldy, accumulate); break; \
    case 3: q8_tile(fmt, R, 3, wr, rowBytes, nsb, xq, in, u0, yr, ldy, accumulate); break; \
    default: q8_tile(fmt, R, 4, wr, rowBytes, nsb, xq, in, u0, yr, ldy, accumulate); break; \
    }

/// Output rows per tile for tiles of U token rows: ≤ 8 accumulators.
QK_INLINE int q8_rows(int64_t U) { return U == 1 ? 4 : 2; }

QK_INLINE QK_AVX2 void q8_linear(int fmt, const void *xq, int64_t t, int64_t in, const uint8_t *w,
                                 float *y, int64_t ldy, int64_t o0, int64_t o1, int accumulate) {
    const int64_t nsb = in / fmt_block(fmt), rowBytes = nsb * fmt_bytes(fmt);
    const int64_t tiles = (t + 3) / 4, size = (t + tiles - 1) / tiles;  // balanced tiles of ≤ 4 token rows
    const int R = q8_rows(size);
    // Row tiles outside, token tiles inside: a tile's rows stay in L1 across its token tiles, so memory
    // sees each weight once per call.
    int64_t o = o0;
    for (; o + R <= o1; o += R)
        for (int64_t u0 = 0; u0 < t; u0 += size) {
            const int U = (int)(t - u0 < size ? t - u0 : size);
            if (R == 4) { Q8_TILE_U(4, w + o * rowBytes, y + o) }
            else { Q8_TILE_U(2, w + o * rowBytes, y + o) }
        }
    for (; o < o1; o++)
        for (int64_t u0 = 0; u0 < t; u0 += size) {
            const int U = (int)(t - u0 < size ? t - u0 : size);
            Q8_TILE_U(1, w + o * rowBytes, y + o)
        }
}

typedef void (*q8_fn)(const void *xq, int64_t t, int64_t in, const uint8_t *w, float *y, int64_t ldy,
                      int64_t o0, int64_t o1, int accumulate);

#define Q8_INSTANCE(name, fmt) \
    static QK_AVX2 void q8_linear_##name(const void *xq, int64_t t, int64_t in, const uint8_t *w, float *y, int64_t ldy, \
                                          int64_t o0, int64_t o1, int accumulate) { \
        q8_linear(fmt, xq, t, in, w, y, ldy, o0, o1, accumulate); \
    }
Q8_INSTANCE(q4_1, QK_Q4_1)
Q8_INSTANCE(q8_0, QK_Q8_0)
Q8_INSTANCE(q5_0, QK_Q5_0)
Q8_INSTANCE(q4_k, QK_Q4_K)
Q8_INSTANCE(q6_k, QK_Q6_K)
Q8_INSTANCE(q4_0, QK_Q4_0)
Q8_INSTANCE(q5_1, QK_Q5_1)
Q8_INSTANCE(iq4_nl, QK_IQ4_NL)
Q8_INSTANCE(q5_k, QK_Q5_K)
Q8_INSTANCE(iq4_xs, QK_IQ4_XS)

// Indexed by qk_format; NULL where no int8 kernel reads the format.
static const q8_fn Q8_KERNELS[QK_FORMATS] = { q8_linear_q4_1, q8_linear_q8_0, q8_linear_q5_0, q8_linear_q4_k, q8_linear_q6_k,
                                              q8_linear_q4_0, q8_linear_q5_1, q8_linear_iq4_nl, q8_linear_q5_k, q8_linear_iq4_xs,
                                              NULL, NULL, NULL, NULL };

int qk_linear_q8(qk_format format, qk_isa isa, const void *xq, int64_t t, int64_t in, const void *w,
                 float *y, int64_t ldy, int64_t o0, int64_t o1, int accumulate) {
    if ((unsigned)format >= QK_FORMATS || !qk_q8_supports(format)) return -1;
    if (!xq || !w || !y || t < 0 || in <= 0 || in % fmt_block((int)format) != 0 || o0 < 0 || o1 < o0 || ldy < o1) return -1;
    if ((uintptr_t)xq % 32 != 0) return -1;
    if (isa == QK_ISA_NONE || isa > qk_best_isa()) return -1;
    if (t == 0 || o0 == o1) return 0;
    Q8_KERNELS[format](xq, t, in, (const uint8_t *)w, y, ldy, o0, o1, accumulate);
    return 0;
}
