// Activation-gradient backward of the decoder forward (every architecture's traits) (no weight gradients): from a loss on logits
// at chosen rows back to the residual stream below a given block. Each step mirrors a line of
// `LlamaModel.block` in reverse; the activations come from `runBlocks(keep:)`.
import Support
import GGUF
import Tokenization
import Kernels

extension LlamaModel {
    /// dL/dhidden [T × C] at the chosen `rows` of the final residual stream, given dL/dlogits
    /// [rows × V] (final RMSNorm and LM head backward; rows not listed get zero).
    public func logitsBackward(hidden: UnsafePointer<Float>, rows: [Int], dLogits: UnsafePointer<Float>, totalRows t: Int) -> FloatBuffer {
        let c = config.hidden, m = rows.count
        let x = FloatBuffer(count: m * c, zeroed: false), rstd = FloatBuffer(count: m, zeroed: false)
        let xn = FloatBuffer(count: m * c, zeroed: false), dxn = FloatBuffer(count: m * c, zeroed: false)
        let dx = FloatBuffer(count: m * c, zeroed: false)
        for (i, r) in rows.enumerated() { (x.ptr + i * c).update(from: hidden + r * c, count: c) }
        RMSNorm.forward(x.ptr, weights.outputNorm.ptr, xn.ptr, rstd: rstd.ptr, rows: m, dim: c, eps: config.eps)
        linearBackward(dLogits, weights.lmHead, dxn.ptr, rows: m, inDim: c, outDim: config.vocab, stored: weights.storedHead)
        RMSNorm.backward(dxn.ptr, x.ptr, weights.outputNorm.ptr, rstd: rstd.ptr, dx.ptr, rows: m, dim: c, accumulate: false)
        let out = FloatBuffer(count: t * c)
        for (i, r) in rows.enumerated() {
            let o = out.ptr + r * c, g = dx.ptr + i * c
            for j in 0..<c { o[j] += g[j] }
        }
        return out
    }

    /// Backpropagates dL/d(output of block `range.upperBound`) to dL/d(input of block `range.lowerBound`),
    /// i.e. the gradient at the output of block `range.lowerBound − 1`. `acts` must hold every block of `range`;
    /// `prefix` is the one the forward ran with (the cached rows get no gradient: they are constants).
    public func backwardBlocks(_ range: ClosedRange<Int>, acts: [Int: LayerActivations], batch: TokenBatch,
                               dOutput: FloatBuffer, prefix: CachedPrefix? = nil) -> FloatBuffer {
        let c = config, t = batch.count
        let layout = prefix?.layout(batch, heads: c.heads)
            ?? AttentionLayout(starts: batch.starts, lengths: batch.lengths, heads: c.heads)
        let cache = prefix?.cache
        var d = dOutput
        let dKey = FloatBuffer(count: t * c.ffn, zeroed: false), dGate = FloatBuffer(count: t * c.ffn, zeroed: false)
        let dUp = FloatBuffer(count: t * c.ffn, zeroed: false), dNormed = FloatBuffer(count: t * c.hidden, zeroed: false)
        let dAttn = FloatBuffer(count: t * c.qDim, zeroed: false), dq = FloatBuffer(count: t * c.qDim, zeroed: false)
        let dk = FloatBuffer(count: t * c.kvDim, zeroed: false), dv = FloatBuffer(count: t * c.kvDim, zeroed: false)
        let scratch = FloatBuffer(count: max(1, layout.maxBlock), zeroed: false)
        let dProj = FloatBuffer(count: c.traits.sandwichNorms ? t * c.hidden : 0, zeroed: false)
        let dRaw = FloatBuffer(count: c.traits.qkNorm ? t * max(c.qDim, c.kvDim) : 0, zeroed: false)
        for l in range.reversed() {
            guard let a = acts[l] else { continue }
            let w = weights.layers[l], tr = c.traits
            // output = mid + mlpOut, or mid + RMSNorm(mlpOut) with sandwich norms; mlpOut = key·Wdownᵀ
            let dMid = FloatBuffer(count: t * c.hidden, zeroed: false)
            dMid.ptr.update(from: d.ptr, count: t * c.hidden)
            if let pn = w.postFFNNorm {
                RMSNorm.backward(d.ptr, a.mlpOut.ptr, pn.ptr, rstd: a.postFFNRstd.ptr, dProj.ptr, rows: t, dim: c.hidden, accumulate: false)
                linearBackward(dProj.ptr, w.down, dKey.ptr, rows: t, inDim: c.ffn, outDim: c.hidden, stored: w.stored?.down)
            } else {
                linearBackward(d.ptr, w.down, dKey.ptr, rows: t, inDim: c.ffn, outDim: c.hidden, stored: w.stored?.down)
            }
            // key = act(gate) ⊙ up; gate, up = ffnIn·Wᵀ
            switch tr.activation {
            case .silu: SwiGLU.backward(dk: dKey.ptr, gate: a.gate.ptr, up: a.up.ptr, dGate: dGate.ptr, dUp: dUp.ptr, count: t * c.ffn)
            case .geluTanh: GeGLU.backward(dk: dKey.ptr, gate: a.gate.ptr, up: a.up.ptr, dGate: dGate.ptr, dUp: dUp.ptr, count: t * c.ffn)
            }
            linearBackward(dGate.ptr, w.gate, dNormed.ptr, rows: t, inDim: c.hidden, outDim: c.ffn, stored: w.stored?.gate)
            linearBackward(dUp.ptr, w.up, dNormed.ptr, rows: t, inDim: c.hidden, outDim: c.ffn, accumulate: true, stored: w.stored?.up)
            // ffnIn = RMSNorm(mid)
            RMSNorm.backward(dNormed.ptr, a.mid.ptr, w.ffnNorm.ptr, rstd: a.ffnRstd.ptr, dMid.ptr, rows: t, dim: c.hidden, accumulate: true)
            // mid = input + attnOut·Woᵀ, or input + RMSNorm(attnOut·Woᵀ) with sandwich norms
            let dIn = FloatBuffer(count: t * c.hidden, zeroed: false)
            dIn.ptr.update(from: dMid.ptr, count: t * c.hidden)
            if let pn = w.postAttnNorm {
                RMSNorm.backward(dMid.ptr, a.attnProj.ptr, pn.ptr, rstd: a.postAttnRstd.ptr, dProj.ptr, rows: t, dim: c.hidden, accumulate: false)
                linearBackward(dProj.ptr, w.wo, dAttn.ptr, rows: t, inDim: c.qDim, outDim: c.hidden, stored: w.stored?.wo)
            } else {
                linearBackward(dMid.ptr, w.wo, dAttn.ptr, rows: t, inDim: c.qDim, outDim: c.hidden, stored: w.stored?.wo)
            }
            Attention.backward(dOut: dAttn.ptr, q: a.q.ptr, k: cache?.k(l) ?? a.k.ptr, v: cache?.v(l) ?? a.v.ptr, probs: a.probs.ptr,
                               dq: dq.ptr, dk: dk.ptr, dv: dv.ptr, scratch: scratch.ptr,
                               layout: layout, kvHeads: c.kvHeads, headDim: c.headDim)
            let table = rope(l), halves = tr.ropeOrder == .halves
            batch.positions.withUnsafeBufferPointer { pos in
                table.apply(dq.ptr, pos: pos.baseAddress!, rows: t, heads: c.heads, headDim: c.headDim, inverse: true, halves: halves)
                table.apply(dk.ptr, pos: pos.baseAddress!, rows: t, heads: c.kvHeads, headDim: c.headDim, inverse: true, halves: halves)
            }
            // q = RMSNorm_head(qRaw) (and k) with qkNorm; the biases do not change the input's gradient.
            if let qn = w.qNorm, let kn = w.kNorm {
                RMSNorm.backward(dq.ptr, a.qRaw.ptr, qn.ptr, rstd: a.qRstd.ptr, dRaw.ptr, rows: t * c.heads, dim: c.headDim, accumulate: false)
                dq.ptr.update(from: dRaw.ptr, count: t * c.qDim)
                RMSNorm.backward(dk.ptr, a.kRaw.ptr, kn.ptr, rstd: a.kRstd.ptr, dRaw.ptr, rows: t * c.kvHeads, dim: c.headDim, accumulate: false)
                dk.ptr.update(from: dRaw.ptr, count: t * c.kvDim)
            }
            linearBackward(dq.ptr, w.wq, dNormed.ptr, rows: t, inDim: c.hidden, outDim: c.qDim, stored: w.stored?.wq)
            linearBackward(dk.ptr, w.wk, dNormed.ptr, rows: t, inDim: c.hidden, outDim: c.kvDim, accumulate: true, stored: w.stored?.wk)
            linearBackward(dv.ptr, w.wv, dNormed.ptr, rows: t, inDim: c.hidden, outDim: c.kvDim, accumulate: true, stored: w.stored?.wv)
            // attnIn = RMSNorm(input)
            RMSNorm.backward(dNormed.ptr, a.input.ptr, w.attnNorm.ptr, rstd: a.attnRstd.ptr, dIn.ptr, rows: t, dim: c.hidden, accumulate: true)
            d = dIn
        }
        return d
    }
}
