// One batch of edits in one process (docs/algorithm.md §4): v* for every request, then for each edited layer
// in ascending order: keys on the model as edited so far, the residual shared over the layers still to
// go, the AlphaEdit (or MEMIT) update, applied before the next layer; finally Cp += K1K1ᵀ.
import Support
import Corpus
import GGUF
import Tokenization
import Kernels
import Model
import Foundation

public enum EditMethod: String, Codable, Sendable, CaseIterable {
    case alphaedit, memit
}

public enum EditError: Error, CustomStringConvertible {
    case missingProjector(layer: Int)
    case missingCovariance(layer: Int)
    case layerMismatch(String)
    /// MEMIT's system λm C₀ + Cp + K₁K₁ᵀ failed Cholesky at `layer`: C₀ built from `keys` key vectors
    /// (fewer than `f` cannot span the key space) or damaged statistics.
    case memitSystemSingular(layer: Int, keys: Int, f: Int, lambdaM: Double)
    /// kept_c0_weight set for a method other than AlphaEdit with its projection.
    case keptC0WeightNeedsProjection(String)
    public var description: String {
        switch self {
        case .missingProjector(let l): "no null-space projector for edited layer \(l): run `alphaedit cov` for these layers"
        case .missingCovariance(let l): "no K0 statistics for edited layer \(l) (MEMIT needs C0)"
        case .layerMismatch(let d): "edited layers do not match: \(d)"
        case .keptC0WeightNeedsProjection(let m): "kept_c0_weight (--kept-c0-weight) applies to AlphaEdit with its projection, not to \(m)"
        case let .memitSystemSingular(l, n, f, lm):
            "layer \(l): MEMIT's system λm C0 + Cp + K1K1ᵀ (λm \(lm), order \(f)) is not positive definite: "
                + (n < f ? "the K0 statistics hold \(n) keys for \(f) dimensions, so C0 is singular; build them from more sentences (cov_sentences)"
                         : "the K0 statistics (\(n) keys) do not span the key space or are damaged; rebuild them with `alphaedit cov`")
                + ", or edit with --method alphaedit"
        }
    }
}

/// What a batch did: the weight deltas (d×f float32 per layer) and figures for the log.
public struct BatchOutcome: Sendable {
    public var deltas: [Int: [Float]]
    public var z: [ZResult]
    public var zSeconds: Double
    public var solveSeconds: Double
    public var totalSeconds: Double
    /// What the filter stage did, per layer (PRUNE: the accumulated update's largest σ against the
    /// bound; RECT: the entries kept); empty without a filter.
    public var filterNotes: [String] = []
    /// The keys this batch added to the sequential state, per layer in the order added (BatchKeys.swift).
    public var keys: [(layer: Int, keys: Matrix64)] = []
    /// Per request: the share of v*'s change that the update made, at the last edited layer's output on the
    /// request's prompt, 1 − ‖z − h_after‖ / ‖z − h_before‖ (1: z reached; 0: nothing moved; below 0: moved
    /// away). An edit that does not land with a small v* loss shows here whether the solve fell short of z.
    public var reached: [Double] = []

    /// "v* change reached at layer L: median 97 %, lowest 41 % (request 3)", or nil when nothing was measured.
    public func reachedSummary(layer: Int, firstRequest: Int = 1) -> String? {
        guard !reached.isEmpty else { return nil }
        let median = ProcessStats.median(reached)
        let low = reached.indices.min { reached[$0] < reached[$1] }!
        return String(format: "v* change reached at layer %d: median %.0f %%", layer, 100 * median)
            + (reached.count > 1 ? String(format: ", lowest %.0f %% (request %d)", 100 * reached[low], firstRequest + low) : "")
    }
}

public final class Editor {
    public let model: LlamaModel
    public let tokenizer: BPETokenizer
    public let hp: EditHyperparameters
    public let method: EditMethod
    public let templates: ContextTemplates
    public var state: SequentialState
    let projectors: NullSpaceProjectorSet?
    /// The projectors as a file, read a layer at a time when the solve reaches it (instead of `projectors`).
    let projectorFile: NullSpaceProjectorFile?
    /// Whether the projectors are read from a file a layer at a time (not held in memory).
    public var readsProjectorsFromFile: Bool { projectorFile != nil }
    /// MEMIT's statistics: each layer's C₀ = S / n is made when its solve needs it, not kept.
    let statistics: KeyStatistics?
    /// Requests per v* batch (several requests share one forward/backward; results are per request).
    public var zBatch = 8
    /// PRUNE's σ̄ per layer (largest singular value of the unedited ffn_down).
    var pruneBounds: [Int: Double] = [:]

    public init(model: LlamaModel, tokenizer: BPETokenizer, hp: EditHyperparameters, method: EditMethod,
                templates: ContextTemplates, projectors: NullSpaceProjectorSet?, statistics: KeyStatistics?,
                state: SequentialState? = nil, projectorFile: NullSpaceProjectorFile? = nil) throws {
        self.model = model; self.tokenizer = tokenizer; self.hp = hp; self.method = method; self.templates = templates
        self.projectors = projectors
        self.projectorFile = projectorFile
        if hp.methodProblem(method) != nil { throw EditError.keptC0WeightNeedsProjection(hp.effectiveStages.name(for: method)) }
        for l in hp.layers {
            if hp.effectiveStages.projects(method) {
                let known = projectorFile?.layers.contains(l) ?? ((try? projectors?.projector(layer: l)) != nil)
                guard known else { throw EditError.missingProjector(layer: l) }
            }
            if method == .memit {
                guard let s = statistics, let n = try? s.count(layer: l), n > 0 else { throw EditError.missingCovariance(layer: l) }
            }
        }
        self.statistics = method == .memit ? statistics : nil
        let st = try state ?? SequentialState(layers: hp.layers, f: model.config.ffn)
        guard st.layers == hp.layers else { throw EditError.layerMismatch("state has \(st.layers), settings have \(hp.layers)") }
        self.state = st
    }

    /// v* for all requests in fixed chunks of `zBatch`, up to `BLAS.configuredThreads` chunks side by
    /// side, each on one BLAS thread (as the workers run them; measured: 2 workers × 1 thread did 34.1
    /// requests/min against 26.9 for one process on 2 BLAS threads).
    public func targets(_ requests: [EditRequest], progress: (Int) -> Void = { _ in }) throws -> [ZResult] {
        let cz = ComputeZ(model: model, tokenizer: tokenizer, hp: hp)
        let chunks = stride(from: 0, to: requests.count, by: max(1, zBatch)).map {
            Array(requests[$0..<min($0 + max(1, zBatch), requests.count)])
        }
        model.ensureRoPE(model.config.context + 2)  // grown before the threads read it
        var results = [[ZResult]](repeating: [], count: chunks.count)
        var done = 0
        let lock = NSLock()
        try Parallel.forEach(chunks.count, threads: BLAS.configuredThreads) { i in
            let r = try cz.run(chunks[i], templates: templates)
            lock.withLock {
                results[i] = r
                done += r.count
                progress(done)
            }
        }
        return results.flatMap { $0 }
    }

    /// Applies one batch to the model's weights and the sequential state.
    public func apply(_ requests: [EditRequest], zs precomputed: [ZResult]? = nil,
                      progress: (Int) -> Void = { _ in }) throws -> BatchOutcome {
        let t0 = ProcessStats.now()
        var zs = try precomputed ?? targets(requests, progress: progress)
        if hp.effectiveStages.targets == .nas { zs = try anchorNorms(zs, requests) }
        let tz = ProcessStats.now()
        let C = model.config.hidden, u = requests.count, m = hp.layers.count
        let reader = KeyReader(model: model, tokenizer: tokenizer)
        var z = [Double](repeating: 0, count: C * u)
        for (i, r) in zs.enumerated() { for j in 0..<C { z[j * u + i] = Double(r.z[j]) } }
        var deltas: [Int: [Float]] = [:]
        var solve = 0.0
        var notes: [String] = []
        var keys: [Int: Matrix64] = [:]
        var before: Matrix64?
        for (i, l) in hp.layers.enumerated() {
            let post = model.hasPostFFNNorm
            let (k1, h, mOut) = try reader.read(requests, layer: l, templates: templates, outputLayer: hp.zLayer, mlpOutputs: post)
            keys[l] = k1
            guard let h else { continue }
            if i == 0 { before = h }
            // R = (Z − H) / (m − i): the missing residual shared over the layers still to go.
            var rv = [Double](repeating: 0, count: C * u)
            for j in 0..<(C * u) { rv[j] = (z[j] - h.values[j]) / Double(m - i) }
            // Behind a post-FFN norm, the change of ffn_down's output that makes that residual (EditPoint.swift).
            if post, let mOut {
                for q in 0..<u {
                    let col = (0..<C).map { rv[$0 * u + q] }, mq = (0..<C).map { mOut.values[$0 * u + q] }
                    let t = model.ffnDownTarget(layer: l, mlpOut: mq, change: col)
                    for j in 0..<C { rv[j * u + q] = t[j] }
                }
            }
            let r = try Matrix64(rows: C, cols: u, values: rv)
            let ts = ProcessStats.now()
            var dw: Matrix64
            let stages = hp.effectiveStages
            switch method {
            case .alphaedit:
                if stages.projects(method) {
                    let p = try projector(layer: l)
                    dw = try EditSolver.alphaEdit(residual: r, keys: k1, projector: p,
                                                  previousKeys: try state.previousKeys(layer: l), lambda: hp.lambda,
                                                  keptC0Weight: hp.keptC0Weight ?? 0)
                } else {  // every direction: Û = I
                    dw = try EditSolver.alphaEdit(residual: r, keys: k1, basis: Matrix64.identity(k1.rows),
                                                  previousKeys: try state.previousKeys(layer: l), lambda: hp.lambda)
                }
            case .memit:
                guard let stats = statistics else { throw EditError.missingCovariance(layer: l) }
                let c = try stats.mean(layer: l)
                do {
                    dw = try EditSolver.memit(residual: r, keys: k1, c0: c, previousKeys: try state.previousKeys(layer: l),
                                              lambdaM: hp.memitLambda)
                } catch LinearAlgebraError.notPositiveDefinite {
                    throw EditError.memitSystemSingular(layer: l, keys: try stats.count(layer: l), f: k1.rows, lambdaM: hp.memitLambda)
                }
                if stages.projects(method) {  // MEMIT+P
                    dw = try StageMath.project(dw, basis: try projector(layer: l).basis)
                }
            }
            let note: String?
            (dw, note) = try filter(dw, layer: l, stages: stages)
            if let note { notes.append("layer \(l): \(note)") }
            solve += ProcessStats.now() - ts
            let d32 = dw.values.map { Float($0) }
            try model.applyDelta(layer: l, delta: d32)
            deltas[l] = d32
        }
        // The keys the sequential state keeps are those of the edited model. Layer l's keys (ffn_down's
        // input) depend only on the layers below l and on l's own attention and up/gate projections, so
        // with the layers in increasing order the keys read before l's update already are the edited
        // model's: the same forward, the same bits (EditorKeysTests: equal to a fresh read after the batch).
        // This saves a forward per layer (on Qwen, layers 2–6: 25 of 60 block passes of a batch's reads).
        let increasing = zip(hp.layers, hp.layers.dropFirst()).allSatisfy { $0 < $1 }
        var added: [(layer: Int, keys: Matrix64)] = []
        for l in hp.layers {
            let k1 = increasing ? keys[l] : nil
            let k = try k1 ?? reader.read(requests, layer: l, templates: templates).keys
            try state.add(layer: l, keys: k)
            added.append((l, k))
        }
        var reached: [Double] = []
        if let before {
            let after = try reader.outputs(requests, layer: hp.zLayer)
            for q in 0..<u {
                var far = 0.0, left = 0.0
                for j in 0..<C {
                    let zj = z[j * u + q]
                    far += (zj - before.values[j * u + q]) * (zj - before.values[j * u + q])
                    left += (zj - after.values[j * u + q]) * (zj - after.values[j * u + q])
                }
                reached.append(far > 0 ? 1 - (left / far).squareRoot() : 1)
            }
        }
        let t1 = ProcessStats.now()
        return BatchOutcome(deltas: deltas, z: zs, zSeconds: tz - t0, solveSeconds: solve, totalSeconds: t1 - t0,
                            filterNotes: notes, keys: added, reached: reached)
    }
}

extension Editor {
    /// Layer `l`'s projector: read from the file now when the editor has one, else from the set in memory.
    func projector(layer l: Int) throws -> NullSpaceProjector {
        if let file = projectorFile { return try file.projector(layer: l) }
        guard let p = try projectors?.projector(layer: l) else { throw EditError.missingProjector(layer: l) }
        return p
    }

    /// The filter stage (EditStages.swift) on one layer's solved ΔW; what it returns is applied.
    func filter(_ dw: Matrix64, layer l: Int, stages: EditStages) throws -> (Matrix64, String?) {
        switch stages.filter {
        case .none:
            return (dw, nil)
        case .rect:
            let w = try model.editableDown(l)
            let out = try StageMath.rect(dw, weights: Array(UnsafeBufferPointer(start: w.ptr, count: w.count)), fraction: stages.rectFraction)
            let kept = out.values.reduce(0) { $0 + ($1 != 0 ? 1 : 0) }, nonzero = dw.values.reduce(0) { $0 + ($1 != 0 ? 1 : 0) }
            return (out, "RECT kept \(kept) of \(nonzero) entries")
        case .prune:
            // W0 from the file (the weights in memory hold the edits); the accumulated update so far is
            // W − W0, the filtered total F(W − W0 + ΔW), and this batch applies their difference.
            let w0 = try model.gguf.floats(GGUFNames.ffnDown(l))
            let w = try model.editableDown(l)
            let d = model.config.hidden, f = model.config.ffn
            let bound = try originalBound(layer: l, w0: w0)
            var acc = try Matrix64(rows: d, cols: f, values: (0..<w.count).map { Double(w.ptr[$0]) - Double(w0[$0]) })
            let applied = acc
            acc = try acc.combined(1, 1, dw)
            let (pruned, largest, shrunk) = try StageMath.pruneReporting(acc, bound: bound)
            return (try pruned.combined(1, -1, applied),
                    String(format: "PRUNE: accumulated update's largest σ %.3g, bound σ̄ %.3g, %d shrunk", largest, bound, shrunk))
        }
    }

    /// NAS (EditStages.swift): each z rescaled to ‖h⁰‖, the unedited model's output at the z layer for
    /// the request, read with the edited layers' file weights swapped in for one forward.
    func anchorNorms(_ zs: [ZResult], _ requests: [EditRequest]) throws -> [ZResult] {
        var saved: [Int: [Float]] = [:]
        for l in hp.layers {
            let w = try model.editableDown(l), w0 = try model.gguf.floats(GGUFNames.ffnDown(l))
            guard w0.count == w.count else { throw EditError.layerMismatch("ffn_down of layer \(l) in the file has \(w0.count) values") }
            saved[l] = Array(UnsafeBufferPointer(start: w.ptr, count: w.count))
            w0.withUnsafeBufferPointer { w.ptr.update(from: $0.baseAddress!, count: w.count) }
        }
        defer {
            for (l, v) in saved { v.withUnsafeBufferPointer { model.weights.layers[l].down.ptr.update(from: $0.baseAddress!, count: v.count) } }
        }
        let (_, h, _) = try KeyReader(model: model, tokenizer: tokenizer)
            .read(requests, layer: hp.layers[0], templates: templates, outputLayer: hp.zLayer)
        guard let h else { return zs }
        let u = requests.count
        return zs.enumerated().map { i, r in
            var out = r
            let ref = (0..<h.rows).reduce(0.0) { $0 + h.values[$1 * u + i] * h.values[$1 * u + i] }.squareRoot()
            let norm = r.z.reduce(0.0) { $0 + Double($1) * Double($1) }.squareRoot()
            if norm > 0 { out.z = r.z.map { Float(Double($0) * ref / norm) } }
            return out
        }
    }

    /// σ̄ of layer l's unedited ffn_down, computed once.
    private func originalBound(layer l: Int, w0: [Float]) throws -> Double {
        if let b = pruneBounds[l] { return b }
        let b = try StageMath.largestSingularValue(w0, rows: model.config.hidden, cols: model.config.ffn)
        pruneBounds[l] = b
        return b
    }
}

extension LlamaModel {
    /// W_l += ΔW (d×f, the `ffn_down` layout) and retires the layer's quantized view.
    public func applyDelta(layer l: Int, delta: [Float]) throws {
        guard l >= 0, l < config.layers else { throw ModelError.layerOutOfRange(l, layers: config.layers) }
        let w = try editableDown(l)
        guard delta.count == w.count else {
            throw ModelError.badTensorShape(name: GGUFNames.ffnDown(l), expected: [config.ffn, config.hidden], found: [delta.count])
        }
        for i in 0..<w.count { w.ptr[i] += delta[i] }
        try markEdited(layer: l)
    }
}

extension Editor {
    /// One batch of a campaign, the loop that `EditCampaign` and `EvalCampaign` share: v* (by
    /// `remoteTargets`, the workers, when given; else here), the solve here, then `commit` with the
    /// batch's deltas, where the caller records the batch (the state directory) and brings its workers
    /// to the new weights. When the workers ran v*, its time is the wait for them.
    public func editBatch(_ batch: [EditRequest],
                          remoteTargets: ((_ progress: (Int) -> Void) throws -> [ZResult])?,
                          progress: (Int) -> Void,
                          commit: (BatchDeltas, BatchOutcome) throws -> Void) throws -> BatchOutcome {
        let t0 = ProcessStats.now()
        let zs = try remoteTargets?(progress)
        var out = try apply(batch, zs: zs, progress: progress)
        if zs != nil {
            out.zSeconds = ProcessStats.now() - t0 - out.totalSeconds
            out.totalSeconds += out.zSeconds
        }
        try commit(BatchDeltas(rows: model.config.hidden, cols: model.config.ffn, deltas: out.deltas), out)
        return out
    }
}
