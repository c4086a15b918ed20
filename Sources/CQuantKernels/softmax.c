// Softmax over a vocabulary row, vectorized: v*'s loss (ComputeZ.swift) and the evaluation's
// log-probabilities (TargetScorer.swift) take log Σ e^x over every token of the vocabulary, and v*'s
// gradient e^(x − lse) for each. Why here: the scalar loops (Foundation.exp in Double, then in Float)
// were 18 % of a Gemma v* request's samples (perf on a running campaign; 262,144 tokens × ≈ 20 loss
// rows × 25 steps). With these, Gemma v* 5.99 → 4.71 CPU-s per request (`bench vstar`, 4 requests, 1 thread).
// The sum is kept in double in 16 fixed lanes (element i in lane i mod 16, lanes added in order at the
// end), and e^x is qk_exp.h's on both ISAs, so AVX2 and AVX-512 return the same bits.
#include "quant_kernels.h"

#include <math.h>
#include <string.h>

#include "qk_exp.h"

static double lanes_sum(const double *l) {
    double s = 0;
    for (int j = 0; j < 16; j++) s += l[j];
    return s;
}

static QK_AVX512 void sum_exp512(const float *x, int64_t n, float *max, double *sum) {
    __m512 mv = _mm512_set1_ps(-INFINITY);
    for (int64_t i = 0; i < n; i += 16) {
        const __mmask16 m = n - i >= 16 ? 0xFFFF : (__mmask16)((1u << (n - i)) - 1);
        mv = _mm512_max_ps(mv, _mm512_mask_loadu_ps(_mm512_set1_ps(-INFINITY), m, x + i));
    }
    const float mx = _mm512_reduce_max_ps(mv);
    const __m512 shift = _mm512_set1_ps(mx);
    __m512d a0 = _mm512_setzero_pd(), a1 = _mm512_setzero_pd();
    for (int64_t i = 0; i < n; i += 16) {
        const __mmask16 m = n - i >= 16 ? 0xFFFF : (__mmask16)((1u << (n - i)) - 1);
        const __m512 e = _mm512_maskz_mov_ps(m, exp512(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, x + i), shift)));
        a0 = _mm512_add_pd(a0, _mm512_cvtps_pd(_mm512_castps512_ps256(e)));
        a1 = _mm512_add_pd(a1, _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(e), 1))));
    }
    double l[16];
    _mm512_storeu_pd(l, a0);
    _mm512_storeu_pd(l + 8, a1);
    *max = mx;
    *sum = lanes_sum(l);
}

static QK_AVX2 void sum_exp256(const float *x, int64_t n, float *max, double *sum) {
    __m256 mv = _mm256_set1_ps(-INFINITY);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) mv = _mm256_max_ps(mv, _mm256_loadu_ps(x + i));
    float mt[8];
    _mm256_storeu_ps(mt, mv);
    float mx = -INFINITY;
    for (int j = 0; j < 8; j++) mx = mt[j] > mx ? mt[j] : mx;
    for (; i < n; i++) mx = x[i] > mx ? x[i] : mx;
    const __m256 shift = _mm256_set1_ps(mx);
    __m256d a0 = _mm256_setzero_pd(), a1 = a0, a2 = a0, a3 = a0;
    for (i = 0; i < n; i += 16) {
        __m256 e0, e1;
        if (n - i >= 16) {
            e0 = exp256(_mm256_sub_ps(_mm256_loadu_ps(x + i), shift));
            e1 = exp256(_mm256_sub_ps(_mm256_loadu_ps(x + i + 8), shift));
        } else {  // the last partial block: padded, and the padding's lanes add exactly 0
            float t[16] = {0}, e[16];
            memcpy(t, x + i, (size_t)(n - i) * 4);
            _mm256_storeu_ps(e, exp256(_mm256_sub_ps(_mm256_loadu_ps(t), shift)));
            _mm256_storeu_ps(e + 8, exp256(_mm256_sub_ps(_mm256_loadu_ps(t + 8), shift)));
            for (int64_t j = n - i; j < 16; j++) e[j] = 0;
            e0 = _mm256_loadu_ps(e);
            e1 = _mm256_loadu_ps(e + 8);
        }
        a0 = _mm256_add_pd(a0, _mm256_cvtps_pd(_mm256_castps256_ps128(e0)));
        a1 = _mm256_add_pd(a1, _mm256_cvtps_pd(_mm256_extractf128_ps(e0, 1)));
        a2 = _mm256_add_pd(a2, _mm256_cvtps_pd(_mm256_castps256_ps128(e1)));
        a3 = _mm256_add_pd(a3, _mm256_cvtps_pd(_mm256_extractf128_ps(e1, 1)));
    }
    double l[16];
    _mm256_storeu_pd(l, a0);
    _mm256_storeu_pd(l + 4, a1);
    _mm256_storeu_pd(l + 8, a2);
    _mm256_storeu_pd(l + 12, a3);
    *max = mx;
    *sum = lanes_sum(l);
}

static void sum_exp_scalar(const float *x, int64_t n, float *max, double *sum) {
    float mx = -INFINITY;
    for (int64_t i = 0; i < n; i++) mx = x[i] > mx ? x[i] : mx;
    double l[16] = {0};
    for (int64_t i = 0; i < n; i++) l[i % 16] += (double)expf(x[i] - mx);
    *max = mx;
    *sum = lanes_sum(l);
}

int qk_sum_exp(qk_isa isa, const float *x, int64_t n, float *max, double *sum) {
    if (isa > qk_best_isa() || n < 1 || !x || !max || !sum) return -1;
    switch (isa) {
    case QK_ISA_AVX512: sum_exp512(x, n, max, sum); break;
    case QK_ISA_AVX2: sum_exp256(x, n, max, sum); break;
    default: sum_exp_scalar(x, n, max, sum); break;
    }
    return 0;
}

static QK_AVX512 void exp_scaled512(const float *x, float *y, int64_t n, float shift, float scale) {
    const __m512 s = _mm512_set1_ps(shift), w = _mm512_set1_ps(scale);
    for (int64_t i = 0; i < n; i += 16) {
        const __mmask16 m = n - i >= 16 ? 0xFFFF : (__mmask16)((1u << (n - i)) - 1);
        _mm512_mask_storeu_ps(y + i, m, _mm512_mul_ps(exp512(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, x + i), s)), w));
    }
}

static QK_AVX2 void exp_scaled256(const float *x, float *y, int64_t n, float shift, float scale) {
    const __m256 s = _mm256_set1_ps(shift), w = _mm256_set1_ps(scale);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, _mm256_mul_ps(exp256(_mm256_sub_ps(_mm256_loadu_ps(x + i), s)), w));
    if (i < n) {
        float t[8] = {0}, e[8];
        memcpy(t, x + i, (size_t)(n - i) * 4);
        _mm256_storeu_ps(e, _mm256_mul_ps(exp256(_mm256_sub_ps(_mm256_loadu_ps(t), s)), w));
        memcpy(y + i, e, (size_t)(n - i) * 4);
    }
}

int qk_exp_scaled(qk_isa isa, const float *x, float *y, int64_t n, float shift, float scale) {
    if (isa > qk_best_isa() || n < 0 || (n > 0 && (!x || !y))) return -1;
    switch (isa) {
    case QK_ISA_AVX512: exp_scaled512(x, y, n, shift, scale); break;
    case QK_ISA_AVX2: exp_scaled256(x, y, n, shift, scale); break;
    default: for (int64_t i = 0; i < n; i++) y[i] = expf(x[i] - shift) * scale; break;
    }
    return 0;
}
