// The int8 tiles, included by int8_kernels.c once per ISA: Q8_ATTR (the function attribute), Q8_FN(name)
// (the name of this ISA's copy) and Q8_Q5_BYTES (Q5_0 / Q5_1's 32 five-bit values as bytes: AVX2's
// shuffle and compare, or AVX-512BW's byte add under the fifth bits as a mask) and Q8_VNNI (1: the dot
// products by AVX-512 VNNI's vpdpbusd) and Q8_WIDE (1: 32 vector registers, AVX-512VL) are defined around it.
// Private to int8_kernels.c.

#define Q8_TILE_U(R, wr, yr) \
    switch (U) { \
    case 1: Q8_FN(q8_tile)(fmt, R, 1, wr, rowBytes, nsb, xq, in, u0, yr, ldy, accumulate); break; \
    case 2: Q8_FN(q8_tile)(fmt, R, 2, wr, rowBytes, nsb, xq, in, u0, yr, ldy, accumulate); break; \
    case 3: Q8_FN(q8_tile)(fmt, R, 3, wr, rowBytes, nsb, xq, in, u0, yr, ldy, accumulate); break; \
    default: Q8_FN(q8_tile)(fmt, R, 4, wr, rowBytes, nsb, xq, in, u0, yr, ldy, accumulate); break; \
    }

/// Block j of the (super-)block at b: its 32 weights' integers (weight l in byte l), the scale by which
/// each lane of the int32 dot (lanes 0–3: bytes 0–15; 4–7: bytes 16–31) is multiplied, and the offset m
/// per block, or for Q2_K (a min per 16 weights) `mv`, which multiplies the block's sums of x by halves.
QK_INLINE Q8_ATTR __m256i Q8_FN(q8_unpack)(int fmt, const uint8_t *b, int j, const qk_scales *s, __m256 *scale, float *m,
                                           __m256 *mv, __m256i *mag) {
    const __m256i low4 = _mm256_set1_epi8(0x0F);
    switch (fmt) {
    case QK_IQ2_XXS: case QK_IQ2_XS: case QK_IQ2_S: case QK_IQ3_XXS: case QK_IQ3_S: case QK_IQ1_S: case QK_IQ1_M:
        *m = 0;
        return q8_iq_bytes(fmt, b, j, s, scale, mag);
    case QK_Q8_0:
        *scale = bcast_f16_256(b); *m = 0;
        return _mm256_loadu_si256((const __m256i *)(b + 2));
    case QK_Q1_0: {  // +1 where the bit is set, −1 where clear (a signed format), under the block's d
        const uint32_t bits = load_u32(b + 2 + 4 * j);
        *scale = bcast_f16_256(b); *m = 0;
#if Q8_WIDE
        return _mm256_mask_blend_epi8((__mmask32)bits, _mm256_set1_epi8(-1), _mm256_set1_epi8(1));
#else
        return _mm256_or_si256(_mm256_xor_si256(bit_bytes_256(bits), _mm256_set1_epi8(-1)), _mm256_set1_epi8(1));
#endif
    }
    case QK_Q4_0: case QK_Q4_1: case QK_Q4_1F: {  // Q4_0's offset −8 enters the integer sum (q8_block's base)
        // Q4_1F: Q4_1 with d and m as float32 (qk_repack_q4_1_float_scales), then the same nibbles.
        const int off = fmt == QK_Q4_0 ? 2 : fmt == QK_Q4_1 ? 4 : 8;
        if (fmt == QK_Q4_1F) {
            *scale = _mm256_broadcast_ss((const float *)b);
            memcpy(m, b + 4, 4);
        } else {
            *scale = bcast_f16_256(b);
            *m = fmt == QK_Q4_0 ? 0 : f16_to_f32(b + 2);
        }
        // Q4_1 with 16 registers: a shift, an insert and a mask, which hold no register of shift counts (one
        // AVX2 core, T = 1, 4,864 × 896: 0.216 → 0.191 ms).
        if (fmt != QK_Q4_0 && !Q8_WIDE) {
            const __m128i n = _mm_loadu_si128((const __m128i *)(b + off));
            return _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(n, 4), n), low4);
        }
        return nibble_bytes_256(b + off);
    }
    case QK_Q5_0: case QK_Q5_1: {  // Q5_0's offset −16 as Q4_0's
        if (fmt == QK_Q5_0) { *scale = bcast_f16_256(b); *m = 0; return Q8_Q5_BYTES(load_u32(b + 2), b + 6); }
        // With 16 registers, the scale converted as a scalar and broadcast (one AVX2 core, T = 1, 4,864 × 896:
        // 0.31 → 0.26 ms; with AVX-512's 32 the vector conversion, 0.19 → 0.18).
        *scale = Q8_WIDE ? bcast_f16_256(b) : _mm256_set1_ps(f16_to_f32(b));
        *m = f16_to_f32(b + 2);
        return Q8_Q5_BYTES(load_u32(b + 4), b + 8);
    }
    case QK_IQ4_NL:
        *scale = bcast_f16_256(b); *m = 0;
        return iq4_bytes_256(b + 2);
    case QK_IQ4_XS:
        *scale = _mm256_broadcast_ss(&s->d[j]); *m = 0;
        return iq4_bytes_256(b + 8 + 16 * j);
    case QK_Q4_K: {
        const __m256i bytes = _mm256_loadu_si256((const __m256i *)(b + 16 + 32 * (j >> 1)));
        *scale = _mm256_broadcast_ss(&s->d[j]); *m = s->m[j];
        return _mm256_and_si256(j & 1 ? _mm256_srli_epi16(bytes, 4) : bytes, low4);
    }
    case QK_Q5_K: {
        const __m256i bytes = _mm256_loadu_si256((const __m256i *)(b + 48 + 32 * (j >> 1)));
        const __m256i qh = _mm256_loadu_si256((const __m256i *)(b + 16));
        const __m256i lo = _mm256_and_si256(j & 1 ? _mm256_srli_epi16(bytes, 4) : bytes, low4);
        const __m256i hi = _mm256_and_si256(_mm256_srl_epi16(qh, _mm_cvtsi32_si128(j)), _mm256_set1_epi8(0x01));
        *scale = _mm256_broadcast_ss(&s->d[j]); *m = s->m[j];
        return _mm256_or_si256(lo, _mm256_slli_epi16(hi, 4));
    }
    case QK_Q3_K: {  // signed q (−4…3), scales d·(sc − 32) for weights 0–15 and 16–31
        *scale = _mm256_set_m128(_mm_broadcast_ss(&s->d[2 * j + 1]), _mm_broadcast_ss(&s->d[2 * j]));
        *m = 0;
        return q3_k_bytes(b, j);
    }
    case QK_Q2_K: {  // q (0…3), d·sc and −dmin·m per 16 weights
        *scale = _mm256_set_m128(_mm_broadcast_ss(&s->d[2 * j + 1]), _mm_broadcast_ss(&s->d[2 * j]));
        *mv = _mm256_set_m128(_mm_broadcast_ss(&s->m[2 * j + 1]), _mm_broadcast_ss(&s->m[2 * j]));
        *m = 0;
        return q2_k_bytes(b, j);
    }
    default: {  // Q6_K: scales d·sc for weights 0–15 and 16–31
        const float *sc = s->d + 8 * (j >> 2) + 2 * (j & 3);
        *scale = _mm256_set_m128(_mm_broadcast_ss(&sc[1]), _mm_broadcast_ss(&sc[0]));
        *m = 0;
        return q6_k_bytes(b, j);
    }
    }
}

/// c·(the sum of each 4 bytes of x) as int32 lanes (c an unsigned byte constant).
QK_INLINE Q8_ATTR __m256i Q8_FN(q8_sum4)(int c, __m256i x) {
#if Q8_VNNI
    return _mm256_dpbusd_epi32(_mm256_setzero_si256(), _mm256_set1_epi8((char)c), x);
#else
    return _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_set1_epi8((char)c), x), _mm256_set1_epi16(1));
#endif
}

/// base + Σ over each 4 bytes of w·x, as float lanes, for the format's signedness; `aw` is |w| for signed formats.
QK_INLINE Q8_ATTR __m256 Q8_FN(q8_dot)(int fmt, __m256i w, __m256i aw, __m256i x, __m256i base) {
    const __m256i u = q8_signed(fmt) ? aw : w, v = q8_signed(fmt) ? _mm256_sign_epi8(x, w) : x;
#if Q8_VNNI
    return _mm256_cvtepi32_ps(_mm256_dpbusd_epi32(base, u, v));  // groups of 4, no int16 step
#else
    return _mm256_cvtepi32_ps(_mm256_add_epi32(base, _mm256_madd_epi16(_mm256_maddubs_epi16(u, v), _mm256_set1_epi16(1))));
#endif
}

/// Block `blk` (block j of the stored (super-)block sb) of rows [0, R) × token rows [0, U), added into acc
/// and off. Q4_0's and Q5_0's offsets (−8 and −16 per weight) enter the integer sums as −c·Σx per lane
/// (`base`), computed once per token row and block: no scalar per block and row.
QK_INLINE Q8_ATTR void Q8_FN(q8_block)(int fmt, int R, int U, const uint8_t *w, int64_t rowBytes, int64_t sb, int j,
                                       int64_t blk, const qk_scales *s, const q8_row *xr, __m256 acc[4][4], float off[4][4]) {
    const int64_t bytes = fmt_bytes(fmt);
    const int c = fmt == QK_Q4_0 ? 8 : fmt == QK_Q5_0 ? 16 : 0;
    __m256i wv[4], aw[4];
    __m256 sc[4], mv[4];
    float m[4];
    // The rows' blocks are unpacked first, then each load of x serves them all; or, with one token row, each
    // row's block is multiplied as soon as it is unpacked (`step` 1), where 4 rows' bytes and scales outgrew
    // AVX2's 16 registers and waited on the stack. Measured (the same sums, so the same results; 2 threads,
    // `--activations int8` generation step, alternating invocations, ms): AVX2 IQ2_XXS `ffn_down` 2.25 → 1.39
    // (`--breakdown`), Qwen 23.46 / 23.09 → 21.97 / 22.07, SmolLM2 `--pure` IQ4_XS 4.86 / 4.89 → 4.78 / 4.72;
    // but SmolLM2's Q4_1 5.21 / 4.97 → 5.47 / 5.33, and AVX-512 (32 registers) alike either way.
    const int step = U == 1 && (fmt_is_iq_grid(fmt) || (!Q8_WIDE && fmt != QK_Q4_1 && fmt != QK_Q4_1F)) ? 1 : R;
    for (int r0 = 0; r0 < R; r0 += step) {
        const int r1 = r0 + step;
        for (int r = r0; r < r1; r++) {
            mv[r] = _mm256_setzero_ps();
            m[r] = 0;
            __m256i mag = _mm256_setzero_si256();
            wv[r] = Q8_FN(q8_unpack)(fmt, w + r * rowBytes + sb * bytes, j, &s[r], &sc[r], &m[r], &mv[r], &mag);
            // IQ2 and IQ3 give their magnitudes and, as wv, their signs (q8_iq_bytes).
            aw[r] = q8_signs_apart(fmt) ? mag : q8_signed(fmt) ? _mm256_sign_epi8(wv[r], wv[r]) : wv[r];
        }
        for (int u = 0; u < U; u++) {
            const __m256i xv = _mm256_load_si256((const __m256i *)(xr[u].q + QK_BLOCK * blk));
            const __m256 dx = _mm256_broadcast_ss(&xr[u].d[blk]);
            const __m256i base = c ? _mm256_sub_epi32(_mm256_setzero_si256(), Q8_FN(q8_sum4)(c, xv)) : _mm256_setzero_si256();
            // Q2_K: Σq_x of each 4 bytes (lanes 0–3: bytes 0–15, as the dot's), for its mins.
            const __m256 halves = fmt == QK_Q2_K ? _mm256_cvtepi32_ps(Q8_FN(q8_sum4)(1, xv)) : _mm256_setzero_ps();
            for (int r = r0; r < r1; r++) {
                const __m256 dot = Q8_FN(q8_dot)(fmt, wv[r], aw[r], xv, base);
                acc[r][u] = _mm256_fmadd_ps(dot, _mm256_mul_ps(sc[r], dx), acc[r][u]);
                if (fmt == QK_Q2_K) acc[r][u] = _mm256_fmadd_ps(halves, _mm256_mul_ps(mv[r], dx), acc[r][u]);
                else if (!q8_signed(fmt) && !c) off[r][u] += m[r] * xr[u].s[blk];
            }
        }
    }
}

// Output rows [o, o + R) × token rows [u0, u0 + U) of y over the whole input.
QK_INLINE Q8_ATTR void Q8_FN(q8_tile)(int fmt, int R, int U, const uint8_t *w, int64_t rowBytes, int64_t nsb,
                               const void *xq, int64_t in, int64_t u0, float *y, int64_t ldy, int accumulate) {
    // Blocks go in pairs. With up to 2 token rows the second block of a pair adds into accumulators of its
    // own (accB, offB; summed at the end), so that the chain of FMAs carried from block to block is half as
    // long: with one token row it bounded the tile (one AVX-512 core, a row in cache: Q8_0 ≈ 4.2 cycles a
    // block, an FMA's latency). With more token rows a block has more work than that chain. One set where
    // two measured slower: Q5_1 (0.18 → 0.22 ms on AVX-512), and with AVX2's 16 registers Q4_1 and IQ4_XS,
    // which spilled (one core, T = 1, 4,864 × 896: Q4_1 0.20 → 0.32 ms).
    const int two = U <= 2 && fmt != QK_Q5_1 && (Q8_WIDE || (fmt != QK_Q4_1 && fmt != QK_Q4_1F && fmt != QK_IQ4_XS));
    __m256 accA[4][4], accB[4][4];
    float offA[4][4], offB[4][4];
    q8_row xr[4];
    for (int u = 0; u < U; u++) xr[u] = q8_at(xq, in, u0 + u);
    for (int r = 0; r < R; r++)
        for (int u = 0; u < U; u++) { accA[r][u] = accB[r][u] = _mm256_setzero_ps(); offA[r][u] = offB[r][u] = 0; }
    const int nb = (int)(fmt_block(fmt) / QK_BLOCK);
    const int64_t bytes = fmt_bytes(fmt);
    qk_scales s[4];
    if (u0 == 0) prefetch_ahead(w, R * rowBytes);
    // Pairs of blocks: blocks j and j + 1 of a super-block of 256 (j a constant: the loop unrolls), or two
    // stored blocks of 32.
    if (nb > 1) {
        for (int64_t sb = 0; sb < nsb; sb++) {
            for (int r = 0; r < R; r++) {
                const uint8_t *p = w + r * rowBytes + sb * bytes;
                prefetch_next_tile(fmt, p + R * rowBytes, 0);  // the same super-block of the next tile's rows
                prepare(fmt, p, &s[r]);
            }
#pragma clang loop unroll(full)
            for (int j = 0; j < nb; j += 2) {  // j a constant: shifts by immediates, scales from registers
                Q8_FN(q8_block)(fmt, R, U, w, rowBytes, sb, j, sb * nb + j, s, xr, accA, offA);
                Q8_FN(q8_block)(fmt, R, U, w, rowBytes, sb, j + 1, sb * nb + j + 1, s, xr, two ? accB : accA, two ? offB : offA);
            }
        }
    } else {
        int64_t sb = 0;
        for (; sb + 2 <= nsb; sb += 2) {
            for (int r = 0; r < R; r++) {
                const uint8_t *end = w + r * rowBytes + (sb + 2) * bytes - 1 + R * rowBytes;
                if (((uintptr_t)end & 63) < (uintptr_t)(2 * bytes)) _mm_prefetch((const char *)end, _MM_HINT_T0);  // a new line
            }
            Q8_FN(q8_block)(fmt, R, U, w, rowBytes, sb, 0, sb, s, xr, accA, offA);
            Q8_FN(q8_block)(fmt, R, U, w, rowBytes, sb + 1, 0, sb + 1, s, xr, two ? accB : accA, two ? offB : offA);
        }
        if (sb < nsb) Q8_FN(q8_block)(fmt, R, U, w, rowBytes, sb, 0, sb, s, xr, accA, offA);  // an odd count
    }
    for (int u = 0; u < U; u++)
        for (int r = 0; r < R; r++) store(y + (u0 + u) * ldy + r, hsum256(_mm256_add_ps(accA[r][u], accB[r][u])) + (offA[r][u] + offB[r][u]), accumulate);
}

QK_INLINE Q8_ATTR void Q8_FN(q8_linear)(int fmt, const void *xq, int64_t t, int64_t in, const uint8_t *w,
                                 float *y, int64_t ldy, int64_t o0, int64_t o1, int accumulate) {
    const int64_t nsb = in / fmt_block(fmt), rowBytes = nsb * fmt_bytes(fmt);
    const int64_t tiles = (t + 3) / 4, size = (t + tiles - 1) / tiles;  // balanced tiles of ≤ 4 token rows
    const int R = q8_rows(size);
    // Row tiles outside, token tiles inside: a tile's rows stay in L1 across its token tiles, so memory
    // sees each weight once per call.
    int64_t o = o0;
    for (; o + R <= o1; o += R)
        for (int64_t u0 = 0; u0 < t; u0 += size) {
            const int U = (int)(t - u0 < size ? t - u0 : size);
            if (R == 4) { Q8_TILE_U(4, w + o * rowBytes, y + o) }
            else { Q8_TILE_U(2, w + o * rowBytes, y + o) }
        }
    for (; o < o1; o++)
        for (int64_t u0 = 0; u0 < t; u0 += size) {
            const int U = (int)(t - u0 < size ? t - u0 : size);
            Q8_TILE_U(1, w + o * rowBytes, y + o)
        }
}

#undef Q8_TILE_U
