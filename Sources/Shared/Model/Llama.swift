// The decoder forward pass in float32 over a packed batch of sequences: OpenBLAS on the float32 weights,
// or, for a few tokens, kernels reading the stored quantized weights (QuantizedWeights). One block for
// every architecture (llama, qwen2, qwen3, gemma3, phi3): what differs is a trait of the config (Architecture.swift).
// Hooks let the edit pipeline read MLP keys and block outputs and add vectors to block outputs;
// `runBlocks` and `logits` are exposed separately so callers can cache the blocks below an edited layer.
import Support
import GGUF
import Tokenization
import Kernels

/// Observation and intervention points of a forward pass.
public struct ForwardHooks {
    /// Called with the MLP keys [T × F] (input of ffn_down) of each listed layer.
    public var keyLayers: Set<Int> = []
    public var onKeys: ((_ layer: Int, _ keys: UnsafePointer<Float>) -> Void)?
    /// Called with the block output [T × C] of each listed layer (after any added deltas).
    public var outputLayers: Set<Int> = []
    public var onOutput: ((_ layer: Int, _ output: UnsafePointer<Float>) -> Void)?
    /// Called with ffn_down's output [T × C] (before a post-norm, where the architecture has one).
    public var mlpOutputLayers: Set<Int> = []
    public var onMLPOutput: ((_ layer: Int, _ mlpOut: UnsafePointer<Float>) -> Void)?
    /// Vectors [C] added to a block's output at packed rows: `deltas[layer] = [(row, vector)]`.
    public var deltas: [Int: [(row: Int, vector: [Float])]] = [:]
    public init() {}

    /// Whether any hook reads or changes block `layer`.
    func involves(_ layer: Int) -> Bool {
        keyLayers.contains(layer) || outputLayers.contains(layer) || mlpOutputLayers.contains(layer) || deltas[layer] != nil
    }
}

public final class LlamaModel: @unchecked Sendable {
    public let config: LlamaConfig
    public let weights: LlamaWeights
    public let gguf: GGUFFile
    /// Views of the stored quantized matrices for few-token forwards (see QuantizedWeights).
    public let quantized: QuantizedWeights
    /// RoPE at the file's base (every layer, or gemma3's global layers).
    package let rope: RoPETable
    /// RoPE of local (sliding-window) layers where their base differs (gemma3: 10,000).
    package let ropeLocal: RoPETable?
    /// When set, every matrix product's wall time is added to it (`bench forward --breakdown`).
    /// Set it only while no forward of this model runs.
    public var profile: ProductProfile?

    /// `residency` nil: as `ALPHAEDIT_WEIGHTS` says (WeightResidency.chosen: float32 copies where they fit).
    public init(gguf: GGUFFile, residency: WeightResidency? = nil) throws {
        self.gguf = gguf
        let c = try LlamaConfig(gguf: gguf)
        config = c
        weights = try LlamaWeights(gguf: gguf, config: c, residency: residency)
        quantized = QuantizedWeights(gguf: gguf, config: c, kernelCopies: weights.residency == .float32)
        // Scaling (linear or YaRN, llama 3's divisors) applies to the global layers; local ones are unscaled.
        rope = RoPETable(dims: c.ropeDims, base: c.ropeBase, scaling: c.traits.ropeScaling, factors: weights.ropeFactors)
        ropeLocal = c.traits.ropeBaseLocal.map { RoPETable(dims: c.ropeDims, base: $0) }
        ensureRoPE(256)
    }

    /// Grows the RoPE tables to positions 0..<n. Not thread-safe: callers that run forwards on
    /// several threads grow them first (to the context).
    public func ensureRoPE(_ n: Int) {
        rope.ensure(n)
        ropeLocal?.ensure(n)
    }

    /// The RoPE table of layer l.
    @inline(__always) func rope(_ l: Int) -> RoPETable {
        config.traits.isLocal(l) ? (ropeLocal ?? rope) : rope
    }

    public convenience init(path: String, residency: WeightResidency? = nil) throws {
        try self.init(gguf: GGUFFile(path: path), residency: residency)
    }

    /// Full forward: logits [rows.count × V] at the packed `logitRows`; blocks listed in `keep`
    /// return their activations. `upTo` stops after that block (no logits then).
    public func forward(_ batch: TokenBatch, logitRows: [Int] = [], hooks: ForwardHooks = ForwardHooks(),
                        keep: Set<Int> = [], upTo: Int? = nil) throws -> ForwardResult {
        try batch.validate(vocab: config.vocab, context: config.context)
        let last = upTo ?? config.layers - 1
        guard last >= 0, last < config.layers else { throw ModelError.layerOutOfRange(last, layers: config.layers) }
        for r in logitRows where r < 0 || r >= batch.count {
            throw ModelError.positionOutOfRange(sequence: -1, position: r, length: batch.count)
        }
        let hidden = embed(batch)
        // With logits wanted, the last block needs only their rows' outputs (`outputRows`), unless a
        // hook or `keep` looks at that block.
        let full = last == config.layers - 1
        let pruned = full && !hooks.involves(last) && !keep.contains(last) ? LlamaModel.outputRows(logitRows) : nil
        let kept = runBlocks(0...last, hidden: hidden, batch: batch, hooks: hooks, keep: keep, lastRows: pruned?.kept)
        let logits = full && !logitRows.isEmpty ? self.logits(hidden: hidden.ptr, rows: pruned?.at ?? logitRows) : []
        return ForwardResult(logits: logits, vocab: config.vocab, activations: kept)
    }

    /// The distinct rows of `rows`, sorted (`runBlocks(lastRows:)`), and where each of `rows` lies among
    /// them: its row of a last block computed at those rows only.
    static func outputRows(_ rows: [Int]) -> (kept: [Int], at: [Int]) {
        let kept = Array(Set(rows)).sorted()
        var index: [Int: Int] = [:]
        for (i, r) in kept.enumerated() { index[r] = i }
        return (kept, rows.map { index[$0]! })
    }

    /// Token embeddings [T × C].
    public func embed(_ batch: TokenBatch) -> FloatBuffer {
        let c = config.hidden
        let h = FloatBuffer(count: batch.count * c, zeroed: false)
        for (r, id) in batch.tokens.enumerated() {
            if let e = weights.storedEmbd {
                e.dequantize(rows: Int(id)..<(Int(id) + 1), into: h.ptr + r * c, ldy: c)
            } else {
                (h.ptr + r * c).update(from: weights.tokenEmbd.ptr + Int(id) * c, count: c)
            }
        }
        if let s = config.traits.embeddingScale {
            for i in 0..<(batch.count * c) { h.ptr[i] *= s }
        }
        return h
    }

    /// Runs blocks `range` over the residual stream `hidden` [T × C] in place. With `prefix`, the
    /// batch's sequences continue ones whose earlier rows' K/V are in `prefix.cache` (PrefixKVCache),
    /// and the batch's own K/V are stored there too. `lastRows` (sorted packed rows; the last block
    /// neither hooked nor kept): the last block computes only those rows' outputs, left in hidden's
    /// first `lastRows.count` rows (the other rows then hold nothing meaningful); its K/V are still
    /// those of every row (`block(outputRows:)`).
    public func runBlocks(_ range: ClosedRange<Int>, hidden: FloatBuffer, batch: TokenBatch,
                          hooks: ForwardHooks = ForwardHooks(), keep: Set<Int> = [],
                          prefix: CachedPrefix? = nil, lastRows: [Int]? = nil) -> [Int: LayerActivations] {
        let layout = prefix?.layout(batch, heads: config.heads)
            ?? AttentionLayout(starts: batch.starts, lengths: batch.lengths, heads: config.heads)
        ensureRoPE(Int(batch.positions.max() ?? 0) + 2)
        var kept: [Int: LayerActivations] = [:]
        var reusable: LayerActivations?
        for l in range {
            let a: LayerActivations
            if keep.contains(l) {
                a = LayerActivations(config: config, rows: batch.count, probCount: layout.probCount)
                kept[l] = a
            } else {
                if reusable == nil { reusable = LayerActivations(config: config, rows: batch.count, probCount: layout.probCount) }
                a = reusable!
            }
            a.input.ptr.update(from: hidden.ptr, count: batch.count * config.hidden)
            let rows = l == range.upperBound ? lastRows : nil
            block(l, a, batch: batch, layout: layout, hooks: hooks, cache: prefix?.cache, outputRows: rows)
            hidden.ptr.update(from: a.output.ptr, count: (rows?.count ?? batch.count) * config.hidden)
        }
        return kept
    }

    /// One transformer block: `a.input` → `a.output`, every intermediate kept in `a`. With
    /// `outputRows` (sorted, distinct packed rows; hooks must not involve block l): K/V of every row (into
    /// `cache` too), but the rest only as far as those rows' outputs need, which land in `a.output`'s
    /// first rows; none (`[]`): K/V only. Exact: a row's output depends on other rows only through K/V,
    /// and the kernels compute each row alone (a row's bits are those of the whole block; sgemm over
    /// the fewer rows may round differently). Used for the last block, whose other rows nobody reads.
    func block(_ l: Int, _ a: LayerActivations, batch: TokenBatch, layout: AttentionLayout, hooks: ForwardHooks,
               cache: PrefixKVCache? = nil, outputRows: [Int]? = nil) {
        let c = config, t = batch.count
        guard let rows = outputRows, rows.count < t else {
            attention(l, a, batch: batch, layout: layout, cache: cache, queries: true)
            mlp(l, a, rows: t, hooks: hooks, groups: batch.productGroups)
            return
        }
        attention(l, a, batch: batch, layout: layout, cache: cache, queries: !rows.isEmpty)
        guard !rows.isEmpty else { return }
        for (i, r) in rows.enumerated() where i != r {  // i < r: rows sorted and distinct, so nothing needed is overwritten
            (a.attnOut.ptr + i * c.qDim).update(from: a.attnOut.ptr + r * c.qDim, count: c.qDim)
            (a.input.ptr + i * c.hidden).update(from: a.input.ptr + r * c.hidden, count: c.hidden)
        }
        mlp(l, a, rows: rows.count, hooks: ForwardHooks())
    }

    /// The block's first half: the attention norm, K and V (stored in `cache`), and with `queries`
    /// Q and the attention output `a.attnOut`.
    func attention(_ l: Int, _ a: LayerActivations, batch: TokenBatch, layout: AttentionLayout, cache: PrefixKVCache?,
                   queries: Bool) {
        let c = config, tr = c.traits, w = weights.layers[l], t = batch.count
        let qw = quantized.layers[l], qs = quantized, g = batch.productGroups
        RMSNorm.forward(a.input.ptr, w.attnNorm.ptr, a.attnIn.ptr, rstd: a.attnRstd.ptr, rows: t, dim: c.hidden, eps: c.eps)
        if queries { linear(a.attnIn.ptr, w.wq, qs.use(qw.wq, rows: t), a.q.ptr, rows: t, inDim: c.hidden, outDim: c.qDim, groups: g, role: .q, stored: w.stored?.wq) }
        linear(a.attnIn.ptr, w.wk, qs.use(qw.wk, rows: t), a.k.ptr, rows: t, inDim: c.hidden, outDim: c.kvDim, groups: g, role: .k, stored: w.stored?.wk)
        linear(a.attnIn.ptr, w.wv, qs.use(qw.wv, rows: t), a.v.ptr, rows: t, inDim: c.hidden, outDim: c.kvDim, groups: g, role: .v, stored: w.stored?.wv)
        if let qb = w.qBias, let kb = w.kBias, let vb = w.vBias {
            if queries { addRowVector(a.q.ptr, qb.ptr, rows: t, dim: c.qDim) }
            addRowVector(a.k.ptr, kb.ptr, rows: t, dim: c.kvDim)
            addRowVector(a.v.ptr, vb.ptr, rows: t, dim: c.kvDim)
        }
        if let qn = w.qNorm, let kn = w.kNorm {  // per-head RMSNorm: rows of D values
            if queries {
                a.qRaw.ptr.update(from: a.q.ptr, count: t * c.qDim)
                RMSNorm.forward(a.qRaw.ptr, qn.ptr, a.q.ptr, rstd: a.qRstd.ptr, rows: t * c.heads, dim: c.headDim, eps: c.eps)
            }
            a.kRaw.ptr.update(from: a.k.ptr, count: t * c.kvDim)
            RMSNorm.forward(a.kRaw.ptr, kn.ptr, a.k.ptr, rstd: a.kRstd.ptr, rows: t * c.kvHeads, dim: c.headDim, eps: c.eps)
        }
        let table = rope(l), halves = tr.ropeOrder == .halves
        batch.positions.withUnsafeBufferPointer { pos in
            if queries { table.apply(a.q.ptr, pos: pos.baseAddress!, rows: t, heads: c.heads, headDim: c.headDim, halves: halves) }
            table.apply(a.k.ptr, pos: pos.baseAddress!, rows: t, heads: c.kvHeads, headDim: c.headDim, halves: halves)
        }
        cache?.store(l, k: a.k.ptr, v: a.v.ptr, layout: layout, kvDim: c.kvDim)
        guard queries else { return }
        Attention.forward(q: a.q.ptr, k: cache?.k(l) ?? a.k.ptr, v: cache?.v(l) ?? a.v.ptr, out: a.attnOut.ptr,
                          probs: a.probs.ptr, layout: layout, kvHeads: c.kvHeads, headDim: c.headDim,
                          window: tr.isLocal(l) ? tr.slidingWindow : nil)
    }

    /// The block's second half on its first `t` rows: `a.attnOut` and `a.input` → `a.output`
    /// (`groups`: `TokenBatch.productGroups`, when those rows are the batch's).
    func mlp(_ l: Int, _ a: LayerActivations, rows t: Int, hooks: ForwardHooks, groups g: [Range<Int>]? = nil) {
        let c = config, tr = c.traits, w = weights.layers[l]
        let qw = quantized.layers[l], qs = quantized
        if let pn = w.postAttnNorm {  // mid = input + RMSNorm(attnOut·Woᵀ)
            linear(a.attnOut.ptr, w.wo, qs.use(qw.wo, rows: t), a.attnProj.ptr, rows: t, inDim: c.qDim, outDim: c.hidden, groups: g, role: .o, stored: w.stored?.wo)
            RMSNorm.forward(a.attnProj.ptr, pn.ptr, a.mid.ptr, rstd: a.postAttnRstd.ptr, rows: t, dim: c.hidden, eps: c.eps)
            for i in 0..<(t * c.hidden) { a.mid.ptr[i] += a.input.ptr[i] }
        } else {
            a.mid.ptr.update(from: a.input.ptr, count: t * c.hidden)
            linear(a.attnOut.ptr, w.wo, qs.use(qw.wo, rows: t), a.mid.ptr, rows: t, inDim: c.qDim, outDim: c.hidden, accumulate: true, groups: g, role: .o, stored: w.stored?.wo)
        }
        RMSNorm.forward(a.mid.ptr, w.ffnNorm.ptr, a.ffnIn.ptr, rstd: a.ffnRstd.ptr, rows: t, dim: c.hidden, eps: c.eps)
        linear(a.ffnIn.ptr, w.gate, qs.use(qw.gate, rows: t), a.gate.ptr, rows: t, inDim: c.hidden, outDim: c.ffn, groups: g, role: .gate, stored: w.stored?.gate)
        linear(a.ffnIn.ptr, w.up, qs.use(qw.up, rows: t), a.up.ptr, rows: t, inDim: c.hidden, outDim: c.ffn, groups: g, role: .up, stored: w.stored?.up)
        switch tr.activation {
        case .silu: SwiGLU.forward(gate: a.gate.ptr, up: a.up.ptr, out: a.key.ptr, count: t * c.ffn)
        case .geluTanh: GeGLU.forward(gate: a.gate.ptr, up: a.up.ptr, out: a.key.ptr, count: t * c.ffn)
        }
        if hooks.keyLayers.contains(l) { hooks.onKeys?(l, a.key.ptr) }
        linear(a.key.ptr, w.down, qs.down(l, rows: t), a.mlpOut.ptr, rows: t, inDim: c.ffn, outDim: c.hidden, groups: g, role: .down, stored: w.stored?.down)
        if hooks.mlpOutputLayers.contains(l) { hooks.onMLPOutput?(l, a.mlpOut.ptr) }
        if let pn = w.postFFNNorm {  // output = mid + RMSNorm(mlpOut)
            RMSNorm.forward(a.mlpOut.ptr, pn.ptr, a.output.ptr, rstd: a.postFFNRstd.ptr, rows: t, dim: c.hidden, eps: c.eps)
            for i in 0..<(t * c.hidden) { a.output.ptr[i] += a.mid.ptr[i] }
        } else {
            for i in 0..<(t * c.hidden) { a.output.ptr[i] = a.mid.ptr[i] + a.mlpOut.ptr[i] }
        }
        for (row, vec) in hooks.deltas[l] ?? [] where row >= 0 && row < t && vec.count == c.hidden {
            let o = a.output.ptr + row * c.hidden
            for i in 0..<c.hidden { o[i] += vec[i] }
        }
        if hooks.outputLayers.contains(l) { hooks.onOutput?(l, a.output.ptr) }
    }

    /// x[r] += v for every row r of x[T × dim].
    @inline(__always) func addRowVector(_ x: UnsafeMutablePointer<Float>, _ v: UnsafePointer<Float>, rows t: Int, dim: Int) {
        for r in 0..<t {
            let xr = x + r * dim
            for i in 0..<dim { xr[i] += v[i] }
        }
    }

    /// Final RMSNorm and LM head at the given packed rows of the residual stream: [rows × V].
    /// `groups`: ranges of `rows`' indices whose head products run apart (`TokenBatch.productGroups`).
    public func logits(hidden: UnsafePointer<Float>, rows: [Int], groups: [Range<Int>]? = nil) -> [Float] {
        let c = config.hidden, m = rows.count
        let x = FloatBuffer(count: m * c, zeroed: false), xn = FloatBuffer(count: m * c, zeroed: false)
        for (i, r) in rows.enumerated() { (x.ptr + i * c).update(from: hidden + r * c, count: c) }
        RMSNorm.forward(x.ptr, weights.outputNorm.ptr, xn.ptr, rstd: nil, rows: m, dim: c, eps: config.eps)
        var out = [Float](repeating: 0, count: m * config.vocab)
        out.withUnsafeMutableBufferPointer {
            linear(xn.ptr, weights.lmHead, quantized.use(quantized.lmHead, rows: m), $0.baseAddress!,
                   rows: m, inDim: c, outDim: config.vocab, groups: groups, role: .head, stored: weights.storedHead)
        }
        return out
    }
}

public struct ForwardResult {
    /// [rows × V], in the order of `logitRows`.
    public let logits: [Float]
    public let vocab: Int
    public let activations: [Int: LayerActivations]

    public func logits(at i: Int) -> ArraySlice<Float> { logits[(i * vocab)..<((i + 1) * vocab)] }
}
