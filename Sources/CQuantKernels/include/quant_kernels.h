// Kernels of the few-token forward, in C for AVX2 / AVX-512 intrinsics.
// Linear layers over GGML-quantized weights with float32 activations (no activation quantization; the
// int8-activation products at the end of this header are separate entry points):
// y[T × out] (+)= x[T × in] · Wᵀ, W stored out × in in GGML blocks (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0,
// IQ4_NL, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, IQ4_XS, the grid-coded i-quants IQ1–IQ3, Q1_0).
// Each block of 32 weights is dequantized once in registers (exactly as Dequantize.swift computes it
// in float32) and multiplied with every token row, so the weights stream from memory once per call.
// Plus the vectorized activations (SwiGLU, GELU-tanh) and the softmax of a vocabulary row.
// Each ISA's code is compiled by function attributes (no package-wide flags); callers pass an ISA no
// better than `qk_best_isa()`, and use float32 BLAS where it is QK_ISA_NONE.
#ifndef QUANT_KERNELS_H
#define QUANT_KERNELS_H

#include <stdint.h>

typedef enum {
    QK_ISA_NONE = 0,
    QK_ISA_AVX2 = 1,    // AVX2 + FMA + F16C
    QK_ISA_AVX512 = 2,  // AVX-512 F/BW/VL (+ the AVX2 set)
} qk_isa;

/// The best instruction set this CPU and OS support, capped by the environment variable ALPHAEDIT_ISA
/// (`avx2`, `none`, or `avx512`: no cap) when it is set; the executables refuse other values.
qk_isa qk_best_isa(void);

/// Weight formats the kernels read (GGML block layouts, ggml-common.h). Q4_1, Q8_0, Q5_0, Q4_0, Q5_1,
/// IQ4_NL: blocks of 32 weights; the K-quants and IQ4_XS: super-blocks of 256; Q1_0: blocks of 128. The first two keep the
/// values of the former Q4_1 / Q8_0 flag.
typedef enum {
    QK_Q4_1 = 0,    // 20 bytes: f16 d, f16 m, 16 bytes of nibbles; w = d·q + m
    QK_Q8_0 = 1,    // 34 bytes: f16 d, 32 × int8; w = d·q
    QK_Q5_0 = 2,    // 22 bytes: f16 d, 4 bytes of 5th bits, 16 bytes of nibbles; w = d·(q − 16)
    QK_Q4_K = 3,    // 144 bytes: f16 d, f16 dmin, 12 bytes of 6-bit scales and mins, 128 bytes of nibbles
    QK_Q6_K = 4,    // 210 bytes: 128 bytes low nibbles, 64 bytes high bit pairs, 16 × int8 scales, f16 d
    QK_Q4_0 = 5,    // 18 bytes: f16 d, 16 bytes of nibbles; w = d·(q − 8)
    QK_Q5_1 = 6,    // 24 bytes: f16 d, f16 m, 4 bytes of 5th bits, 16 bytes of nibbles; w = d·q + m
    QK_IQ4_NL = 7,  // 18 bytes: f16 d, 16 bytes of 4-bit codes into a table of 16 int8 values; w = d·table[q]
    QK_Q5_K = 8,    // 176 bytes: Q4_K's header, 32 bytes of 5th bits, 128 bytes of nibbles
    QK_IQ4_XS = 9,  // 136 bytes: f16 d, eight 6-bit scales (2 + 4 bytes), 128 bytes of IQ4_NL codes
    QK_Q3_K = 10,   // 110 bytes: 32 bytes of 3rd bits, 64 bytes of 2-bit parts, sixteen 6-bit scales, f16 d
    QK_Q2_K = 11,   // 84 bytes: 16 bytes of 4-bit scales and mins, 64 bytes of 2-bit q, f16 d, f16 dmin
    QK_F16 = 12,    // unquantized IEEE half: read as blocks of 32 (64 bytes); rows a multiple of 32 weights
    QK_BF16 = 13,   // unquantized bfloat16 (the top 16 bits of a float32), blocks of 32 as F16
    // The grid-coded i-quants: super-blocks of 256 whose groups of 8 (IQ3: 4) weights are one index into a
    // table of lattice points (qk_iq_grid), with sign bits (IQ2, IQ3) or a shift of ±⅛ (IQ1).
    QK_IQ2_XXS = 14,  // 66 bytes: f16 d, per 32 weights four 8-bit indices and a u32 of signs and a 4-bit scale
    QK_IQ2_XS = 15,   // 74 bytes: f16 d, 32 u16 (9-bit index, 7 sign bits), 8 bytes of two 4-bit scales
    QK_IQ2_S = 16,    // 82 bytes: f16 d, 32 index bytes, 32 sign bytes, 8 bytes of index bits 8–9, 8 of scales
    QK_IQ3_XXS = 17,  // 98 bytes: f16 d, 64 index bytes (4 weights each), per 32 weights a u32 of signs and scale
    QK_IQ3_S = 18,    // 110 bytes: f16 d, 64 index bytes, 8 of index bit 8, 32 sign bytes, 4 bytes of scales
    QK_IQ1_S = 19,    // 50 bytes: f16 d, 32 index bytes, per 32 weights a u16 (index bits 8–10, scale, delta sign)
    QK_IQ1_M = 20,    // 56 bytes: 32 index bytes, 16 of index bits and delta signs, 4 u16 of scales holding d
    QK_Q1_0 = 21,     // 18 bytes a block of 128: f16 d, 128 sign bits (weight l: bit l % 8 of byte l / 8); w = ±d
    // Not a GGUF type: Q4_1 with its two scales widened to float32 (qk_repack_q4_1_float_scales), the same weights.
    QK_Q4_1F = 22,    // 24 bytes: float32 d, float32 m, Q4_1's 16 bytes of nibbles; w = d·q + m
    QK_FORMATS = 23
} qk_format;

/// Output rows [o0, o1) of y[t × ldy] (+)= x[t × in] · Wᵀ for a matrix W of `format` stored out × in,
/// each row in/block blocks (`in` a multiple of the format's block: 32, or 256 for the super-block formats).
/// `accumulate` adds to y. Returns 0, or -1 when `isa` is unsupported here, the format unknown or
/// the shape invalid (nothing written).
int qk_linear(qk_format format, qk_isa isa, const float *x, int64_t t, int64_t in, const void *w,
              float *y, int64_t ldy, int64_t o0, int64_t o1, int accumulate);

/// `qk_linear` with the token rows of x `ldx` ≥ in floats apart (x[t × ldx]).
int qk_linear_strided(qk_format format, qk_isa isa, const float *x, int64_t ldx, int64_t t, int64_t in, const void *w,
                      float *y, int64_t ldy, int64_t o0, int64_t o1, int accumulate);

/// The row stride, ≥ in, at which the kernels read x fastest (`qk_linear_parallel` copies x to it).
/// Rows QK_ALIAS_BYTES apart (in = 1,024 or 2,048 floats: 4 or 8 KB) share one set of the 8-way L1
/// cache: the 10 token rows of a tile then evict each other on every block, and each x load goes to
/// L2 (measured, one AVX2 core, T = 10, 640 output rows: Q5_0 at 2,048 inputs ≈ 35 GF/s against
/// ≈ 70 at 512 or 640). QK_ALIAS_PAD more floats put each row in other sets: 4 cache lines. One line
/// (until 2026-12-06) left the rows of a chunk of the input (quant_kernels.c: 16–24 lines of each row)
/// one set apart, up to 10 lines in a set of 8 ways; 4 lines apart, at most 4 (one AVX2 core, T = 10,
/// from memory, GF/s one line → 4: Q4_K 640 × 1,024 60 → 72, 640 × 2,048 61 → 75, Q8_0 640 × 1,024
/// 65 → 82, Q5_0 640 × 2,048 62 → 74, Q6_K 59 → 69; AVX-512 87–90 → 89–93).
enum { QK_ALIAS_BYTES = 4096, QK_ALIAS_PAD = 64 };
int64_t qk_x_stride(int64_t in);

/// The alignment of x that `qk_linear_parallel` reads (it copies an x that is not so aligned). x 16 bytes
/// past a cache line, as malloc returns it, splits half the AVX2 loads of x across two lines, every
/// AVX-512 one: measured (2026-12-05, Zen 4, AVX2, 2 threads) Qwen's 24 blocks of T = 10 products
/// 54.8 ms with x on a line against 71.0 ms 16 bytes past one. The same bits either way.
enum { QK_X_ALIGN = 64 };

/// Rewrites `blocks` Q5_0 blocks (22 bytes: f16 d, 32 fifth bits, 16 bytes of nibbles) as Q8_0
/// blocks (34 bytes: the same f16 d, then the 32 values q − 16 as signed bytes): the same weights
/// d·(q − 16), which the Q8_0 kernels multiply with cheaper unpacking (QuantizedWeights).
void qk_repack_q5_0_as_q8_0(const void *src, void *dst, int64_t blocks);
/// Rewrites `blocks` Q1_0 blocks (18 bytes: f16 d, 128 sign bits, weight j bit j % 8 of byte j / 8;
/// w = ±d) as 4 × `blocks` Q4_0 blocks (18 bytes: the same f16 d, nibbles 9 for +d and 7 for −d): the same
/// weights d·(q − 8), at 4.5 bits a weight (`ALPHAEDIT_Q1_0=q4`, to compare with the Q1_0 kernels).
void qk_repack_q1_0_as_q4_0(const void *src, void *dst, int64_t blocks);
/// Rewrites `blocks` Q4_1 blocks (20 bytes: f16 d, f16 m, 16 bytes of nibbles) as QK_Q4_1F blocks (24 bytes:
/// the same d and m as float32, exactly, then the same nibbles): the same weights, whose kernels broadcast
/// the scales from memory instead of converting them block by block (QuantizedWeights says when and why).
void qk_repack_q4_1_float_scales(const void *src, void *dst, int64_t blocks);

/// Dequantizes `rows` runs of `blocks` stored (super-)blocks of `format` (each 32 or 256 weights): run r
/// at src + r·src_stride bytes into dst + r·dst_stride floats, float32, with the register dequantizers of
/// `isa`: the values of Dequantize.swift, bit for bit. A matrix's rows, or a column range of them, in one
/// call. Returns 0, or -1 for a bad argument or an ISA this CPU lacks.
int qk_dequantize_rows(qk_format format, qk_isa isa, const void *src, int64_t src_stride, int64_t rows, int64_t blocks,
                       float *dst, int64_t dst_stride);

/// All output rows of the product (ldy = rows), split by rows over the caller and `threads` − 1
/// persistent workers (thread_pool.c). Runs on the caller alone when another thread's product is
/// in flight. Same return values as `qk_linear`.
int qk_linear_parallel(qk_format format, qk_isa isa, const float *x, int64_t t, int64_t in, const void *w,
                       float *y, int64_t rows, int accumulate, int threads);

/// SwiGLU forward k[i] = g[i] / (1 + e^−g[i]) · u[i] for n elements, vectorized for `isa`
/// (swiglu.c; QK_ISA_NONE: the scalar loop with expf). Returns 0, or -1 for an ISA this CPU lacks.
int qk_swiglu(qk_isa isa, const float *g, const float *u, float *k, int64_t n);

/// GELU-tanh gated forward k[i] = gelu(g[i])·u[i], gelu(x) = ½x(1 + tanh(a(x + b x³))) computed as
/// x·σ(2a(x + b x³)) (swiglu.c), and its backward dg = dk·u·gelu'(g), du = dk·gelu(g). Returns 0, or
/// -1 for an ISA this CPU lacks (QK_ISA_NONE: scalar loops with expf).
int qk_geglu(qk_isa isa, const float *g, const float *u, float *k, int64_t n);
int qk_geglu_backward(qk_isa isa, const float *dk, const float *g, const float *u, float *dg, float *du, int64_t n);

/// SwiGLU backward: du = dk·g·σ(g), dg = dk·u·σ(g)(1 + g(1 − σ(g))). Returns 0, or -1 for an ISA this CPU
/// lacks (QK_ISA_NONE: the scalar loop with expf).
int qk_swiglu_backward(qk_isa isa, const float *dk, const float *g, const float *u, float *dg, float *du, int64_t n);

/// Over a row x[0..n) (n ≥ 1): *max = the largest x[i], *sum = Σ e^(x[i] − *max) in double (softmax.c;
/// the same bits on AVX2 and AVX-512). Returns 0, or -1 for an ISA this CPU lacks or an empty row.
int qk_sum_exp(qk_isa isa, const float *x, int64_t n, float *max, double *sum);

/// y[i] = e^(x[i] − shift) · scale for n elements (y may be x). Returns 0, or -1 for an ISA this CPU lacks.
int qk_exp_scaled(qk_isa isa, const float *x, float *y, int64_t n, float shift, float scale);

// ---- 8-bit activations (int8_kernels.c; `generate --activations int8`) ----
// x rounded to int8 in blocks of 32 (scale d_x = max|x| / 127 per block, float32), weights multiplied
// as bytes: as llama.cpp computes, not bit for bit the float32 kernels (x's rounding, ≤ d_x / 2 each).

/// The lattice points of the grid-coded i-quants as float32 (point i's values at [w·i, w·(i + 1)), w = 8,
/// or 4 for the IQ3 grids), built on first use; ggml-common.h's iq2xxs_grid … iq1s_grid.
typedef enum { QK_GRID_IQ2XXS, QK_GRID_IQ2XS, QK_GRID_IQ2S, QK_GRID_IQ3XXS, QK_GRID_IQ3S, QK_GRID_IQ1S, QK_GRIDS } qk_grid;
const float *qk_iq_grid(qk_grid grid);

/// Whether an int8 kernel reads `format`: every quantized one (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, IQ4_NL, Q2_K, Q3_K, Q4_K,
/// Q5_K, Q6_K, IQ4_XS and the grid-coded i-quants); not F16 or BF16.
int qk_q8_supports(qk_format format);

/// Bytes of one quantized token row of `in` activations (a multiple of 64): `in` int8 values, then
/// in/32 float scales d_x, then in/32 floats s = d_x·Σq of each block.
int64_t qk_q8_row_bytes(int64_t in);

/// Whether qk_linear_q8 with `isa` multiplies by AVX-512 VNNI (vpdpbusd): the AVX-512 ISA on a CPU
/// with VNNI, unless ALPHAEDIT_VNNI=0. The same results either way (the integer sums are exact).
int qk_q8_uses_vnni(qk_isa isa);

/// Rounds t rows of x (ldx ≥ in floats apart; in a multiple of 32) into xq (t · qk_q8_row_bytes(in) bytes,
/// 32-byte aligned). Returns 0, or -1 for a bad argument or an ISA this CPU lacks.
int qk_quantize_q8(qk_isa isa, const float *x, int64_t t, int64_t ldx, int64_t in, void *xq);

/// Output rows [o0, o1) of y[t × ldy] (+)= x̂[t × in] · Wᵀ from activations quantized by qk_quantize_q8.
/// Returns 0, or -1 when the format has no int8 kernel, the ISA is unsupported or the shape invalid.
int qk_linear_q8(qk_format format, qk_isa isa, const void *xq, int64_t t, int64_t in, const void *w,
                 float *y, int64_t ldy, int64_t o0, int64_t o1, int accumulate);

/// `qk_linear_parallel` on 8-bit activations: x rounded once (qk_quantize_q8, in a buffer of the calling
/// thread), then the output rows split over the pool. Same return values as `qk_linear_q8`.
int qk_linear_q8_parallel(qk_format format, qk_isa isa, const float *x, int64_t t, int64_t in, const void *w,
                          float *y, int64_t rows, int accumulate, int threads);

#endif
