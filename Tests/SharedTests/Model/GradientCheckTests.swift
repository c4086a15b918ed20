// Finite-difference checks of every backward (per op, then end to end on a tiny synthetic model).
// Float32 central differences with step h: tolerances are relative to the gradient's scale.
import Foundation
import Shared
import XCTest

final class GradientCheckTests: XCTestCase {
    var rng = SplitMix64(seed: 42)
    func randoms(_ n: Int, _ s: Float = 1) -> [Float] { (0..<n).map { _ in rng.symmetric(s) } }

    /// Compares an analytic gradient with central differences of `loss` at `x` on a sample of coordinates.
    func check(_ name: String, x: [Float], grad: [Float], h: Float = 1e-2, tol: Float = 1e-3,
               coords: Int = 40, loss: ([Float]) -> Double) {
        var worst: Float = 0
        let scale = max(grad.map(abs).max() ?? 0, 1e-6)
        for j in 0..<min(coords, x.count) {
            let i = (j * 7919) % x.count
            var xp = x, xm = x
            xp[i] += h; xm[i] -= h
            let fd = Float((loss(xp) - loss(xm)) / Double(2 * h))
            worst = max(worst, abs(fd - grad[i]) / scale)
        }
        print("gradcheck \(name): max |fd − analytic| / max|grad| = \(worst)")
        XCTAssertLessThanOrEqual(worst, tol, "\(name) gradient, max relative diff \(worst)")
    }

    func testRMSNormBackward() {
        let t = 3, c = 16
        let x = randoms(t * c), w = randoms(c).map { 1 + $0 * 0.2 }, r = randoms(t * c)
        func f(_ x: [Float]) -> Double {
            var y = [Float](repeating: 0, count: t * c)
            RMSNorm.forward(x, w, &y, rstd: nil, rows: t, dim: c, eps: 1e-5)
            return zip(y, r).reduce(0) { $0 + Double($1.0 * $1.1) }
        }
        var rstd = [Float](repeating: 0, count: t), y = [Float](repeating: 0, count: t * c), dx = y
        RMSNorm.forward(x, w, &y, rstd: &rstd, rows: t, dim: c, eps: 1e-5)
        RMSNorm.backward(r, x, w, rstd: rstd, &dx, rows: t, dim: c, accumulate: false)
        check("rmsnorm", x: x, grad: dx, h: 1e-2, loss: f)
    }

    func testSwiGLUBackward() {
        let n = 64
        let g = randoms(n, 3), u = randoms(n, 2), r = randoms(n)
        func f(_ gg: [Float]) -> Double {
            var k = [Float](repeating: 0, count: n)
            SwiGLU.forward(gate: gg, up: u, out: &k, count: n)
            return zip(k, r).reduce(0) { $0 + Double($1.0 * $1.1) }
        }
        var dg = [Float](repeating: 0, count: n), du = dg
        SwiGLU.backward(dk: r, gate: g, up: u, dGate: &dg, dUp: &du, count: n)
        check("swiglu/gate", x: g, grad: dg, h: 1e-2, loss: f)
        for i in 0..<n { XCTAssertEqual(du[i], r[i] * g[i] / (1 + exp(-g[i])), accuracy: 1e-5) }
    }

    func testRoPEInverseIsTranspose() {
        let rope = RoPETable(dims: 8, base: 10000)
        rope.ensure(10)
        let t = 4, heads = 2, d = 8
        let x = randoms(t * heads * d), yv = randoms(t * heads * d)
        let pos: [Int32] = [0, 3, 5, 9]
        var rx = x, ry = yv
        rope.apply(&rx, pos: pos, rows: t, heads: heads, headDim: d)
        rope.apply(&ry, pos: pos, rows: t, heads: heads, headDim: d, inverse: true)
        // ⟨R x, y⟩ = ⟨x, Rᵀ y⟩
        let a = zip(rx, yv).reduce(0) { $0 + Double($1.0 * $1.1) }, b = zip(x, ry).reduce(0) { $0 + Double($1.0 * $1.1) }
        XCTAssertEqual(a, b, accuracy: 1e-4)
    }

    func testAttentionBackward() {
        let lengths = [3, 5], h = 4, kv = 2, d = 4
        let t = lengths.reduce(0, +)
        let layout = AttentionLayout(starts: [0, 3], lengths: lengths, heads: h)
        let q = randoms(t * h * d), k = randoms(t * kv * d), v = randoms(t * kv * d), r = randoms(t * h * d)
        func f(_ q: [Float], _ k: [Float], _ v: [Float]) -> Double {
            var out = [Float](repeating: 0, count: t * h * d), p = [Float](repeating: 0, count: layout.probCount)
            Attention.forward(q: q, k: k, v: v, out: &out, probs: &p, layout: layout, kvHeads: kv, headDim: d)
            return zip(out, r).reduce(0) { $0 + Double($1.0 * $1.1) }
        }
        var out = [Float](repeating: 0, count: t * h * d), p = [Float](repeating: 0, count: layout.probCount)
        Attention.forward(q: q, k: k, v: v, out: &out, probs: &p, layout: layout, kvHeads: kv, headDim: d)
        var dq = [Float](repeating: 0, count: t * h * d), dk = [Float](repeating: 0, count: t * kv * d), dv = dk
        var scratch = [Float](repeating: 0, count: 25)
        Attention.backward(dOut: r, q: q, k: k, v: v, probs: p, dq: &dq, dk: &dk, dv: &dv, scratch: &scratch,
                           layout: layout, kvHeads: kv, headDim: d)
        check("attention/q", x: q, grad: dq, loss: { f($0, k, v) })
        check("attention/k", x: k, grad: dk, loss: { f(q, $0, v) })
        check("attention/v", x: v, grad: dv, loss: { f(q, k, $0) })
    }

    /// Attention of suffix rows over cached prefix K/V: the forward equals the full forward's rows from
    /// the suffix on, and the backward (dq; dk, dv at the suffix rows) matches central differences.
    func testAttentionWithCachedPrefix() {
        let full = [4, 6], prefixes = [1, 3], h = 4, kv = 2, d = 4, qd = h * d, kd = kv * d
        let m = zip(full, prefixes).map { $0 - $1 }, t = m.reduce(0, +), n = full.reduce(0, +)
        let whole = AttentionLayout(starts: [0, 4], lengths: full, heads: h)
        let suffix = AttentionLayout(starts: [0, m[0]], lengths: m, heads: h, prefixes: prefixes, kvStarts: [0, 4])
        let qAll = randoms(n * qd), kAll = randoms(n * kd), vAll = randoms(n * kd), r = randoms(t * qd)
        // Full-packing rows of the suffix rows, in order.
        let rows = (0..<2).flatMap { s in (prefixes[s]..<full[s]).map { whole.starts[s] + $0 } }
        func gather(_ x: [Float], _ w: Int) -> [Float] { rows.flatMap { x[($0 * w)..<(($0 + 1) * w)] } }
        func scatter(_ x: [Float], into base: [Float], _ w: Int) -> [Float] {
            var b = base
            for (i, row) in rows.enumerated() { for j in 0..<w { b[row * w + j] = x[i * w + j] } }
            return b
        }
        func suffixOut(_ q: [Float], _ k: [Float], _ v: [Float]) -> ([Float], [Float]) {
            var out = [Float](repeating: 0, count: t * qd), p = [Float](repeating: 0, count: suffix.probCount)
            Attention.forward(q: q, k: scatter(k, into: kAll, kd), v: scatter(v, into: vAll, kd), out: &out, probs: &p,
                              layout: suffix, kvHeads: kv, headDim: d)
            return (out, p)
        }
        var outAll = [Float](repeating: 0, count: n * qd), pAll = [Float](repeating: 0, count: whole.probCount)
        Attention.forward(q: qAll, k: kAll, v: vAll, out: &outAll, probs: &pAll, layout: whole, kvHeads: kv, headDim: d)
        let q = gather(qAll, qd), k = gather(kAll, kd), v = gather(vAll, kd)
        let (out, p) = suffixOut(q, k, v)
        let diff = zip(out, gather(outAll, qd)).map { abs($0 - $1) }.max() ?? 0
        print("attention with cached prefix: max |out − full out| = \(diff)")
        XCTAssertLessThanOrEqual(diff, 1e-6)
        func f(_ q: [Float], _ k: [Float], _ v: [Float]) -> Double {
            zip(suffixOut(q, k, v).0, r).reduce(0) { $0 + Double($1.0 * $1.1) }
        }
        var dq = [Float](repeating: 0, count: t * qd), dk = [Float](repeating: 0, count: t * kd), dv = dk
        var scratch = [Float](repeating: 0, count: suffix.maxBlock)
        Attention.backward(dOut: r, q: q, k: kAll, v: vAll, probs: p, dq: &dq, dk: &dk, dv: &dv, scratch: &scratch,
                           layout: suffix, kvHeads: kv, headDim: d)
        check("cached-prefix attention/q", x: q, grad: dq, loss: { f($0, k, v) })
        check("cached-prefix attention/k", x: k, grad: dk, loss: { f(q, $0, v) })
        check("cached-prefix attention/v", x: v, grad: dv, loss: { f(q, k, $0) })
    }

    /// End to end: cross-entropy at a few rows, δ added to block 0's output at two rows of two
    /// sequences, gradient through blocks 1…L−1, the final norm and the tied LM head.
    func testEndToEndDeltaGradient() throws {
        try endToEndDeltaGradient(SyntheticConfig(layers: 3))
    }

    /// The same through qwen2's biases and halves RoPE, and gemma3's Q/K norms, sandwich norms,
    /// GELU-tanh, √C embedding scale, a head dim ≠ C/H and a window of 4 that the 5- and 7-token
    /// sequences cross (7 layers: layer 5 is global, the others local).
    func testEndToEndDeltaGradientQwen2AndGemma3() throws {
        try endToEndDeltaGradient(SyntheticConfig(layers: 3, architecture: "qwen2"))
        try endToEndDeltaGradient(SyntheticConfig(layers: 7, kvHeads: 1, architecture: "gemma3", headDim: 24, slidingWindow: 4))
    }

    /// qwen3 (Q/K norms without biases, a head dim ≠ C/H) and RoPE scaling (llama with Llama 3's
    /// divisors, qwen3 with a linear factor): the backward rotates with the same scaled table.
    func testEndToEndDeltaGradientQwen3Phi3AndScaledRoPE() throws {
        var qwen3 = SyntheticConfig(layers: 3, architecture: "qwen3", headDim: 24)
        qwen3.ropeScalingFactor = 4
        try endToEndDeltaGradient(qwen3)
        var llama = SyntheticConfig(layers: 3)
        llama.ropeFreqs = [1, 2, 3, 4, 5, 6, 7, 8]
        try endToEndDeltaGradient(llama)
        var phi3 = SyntheticConfig(layers: 3, architecture: "phi3")  // its fused matrices, split at load
        phi3.ropeScalingType = "yarn"; phi3.ropeScalingFactor = 4; phi3.ropeOriginalContext = 16
        try endToEndDeltaGradient(phi3)
    }

    func endToEndDeltaGradient(_ config: SyntheticConfig) throws {
        let model = try LlamaModel(gguf: GGUFFile(bytes: SyntheticModel.writer(config).bytes()))
        let c = model.config
        XCTAssertEqual(c.traits.name, config.architecture)
        let batch = TokenBatch([[5, 80, 120, 33, 7], [9, 200, 17, 64, 101, 3, 45]])
        let deltaRows = [batch.row(0, 2), batch.row(1, 4)]
        let lossRows = [batch.row(0, 3), batch.row(0, 4), batch.row(1, 5), batch.row(1, 6)]
        let targets = [11, 42, 7, 99]
        let base = model.embed(batch)
        _ = model.runBlocks(0...0, hidden: base, batch: batch)

        func run(_ delta: [Float]) -> (Double, [Float], [Int: LayerActivations], FloatBuffer) {
            let h = FloatBuffer(base.array)
            for r in deltaRows { for i in 0..<c.hidden { h.ptr[r * c.hidden + i] += delta[i] } }
            let acts = model.runBlocks(1...(c.layers - 1), hidden: h, batch: batch, keep: Set(1..<c.layers))
            let logits = model.logits(hidden: h.ptr, rows: lossRows)
            var loss = 0.0
            for (i, tgt) in targets.enumerated() {
                let row = logits[(i * c.vocab)..<((i + 1) * c.vocab)]
                let mx = row.max() ?? 0
                let lse = Double(mx) + log(row.reduce(0.0) { $0 + exp(Double($1 - mx)) })
                loss += lse - Double(row[row.startIndex + tgt])
            }
            return (loss / Double(targets.count), logits, acts, h)
        }
        let delta = randoms(c.hidden, 0.5)
        let (_, logits, acts, h) = run(delta)
        // dL/dlogits of the mean cross-entropy.
        var dLogits = [Float](repeating: 0, count: lossRows.count * c.vocab)
        for (i, tgt) in targets.enumerated() {
            let row = logits[(i * c.vocab)..<((i + 1) * c.vocab)]
            let mx = row.max() ?? 0
            let z = row.reduce(0.0) { $0 + exp(Double($1 - mx)) }
            for v in 0..<c.vocab { dLogits[i * c.vocab + v] = Float(exp(Double(row[row.startIndex + v] - mx)) / z) / Float(targets.count) }
            dLogits[i * c.vocab + tgt] -= 1 / Float(targets.count)
        }
        let dTop = model.logitsBackward(hidden: h.ptr, rows: lossRows, dLogits: dLogits, totalRows: batch.count)
        let dBelow = model.backwardBlocks(1...(c.layers - 1), acts: acts, batch: batch, dOutput: dTop)
        var grad = [Float](repeating: 0, count: c.hidden)
        for row in deltaRows { for i in 0..<c.hidden { grad[i] += dBelow.ptr[row * c.hidden + i] } }
        check("end-to-end δ (\(config.architecture))", x: delta, grad: grad, h: 1e-2, tol: 2e-3, coords: c.hidden) { run($0).0 }
    }
}
