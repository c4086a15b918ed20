// `alphaedit bench edit`: the edit engine's speed on the real model and data (issue 3's figures).
// v* runs once; AlphaEdit and MEMIT then apply the same targets to two copies of the model, so the
// difference between their times is the cost of the projection alone.
import Support
import Corpus
import Kernels
import Model
import Tokenization
import Editing
import Wire
import Cluster
import Foundation

public struct EditBenchmark {
    public struct Result: Codable, Sendable {
        public var edits: Int
        public var cov_sentences: Int
        public var cov_tokens: Int
        public var cov_tokens_per_s: Double
        public var z_seconds_per_request: Double
        public var alphaedit_apply_seconds: Double
        public var memit_apply_seconds: Double
        public var seconds_per_100_edits_alphaedit: Double
        public var seconds_per_100_edits_memit: Double
        public var alphaedit_overhead_pct: Double
        public var kept_fraction: [String: Double]
        public var threads: Int
        public var kernels = KernelChoice.current
    }

    public static func run(modelPath: String, hp: EditHyperparameters = EditHyperparameters(), corpus: String, facts: String, edits: Int, sentences: Int,
                           threads: Int, log: (String) -> Void) throws -> Result {
                let a = try LlamaModel(path: modelPath)
        let tok = try BPETokenizer(gguf: a.gguf)
        let t0 = ProcessStats.now()
        let stats = try CovarianceBuilder(model: a, tokenizer: tok, layers: hp.layers, workers: threads)
            .build(corpus: corpus, range: 0..<sentences)
        let covSeconds = ProcessStats.now() - t0
        let tokens = try stats.count(layer: hp.layers[0])
        log(String(format: "K0 statistics: %d tokens in %.1f s (%.0f tokens/s)", tokens, covSeconds, Double(tokens) / covSeconds))
        let proj = try NullSpaceProjectorSet(statistics: stats, hyperparameters: hp)
        let requests = try FactsFile.read(path: facts, limit: edits)
        let templates = try ContextTemplates.generate(model: a, tokenizer: tok, seed: 0)
        let alpha = try Editor(model: a, tokenizer: tok, hp: hp, method: .alphaedit, templates: templates,
                               projectors: proj, statistics: nil)
        let tz = ProcessStats.now()
        let zs = try alpha.targets(requests) { n in log("v*: \(n)/\(requests.count)") }
        let zSeconds = ProcessStats.now() - tz
        let oa = try alpha.apply(requests, zs: zs)
        let b = try LlamaModel(path: modelPath)
        let memit = try Editor(model: b, tokenizer: tok, hp: hp, method: .memit, templates: templates,
                               projectors: nil, statistics: stats)
        let om = try memit.apply(requests, zs: zs)
        let scale = 100 / Double(requests.count)
        var kept: [String: Double] = [:]
        for p in proj.projectors { kept[String(p.layer)] = p.keptFraction }
        return Result(edits: requests.count, cov_sentences: sentences, cov_tokens: tokens,
                      cov_tokens_per_s: Double(tokens) / covSeconds,
                      z_seconds_per_request: zSeconds / Double(requests.count),
                      alphaedit_apply_seconds: oa.totalSeconds, memit_apply_seconds: om.totalSeconds,
                      seconds_per_100_edits_alphaedit: (zSeconds + oa.totalSeconds) * scale,
                      seconds_per_100_edits_memit: (zSeconds + om.totalSeconds) * scale,
                      alphaedit_overhead_pct: 100 * (oa.totalSeconds - om.totalSeconds) / (zSeconds + om.totalSeconds),
                      kept_fraction: kept, threads: threads)
    }
}
