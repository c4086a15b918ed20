// The gated activations of the MLP, 16 (AVX2: 8) elements at a time. SwiGLU forward,
// k = silu(g)·u = g / (1 + e^−g) · u; GELU-tanh (Gemma) forward and backward, below.
// Why here: the scalar loop (Foundation.exp per element) costs 91 µs a layer for 10 tokens,
// 2.7 ms a forward, all of it serial between the parallel products; this one costs ≈ 5 µs.
// e^x is Cephes' expf (qk_exp.h), its input clamped to [−87, 88]. Below −87, 1 + e^x rounds to 1 anyway; above 88, silu(g) comes out ≈ −5·10⁻³⁷ where expf's overflow gives −0.
// Tested against the scalar formula in QuantizedLinearTests.
#include "quant_kernels.h"

#include <immintrin.h>
#include <math.h>
#include <string.h>

#include "qk_exp.h"

static QK_AVX512 void swiglu512(const float *g, const float *u, float *k, int64_t n) {
    int64_t i = 0;
    for (; i < n; i += 16) {
        const __mmask16 m = n - i >= 16 ? 0xFFFF : (__mmask16)((1u << (n - i)) - 1);
        const __m512 gv = _mm512_maskz_loadu_ps(m, g + i), uv = _mm512_maskz_loadu_ps(m, u + i);
        const __m512 e = exp512(_mm512_sub_ps(_mm512_setzero_ps(), gv));
        _mm512_mask_storeu_ps(k + i, m, _mm512_mul_ps(_mm512_div_ps(gv, _mm512_add_ps(_mm512_set1_ps(1), e)), uv));
    }
}

static QK_AVX2 void swiglu256(const float *g, const float *u, float *k, int64_t n) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256 gv = _mm256_loadu_ps(g + i), uv = _mm256_loadu_ps(u + i);
        const __m256 e = exp256(_mm256_sub_ps(_mm256_setzero_ps(), gv));
        _mm256_storeu_ps(k + i, _mm256_mul_ps(_mm256_div_ps(gv, _mm256_add_ps(_mm256_set1_ps(1), e)), uv));
    }
    if (i < n) {  // the tail through a padded vector, so every element gets the same arithmetic
        float gt[8] = {0}, ut[8] = {0}, kt[8];
        memcpy(gt, g + i, (size_t)(n - i) * 4);
        memcpy(ut, u + i, (size_t)(n - i) * 4);
        swiglu256(gt, ut, kt, 8);
        memcpy(k + i, kt, (size_t)(n - i) * 4);
    }
}

// GELU-tanh: gelu(x) = ½x(1 + tanh z), z = a(x + b x³). Since 1 + tanh z = 2σ(2z), gelu(x) = x·σ(2z)
// = x / (1 + e^−2z): the SwiGLU loop with another exponent, no tanh. Why: the scalar loop with
// Foundation.tanh cost ≈ 0.4 ms a layer for 10 tokens of Gemma 3 270M (F = 2048), 7 ms of a 38 ms
// forward, serial between the parallel products. Backward with s = σ(2z): ½(1 + t) = s and
// ½x(1 − t²) = 2x·s(1 − s), so gelu'(x) = s + 2x·s(1 − s)·a(1 + 3b x²).
static const float GELU_A = 0.7978845608028654f, GELU_B = 0.044715f;

static QK_AVX512 __m512 gelu_sigma512(__m512 x) {  // σ(2z)
    const __m512 z = _mm512_mul_ps(_mm512_set1_ps(GELU_A), _mm512_fmadd_ps(_mm512_mul_ps(_mm512_set1_ps(GELU_B), x), _mm512_mul_ps(x, x), x));
    return _mm512_div_ps(_mm512_set1_ps(1), _mm512_add_ps(_mm512_set1_ps(1), exp512(_mm512_mul_ps(_mm512_set1_ps(-2), z))));
}

static QK_AVX2 __m256 gelu_sigma256(__m256 x) {
    const __m256 z = _mm256_mul_ps(_mm256_set1_ps(GELU_A), _mm256_fmadd_ps(_mm256_mul_ps(_mm256_set1_ps(GELU_B), x), _mm256_mul_ps(x, x), x));
    return _mm256_div_ps(_mm256_set1_ps(1), _mm256_add_ps(_mm256_set1_ps(1), exp256(_mm256_mul_ps(_mm256_set1_ps(-2), z))));
}

static float gelu_sigma(float x) {
    const float z = GELU_A * fmaf(GELU_B * x, x * x, x);
    return 1 / (1 + expf(-2 * z));
}

// Forward (dk == NULL: k = gelu(g)·u) or backward (dg = dk·u·gelu'(g), du = dk·gelu(g)), one loop per ISA.
static QK_AVX512 void geglu512(const float *dk, const float *g, const float *u, float *k, float *dg, float *du, int64_t n) {
    const __m512 two_a = _mm512_set1_ps(2 * GELU_A), three_b = _mm512_set1_ps(3 * GELU_B), one = _mm512_set1_ps(1);
    for (int64_t i = 0; i < n; i += 16) {
        const __mmask16 m = n - i >= 16 ? 0xFFFF : (__mmask16)((1u << (n - i)) - 1);
        const __m512 x = _mm512_maskz_loadu_ps(m, g + i), uv = _mm512_maskz_loadu_ps(m, u + i), s = gelu_sigma512(x);
        if (!dk) { _mm512_mask_storeu_ps(k + i, m, _mm512_mul_ps(_mm512_mul_ps(x, s), uv)); continue; }
        const __m512 d = _mm512_maskz_loadu_ps(m, dk + i);
        const __m512 slope = _mm512_mul_ps(_mm512_mul_ps(two_a, _mm512_mul_ps(x, _mm512_mul_ps(s, _mm512_sub_ps(one, s)))),
                                           _mm512_fmadd_ps(three_b, _mm512_mul_ps(x, x), one));
        _mm512_mask_storeu_ps(du + i, m, _mm512_mul_ps(d, _mm512_mul_ps(x, s)));
        _mm512_mask_storeu_ps(dg + i, m, _mm512_mul_ps(_mm512_mul_ps(d, uv), _mm512_add_ps(s, slope)));
    }
}

static QK_AVX2 void geglu256(const float *dk, const float *g, const float *u, float *k, float *dg, float *du, int64_t n) {
    const __m256 two_a = _mm256_set1_ps(2 * GELU_A), three_b = _mm256_set1_ps(3 * GELU_B), one = _mm256_set1_ps(1);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256 x = _mm256_loadu_ps(g + i), uv = _mm256_loadu_ps(u + i), s = gelu_sigma256(x);
        if (!dk) { _mm256_storeu_ps(k + i, _mm256_mul_ps(_mm256_mul_ps(x, s), uv)); continue; }
        const __m256 d = _mm256_loadu_ps(dk + i);
        const __m256 slope = _mm256_mul_ps(_mm256_mul_ps(two_a, _mm256_mul_ps(x, _mm256_mul_ps(s, _mm256_sub_ps(one, s)))),
                                           _mm256_fmadd_ps(three_b, _mm256_mul_ps(x, x), one));
        _mm256_storeu_ps(du + i, _mm256_mul_ps(d, _mm256_mul_ps(x, s)));
        _mm256_storeu_ps(dg + i, _mm256_mul_ps(_mm256_mul_ps(d, uv), _mm256_add_ps(s, slope)));
    }
    if (i < n) {  // the tail through padded vectors, so every element gets the same arithmetic
        float dt[8] = {0}, gt[8] = {0}, ut[8] = {0}, kt[8], dgt[8], dut[8];
        const size_t bytes = (size_t)(n - i) * 4;
        memcpy(gt, g + i, bytes);
        memcpy(ut, u + i, bytes);
        if (dk) memcpy(dt, dk + i, bytes);
        geglu256(dk ? dt : NULL, gt, ut, kt, dgt, dut, 8);
        if (!dk) memcpy(k + i, kt, bytes);
        else { memcpy(dg + i, dgt, bytes); memcpy(du + i, dut, bytes); }
    }
}

static void geglu_scalar(const float *dk, const float *g, const float *u, float *k, float *dg, float *du, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        const float x = g[i], s = gelu_sigma(x);
        if (!dk) { k[i] = x * s * u[i]; continue; }
        const float slope = 2 * GELU_A * (x * (s * (1 - s))) * fmaf(3 * GELU_B, x * x, 1);
        du[i] = dk[i] * (x * s);
        dg[i] = dk[i] * u[i] * (s + slope);
    }
}

static int geglu(qk_isa isa, const float *dk, const float *g, const float *u, float *k, float *dg, float *du, int64_t n) {
    if (isa > qk_best_isa() || n < 0) return -1;
    switch (isa) {
    case QK_ISA_AVX512: geglu512(dk, g, u, k, dg, du, n); break;
    case QK_ISA_AVX2: geglu256(dk, g, u, k, dg, du, n); break;
    default: geglu_scalar(dk, g, u, k, dg, du, n); break;
    }
    return 0;
}

int qk_geglu(qk_isa isa, const float *g, const float *u, float *k, int64_t n) {
    if (n > 0 && (!g || !u || !k)) return -1;
    return geglu(isa, NULL, g, u, k, NULL, NULL, n);
}

int qk_geglu_backward(qk_isa isa, const float *dk, const float *g, const float *u, float *dg, float *du, int64_t n) {
    if (n > 0 && (!dk || !g || !u || !dg || !du)) return -1;
    return geglu(isa, dk, g, u, NULL, dg, du, n);
}

// SwiGLU backward, s = σ(g): du = dk·g·s, dg = dk·u·s·(1 + g(1 − s)), beside the forward (it was a scalar
// Swift loop). With v*'s cached prefix few rows reach it: Qwen v* 9.71 → 9.70 CPU-s per request
// (`bench vstar`, 4 requests, 1 thread), 26.4 → 25.0 when every row is recomputed.
static QK_AVX512 void swiglu_backward512(const float *dk, const float *g, const float *u, float *dg, float *du, int64_t n) {
    const __m512 one = _mm512_set1_ps(1);
    for (int64_t i = 0; i < n; i += 16) {
        const __mmask16 m = n - i >= 16 ? 0xFFFF : (__mmask16)((1u << (n - i)) - 1);
        const __m512 x = _mm512_maskz_loadu_ps(m, g + i), uv = _mm512_maskz_loadu_ps(m, u + i), d = _mm512_maskz_loadu_ps(m, dk + i);
        const __m512 s = _mm512_div_ps(one, _mm512_add_ps(one, exp512(_mm512_sub_ps(_mm512_setzero_ps(), x))));
        _mm512_mask_storeu_ps(du + i, m, _mm512_mul_ps(_mm512_mul_ps(d, x), s));
        _mm512_mask_storeu_ps(dg + i, m, _mm512_mul_ps(_mm512_mul_ps(_mm512_mul_ps(d, uv), s),
                                                       _mm512_add_ps(one, _mm512_mul_ps(x, _mm512_sub_ps(one, s)))));
    }
}

static QK_AVX2 void swiglu_backward256(const float *dk, const float *g, const float *u, float *dg, float *du, int64_t n) {
    const __m256 one = _mm256_set1_ps(1);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256 x = _mm256_loadu_ps(g + i), uv = _mm256_loadu_ps(u + i), d = _mm256_loadu_ps(dk + i);
        const __m256 s = _mm256_div_ps(one, _mm256_add_ps(one, exp256(_mm256_sub_ps(_mm256_setzero_ps(), x))));
        _mm256_storeu_ps(du + i, _mm256_mul_ps(_mm256_mul_ps(d, x), s));
        _mm256_storeu_ps(dg + i, _mm256_mul_ps(_mm256_mul_ps(_mm256_mul_ps(d, uv), s),
                                               _mm256_add_ps(one, _mm256_mul_ps(x, _mm256_sub_ps(one, s)))));
    }
    if (i < n) {  // the tail through padded vectors, so every element gets the same arithmetic
        float dt[8] = {0}, gt[8] = {0}, ut[8] = {0}, dgt[8], dut[8];
        const size_t bytes = (size_t)(n - i) * 4;
        memcpy(dt, dk + i, bytes);
        memcpy(gt, g + i, bytes);
        memcpy(ut, u + i, bytes);
        swiglu_backward256(dt, gt, ut, dgt, dut, 8);
        memcpy(dg + i, dgt, bytes);
        memcpy(du + i, dut, bytes);
    }
}

int qk_swiglu_backward(qk_isa isa, const float *dk, const float *g, const float *u, float *dg, float *du, int64_t n) {
    if (isa > qk_best_isa() || n < 0 || (n > 0 && (!dk || !g || !u || !dg || !du))) return -1;
    switch (isa) {
    case QK_ISA_AVX512: swiglu_backward512(dk, g, u, dg, du, n); break;
    case QK_ISA_AVX2: swiglu_backward256(dk, g, u, dg, du, n); break;
    default:
        for (int64_t i = 0; i < n; i++) {
            const float x = g[i], s = 1 / (1 + expf(-x));
            du[i] = dk[i] * x * s;
            dg[i] = dk[i] * u[i] * s * (1 + x * (1 - s));
        }
        break;
    }
    return 0;
}

int qk_swiglu(qk_isa isa, const float *g, const float *u, float *k, int64_t n) {
    if (isa > qk_best_isa() || n < 0 || (n > 0 && (!g || !u || !k))) return -1;
    switch (isa) {
    case QK_ISA_AVX512: swiglu512(g, u, k, n); break;
    case QK_ISA_AVX2: swiglu256(g, u, k, n); break;
    default: for (int64_t i = 0; i < n; i++) k[i] = g[i] / (1 + expf(-g[i])) * u[i]; break;
    }
    return 0;
}
