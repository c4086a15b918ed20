// Products on 8-bit activations (`Activations.int8`: `generate --activations int8`); see include/quant_kernels.h for the contract.
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
//   signed weights (Q8_0, IQ4_NL, IQ4_XS, Q6_K's q − 32, Q3_K):  d_w·d_x·Σ q_w·q_x   (|q_w| as unsigned bytes,
//     q_x given q_w's sign: vpsignb, as llama.cpp does)
//   unsigned weights with an offset (Q4_0, Q5_0: m = −8d, −16d; Q4_1, Q5_1: m; Q4_K, Q5_K: −dmin·m_j):
//     d_w·d_x·Σ q_w·q_x + m·(d_x·Σ q_x), the second factor computed once per activation block (`s`);
//     Q2_K's mins (one per 16 weights) take Σ q_x of each half of the block, summed in the tile.
//   the grid-coded i-quants (IQ2_*, IQ3_*, IQ1_*): signed, their points as bytes ("the grid-coded i-quants as bytes" below)
//   Q6_K, Q3_K, Q2_K, IQ2_XS, IQ2_S and IQ1_M scale each half of a block (16 weights) apart: the int32 lanes 0–3 hold the first.
// Rows of up to 4 output rows by up to 4 token rows share each block's unpacking and each load of x.
// Blocks go in pairs, and with ≤ 2 token rows the second block of a pair adds into a second set of
// accumulators: one accumulator per row made each block wait on the previous block's FMA (int8_tile.h).
#include "qk_common.h"
#include "dequant_q32.h"
#include "dequant_k.h"

#include <stdint.h>
#include <stdlib.h>

int qk_q8_supports(qk_format format) {
    switch (format) {
    case QK_Q8_0: case QK_Q4_0: case QK_Q4_1: case QK_Q5_0: case QK_Q5_1: case QK_IQ4_NL:
    case QK_Q4_K: case QK_Q5_K: case QK_Q6_K: case QK_IQ4_XS: case QK_Q3_K: case QK_Q2_K:
    case QK_IQ2_XXS: case QK_IQ2_XS: case QK_IQ2_S: case QK_IQ3_XXS: case QK_IQ3_S: case QK_IQ1_S: case QK_IQ1_M: case QK_Q1_0: case QK_Q4_1F: return 1;
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

/// Whether `fmt`'s bytes are signed (multiplied by the sign trick) or unsigned with an offset m.
QK_INLINE int q8_signed(int fmt) {
    return fmt == QK_Q8_0 || fmt == QK_IQ4_NL || fmt == QK_IQ4_XS || fmt == QK_Q6_K || fmt == QK_Q3_K || fmt == QK_Q1_0 || fmt_is_iq_grid(fmt);
}

// ---- the grid-coded i-quants as bytes ----
// A block's 32 weights are its points (qk_grid_bytes: four of 8 bytes, or eight of 4 for IQ3), signed
// and scaled. IQ2's and IQ3's points are positive, so the unpacking gives their magnitudes as they are
// and, as its "weights", the signs alone (bytes ±1): x takes the signs (vpsignb) and the magnitudes
// multiply it unsigned, as for the other signed formats, with no vpsignb of the weights. IQ1's values
// are g ± ⅛ (g ∈ {−1, 0, 1}): the table holds 8·g, the unpacking adds ±1, and the scale is d·(2s + 1) / 8,
// exact (a power of 2), so Σ w·x̂ is the same sum.
// The points come by vpgatherdd / vpgatherqq, their indices built in vector lanes. Measured on the Intel
// Xeon of session 45 (family 6, model 207; AVX2 kernels, 2 threads, `bench forward --activations int8
// --breakdown`, generation step, ms, scalar loads and inserts → gathers): IQ3_S `ffn_down` Qwen 9.35 / 9.22 →
// 5.24 / 5.18, SmolLM2 2.62 / 2.55 → 1.54 / 1.51; IQ2_S 1.72 → 1.40; IQ2_XXS 1.41 → 1.32. Gathers are
// slower on AMD's Zen 1 and Zen 2 than on Intel's cores; not measured there.

/// Whether the unpacking of `fmt` gives the magnitudes and the signs apart (IQ2, IQ3).
QK_INLINE int q8_signs_apart(int fmt) { return fmt_is_iq_grid(fmt) && fmt != QK_IQ1_S && fmt != QK_IQ1_M; }

/// Points i[0…3] (int32 lanes) of an 8-value grid at `at` in bytes 0–7, 8–15, 16–23, 24–31.
QK_INLINE QK_AVX2 __m256i iq_points8(int at, __m128i i) {
    return _mm256_i32gather_epi64((const long long *)(qk_grid_bytes + at), i, 8);
}

/// The 4 bytes at p as int32 lanes.
QK_INLINE QK_AVX2 __m128i iq_index_bytes4(const uint8_t *p) { return _mm_cvtepu8_epi32(_mm_cvtsi32_si128((int)load_u32(p))); }

/// 32 sign bits (bit e: weight e) as bytes, −1 where set, +1 elsewhere.
QK_INLINE QK_AVX2 __m256i iq_sign_bytes(uint32_t bits) { return _mm256_or_si256(bit_bytes_256(bits), _mm256_set1_epi8(1)); }

/// Four groups of 7 stored sign bits (IQ2_XXS, IQ2_XS, IQ3_XXS) as bytes ±1, each group's eighth made even:
/// one table load a group.
QK_INLINE QK_AVX2 __m256i iq_even_sign_bytes(unsigned s0, unsigned s1, unsigned s2, unsigned s3) {
    return _mm256_set_epi64x((long long)qk_even_sign_bytes[s3 & 127], (long long)qk_even_sign_bytes[s2 & 127],
                             (long long)qk_even_sign_bytes[s1 & 127], (long long)qk_even_sign_bytes[s0 & 127]);
}

/// The four 7-bit sign groups of a u32 (IQ2_XXS, IQ3_XXS: bits 0–27).
QK_INLINE QK_AVX2 __m256i iq_even_sign_bytes4(uint32_t aux) { return iq_even_sign_bytes(aux, aux >> 7, aux >> 14, aux >> 21); }

/// A scale per 16 weights as the int32 lanes take it (lanes 0–3: weights 0–15), times c.
QK_INLINE QK_AVX2 __m256 iq_halves(const float *d, float c) { return _mm256_set_m128(_mm_set1_ps(d[1] * c), _mm_set1_ps(d[0] * c)); }

/// Block j of a grid-coded i-quant super-block at b (scales decoded by prepare_iq): returns the bytes
/// the dot takes as weights (IQ2, IQ3: their signs; IQ1: the values), the magnitudes in *mag (IQ2, IQ3),
/// and the scale of each int32 lane.
QK_INLINE QK_AVX2 __m256i q8_iq_bytes(int fmt, const uint8_t *b, int j, const qk_scales *s, __m256 *scale, __m256i *mag) {
    switch (fmt) {
    case QK_IQ2_XXS: {
        const uint8_t *idx = b + 2 + 8 * j;
        *scale = _mm256_broadcast_ss(&s->d[j]);
        *mag = iq_points8(QK_GRID_AT_IQ2XXS, iq_index_bytes4(idx));
        return iq_even_sign_bytes4(load_u32(idx + 4));
    }
    case QK_IQ2_XS: {  // 4 u16 a block: a 9-bit index under 7 sign bits
        unsigned q[4];
        for (int l = 0; l < 4; l++) q[l] = load_u16(b + 2 + 2 * (4 * j + l));
        *scale = iq_halves(&s->d[2 * j], 1.0f);
        const __m128i i = _mm_and_si128(_mm_cvtepu16_epi32(_mm_loadl_epi64((const __m128i *)(b + 2 + 8 * j))), _mm_set1_epi32(511));
        *mag = iq_points8(QK_GRID_AT_IQ2XS, i);
        return iq_even_sign_bytes(q[0] >> 9, q[1] >> 9, q[2] >> 9, q[3] >> 9);
    }
    case QK_IQ2_S: {
        // index l: its byte, and bits 2l, 2l + 1 of the block's byte at 66 as bits 8–9
        const __m128i high = _mm_and_si128(_mm_srlv_epi32(_mm_set1_epi32(b[66 + j] << 8), _mm_setr_epi32(0, 2, 4, 6)), _mm_set1_epi32(0x300));
        *scale = iq_halves(&s->d[2 * j], 1.0f);
        *mag = iq_points8(QK_GRID_AT_IQ2S, _mm_or_si128(iq_index_bytes4(b + 2 + 4 * j), high));
        return iq_sign_bytes(load_u32(b + 34 + 4 * j));
    }
    case QK_IQ3_XXS: {
        const uint8_t *idx = b + 2 + 8 * j;
        *scale = _mm256_broadcast_ss(&s->d[j]);
        *mag = _mm256_i32gather_epi32((const int *)(qk_grid_bytes + QK_GRID_AT_IQ3XXS), _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)idx)), 4);
        return iq_even_sign_bytes4(load_u32(b + 66 + 4 * j));
    }
    case QK_IQ3_S: {
        const uint8_t *idx = b + 2 + 8 * j;
        const __m256i high = _mm256_and_si256(_mm256_sllv_epi32(_mm256_set1_epi32(b[66 + j]), _mm256_setr_epi32(8, 7, 6, 5, 4, 3, 2, 1)),
                                               _mm256_set1_epi32(0x100));  // bit k of qh as bit 8 of index k
        const __m256i i = _mm256_or_si256(_mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)idx)), high);
        *scale = _mm256_broadcast_ss(&s->d[j]);
        *mag = _mm256_i32gather_epi32((const int *)(qk_grid_bytes + QK_GRID_AT_IQ3S), i, 4);
        return iq_sign_bytes(load_u32(b + 74 + 4 * j));
    }
    case QK_IQ1_S: {
        const unsigned qh = load_u16(b + 34 + 2 * j);
        // index l: its byte, and bits 3l…3l + 2 of qh as bits 8–10
        const __m128i high = _mm_and_si128(_mm_srlv_epi32(_mm_set1_epi32((int)(qh << 8)), _mm_setr_epi32(0, 3, 6, 9)), _mm_set1_epi32(0x700));
        *scale = _mm256_set1_ps(s->d[j] * 0.125f);
        const __m256i g = iq_points8(QK_GRID_AT_IQ1S, _mm_or_si128(iq_index_bytes4(b + 2 + 4 * j), high));
        return _mm256_add_epi8(g, _mm256_set1_epi8((char)(1 - 2 * (int)(qh >> 15))));  // ±1, no branch
    }
    default: {  // IQ1_M
        // group l's nibble (bits 4l…4l + 3 of the u16 at 32 + 2j): index bits 8–10, then the sign of its delta
        const unsigned v = load_u16(b + 32 + 2 * j);
        const __m128i high = _mm_and_si128(_mm_srlv_epi32(_mm_set1_epi32((int)(v << 8)), _mm_setr_epi32(0, 4, 8, 12)), _mm_set1_epi32(0x700));
        // the deltas' signs as 64-bit lanes, all ones where set, then bytes of −1 or +1
        const __m128i sign = _mm_and_si128(_mm_srlv_epi32(_mm_set1_epi32((int)v), _mm_setr_epi32(3, 7, 11, 15)), _mm_set1_epi32(1));
        const __m256i minus = _mm256_cmpeq_epi64(_mm256_cvtepu32_epi64(sign), _mm256_set1_epi64x(1));
        *scale = iq_halves(&s->d[2 * j], 0.125f);
        return _mm256_add_epi8(iq_points8(QK_GRID_AT_IQ1S, _mm_or_si128(iq_index_bytes4(b + 4 * j), high)),
                               _mm256_or_si256(minus, _mm256_set1_epi8(1)));
    }
    }
}

/// Output rows per tile for tiles of U token rows: ≤ 8 accumulators.
QK_INLINE int q8_rows(int64_t U) { return U == 1 ? 4 : 2; }

// AVX-512BW: the fifth bits of a Q5_0 / Q5_1 block are a byte mask as stored.
QK_INLINE QK_AVX512 __m256i q5_bytes_mask(uint32_t qh, const uint8_t *n16) {
    const __m256i low = nibble_bytes_256(n16);
    return _mm256_mask_add_epi8(low, (__mmask32)qh, low, _mm256_set1_epi8(16));
}

#define QK_VNNI __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")))

#define Q8_ATTR QK_AVX2
#define Q8_FN(name) name##_256
#define Q8_Q5_BYTES q5_bytes_256
#define Q8_VNNI 0
#define Q8_WIDE 0
#include "int8_tile.h"
#undef Q8_ATTR
#undef Q8_FN
#undef Q8_Q5_BYTES
#undef Q8_VNNI
#undef Q8_WIDE

#define Q8_WIDE 1
#define Q8_ATTR QK_AVX512
#define Q8_FN(name) name##_512
#define Q8_Q5_BYTES q5_bytes_mask
#define Q8_VNNI 0
#include "int8_tile.h"
#undef Q8_ATTR
#undef Q8_FN
#undef Q8_VNNI

#define Q8_ATTR QK_VNNI
#define Q8_FN(name) name##_vnni
#define Q8_VNNI 1
#include "int8_tile.h"
#undef Q8_ATTR
#undef Q8_FN
#undef Q8_Q5_BYTES
#undef Q8_VNNI
#undef Q8_WIDE

typedef void (*q8_fn)(const void *xq, int64_t t, int64_t in, const uint8_t *w, float *y, int64_t ldy,
                      int64_t o0, int64_t o1, int accumulate);

#define Q8_INSTANCE(name, fmt) \
    static QK_AVX2 void q8_linear_256_##name(const void *xq, int64_t t, int64_t in, const uint8_t *w, float *y, int64_t ldy, \
                                              int64_t o0, int64_t o1, int accumulate) { \
        q8_linear_256(fmt, xq, t, in, w, y, ldy, o0, o1, accumulate); \
    } \
    static QK_AVX512 void q8_linear_512_##name(const void *xq, int64_t t, int64_t in, const uint8_t *w, float *y, int64_t ldy, \
                                                int64_t o0, int64_t o1, int accumulate) { \
        q8_linear_512(fmt, xq, t, in, w, y, ldy, o0, o1, accumulate); \
    } \
    static QK_VNNI void q8_linear_vnni_##name(const void *xq, int64_t t, int64_t in, const uint8_t *w, float *y, int64_t ldy, \
                                               int64_t o0, int64_t o1, int accumulate) { \
        q8_linear_vnni(fmt, xq, t, in, w, y, ldy, o0, o1, accumulate); \
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
Q8_INSTANCE(q3_k, QK_Q3_K)
Q8_INSTANCE(q2_k, QK_Q2_K)
Q8_INSTANCE(iq2_xxs, QK_IQ2_XXS)
Q8_INSTANCE(iq2_xs, QK_IQ2_XS)
Q8_INSTANCE(iq2_s, QK_IQ2_S)
Q8_INSTANCE(iq3_xxs, QK_IQ3_XXS)
Q8_INSTANCE(iq3_s, QK_IQ3_S)
Q8_INSTANCE(iq1_s, QK_IQ1_S)
Q8_INSTANCE(iq1_m, QK_IQ1_M)
Q8_INSTANCE(q1_0, QK_Q1_0)
Q8_INSTANCE(q4_1f, QK_Q4_1F)

// Indexed by qk_format; NULL where no int8 kernel reads the format.
#define Q8_TABLE(isa) { q8_linear_##isa##_q4_1, q8_linear_##isa##_q8_0, q8_linear_##isa##_q5_0, q8_linear_##isa##_q4_k, \
    q8_linear_##isa##_q6_k, q8_linear_##isa##_q4_0, q8_linear_##isa##_q5_1, q8_linear_##isa##_iq4_nl, q8_linear_##isa##_q5_k, \
    q8_linear_##isa##_iq4_xs, q8_linear_##isa##_q3_k, q8_linear_##isa##_q2_k, NULL, NULL, q8_linear_##isa##_iq2_xxs, \
    q8_linear_##isa##_iq2_xs, q8_linear_##isa##_iq2_s, q8_linear_##isa##_iq3_xxs, q8_linear_##isa##_iq3_s, q8_linear_##isa##_iq1_s, \
    q8_linear_##isa##_iq1_m, q8_linear_##isa##_q1_0, q8_linear_##isa##_q4_1f }
static const q8_fn Q8_KERNELS_256[QK_FORMATS] = Q8_TABLE(256);
static const q8_fn Q8_KERNELS_512[QK_FORMATS] = Q8_TABLE(512);
static const q8_fn Q8_KERNELS_VNNI[QK_FORMATS] = Q8_TABLE(vnni);

/// With the AVX-512 ISA, whether this CPU has VNNI (ALPHAEDIT_VNNI=0 turns it off, to compare).
static int has_vnni(void) {
    static int cached = -1;
    int v = __atomic_load_n(&cached, __ATOMIC_RELAXED);
    if (v < 0) {
        __builtin_cpu_init();
        const char *off = getenv("ALPHAEDIT_VNNI");
        v = __builtin_cpu_supports("avx512vnni") && !(off && strcmp(off, "0") == 0);
        __atomic_store_n(&cached, v, __ATOMIC_RELAXED);
    }
    return v;
}

int qk_q8_uses_vnni(qk_isa isa) { return isa == QK_ISA_AVX512 && isa <= qk_best_isa() && has_vnni(); }

int qk_linear_q8(qk_format format, qk_isa isa, const void *xq, int64_t t, int64_t in, const void *w,
                 float *y, int64_t ldy, int64_t o0, int64_t o1, int accumulate) {
    if ((unsigned)format >= QK_FORMATS || !qk_q8_supports(format)) return -1;
    if (!xq || !w || !y || t < 0 || in <= 0 || in % fmt_block((int)format) != 0 || o0 < 0 || o1 < o0 || ldy < o1) return -1;
    if ((uintptr_t)xq % 32 != 0) return -1;
    if (isa == QK_ISA_NONE || isa > qk_best_isa()) return -1;
    if (t == 0 || o0 == o1) return 0;
    if (fmt_is_iq_grid((int)format)) qk_iq_grids_init();
    (isa == QK_ISA_AVX512 ? (has_vnni() ? Q8_KERNELS_VNNI : Q8_KERNELS_512) : Q8_KERNELS_256)[format](xq, t, in, (const uint8_t *)w, y, ldy, o0, o1, accumulate);
    return 0;
}
