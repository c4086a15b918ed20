// Register dequantizers of the K-quant formats with super-blocks of 256 (Q4_K, Q6_K), included by
// quant_kernels.c. `prepare_*` decodes a super-block's scales into float32 once (`qk_scales`);
// `dequant_*_256` then turns its block j (weights 32j…32j+31) into four 8-lane vectors (weights
// 32j + 8i…+7 in w[i]), exactly as Dequantize.swift computes them (qk_common.h: the scales are
// exact products); `dequant_*_512`, their AVX-512 twins, give the same values as two 16-lane vectors.
#ifndef QK_DEQUANT_K_H
#define QK_DEQUANT_K_H

#include "qk_common.h"

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

// d·sc_j·q has ≤ 11 + 6 + 4 bits, exact in float32: the fused d·sc_j·q − dmin·m_j rounds once, as
// Dequantize.swift's `d1 * q - n1` does.
QK_INLINE QK_AVX2 void dequant_q4_k_256(const uint8_t *b, int j, const qk_scales *s, __m256 w[4]) {
    const uint8_t *q = b + 16 + 32 * (j >> 1);
    const __m128i shift = _mm_cvtsi32_si128(4 * (j & 1));
    const __m256i nib = _mm256_set1_epi32(0x0F);
    const __m256 d = _mm256_broadcast_ss(&s->d[j]), m = _mm256_broadcast_ss(&s->m[j]);
    for (int i = 0; i < 4; i++) {
        const __m256i v = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(q + 8 * i)));
        w[i] = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(_mm256_and_si256(_mm256_srl_epi32(v, shift), nib)), m);
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
    const __m256i q = q6_k_bytes(b, j);
    const __m128i q0 = _mm256_castsi256_si128(q), q1 = _mm256_extracti128_si256(q, 1);
    const __m128i parts[4] = { q0, _mm_srli_si128(q0, 8), q1, _mm_srli_si128(q1, 8) };
    const float *sc = s->d + 8 * (j >> 2) + 2 * (j & 3);
    for (int i = 0; i < 4; i++)
        w[i] = _mm256_mul_ps(_mm256_broadcast_ss(&sc[i >> 1]), _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(parts[i])));
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

#endif
