// Causal grouped-query attention over a packed batch of sequences.
// q[T × H·D], k,v[· × KV·D] (RoPE already applied), out[T × H·D]; head h reads kv head h / (H/KV).
// Sequence s has m query rows at positions p…p+m−1 (p = 0 unless its first p rows' K/V were cached by
// an earlier pass) and n = p + m K/V rows at positions 0…n−1, starting at row `kvStarts[s]` of k, v.
// Per sequence and head: S = Q Kᵀ/√D [m × n], causal (query i sees keys j ≤ p + i), P = softmax(S),
// O = P V. The forward stores P (one m×n block per sequence and head) for the backward.
// With a sliding window w (gemma3's local layers), query i also cannot see keys j ≤ p + i − w: it sees
// the last w positions, its own included (llama.cpp's standard SWA mask). Masked entries of P are 0,
// so the backward needs no window of its own.
import GGUF
import Foundation

/// Where each sequence's rows and probability blocks live in the packed buffers.
public struct AttentionLayout: Sendable {
    public let starts: [Int]
    public let lengths: [Int]
    public let heads: Int
    /// Rows before each sequence's first query row whose K/V come from a cache (0 without one).
    public let prefixes: [Int]
    /// Row of each sequence's position 0 in the K/V buffers (`starts` without a cache).
    public let kvStarts: [Int]
    /// Offset of sequence s's probability blocks (H blocks of m_s × n_s).
    public let probOffsets: [Int]
    public let probCount: Int
    /// The largest m_s × n_s: the backward's scratch size.
    public let maxBlock: Int

    public init(starts: [Int], lengths: [Int], heads: Int, prefixes: [Int]? = nil, kvStarts: [Int]? = nil) {
        let p = prefixes ?? lengths.map { _ in 0 }
        self.starts = starts; self.lengths = lengths; self.heads = heads
        self.prefixes = p; self.kvStarts = kvStarts ?? starts
        var offs: [Int] = [], o = 0, mx = 0
        for (s, m) in lengths.enumerated() { offs.append(o); o += heads * m * (p[s] + m); mx = max(mx, m * (p[s] + m)) }
        probOffsets = offs; probCount = o; maxBlock = mx
    }
}

public enum Attention {
    /// Softmax in place over `row[first...last]` (the positions a query may see), zeros elsewhere up to `n`.
    @inline(__always)
    public static func causalSoftmax(row: UnsafeMutablePointer<Float>, first: Int = 0, last: Int, n: Int) {
        var mx = -Float.infinity
        for j in first...last { mx = max(mx, row[j]) }
        var sum: Float = 0
        for j in first...last { let e = Foundation.exp(row[j] - mx); row[j] = e; sum += e }
        let inv = 1 / sum
        for j in first...last { row[j] *= inv }
        for j in 0..<first { row[j] = 0 }
        for j in (last + 1)..<max(n, last + 1) { row[j] = 0 }
    }

    public static func forward(q: UnsafePointer<Float>, k: UnsafePointer<Float>, v: UnsafePointer<Float>,
                               out: UnsafeMutablePointer<Float>, probs: UnsafeMutablePointer<Float>,
                               layout: AttentionLayout, kvHeads: Int, headDim d: Int, window: Int? = nil) {
        let h = layout.heads, qDim = h * d, kvDim = kvHeads * d, group = h / kvHeads
        let scale = 1 / Float(d).squareRoot()
        for (s, m) in layout.lengths.enumerated() where m > 0 {
            let r0 = layout.starts[s], kv0 = layout.kvStarts[s], pre = layout.prefixes[s], n = pre + m
            for head in 0..<h {
                let g = head / group
                let p = probs + layout.probOffsets[s] + head * m * n
                let qh = q + r0 * qDim + head * d, kg = k + kv0 * kvDim + g * d, vg = v + kv0 * kvDim + g * d
                BLAS.sgemm(transB: true, m: m, n: n, k: d, alpha: scale, a: qh, lda: qDim, b: kg, ldb: kvDim, c: p, ldc: n)
                for i in 0..<m {
                    let first = window.map { max(0, pre + i - $0 + 1) } ?? 0
                    causalSoftmax(row: p + i * n, first: first, last: pre + i, n: n)
                }
                BLAS.sgemm(m: m, n: d, k: n, a: p, lda: n, b: vg, ldb: kvDim, c: out + r0 * qDim + head * d, ldc: qDim)
            }
        }
    }

    /// Given dOut, writes dq (overwrites) and dk, dv (overwrites) at the query rows, using the stored P.
    /// dP = dO Vᵀ; dS = P ⊙ (dP − rowsum(dP ⊙ P)); dQ = dS K/√D; dK = dSᵀ Q/√D; dV = Pᵀ dO, the last two
    /// only for the K/V rows of the queries (columns p… of dS and P): a cached prefix gets no gradient.
    /// `scratch` holds `layout.maxBlock` floats.
    public static func backward(dOut: UnsafePointer<Float>, q: UnsafePointer<Float>, k: UnsafePointer<Float>,
                                v: UnsafePointer<Float>, probs: UnsafePointer<Float>,
                                dq: UnsafeMutablePointer<Float>, dk: UnsafeMutablePointer<Float>, dv: UnsafeMutablePointer<Float>,
                                scratch: UnsafeMutablePointer<Float>,
                                layout: AttentionLayout, kvHeads: Int, headDim d: Int) {
        let h = layout.heads, qDim = h * d, kvDim = kvHeads * d, group = h / kvHeads
        let scale = 1 / Float(d).squareRoot()
        for (s, m) in layout.lengths.enumerated() where m > 0 {
            let r0 = layout.starts[s], kv0 = layout.kvStarts[s], pre = layout.prefixes[s], n = pre + m
            // dk, dv of this sequence are sums over the heads of a group: zero them first.
            for r in r0..<(r0 + m) {
                (dk + r * kvDim).update(repeating: 0, count: kvDim)
                (dv + r * kvDim).update(repeating: 0, count: kvDim)
            }
            for head in 0..<h {
                let g = head / group
                let p = probs + layout.probOffsets[s] + head * m * n
                let qh = q + r0 * qDim + head * d, kg = k + kv0 * kvDim + g * d, vg = v + kv0 * kvDim + g * d
                let doh = dOut + r0 * qDim + head * d
                let ds = scratch  // m × n
                BLAS.sgemm(transB: true, m: m, n: n, k: d, a: doh, lda: qDim, b: vg, ldb: kvDim, c: ds, ldc: n)
                for i in 0..<m {
                    let pr = p + i * n, dr = ds + i * n, last = pre + i
                    var dot: Float = 0
                    for j in 0...last { dot += pr[j] * dr[j] }
                    for j in 0...last { dr[j] = pr[j] * (dr[j] - dot) }
                    for j in (last + 1)..<max(n, last + 1) { dr[j] = 0 }
                }
                BLAS.sgemm(transA: true, m: m, n: d, k: m, a: p + pre, lda: n, b: doh, ldb: qDim,
                           beta: 1, c: dv + r0 * kvDim + g * d, ldc: kvDim)
                BLAS.sgemm(m: m, n: d, k: n, alpha: scale, a: ds, lda: n, b: kg, ldb: kvDim,
                           c: dq + r0 * qDim + head * d, ldc: qDim)
                BLAS.sgemm(transA: true, m: m, n: d, k: m, alpha: scale, a: ds + pre, lda: n, b: qh, ldb: qDim,
                           beta: 1, c: dk + r0 * kvDim + g * d, ldc: kvDim)
            }
        }
    }
}
