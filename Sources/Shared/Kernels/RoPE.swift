// Rotary position embedding on the GGUF's stored Q/K layout. For llama, llama.cpp's converter permutes
// the rows so that rotation acts on interleaved pairs (2i, 2i+1) of each head; qwen2 and gemma3 are
// stored as trained and rotate halves, pairs (i, i + ropeDims/2) ("NEOX" order in llama.cpp).
// θ_i = scale · pos · base^(−2i / ropeDims) / factor_i, for i < ropeDims/2; dimensions past ropeDims are
// untouched. `scale` is llama.cpp's freq_scale (1 / a linear scaling factor), `factor_i` its freq_factors
// (llama 3's `rope_freqs.weight`); both 1 for most models.
import GGUF
import Foundation

public final class RoPETable: @unchecked Sendable {
    public let dims: Int
    public let base: Float
    public let scale: Float
    public let factors: [Float]?
    private(set) var cos: [Float] = []
    private(set) var sin: [Float] = []
    private(set) var positions = 0

    /// `factors`: nil, or dims / 2 divisors.
    public init(dims: Int, base: Float, scale: Float = 1, factors: [Float]? = nil) {
        precondition(factors == nil || factors!.count == dims / 2, "one RoPE factor per rotated pair")
        self.dims = dims; self.base = base; self.scale = scale; self.factors = factors
    }

    /// Makes the table cover positions 0..<n (computed in float64, stored float32).
    public func ensure(_ n: Int) {
        guard n > positions else { return }
        let half = dims / 2
        var c = [Float](repeating: 0, count: n * half), s = c
        let inv = (0..<half).map { i in
            pow(Double(base), -2.0 * Double(i) / Double(dims)) / Double(factors?[i] ?? 1) * Double(scale)
        }
        for p in 0..<n {
            for i in 0..<half {
                let theta = Double(p) * inv[i]
                c[p * half + i] = Float(Foundation.cos(theta))
                s[p * half + i] = Float(Foundation.sin(theta))
            }
        }
        cos = c; sin = s; positions = n
    }

    /// Rotates x[T × heads·D] in place; `pos[r]` is the position of row r. `inverse` applies the
    /// transpose rotation, which is the backward of the forward (the rotation is orthogonal).
    /// `halves` pairs dimension i with i + ropeDims/2 instead of 2i with 2i + 1.
    public func apply(_ x: UnsafeMutablePointer<Float>, pos: UnsafePointer<Int32>, rows t: Int, heads: Int, headDim d: Int,
                      inverse: Bool = false, halves: Bool = false) {
        let half = dims / 2
        // Pair i is (a, b) = (v[i·step], v[i·step + offset]).
        let step = halves ? 1 : 2, offset = halves ? half : 1
        cos.withUnsafeBufferPointer { cb in
            sin.withUnsafeBufferPointer { sb in
                let cp = cb.baseAddress!, sp = sb.baseAddress!
                for r in 0..<t {
                    let p = Int(pos[r]) * half
                    for h in 0..<heads {
                        let v = x + r * heads * d + h * d
                        for i in 0..<half {
                            let co = cp[p + i], si = inverse ? -sp[p + i] : sp[p + i]
                            let ia = i * step, ib = ia + offset
                            let a = v[ia], b = v[ib]
                            v[ia] = a * co - b * si
                            v[ib] = a * si + b * co
                        }
                    }
                }
            }
        }
    }
}
