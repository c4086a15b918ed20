// Where an edit of `ffn_down` enters the residual stream. In llama and qwen2 the block output is
// o = mid + m, with m = W_down·k, so a wanted change Δo of the output is exactly the change of m the
// solve must produce (ΔW k = Δo). gemma3 puts a norm after ffn_down: o = mid + N(m) with
// N(m) = w ⊙ m / r(m), r(m) = √(mean(m²) + ε), so o is not linear in ΔW and the target for m has to be
// taken through N. The derivation used by `ffnDownTarget`:
//   want N(m*) = N(m) + Δo =: y*. N only sees m's direction (r scales with m when ε ≪ mean(m²)), so
//   every preimage has the form m* = s · (y* ⊘ w) for some s > 0, and then N(m*) = y* / rms(y* ⊘ w).
//   Choose s = r(m): then Δo = 0 gives m* = m exactly, and N(m*) = y* whenever y* is reachable
//   (rms(y* ⊘ w) = 1, the image of N). A y* off that surface is met in direction, and its length is
//   set by N, which no m can change.
// v* avoids asking for unreachable outputs: on such a model it optimises δ added to m itself, before
// the norm (ComputeZ), so the output target it returns, mid + N(m + δ), is reachable by construction,
// and at the last edited layer `ffnDownTarget` returns m + δ (test: EditPointTests). Layers below it
// receive shares of the remaining output change, which the formula maps as above.
import Support
import GGUF
import Tokenization
import Kernels

extension LlamaModel {
    /// Whether ffn_down's output reaches the residual stream through a norm (gemma3's post_ffw_norm).
    public var hasPostFFNNorm: Bool { config.traits.sandwichNorms }

    /// y[rows × C] = what ffn_down's output m contributes to the residual at layer l: N_l(m) with the
    /// post-FFN norm (1/rms per row into `rstd`), else m.
    public func postFFN(layer l: Int, _ m: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>,
                        rstd: UnsafeMutablePointer<Float>, rows t: Int) {
        let c = config.hidden
        if let w = weights.layers[l].postFFNNorm {
            RMSNorm.forward(m, w.ptr, y, rstd: rstd, rows: t, dim: c, eps: config.eps)
        } else {
            y.update(from: m, count: t * c)
        }
    }

    /// dm[rows × C] = (∂y/∂m)ᵀ dy for `postFFN` at m (rstd from the forward).
    public func postFFNBackward(layer l: Int, dy: UnsafePointer<Float>, _ m: UnsafePointer<Float>, rstd: UnsafePointer<Float>,
                                dm: UnsafeMutablePointer<Float>, rows t: Int) {
        let c = config.hidden
        if let w = weights.layers[l].postFFNNorm {
            RMSNorm.backward(dy, m, w.ptr, rstd: rstd, dm, rows: t, dim: c, accumulate: false)
        } else {
            dm.update(from: dy, count: t * c)
        }
    }

    /// The change Δm of ffn_down's output at layer l (current output `m`, [C]) that changes the block
    /// output by `change` ([C]); see the derivation above. Without a post-norm, Δm = change.
    public func ffnDownTarget(layer l: Int, mlpOut m: [Double], change: [Double]) -> [Double] {
        guard let w = weights.layers[l].postFFNNorm else { return change }
        let c = config.hidden
        let r = (m.reduce(0) { $0 + $1 * $1 } / Double(c) + Double(config.eps)).squareRoot()
        return (0..<c).map { i in
            let wi = Double(w.ptr[i])
            // A zero norm weight: that coordinate of the output cannot change; keep m there.
            guard abs(wi) > 1e-12 else { return 0 }
            let y = wi * m[i] / r + change[i]  // N(m) + Δo
            return r * y / wi - m[i]
        }
    }
}
