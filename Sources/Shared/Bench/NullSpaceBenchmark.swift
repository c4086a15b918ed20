// `alphaedit bench nullspace`: how the null-space threshold τ trades preserved keys against efficacy
// on a real model. One batch of real requests; v* once (it does not depend on P); for each τ (absolute,
// or relative to each layer's largest eigenvalue) a fresh copy of the model gets the AlphaEdit update,
// and for each MEMIT λm the MEMIT update from the same v*; then efficacy on the rewrite prompts and
// ‖ΔW k‖/‖W k‖ on keys of sentences inside K₀ (the last token of the first `preserved` corpus
// sentences), with the spectrum of C₀ per edited layer. MEMIT at the λm whose efficacy equals
// AlphaEdit's is the comparison issue 10 asks for.
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
    }

    public struct Result: Codable, Sendable {
        public var requests: Int
        public var sentences: Int
        public var preserved_keys: Int
        public var efficacy_before: Double
        public var layers: [Layer]
        public var rows: [Row]
        public var kernels = KernelChoice.current
    }

    public static func run(modelPath: String, hp: EditHyperparameters = EditHyperparameters(), corpus: String, facts: String, requests count: Int, sentences: Int,
                           preserved: Int = 200, taus: [Double] = [2e-2, 1e-2, 5e-3, 2e-3, 1e-3], relative: [Double] = [], traceShares: [Double] = [],
                           memitLambdas: [Double] = [], threads: Int,
                           log: (String) -> Void) throws -> Result {
        let base = try LlamaModel(path: modelPath)
        let tok = try BPETokenizer(gguf: base.gguf)
        var t0 = ProcessStats.now()
        func phase(_ what: String) { let t = ProcessStats.now(); log(String(format: "%@ (%.0f s)", what, t - t0)); t0 = t }
        log("K₀ statistics of \(sentences) sentences at layers \(hp.layers.map(String.init).joined(separator: ","))")
        let stats = try BLAS.singleThreaded {
            try CovarianceBuilder(model: base, tokenizer: tok, layers: hp.layers, workers: threads)
                .build(corpus: corpus, range: 0..<sentences)
        }
        BLAS.setThreads(threads)
        phase("K₀ done; eigendecompositions of C₀")
        // One decomposition per layer serves every τ and ρ of the sweep.
        let eigen = try C0Eigen.of(stats)
        phase("eigendecompositions done; v* of \(count) requests")
        let requests = try FactsFile.read(path: facts, limit: count)
        let templates = try ContextTemplates.generate(model: base, tokenizer: tok, seed: 0)
        let keys = try preservedKeys(base, tok, corpus: corpus, layers: hp.layers, count: preserved)
        let before = hp.layers.map { base.weights.layers[$0].down.array }
        let pre = try TargetScorer(model: base, tokenizer: tok).efficacy(requests)
        let first = try NullSpaceProjectorSet(eigen: eigen, rule: hp.nullSpaceRule, provenance: stats.provenance)
        let zs = try Editor(model: base, tokenizer: tok, hp: hp, method: .alphaedit, templates: templates,
                            projectors: first, statistics: nil).targets(requests)
        let layers = first.projectors.map { p in
            Layer(layer: p.layer, eigenvalue_min: p.spectrum.min, eigenvalue_median: p.spectrum.median, eigenvalue_max: p.spectrum.max)
        }
        phase("v* done")
        log(String(format: "τ sweep: %d requests, K₀ of %d sentences, efficacy before %.1f", requests.count, sentences, pre))
        var rows: [Row] = []
        // One configuration: a fresh model, the update from the shared v*, then the two figures.
        func measure(_ method: EditMethod, _ proj: NullSpaceProjectorSet?, _ h: EditHyperparameters) throws -> (Double, Double, Double) {
            let m = try LlamaModel(path: modelPath)
            _ = try Editor(model: m, tokenizer: tok, hp: h, method: method, templates: templates,
                           projectors: proj, statistics: method == .memit ? stats : nil).apply(requests, zs: zs)
            let post = try TargetScorer(model: m, tokenizer: tok).efficacy(requests)
            var ratios: [Double] = []
            for (li, l) in hp.layers.enumerated() {
                ratios += relativeChange(before[li], m.weights.layers[l].down.array, keys[l] ?? [], d: m.config.hidden, f: m.config.ffn)
            }
            return (post, ratios.reduce(0, +) / Double(max(1, ratios.count)), ratios.max() ?? .nan)
        }
        let rules = taus.map { NullSpaceRule.absolute($0) } + relative.map { .relative($0) } + traceShares.map { .traceShare($0) }
        for rule in rules {
            let proj = try NullSpaceProjectorSet(eigen: eigen, rule: rule, provenance: stats.provenance)
            let (post, mean, mx) = try measure(.alphaedit, proj, hp)
            var row = Row(method: "alphaedit", kept_fraction: proj.projectors.map(\.keptFraction),
                          kept_trace_share: proj.projectors.map(\.keptTraceShare), efficacy: post, preserved_change_mean: mean, preserved_change_max: mx)
            switch rule {
            case .absolute(let t): row.tau = t
            case .relative(let r): row.relative = r
            case .traceShare(let s): row.trace_share = s
            }
            rows.append(row)
            phase(String(format: "%@: efficacy %.1f, ‖ΔW k‖/‖W k‖ mean %.2e", rule.description, post, mean))
        }
        for lambda in memitLambdas {
            var h = hp
            h.memitLambda = lambda
            let (post, mean, mx) = try measure(.memit, nil, h)
            rows.append(Row(method: "memit", memit_lambda: lambda, kept_fraction: [], efficacy: post,
                            preserved_change_mean: mean, preserved_change_max: mx))
            phase(String(format: "MEMIT λm %g: efficacy %.1f, ‖ΔW k‖/‖W k‖ mean %.2e", lambda, post, mean))
        }
        return Result(requests: requests.count, sentences: sentences, preserved_keys: preserved, efficacy_before: pre,
                      layers: layers, rows: rows)
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
