// Issue 3 (b) on this model: how the null-space threshold τ trades preserved keys against efficacy.
// One batch of real requests; v* once (it does not depend on P); for each τ a fresh model gets the
// AlphaEdit update, then efficacy on the rewrite prompts and ‖ΔW k‖/‖W k‖ on keys of sentences inside
// K₀ are printed. Printed, not asserted. Run with
//   ALPHAEDIT_BENCH=1 swift test -c release --filter NullSpaceSweepBenchmarks
// (ALPHAEDIT_BENCH_REQUESTS, ALPHAEDIT_BENCH_SENTENCES change the defaults 20, 1000).
import Foundation
import Shared
import XCTest

final class NullSpaceSweepBenchmarks: XCTestCase {
    func env(_ k: String, _ d: Int) -> Int { ProcessInfo.processInfo.environment[k].flatMap { Int($0) } ?? d }

    override func setUpWithError() throws {
        guard ProcessInfo.processInfo.environment["ALPHAEDIT_BENCH"] == "1" else {
            throw XCTSkip("set ALPHAEDIT_BENCH=1 to run the null-space sweep")
        }
    }

    func testThresholdSweep() throws {
        let modelPath = try RepoPaths.requireModel()
        let corpus = try RepoPaths.sharedFile("data/wiki-triplets/trex.jsonl").path
        let facts = try RepoPaths.sharedFile("data/pararel-cf/dev.jsonl").path
        let base = try LlamaModel(path: modelPath)
        let tok = try BPETokenizer(gguf: base.gguf)
        let hp = EditHyperparameters()
        let nSentences = env("ALPHAEDIT_BENCH_SENTENCES", 1000)
        BLAS.setThreads(1)
        let stats = try CovarianceBuilder(model: base, tokenizer: tok, layers: hp.layers, workers: 2)
            .build(corpus: corpus, range: 0..<nSentences)
        BLAS.setThreads(2)
        let requests = try FactsFile.read(path: facts, limit: env("ALPHAEDIT_BENCH_REQUESTS", 20))
        let templates = try ContextTemplates.generate(model: base, tokenizer: tok, seed: 0)

        // Preserved keys: the last token of 200 sentences that went into K₀, at every edited layer.
        let keys = try preservedKeys(base, tok, corpus: corpus, layers: hp.layers, count: 200)
        let before = hp.layers.map { base.weights.layers[$0].down.array }
        let pre = try TargetScorer(model: base, tokenizer: tok).efficacy(requests)

        let probe = try Editor(model: base, tokenizer: tok, hp: hp, method: .alphaedit, templates: templates,
                               projectors: try NullSpaceProjectorSet(statistics: stats, threshold: hp.nullSpaceThreshold),
                               statistics: nil)
        let zs = try probe.targets(requests)
        print(String(format: "τ sweep: %d requests, K₀ of %d sentences, efficacy before %.1f", requests.count, nSentences, pre))
        for tau in [2e-2, 1e-2, 5e-3, 2e-3, 1e-3] {
            let m = try LlamaModel(path: modelPath)
            let proj = try NullSpaceProjectorSet(statistics: stats, threshold: tau)
            let editor = try Editor(model: m, tokenizer: tok, hp: hp, method: .alphaedit, templates: templates,
                                    projectors: proj, statistics: nil)
            _ = try editor.apply(requests, zs: zs)
            let post = try TargetScorer(model: m, tokenizer: tok).efficacy(requests)
            var ratios: [Double] = []
            for (li, l) in hp.layers.enumerated() {
                ratios += relativeChange(before[li], m.weights.layers[l].down.array, keys[l] ?? [],
                                         d: m.config.hidden, f: m.config.ffn)
            }
            let kept = proj.projectors.map { String(format: "%.0f", 100 * $0.keptFraction) }.joined(separator: "/")
            print(String(format: "τ %.0e: kept %@ %%, efficacy %.1f, ‖ΔW k‖/‖W k‖ mean %.2e, max %.2e",
                         tau, kept, post, ratios.reduce(0, +) / Double(ratios.count), ratios.max() ?? .nan))
        }
    }

    func preservedKeys(_ m: LlamaModel, _ tok: BPETokenizer, corpus: String, layers: [Int], count: Int) throws -> [Int: [[Float]]] {
        let sentences = try SentenceCorpus.read(path: corpus, limit: count).map { tok.encode($0) }.filter { !$0.isEmpty }
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

    func relativeChange(_ w0: [Float], _ w1: [Float], _ keys: [[Float]], d: Int, f: Int) -> [Double] {
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
