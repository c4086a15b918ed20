// `alphaedit bench nullspace`: how the null-space threshold τ trades preserved keys against efficacy
// on a real model. One batch of real requests; v* once (it does not depend on P); for each τ (absolute,
// or relative to each layer's largest eigenvalue) a fresh copy of the model gets the AlphaEdit update,
// and for each MEMIT λm the MEMIT update from the same v*; then efficacy on the rewrite prompts and
// ‖ΔW k‖/‖W k‖ on keys of sentences inside K₀ (the last token of the first `preserved` corpus
// sentences), with the spectrum of C₀ per edited layer. MEMIT at the λm whose efficacy equals
// AlphaEdit's is the comparison issue 10 asks for.
// Every token's key counts in two more figures per layer: the RMS change over K₀'s tokens relative to
// the weights' response, √(tr(ΔW C ΔWᵀ) / tr(W C Wᵀ)) with C = C₀, and the same with the C of held-out
// sentences (statistics of sentences outside K₀, `alphaedit cov --offset`), which K₀'s projector never
// saw; for AlphaEdit also the share of the held-out keys' energy in the kept directions,
// Σ_kept u_jᵀ C_h u_j / tr C_h. A null space that is one in the strict sense holds ≈ 0 of it in sample
// and out: the gap between the two is what a K₀ of too few sentences leaves (README, "K₀ size").
import Support
import Corpus
import Kernels
import Model
import Tokenization
import Editing
import Evaluation
import Foundation

public struct NullSpaceBenchmark {
    public struct Layer: Codable, Sendable {
        public var layer: Int
        public var eigenvalue_min: Double
        public var eigenvalue_median: Double
        public var eigenvalue_max: Double
        /// Tokens in K₀ at this layer.
        public var tokens: Int = 0
        /// Tokens of the held-out statistics at this layer (nil: none given).
        public var held_out_tokens: Int?
    }

    public struct Row: Codable, Sendable {
        /// "alphaedit" or "memit".
        public var method: String
        /// AlphaEdit: the absolute τ, or nil with `relative`; MEMIT: nil.
        public var tau: Double?
        /// AlphaEdit with τ_l = ρ · λ_max(C0_l).
        public var relative: Double?
        /// AlphaEdit with the null space at most this share of each layer's trace (NullSpaceRule.traceShare).
        public var trace_share: Double?
        public var memit_lambda: Double?
        /// Kept fraction of the key space per edited layer, in `layers` order.
        public var kept_fraction: [Double]
        /// Share of C0's trace in the kept directions per edited layer (empty for MEMIT).
        public var kept_trace_share: [Double] = []
        public var efficacy: Double
        public var preserved_change_mean: Double
        public var preserved_change_max: Double
        /// Per edited layer, √(tr(ΔW C₀ ΔWᵀ) / tr(W C₀ Wᵀ)): the RMS change over every K₀ token's key,
        /// relative to the weights' RMS response.
        public var k0_change: [Double] = []
        /// The same over the held-out sentences' keys (empty without them).
        public var held_out_change: [Double] = []
        /// AlphaEdit: per layer, the share of the held-out keys' energy (tr C_h) in the kept directions
        /// (`kept_trace_share` is the same for K₀'s own keys). Empty for MEMIT or without held-out keys.
        public var held_out_kept_trace_share: [Double] = []
    }

    public struct Result: Codable, Sendable {
        public var requests: Int
        public var sentences: Int
        /// Where K₀ and the held-out keys came from (the statistics' provenance, first line).
        public var k0_source: String = ""
        public var held_out_source: String?
        public var preserved_keys: Int
        public var efficacy_before: Double
        public var layers: [Layer]
        public var rows: [Row]
        public var kernels = KernelChoice.current
    }

    public static func run(modelPath: String, hp: EditHyperparameters = EditHyperparameters(), corpus: String, facts: String, requests count: Int, sentences: Int,
                           preserved: Int = 200, taus: [Double] = [2e-2, 1e-2, 5e-3, 2e-3, 1e-3], relative: [Double] = [], traceShares: [Double] = [],
                           memitLambdas: [Double] = [], threads: Int, statistics given: KeyStatistics? = nil, heldOut: KeyStatistics? = nil,
                           log: (String) -> Void) throws -> Result {
        let base = try LlamaModel(path: modelPath)
        let tok = try BPETokenizer(gguf: base.gguf)
        var t0 = ProcessStats.now()
        func phase(_ what: String) { let t = ProcessStats.now(); log(String(format: "%@ (%.0f s)", what, t - t0)); t0 = t }
        for s in [given, heldOut].compactMap({ $0 }) where s.layers != hp.layers || s.f != base.config.ffn {
            throw KeyStatisticsError.invalidShape("layers \(LayerList.format(s.layers)), f \(s.f) for a run at layers "
                                          + "\(LayerList.format(hp.layers)), f \(base.config.ffn)")
        }
        let stats: KeyStatistics
        if let given { stats = given } else {
            log("K₀ statistics of \(sentences) sentences at layers \(hp.layers.map(String.init).joined(separator: ","))")
            stats = try BLAS.singleThreaded {
                try CovarianceBuilder(model: base, tokenizer: tok, layers: hp.layers, workers: threads)
                    .build(corpus: corpus, range: 0..<sentences)
            }
        }
        BLAS.setThreads(threads)
        phase("K₀ ready; eigendecompositions of C₀")
        // One decomposition per layer serves every τ and ρ of the sweep.
        let eigen = try C0Eigen.of(stats)
        // The second moments every token's key is weighed by (C₀, and C_h of the held-out sentences), and
        // the held-out energy along each eigenvector of C₀, which gives the held-out share of any kept set.
        let c0 = try hp.layers.map { try stats.mean(layer: $0) }
        let ch = try heldOut.map { h in try hp.layers.map { try h.mean(layer: $0) } }
        let heldEnergy = try ch.map { c in try zip(c, eigen).map { try directionEnergies(c: $0.0, eigen: $0.1) } }
        if heldOut != nil { phase("held-out energy along C₀'s eigenvectors") }
        phase("eigendecompositions done; v* of \(count) requests")
        let requests = try FactsFile.read(path: facts, limit: count)
        let templates = try ContextTemplates.generate(model: base, tokenizer: tok, seed: 0)
        let keys = try preservedKeys(base, tok, corpus: corpus, layers: hp.layers, count: preserved)
        let before = try hp.layers.map { try base.editableDown($0).array }
        let pre = try TargetScorer(model: base, tokenizer: tok).efficacy(requests)
        let first = try NullSpaceProjectorSet(eigen: eigen, rule: hp.nullSpaceRule, provenance: stats.provenance)
        let zs = try Editor(model: base, tokenizer: tok, hp: hp, method: .alphaedit, templates: templates,
                            projectors: first, statistics: nil).targets(requests)
        let layers = try first.projectors.map { p in
            Layer(layer: p.layer, eigenvalue_min: p.spectrum.min, eigenvalue_median: p.spectrum.median, eigenvalue_max: p.spectrum.max,
                  tokens: try stats.count(layer: p.layer), held_out_tokens: try heldOut?.count(layer: p.layer))
        }
        let d = base.config.hidden, f = base.config.ffn
        // tr(W C Wᵀ) of the unedited weights, the denominators of the relative RMS changes.
        let w0k0 = try zip(before, c0).map { try quadraticTrace($0.0, d: d, f: f, $0.1) }
        let w0h = try ch.map { c in try zip(before, c).map { try quadraticTrace($0.0, d: d, f: f, $0.1) } }
        phase("v* done")
        log(String(format: "τ sweep: %d requests, K₀ of %d sentences, efficacy before %.1f", requests.count, sentences, pre))
        var rows: [Row] = []
        // One configuration: a fresh model, the update from the shared v*, then the two figures.
        func measure(_ method: EditMethod, _ proj: NullSpaceProjectorSet?, _ h: EditHyperparameters) throws -> Row {
            let m = try LlamaModel(path: modelPath)
            _ = try Editor(model: m, tokenizer: tok, hp: h, method: method, templates: templates,
                           projectors: proj, statistics: method == .memit ? stats : nil).apply(requests, zs: zs)
            let post = try TargetScorer(model: m, tokenizer: tok).efficacy(requests)
            var ratios: [Double] = []
            var row = Row(method: method == .memit ? "memit" : "alphaedit", kept_fraction: [], efficacy: post,
                          preserved_change_mean: 0, preserved_change_max: 0)
            for (li, l) in hp.layers.enumerated() {
                let after = try m.editableDown(l).array
                ratios += relativeChange(before[li], after, keys[l] ?? [], d: d, f: f)
                let delta = zip(after, before[li]).map { $0 - $1 }
                row.k0_change.append((try quadraticTrace(delta, d: d, f: f, c0[li]) / w0k0[li]).squareRoot())
                if let ch, let w0h { row.held_out_change.append((try quadraticTrace(delta, d: d, f: f, ch[li]) / w0h[li]).squareRoot()) }
                if let proj, let e = heldEnergy?[li] {
                    let r = proj.projectors[li].keptDimension
                    row.held_out_kept_trace_share.append(e.prefix(r).reduce(0, +) / max(e.reduce(0, +), .leastNormalMagnitude))
                }
            }
            row.preserved_change_mean = ratios.reduce(0, +) / Double(max(1, ratios.count))
            row.preserved_change_max = ratios.max() ?? .nan
            return row
        }
        let rules = taus.map { NullSpaceRule.absolute($0) } + relative.map { .relative($0) } + traceShares.map { .traceShare($0) }
        for rule in rules {
            let proj = try NullSpaceProjectorSet(eigen: eigen, rule: rule, provenance: stats.provenance)
            var row = try measure(.alphaedit, proj, hp)
            row.kept_fraction = proj.projectors.map(\.keptFraction)
            row.kept_trace_share = proj.projectors.map(\.keptTraceShare)
            switch rule {
            case .absolute(let t): row.tau = t
            case .relative(let r): row.relative = r
            case .traceShare(let s): row.trace_share = s
            }
            rows.append(row)
            phase(String(format: "%@: efficacy %.1f, ‖ΔW k‖/‖W k‖ mean %.2e", rule.description, row.efficacy, row.preserved_change_mean))
        }
        for lambda in memitLambdas {
            var h = hp
            h.memitLambda = lambda
            var row = try measure(.memit, nil, h)
            row.memit_lambda = lambda
            rows.append(row)
            phase(String(format: "MEMIT λm %g: efficacy %.1f, ‖ΔW k‖/‖W k‖ mean %.2e", lambda, row.efficacy, row.preserved_change_mean))
        }
        func firstLine(_ s: String) -> String { String(s.split(separator: "\n", maxSplits: 1, omittingEmptySubsequences: false).first ?? "") }
        return Result(requests: requests.count, sentences: sentences, k0_source: firstLine(stats.provenance),
                      held_out_source: heldOut.map { firstLine($0.provenance) }, preserved_keys: preserved, efficacy_before: pre,
                      layers: layers, rows: rows)
    }

    /// tr(A C Aᵀ) for A (d×f floats, row-major) and C (f×f): Σ over keys k of ‖A k‖² / n when C = Σ k kᵀ / n.
    public static func quadraticTrace(_ a: [Float], d: Int, f: Int, _ c: Matrix64) throws -> Double {
        let am = try Matrix64(rows: d, cols: f, values: a.map(Double.init))
        let ac = try am.times(c)
        var s = 0.0
        for i in 0..<ac.values.count { s += ac.values[i] * am.values[i] }
        return s
    }

    /// u_jᵀ C u_j for every eigenvector u_j of `eigen` (ascending eigenvalues), summing to tr C: C's
    /// energy along each direction of another matrix's eigenbasis.
    public static func directionEnergies(c: Matrix64, eigen: C0Eigen) throws -> [Double] {
        let n = eigen.values.count
        let u = try Matrix64(rows: n, cols: n, values: eigen.vectors)
        let cu = try c.times(u)
        var e = [Double](repeating: 0, count: n)
        for i in 0..<n { for j in 0..<n { e[j] += u.values[i * n + j] * cu.values[i * n + j] } }
        return e
    }

    /// The key (MLP down-projection input) of each sentence's last token at every edited layer.
    static func preservedKeys(_ m: LlamaModel, _ tok: BPETokenizer, corpus: String, layers: [Int], count: Int) throws -> [Int: [[Float]]] {
        let sentences = try SentenceCorpus.read(path: corpus, limit: count).map { tok.encode($0, addSpecial: true) }.filter { !$0.isEmpty }
        let batch = TokenBatch(sentences)
        var keys: [Int: [[Float]]] = [:]
        var hooks = ForwardHooks()
        hooks.keyLayers = Set(layers)
        hooks.onKeys = { l, k in
            for r in batch.lastRows { keys[l, default: []].append(Array(UnsafeBufferPointer(start: k + r * m.config.ffn, count: m.config.ffn))) }
        }
        _ = try m.forward(batch, hooks: hooks, upTo: layers.last ?? 0)
        return keys
    }

    /// ‖(W₁ − W₀) k‖ / ‖W₀ k‖ for each key (W row-major d×f).
    static func relativeChange(_ w0: [Float], _ w1: [Float], _ keys: [[Float]], d: Int, f: Int) -> [Double] {
        keys.map { k in
            var dn = 0.0, wn = 0.0
            for r in 0..<d {
                var a = 0.0, b = 0.0
                for j in 0..<f { a += Double(w1[r * f + j] - w0[r * f + j]) * Double(k[j]); b += Double(w0[r * f + j]) * Double(k[j]) }
                dn += a * a; wn += b * b
            }
            return (dn / wn).squareRoot()
        }
    }
}
