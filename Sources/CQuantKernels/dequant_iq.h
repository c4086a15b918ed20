// Register dequantizers of the grid-coded i-quants (IQ2_XXS, IQ2_XS, IQ2_S, IQ3_XXS, IQ3_S, IQ1_S, IQ1_M),
// included by quant_kernels.c. Super-blocks of 256; each group of 8 weights (IQ3: two groups of 4) is one
// point of the format's lattice, read as float32 from qk_grid_table (iq_grids.c) with one load, then
// scaled and signed (IQ2, IQ3: sign bits; IQ1: a shift of ±⅛ before the scale). The arithmetic is
// Dequantize+IQuants.swift's, in its order (the scale a product of d and a small integer, exact where
// ggml's is; the point times the scale rounded once; a sign flip exact), so the same bits.
// `prepare_*` decodes a super-block's scales once (qk_scales: per 32 weights, or per 16 for IQ2_XS,
// IQ2_S and IQ1_M); `dequant_*_256` gives block j as four 8-lane vectors, `dequant_iq_512` joins them.
#ifndef QK_DEQUANT_IQ_H
#define QK_DEQUANT_IQ_H

#include "qk_common.h"
#include "iq_grids.h"

/// The 8 sign bits of a group from its 7 stored ones (the low 7 bits of s): the eighth makes the count of
/// minus signs even (ggml's `ksigns_iq2xs`).
QK_INLINE uint32_t iq_even_signs(uint32_t s) {
    s &= 127;
    return s | (uint32_t)__builtin_parity(s) << 7;
}

/// v with lane k negated where bit k of `s` (< 256) is set: one load of its lane masks (qk_sign_masks)
/// instead of building them (broadcast, and, compare, shift).
QK_INLINE QK_AVX2 __m256 iq_signed(__m256 v, uint32_t s) {
    return _mm256_xor_ps(v, _mm256_loadu_ps((const float *)(qk_sign_masks + 8 * s)));
}

/// Two 4-value points of an IQ3 grid as one 8-lane vector.
QK_INLINE QK_AVX2 __m256 iq3_pair(int at, int i0, int i1) {
    const float *g = qk_grid_table + at;
    return _mm256_insertf128_ps(_mm256_castps128_ps256(_mm_loadu_ps(g + 4 * i0)), _mm_loadu_ps(g + 4 * i1), 1);
}

/// One 8-value point of an IQ2 or IQ1 grid.
QK_INLINE QK_AVX2 __m256 iq8_point(int at, int i) { return _mm256_loadu_ps(qk_grid_table + at + 8 * i); }

// IQ2_XXS: f16 d; per block j at 2 + 8j: four index bytes, then a u32 of four 7-bit sign groups under a
// 4-bit scale s; w = (d·(½ + s))·¼ · grid · sign.
QK_INLINE QK_AVX2 void prepare_iq2_xxs(const uint8_t *b, qk_scales *s) {
    const float d = f16_to_f32(b);
    for (int j = 0; j < 8; j++) s->d[j] = d * (0.5f + (float)(load_u32(b + 6 + 8 * j) >> 28)) * 0.25f;
}

QK_INLINE QK_AVX2 void dequant_iq2_xxs_256(const uint8_t *b, int j, const qk_scales *s, __m256 w[4]) {
    const uint8_t *idx = b + 2 + 8 * j;
    const uint32_t aux = load_u32(idx + 4);
    const __m256 d = _mm256_broadcast_ss(&s->d[j]);
    for (int l = 0; l < 4; l++)
        w[l] = iq_signed(_mm256_mul_ps(d, iq8_point(QK_GRID_AT_IQ2XXS, idx[l])), iq_even_signs(aux >> (7 * l)));
}

/// IQ2_XS's and IQ2_S's scales: f16 d, and at `at` a byte per block of two 4-bit scales (one per 16 weights).
QK_INLINE QK_AVX2 void prepare_iq2_pairs(const uint8_t *b, int at, qk_scales *s) {
    const float d = f16_to_f32(b);
    for (int j = 0; j < 8; j++) {
        s->d[2 * j] = d * (0.5f + (float)(b[at + j] & 0xF)) * 0.25f;
        s->d[2 * j + 1] = d * (0.5f + (float)(b[at + j] >> 4)) * 0.25f;
    }
}

// IQ2_XS: f16 d, 32 u16 at 2 (9-bit index, 7 sign bits), 8 bytes of two 4-bit scales at 66 (one per 16
// weights); w = (d·(½ + s))·¼ · grid · sign.
QK_INLINE QK_AVX2 void dequant_iq2_xs_256(const uint8_t *b, int j, const qk_scales *s, __m256 w[4]) {
    for (int l = 0; l < 4; l++) {
        const uint32_t q = load_u16(b + 2 + 2 * (4 * j + l));
        const __m256 d = _mm256_broadcast_ss(&s->d[2 * j + l / 2]);
        w[l] = iq_signed(_mm256_mul_ps(d, iq8_point(QK_GRID_AT_IQ2XS, (int)(q & 511))), iq_even_signs(q >> 9));
    }
}

// IQ2_S: f16 d, 32 index bytes at 2, 32 sign bytes at 34, index bits 8–9 at 66 (2 bits a group), two
// 4-bit scales a block at 74; w = (d·(½ + s))·¼ · grid · sign.
QK_INLINE QK_AVX2 void dequant_iq2_s_256(const uint8_t *b, int j, const qk_scales *s, __m256 w[4]) {
    for (int l = 0; l < 4; l++) {
        const int p = 4 * j + l, index = b[2 + p] | ((b[66 + j] >> (2 * l)) & 3) << 8;
        const __m256 d = _mm256_broadcast_ss(&s->d[2 * j + l / 2]);
        w[l] = iq_signed(_mm256_mul_ps(d, iq8_point(QK_GRID_AT_IQ2S, index)), b[34 + p]);
    }
}

// IQ3_XXS: f16 d, 64 index bytes at 2 (4 weights each), per block j a u32 at 66 + 4j of four 7-bit sign
// groups (8 weights each) under a 4-bit scale; w = (d·(½ + s))·½ · grid · sign.
QK_INLINE QK_AVX2 void prepare_iq3_xxs(const uint8_t *b, qk_scales *s) {
    const float d = f16_to_f32(b);
    for (int j = 0; j < 8; j++) s->d[j] = d * (0.5f + (float)(load_u32(b + 66 + 4 * j) >> 28)) * 0.5f;
}

QK_INLINE QK_AVX2 void dequant_iq3_xxs_256(const uint8_t *b, int j, const qk_scales *s, __m256 w[4]) {
    const uint8_t *idx = b + 2 + 8 * j;
    const uint32_t aux = load_u32(b + 66 + 4 * j);
    const __m256 d = _mm256_broadcast_ss(&s->d[j]);
    for (int l = 0; l < 4; l++)
        w[l] = iq_signed(_mm256_mul_ps(d, iq3_pair(QK_GRID_AT_IQ3XXS, idx[2 * l], idx[2 * l + 1])), iq_even_signs(aux >> (7 * l)));
}

// IQ3_S: f16 d, 64 index bytes at 2, index bit 8 at 66 (a byte a block), 32 sign bytes at 74, two 4-bit
// scales a byte at 106 (one per block); w = d·(1 + 2s) · grid · sign.
QK_INLINE QK_AVX2 void prepare_iq3_s(const uint8_t *b, qk_scales *s) {
    const float d = f16_to_f32(b);
    for (int j = 0; j < 8; j++) s->d[j] = d * (float)(1 + 2 * ((b[106 + j / 2] >> (4 * (j % 2))) & 0xF));
}

QK_INLINE QK_AVX2 void dequant_iq3_s_256(const uint8_t *b, int j, const qk_scales *s, __m256 w[4]) {
    const uint8_t *idx = b + 2 + 8 * j;
    const int qh = b[66 + j];
    const __m256 d = _mm256_broadcast_ss(&s->d[j]);
    for (int l = 0; l < 4; l++) {
        const int i0 = idx[2 * l] | ((qh >> (2 * l)) & 1) << 8, i1 = idx[2 * l + 1] | ((qh >> (2 * l + 1)) & 1) << 8;
        w[l] = iq_signed(_mm256_mul_ps(d, iq3_pair(QK_GRID_AT_IQ3S, i0, i1)), b[74 + 4 * j + l]);
    }
}

/// IQ1's delta, −⅛ where `minus` (0 or 1) is 1, else ⅛: its sign bit set from `minus` rather than chosen,
/// which compiled to a branch on the stored bits, mispredicted half the time (AVX2, SmolLM2 `--pure` IQ1_M,
/// generation step: its `ffn_down` took 10.0 ms at 5.4 GFLOP/s).
QK_INLINE float iq1_delta(unsigned minus) {
    const uint32_t bits = 0x3E000000u | (minus & 1) << 31;  // 0x3E000000 is 0.125f
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

// IQ1_S: f16 d, 32 index bytes at 2, per block j a u16 at 34 + 2j: index bits 8–10 of its four groups
// (3 bits each), a 3-bit scale s at bit 12, the sign of delta at bit 15; w = d·(2s + 1) · (grid ± ⅛).
QK_INLINE QK_AVX2 void prepare_iq1_s(const uint8_t *b, qk_scales *s) {
    const float d = f16_to_f32(b);
    for (int j = 0; j < 8; j++) {
        const unsigned qh = load_u16(b + 34 + 2 * j);
        s->d[j] = d * (float)(2 * ((qh >> 12) & 7) + 1);
        s->m[j] = iq1_delta(qh >> 15);
    }
}

QK_INLINE QK_AVX2 void dequant_iq1_s_256(const uint8_t *b, int j, const qk_scales *s, __m256 w[4]) {
    const unsigned qh = load_u16(b + 34 + 2 * j);
    const __m256 d = _mm256_broadcast_ss(&s->d[j]), delta = _mm256_broadcast_ss(&s->m[j]);
    for (int l = 0; l < 4; l++) {
        const int index = b[2 + 4 * j + l] | (int)((qh >> (3 * l)) & 7) << 8;
        w[l] = _mm256_mul_ps(d, _mm256_add_ps(iq8_point(QK_GRID_AT_IQ1S, index), delta));
    }
}

// IQ1_M: 32 index bytes, 16 bytes at 32 of a nibble per group (index bits 8–10, the sign of its delta),
// four u16 at 48 of four 3-bit scales each (one per 16 weights) whose top nibbles make the f16 d;
// w = d·(2s + 1) · (grid ± ⅛).
QK_INLINE QK_AVX2 void prepare_iq1_m(const uint8_t *b, qk_scales *s) {
    const unsigned sc0 = load_u16(b + 48), sc1 = load_u16(b + 50), sc2 = load_u16(b + 52), sc3 = load_u16(b + 54);
    const unsigned bits = sc0 >> 12 | (sc1 >> 8 & 0xF0) | (sc2 >> 4 & 0xF00) | (sc3 & 0xF000);
    const float d = _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128((int)bits)));
    for (int j = 0; j < 8; j++) {
        const unsigned word = load_u16(b + 48 + 2 * (j / 2));
        for (int h = 0; h < 2; h++) s->d[2 * j + h] = d * (float)(2 * ((word >> (6 * (j % 2) + 3 * h)) & 7) + 1);
    }
}

QK_INLINE QK_AVX2 void dequant_iq1_m_256(const uint8_t *b, int j, const qk_scales *s, __m256 w[4]) {
    for (int l = 0; l < 4; l++) {
        const int nibble = (b[32 + 2 * j + l / 2] >> (4 * (l % 2))) & 0xF;
        const int index = b[4 * j + l] | (nibble & 7) << 8;
        const __m256 d = _mm256_broadcast_ss(&s->d[2 * j + l / 2]), delta = _mm256_set1_ps(iq1_delta((unsigned)nibble >> 3));
        w[l] = _mm256_mul_ps(d, _mm256_add_ps(iq8_point(QK_GRID_AT_IQ1S, index), delta));
    }
}

/// Whether `fmt` is a grid-coded i-quant.
QK_INLINE int fmt_is_iq_grid(int fmt) { return fmt >= QK_IQ2_XXS && fmt <= QK_IQ1_M; }

QK_INLINE QK_AVX2 void prepare_iq(int fmt, const uint8_t *b, qk_scales *s) {
    switch (fmt) {
    case QK_IQ2_XXS: prepare_iq2_xxs(b, s); break;
    case QK_IQ2_XS: prepare_iq2_pairs(b, 66, s); break;
    case QK_IQ2_S: prepare_iq2_pairs(b, 74, s); break;
    case QK_IQ3_XXS: prepare_iq3_xxs(b, s); break;
    case QK_IQ3_S: prepare_iq3_s(b, s); break;
    case QK_IQ1_S: prepare_iq1_s(b, s); break;
    default: prepare_iq1_m(b, s); break;
    }
}

QK_INLINE QK_AVX2 void dequant_iq_256(int fmt, const uint8_t *b, int j, const qk_scales *s, __m256 w[4]) {
    switch (fmt) {
    case QK_IQ2_XXS: dequant_iq2_xxs_256(b, j, s, w); break;
    case QK_IQ2_XS: dequant_iq2_xs_256(b, j, s, w); break;
    case QK_IQ2_S: dequant_iq2_s_256(b, j, s, w); break;
    case QK_IQ3_XXS: dequant_iq3_xxs_256(b, j, s, w); break;
    case QK_IQ3_S: dequant_iq3_s_256(b, j, s, w); break;
    case QK_IQ1_S: dequant_iq1_s_256(b, j, s, w); break;
    default: dequant_iq1_m_256(b, j, s, w); break;
    }
}

/// AVX-512: the AVX2 dequantizer's four vectors joined in pairs (the same values).
QK_INLINE QK_AVX512 void dequant_iq_512(int fmt, const uint8_t *b, int j, const qk_scales *s, __m512 *w0, __m512 *w1) {
    __m256 w[4];
    dequant_iq_256(fmt, b, j, s, w);
    *w0 = _mm512_castpd_ps(_mm512_insertf64x4(_mm512_castps_pd(_mm512_castps256_ps512(w[0])), _mm256_castps_pd(w[1]), 1));
    *w1 = _mm512_castpd_ps(_mm512_insertf64x4(_mm512_castps_pd(_mm512_castps256_ps512(w[2])), _mm256_castps_pd(w[3]), 1));
}

#endif
