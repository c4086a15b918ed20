// Private to quant_kernels.c and the dequantizers it includes: ISA attributes, the block geometry
// of each format, and the small helpers every kernel uses. Each ISA's code is compiled by function
// attributes, so the package needs no -mavx flags and one binary runs on any x86-64.
#ifndef QK_COMMON_H
#define QK_COMMON_H

#include "quant_kernels.h"

#include <immintrin.h>
#include <stdint.h>
#include <string.h>

#define QK_AVX2 __attribute__((target("avx2,fma,f16c")))
#define QK_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx2,fma,f16c")))
#define QK_INLINE static inline __attribute__((always_inline))

// Every kernel walks a row 32 weights ("a block") at a time. Q4_1, Q8_0 and Q5_0 store blocks of 32;
// Q4_K and Q6_K store super-blocks of 256 = 8 blocks sharing one header of scales, which a kernel
// decodes once per super-block (`qk_scales`) before the 8 blocks.
enum { QK_BLOCK = 32, QK_SUPER = 256, QK_Q1_0_BLOCK = 128 };
enum { Q4_1_BYTES = 20, Q8_0_BYTES = 34, Q5_0_BYTES = 22, Q4_K_BYTES = 144, Q6_K_BYTES = 210, Q4_0_BYTES = 18,
       Q5_1_BYTES = 24, IQ4_NL_BYTES = 18, Q5_K_BYTES = 176, IQ4_XS_BYTES = 136, Q3_K_BYTES = 110, Q2_K_BYTES = 84,
       F16_BYTES = 64, BF16_BYTES = 64, IQ2_XXS_BYTES = 66, IQ2_XS_BYTES = 74, IQ2_S_BYTES = 82, IQ3_XXS_BYTES = 98,
       IQ3_S_BYTES = 110, IQ1_S_BYTES = 50, IQ1_M_BYTES = 56, Q1_0_BYTES = 18, Q4_1F_BYTES = 24 };

/// Weights per stored (super-)block of `fmt`: a constant after inlining.
QK_INLINE int64_t fmt_block(int fmt) {
    switch (fmt) {
    case QK_Q4_K: case QK_Q6_K: case QK_Q5_K: case QK_IQ4_XS: case QK_Q3_K: case QK_Q2_K: return QK_SUPER;
    case QK_IQ2_XXS: case QK_IQ2_XS: case QK_IQ2_S: case QK_IQ3_XXS: case QK_IQ3_S: case QK_IQ1_S: case QK_IQ1_M: return QK_SUPER;
    case QK_Q1_0: return QK_Q1_0_BLOCK;
    default: return QK_BLOCK;
    }
}

/// Bytes per stored (super-)block of `fmt`.
QK_INLINE int64_t fmt_bytes(int fmt) {
    switch (fmt) {
    case QK_Q4_1: return Q4_1_BYTES;
    case QK_Q8_0: return Q8_0_BYTES;
    case QK_Q5_0: return Q5_0_BYTES;
    case QK_Q4_K: return Q4_K_BYTES;
    case QK_Q4_0: return Q4_0_BYTES;
    case QK_Q5_1: return Q5_1_BYTES;
    case QK_IQ4_NL: return IQ4_NL_BYTES;
    case QK_Q5_K: return Q5_K_BYTES;
    case QK_IQ4_XS: return IQ4_XS_BYTES;
    case QK_Q3_K: return Q3_K_BYTES;
    case QK_Q2_K: return Q2_K_BYTES;
    case QK_F16: return F16_BYTES;
    case QK_BF16: return BF16_BYTES;
    case QK_IQ2_XXS: return IQ2_XXS_BYTES;
    case QK_IQ2_XS: return IQ2_XS_BYTES;
    case QK_IQ2_S: return IQ2_S_BYTES;
    case QK_IQ3_XXS: return IQ3_XXS_BYTES;
    case QK_IQ3_S: return IQ3_S_BYTES;
    case QK_IQ1_S: return IQ1_S_BYTES;
    case QK_IQ1_M: return IQ1_M_BYTES;
    case QK_Q1_0: return Q1_0_BYTES;
    case QK_Q4_1F: return Q4_1F_BYTES;
    default: return Q6_K_BYTES;
    }
}

/// A super-block's scales as float32, decoded once for its 8 blocks. Q4_K, Q5_K: d·sc_j and −dmin·m_j
/// per block j; Q6_K, Q3_K: d·sc_i per 16 weights; Q2_K: d·sc_i and −dmin·m_i per 16 weights; IQ4_XS:
/// d·(sc_j − 32) per block; the grid-coded i-quants: dequant_iq.h. The products are exact in float32 (11-bit d times a ≤ 8-bit integer), so
/// using them is the same arithmetic as Dequantize.swift's.
typedef struct {
    float d[16];
    float m[16];
} qk_scales;

QK_INLINE uint16_t load_u16(const uint8_t *p) { uint16_t v; memcpy(&v, p, 2); return v; }
QK_INLINE uint32_t load_u32(const uint8_t *p) { uint32_t v; memcpy(&v, p, 4); return v; }

// f16 scales, converted so that nothing carries over from one block to the next. `_cvtsh_ss` compiles
// to vpinsrw into a register whose other lanes it keeps: every block's conversion then waited on the
// previous block's (measured, one AVX2 core, T = 10, 4864 × 896: Q8_0 61 → 104 GF/s, Q5_0 63 → 87,
// the same bits). A broadcast load (vpbroadcastw) or movd writes the whole register.
QK_INLINE QK_AVX2 __m256 bcast_f16_256(const uint8_t *p) { return _mm256_cvtph_ps(_mm_set1_epi16((short)load_u16(p))); }
QK_INLINE QK_AVX512 __m512 bcast_f16_512(const uint8_t *p) { return _mm512_cvtph_ps(_mm256_set1_epi16((short)load_u16(p))); }
QK_INLINE QK_AVX2 float f16_to_f32(const uint8_t *p) { return _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(load_u16(p)))); }

QK_INLINE void store(float *y, float s, int accumulate) { *y = accumulate ? *y + s : s; }

// Weights are read once, in order, and with one or two tokens the kernel waits on memory: asking
// for the lines PREFETCH_BYTES ahead of the rows being read keeps more loads in flight than the
// hardware prefetcher does on these VMs (measured: T = 1 Q4_1 576→1536 from memory 113 → 71 µs,
// Q8_0 LM head 6.1 → 3.5 ms; T = 10 unchanged). A prefetch past the matrix's end is harmless: it never faults.
enum { PREFETCH_BYTES = 2048 };
QK_INLINE void prefetch_ahead(const uint8_t *rows, int64_t bytes) {
    for (int64_t o = 0; o < bytes; o += 64) _mm_prefetch((const char *)(rows + PREFETCH_BYTES + o), _MM_HINT_T0);
}

/// Asks for the lines of the stored (super-)block at p: every line of a K-quant super-block; with
/// `blocks32`, the line where a block of 32 weights begins, once per line. The tiles (float32 and int8)
/// call it for the next tile's rows as they read; why and measured: quant_kernels.c, "K-quant rows are long".
QK_INLINE void prefetch_next_tile(int fmt, const uint8_t *p, int blocks32) {
    const int64_t bytes = fmt_bytes(fmt);
    if (fmt_block(fmt) == QK_BLOCK) {
        if (blocks32 && ((uintptr_t)p & 63) < (uintptr_t)bytes) _mm_prefetch((const char *)p, _MM_HINT_T0);
        return;
    }
    for (int64_t o = 0; o < bytes; o += 64) _mm_prefetch((const char *)(p + o), _MM_HINT_T0);
    _mm_prefetch((const char *)(p + bytes - 1), _MM_HINT_T0);
}

QK_INLINE QK_AVX2 float hsum256(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

#endif
