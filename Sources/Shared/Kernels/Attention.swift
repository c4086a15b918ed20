// Causal grouped-query attention over a packed batch of sequences.
// q[T × H·D], k,v[T × KV·D] (RoPE already applied), out[T × H·D]; head h reads kv head h / (H/KV).
// Per sequence and head: S = Q Kᵀ/√D (causal), P = softmax(S), O = P V. The forward stores P
// (one n×n block per sequence and head, see `AttentionLayout`) for the backward.
import Foundation

/// Where each sequence's rows and probability blocks live in the packed buffers.
public struct AttentionLayout: Sendable {
    public let starts: [Int]
    public let lengths: [Int]
    public let heads: Int
    /// Offset of sequence s's probability blocks (H blocks of n_s × n_s).
    public let probOffsets: [Int]
    public let probCount: Int

    public init(starts: [Int], lengths: [Int], heads: Int) {
        self.starts = starts; self.lengths = lengths; self.heads = heads
        var offs: [Int] = [], o = 0
        for n in lengths { offs.append(o); o += heads * n * n }
        probOffsets = offs; probCount = o
    }
}

public enum Attention {
    public static func forward(q: UnsafePointer<Float>, k: UnsafePointer<Float>, v: UnsafePointer<Float>,
                               out: UnsafeMutablePointer<Float>, probs: UnsafeMutablePointer<Float>,
                               layout: AttentionLayout, kvHeads: Int, headDim d: Int) {
        let h = layout.heads, qDim = h * d, kvDim = kvHeads * d, group = h / kvHeads
        let scale = 1 / Float(d).squareRoot()
        for (s, n) in layout.lengths.enumerated() where n > 0 {
            let r0 = layout.starts[s]
            for head in 0..<h {
                let g = head / group
                let p = probs + layout.probOffsets[s] + head * n * n
                let qh = q + r0 * qDim + head * d, kg = k + r0 * kvDim + g * d, vg = v + r0 * kvDim + g * d
                BLAS.sgemm(transB: true, m: n, n: n, k: d, alpha: scale, a: qh, lda: qDim, b: kg, ldb: kvDim, c: p, ldc: n)
                for i in 0..<n {
                    let row = p + i * n
                    var mx = -Float.infinity
                    for j in 0...i { mx = max(mx, row[j]) }
                    var sum: Float = 0
                    for j in 0...i { let e = Foundation.exp(row[j] - mx); row[j] = e; sum += e }
                    let inv = 1 / sum
                    for j in 0...i { row[j] *= inv }
                    for j in (i + 1)..<max(n, i + 1) { row[j] = 0 }
                }
                BLAS.sgemm(m: n, n: d, k: n, a: p, lda: n, b: vg, ldb: kvDim, c: out + r0 * qDim + head * d, ldc: qDim)
            }
        }
    }

    /// Given dOut, writes dq (overwrites) and dk, dv (overwrites), using the stored P.
    /// dP = dO Vᵀ; dS = P ⊙ (dP − rowsum(dP ⊙ P)); dQ = dS K/√D; dK = dSᵀ Q/√D; dV = Pᵀ dO.
    public static func backward(dOut: UnsafePointer<Float>, q: UnsafePointer<Float>, k: UnsafePointer<Float>,
                                v: UnsafePointer<Float>, probs: UnsafePointer<Float>,
                                dq: UnsafeMutablePointer<Float>, dk: UnsafeMutablePointer<Float>, dv: UnsafeMutablePointer<Float>,
                                scratch: UnsafeMutablePointer<Float>,
                                layout: AttentionLayout, kvHeads: Int, headDim d: Int) {
        let h = layout.heads, qDim = h * d, kvDim = kvHeads * d, group = h / kvHeads
        let scale = 1 / Float(d).squareRoot()
        for (s, n) in layout.lengths.enumerated() where n > 0 {
            let r0 = layout.starts[s]
            // dk, dv of this sequence are sums over the heads of a group: zero them first.
            for r in r0..<(r0 + n) {
                (dk + r * kvDim).update(repeating: 0, count: kvDim)
                (dv + r * kvDim).update(repeating: 0, count: kvDim)
            }
            for head in 0..<h {
                let g = head / group
                let p = probs + layout.probOffsets[s] + head * n * n
                let qh = q + r0 * qDim + head * d, kg = k + r0 * kvDim + g * d, vg = v + r0 * kvDim + g * d
                let doh = dOut + r0 * qDim + head * d
                let ds = scratch  // n × n
                BLAS.sgemm(transB: true, m: n, n: n, k: d, a: doh, lda: qDim, b: vg, ldb: kvDim, c: ds, ldc: n)
                for i in 0..<n {
                    let pr = p + i * n, dr = ds + i * n
                    var dot: Float = 0
                    for j in 0...i { dot += pr[j] * dr[j] }
                    for j in 0...i { dr[j] = pr[j] * (dr[j] - dot) }
                    for j in (i + 1)..<max(n, i + 1) { dr[j] = 0 }
                }
                BLAS.sgemm(transA: true, m: n, n: d, k: n, a: p, lda: n, b: doh, ldb: qDim,
                           beta: 1, c: dv + r0 * kvDim + g * d, ldc: kvDim)
                BLAS.sgemm(m: n, n: d, k: n, alpha: scale, a: ds, lda: n, b: kg, ldb: kvDim,
                           c: dq + r0 * qDim + head * d, ldc: qDim)
                BLAS.sgemm(transA: true, m: n, n: d, k: n, alpha: scale, a: ds, lda: n, b: qh, ldb: qDim,
                           beta: 1, c: dk + r0 * kvDim + g * d, ldc: kvDim)
            }
        }
    }
}
