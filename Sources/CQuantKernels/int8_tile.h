// The int8 tiles, included by int8_kernels.c once per ISA: Q8_ATTR (the function attribute), Q8_FN(name)
// (the name of this ISA's copy) and Q8_Q5_BYTES (Q5_0 / Q5_1's 32 five-bit values as bytes: AVX2's
// shuffle and compare, or AVX-512BW's byte add under the fifth bits as a mask) and Q8_VNNI (1: the dot
// products by AVX-512 VNNI's vpdpbusd) are defined around it.
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
                                           __m256 *mv) {
    const __m256i low4 = _mm256_set1_epi8(0x0F);
    switch (fmt) {
    case QK_Q8_0:
        *scale = bcast_f16_256(b); *m = 0;
        return _mm256_loadu_si256((const __m256i *)(b + 2));
    case QK_Q4_0: case QK_Q4_1: {
        const int off = fmt == QK_Q4_0 ? 2 : 4;
        const float d = f16_to_f32(b);
        *scale = _mm256_set1_ps(d);
        *m = fmt == QK_Q4_0 ? -8.0f * d : f16_to_f32(b + 2);
        const __m128i n = _mm_loadu_si128((const __m128i *)(b + off));
        return _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(n, 4), n), low4);
    }
    case QK_Q5_0: case QK_Q5_1: {
        const float d = f16_to_f32(b);
        *scale = _mm256_set1_ps(d);
        if (fmt == QK_Q5_0) { *m = -16.0f * d; return Q8_Q5_BYTES(load_u32(b + 2), b + 6); }
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

/// Σ over pairs → int32 lanes of w·x (bytes), for the format's signedness; `aw` is |w| for signed formats.
QK_INLINE Q8_ATTR __m256 Q8_FN(q8_dot)(int fmt, __m256i w, __m256i aw, __m256i x) {
    const __m256i u = q8_signed(fmt) ? aw : w, v = q8_signed(fmt) ? _mm256_sign_epi8(x, w) : x;
#if Q8_VNNI
    return _mm256_cvtepi32_ps(_mm256_dpbusd_epi32(_mm256_setzero_si256(), u, v));  // groups of 4, no int16 step
#else
    return _mm256_cvtepi32_ps(_mm256_madd_epi16(_mm256_maddubs_epi16(u, v), _mm256_set1_epi16(1)));
#endif
}

// Output rows [o, o + R) × token rows [u0, u0 + U) of y over the whole input.
QK_INLINE Q8_ATTR void Q8_FN(q8_tile)(int fmt, int R, int U, const uint8_t *w, int64_t rowBytes, int64_t nsb,
                               const void *xq, int64_t in, int64_t u0, float *y, int64_t ldy, int accumulate) {
    __m256 acc[4][4];
    float off[4][4];
    q8_row xr[4];
    for (int u = 0; u < U; u++) xr[u] = q8_at(xq, in, u0 + u);
    for (int r = 0; r < R; r++)
        for (int u = 0; u < U; u++) { acc[r][u] = _mm256_setzero_ps(); off[r][u] = 0; }
    const int nb = (int)(fmt_block(fmt) / QK_BLOCK);
    const int64_t bytes = fmt_bytes(fmt);
    if (u0 == 0) prefetch_ahead(w, R * rowBytes);
    for (int64_t sb = 0; sb < nsb; sb++) {
        qk_scales s[4];
        // The same (super-)block of the next tile's rows, one tile ahead (the float32 kernels' prefetch_next_tile).
        for (int r = 0; r < R; r++) {
            const uint8_t *p = w + r * rowBytes + sb * bytes, *next = p + R * rowBytes;
            if (nb > 1) {
                for (int64_t o = 0; o < bytes; o += 64) _mm_prefetch((const char *)(next + o), _MM_HINT_T0);
                _mm_prefetch((const char *)(next + bytes - 1), _MM_HINT_T0);
                prepare(fmt, p, &s[r]);
            } else if (((uintptr_t)next & 63) < (uintptr_t)bytes) {
                _mm_prefetch((const char *)next, _MM_HINT_T0);
            }
        }
        for (int j = 0; j < nb; j++) {
            const int64_t blk = sb * nb + j;
            __m256i wv[4], aw[4];
            __m256 sc[4], mv[4];
            float m[4];
            for (int r = 0; r < R; r++) {
                wv[r] = Q8_FN(q8_unpack)(fmt, w + r * rowBytes + sb * bytes, j, &s[r], &sc[r], &m[r], &mv[r]);
                aw[r] = q8_signed(fmt) ? _mm256_sign_epi8(wv[r], wv[r]) : wv[r];
            }
            for (int u = 0; u < U; u++) {
                const __m256i xv = _mm256_load_si256((const __m256i *)(xr[u].q + QK_BLOCK * blk));
                const __m256 dx = _mm256_broadcast_ss(&xr[u].d[blk]);
                // Q2_K: Σq_x of each half of the block (lanes 0–3 and 4–7 as the dot's), for its mins.
                const __m256 halves = fmt == QK_Q2_K ? Q8_FN(q8_dot)(QK_Q4_0, _mm256_set1_epi8(1), _mm256_set1_epi8(1), xv)
                                                     : _mm256_setzero_ps();
                for (int r = 0; r < R; r++) {
                    acc[r][u] = _mm256_fmadd_ps(Q8_FN(q8_dot)(fmt, wv[r], aw[r], xv), _mm256_mul_ps(sc[r], dx), acc[r][u]);
                    if (fmt == QK_Q2_K) acc[r][u] = _mm256_fmadd_ps(halves, _mm256_mul_ps(mv[r], dx), acc[r][u]);
                    else if (!q8_signed(fmt)) off[r][u] += m[r] * xr[u].s[blk];
                }
            }
        }
    }
    for (int u = 0; u < U; u++)
        for (int r = 0; r < R; r++) store(y + (u0 + u) * ldy + r, hsum256(acc[r][u]) + off[r][u], accumulate);
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
