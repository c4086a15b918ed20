// Register dequantizers of the formats with blocks of 32 (Q4_1, Q8_0, Q5_0, Q4_0, Q5_1, IQ4_NL), included by
// quant_kernels.c. Each turns one block into float32 exactly as Dequantize.swift does: AVX2 into
// four 8-lane vectors (weights 8i…8i+7 in w[i]), AVX-512 into two 16-lane ones (0…15, 16…31).
// FMA_EXACT: fusing d·q + m changes nothing where d (f16, 11 significant bits) times q (≤ 5 bits)
// has ≤ 16 significant bits, exact in float32: the product rounds the same fused or not.
#ifndef QK_DEQUANT_Q32_H
#define QK_DEQUANT_Q32_H

#include "qk_common.h"

// ---- AVX-512 ----

// The 16 possible values d·k + m of the block (k = 0…15) form a table; vpermps picks w[j] = table[q_j]
// and reads only the low 4 bits of each index, so the low nibbles need no mask. d and m arrive as one
// broadcast 32-bit load converted in place (measured: T = 10 90 → 96 GF/s over converting d and m
// separately, 80 → 90 over nibble→int→float conversions; T = 1 99 → 65 µs for 1536 × 576).
/// Q4_1's 32 weights d·q + m from d and m broadcast and its 16 bytes of nibbles at n.
QK_INLINE QK_AVX512 void q4_1_table_512(__m512 d, __m512 m, const uint8_t *n, __m512 *w0, __m512 *w1) {
    const __m512 k = _mm512_setr_ps(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    const __m512 table = _mm512_fmadd_ps(d, k, m);  // = d·k + m rounded once: d·k is exact (FMA_EXACT)
    const __m512i q = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)n));
    *w0 = _mm512_permutexvar_ps(q, table);
    *w1 = _mm512_permutexvar_ps(_mm512_srli_epi32(q, 4), table);
}

QK_INLINE QK_AVX512 void dequant_q4_1_512(const uint8_t *b, __m512 *w0, __m512 *w1) {
    uint32_t dm;
    memcpy(&dm, b, 4);
    const __m512 f = _mm512_cvtph_ps(_mm256_set1_epi32((int)dm));  // d, m, d, m, …
    q4_1_table_512(_mm512_moveldup_ps(f), _mm512_movehdup_ps(f), b + 4, w0, w1);
}

// QK_Q4_1F: the same weights with d and m already float32, broadcast by the loads themselves. Converting
// Q4_1's halves (a conversion and, with AVX-512, two shuffles a block) is work a one-token product waits
// on. One core of the Intel Xeon (family 6, model 207), 1536 × 576 and 576 × 1536 × 30 layers, weights in
// L3, best of 9, GFLOP/s Q4_1 → Q4_1F: AVX-512 T = 1 26.6 → 33.9, T = 10 102 → 108; AVX2 T = 1 17.4 → 20.4,
// T = 10 55.1 → 58.7 (the same bits).
QK_INLINE QK_AVX512 void dequant_q4_1f_512(const uint8_t *b, __m512 *w0, __m512 *w1) {
    float d, m;
    memcpy(&d, b, 4);
    memcpy(&m, b + 4, 4);
    q4_1_table_512(_mm512_set1_ps(d), _mm512_set1_ps(m), b + 8, w0, w1);
}

QK_INLINE QK_AVX512 void dequant_q8_0_512(const uint8_t *b, __m512 *w0, __m512 *w1) {
    const __m512 d = bcast_f16_512(b);
    *w0 = _mm512_mul_ps(d, _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(b + 2)))));
    *w1 = _mm512_mul_ps(d, _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(b + 18)))));
}

// Q5_0 (layout below, at its AVX2 twin): the nibbles of weights 0–15 and 16–31 as two 16-byte vectors,
// 16 added to the bytes whose fifth bit is set (qh's halves are the masks: AVX-512BW's masked byte add),
// then widened and converted 16 at a time; w = d·q + (−16·d), exact (FMA_EXACT). The same values as the
// AVX2 dequantizer, whose halves this kernel joined before (2026-12-05, one core, weights read from
// memory, the two builds alternating, GFLOP/s old → new: T = 1 4,864 × 896 18.8 → 24.5, 2,048 × 640
// 18.8 → 24.3; T = 10 71.4 → 73.6, 73.8 → 75.9; the same bits).
QK_INLINE QK_AVX512 void dequant_q5_0_512(const uint8_t *b, __m512 *w0, __m512 *w1) {
    const __m512 d = bcast_f16_512(b), off = _mm512_mul_ps(d, _mm512_set1_ps(-16.0f));  // exact: a power of 2
    const uint32_t qh = load_u32(b + 2);
    const __m128i n = _mm_loadu_si128((const __m128i *)(b + 6)), nibble = _mm_set1_epi8(0x0F), fifth = _mm_set1_epi8(0x10);
    const __m128i lo = _mm_and_si128(n, nibble), hi = _mm_and_si128(_mm_srli_epi16(n, 4), nibble);
    const __m128i q0 = _mm_mask_add_epi8(lo, (__mmask16)qh, lo, fifth), q1 = _mm_mask_add_epi8(hi, (__mmask16)(qh >> 16), hi, fifth);
    *w0 = _mm512_fmadd_ps(d, _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(q0)), off);  // FMA_EXACT
    *w1 = _mm512_fmadd_ps(d, _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(q1)), off);
}

// Q4_0: f16 d, 16 bytes of nibbles; w = d·(q − 8) = d·q + (−8·d), every term exact (FMA_EXACT). As Q4_1's:
// the 16 values d·k − 8d as a table that vpermps indexes with the nibbles.
QK_INLINE QK_AVX512 void dequant_q4_0_512(const uint8_t *b, __m512 *w0, __m512 *w1) {
    const __m512 d = bcast_f16_512(b), off = _mm512_mul_ps(d, _mm512_set1_ps(-8.0f));  // exact: a power of 2
    const __m512 k = _mm512_setr_ps(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    const __m512 table = _mm512_fmadd_ps(d, k, off);  // d·(k − 8), exact
    const __m512i q = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(b + 2)));
    *w0 = _mm512_permutexvar_ps(q, table);
    *w1 = _mm512_permutexvar_ps(_mm512_srli_epi32(q, 4), table);
}

// Q5_1: f16 d, f16 m, 32 fifth bits, 16 bytes of nibbles (Q5_0's layout after m); w = d·q + m, d·q exact.
QK_INLINE QK_AVX512 void dequant_q5_1_512(const uint8_t *b, __m512 *w0, __m512 *w1) {
    const __m512 d = bcast_f16_512(b), m = bcast_f16_512(b + 2);
    const uint32_t qh = load_u32(b + 4);
    const __m128i n = _mm_loadu_si128((const __m128i *)(b + 8)), nibble = _mm_set1_epi8(0x0F), fifth = _mm_set1_epi8(0x10);
    const __m128i lo = _mm_and_si128(n, nibble), hi = _mm_and_si128(_mm_srli_epi16(n, 4), nibble);
    const __m128i q0 = _mm_mask_add_epi8(lo, (__mmask16)qh, lo, fifth), q1 = _mm_mask_add_epi8(hi, (__mmask16)(qh >> 16), hi, fifth);
    *w0 = _mm512_fmadd_ps(d, _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(q0)), m);  // FMA_EXACT
    *w1 = _mm512_fmadd_ps(d, _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(q1)), m);
}

/// ggml's `kvalues_iq4nl`: the 16 values of IQ4_NL's and IQ4_XS's 4-bit codes.
#define QK_IQ4_VALUES -127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113
static const float QK_IQ4_FLOATS[16] __attribute__((aligned(64))) = { QK_IQ4_VALUES };

// IQ4_NL: f16 d, 16 bytes of codes (low nibbles weights 0–15, high 16–31); w = d·table[q], exact (11 × 8
// bits). The 16 products d·table[k] as a vpermps table, as Q4_1's.
QK_INLINE QK_AVX512 void dequant_iq4_nl_512(const uint8_t *b, __m512 *w0, __m512 *w1) {
    const __m512 table = _mm512_mul_ps(bcast_f16_512(b), _mm512_load_ps(QK_IQ4_FLOATS));
    const __m512i q = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(b + 2)));
    *w0 = _mm512_permutexvar_ps(q, table);
    *w1 = _mm512_permutexvar_ps(_mm512_srli_epi32(q, 4), table);
}

// ---- AVX2 ----

/// The 32 bytes of q as four 8-lane float vectors (byte 8i + k in lane k of f[i]), read as unsigned or signed.
QK_INLINE QK_AVX2 void widen_u8_256(__m256i q, __m256 f[4]) {
    const __m128i q0 = _mm256_castsi256_si128(q), q1 = _mm256_extracti128_si256(q, 1);
    const __m128i parts[4] = { q0, _mm_srli_si128(q0, 8), q1, _mm_srli_si128(q1, 8) };
    for (int i = 0; i < 4; i++) f[i] = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(parts[i]));
}

QK_INLINE QK_AVX2 void widen_i8_256(__m256i q, __m256 f[4]) {
    const __m128i q0 = _mm256_castsi256_si128(q), q1 = _mm256_extracti128_si256(q, 1);
    const __m128i parts[4] = { q0, _mm_srli_si128(q0, 8), q1, _mm_srli_si128(q1, 8) };
    for (int i = 0; i < 4; i++) f[i] = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(parts[i]));
}

/// Q4_1's 32 weights d·q + m from d and m broadcast and its 16 bytes of nibbles at n.
QK_INLINE QK_AVX2 void q4_1_weights_256(__m256 d, __m256 m, const uint8_t *n, __m256 w[4]) {
    const __m128i mask = _mm_set1_epi8(0x0F);
    const __m128i q = _mm_loadu_si128((const __m128i *)n);
    const __m128i lo = _mm_and_si128(q, mask), hi = _mm_and_si128(_mm_srli_epi16(q, 4), mask);
    const __m128i parts[4] = { lo, _mm_srli_si128(lo, 8), hi, _mm_srli_si128(hi, 8) };
    for (int i = 0; i < 4; i++)
        w[i] = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(parts[i])), m);  // FMA_EXACT
}

QK_INLINE QK_AVX2 void dequant_q4_1_256(const uint8_t *b, __m256 w[4]) { q4_1_weights_256(bcast_f16_256(b), bcast_f16_256(b + 2), b + 4, w); }

QK_INLINE QK_AVX2 void dequant_q4_1f_256(const uint8_t *b, __m256 w[4]) {
    q4_1_weights_256(_mm256_broadcast_ss((const float *)b), _mm256_broadcast_ss((const float *)(b + 4)), b + 8, w);
}

QK_INLINE QK_AVX2 void dequant_q8_0_256(const uint8_t *b, __m256 w[4]) {
    const __m256 d = bcast_f16_256(b);
    for (int i = 0; i < 4; i++)
        w[i] = _mm256_mul_ps(d, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)(b + 2 + 8 * i)))));
}

/// The 32 nibbles of 16 bytes as bytes, the low nibbles first (weights 0–15), then the high ones: the 16
/// bytes broadcast to both halves, the upper half's dwords shifted right by 4 (a byte's high nibble lands
/// in its low bits; what crosses from the next byte is masked off). Three operations, where a shift,
/// an insert of the halves and a mask took four.
QK_INLINE QK_AVX2 __m256i nibble_bytes_256(const uint8_t *n16) {
    const __m256i n = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)n16));
    return _mm256_and_si256(_mm256_srlv_epi32(n, _mm256_setr_epi32(0, 0, 0, 0, 4, 4, 4, 4)), _mm256_set1_epi8(0x0F));
}

/// The 32 bits of `bits` as bytes: byte e 0xFF where bit e is set, else 0. Byte e takes byte e / 8 of the
/// bits (a shuffle of them broadcast) and keeps bit e % 8 (a compare with a one-bit mask).
QK_INLINE QK_AVX2 __m256i bit_bytes_256(uint32_t bits) {
    const __m256i byteOfBits = _mm256_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1,
                                                2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3);
    const __m256i bit = _mm256_set1_epi64x(0x8040201008040201LL);  // byte e: 1 << (e % 8)
    const __m256i h = _mm256_shuffle_epi8(_mm256_set1_epi32((int)bits), byteOfBits);
    return _mm256_cmpeq_epi8(_mm256_and_si256(h, bit), bit);
}

/// The 32 five-bit values of a Q5_0 / Q5_1 block as bytes (weight e in byte e): fifth bits qh, nibbles n.
QK_INLINE QK_AVX2 __m256i q5_bytes_256(uint32_t qh, const uint8_t *n16) {
    const __m256i high = _mm256_and_si256(bit_bytes_256(qh), _mm256_set1_epi8(0x10));
    // The nibbles as a shift, an insert and a mask: nibble_bytes_256 measured 3–7 % slower here in the
    // float32 kernels (one AVX2 core, Q5_0 / Q5_1 4,864 × 896, T = 1 and 10).
    const __m128i n = _mm_loadu_si128((const __m128i *)n16);
    const __m256i low = _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(n, 4), n), _mm256_set1_epi8(0x0F));
    return _mm256_or_si256(low, high);
}

// Q5_0: f16 d, 32 high bits qh (bit e for weight e), 16 bytes of nibbles (weights 0–15 low, 16–31 high);
// w = d·(q − 16), computed as d·q + (−16·d): both terms and the result are exact (FMA_EXACT).
// The 32 values q are built as bytes in one 256-bit register, then widened 8 at a time: byte e takes
// bit e of qh as 0x10 (bit_bytes_256) and ORs in its nibble (measured, one core, 8192 × 1024, T = 10: 52.8 → 63.4 GF/s
// against per-lane variable shifts of qh; the same bits).
QK_INLINE QK_AVX2 void dequant_q5_0_256(const uint8_t *b, __m256 w[4]) {
    const __m256 d = bcast_f16_256(b), off = _mm256_mul_ps(d, _mm256_set1_ps(-16.0f));  // exact: a power of 2
    __m256 q[4];
    widen_u8_256(q5_bytes_256(load_u32(b + 2), b + 6), q);
    for (int i = 0; i < 4; i++) w[i] = _mm256_fmadd_ps(d, q[i], off);  // FMA_EXACT
}

QK_INLINE QK_AVX2 void dequant_q4_0_256(const uint8_t *b, __m256 w[4]) {
    const __m256 d = bcast_f16_256(b), off = _mm256_mul_ps(d, _mm256_set1_ps(-8.0f));  // exact: a power of 2
    const __m128i mask = _mm_set1_epi8(0x0F);
    const __m128i q = _mm_loadu_si128((const __m128i *)(b + 2));
    const __m128i lo = _mm_and_si128(q, mask), hi = _mm_and_si128(_mm_srli_epi16(q, 4), mask);
    const __m128i parts[4] = { lo, _mm_srli_si128(lo, 8), hi, _mm_srli_si128(hi, 8) };
    for (int i = 0; i < 4; i++)
        w[i] = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(parts[i])), off);  // FMA_EXACT
}

QK_INLINE QK_AVX2 void dequant_q5_1_256(const uint8_t *b, __m256 w[4]) {
    const __m256 d = bcast_f16_256(b), m = bcast_f16_256(b + 2);
    __m256 q[4];
    widen_u8_256(q5_bytes_256(load_u32(b + 4), b + 8), q);
    for (int i = 0; i < 4; i++) w[i] = _mm256_fmadd_ps(d, q[i], m);  // FMA_EXACT
}

/// The 32 codes of 16 bytes (low nibbles first, then high) looked up in IQ4_NL's table, as signed bytes.
QK_INLINE QK_AVX2 __m256i iq4_bytes_256(const uint8_t *codes) {
    const __m256i table = _mm256_setr_epi8(QK_IQ4_VALUES, QK_IQ4_VALUES);
    return _mm256_shuffle_epi8(table, nibble_bytes_256(codes));  // per 128-bit lane: both lanes hold the table
}

QK_INLINE QK_AVX2 void dequant_iq4_nl_256(const uint8_t *b, __m256 w[4]) {
    const __m256 d = bcast_f16_256(b);
    __m256 v[4];
    widen_i8_256(iq4_bytes_256(b + 2), v);
    for (int i = 0; i < 4; i++) w[i] = _mm256_mul_ps(d, v[i]);  // exact
}

// ---- unquantized halves, as blocks of 32: F16 (F16C's conversion) and BF16 (the 16 bits shifted into
// the top of a float32); both exact, as Dequantize.swift's. ----

QK_INLINE QK_AVX512 void dequant_f16_512(const uint8_t *b, __m512 *w0, __m512 *w1) {
    *w0 = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)b));
    *w1 = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(b + 32)));
}

QK_INLINE QK_AVX512 void dequant_bf16_512(const uint8_t *b, __m512 *w0, __m512 *w1) {
    *w0 = _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)b)), 16));
    *w1 = _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)(b + 32))), 16));
}

QK_INLINE QK_AVX2 void dequant_f16_256(const uint8_t *b, __m256 w[4]) {
    for (int i = 0; i < 4; i++) w[i] = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(b + 16 * i)));
}

QK_INLINE QK_AVX2 void dequant_bf16_256(const uint8_t *b, __m256 w[4]) {
    for (int i = 0; i < 4; i++)
        w[i] = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(b + 16 * i))), 16));
}

// Q1_0 (stored blocks of 128, read as 4 blocks of 32, j = 0…3): f16 d, 16 bytes of signs; weight l of block j
// is +d where bit l % 8 of byte 4j + l / 8 is set, −d where clear (Dequantize.swift: the same two values, −d
// being d with its sign bit flipped). AVX-512: the block's 32 bits are two lane masks.
QK_INLINE QK_AVX512 void dequant_q1_0_512(const uint8_t *b, int j, __m512 *w0, __m512 *w1) {
    const __m512 d = bcast_f16_512(b);
    const __m512 nd = _mm512_castsi512_ps(_mm512_xor_si512(_mm512_castps_si512(d), _mm512_set1_epi32((int)0x80000000u)));
    const uint32_t bits = load_u32(b + 2 + 4 * j);
    *w0 = _mm512_mask_mov_ps(nd, (__mmask16)(bits & 0xFFFF), d);
    *w1 = _mm512_mask_mov_ps(nd, (__mmask16)(bits >> 16), d);
}

// AVX2: bit 8i + k shifted to lane k's sign bit, which flips −d back to +d.
QK_INLINE QK_AVX2 void dequant_q1_0_256(const uint8_t *b, int j, __m256 w[4]) {
    const __m256 nd = _mm256_xor_ps(bcast_f16_256(b), _mm256_set1_ps(-0.0f));
    const __m256i bits = _mm256_set1_epi32((int)load_u32(b + 2 + 4 * j)), sign = _mm256_set1_epi32((int)0x80000000u);
    for (int i = 0; i < 4; i++) {
        const __m256i up = _mm256_sllv_epi32(bits, _mm256_setr_epi32(31 - 8 * i, 30 - 8 * i, 29 - 8 * i, 28 - 8 * i,
                                                                     27 - 8 * i, 26 - 8 * i, 25 - 8 * i, 24 - 8 * i));
        w[i] = _mm256_xor_ps(nd, _mm256_castsi256_ps(_mm256_and_si256(up, sign)));
    }
}

#endif
