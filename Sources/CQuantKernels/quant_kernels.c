// Quantized small-batch linear kernels; see include/quant_kernels.h for the contract.
// Loop order: for each pair of output rows (AVX2: each row, or up to 8 when the tiles are short),
// for each tile of ≤ 10 token rows, for each block of 32 weights: dequantize the block into
// registers once, then one FMA per token row and 16 (AVX2: 8) lanes. K-quant super-blocks decode their scales once for their 8
// blocks. A row's bytes (≤ a few KB) stay in L1 across the tiles, so memory sees each weight once
// per call. Measured on one core at T = 10 (2026-12-03, AMD EPYC): AVX-512 Q4_1 ≈ 175 GF/s, Q8_0
// ≈ 173, Q5_0 ≈ 128, Q4_K ≈ 130, Q6_K ≈ 118; AVX2 Q4_1 ≈ 97, Q8_0 ≈ 101, Q5_0 ≈ 83, Q4_K ≈ 59–77,
// Q6_K ≈ 67; AVX2 over inputs of ≥ 1,024 (2026-12-04, input chunks and padded x below): 61–87.
// The dequantizers (dequant_q32.h, dequant_k.h) mirror Dequantize.swift bit for bit, so the results
// differ from dequantize + sgemm only by summation order.
// Each format has an AVX2 and an AVX-512 dequantizer giving the same values. Q5_0, Q6_K and Q4_K
// once ran AVX-512 on blocks dequantized by the AVX2 code and joined in pairs of vectors; their own
// AVX-512 dequantizers were measured faster (the same bits): Q5_0 T = 1 +30 %, T = 10 +3 %
// (dequant_q32.h); Qwen's `ffn_down` products inside the model (`bench forward --breakdown`, 2
// invocations each, ms; 2026-12-05, session 29): Q6_K (12 products) T = 10 9.40 / 9.64 → 9.11 / 9.01,
// T = 1 4.96 / 4.76 → 4.06 / 4.20; Q4_K (11 or 12) T = 10 6.97 / 7.04 → 6.61 / 6.57, T = 1 3.48 / 3.35 →
// 2.83 / 2.65.
#include "qk_common.h"
#include "dequant_q32.h"
#include "dequant_k.h"

#include <stdint.h>
#include <stdlib.h>

// Register blocking: output rows × token rows per tile, as many as the vector registers hold
// (AVX-512: 2 × 10 accumulators + 4 weight vectors of 32; AVX2: 10 accumulators + 4 weight vectors
// of 16, the dequantizer's constants reloaded from memory). AVX2 tiles of 10 rather than 8: a
// 10-token forward is one tile, each block dequantized once instead of twice (measured on one core,
// clang -O2, T = 10: Q4_1 1536 × 576 75.5 → 95.5 GF/s, Q8_0 896 × 4864 43.6 → 60.5, Q6_K 64.6 → 69.2;
// the same sums in the same order, so the same bits).
// With few token rows (T = 1: the LM head of every forward, each generation step) one output row
// leaves the AVX2 loop too few accumulators: each takes 4 FMAs per block, one after another, and the
// loop waits on that chain rather than on memory or the FMA ports. Its tiles then take several
// output rows (`rows_256`), each with its own accumulators summed in the same order as before, so
// the bits do not change. Measured on one core (clang -O2, 8192 × 1024, GF/s, old → new): T = 1
// Q8_0 10.7 → 40.5, Q4_1 20.2 → 28.9, Q5_0 9.0 → 20.6, Q4_K 15.1 → 26.1, Q6_K 16.5 → 23–25;
// T = 2 Q8_0 19.6 → 67.6; Gemma's LM head (Q8_0 262144 × 640, T = 1) 26.4 → 10.2 ms. Q6_K's
// dequantizer needs more registers: two of its rows at T = 3…5 spill (59.6 → 36.9), so it keeps one.
// The AVX-512 loop gained nothing from 4 or 8 rows (Q8_0 T = 1: 22.6 GF/s with 2, 19.7 with 4, 18.3
// with 8); it stays at 2. Those T = 1 figures were with the weights in cache. Read from memory, as an
// LM head is (2026-12-04, one core, in one process alternating 8 rows with 4), 4 rows beat 8 for the
// 32-weight formats, equal in cache (Q8_0 2048 × 640: 31.7 and 32.5): Q8_0 262144 × 640 (Gemma's LM
// head) 18 → 30, Q8_0 151936 × 896 14 → 26, Q5_0 151936 × 896 12.5 → 17.6, Q4_1 1536 × 576 10 → 18;
// 2 rows: 27. Q4_K keeps 8 (896 × 4864: 18.0 with 8, 15.4 with 4).
// On two threads (each streaming its share of the rows, as qk_linear_parallel runs an LM head) Q8_0
// and Q6_K read faster in tiles of 2 rows than of 4 (2026-12-05, 2 threads, 5 processes each,
// medians, ms): Q8_0 262144 × 640 (Gemma's LM head) 7.3–14.7 with 4 rows, varying from process to
// process, against 6.3–7.5 with 2; Q8_0 151936 × 896 (Qwen's) 7.2 → 6.4; Q6_K 65536 × 2048 11.7 →
// 7.6; Q8_0 49152 × 576 (SmolLM2's) 6.6 either way. Q4_1 and Q5_0 stay at 4 (Q4_1 98304 × 1536: 7.0
// with 4, 7.7 with 2; Q5_0 151936 × 896: 6.8 and 7.0). One thread alone reads Gemma's head 11 %
// faster with 4 rows (11.3 against 12.6 ms); a forward runs on every core, so the 2 rows win.
// With AVX-512 the same holds one step further for Q8_0 at T = 1, whose unpacking is cheap and whose
// chain of 2 FMAs a block does not hold the loop back: one row per tile, one stream of weights per
// thread (2026-12-05, session 29, the same bits). 2 threads, weights from memory, µs, 2 rows → 1:
// Qwen's head (151,936 × 896) 8,591 / 8,533 / 8,861 → 5,208 / 5,085 / 5,329, Gemma's (262,144 × 640)
// 8,814 / 8,093 / 8,419 → 5,999 / 6,320 / 6,351. Inside the model (`bench forward --breakdown`) Qwen's head
// took 8.4 → 5.6 ms and its generation step 26.4–27.1 → 24.4–25.1 ms (3 invocations each); Gemma's head,
// already at ≈ 29 GB/s with 2 rows there, stayed at 6.0–6.4 ms. The other formats unpack more and keep
// 2 rows (1 row: Q5_0 −4 %, Q4_K −12 % on the same test). With AVX2, 1 row waits on its chain of 4
// FMAs a block (Qwen's head 8.3–8.6 → 7.8–8.1 ms, Gemma's 6.9–8.0 → 8.9), so AVX2 keeps 2.
// Once the AVX2 tiles prefetched the next tile's rows as they went (prefetch_next_tile, session 30),
// 4 rows beat 2 for Q8_0 and Q6_K at T = 1 as well (2 threads, weights from memory, medians of 7,
// GF/s: Q6_K 896 × 4864 31.0 → 36.0, Q8_0 4864 × 896 50.0 → 53.6, Qwen's head 53.3 → 57.7; generation
// steps, 3 alternating invocations, ms: Qwen 22.48 / 22.88 / 21.82 → 21.16 / 20.80 / 21.36, Gemma
// 12.62 / 12.23 / 12.62 → 11.34 / 11.35 / 11.36, SmolLM2 unchanged within the noise).
enum { QK_MAX_TILE = 10, TILE_512 = 10, ROWS_512 = 2, TILE_256 = 10, ROWS_256 = 8 };
_Static_assert(TILE_512 <= QK_MAX_TILE && TILE_256 <= QK_MAX_TILE, "tiles fit the accumulator arrays");

/// AVX-512 output rows per tile for tiles of `size` token rows: ROWS_512, or 1 for Q8_0, F16 and BF16 at
/// T = 1, whose unpacking is as cheap (SmolLM2 as F16, generation step on 2 threads, 2026-12-06: 2 rows
/// 13.8 / 14.9 ms, 1 row 9.7 / 11.4).
static inline int rows_per_tile_512(int fmt, int64_t size) { return size == 1 && (fmt == QK_Q8_0 || fmt == QK_F16 || fmt == QK_BF16) ? 1 : ROWS_512; }

/// AVX2 output rows per tile for tiles of `size` token rows: ≤ 10 accumulators of the 16 registers.
static inline int rows_256(int fmt, int64_t size) {
    if (size == 1) return fmt == QK_Q4_K ? 8 : 4;
    if (size == 2) return 4;
    return size <= 5 && fmt != QK_Q6_K ? 2 : 1;
}

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

// ---- per-format dispatch; `fmt` is a literal after inlining, so each switch folds away ----

/// Blocks of 32 in one stored (super-)block.
QK_INLINE int fmt_blocks(int fmt) { return (int)(fmt_block(fmt) / QK_BLOCK); }

// K-quant rows are long (Qwen's `ffn_down`: 3,990 bytes of Q6_K), and prefetch_ahead at a tile's start
// reached only 2 KB into its rows: each tile began by waiting on memory. So as a tile decodes each
// super-block's scales, it asks for the same super-block of the next tile's rows, one tile ahead
// (prefetch_next_tile, qk_common.h, which the int8 tiles call too; a prefetch past the matrix's end
// never faults). Measured 2026-12-05 (session 30), weights from memory, 2 threads, GF/s before → after,
// median of 5–7 alternating runs: AVX-512 Q6_K 896 × 4864 T = 1 22 → 43, T = 3 57 → 102, T = 10
// 113 → 155; Q4_K T = 10 (one core) 85 → 94.5; AVX2 Q6_K T = 1 20 → 33. The AVX2 loop does the same for the 32-weight formats, a line at a time (Qwen's AVX2
// generation step, 3 alternating invocations: 27.1–27.5 → 21.8–22.6 ms; its Q8_0 head, harness, 2 threads:
// 7.2–8.0 → 5.0–5.3 ms). The AVX-512 loop does not: there the same lost (Qwen's generation step 22.1 →
// 26.0 ms one tile ahead, 24.0 ms 4 KB ahead), as it did at T = 10 (one core, Q5_0 85 → 83 GF/s).
/// Block j of the (super-)block at `b` as four 8-lane vectors.
QK_INLINE QK_AVX2 void dequant_256(int fmt, const uint8_t *b, int j, const qk_scales *s, __m256 w[4]) {
    switch (fmt) {
    case QK_Q4_1: dequant_q4_1_256(b, w); break;
    case QK_Q4_1F: dequant_q4_1f_256(b, w); break;
    case QK_Q8_0: dequant_q8_0_256(b, w); break;
    case QK_Q5_0: dequant_q5_0_256(b, w); break;
    case QK_Q4_K: dequant_q4_k_256(b, j, s, w); break;
    case QK_Q4_0: dequant_q4_0_256(b, w); break;
    case QK_Q5_1: dequant_q5_1_256(b, w); break;
    case QK_IQ4_NL: dequant_iq4_nl_256(b, w); break;
    case QK_Q5_K: dequant_q5_k_256(b, j, s, w); break;
    case QK_IQ4_XS: dequant_iq4_xs_256(b, j, s, w); break;
    case QK_Q3_K: dequant_q3_k_256(b, j, s, w); break;
    case QK_Q2_K: dequant_q2_k_256(b, j, s, w); break;
    case QK_F16: dequant_f16_256(b, w); break;
    case QK_BF16: dequant_bf16_256(b, w); break;
    case QK_Q1_0: dequant_q1_0_256(b, j, w); break;
    case QK_IQ2_XXS: case QK_IQ2_XS: case QK_IQ2_S: case QK_IQ3_XXS: case QK_IQ3_S: case QK_IQ1_S: case QK_IQ1_M:
        dequant_iq_256(fmt, b, j, s, w); break;
    default: dequant_q6_k_256(b, j, s, w); break;
    }
}

/// Block j of the (super-)block at `b` as two 16-lane vectors.
QK_INLINE QK_AVX512 void dequant_512(int fmt, const uint8_t *b, int j, const qk_scales *s, __m512 *w0, __m512 *w1) {
    switch (fmt) {
    case QK_Q4_1: dequant_q4_1_512(b, w0, w1); break;
    case QK_Q4_1F: dequant_q4_1f_512(b, w0, w1); break;
    case QK_Q8_0: dequant_q8_0_512(b, w0, w1); break;
    case QK_Q5_0: dequant_q5_0_512(b, w0, w1); break;
    case QK_Q4_K: dequant_q4_k_512(b, j, s, w0, w1); break;
    case QK_Q4_0: dequant_q4_0_512(b, w0, w1); break;
    case QK_Q5_1: dequant_q5_1_512(b, w0, w1); break;
    case QK_IQ4_NL: dequant_iq4_nl_512(b, w0, w1); break;
    case QK_Q5_K: dequant_q5_k_512(b, j, s, w0, w1); break;
    case QK_IQ4_XS: dequant_iq4_xs_512(b, j, s, w0, w1); break;
    case QK_Q3_K: dequant_q3_k_512(b, j, s, w0, w1); break;
    case QK_Q2_K: dequant_q2_k_512(b, j, s, w0, w1); break;
    case QK_F16: dequant_f16_512(b, w0, w1); break;
    case QK_BF16: dequant_bf16_512(b, w0, w1); break;
    case QK_Q1_0: dequant_q1_0_512(b, j, w0, w1); break;
    case QK_IQ2_XXS: case QK_IQ2_XS: case QK_IQ2_S: case QK_IQ3_XXS: case QK_IQ3_S: case QK_IQ1_S: case QK_IQ1_M:
        dequant_iq_512(fmt, b, j, s, w0, w1); break;
    default: dequant_q6_k_512(b, j, s, w0, w1); break;
    }
}

// ---- input chunks: a wide input's activations stay in L1 (AVX2) ----

// A tile reads its token rows of x across the whole input for every output row. Past L1 (32 KB on
// Zen 4 and Skylake; 10 token rows of 2,048 inputs are 80 KB) the AVX2 loop, one x load per FMA, waits
// on L2. So on AVX2 a tile of ≥ CHUNK_MIN_TT token rows whose x exceeds CHUNK_IF_X_OVER walks the input
// in chunks of ≤ CHUNK_X_BYTES of x (whole stored blocks), each chunk over a group of CHUNK_GROUP
// output rows before the next (chunked()). The accumulators wait in memory between chunks and are
// summed across lanes after the last: each holds the partial sums of the same FMAs in the same order
// as when it stayed in a register, so the results keep their bits. Each (format, tile height) has its
// own chunk function, not inlined into the walk: inlined, the walk's loop variables crowded the
// general registers and the x pointer was reloaded from the stack before every FMA (Q4_K 74 → 55).
// Measured 2026-12-04 on one AVX2 core, T = 10, in one process alternating with the kernels before
// (GF/s, before → after, x's 4 KB strides padded by qk_linear_parallel as well): Q5_0 640 × 2048
// 37 → 62 (the padding alone: 55), Q4_K 640 × 1024 53 → 61, Q6_K 896 × 4864 54 → 66, Q4_1 576 × 1536
// 54 → 87. AVX-512 does not chunk: its tiles load each x once for two output rows, and chunks lost
// there (Q4_K 640 × 1024 76 → 56).
// Those figures are with the weights in cache; from memory (64 copies read in turn, as a forward
// reads them) the strided chunks gained nothing until the next group's rows were prefetched into L2
// (prefetch_l2): Q5_0 640 × 2048 35 → 59, Q4_1 576 × 1536 44 → 80, Q6_K 896 × 4864 43 → 66.
// The threshold is 28 KB of x, under L1's 32 KB: Qwen's 896 inputs at T = 10 (35.8 KB) stayed whole
// until 2026-12-06 (session 40), when chunking them measured faster (one AVX2 core, 4,864 × 896 from
// memory, GF/s whole → chunked: Q8_0 60 → 80, Q4_1 69 → 79, Q5_0 69 → 73, F16 48 → 78; two cores: Q8_0
// 116 → 156, Q5_0 136 → 144). 640 inputs (25.6 KB) stay whole: chunked, Q5_0 2,048 × 640 lost 75 → 67.
// Tiles of 4 and 5 token rows are chunked too since then (CHUNK_MIN_TT was 6): two cores, from memory,
// GF/s T = 5: Q4_K 896 × 4,864 82 → 100–109, Q6_K 86–96 → 98–110, Q4_1 576 × 1,536 91–94 → 114–118;
// T = 4: Q4_K 87–89 → 94, Q6_K 79–90 → 85–94.
enum { CHUNK_MIN_TT = 4, CHUNK_X_BYTES = 16384, CHUNK_IF_X_OVER = 28672, CHUNK_GROUP = 16, CHUNK_LANES = 8 };
enum { CHUNK_TTS = QK_MAX_TILE - CHUNK_MIN_TT + 1 };

typedef void (*chunk_fn)(const uint8_t *wr, int64_t rowBytes, int64_t sb0, int64_t sb1, const float *x, int64_t ldx, float *acc);

/// Whether a tile of `tt` token rows over `in` inputs walks the input in chunks.
static inline int chunks_input(int64_t tt, int64_t in) {
    return tt >= CHUNK_MIN_TT && tt * in * (int64_t)sizeof(float) > CHUNK_IF_X_OVER;
}

/// Asks for the cache lines of bytes [from, to) at p, into L2.
QK_INLINE void prefetch_l2(const uint8_t *p, int64_t from, int64_t to) {
    for (int64_t o = from & ~(int64_t)63; o < to; o += 64) _mm_prefetch((const char *)(p + o), _MM_HINT_T1);
}

/// Token rows [0, tt) (tt ≥ CHUNK_MIN_TT) of output rows [o0, o1): groups of CHUNK_GROUP rows, in
/// each the input chunks in order, in each chunk the group's rows one at a time (`chunks`: the
/// format's chunk functions by tile height, CHUNK_MIN_TT first), then the sums across lanes.
static QK_AVX2 void chunked(int fmt, const chunk_fn *chunks, const float *x, int64_t ldx, int64_t tt, int64_t in,
                            const uint8_t *w, float *y, int64_t ldy, int64_t o0, int64_t o1, int accumulate) {
    const int64_t ns = in / fmt_block(fmt), rowBytes = ns * fmt_bytes(fmt);
    int64_t chunk = CHUNK_X_BYTES / (tt * fmt_block(fmt) * (int64_t)sizeof(float));
    if (chunk < 1) chunk = 1;
    const chunk_fn run = chunks[tt - CHUNK_MIN_TT];
    float acc[CHUNK_GROUP * QK_MAX_TILE * CHUNK_LANES] __attribute__((aligned(32)));
    const int64_t chunks_per_row = (ns + chunk - 1) / chunk;
    prefetch_l2(w + o0 * rowBytes, 0, ((o0 + CHUNK_GROUP < o1 ? o0 + CHUNK_GROUP : o1) - o0) * rowBytes);
    for (int64_t og = o0; og < o1; og += CHUNK_GROUP) {
        const int64_t oe = og + CHUNK_GROUP < o1 ? og + CHUNK_GROUP : o1;
        // The next group's rows (contiguous) are asked for a slice per call, so they are in L2 when
        // its strided chunks are read (without: no gain once the weights came from memory).
        const int64_t nextBytes = ((oe + CHUNK_GROUP < o1 ? oe + CHUNK_GROUP : o1) - oe) * rowBytes;
        const int64_t calls = (oe - og) * chunks_per_row;
        int64_t call = 0;
        memset(acc, 0, (size_t)(oe - og) * QK_MAX_TILE * CHUNK_LANES * sizeof(float));
        for (int64_t sb0 = 0; sb0 < ns; sb0 += chunk) {
            const int64_t sb1 = sb0 + chunk < ns ? sb0 + chunk : ns;
            for (int64_t o = og; o < oe; o++, call++) {
                prefetch_l2(w + oe * rowBytes, call * nextBytes / calls, (call + 1) * nextBytes / calls);
                run(w + o * rowBytes, rowBytes, sb0, sb1, x, ldx, acc + (o - og) * QK_MAX_TILE * CHUNK_LANES);
            }
        }
        for (int64_t r = 0; r < oe - og; r++)
            for (int64_t k = 0; k < tt; k++) store(y + k * ldy + og + r, hsum256(_mm256_load_ps(acc + (r * QK_MAX_TILE + k) * CHUNK_LANES)), accumulate);
    }
}

// ---- AVX-512: a block is two 16-lane vectors, two accumulators per token row ----

// `nr` output rows × `tt` token rows (literals after inlining, so the accumulators live in
// registers). Several output rows share each load of x; one accumulator per (row, token).
// `ns` stored (super-)blocks per row.
// Software-pipelined: block b + 1 is dequantized before block b's FMAs are issued. In the plain order
// (dequantize b, then its 2 × nr × tt FMAs) the FMAs filled the FP scheduler and the next block's
// dequantization, a chain of ≈ 20 cycles from its load to the last conversion, could not start
// until they drained. The FMAs of each accumulator keep their order, so the bits do not change.
// Measured 2026-12-05 (session 30), one core, T = 10, weights from memory, 7 alternating runs,
// GF/s before → after: Q5_0 4864 × 896 76 → 84, Q4_K 896 × 4864 78 → 86, Q6_K 58.7 → 63.5, Q4_1
// 4864 × 896 88 → 93, Q8_0 73 → 75; Qwen's 10-token forward (2 invocations each) 63.5 / 61.3 →
// 54.0 / 53.7 ms.
/// Block b (counted in blocks of 32 across the row) of `nr` rows into w0, w1; at a super-block's first
/// block, its scales into s (this block's scales are not needed once it is dequantized) and the prefetch
/// of the next tile's rows.
QK_INLINE QK_AVX512 void block_512(int fmt, const uint8_t *wr, int64_t rowBytes, int nr, int64_t b, qk_scales s[ROWS_512],
                                   __m512 w0[ROWS_512], __m512 w1[ROWS_512]) {
    const int64_t sb = b / fmt_blocks(fmt), off = sb * fmt_bytes(fmt);
    const int j = (int)(b % fmt_blocks(fmt));
    for (int r = 0; r < nr; r++) {
        if (j == 0) {
            prepare(fmt, wr + r * rowBytes + off, &s[r]);
            prefetch_next_tile(fmt, wr + (nr + r) * rowBytes + off, 0);
        }
        dequant_512(fmt, wr + r * rowBytes + off, j, &s[r], &w0[r], &w1[r]);
    }
}

QK_INLINE QK_AVX512 void tile_512(int fmt, const uint8_t *wr, int64_t rowBytes, int nr, int64_t ns,
                                  const float *x, int64_t ldx, int tt, float *y, int64_t ldy, int accumulate) {
    __m512 a[ROWS_512][QK_MAX_TILE];
    for (int r = 0; r < nr; r++) for (int t = 0; t < tt; t++) a[r][t] = _mm512_setzero_ps();
    const int64_t blocks = ns * fmt_blocks(fmt);
    qk_scales s[ROWS_512];
    __m512 c0[ROWS_512], c1[ROWS_512];
    block_512(fmt, wr, rowBytes, nr, 0, s, c0, c1);
    for (int64_t b = 0; b < blocks; b++) {
        __m512 n0[ROWS_512], n1[ROWS_512];
        if (b + 1 < blocks) block_512(fmt, wr, rowBytes, nr, b + 1, s, n0, n1);
        else for (int r = 0; r < nr; r++) n0[r] = n1[r] = _mm512_setzero_ps();
        const float *xb = x + b * QK_BLOCK;
        for (int t = 0; t < tt; t++) {
            const __m512 x0 = _mm512_loadu_ps(xb + t * ldx), x1 = _mm512_loadu_ps(xb + t * ldx + 16);
            for (int r = 0; r < nr; r++) a[r][t] = _mm512_fmadd_ps(c1[r], x1, _mm512_fmadd_ps(c0[r], x0, a[r][t]));
        }
        for (int r = 0; r < nr; r++) { c0[r] = n0[r]; c1[r] = n1[r]; }
    }
    for (int r = 0; r < nr; r++)
        for (int t = 0; t < tt; t++) store(y + t * ldy + r, _mm512_reduce_add_ps(a[r][t]), accumulate);
}

// Calls fn with the tile height `tt` as a literal (1…QK_MAX_TILE), so each case gets its own
// register allocation; uses the caller's fmt, wr, rowBytes, ns, xt, ldx, yt, ldy, accumulate.
#define QK_TILE_CASES(fn, nr) \
    switch (tt) { \
    case 1: fn(fmt, wr, rowBytes, nr, ns, xt, ldx, 1, yt, ldy, accumulate); break; \
    case 2: fn(fmt, wr, rowBytes, nr, ns, xt, ldx, 2, yt, ldy, accumulate); break; \
    case 3: fn(fmt, wr, rowBytes, nr, ns, xt, ldx, 3, yt, ldy, accumulate); break; \
    case 4: fn(fmt, wr, rowBytes, nr, ns, xt, ldx, 4, yt, ldy, accumulate); break; \
    case 5: fn(fmt, wr, rowBytes, nr, ns, xt, ldx, 5, yt, ldy, accumulate); break; \
    case 6: fn(fmt, wr, rowBytes, nr, ns, xt, ldx, 6, yt, ldy, accumulate); break; \
    case 7: fn(fmt, wr, rowBytes, nr, ns, xt, ldx, 7, yt, ldy, accumulate); break; \
    case 8: fn(fmt, wr, rowBytes, nr, ns, xt, ldx, 8, yt, ldy, accumulate); break; \
    case 9: fn(fmt, wr, rowBytes, nr, ns, xt, ldx, 9, yt, ldy, accumulate); break; \
    default: fn(fmt, wr, rowBytes, nr, ns, xt, ldx, 10, yt, ldy, accumulate); break; \
    }

// Output rows [o, o + nr) over all token rows, tile by tile.
QK_INLINE QK_AVX512 void rows_512(int fmt, const float *x, int64_t ldx, int64_t t, int64_t in, const uint8_t *wr, int64_t rowBytes,
                                  int nr, float *y, int64_t ldy, int accumulate) {
    const int64_t ns = in / fmt_block(fmt), size = tile_size(t, TILE_512);
    prefetch_ahead(wr, nr * rowBytes);
    for (int64_t t0 = 0; t0 < t; t0 += size) {
        const float *xt = x + t0 * ldx;
        float *yt = y + t0 * ldy;
        const int64_t tt = t - t0 < size ? t - t0 : size;
        QK_TILE_CASES(tile_512, nr)
    }
}

QK_INLINE QK_AVX512 void linear_512(int fmt, const float *x, int64_t ldx, int64_t t, int64_t in, const uint8_t *w,
                                    float *y, int64_t ldy, int64_t o0, int64_t o1, int accumulate) {
    const int64_t rowBytes = in / fmt_block(fmt) * fmt_bytes(fmt);
    int64_t o = o0;
    if (rows_per_tile_512(fmt, tile_size(t, TILE_512)) == ROWS_512)
        for (; o + ROWS_512 <= o1; o += ROWS_512) rows_512(fmt, x, ldx, t, in, w + o * rowBytes, rowBytes, ROWS_512, y + o, ldy, accumulate);
    for (; o < o1; o++) rows_512(fmt, x, ldx, t, in, w + o * rowBytes, rowBytes, 1, y + o, ldy, accumulate);
}

// ---- AVX2: a block is four 8-lane vectors, one accumulator per token row ----

/// Block j of stored block sb of `nr` output rows into the accumulators a[r][t] of `tt` token rows.
QK_INLINE QK_AVX2 void block_256(int fmt, const uint8_t *wr, int64_t rowBytes, int nr, int64_t sb, int j, const qk_scales *s,
                                 const float *x, int64_t ldx, int tt, __m256 a[ROWS_256][QK_MAX_TILE]) {
    const float *xb = x + (sb * fmt_blocks(fmt) + j) * QK_BLOCK;
    for (int r = 0; r < nr; r++) {  // one row's block at a time: the accumulators take the registers
        __m256 w[4];
        dequant_256(fmt, wr + r * rowBytes + sb * fmt_bytes(fmt), j, &s[r], w);
        for (int t = 0; t < tt; t++)
            for (int i = 0; i < 4; i++) a[r][t] = _mm256_fmadd_ps(w[i], _mm256_loadu_ps(xb + t * ldx + 8 * i), a[r][t]);
    }
}

// Adds stored blocks [sb0, sb1) of `nr` output rows to the accumulators a[r][t] of `tt` token rows,
// one accumulator each (literals after inlining).
QK_INLINE QK_AVX2 void blocks_256(int fmt, const uint8_t *wr, int64_t rowBytes, int nr, int64_t sb0, int64_t sb1,
                                  const float *x, int64_t ldx, int tt, __m256 a[ROWS_256][QK_MAX_TILE]) {
    const int64_t bytes = fmt_bytes(fmt);
    for (int64_t sb = sb0; sb < sb1; sb++) {
        qk_scales s[ROWS_256];
        for (int r = 0; r < nr; r++) {
            prepare(fmt, wr + r * rowBytes + sb * bytes, &s[r]);
            prefetch_next_tile(fmt, wr + (nr + r) * rowBytes + sb * bytes, 1);
        }
        // Q6_K's block loop unrolled (its shifts by immediates, its scales' offsets constants): one AVX2
        // core, 896 × 4,864 from memory, GF/s 68 → 71 at T = 10, 20.0 → 21.1 at T = 1 (2026-12-06). The
        // other K-quants lost so (T = 10: Q4_K 75 → 62, Q5_K 59 → 52, Q3_K 72 → 65, Q2_K 74 → 64).
        if (fmt == QK_Q6_K) {
#pragma clang loop unroll(full)
            for (int j = 0; j < fmt_blocks(fmt); j++) block_256(fmt, wr, rowBytes, nr, sb, j, s, x, ldx, tt, a);
        } else {
            for (int j = 0; j < fmt_blocks(fmt); j++) block_256(fmt, wr, rowBytes, nr, sb, j, s, x, ldx, tt, a);
        }
    }
}

// `nr` output rows × `tt` token rows over the whole input (`ns` stored blocks), into y.
QK_INLINE QK_AVX2 void tile_256(int fmt, const uint8_t *wr, int64_t rowBytes, int nr, int64_t ns,
                                const float *x, int64_t ldx, int tt, float *y, int64_t ldy, int accumulate) {
    __m256 a[ROWS_256][QK_MAX_TILE];
    for (int r = 0; r < nr; r++) for (int t = 0; t < tt; t++) a[r][t] = _mm256_setzero_ps();
    blocks_256(fmt, wr, rowBytes, nr, 0, ns, x, ldx, tt, a);
    for (int r = 0; r < nr; r++)
        for (int t = 0; t < tt; t++) store(y + t * ldy + r, hsum256(a[r][t]), accumulate);
}

// One output row × `tt` token rows over stored blocks [sb0, sb1), the accumulators kept in `acc`
// between calls (CHUNK_LANES floats per token row): one chunk of the input (chunked()).
QK_INLINE QK_AVX2 void chunk_256(int fmt, const uint8_t *wr, int64_t rowBytes, int64_t sb0, int64_t sb1,
                                 const float *x, int64_t ldx, int tt, float *acc) {
    __m256 a[ROWS_256][QK_MAX_TILE];
    for (int t = 0; t < tt; t++) a[0][t] = _mm256_load_ps(acc + t * CHUNK_LANES);
    blocks_256(fmt, wr, rowBytes, 1, sb0, sb1, x, ldx, tt, a);
    for (int t = 0; t < tt; t++) _mm256_store_ps(acc + t * CHUNK_LANES, a[0][t]);
}

// Output rows [o, o + nr) over all token rows, tile by tile (rows_512's AVX2 twin: the ISA attribute
// and the tile function differ).
QK_INLINE QK_AVX2 void group_256(int fmt, const float *x, int64_t ldx, int64_t t, int64_t in, const uint8_t *wr, int64_t rowBytes,
                                 int nr, float *y, int64_t ldy, int accumulate) {
    const int64_t ns = in / fmt_block(fmt), size = tile_size(t, TILE_256);
    prefetch_ahead(wr, nr * rowBytes);
    for (int64_t t0 = 0; t0 < t; t0 += size) {
        const float *xt = x + t0 * ldx;
        float *yt = y + t0 * ldy;
        const int64_t tt = t - t0 < size ? t - t0 : size;
        QK_TILE_CASES(tile_256, nr)
    }
}

QK_INLINE QK_AVX2 void linear_256(int fmt, const float *x, int64_t ldx, int64_t t, int64_t in, const uint8_t *w,
                                  float *y, int64_t ldy, int64_t o0, int64_t o1, int accumulate) {
    const int64_t rowBytes = in / fmt_block(fmt) * fmt_bytes(fmt);
    int64_t o = o0;
#define QK_GROUPS_256(nr) for (; o + nr <= o1; o += nr) group_256(fmt, x, ldx, t, in, w + o * rowBytes, rowBytes, nr, y + o, ldy, accumulate)
    switch (rows_256(fmt, tile_size(t, TILE_256))) {
    case 8: QK_GROUPS_256(8); break;
    case 4: QK_GROUPS_256(4); break;
    case 2: QK_GROUPS_256(2); break;
    default: break;
    }
    QK_GROUPS_256(1);
#undef QK_GROUPS_256
}

// One instantiation per (ISA, format), so the format is a constant in the hot loop.
typedef void (*linear_fn)(const float *x, int64_t ldx, int64_t t, int64_t in, const uint8_t *w, float *y, int64_t ldy,
                          int64_t o0, int64_t o1, int accumulate);

/// Token tiles whose x fits L1 go to `reg` (the AVX2 register walk of this format), the others to
/// chunked() with this format's chunk functions. Several tiles go to `reg` at once (each group of output
/// rows through every tile: each weight read once) only while all their x fits L1 too. Past that, that
/// walk read each tile's x from L2 again (two AVX2 cores, weights from memory, 2026-12-06, GF/s at T = 16,
/// tiles of 8, against T = 10, one tile: Q5_0 4,864 × 896 107 against 140, Q4_1 1,536 × 576 116 against
/// 167). Tile by tile, each tile's x stays in L1 and the weights are read once per tile, which a product
/// of this many rows does not wait on (T = 16: 148 and 165).
static void by_tiles(int fmt, linear_fn reg, const chunk_fn *chunks, const float *x, int64_t ldx, int64_t t, int64_t in,
                     const uint8_t *w, float *y, int64_t ldy, int64_t o0, int64_t o1, int accumulate) {
    const int64_t size = tile_size(t, QK_MAX_TILE);
    const int together = t > size ? t * in * (int64_t)sizeof(float) <= CHUNK_IF_X_OVER : !chunks_input(size, in);
    if (together) { reg(x, ldx, t, in, w, y, ldy, o0, o1, accumulate); return; }
    for (int64_t t0 = 0; t0 < t; t0 += size) {
        const int64_t tt = t - t0 < size ? t - t0 : size;
        if (chunks_input(tt, in)) chunked(fmt, chunks, x + t0 * ldx, ldx, tt, in, w, y + t0 * ldy, ldy, o0, o1, accumulate);
        else reg(x + t0 * ldx, ldx, tt, in, w, y + t0 * ldy, ldy, o0, o1, accumulate);
    }
}

// The AVX2 chunk functions for tile heights CHUNK_MIN_TT…QK_MAX_TILE, and their table.
#define QK_CHUNK_FN(name, fmt, tt) \
    static QK_AVX2 __attribute__((noinline)) void chunk_##name##_##tt( \
        const uint8_t *wr, int64_t rowBytes, int64_t sb0, int64_t sb1, const float *x, int64_t ldx, float *acc) { \
        chunk_256(fmt, wr, rowBytes, sb0, sb1, x, ldx, tt, acc); \
    }
#define QK_CHUNK_FNS(name, fmt) \
    QK_CHUNK_FN(name, fmt, 4) QK_CHUNK_FN(name, fmt, 5) QK_CHUNK_FN(name, fmt, 6) QK_CHUNK_FN(name, fmt, 7) QK_CHUNK_FN(name, fmt, 8) QK_CHUNK_FN(name, fmt, 9) QK_CHUNK_FN(name, fmt, 10) \
    static const chunk_fn CHUNKS_##name[CHUNK_TTS] = { chunk_##name##_4, chunk_##name##_5, chunk_##name##_6, chunk_##name##_7, chunk_##name##_8, chunk_##name##_9, chunk_##name##_10 };
_Static_assert(CHUNK_MIN_TT == 4 && QK_MAX_TILE == 10, "QK_CHUNK_FNS lists these tile heights");

// ---- dequantization of stored blocks to memory (lean weights: StoredMatrix.swift) ----

/// `n` stored (super-)blocks at p into y, with the same register dequantizers as the products, so the
/// same values as Dequantize.swift.
QK_INLINE QK_AVX2 void dequantize_256(int fmt, const uint8_t *p, int64_t n, float *y) {
    for (int64_t sb = 0; sb < n; sb++, p += fmt_bytes(fmt)) {
        qk_scales s;
        prepare(fmt, p, &s);
        for (int j = 0; j < fmt_blocks(fmt); j++, y += QK_BLOCK) {
            __m256 w[4];
            dequant_256(fmt, p, j, &s, w);
            for (int i = 0; i < 4; i++) _mm256_storeu_ps(y + 8 * i, w[i]);
        }
    }
}

QK_INLINE QK_AVX512 void dequantize_512(int fmt, const uint8_t *p, int64_t n, float *y) {
    for (int64_t sb = 0; sb < n; sb++, p += fmt_bytes(fmt)) {
        qk_scales s;
        prepare(fmt, p, &s);
        for (int j = 0; j < fmt_blocks(fmt); j++, y += QK_BLOCK) {
            __m512 w0, w1;
            dequant_512(fmt, p, j, &s, &w0, &w1);
            _mm512_storeu_ps(y, w0);
            _mm512_storeu_ps(y + 16, w1);
        }
    }
}

typedef void (*dequantize_fn)(const uint8_t *p, int64_t n, float *y);

#define QK_INSTANCES(name, fmt) \
    static QK_AVX512 void dequantize_512_##name(const uint8_t *p, int64_t n, float *y) { dequantize_512(fmt, p, n, y); } \
    static QK_AVX2 void dequantize_256_##name(const uint8_t *p, int64_t n, float *y) { dequantize_256(fmt, p, n, y); } \
    static QK_AVX512 void linear_512_##name(const float *x, int64_t ldx, int64_t t, int64_t in, const uint8_t *w, \
                                            float *y, int64_t ldy, int64_t o0, int64_t o1, int accumulate) { \
        linear_512(fmt, x, ldx, t, in, w, y, ldy, o0, o1, accumulate); \
    } \
    static QK_AVX2 void reg_256_##name(const float *x, int64_t ldx, int64_t t, int64_t in, const uint8_t *w, \
                                       float *y, int64_t ldy, int64_t o0, int64_t o1, int accumulate) { \
        linear_256(fmt, x, ldx, t, in, w, y, ldy, o0, o1, accumulate); \
    } \
    QK_CHUNK_FNS(name, fmt) \
    static void linear_256_##name(const float *x, int64_t ldx, int64_t t, int64_t in, const uint8_t *w, \
                                  float *y, int64_t ldy, int64_t o0, int64_t o1, int accumulate) { \
        by_tiles(fmt, reg_256_##name, CHUNKS_##name, x, ldx, t, in, w, y, ldy, o0, o1, accumulate); \
    }
QK_INSTANCES(q4_1, QK_Q4_1)
QK_INSTANCES(q8_0, QK_Q8_0)
QK_INSTANCES(q5_0, QK_Q5_0)
QK_INSTANCES(q4_k, QK_Q4_K)
QK_INSTANCES(q6_k, QK_Q6_K)
QK_INSTANCES(q4_0, QK_Q4_0)
QK_INSTANCES(q5_1, QK_Q5_1)
QK_INSTANCES(iq4_nl, QK_IQ4_NL)
QK_INSTANCES(q5_k, QK_Q5_K)
QK_INSTANCES(iq4_xs, QK_IQ4_XS)
QK_INSTANCES(q3_k, QK_Q3_K)
QK_INSTANCES(q2_k, QK_Q2_K)
QK_INSTANCES(f16, QK_F16)
QK_INSTANCES(bf16, QK_BF16)
QK_INSTANCES(iq2_xxs, QK_IQ2_XXS)
QK_INSTANCES(iq2_xs, QK_IQ2_XS)
QK_INSTANCES(iq2_s, QK_IQ2_S)
QK_INSTANCES(iq3_xxs, QK_IQ3_XXS)
QK_INSTANCES(iq3_s, QK_IQ3_S)
QK_INSTANCES(iq1_s, QK_IQ1_S)
QK_INSTANCES(iq1_m, QK_IQ1_M)
QK_INSTANCES(q1_0, QK_Q1_0)
QK_INSTANCES(q4_1f, QK_Q4_1F)

// Indexed by qk_format.
static const linear_fn KERNELS_512[] = { linear_512_q4_1, linear_512_q8_0, linear_512_q5_0, linear_512_q4_k, linear_512_q6_k,
                                         linear_512_q4_0, linear_512_q5_1, linear_512_iq4_nl, linear_512_q5_k, linear_512_iq4_xs,
                                         linear_512_q3_k, linear_512_q2_k, linear_512_f16, linear_512_bf16,
                                         linear_512_iq2_xxs, linear_512_iq2_xs, linear_512_iq2_s, linear_512_iq3_xxs,
                                         linear_512_iq3_s, linear_512_iq1_s, linear_512_iq1_m, linear_512_q1_0,
                                         linear_512_q4_1f };
static const linear_fn KERNELS_256[] = { linear_256_q4_1, linear_256_q8_0, linear_256_q5_0, linear_256_q4_k, linear_256_q6_k,
                                         linear_256_q4_0, linear_256_q5_1, linear_256_iq4_nl, linear_256_q5_k, linear_256_iq4_xs,
                                         linear_256_q3_k, linear_256_q2_k, linear_256_f16, linear_256_bf16,
                                         linear_256_iq2_xxs, linear_256_iq2_xs, linear_256_iq2_s, linear_256_iq3_xxs,
                                         linear_256_iq3_s, linear_256_iq1_s, linear_256_iq1_m, linear_256_q1_0,
                                         linear_256_q4_1f };
_Static_assert(sizeof KERNELS_512 / sizeof *KERNELS_512 == QK_FORMATS, "one kernel per format");
_Static_assert(sizeof KERNELS_256 / sizeof *KERNELS_256 == QK_FORMATS, "one kernel per format");

static const dequantize_fn DEQUANTIZE_512[] = { dequantize_512_q4_1, dequantize_512_q8_0, dequantize_512_q5_0, dequantize_512_q4_k,
    dequantize_512_q6_k, dequantize_512_q4_0, dequantize_512_q5_1, dequantize_512_iq4_nl, dequantize_512_q5_k, dequantize_512_iq4_xs,
    dequantize_512_q3_k, dequantize_512_q2_k, dequantize_512_f16, dequantize_512_bf16, dequantize_512_iq2_xxs,
    dequantize_512_iq2_xs, dequantize_512_iq2_s, dequantize_512_iq3_xxs, dequantize_512_iq3_s, dequantize_512_iq1_s,
    dequantize_512_iq1_m, dequantize_512_q1_0, dequantize_512_q4_1f };
static const dequantize_fn DEQUANTIZE_256[] = { dequantize_256_q4_1, dequantize_256_q8_0, dequantize_256_q5_0, dequantize_256_q4_k,
    dequantize_256_q6_k, dequantize_256_q4_0, dequantize_256_q5_1, dequantize_256_iq4_nl, dequantize_256_q5_k, dequantize_256_iq4_xs,
    dequantize_256_q3_k, dequantize_256_q2_k, dequantize_256_f16, dequantize_256_bf16, dequantize_256_iq2_xxs,
    dequantize_256_iq2_xs, dequantize_256_iq2_s, dequantize_256_iq3_xxs, dequantize_256_iq3_s, dequantize_256_iq1_s,
    dequantize_256_iq1_m, dequantize_256_q1_0, dequantize_256_q4_1f };
_Static_assert(sizeof DEQUANTIZE_512 / sizeof *DEQUANTIZE_512 == QK_FORMATS, "one dequantizer per format");
_Static_assert(sizeof DEQUANTIZE_256 / sizeof *DEQUANTIZE_256 == QK_FORMATS, "one dequantizer per format");

int qk_dequantize_rows(qk_format format, qk_isa isa, const void *src, int64_t src_stride, int64_t rows, int64_t blocks,
                       float *dst, int64_t dst_stride) {
    if ((unsigned)format >= QK_FORMATS || !src || !dst || blocks < 0 || rows < 0) return -1;
    if (isa == QK_ISA_NONE || isa > qk_best_isa()) return -1;
    qk_iq_grids_init();
    const dequantize_fn run = (isa == QK_ISA_AVX512 ? DEQUANTIZE_512 : DEQUANTIZE_256)[format];
    for (int64_t r = 0; r < rows; r++) run((const uint8_t *)src + r * src_stride, blocks, dst + r * dst_stride);
    return 0;
}

int qk_linear_strided(qk_format format, qk_isa isa, const float *x, int64_t ldx, int64_t t, int64_t in, const void *w,
                      float *y, int64_t ldy, int64_t o0, int64_t o1, int accumulate) {
    if ((unsigned)format >= QK_FORMATS) return -1;
    if (!x || !w || !y || t < 0 || in <= 0 || in % fmt_block((int)format) != 0 || ldx < in || o0 < 0 || o1 < o0 || ldy < o1) return -1;
    if (isa == QK_ISA_NONE || isa > qk_best_isa()) return -1;
    if (t == 0 || o0 == o1) return 0;
    qk_iq_grids_init();
    (isa == QK_ISA_AVX512 ? KERNELS_512 : KERNELS_256)[format](x, ldx, t, in, (const uint8_t *)w, y, ldy, o0, o1, accumulate);
    return 0;
}

int qk_linear(qk_format format, qk_isa isa, const float *x, int64_t t, int64_t in, const void *w,
              float *y, int64_t ldy, int64_t o0, int64_t o1, int accumulate) {
    return qk_linear_strided(format, isa, x, in, t, in, w, y, ldy, o0, o1, accumulate);
}

int64_t qk_x_stride(int64_t in) {
    return (in * (int64_t)sizeof(float)) % QK_ALIAS_BYTES == 0 ? in + QK_ALIAS_PAD : in;
}

void qk_repack_q1_0_as_q4_0(const void *src, void *dst, int64_t blocks) {
    const uint8_t *s = (const uint8_t *)src;
    uint8_t *d = (uint8_t *)dst;
    for (int64_t b = 0; b < blocks; b++, s += Q1_0_BYTES) {
        for (int k = 0; k < 4; k++, d += Q4_0_BYTES) {  // Q4_0 block k: weights 32k … 32k + 31 of the Q1_0 block
            const uint8_t *bits = s + 2 + 4 * k;
            memcpy(d, s, 2);
            for (int e = 0; e < 16; e++) {
                const int lo = (bits[e >> 3] >> (e & 7)) & 1, hi = (bits[2 + (e >> 3)] >> (e & 7)) & 1;
                d[2 + e] = (uint8_t)((lo ? 9 : 7) | (hi ? 9 : 7) << 4);
            }
        }
    }
}

/// An IEEE half's bits as float32, exactly as F16C's vcvtph2ps converts them (every half is a float32).
static float f16_bits_to_f32(uint16_t h) {
    const uint32_t sign = (uint32_t)(h >> 15) << 31, exp = (h >> 10) & 0x1F, man = h & 0x3FF;
    uint32_t bits;
    if (exp == 0x1F) bits = sign | 0x7F800000u | man << 13 | (man ? 0x400000u : 0);  // NaNs quieted, as F16C does
    else if (exp != 0) bits = sign | (exp + 112) << 23 | man << 13;
    else if (man == 0) bits = sign;
    else {  // subnormal: man · 2^−24, normalized
        int e = -1;
        uint32_t m = man;
        do { m <<= 1; e++; } while (!(m & 0x400));
        bits = sign | (uint32_t)(112 - e) << 23 | (m & 0x3FF) << 13;
    }
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

void qk_repack_q4_1_float_scales(const void *src, void *dst, int64_t blocks) {
    const uint8_t *s = (const uint8_t *)src;
    uint8_t *d = (uint8_t *)dst;
    for (int64_t b = 0; b < blocks; b++, s += Q4_1_BYTES, d += Q4_1F_BYTES) {
        const float dm[2] = { f16_bits_to_f32(load_u16(s)), f16_bits_to_f32(load_u16(s + 2)) };  // exact
        memcpy(d, dm, 8);
        memcpy(d + 8, s + 4, 16);
    }
}

void qk_repack_q5_0_as_q8_0(const void *src, void *dst, int64_t blocks) {
    const uint8_t *s = (const uint8_t *)src;
    uint8_t *d = (uint8_t *)dst;
    for (int64_t b = 0; b < blocks; b++, s += Q5_0_BYTES, d += Q8_0_BYTES) {
        const uint32_t qh = load_u32(s + 2);
        memcpy(d, s, 2);
        for (int e = 0; e < 16; e++) {
            const int lo = (s[6 + e] & 0x0F) | (int)((qh >> e) & 1) << 4;
            const int hi = (s[6 + e] >> 4) | (int)((qh >> (e + 16)) & 1) << 4;
            d[2 + e] = (uint8_t)(int8_t)(lo - 16);
            d[18 + e] = (uint8_t)(int8_t)(hi - 16);
        }
    }
}
