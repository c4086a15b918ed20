// Kernels of the few-token forward, in C for AVX2 / AVX-512 intrinsics.
// Linear layers over GGML-quantized weights with float32 activations (no activation quantization):
// y[T × out] (+)= x[T × in] · Wᵀ, W stored out × in as blocks of 32. Each weight block is dequantized
// once in registers (exactly as Dequantize.swift: d·q + m in float32) and multiplied with every token
// row, so the weights stream from memory once per call. Plus a vectorized SwiGLU.
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
/// (`avx2` or `none`) when it is set.
qk_isa qk_best_isa(void);

/// Output rows [o0, o1) of y[t × ldy] (+)= x[t × in] · Wᵀ for a Q4_1 matrix W (`in` a multiple of 32,
/// rows of in/32 blocks of 20 bytes: f16 d, f16 m, 16 bytes of nibbles). `accumulate` adds to y.
/// Returns 0, or -1 when `isa` is unsupported here or the shape is invalid (nothing written).
int qk_linear_q4_1(qk_isa isa, const float *x, int64_t t, int64_t in, const void *w,
                   float *y, int64_t ldy, int64_t o0, int64_t o1, int accumulate);

/// As `qk_linear_q4_1` for a Q8_0 matrix (blocks of 34 bytes: f16 d, 32 × int8).
int qk_linear_q8_0(qk_isa isa, const float *x, int64_t t, int64_t in, const void *w,
                   float *y, int64_t ldy, int64_t o0, int64_t o1, int accumulate);

/// All output rows of the Q4_1 (`q8` = 0) or Q8_0 (`q8` = 1) product, split by rows over the caller
/// and `threads` − 1 persistent workers (thread_pool.c). Runs on the caller alone when another
/// thread's product is in flight. Same return values as the kernels.
int qk_linear_parallel(int q8, qk_isa isa, const float *x, int64_t t, int64_t in, const void *w,
                       float *y, int64_t rows, int accumulate, int threads);

/// SwiGLU forward k[i] = g[i] / (1 + e^−g[i]) · u[i] for n elements, vectorized for `isa`
/// (swiglu.c; QK_ISA_NONE: the scalar loop with expf). Returns 0, or -1 for an ISA this CPU lacks.
int qk_swiglu(qk_isa isa, const float *g, const float *u, float *k, int64_t n);

#endif
