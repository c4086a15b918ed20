// Register dequantizers of the formats with super-blocks of 256 (Q4_K, Q6_K, Q5_K, Q3_K, Q2_K, IQ4_XS), included by
// quant_kernels.c. `prepare_*` decodes a super-block's scales into float32 once (`qk_scales`);
// `dequant_*_256` then turns its block j (weights 32j…32j+31) into four 8-lane vectors (weights
// 32j + 8i…+7 in w[i]), exactly as Dequantize.swift computes them (qk_common.h: the scales are
// exact products); `dequant_*_512`, their AVX-512 twins, give the same values as two 16-lane vectors.
#ifndef QK_DEQUANT_K_H
#define QK_DEQUANT_K_H

#include "qk_common.h"
#include "dequant_iq.h"

// Q4_K: f16 d, f16 dmin, 12 bytes holding eight 6-bit scales sc_j and mins m_j, 128 bytes of nibbles:
// block j = 2g + h (g = 0…3) holds the low (h = 0) or high (h = 1) nibbles of bytes 32g…32g+31;
// w = d·sc_j·q − dmin·m_j. Scales j < 4: low 6 bits of bytes j (sc) and j + 4 (m); j ≥ 4: the
// nibbles of byte j + 4 (low: sc, high: m) under the top 2 bits of bytes j − 4 (sc) and j (m).
QK_INLINE QK_AVX2 void prepare_q4_k(const uint8_t *b, qk_scales *s) {
    const float d = f16_to_f32(b), dmin = f16_to_f32(b + 2);
    const uint8_t *sc = b + 4;
    for (int j = 0; j < 4; j++) {
        s->d[j] = d * (float)(sc[j] & 63);
        s->m[j] = -(dmin * (float)(sc[j + 4] & 63));
        s->d[j + 4] = d * (float)((sc[j + 8] & 0xF) | (sc[j] >> 6) << 4);
        s->m[j + 4] = -(dmin * (float)((sc[j + 8] >> 4) | (sc[j + 4] >> 6) << 4));
    }
}

// The nibbles of 8 bytes zero-extended to 32-bit lanes: the low ones masked, the high ones shifted down
// by an immediate (a byte shifted right by 4 needs no mask). One operation instead of a shift by a
// register count and a mask: measured 2026-12-06 on Zen 1 (one core, Q4_K 896 × 4864 in cache, T = 1,
// 8 rows a tile, best of 100, ns a block of 32): 10.1–12.1 → 7.3–8.6 in the same runs, the same bits.
QK_INLINE QK_AVX2 __m256i nibbles_256(__m256i v, int high) {
    return high ? _mm256_srli_epi32(v, 4) : _mm256_and_si256(v, _mm256_set1_epi32(0x0F));
}

// d·sc_j·q has ≤ 11 + 6 + 4 bits, exact in float32: the fused d·sc_j·q − dmin·m_j rounds once, as
// Dequantize.swift's `d1 * q - n1` does.
QK_INLINE QK_AVX2 void dequant_q4_k_256(const uint8_t *b, int j, const qk_scales *s, __m256 w[4]) {
    const uint8_t *q = b + 16 + 32 * (j >> 1);
    const __m256 d = _mm256_broadcast_ss(&s->d[j]), m = _mm256_broadcast_ss(&s->m[j]);
    for (int i = 0; i < 4; i++) {
        const __m256i v = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(q + 8 * i)));
        w[i] = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(nibbles_256(v, j & 1)), m);
    }
}

// AVX-512: the same values as dequant_q4_k_256, as two 16-lane vectors: the block's 32 nibbles
// (the low or high halves of 32 bytes) as bytes, widened 16 at a time, then the same fused
// d·sc_j·q − dmin·m_j.
QK_INLINE QK_AVX512 void dequant_q4_k_512(const uint8_t *b, int j, const qk_scales *s, __m512 *w0, __m512 *w1) {
    const __m256i bytes = _mm256_loadu_si256((const __m256i *)(b + 16 + 32 * (j >> 1)));
    const __m256i q = _mm256_and_si256(_mm256_srl_epi16(bytes, _mm_cvtsi32_si128(4 * (j & 1))), _mm256_set1_epi8(0x0F));
    const __m512 d = _mm512_set1_ps(s->d[j]), m = _mm512_set1_ps(s->m[j]);
    *w0 = _mm512_fmadd_ps(d, _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm256_castsi256_si128(q))), m);
    *w1 = _mm512_fmadd_ps(d, _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm256_extracti128_si256(q, 1))), m);
}

// Q6_K: 128 bytes ql (low 4 bits), 64 bytes qh (high 2 bits), 16 int8 scales, f16 d; w = d·sc·(q − 32).
// Half h = j / 4 of the super-block uses ql[64h…], qh[32h…] and scales 8h…8h+7; its quarter k = j % 4,
// weight l (0…31), takes the low (k < 2) or high nibble of ql[64h + 32(k % 2) + l], bits 2k, 2k + 1
// of qh[32h + l], and scale 8h + 2k + l / 16.
QK_INLINE QK_AVX2 void prepare_q6_k(const uint8_t *b, qk_scales *s) {
    const float d = f16_to_f32(b + 208);
    const int8_t *sc = (const int8_t *)(b + 192);
    for (int i = 0; i < 16; i++) s->d[i] = d * (float)sc[i];
}

/// Block j's 32 values q − 32 as signed bytes (weight l in byte l), for both ISAs' dequantizers.
QK_INLINE QK_AVX2 __m256i q6_k_bytes(const uint8_t *b, int j) {
    const int h = j >> 2, k = j & 3;
    const __m256i ql = _mm256_loadu_si256((const __m256i *)(b + 64 * h + 32 * (k & 1)));
    const __m256i qh = _mm256_loadu_si256((const __m256i *)(b + 128 + 32 * h));
    // 16-bit shifts, then byte masks: what crosses from the neighbouring byte is masked off.
    const __m256i lo = _mm256_and_si256(_mm256_srl_epi16(ql, _mm_cvtsi32_si128(4 * (k >> 1))), _mm256_set1_epi8(0x0F));
    const __m256i hi = _mm256_and_si256(_mm256_srl_epi16(qh, _mm_cvtsi32_si128(2 * k)), _mm256_set1_epi8(0x03));
    return _mm256_sub_epi8(_mm256_or_si256(lo, _mm256_slli_epi16(hi, 4)), _mm256_set1_epi8(32));
}

// The 32 values q − 32 are built as bytes in one 256-bit register, then widened 8 at a time.
// d·sc is exact, so (d·sc)·(q − 32) rounds once, as Dequantize.swift's `d * sc * q` does.
QK_INLINE QK_AVX2 void dequant_q6_k_256(const uint8_t *b, int j, const qk_scales *s, __m256 w[4]) {
    __m256 q[4];
    widen_i8_256(q6_k_bytes(b, j), q);
    const float *sc = s->d + 8 * (j >> 2) + 2 * (j & 3);
    for (int i = 0; i < 4; i++) w[i] = _mm256_mul_ps(_mm256_broadcast_ss(&sc[i >> 1]), q[i]);
}

// AVX-512: the same values as dequant_q6_k_256, as two 16-lane vectors (weights 0–15 take scale
// 8h + 2k, 16–31 the next): q − 32 from q6_k_bytes, widened 16 at a time, so the four 8-lane
// widenings and the joins of two halves are gone.
QK_INLINE QK_AVX512 void dequant_q6_k_512(const uint8_t *b, int j, const qk_scales *s, __m512 *w0, __m512 *w1) {
    const __m256i q = q6_k_bytes(b, j);
    const float *sc = s->d + 8 * (j >> 2) + 2 * (j & 3);
    *w0 = _mm512_mul_ps(_mm512_set1_ps(sc[0]), _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm256_castsi256_si128(q))));
    *w1 = _mm512_mul_ps(_mm512_set1_ps(sc[1]), _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm256_extracti128_si256(q, 1))));
}

// Q5_K: Q4_K's header (the same prepare_q4_k), 32 bytes qh of fifth bits (block j: bit j of qh[l] for weight
// l), 128 bytes of nibbles at 48; w = d·sc_j·(q + 16·bit) − dmin·m_j, the product exact (11 + 6 + 5 bits).
QK_INLINE QK_AVX2 void dequant_q5_k_256(const uint8_t *b, int j, const qk_scales *s, __m256 w[4]) {
    const uint8_t *q = b + 48 + 32 * (j >> 1);
    const __m128i hshift = _mm_cvtsi32_si128(j);
    const __m256i one = _mm256_set1_epi32(1);
    const __m256 d = _mm256_broadcast_ss(&s->d[j]), m = _mm256_broadcast_ss(&s->m[j]);
    for (int i = 0; i < 4; i++) {
        const __m256i v = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(q + 8 * i)));
        const __m256i h = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(b + 16 + 8 * i)));
        const __m256i qq = _mm256_or_si256(nibbles_256(v, j & 1),
                                           _mm256_slli_epi32(_mm256_and_si256(_mm256_srl_epi32(h, hshift), one), 4));
        w[i] = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(qq), m);
    }
}

QK_INLINE QK_AVX512 void dequant_q5_k_512(const uint8_t *b, int j, const qk_scales *s, __m512 *w0, __m512 *w1) {
    const __m256i bytes = _mm256_loadu_si256((const __m256i *)(b + 48 + 32 * (j >> 1)));
    const __m256i qh = _mm256_loadu_si256((const __m256i *)(b + 16));
    const __m256i lo = _mm256_and_si256(_mm256_srl_epi16(bytes, _mm_cvtsi32_si128(4 * (j & 1))), _mm256_set1_epi8(0x0F));
    // 16-bit shifts then a mask of bit 0 of each byte: bit j of the same byte (j ≤ 7), nothing carried in.
    const __m256i hi = _mm256_and_si256(_mm256_srl_epi16(qh, _mm_cvtsi32_si128(j)), _mm256_set1_epi8(0x01));
    const __m256i q = _mm256_or_si256(lo, _mm256_slli_epi16(hi, 4));
    const __m512 d = _mm512_set1_ps(s->d[j]), m = _mm512_set1_ps(s->m[j]);
    *w0 = _mm512_fmadd_ps(d, _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm256_castsi256_si128(q))), m);
    *w1 = _mm512_fmadd_ps(d, _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm256_extracti128_si256(q, 1))), m);
}

// IQ4_XS: f16 d, u16 of the 8 scales' high 2 bits, 4 bytes of their low nibbles, then per block j 16 bytes
// of IQ4_NL codes (low nibbles weights 0–15, high 16–31); w = (d·(sc_j − 32))·table[q]: d·(sc − 32) exact,
// its product with the table value rounded once, as Dequantize.swift's `dl * table[q]`.
QK_INLINE QK_AVX2 void prepare_iq4_xs(const uint8_t *b, qk_scales *s) {
    const float d = f16_to_f32(b);
    const unsigned high = load_u16(b + 2);
    for (int j = 0; j < 8; j++) {
        const int sc = ((b[4 + j / 2] >> (4 * (j % 2))) & 0xF) | (int)((high >> (2 * j)) & 3) << 4;
        s->d[j] = d * (float)(sc - 32);
    }
}

QK_INLINE QK_AVX2 void dequant_iq4_xs_256(const uint8_t *b, int j, const qk_scales *s, __m256 w[4]) {
    const __m256 d = _mm256_broadcast_ss(&s->d[j]);
    __m256 v[4];
    widen_i8_256(iq4_bytes_256(b + 8 + 16 * j), v);
    for (int i = 0; i < 4; i++) w[i] = _mm256_mul_ps(d, v[i]);
}

// AVX-512: the 16 products d_j·table[k] (each rounded once, as above) as a vpermps table.
QK_INLINE QK_AVX512 void dequant_iq4_xs_512(const uint8_t *b, int j, const qk_scales *s, __m512 *w0, __m512 *w1) {
    const __m512 table = _mm512_mul_ps(_mm512_set1_ps(s->d[j]), _mm512_load_ps(QK_IQ4_FLOATS));
    const __m512i q = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(b + 8 + 16 * j)));
    *w0 = _mm512_permutexvar_ps(q, table);
    *w1 = _mm512_permutexvar_ps(_mm512_srli_epi32(q, 4), table);
}

// Q3_K: 32 bytes hm of third bits (block j: bit j of hm[l] for weight l), 64 bytes of 2-bit parts at 32
// (block j: bits 2(j % 4)… of byte 32(j / 4) + l), 12 bytes of sixteen 6-bit scales at 96 (biased by 32),
// f16 d at 108; q = low − 4 where the third bit is clear; w = d·(sc_i − 32)·q for the 16 weights of scale i.
// The 16 scales in SIMD (a scalar loop over them took a third of a one-token Q3_K product): byte i takes the
// low (i < 8) or high nibble of sc[i % 8], and bits 2(i / 4)… of sc[8 + i % 4] (dword k of the broadcast
// high bytes shifted right by 2k, then masked per byte: nothing crosses into the bits kept).
QK_INLINE QK_AVX2 void prepare_q3_k(const uint8_t *b, qk_scales *s) {
    const __m256 d = _mm256_set1_ps(f16_to_f32(b + 108));
    const __m128i lo8 = _mm_loadl_epi64((const __m128i *)(b + 96)), nib = _mm_set1_epi8(0x0F);
    const __m128i low = _mm_unpacklo_epi64(_mm_and_si128(lo8, nib), _mm_and_si128(_mm_srli_epi16(lo8, 4), nib));
    const uint32_t h = load_u32(b + 104);
    const __m128i high = _mm_and_si128(_mm_setr_epi32((int)h, (int)(h >> 2), (int)(h >> 4), (int)(h >> 6)), _mm_set1_epi8(0x03));
    const __m128i sc = _mm_sub_epi8(_mm_or_si128(low, _mm_slli_epi16(high, 4)), _mm_set1_epi8(32));
    _mm256_storeu_ps(s->d, _mm256_mul_ps(d, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(sc))));
    _mm256_storeu_ps(s->d + 8, _mm256_mul_ps(d, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(sc, 8)))));
}

/// Block j's 32 values q (−4…3) as signed bytes (weight l in byte l), for both ISAs' dequantizers.
QK_INLINE QK_AVX2 __m256i q3_k_bytes(const uint8_t *b, int j) {
    const __m256i ql = _mm256_loadu_si256((const __m256i *)(b + 32 + 32 * (j >> 2)));
    const __m256i hm = _mm256_loadu_si256((const __m256i *)b);
    // 16-bit shifts, then byte masks: what crosses from the neighbouring byte is masked off.
    const __m256i lo = _mm256_and_si256(_mm256_srl_epi16(ql, _mm_cvtsi32_si128(2 * (j & 3))), _mm256_set1_epi8(0x03));
    const __m256i hi = _mm256_and_si256(_mm256_srl_epi16(hm, _mm_cvtsi32_si128(j)), _mm256_set1_epi8(0x01));
    return _mm256_sub_epi8(_mm256_or_si256(lo, _mm256_slli_epi16(hi, 2)), _mm256_set1_epi8(4));
}

// d·(sc − 32) is exact and so is its product with q (≤ 3 bits): the same value as Dequantize.swift's.
QK_INLINE QK_AVX2 void dequant_q3_k_256(const uint8_t *b, int j, const qk_scales *s, __m256 w[4]) {
    __m256 q[4];
    widen_i8_256(q3_k_bytes(b, j), q);
    const float *sc = s->d + 2 * j;
    for (int i = 0; i < 4; i++) w[i] = _mm256_mul_ps(_mm256_broadcast_ss(&sc[i >> 1]), q[i]);
}

QK_INLINE QK_AVX512 void dequant_q3_k_512(const uint8_t *b, int j, const qk_scales *s, __m512 *w0, __m512 *w1) {
    const __m256i q = q3_k_bytes(b, j);
    const float *sc = s->d + 2 * j;
    *w0 = _mm512_mul_ps(_mm512_set1_ps(sc[0]), _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm256_castsi256_si128(q))));
    *w1 = _mm512_mul_ps(_mm512_set1_ps(sc[1]), _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm256_extracti128_si256(q, 1))));
}

// Q2_K: 16 bytes of scales (low nibble sc_i, high nibble m_i, per 16 weights), 64 bytes of 2-bit q at 16
// (block j: bits 2(j % 4)… of byte 32(j / 4) + l), f16 d at 80, f16 dmin at 82; w = d·sc_i·q − dmin·m_i:
// the product is exact, so the fused form rounds once, as Dequantize.swift's `dl * q - ml`.
// In SIMD, as prepare_q3_k; −(dmin·m) is computed as (−dmin)·m, the same value.
QK_INLINE QK_AVX2 void prepare_q2_k(const uint8_t *b, qk_scales *s) {
    const __m256 d = _mm256_set1_ps(f16_to_f32(b + 80)), nd = _mm256_set1_ps(-f16_to_f32(b + 82));
    const __m128i sc = _mm_loadu_si128((const __m128i *)b), nib = _mm_set1_epi8(0x0F);
    const __m128i lo = _mm_and_si128(sc, nib), hi = _mm_and_si128(_mm_srli_epi16(sc, 4), nib);
    for (int k = 0; k < 2; k++) {
        const __m128i l = k ? _mm_srli_si128(lo, 8) : lo, m = k ? _mm_srli_si128(hi, 8) : hi;
        _mm256_storeu_ps(s->d + 8 * k, _mm256_mul_ps(d, _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(l))));
        _mm256_storeu_ps(s->m + 8 * k, _mm256_mul_ps(nd, _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(m))));
    }
}

/// Block j's 32 values q (0…3) as bytes (weight l in byte l).
QK_INLINE QK_AVX2 __m256i q2_k_bytes(const uint8_t *b, int j) {
    const __m256i q = _mm256_loadu_si256((const __m256i *)(b + 16 + 32 * (j >> 2)));
    return _mm256_and_si256(_mm256_srl_epi16(q, _mm_cvtsi32_si128(2 * (j & 3))), _mm256_set1_epi8(0x03));
}

QK_INLINE QK_AVX2 void dequant_q2_k_256(const uint8_t *b, int j, const qk_scales *s, __m256 w[4]) {
    __m256 q[4];
    widen_u8_256(q2_k_bytes(b, j), q);
    for (int i = 0; i < 4; i++) {
        const int k = 2 * j + (i >> 1);
        w[i] = _mm256_fmadd_ps(_mm256_broadcast_ss(&s->d[k]), q[i], _mm256_broadcast_ss(&s->m[k]));
    }
}

QK_INLINE QK_AVX512 void dequant_q2_k_512(const uint8_t *b, int j, const qk_scales *s, __m512 *w0, __m512 *w1) {
    const __m256i q = q2_k_bytes(b, j);
    const int k = 2 * j;
    *w0 = _mm512_fmadd_ps(_mm512_set1_ps(s->d[k]), _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm256_castsi256_si128(q))), _mm512_set1_ps(s->m[k]));
    *w1 = _mm512_fmadd_ps(_mm512_set1_ps(s->d[k + 1]), _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm256_extracti128_si256(q, 1))), _mm512_set1_ps(s->m[k + 1]));
}

/// Decodes the scales of the super-block at `b` (K-quants; nothing for the others), for the float32 and
/// the int8 kernels alike.
QK_INLINE QK_AVX2 void prepare(int fmt, const uint8_t *b, qk_scales *s) {
    if (fmt == QK_Q4_K || fmt == QK_Q5_K) prepare_q4_k(b, s);
    else if (fmt == QK_Q6_K) prepare_q6_k(b, s);
    else if (fmt == QK_IQ4_XS) prepare_iq4_xs(b, s);
    else if (fmt == QK_Q3_K) prepare_q3_k(b, s);
    else if (fmt == QK_Q2_K) prepare_q2_k(b, s);
    else if (fmt_is_iq_grid(fmt)) prepare_iq(fmt, b, s);
    else (void)s;
}

#endif
