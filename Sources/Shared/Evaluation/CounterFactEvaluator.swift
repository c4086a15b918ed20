// The CounterFact metrics of docs/algorithm.md §6 on a range of records: probability comparisons (mean
// per-token NLL) on the rewrite, paraphrase and neighborhood prompts, and, with generation, fluency
// and consistency of seeded top-k texts from the generation prompts.
//
// Sharding: every scoring forward holds the prompts of ONE record only; generation steps batch the
// sequences of several records but keep each record's float32 products apart and its prompts' first
// step alone (`CachedGenerator.generate(jobs:)`), and each generation's seed is derived from (seed,
// case_id, prompt index), so a record's figures do not depend on which other records share its
// shard; any split of the records merges (`EvalShard.merge`) to the single-run result.
import Support
import Kernels
import Model
import Tokenization
import Editing
import Store
import Foundation

public struct GenerationSettings: Sendable, Equatable, Codable {
    /// New tokens per generation prompt (the reference: ≈100).
    public var maxTokens = 100
    public var topK = 5
    public var seed: UInt64 = 0
    public init(maxTokens: Int = 100, topK: Int = 5, seed: UInt64 = 0) { self.maxTokens = maxTokens; self.topK = topK; self.seed = seed }

    /// The sampler seed of generation prompt `prompt` of the record with `caseID` (its index in the
    /// file when it has none): independent of sharding and of the other records.
    public func seed(caseID: Int, prompt: Int) -> UInt64 {
        var g = SplitMix64(seed: seed ^ (UInt64(truncatingIfNeeded: caseID) &* 0x9E37_79B9_7F4A_7C15) ^ (UInt64(prompt) &* 0xBF58_476D_1CE4_E5B9))
        return g.next()
    }
}

public struct CounterFactEvaluator {
    public let model: LlamaModel
    public let tokenizer: BPETokenizer
    /// nil: no generation (no fluency / consistency).
    public var generation: GenerationSettings?
    public var snippets: AttributeSnippets?
    /// Keep the generated texts in the results.
    public var keepTexts = true
    /// Generate (fluency / consistency) only for the records whose index (in the file) is in this
    /// range; nil: every record. Decided by index, so it does not depend on sharding.
    public var generationRecords: Range<Int>?

    public init(model: LlamaModel, tokenizer: BPETokenizer, generation: GenerationSettings? = GenerationSettings(),
                snippets: AttributeSnippets? = nil) {
        self.model = model; self.tokenizer = tokenizer; self.generation = generation; self.snippets = snippets
    }

    /// Evaluates `records`, whose first element is record `firstIndex` of its file.
    /// Records run side by side, one per thread (`BLAS.configuredThreads`), each on one BLAS thread
    /// (measured, `eval --method none --limit 20 --no-generation`, 2 threads, AVX2: 24.7 / 25.4 s one
    /// record at a time on one BLAS thread, 12.1 / 13.0 s one at a time on two BLAS threads as before
    /// the determinism change, 12.9 / 13.6 s side by side).
    /// Then the generations of all the records together (`CachedGenerator.generate(jobs:)`: the same
    /// texts as one record at a time, its steps batched across records; measured on Qwen, 20 records,
    /// 2 threads: README, "Benchmarks", Generation). Both in chunks of `chunkRecords` records, so
    /// `progress` (records whose every figure is in) moves along a long call.
    public func evaluate(_ records: [EditRequest], firstIndex: Int = 0,
                         progress: (Int) -> Void = { _ in }) throws -> EvalShard {
        model.ensureRoPE(model.config.context + 2)  // grown before the threads read it
        var all: [RecordEvaluation] = []
        var done = 0
        for c in stride(from: 0, to: records.count, by: Self.chunkRecords) {
            let chunk = Array(records[c..<min(c + Self.chunkRecords, records.count)])
            all += try evaluateChunk(chunk, firstIndex: firstIndex + c) { done += 1; progress(done) }
        }
        return EvalShard(records: all)
    }

    /// Records scored, then generated, at a time: with CounterFact's ≈ 6 generation prompts a record,
    /// 16 records keep the 32 rows of a generation step full until the chunk's last records end.
    public static let chunkRecords = 16

    private func evaluateChunk(_ records: [EditRequest], firstIndex: Int, recordDone: () -> Void) throws -> [RecordEvaluation] {
        var out = [RecordEvaluation?](repeating: nil, count: records.count)
        let generates = records.indices.map { i in
            generation != nil && !records[i].generationPrompts.isEmpty && (generationRecords?.contains(firstIndex + i) ?? true)
        }
        let lock = NSLock()
        try Parallel.forEach(records.count, threads: BLAS.configuredThreads) { i in
            let e = try BLAS.singleThreaded { try scoreRecord(records[i], index: firstIndex + i) }
            lock.withLock {
                out[i] = e
                if !generates[i] { recordDone() }
            }
        }
        guard let g = generation else { return out.compactMap { $0 } }
        let gen = records.indices.filter { generates[$0] }
        var samplers = gen.map { i in
            records[i].generationPrompts.indices.map { Sampler(mode: .topK(g.topK), seed: g.seed(caseID: records[i].caseID ?? firstIndex + i, prompt: $0)) }
        }
        let jobs = gen.map { records[$0].generationPrompts.map { tokenizer.encode($0, addSpecial: true) } }
        var failure: Error?
        _ = try BLAS.singleThreaded {
            try CachedGenerator(model: model, tokenizer: tokenizer).generate(jobs: jobs, samplers: &samplers, maxTokens: g.maxTokens) { j, tokens in
                let i = gen[j], r = records[i]
                let texts = zip(r.generationPrompts, tokens).map { tokenizer.decode(tokenizer.encode($0.0) + $0.1) }
                guard var e = out[i] else { failure = failure ?? EvalError.unreadable("record \(firstIndex + i) was not scored"); return }
                addGeneration(texts, to: &e, record: r)
                out[i] = e
                recordDone()
            }
        }
        if let failure { throw failure }
        return out.compactMap { $0 }
    }

    /// One BLAS thread (`BLAS.singleThreaded`): with the record's own forward batches this makes its
    /// figures the same in any process, whatever its thread count (OpenBLAS rounds otherwise).
    public func evaluate(_ r: EditRequest, index: Int) throws -> RecordEvaluation {
        try BLAS.singleThreaded { try evaluateRecord(r, index: index) }
    }

    private func evaluateRecord(_ r: EditRequest, index: Int) throws -> RecordEvaluation {
        var e = try scoreRecord(r, index: index)
        if let g = generation, !r.generationPrompts.isEmpty, generationRecords?.contains(index) ?? true {
            addGeneration(try generate(r.generationPrompts, caseID: r.caseID ?? index, settings: g), to: &e, record: r)
        }
        return e
    }

    /// Everything but the generation.
    private func scoreRecord(_ r: EditRequest, index: Int) throws -> RecordEvaluation {
        try r.targetTrue == nil ? accuracies(r, index: index) : comparisons(r, index: index)
    }

    /// Fluency and consistency of a record's generated texts (prompt + continuation each).
    private func addGeneration(_ texts: [String], to e: inout RecordEvaluation, record r: EditRequest) {
        e.fluency = texts.map(NGramEntropy.score).reduce(0, +) / Double(texts.count)
        e.consistency = snippets?.consistency(texts: texts, relation: r.relationID, object: r.targetNew)
        if keepTexts { e.generations = texts }
    }

    /// §6: NLL(new) against NLL(true) after every prompt, both targets of every prompt in one forward
    /// batch. A neighborhood prompt's true answer is its own when the record gives one (flat CounterFact's
    /// `locality_ground_truth`), else the record's.
    private func comparisons(_ r: EditRequest, index: Int) throws -> RecordEvaluation {
        let targetTrue = r.targetTrue ?? ""
        let np = r.paraphrasePrompts.count
        let prompts = [r.filledPrompt] + r.paraphrasePrompts + r.neighborhoodPrompts
        var pairs: [(prompt: String, target: String)] = []
        for (j, p) in prompts.enumerated() {
            pairs.append((p, r.targetNew))
            pairs.append((p, j > np ? (r.neighborhoodAnswer ?? targetTrue) : targetTrue))
        }
        let s = try scores(pairs)
        let scored = prompts.indices.map { j in
            PairScore(nllNew: s[2 * j].meanNLL, nllTrue: s[2 * j + 1].meanNLL, top1New: s[2 * j].top1, top1True: s[2 * j + 1].top1)
        }
        return RecordEvaluation(index: index, caseID: r.caseID, rewrite: scored[0],
                                paraphrases: Array(scored[1..<(1 + np)]), neighborhood: Array(scored[(1 + np)...]))
    }

    /// §7 (zsRE, and any record without a true target): token accuracy of the new target after the
    /// rewrite and paraphrase prompts, of each neighborhood prompt's own answer, and of the portability
    /// answer, in one forward batch.
    private func accuracies(_ r: EditRequest, index: Int) throws -> RecordEvaluation {
        var pairs: [(prompt: String, target: String)] = [(r.filledPrompt, r.targetNew)]
        pairs += r.paraphrasePrompts.map { ($0, r.targetNew) }
        if !r.neighborhoodPrompts.isEmpty {
            guard let answer = r.neighborhoodAnswer else { throw EvalError.noNeighborhoodAnswer(index: index) }
            pairs += r.neighborhoodPrompts.map { ($0, answer) }
        }
        if let p = r.portability { pairs.append((p.question, p.answer)) }
        let acc = try scores(pairs).map(\.tokenAccuracy)
        let np = r.paraphrasePrompts.count, nn = r.neighborhoodPrompts.count
        return RecordEvaluation(index: index, caseID: r.caseID, rewrite: nil, paraphrases: [], neighborhood: [],
                                accuracies: TokenAccuracies(rewrite: acc[0], paraphrases: Array(acc[1..<(1 + np)]),
                                                            neighborhood: Array(acc[(1 + np)..<(1 + np + nn)]),
                                                            portability: r.portability == nil ? nil : acc.last))
    }

    private func scores(_ pairs: [(prompt: String, target: String)]) throws -> [TargetScore] {
        var scorer = TargetScorer(model: model, tokenizer: tokenizer)
        scorer.batchSize = max(1, pairs.count)  // one forward batch per record
        return try scorer.scores(pairs)
    }

    /// Seeded top-k continuations of the prompts, all prompts of one record decoded together;
    /// each text is prompt + continuation (as the reference's `generate_fast` returns it).
    public func generate(_ prompts: [String], caseID: Int, settings g: GenerationSettings) throws -> [String] {
        let ids = prompts.map { tokenizer.encode($0, addSpecial: true) }, plain = prompts.map { tokenizer.encode($0) }
        var samplers = prompts.indices.map { Sampler(mode: .topK(g.topK), seed: g.seed(caseID: caseID, prompt: $0)) }
        let out = try CachedGenerator(model: model, tokenizer: tokenizer).generate(prompts: ids, maxTokens: g.maxTokens, samplers: &samplers)
        return zip(plain, out).map { tokenizer.decode($0.0 + $0.1) }
    }
}

public enum EvalError: Error, Equatable, CustomStringConvertible {
    case noNeighborhoodAnswer(index: Int)
    case badOption(String)
    case unreadable(String)
    /// An input made for other settings (e.g. `--pre-from` of another run).
    case mismatch(String)
    public var description: String {
        switch self {
        case .noNeighborhoodAnswer(let i): "record \(i) has neighborhood prompts but no answer for them (zsRE's loc_ans) and no true target"
        case .badOption(let s): s
        case .unreadable(let s): s
        case .mismatch(let s): s
        }
    }
}
