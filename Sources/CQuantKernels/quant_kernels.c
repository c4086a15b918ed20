// Quantized small-batch linear kernels; see include/quant_kernels.h for the contract.
// Loop order: for each pair of output rows (AVX2: each row), for each tile of ≤ 10 (AVX2: 8) token
// rows, for each weight block: dequantize the block into registers once, then one FMA per token row
// and 16 (AVX2: 8) lanes. A row's bytes (≤ 1 KB) stay in L1 across the tiles, so memory sees each
// weight once per call. The AVX-512 loop is bound by its two vector ports (FMAs + dequantization):
// ≈ 95 GF/s at T = 10 on one core here, against ≈ 117 for sgemm on float32 weights already in cache.
// Dequantization mirrors Dequantize.swift bit for bit, so the results differ from dequantize +
// sgemm only by summation order. FMA_EXACT: fusing d·q + m changes nothing, because d (f16, 11
// significant bits) times q (≤ 4 bits) has ≤ 15 significant bits and is exact in float32.
#include "quant_kernels.h"

#include <immintrin.h>
#include <stdlib.h>
#include <string.h>

#define QK_AVX2 __attribute__((target("avx2,fma,f16c")))
#define QK_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx2,fma,f16c")))
#define QK_INLINE static inline __attribute__((always_inline))

enum { QK_BLOCK = 32, Q4_1_BYTES = 20, Q8_0_BYTES = 34 };
// Register blocking: output rows × token rows per tile, as many as the vector registers hold
// (AVX-512: 2 × 10 accumulators + 4 weight vectors of 32; AVX2: 8 accumulators + 4 weights of 16).
enum { QK_MAX_TILE = 10, TILE_512 = 10, ROWS_512 = 2, TILE_256 = 8 };
_Static_assert(TILE_512 <= QK_MAX_TILE && TILE_256 <= QK_MAX_TILE, "tiles fit the accumulator arrays");

/// Token rows per tile: balanced tiles of at most `max` rows (10 → one tile of 10, 12 → 6 + 6).
static inline int64_t tile_size(int64_t t, int64_t max) {
    const int64_t tiles = (t + max - 1) / max;
    return (t + tiles - 1) / tiles;
}

static qk_isa detect_isa(void) {
    __builtin_cpu_init();
    // ALPHAEDIT_ISA=avx2 (or none) caps the choice, so an AVX-512 machine can test the AVX2 paths.
    const char *cap = getenv("ALPHAEDIT_ISA");
    const int max_isa = cap && strcmp(cap, "none") == 0 ? QK_ISA_NONE
                      : cap && strcmp(cap, "avx2") == 0 ? QK_ISA_AVX2 : QK_ISA_AVX512;
    if (max_isa >= QK_ISA_AVX512 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx2") &&
        __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c"))
        return QK_ISA_AVX512;
    if (max_isa >= QK_ISA_AVX2 && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
        __builtin_cpu_supports("f16c"))
        return QK_ISA_AVX2;
    return QK_ISA_NONE;
}

qk_isa qk_best_isa(void) {
    static int cached = -1;  // every thread that races here computes the same value
    int v = __atomic_load_n(&cached, __ATOMIC_RELAXED);
    if (v < 0) { v = (int)detect_isa(); __atomic_store_n(&cached, v, __ATOMIC_RELAXED); }
    return (qk_isa)v;
}

QK_INLINE uint16_t load_u16(const uint8_t *p) { uint16_t v; memcpy(&v, p, 2); return v; }

QK_INLINE void store(float *y, float s, int accumulate) { *y = accumulate ? *y + s : s; }

// Weights are read once, in order, and with one or two tokens the kernel waits on memory: asking
// for the lines PREFETCH_BYTES ahead of the rows being read keeps more loads in flight than the
// hardware prefetcher does on these VMs (measured: T = 1 Q4_1 576→1536 from memory 113 → 71 µs,
// Q8_0 LM head 6.1 → 3.5 ms; T = 10 unchanged). A prefetch past the matrix's end is harmless: it never faults.
enum { PREFETCH_BYTES = 2048 };
QK_INLINE void prefetch_ahead(const uint8_t *rows, int64_t bytes) {
    for (int64_t o = 0; o < bytes; o += 64) _mm_prefetch((const char *)(rows + PREFETCH_BYTES + o), _MM_HINT_T0);
}

// ---- AVX-512: a block is two 16-lane vectors, two accumulators per token row ----

// The 16 possible values d·k + m of the block (k = 0…15) form a table; vpermps picks w[j] = table[q_j]
// and reads only the low 4 bits of each index, so the low nibbles need no mask. d and m arrive as one
// broadcast 32-bit load converted in place (measured: T = 10 90 → 96 GF/s over converting d and m
// separately, 80 → 90 over nibble→int→float conversions; T = 1 99 → 65 µs for 1536 × 576).
QK_INLINE QK_AVX512 void dequant_q4_1_512(const uint8_t *b, __m512 *w0, __m512 *w1) {
    uint32_t dm;
    memcpy(&dm, b, 4);
    const __m512 f = _mm512_cvtph_ps(_mm256_set1_epi32((int)dm));  // d, m, d, m, …
    const __m512 d = _mm512_moveldup_ps(f), m = _mm512_movehdup_ps(f);
    const __m512 k = _mm512_setr_ps(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    const __m512 table = _mm512_fmadd_ps(d, k, m);  // = d·k + m rounded twice: d·k is exact (FMA_EXACT)
    const __m512i q = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(b + 4)));
    *w0 = _mm512_permutexvar_ps(q, table);
    *w1 = _mm512_permutexvar_ps(_mm512_srli_epi32(q, 4), table);
}

QK_INLINE QK_AVX512 void dequant_q8_0_512(const uint8_t *b, __m512 *w0, __m512 *w1) {
    const __m512 d = _mm512_set1_ps(_cvtsh_ss(load_u16(b)));
    *w0 = _mm512_mul_ps(d, _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(b + 2)))));
    *w1 = _mm512_mul_ps(d, _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(b + 18)))));
}

// `nr` output rows × `tt` token rows (literals after inlining, so the accumulators live in
// registers). Several output rows share each load of x; one accumulator per (row, token).
QK_INLINE QK_AVX512 void tile_512(int q8, const uint8_t *wr, int64_t rowBytes, int nr, int64_t nb,
                                  const float *x, int64_t in, int tt, float *y, int64_t ldy, int accumulate) {
    __m512 a[ROWS_512][QK_MAX_TILE];
    for (int r = 0; r < nr; r++) for (int t = 0; t < tt; t++) a[r][t] = _mm512_setzero_ps();
    const int64_t bytes = q8 ? Q8_0_BYTES : Q4_1_BYTES;
    for (int64_t b = 0; b < nb; b++) {
        __m512 w0[ROWS_512], w1[ROWS_512];
        for (int r = 0; r < nr; r++) {
            const uint8_t *blk = wr + r * rowBytes + b * bytes;
            if (q8) dequant_q8_0_512(blk, &w0[r], &w1[r]); else dequant_q4_1_512(blk, &w0[r], &w1[r]);
        }
        const float *xb = x + b * QK_BLOCK;
        for (int t = 0; t < tt; t++) {
            const __m512 x0 = _mm512_loadu_ps(xb + t * in), x1 = _mm512_loadu_ps(xb + t * in + 16);
            for (int r = 0; r < nr; r++) a[r][t] = _mm512_fmadd_ps(w1[r], x1, _mm512_fmadd_ps(w0[r], x0, a[r][t]));
        }
    }
    for (int r = 0; r < nr; r++)
        for (int t = 0; t < tt; t++) store(y + t * ldy + r, _mm512_reduce_add_ps(a[r][t]), accumulate);
}

// Calls fn with the tile height `tt` as a literal (1…QK_MAX_TILE), so each case gets its own
// register allocation; uses the caller's q8, wr, rowBytes, nb, xt, in, yt, ldy, accumulate.
#define QK_TILE_CASES(fn, nr) \
    switch (tt) { \
    case 1: fn(q8, wr, rowBytes, nr, nb, xt, in, 1, yt, ldy, accumulate); break; \
    case 2: fn(q8, wr, rowBytes, nr, nb, xt, in, 2, yt, ldy, accumulate); break; \
    case 3: fn(q8, wr, rowBytes, nr, nb, xt, in, 3, yt, ldy, accumulate); break; \
    case 4: fn(q8, wr, rowBytes, nr, nb, xt, in, 4, yt, ldy, accumulate); break; \
    case 5: fn(q8, wr, rowBytes, nr, nb, xt, in, 5, yt, ldy, accumulate); break; \
    case 6: fn(q8, wr, rowBytes, nr, nb, xt, in, 6, yt, ldy, accumulate); break; \
    case 7: fn(q8, wr, rowBytes, nr, nb, xt, in, 7, yt, ldy, accumulate); break; \
    case 8: fn(q8, wr, rowBytes, nr, nb, xt, in, 8, yt, ldy, accumulate); break; \
    case 9: fn(q8, wr, rowBytes, nr, nb, xt, in, 9, yt, ldy, accumulate); break; \
    default: fn(q8, wr, rowBytes, nr, nb, xt, in, 10, yt, ldy, accumulate); break; \
    }

// Output rows [o, o + nr) over all token rows, tile by tile.
QK_INLINE QK_AVX512 void rows_512(int q8, const float *x, int64_t t, int64_t in, const uint8_t *wr, int64_t rowBytes,
                                  int nr, float *y, int64_t ldy, int accumulate) {
    const int64_t nb = in / QK_BLOCK, size = tile_size(t, TILE_512);
    prefetch_ahead(wr, nr * rowBytes);
    for (int64_t t0 = 0; t0 < t; t0 += size) {
        const float *xt = x + t0 * in;
        float *yt = y + t0 * ldy;
        const int64_t tt = t - t0 < size ? t - t0 : size;
        QK_TILE_CASES(tile_512, nr)
    }
}

QK_INLINE QK_AVX512 void linear_512(int q8, const float *x, int64_t t, int64_t in, const uint8_t *w,
                                    float *y, int64_t ldy, int64_t o0, int64_t o1, int accumulate) {
    const int64_t rowBytes = in / QK_BLOCK * (q8 ? Q8_0_BYTES : Q4_1_BYTES);
    int64_t o = o0;
    for (; o + ROWS_512 <= o1; o += ROWS_512) rows_512(q8, x, t, in, w + o * rowBytes, rowBytes, ROWS_512, y + o, ldy, accumulate);
    for (; o < o1; o++) rows_512(q8, x, t, in, w + o * rowBytes, rowBytes, 1, y + o, ldy, accumulate);
}

// ---- AVX2: a block is four 8-lane vectors, one accumulator per token row ----

QK_INLINE QK_AVX2 void dequant_q4_1_256(const uint8_t *b, __m256 w[4]) {
    const __m256 d = _mm256_set1_ps(_cvtsh_ss(load_u16(b))), m = _mm256_set1_ps(_cvtsh_ss(load_u16(b + 2)));
    const __m128i mask = _mm_set1_epi8(0x0F);
    const __m128i q = _mm_loadu_si128((const __m128i *)(b + 4));
    const __m128i lo = _mm_and_si128(q, mask), hi = _mm_and_si128(_mm_srli_epi16(q, 4), mask);
    const __m128i parts[4] = { lo, _mm_srli_si128(lo, 8), hi, _mm_srli_si128(hi, 8) };
    for (int i = 0; i < 4; i++)
        w[i] = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(parts[i])), m);  // FMA_EXACT
}

QK_INLINE QK_AVX2 void dequant_q8_0_256(const uint8_t *b, __m256 w[4]) {
    const __m256 d = _mm256_set1_ps(_cvtsh_ss(load_u16(b)));
    for (int i = 0; i < 4; i++)
        w[i] = _mm256_mul_ps(d, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)(b + 2 + 8 * i)))));
}

QK_INLINE QK_AVX2 float hsum256(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

// One output row × `tt` token rows (`nr` is always 1: 16 registers hold no second row).
QK_INLINE QK_AVX2 void tile_256(int q8, const uint8_t *wr, int64_t rowBytes, int nr, int64_t nb,
                                const float *x, int64_t in, int tt, float *y, int64_t ldy, int accumulate) {
    (void)rowBytes; (void)nr;
    __m256 a[QK_MAX_TILE];
    for (int t = 0; t < tt; t++) a[t] = _mm256_setzero_ps();
    const int64_t bytes = q8 ? Q8_0_BYTES : Q4_1_BYTES;
    for (int64_t b = 0; b < nb; b++) {
        __m256 w[4];
        if (q8) dequant_q8_0_256(wr + b * bytes, w); else dequant_q4_1_256(wr + b * bytes, w);
        const float *xb = x + b * QK_BLOCK;
        for (int t = 0; t < tt; t++)
            for (int i = 0; i < 4; i++) a[t] = _mm256_fmadd_ps(w[i], _mm256_loadu_ps(xb + t * in + 8 * i), a[t]);
    }
    for (int t = 0; t < tt; t++) store(y + t * ldy, hsum256(a[t]), accumulate);
}

QK_INLINE QK_AVX2 void linear_256(int q8, const float *x, int64_t t, int64_t in, const uint8_t *w,
                                  float *y, int64_t ldy, int64_t o0, int64_t o1, int accumulate) {
    const int64_t nb = in / QK_BLOCK, rowBytes = nb * (q8 ? Q8_0_BYTES : Q4_1_BYTES), size = tile_size(t, TILE_256);
    for (int64_t o = o0; o < o1; o++) {
        const uint8_t *wr = w + o * rowBytes;
        prefetch_ahead(wr, rowBytes);
        for (int64_t t0 = 0; t0 < t; t0 += size) {
            const float *xt = x + t0 * in;
            float *yt = y + t0 * ldy + o;
            const int64_t tt = t - t0 < size ? t - t0 : size;
            QK_TILE_CASES(tile_256, 1)
        }
    }
}

// One instantiation per (ISA, type), so the block type is a constant in the hot loop.
static QK_AVX512 void linear_512_q4_1(const float *x, int64_t t, int64_t in, const uint8_t *w, float *y, int64_t ldy,
                                      int64_t o0, int64_t o1, int accumulate) { linear_512(0, x, t, in, w, y, ldy, o0, o1, accumulate); }
static QK_AVX512 void linear_512_q8_0(const float *x, int64_t t, int64_t in, const uint8_t *w, float *y, int64_t ldy,
                                      int64_t o0, int64_t o1, int accumulate) { linear_512(1, x, t, in, w, y, ldy, o0, o1, accumulate); }
static QK_AVX2 void linear_256_q4_1(const float *x, int64_t t, int64_t in, const uint8_t *w, float *y, int64_t ldy,
                                    int64_t o0, int64_t o1, int accumulate) { linear_256(0, x, t, in, w, y, ldy, o0, o1, accumulate); }
static QK_AVX2 void linear_256_q8_0(const float *x, int64_t t, int64_t in, const uint8_t *w, float *y, int64_t ldy,
                                    int64_t o0, int64_t o1, int accumulate) { linear_256(1, x, t, in, w, y, ldy, o0, o1, accumulate); }

static int linear(int q8, qk_isa isa, const float *x, int64_t t, int64_t in, const void *w,
                  float *y, int64_t ldy, int64_t o0, int64_t o1, int accumulate) {
    if (!x || !w || !y || t < 0 || in <= 0 || in % QK_BLOCK != 0 || o0 < 0 || o1 < o0 || ldy < o1) return -1;
    if (isa == QK_ISA_NONE || isa > qk_best_isa()) return -1;
    if (t == 0 || o0 == o1) return 0;
    const uint8_t *wb = (const uint8_t *)w;
    if (isa == QK_ISA_AVX512) (q8 ? linear_512_q8_0 : linear_512_q4_1)(x, t, in, wb, y, ldy, o0, o1, accumulate);
    else (q8 ? linear_256_q8_0 : linear_256_q4_1)(x, t, in, wb, y, ldy, o0, o1, accumulate);
    return 0;
}

int qk_linear_q4_1(qk_isa isa, const float *x, int64_t t, int64_t in, const void *w,
                   float *y, int64_t ldy, int64_t o0, int64_t o1, int accumulate) {
    return linear(0, isa, x, t, in, w, y, ldy, o0, o1, accumulate);
}

int qk_linear_q8_0(qk_isa isa, const float *x, int64_t t, int64_t in, const void *w,
                   float *y, int64_t ldy, int64_t o0, int64_t o1, int accumulate) {
    return linear(1, isa, x, t, in, w, y, ldy, o0, o1, accumulate);
}
