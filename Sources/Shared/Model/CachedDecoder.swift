// Incremental decoding with a key/value cache: each step runs only the new tokens through the blocks,
// attending to the keys and values of earlier positions kept per sequence and layer. Several
// sequences decode together (one packed row block per step), so the few-token quantized kernels
// serve them all for about the price of one. `Generator` recomputes the whole sequence per token;
// this is the same computation (test: logits equal the full forward within 1e-3, see
// CachedDecoderTests) at O(new tokens) per step.
//
// Shapes: T new rows this step, C hidden, H heads, KV kv heads, D head dim, F ffn, V vocab.
import Foundation

/// Keys and values of one sequence: per layer [capacity × KV·D], RoPE applied.
public final class KVCache {
    public let capacity: Int
    public private(set) var length = 0
    let k: [FloatBuffer], v: [FloatBuffer]
    let kvDim: Int

    public init(config c: LlamaConfig, capacity: Int) {
        self.capacity = capacity; kvDim = c.kvDim
        k = (0..<c.layers).map { _ in FloatBuffer(count: capacity * c.kvDim) }
        v = (0..<c.layers).map { _ in FloatBuffer(count: capacity * c.kvDim) }
    }
    fileprivate func advance(_ n: Int) { length += n }
}

extension LlamaModel {
    /// Feeds `tokens[s]` (one or more new tokens) to sequence s, whose past lives in `caches[s]`;
    /// returns the logits after the last new token of each sequence [S × V].
    public func decode(_ tokens: [[Int32]], caches: [KVCache]) throws -> [Float] {
        precondition(tokens.count == caches.count, "one cache per sequence")
        let c = config
        var ids: [Int32] = [], pos: [Int32] = [], seqOf: [Int] = [], lastRows: [Int] = [], spans: [Range<Int>] = []
        for (s, t) in tokens.enumerated() {
            guard !t.isEmpty else { throw ModelError.emptyPrompt }
            let cache = caches[s]
            if cache.length + t.count > min(cache.capacity, c.context) {
                throw ModelError.contextOverflow(tokens: cache.length + t.count, context: min(cache.capacity, c.context))
            }
            for (i, id) in t.enumerated() {
                guard id >= 0, Int(id) < c.vocab else { throw ModelError.tokenOutOfRange(id: id, vocab: c.vocab) }
                ids.append(id); pos.append(Int32(cache.length + i)); seqOf.append(s)
            }
            lastRows.append(ids.count - 1)
            spans.append((ids.count - t.count)..<ids.count)
        }
        let t = ids.count
        rope.ensure(Int(pos.max() ?? 0) + 1)
        let h = embed(TokenBatch([ids]))
        let x = FloatBuffer(count: t * c.hidden), q = FloatBuffer(count: t * c.qDim)
        let kv = FloatBuffer(count: t * c.kvDim), vv = FloatBuffer(count: t * c.kvDim)
        let att = FloatBuffer(count: t * c.qDim), gate = FloatBuffer(count: t * c.ffn), up = FloatBuffer(count: t * c.ffn)
        let key = FloatBuffer(count: t * c.ffn)
        let scores = FloatBuffer(count: (tokens.map(\.count).max() ?? 1) * c.context)
        let scale = 1 / Float(c.headDim).squareRoot(), group = c.heads / c.kvHeads
        for l in 0..<c.layers {
            let w = weights.layers[l], qw = quantized.layers[l], qs = quantized
            RMSNorm.forward(h.ptr, w.attnNorm.ptr, x.ptr, rstd: nil, rows: t, dim: c.hidden, eps: c.eps)
            linear(x.ptr, w.wq, qs.use(qw.wq, rows: t), q.ptr, rows: t, inDim: c.hidden, outDim: c.qDim)
            linear(x.ptr, w.wk, qs.use(qw.wk, rows: t), kv.ptr, rows: t, inDim: c.hidden, outDim: c.kvDim)
            linear(x.ptr, w.wv, qs.use(qw.wv, rows: t), vv.ptr, rows: t, inDim: c.hidden, outDim: c.kvDim)
            pos.withUnsafeBufferPointer { p in
                rope.apply(q.ptr, pos: p.baseAddress!, rows: t, heads: c.heads, headDim: c.headDim)
                rope.apply(kv.ptr, pos: p.baseAddress!, rows: t, heads: c.kvHeads, headDim: c.headDim)
            }
            for r in 0..<t {
                let cache = caches[seqOf[r]], p = Int(pos[r])
                (cache.k[l].ptr + p * c.kvDim).update(from: kv.ptr + r * c.kvDim, count: c.kvDim)
                (cache.v[l].ptr + p * c.kvDim).update(from: vv.ptr + r * c.kvDim, count: c.kvDim)
            }
            // The new rows of sequence s (contiguous, positions p0 ..< p0+m) attend to its cached
            // positions 0 ... own: S = Q Kᵀ/√D [m × n], causal mask, softmax, O = P V — one pair of
            // GEMMs per sequence and head, as in `Attention.forward`.
            for (s, seq) in spans.enumerated() {
                let cache = caches[s], m = seq.count, p0 = Int(pos[seq.lowerBound]), n = p0 + m
                for head in 0..<c.heads {
                    let g = head / group
                    BLAS.sgemm(transB: true, m: m, n: n, k: c.headDim, alpha: scale, a: q.ptr + seq.lowerBound * c.qDim + head * c.headDim,
                               lda: c.qDim, b: cache.k[l].ptr + g * c.headDim, ldb: c.kvDim, c: scores.ptr, ldc: n)
                    for i in 0..<m { Attention.causalSoftmax(row: scores.ptr + i * n, last: p0 + i, n: n) }
                    BLAS.sgemm(m: m, n: c.headDim, k: n, a: scores.ptr, lda: n, b: cache.v[l].ptr + g * c.headDim, ldb: c.kvDim,
                               c: att.ptr + seq.lowerBound * c.qDim + head * c.headDim, ldc: c.qDim)
                }
            }
            linear(att.ptr, w.wo, qs.use(qw.wo, rows: t), h.ptr, rows: t, inDim: c.qDim, outDim: c.hidden, accumulate: true)
            RMSNorm.forward(h.ptr, w.ffnNorm.ptr, x.ptr, rstd: nil, rows: t, dim: c.hidden, eps: c.eps)
            linear(x.ptr, w.gate, qs.use(qw.gate, rows: t), gate.ptr, rows: t, inDim: c.hidden, outDim: c.ffn)
            linear(x.ptr, w.up, qs.use(qw.up, rows: t), up.ptr, rows: t, inDim: c.hidden, outDim: c.ffn)
            SwiGLU.forward(gate: gate.ptr, up: up.ptr, out: key.ptr, count: t * c.ffn)
            linear(key.ptr, w.down, qs.down(l, rows: t), h.ptr, rows: t, inDim: c.ffn, outDim: c.hidden, accumulate: true)
        }
        for (s, n) in tokens.enumerated() { caches[s].advance(n.count) }
        return logits(hidden: h.ptr, rows: lastRows)
    }
}

/// Generation for several prompts at once on a KV cache; each prompt has its own sampler.
public struct CachedGenerator {
    public let model: LlamaModel
    public let tokenizer: BPETokenizer
    public init(model: LlamaModel, tokenizer: BPETokenizer) { self.model = model; self.tokenizer = tokenizer }

    /// Up to `maxTokens` new tokens per prompt; a sequence stops at end-of-sequence when `stopAtEOS`.
    public func generate(prompts: [[Int32]], maxTokens: Int, samplers: inout [Sampler], stopAtEOS: Bool = true) throws -> [[Int32]] {
        precondition(samplers.count == prompts.count, "one sampler per prompt")
        let cap = model.config.context
        let caches = prompts.map { KVCache(config: model.config, capacity: min(cap, $0.count + maxTokens)) }
        var out = [[Int32]](repeating: [], count: prompts.count)
        for p in prompts {
            if p.isEmpty { throw ModelError.emptyPrompt }
            if p.count >= cap { throw ModelError.contextOverflow(tokens: p.count, context: cap) }
        }
        var active = maxTokens > 0 ? Array(prompts.indices) : []
        var feed = prompts
        let v = model.config.vocab
        while !active.isEmpty {
            let logits = try model.decode(active.map { feed[$0] }, caches: active.map { caches[$0] })
            var next: [Int] = []
            for (i, s) in active.enumerated() {
                let id = samplers[s].next(logits[(i * v)..<((i + 1) * v)])
                if stopAtEOS, let eos = tokenizer.eosID, id == eos { continue }
                out[s].append(id); feed[s] = [id]
                if out[s].count < maxTokens, caches[s].length < caches[s].capacity { next.append(s) }
            }
            active = next
        }
        return out
    }
}
