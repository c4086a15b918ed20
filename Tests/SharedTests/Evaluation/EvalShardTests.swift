// Sharding is exact: evaluating records [0, n) in one go equals merging [0, k) and [k, n), generation
// included; and the KV-cached decoder equals the full recompute. Synthetic model (no download).
import Foundation
import Shared
import XCTest

final class EvalShardTests: XCTestCase {
    static func model(_ type: TensorEncoding = .f32, layers: Int = 2) throws -> (LlamaModel, BPETokenizer) {
        let m = try LlamaModel(gguf: GGUFFile(bytes: SyntheticModel.writer(SyntheticConfig(layers: layers, matrixType: type)).bytes()))
        return (m, try BPETokenizer(gguf: m.gguf))
    }

    static let records: [EditRequest] = (0..<5).map { i in
        EditRequest(caseID: 100 + i, prompt: "The capital of {} is", subject: ["France", "Paris", "the sea", "it", "an art"][i],
                    targetNew: ["Paris", "Rome", "the", "of", "at"][i], targetTrue: ["Rome", "Paris", "is", "in", "on"][i],
                    relationID: "P1", paraphrasePrompts: ["It is the capital of \(i)", "The sea of"],
                    neighborhoodPrompts: Array(["The cat is", "Paris is in", "A capital is"].prefix(1 + i % 3)),
                    generationPrompts: ["The capital is", "It is"])
    }

    func testShardedEvaluationEqualsSingleRun() throws {
        let (m, tok) = try Self.model()
        let snippets = AttributeSnippets(snippets: ["P1": ["Paris": ["the capital of France is Paris"], "Rome": ["Rome is the capital"]]])
        let ev = CounterFactEvaluator(model: m, tokenizer: tok, generation: GenerationSettings(maxTokens: 12, topK: 5, seed: 3),
                                      snippets: snippets)
        let recs = Self.records
        let whole = try ev.evaluate(recs)
        let k = 2
        let merged = try EvalShard.merge([try ev.evaluate(Array(recs[k...]), firstIndex: k),
                                          try ev.evaluate(Array(recs[..<k]), firstIndex: 0)])
        XCTAssertEqual(merged, whole, "merged shards must equal the single run exactly")
        XCTAssertEqual(merged.summary(), whole.summary())
        XCTAssertEqual(whole.records.map(\.index), [0, 1, 2, 3, 4])
        XCTAssertNotNil(whole.records[0].fluency)
        XCTAssertNotNil(whole.records[0].consistency)
        XCTAssertNil(whole.records[2].consistency, "no snippets for (P1, the)")
        // The seeds depend on the case id: different records, different samples.
        XCTAssertNotEqual(GenerationSettings().seed(caseID: 1, prompt: 0), GenerationSettings().seed(caseID: 2, prompt: 0))
        // A record without a true target is scored by token accuracy; its neighborhood prompts then need
        // their own answer, or it is refused with its index.
        var bad = recs[0]; bad.targetTrue = nil
        XCTAssertThrowsError(try ev.evaluate([bad], firstIndex: 9)) { XCTAssertEqual($0 as? EvalError, .noNeighborhoodAnswer(index: 9)) }
    }

    /// The context templates are sampled on a KV cache: the same texts as recomputing every step
    /// with `Generator`, for every start and two seeds, float32 and quantized weights.
    func testContextTemplatesOnTheCacheEqualRecomputed() throws {
        for type in [TensorEncoding.f32, .q8_0] {
            let (m, tok) = try Self.model(type)
            for seed: UInt64 in [0, 7] {
                let got = try ContextTemplates.generate(model: m, tokenizer: tok, seed: seed)
                let full = Generator(model: m, tokenizer: tok)
                let want = try ContextTemplates.generate(tokenizer: tok, seed: seed) { ids, maxTokens, sampler in
                    try full.generate(ids: ids, maxTokens: maxTokens, sampler: &sampler, stopAtEOS: false)
                }
                XCTAssertEqual(got, want, "\(type) seed \(seed)")
            }
        }
    }

    func testCachedDecoderEqualsFullRecompute() throws {
        for type in [TensorEncoding.f32, .q8_0] {
            let (m, tok) = try Self.model(type)
            let prompts = [tok.encode("The capital of France is"), tok.encode("It"), tok.encode("Paris is in the sea of")]
            var samplers = prompts.map { _ in Sampler(mode: .greedy) }
            let cached = try CachedGenerator(model: m, tokenizer: tok).generate(prompts: prompts, maxTokens: 15, samplers: &samplers, stopAtEOS: false)
            var maxDiff: Float = 0
            for (p, gen) in zip(prompts, cached) {
                var s = Sampler(mode: .greedy)
                let full = try Generator(model: m, tokenizer: tok).generate(ids: p, maxTokens: 15, sampler: &s, stopAtEOS: false)
                XCTAssertEqual(gen, full, "greedy continuation, \(type)")
                // Logits after the whole sequence: one cached prefill + steps vs one full forward.
                let seq = p + gen
                let cache = KVCache(config: m.config, capacity: seq.count)
                // Prefill in two chunks (the second attends to the cached first), then one token a step.
                let cut = max(1, p.count / 2)
                _ = try m.decode([Array(seq.prefix(cut))], caches: [cache])
                if cut < p.count { _ = try m.decode([Array(seq[cut..<p.count])], caches: [cache]) }
                var last: [Float] = []
                for id in seq.dropFirst(p.count) { last = try m.decode([[id]], caches: [cache]) }
                let ref = try m.forward(TokenBatch([seq]), logitRows: [seq.count - 1]).logits
                for (a, b) in zip(last, ref) { maxDiff = max(maxDiff, abs(a - b)) }
            }
            print("cached decoder vs full forward (\(type)): max |Δlogit| = \(maxDiff)")
            XCTAssertLessThan(maxDiff, 1e-3)
        }
    }

    /// A Q8_0 synthetic model wide enough for OpenBLAS's rounding to depend on the row count, with
    /// `layer`'s `ffn_down` edited in place (its products then run in float32 BLAS).
    /// A prompt as long as the context leaves no room for a generated token: both generators say so
    /// (as `generate(prompts:)` does) instead of returning no tokens; one token shorter still generates
    /// up to the context's end, the same tokens either way.
    func testAPromptThatFillsTheContextIsAnError() throws {
        let m = try LlamaModel(gguf: GGUFFile(bytes: SyntheticModel.writer(SyntheticConfig(contextLength: 12)).bytes()))
        let tok = try BPETokenizer(gguf: m.gguf)
        let long = Array(tok.encode("The capital of France is the sea of Paris, the art of it and the cat of Rome", addSpecial: true).prefix(14))
        XCTAssertEqual(long.count, 14)
        for n in [12, 14] {
            var s = Sampler(mode: .greedy, seed: 0)
            for run in [{ try CachedGenerator(model: m, tokenizer: tok).generate(ids: Array(long.prefix(n)), maxTokens: 3, sampler: &s) },
                        { try Generator(model: m, tokenizer: tok).generate(ids: Array(long.prefix(n)), maxTokens: 3, sampler: &s) }] {
                XCTAssertThrowsError(try run()) { XCTAssertEqual($0 as? ModelError, .contextOverflow(tokens: n, context: 12)) }
            }
        }
        XCTAssertEqual(ModelError.contextOverflow(tokens: 12, context: 12).description,
                       "12 tokens fill the model's context of 12: no room for a generated token")
        var a = Sampler(mode: .greedy, seed: 0), b = a
        let cached = try CachedGenerator(model: m, tokenizer: tok).generate(ids: Array(long.prefix(10)), maxTokens: 5, sampler: &a, stopAtEOS: false)
        let full = try Generator(model: m, tokenizer: tok).generate(ids: Array(long.prefix(10)), maxTokens: 5, sampler: &b, stopAtEOS: false)
        XCTAssertEqual(cached.count, 2, "positions 10 and 11 are the context's last")
        XCTAssertEqual(cached, full)
    }

    static func editedModel(layer: Int) throws -> (LlamaModel, BPETokenizer) {
        let w = try SyntheticModel.writer(SyntheticConfig(hidden: 256, ffn: 768, matrixType: .q8_0))
        let m = try LlamaModel(gguf: GGUFFile(bytes: w.bytes()))
        let down = m.weights.layers[layer].down
        for i in 0..<down.count { down[i] += 0.01 * Float(i % 7 - 3) }
        try m.markEdited(layer: layer)
        return (m, try BPETokenizer(gguf: m.gguf))
    }

    /// Independent generations batched (`generate(jobs:)`) give each job's tokens exactly as it gets
    /// them alone, also where a layer's products run in float32 BLAS (an edited `ffn_down`, whose
    /// rounding depends on the row count of the call), with jobs of more prompts than a step holds,
    /// end-of-sequence stops and seeded top-k.
    func testBatchedJobsEqualEachJobAlone() throws {
        let (m, tok) = try Self.editedModel(layer: 1)
        let texts = ["The capital of France is", "It", "Paris is in the sea of", "A cat", "The sea", "Of the art of it"]
        let jobs: [[[Int32]]] = [[0, 1], [2], [3, 4, 5, 0, 1], [1, 3, 5], [4], [2, 0]].map { $0.map { tok.encode(texts[$0], addSpecial: true) } }
        func samplers() -> [[Sampler]] {
            jobs.indices.map { j in jobs[j].indices.map { Sampler(mode: j % 2 == 0 ? .topK(4) : .greedy, seed: UInt64(10 * j + $0)) } }
        }
        let gen = CachedGenerator(model: m, tokenizer: tok)
        for (maxTokens, stop) in [(12, false), (40, true), (0, false)] {
            var alone = samplers()
            let want = try jobs.indices.map { try gen.generate(prompts: jobs[$0], maxTokens: maxTokens, samplers: &alone[$0], stopAtEOS: stop) }
            var s = samplers(), order: [Int] = []
            // Steps of at most 4 sequences: job 2 (5 prompts) runs alone; the others share steps as room frees up.
            let got = try BLAS.singleThreaded {
                try gen.generate(jobs: jobs, samplers: &s, maxTokens: maxTokens, stopAtEOS: stop, maxRows: 4) { j, out in
                    order.append(j)
                    XCTAssertEqual(out, want[j], "job \(j) as reported")
                }
            }
            XCTAssertEqual(got, want, "maxTokens \(maxTokens), stop at EOS \(stop)")
            XCTAssertEqual(order.sorted(), Array(jobs.indices))
            if maxTokens == 12 { XCTAssertEqual(got.flatMap { $0 }.map(\.count), Array(repeating: 12, count: 14)) }
        }
    }

    /// `decode(groups:)`: each group's logits have the bits of a decode of that group alone, where
    /// float32 BLAS products (an edited `ffn_down`, a float32 LM head) round a row differently with
    /// the row count of the call (measured with OpenBLAS here: a 768 → 256 product's row changes
    /// between 1 and 5+ rows).
    func testGroupedDecodeHasEachGroupsBits() throws {
        let (m, tok) = try Self.editedModel(layer: 0)
        let texts = ["The capital of France is", "It", "Paris is in the sea of", "A cat", "The sea", "Of the art", "An art", "The"]
        let prompts = texts.map { tok.encode($0, addSpecial: true) }
        let groups = [0..<2, 2..<5, 5..<6, 6..<8]
        let v = m.config.vocab
        func prefilled() throws -> [KVCache] {
            let caches = KVCache.group(config: m.config, capacities: prompts.map { $0.count + 1 })
            for g in groups { _ = try m.decode(Array(prompts[g]), caches: Array(caches[g])) }
            return caches
        }
        let step: [[Int32]] = prompts.indices.map { [Int32(3 + $0)] }
        try BLAS.singleThreaded {
            let a = try prefilled(), b = try prefilled(), c = try prefilled()
            let together = try m.decode(step, caches: a, groups: groups)
            var alone: [Float] = []
            for g in groups { alone += try m.decode(Array(step[g]), caches: Array(b[g])) }
            XCTAssertEqual(together.count, prompts.count * v)
            XCTAssertTrue(together == alone, "every group's logits bit for bit")
            let ungrouped = try m.decode(step, caches: c)
            let moved = zip(ungrouped, alone).filter { $0 != $1 }.count
            print("one product over all 8 rows instead: \(moved) of \(alone.count) logits differ in their bits")
        }
    }

    /// The evaluator's batched generation equals evaluating each record alone (its generation on its own).
    func testEvaluatorGenerationEqualsRecordAlone() throws {
        let (m, tok) = try Self.model(.q8_0)
        let ev = CounterFactEvaluator(model: m, tokenizer: tok, generation: GenerationSettings(maxTokens: 10, topK: 5, seed: 4))
        // 20 records: past one chunk (CounterFactEvaluator.chunkRecords).
        let records = (0..<4).flatMap { k in Self.records.map { r in var r = r; r.caseID = r.caseID.map { $0 + 10 * k }; return r } }
        XCTAssertGreaterThan(records.count, CounterFactEvaluator.chunkRecords)
        var ticks: [Int] = []
        let whole = try ev.evaluate(records, firstIndex: 3) { ticks.append($0) }
        let alone = try records.indices.map { try ev.evaluate(records[$0], index: 3 + $0) }
        XCTAssertEqual(whole.records, alone)
        XCTAssertEqual(whole.records.map { $0.generations?.count }, records.map { $0.generationPrompts.count })
        XCTAssertEqual(ticks, Array(1...records.count), "progress counts every record once, in order of completion")
    }

    /// The `generate` command's path (one prompt, tokens streamed, KV cache) gives the full recompute's
    /// tokens, greedy and seeded top-k, and stops where it does at the end of the context.
    func testStreamingCachedGenerationEqualsFullRecompute() throws {
        for (context, maxTokens) in [(256, 15), (12, 15), (12, 0)] {
            let w = try SyntheticModel.writer(SyntheticConfig(contextLength: context, matrixType: .q8_0))
            let m = try LlamaModel(gguf: GGUFFile(bytes: w.bytes()))
            let tok = try BPETokenizer(gguf: m.gguf)
            for (p, mode) in [(tok.encode("The capital of France is"), Sampler.Mode.greedy), (tok.encode("It"), .topK(5))] {
                var a = Sampler(mode: mode, seed: 7), b = Sampler(mode: mode, seed: 7)
                var streamed: [Int32] = []
                let cached = try CachedGenerator(model: m, tokenizer: tok)
                    .generate(ids: p, maxTokens: maxTokens, sampler: &a, stopAtEOS: false) { streamed.append($0) }
                let full = try Generator(model: m, tokenizer: tok).generate(ids: p, maxTokens: maxTokens, sampler: &b, stopAtEOS: false)
                XCTAssertEqual(cached, full, "context \(context), \(mode), prompt of \(p.count)")
                XCTAssertEqual(streamed, cached)
                XCTAssertEqual(cached.count, max(0, min(maxTokens, context - p.count)), "context \(context), prompt of \(p.count)")
            }
        }
    }

    /// The default model: the cached decoder (few-token quantized kernels, incremental attention) against
    /// the full recompute — logits within 1e-3 absolute (measured 1.5e-5) and the same greedy continuation.
    func testCachedDecoderOnTheRealModel() throws {
        let m = try LlamaModel(path: try RepoPaths.requireModel())
        let tok = try BPETokenizer(gguf: m.gguf)
        let p = tok.encode("The Eiffel Tower is located in the city of")
        var samplers = [Sampler(mode: .greedy)]
        let cached = try CachedGenerator(model: m, tokenizer: tok).generate(prompts: [p], maxTokens: 12, samplers: &samplers, stopAtEOS: false)[0]
        var s = Sampler(mode: .greedy)
        let full = try Generator(model: m, tokenizer: tok).generate(ids: p, maxTokens: 12, sampler: &s, stopAtEOS: false)
        XCTAssertEqual(cached, full)
        let seq = p + cached
        let cache = KVCache(config: m.config, capacity: seq.count)
        _ = try m.decode([p], caches: [cache])
        var last: [Float] = []
        for id in cached { last = try m.decode([[id]], caches: [cache]) }
        let ref = try m.forward(TokenBatch([seq]), logitRows: [seq.count - 1]).logits
        let maxDiff = zip(last, ref).map { abs($0 - $1) }.max() ?? .nan
        print("real model: cached decoder vs full forward, max |Δlogit| = \(maxDiff)")
        XCTAssertLessThan(maxDiff, 1e-3)
    }
}
