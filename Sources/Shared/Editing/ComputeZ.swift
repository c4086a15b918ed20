// The target value v* (docs/algorithm.md §3, "compute_z"), for several requests at once: their prompts are
// packed into one batch (sequences never interact, so each request's result is what it would be
// alone), the blocks up to the z layer run once, and each Adam step runs the upper blocks forward and
// backward only. Requests that stop early leave the batch.
//
// Rows before a prompt's subject-last token never see δ (causality), so they are the same in every
// step: their K/V at the upper blocks are computed once (PrefixKVCache) and each step runs the upper
// blocks forward and backward only from that token on (`reusePrefix`). On the first 200 dev.jsonl
// requests with six context templates a request's prompts hold ≈ 106 rows of which ≈ 30 are live, and
// v* took 3.24 instead of 7.96 CPU-seconds per request (ComputeZBenchmarks: 8 requests, 1 thread).
import Support
import Corpus
import GGUF
import Tokenization
import Kernels
import Model
import Foundation

public struct ZResult: Sendable, Codable {
    public var z: [Float]
    public var h0Norm: Float
    public var deltaNorm: Float
    /// Per forward pass, the loss before that pass's Adam step.
    public var losses: [VStarLoss]
}

/// The v* objective of one forward pass (docs/algorithm.md §3) and its parts. On the wire and in JSON
/// it is the array [total, nll, kl, weightDecay], as it always was.
public struct VStarLoss: Sendable, Equatable, Codable {
    public var total: Float
    /// Mean negative log-likelihood of the new target over the rewrite prompts.
    public var nll: Float
    /// The KL term on the essence prompt (already scaled by the KL factor).
    public var kl: Float
    public var weightDecay: Float

    public init(total: Float, nll: Float, kl: Float, weightDecay: Float) {
        self.total = total; self.nll = nll; self.kl = kl; self.weightDecay = weightDecay
    }

    public init(from decoder: Decoder) throws {
        var c = try decoder.unkeyedContainer()
        total = try c.decode(Float.self); nll = try c.decode(Float.self)
        kl = try c.decode(Float.self); weightDecay = try c.decode(Float.self)
        guard c.isAtEnd else {
            throw DecodingError.dataCorruptedError(in: c, debugDescription: "a v* loss has 4 numbers: total, nll, kl, weight decay")
        }
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.unkeyedContainer()
        try c.encode(total); try c.encode(nll); try c.encode(kl); try c.encode(weightDecay)
    }
}

/// The prompts of one request, tokenized, with their read/write and loss positions.
struct ZPrompts {
    var seqs: [[Int32]] = []
    var lookup: [Int] = []          // subject-last index per sequence
    var targetIDs: [Int32] = []
    var rewriteCount = 0            // the first `rewriteCount` sequences carry the NLL; the last is the KL prompt

    /// First position of sequence j that δ or a loss touches: its rows before it never change.
    func firstLive(_ j: Int) -> Int {
        j < rewriteCount ? min(lookup[j], max(0, seqs[j].count - targetIDs.count)) : lookup[j]
    }
}

public struct ComputeZ {
    public let model: LlamaModel
    public let tokenizer: BPETokenizer
    public let hp: EditHyperparameters
    /// Each step runs only the rows from the subject's last token on, over cached K/V of the rows
    /// before it (exact up to float rounding). Off: every row in every step, the plain reading of §3.
    public var reusePrefix = true

    public init(model: LlamaModel, tokenizer: BPETokenizer, hp: EditHyperparameters) {
        self.model = model; self.tokenizer = tokenizer; self.hp = hp
    }

    func prompts(_ r: EditRequest, templates: ContextTemplates) -> ZPrompts {
        var p = ZPrompts()
        p.targetIDs = tokenizer.encode(r.targetText)
        let prefix = tokenizer.decode(Array(p.targetIDs.dropLast()))
        for t in templates.all {
            let template = t.replacingFirst("{}", with: r.prompt) + prefix
            let layout = PromptLayout(template: template, subject: r.subject, tokenizer: tokenizer)
            p.seqs.append(layout.ids); p.lookup.append(layout.subjectLast)
        }
        p.rewriteCount = p.seqs.count
        // The KL prompt's only loss row is its subject-last token: the tokens after it cannot reach it.
        let kl = PromptLayout(template: "{} is a", subject: r.subject, tokenizer: tokenizer)
        p.seqs.append(Array(kl.ids.prefix(kl.subjectLast + 1))); p.lookup.append(kl.subjectLast)
        return p
    }

    /// One BLAS thread (`BLAS.singleThreaded`): the same chunk of requests gives the same v* in any
    /// process, whatever its thread count; callers run chunks side by side instead.
    public func run(_ requests: [EditRequest], templates: ContextTemplates) throws -> [ZResult] {
        try BLAS.singleThreaded { try runChunk(requests, templates: templates) }
    }

    private func runChunk(_ requests: [EditRequest], templates: ContextTemplates) throws -> [ZResult] {
        let c = model.config, C = c.hidden, zl = hp.zLayer
        guard zl >= 0, zl < c.layers - 1 else { throw ModelError.layerOutOfRange(zl, layers: c.layers) }
        let ps = requests.map { prompts($0, templates: templates) }
        for p in ps where p.targetIDs.isEmpty { throw ModelError.emptyPrompt }

        // Blocks 0…zl once, for all prompts of all requests.
        let fullBatch = TokenBatch(ps.flatMap(\.seqs))
        try fullBatch.validate(vocab: c.vocab, context: c.context)
        let below = model.embed(fullBatch)
        // Behind a post-FFN norm (gemma3), δ is added to ffn_down's output m before the norm, so the
        // output it asks for is reachable by an edit of ffn_down (EditPoint.swift): keep block zl's
        // m and mid to rebuild its output as mid + N(m + δ).
        let post = model.hasPostFFNNorm
        let zActs = model.runBlocks(0...zl, hidden: below, batch: fullBatch, keep: post ? [zl] : [])[zl]
        var firstSeq: [Int] = [], s = 0
        for p in ps { firstSeq.append(s); s += p.seqs.count }
        func baseRow(_ req: Int, _ seq: Int, _ pos: Int) -> Int { fullBatch.row(firstSeq[req] + seq, pos) }

        // The upper blocks over the rows before each sequence's first live row, once: their K/V.
        let upper = (zl + 1)...(c.layers - 1)
        let live = ps.map { p in p.seqs.indices.map { reusePrefix ? p.firstLive($0) : 0 } }
        let cache = reusePrefix ? PrefixKVCache(config: c, layers: upper, rows: fullBatch.count) : nil
        if let cache {
            var pre: [[Int32]] = [], starts: [Int] = []
            for (i, p) in ps.enumerated() {
                for (j, q) in p.seqs.enumerated() where live[i][j] > 0 { pre.append(Array(q[..<live[i][j]])); starts.append(baseRow(i, j, 0)) }
            }
            if !pre.isEmpty {
                let pb = TokenBatch(pre)
                let h = FloatBuffer(count: pb.count * C, zeroed: false)
                for (k, q) in pre.enumerated() { (h.ptr + pb.row(k, 0) * C).update(from: below.ptr + starts[k] * C, count: q.count * C) }
                _ = model.runBlocks(upper, hidden: h, batch: pb, prefix: CachedPrefix(cache: cache, kvStarts: starts))
            }
        }

        let h0: [[Float]] = ps.indices.map { i in
            let r = baseRow(i, 0, ps[i].lookup[0])
            return Array(UnsafeBufferPointer(start: below.ptr + r * C, count: C))
        }
        // What δ is added to: the block output, or behind a post-norm ffn_down's output (plain prompt).
        let perturbed: [[Float]] = zActs.map { za in
            ps.indices.map { i in Array(UnsafeBufferPointer(start: za.mlpOut.ptr + baseRow(i, 0, ps[i].lookup[0]) * C, count: C)) }
        } ?? h0
        let h0Norm = perturbed.map { sqrt($0.reduce(0) { $0 + $1 * $1 }) }
        var delta = [[Float]](repeating: [Float](repeating: 0, count: C), count: ps.count)
        var adamM = delta, adamV = delta
        var klInit: [[Float]?] = Array(repeating: nil, count: ps.count)
        var losses = [[VStarLoss]](repeating: [], count: ps.count)
        var active = Array(ps.indices)
        let V = c.vocab
        var logp = [Float](repeating: 0, count: V)  // the KL row's log-probabilities

        for it in 0..<max(1, hp.vSteps) {
            if active.isEmpty { break }
            // Pack the active requests' prompts from their first live rows, with their cached lower-block
            // states; batch row (k, i) is position first[k] + i of sequence k.
            var seqs: [[Int32]] = [], owner: [Int] = [], local: [Int] = [], first: [Int] = [], kvStarts: [Int] = []
            for i in active {
                for (j, q) in ps[i].seqs.enumerated() {
                    seqs.append(q); owner.append(i); local.append(j); first.append(live[i][j]); kvStarts.append(baseRow(i, j, 0))
                }
            }
            let batch = TokenBatch(zip(seqs, first).map { Array($0[$1...]) }, firstPositions: first)
            func row(_ k: Int, _ pos: Int) -> Int { batch.row(k, pos - first[k]) }
            let hidden = FloatBuffer(count: batch.count * C, zeroed: false)
            // With a post-norm: per sequence, m + δ at its lookup row and that row's 1/rms.
            let mPlus = FloatBuffer(count: zActs == nil ? 0 : seqs.count * C, zeroed: false)
            let mRstd = FloatBuffer(count: zActs == nil ? 0 : seqs.count, zeroed: false)
            for (k, q) in seqs.enumerated() {
                let src = below.ptr + (kvStarts[k] + first[k]) * C
                (hidden.ptr + batch.row(k, 0) * C).update(from: src, count: (q.count - first[k]) * C)
                let r = row(k, ps[owner[k]].lookup[local[k]])
                let d = delta[owner[k]]
                if let za = zActs {
                    let zr = baseRow(owner[k], local[k], ps[owner[k]].lookup[local[k]])
                    let x = mPlus.ptr + k * C, h = hidden.ptr + r * C
                    for j in 0..<C { x[j] = za.mlpOut.ptr[zr * C + j] + d[j] }
                    model.postFFN(layer: zl, x, h, rstd: mRstd.ptr + k, rows: 1)
                    for j in 0..<C { h[j] += za.mid.ptr[zr * C + j] }
                } else {
                    for x in 0..<C { hidden.ptr[r * C + x] += d[x] }
                }
            }
            let prefix = cache.map { CachedPrefix(cache: $0, kvStarts: kvStarts) }
            let acts = model.runBlocks(upper, hidden: hidden, batch: batch, keep: Set(upper), prefix: prefix)
            // Loss rows: every target position of the rewrite prompts, then the KL prompt's lookup row.
            var rows: [Int] = [], rowTarget: [Int32] = [], rowOwner: [Int] = [], rowIsKL: [Bool] = []
            for (k, q) in seqs.enumerated() {
                let p = ps[owner[k]]
                if local[k] < p.rewriteCount {
                    let n = p.targetIDs.count
                    for (t, id) in p.targetIDs.enumerated() {
                        // Target t is predicted at position |prompt| − 1 + t = |seq| − n + t (teacher forcing).
                        rows.append(row(k, q.count - n + t)); rowTarget.append(id)
                        rowOwner.append(owner[k]); rowIsKL.append(false)
                    }
                } else {
                    rows.append(row(k, p.lookup[local[k]])); rowTarget.append(-1); rowOwner.append(owner[k]); rowIsKL.append(true)
                }
            }
            var dLogits = model.logits(hidden: hidden.ptr, rows: rows)  // becomes the gradient in place
            var nll = [Float](repeating: 0, count: ps.count), kl = nll
            dLogits.withUnsafeMutableBufferPointer { all in
                for ri in rows.indices {
                    let i = rowOwner[ri], p = ps[i], x = all.baseAddress! + ri * V
                    // log Σ e^x and e^(x − lse) vectorized (Kernels/Softmax.swift): the scalar loops were 18 %
                    // of a Gemma request.
                    let (mx, z) = Softmax.sumExp(x, count: V)
                    let lse = Float(log(z)) + mx
                    if !rowIsKL[ri] {
                        let w = 1 / Float(p.rewriteCount * p.targetIDs.count)
                        nll[i] += (lse - x[Int(rowTarget[ri])]) * w
                        Softmax.expScaled(x, x, count: V, shift: lse, scale: w)
                        x[Int(rowTarget[ri])] -= w
                    } else {
                        for v in 0..<V { logp[v] = x[v] - lse }
                        if klInit[i] == nil { klInit[i] = logp }
                        let q = klInit[i] ?? logp
                        Softmax.expScaled(logp, x, count: V, shift: 0)  // p = e^logp
                        var k = 0.0
                        for v in 0..<V { k += Double(x[v]) * Double(logp[v] - q[v]) }
                        kl[i] = hp.klFactor * Float(k)
                        for v in 0..<V { x[v] = hp.klFactor * x[v] * (logp[v] - q[v] - Float(k)) }
                    }
                }
            }
            var finished: [Int] = []
            for i in active {
                let dn = sqrt(delta[i].reduce(0) { $0 + $1 * $1 })
                let wd = hp.weightDecay * dn / (h0Norm[i] * h0Norm[i])
                let loss = nll[i] + kl[i] + wd
                losses[i].append(VStarLoss(total: loss, nll: nll[i], kl: kl[i], weightDecay: wd))
                // ENCORE's stop (EditStages.swift): the target probability exp(−NLL) reached.
                let reached = hp.stages.map { $0.targets == .encore && Foundation.exp(-nll[i]) >= $0.encoreProbability } ?? false
                if loss < hp.earlyStopLoss || reached || it == hp.vSteps - 1 { finished.append(i) }
            }
            active.removeAll { finished.contains($0) }
            if active.isEmpty { break }
            // Backward to the z layer's output, gather each request's gradient over its lookup rows.
            let dTop = dLogits.withUnsafeBufferPointer {
                model.logitsBackward(hidden: hidden.ptr, rows: rows, dLogits: $0.baseAddress!, totalRows: batch.count)
            }
            let dBelow = model.backwardBlocks(upper, acts: acts, batch: batch, dOutput: dTop, prefix: prefix)
            var grad = [Int: [Float]]()
            var dm = [Float](repeating: 0, count: zActs == nil ? 0 : C)
            for (k, _) in seqs.enumerated() where active.contains(owner[k]) {
                let r = row(k, ps[owner[k]].lookup[local[k]])
                var g = grad[owner[k]] ?? [Float](repeating: 0, count: C)
                if zActs != nil {
                    dm.withUnsafeMutableBufferPointer {
                        model.postFFNBackward(layer: zl, dy: dBelow.ptr + r * C, mPlus.ptr + k * C, rstd: mRstd.ptr + k,
                                              dm: $0.baseAddress!, rows: 1)
                    }
                    for x in 0..<C { g[x] += dm[x] }
                } else {
                    for x in 0..<C { g[x] += dBelow.ptr[r * C + x] }
                }
                grad[owner[k]] = g
            }
            let t = Float(it + 1)
            for i in active {
                guard var g = grad[i] else { continue }
                let dn = sqrt(delta[i].reduce(0) { $0 + $1 * $1 })
                if dn > 0 { for x in 0..<C { g[x] += hp.weightDecay * delta[i][x] / (dn * h0Norm[i] * h0Norm[i]) } }
                // Adam (β 0.9/0.999, ε 1e-8), as torch.optim.Adam.
                for x in 0..<C {
                    adamM[i][x] = 0.9 * adamM[i][x] + 0.1 * g[x]
                    adamV[i][x] = 0.999 * adamV[i][x] + 0.001 * g[x] * g[x]
                    let mh = adamM[i][x] / (1 - pow(0.9, t)), vh = adamV[i][x] / (1 - pow(0.999, t))
                    delta[i][x] -= hp.vLR * mh / (vh.squareRoot() + 1e-8)
                }
                let maxNorm = hp.clampFactor * h0Norm[i]
                let n = sqrt(delta[i].reduce(0) { $0 + $1 * $1 })
                if n > maxNorm { for x in 0..<C { delta[i][x] *= maxNorm / n } }
            }
        }
        return ps.indices.map { i in
            var z = zip(h0[i], delta[i]).map { $0 + $1 }
            if let za = zActs {  // mid + N(m + δ) at the plain prompt's lookup row
                let zr = baseRow(i, 0, ps[i].lookup[0])
                let x = zip(perturbed[i], delta[i]).map { $0 + $1 }
                var y = [Float](repeating: 0, count: C), rs: Float = 0
                model.postFFN(layer: zl, x, &y, rstd: &rs, rows: 1)
                z = (0..<C).map { za.mid.ptr[zr * C + $0] + y[$0] }
            }
            return ZResult(z: z, h0Norm: h0Norm[i],
                    deltaNorm: sqrt(delta[i].reduce(0) { $0 + $1 * $1 }), losses: losses[i])
        }
    }
}
