// Rotary position embedding on the GGUF's stored Q/K layout. For llama, llama.cpp's converter permutes
// the rows so that rotation acts on interleaved pairs (2i, 2i+1) of each head; qwen2 and gemma3 are
// stored as trained and rotate halves, pairs (i, i + ropeDims/2) ("NEOX" order in llama.cpp).
// θ_i = scale · pos · base^(−2i / ropeDims) / factor_i, for i < ropeDims/2; dimensions past ropeDims are
// untouched. `scale` is llama.cpp's freq_scale (1 / a linear scaling factor), `factor_i` its freq_factors
// (llama 3's `rope_freqs.weight`); both 1 for most models. With YaRN (`RoPEScaling.yarnOriginalContext`),
// as ggml's rope_yarn with ext_factor 1: pair i mixes the scaled θ and the unscaled one,
// θ = scaled·(1 − r_i) + unscaled·r_i, where the ramp r_i = 1 − clamp((i − low)/(high − low), 0, 1) runs
// between the pairs low and high that turn β_fast and β_slow times over the original context. cos and
// sin are multiplied by `magnitude` (llama.cpp's attention factor; YaRN's 1 + 0.1·ln(factor)).
import GGUF
import Foundation

/// How a table scales θ and the rotation (llama.cpp's freq_scale, YaRN's ramp, attn_factor).
public struct RoPEScaling: Sendable, Equatable {
    /// θ × freqScale: 1 / the factor of a linear or YaRN scaling.
    public var freqScale: Float = 1
    /// YaRN: the context the model was trained at (`rope.scaling.original_context_length`); nil without YaRN.
    public var yarnOriginalContext: Int?
    /// YaRN's β_fast and β_slow (llama.cpp's defaults for these architectures).
    public var yarnBetaFast: Float = 32
    public var yarnBetaSlow: Float = 1
    /// cos and sin × magnitude.
    public var magnitude: Float = 1
    public init() {}

    /// YaRN's ramp ends, in pairs: ggml's rope_yarn_corr_dims for `dims` rotated dimensions at `base`.
    public func yarnCorrectionDims(dims: Int, base: Float) -> (low: Double, high: Double)? {
        guard let n = yarnOriginalContext else { return nil }
        func dim(_ beta: Float) -> Double {
            Double(dims) * Foundation.log(Double(n) / (Double(beta) * 2 * Double.pi)) / (2 * Foundation.log(Double(base)))
        }
        return (max(0, dim(yarnBetaFast).rounded(.down)), min(Double(dims - 1), dim(yarnBetaSlow).rounded(.up)))
    }
}

public final class RoPETable: @unchecked Sendable {
    public let dims: Int
    public let base: Float
    public let scaling: RoPEScaling
    public let factors: [Float]?
    private(set) var cos: [Float] = []
    private(set) var sin: [Float] = []
    private(set) var positions = 0

    /// `factors`: nil, or dims / 2 divisors.
    public init(dims: Int, base: Float, scaling: RoPEScaling = RoPEScaling(), factors: [Float]? = nil) {
        precondition(factors == nil || factors!.count == dims / 2, "one RoPE factor per rotated pair")
        self.dims = dims; self.base = base; self.scaling = scaling; self.factors = factors
    }


    /// Makes the table cover positions 0..<n (computed in float64, stored float32).
    public func ensure(_ n: Int) {
        guard n > positions else { return }
        let half = dims / 2
        var c = [Float](repeating: 0, count: n * half), s = c
        // Per pair: θ/pos unscaled, and the share r_i of it that YaRN keeps (0: θ fully scaled).
        let unscaled = (0..<half).map { i in pow(Double(base), -2.0 * Double(i) / Double(dims)) / Double(factors?[i] ?? 1) }
        let ends = scaling.yarnCorrectionDims(dims: dims, base: base)
        let ramp: [Double] = (0..<half).map { i in
            guard let (low, high) = ends else { return 0 }
            return 1 - min(1, max(0, (Double(i) - low) / max(0.001, high - low)))
        }
        let scale = Double(scaling.freqScale), magnitude = Double(scaling.magnitude)
        for p in 0..<n {
            for i in 0..<half {
                let extrapolated = Double(p) * unscaled[i]
                let theta = extrapolated * scale * (1 - ramp[i]) + extrapolated * ramp[i]
                c[p * half + i] = Float(Foundation.cos(theta) * magnitude)
                s[p * half + i] = Float(Foundation.sin(theta) * magnitude)
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
