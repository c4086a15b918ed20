// Builds the preserved-knowledge statistics K0 of method.md §1: every token of every sentence of a
// corpus, each sentence tokenized alone (no BOS, as the reference), through the unedited model up to
// the last edited layer — ONE forward serves all edited layers — accumulating each layer's MLP keys
// into `KeyStatistics` (float64 Σ k kᵀ and the token count).
//
// Sentences are packed into batches of about `batchTokens` tokens: the forward's matrix products and
// the statistics' dsyrk both want hundreds of rows per call, and attention stays per sentence.
// Shards: `build` over any split of a sentence range, merged, equals the build over the whole range
// up to float64 summation order, because a sentence's keys do not depend on its batch neighbours
// (attention is per sequence; the float32 products are row-independent). The one exception is a
// batch of ≤ `QuantizedLinear.maxRows` tokens, which the model runs on its quantized kernels (same
// math, another summation order): a short tail is therefore folded into the batch before it.
import Foundation

public enum CovarianceError: Error, Equatable, Sendable, CustomStringConvertible {
    case invalidLayers([Int], modelLayers: Int)
    case invalidBatchTokens(Int)
    case invalidRange(Range<Int>)
    case corpusTooShort(path: String, sentences: Int, wanted: Int)

    public var description: String {
        switch self {
        case let .invalidLayers(l, n):
            return "layers \(l) must be distinct, non-empty and within the model's 0...\(n - 1)"
        case let .invalidBatchTokens(n): return "batch size \(n) tokens must be at least 1"
        case let .invalidRange(r): return "sentence range \(r.lowerBound)..<\(r.upperBound) is invalid"
        case let .corpusTooShort(path, n, wanted):
            return "corpus \(path) has \(n) sentences; the range needs \(wanted)"
        }
    }
}

/// Where a build stands, reported after every batch.
public struct CovarianceProgress: Sendable {
    public let sentencesDone: Int
    public let sentencesTotal: Int
    public let tokensDone: Int
    public let tokensTotal: Int
    /// Seconds since the build started (tokenization included).
    public let elapsed: Double

    public var tokensPerSecond: Double { elapsed > 0 ? Double(tokensDone) / elapsed : 0 }
    /// Seconds left at the rate so far; nil before the first batch.
    public var eta: Double? {
        guard tokensDone > 0, elapsed > 0 else { return nil }
        return Double(tokensTotal - tokensDone) / tokensPerSecond
    }
}

public struct CovarianceBuilder {
    /// Tokens per forward batch. Measured (layers 3-7, 2 threads): 512 → 1024 gains a few percent;
    /// larger batches only grow the activations.
    public static let defaultBatchTokens = 1024

    public let model: LlamaModel
    public let tokenizer: any Tokenizer
    /// Edited layers, ascending.
    public let layers: [Int]
    public let batchTokens: Int

    public init(model: LlamaModel, tokenizer: any Tokenizer, layers: [Int],
                batchTokens: Int = CovarianceBuilder.defaultBatchTokens) throws {
        let n = model.config.layers
        guard !layers.isEmpty, Set(layers).count == layers.count, layers.allSatisfy({ (0..<n).contains($0) }) else {
            throw CovarianceError.invalidLayers(layers, modelLayers: n)
        }
        guard batchTokens >= 1 else { throw CovarianceError.invalidBatchTokens(batchTokens) }
        self.model = model
        self.tokenizer = tokenizer
        self.layers = layers.sorted()
        self.batchTokens = batchTokens
    }

    /// Statistics over sentences `range` (0-based, in corpus order) of a `SentenceCorpus` file.
    public func build(corpus path: String, range: Range<Int>, provenance: String? = nil,
                      progress: ((CovarianceProgress) -> Void)? = nil) throws -> KeyStatistics {
        guard range.lowerBound >= 0, !range.isEmpty else { throw CovarianceError.invalidRange(range) }
        let sentences = try SentenceCorpus.read(path: path, offset: range.lowerBound, limit: range.count)
        guard sentences.count == range.count else {
            throw CovarianceError.corpusTooShort(path: path, sentences: range.lowerBound + sentences.count,
                                                 wanted: range.upperBound)
        }
        let name = URL(fileURLWithPath: path).lastPathComponent
        return try build(sentences: sentences,
                         provenance: provenance ?? "corpus \(name) sentences \(range.lowerBound)..<\(range.upperBound)",
                         progress: progress)
    }

    /// Statistics over `sentences`, every token counted.
    public func build(sentences: [String], provenance: String = "",
                      progress: ((CovarianceProgress) -> Void)? = nil) throws -> KeyStatistics {
        let start = ProcessStats.now()
        // Tokenizing up front costs ~1% of the forward (measured) and gives the ETA a token total.
        let context = model.config.context
        let ids: [[Int32]] = sentences.map { Array(tokenizer.encode($0).prefix(context)) }
        let plan = Self.batches(lengths: ids.map(\.count), batchTokens: batchTokens)
        let tokensTotal = ids.reduce(0) { $0 + $1.count }

        var stats = try KeyStatistics(layers: layers, f: model.config.ffn, provenance: provenance)
        var failure: Error?
        var hooks = ForwardHooks()
        hooks.keyLayers = Set(layers)
        var rows = 0
        hooks.onKeys = { layer, keys in
            do { try stats.accumulate(layer: layer, keys: keys, count: rows) } catch { failure = failure ?? error }
        }
        var done = 0, tokensDone = 0
        for range in plan {
            // Sentences without tokens (empty text) hold nothing to count.
            let seqs = ids[range].filter { !$0.isEmpty }
            if !seqs.isEmpty {
                let batch = TokenBatch(seqs)
                rows = batch.count
                _ = try model.forward(batch, hooks: hooks, upTo: layers[layers.count - 1])
                if let failure { throw failure }
                tokensDone += batch.count
            }
            done = range.upperBound
            progress?(CovarianceProgress(sentencesDone: done, sentencesTotal: sentences.count, tokensDone: tokensDone,
                                         tokensTotal: tokensTotal, elapsed: ProcessStats.now() - start))
        }
        return stats
    }

    /// Consecutive sentence ranges of about `batchTokens` tokens each (a longer sentence alone). No batch
    /// but a lone one has ≤ `QuantizedLinear.maxRows` tokens: a short head grows past the target, a short
    /// tail joins the batch before it (see the file comment).
    public static func batches(lengths: [Int], batchTokens: Int) -> [Range<Int>] {
        var out: [Range<Int>] = []
        var first = 0, tokens = 0
        for (i, n) in lengths.enumerated() {
            if tokens > QuantizedLinear.maxRows, tokens + n > batchTokens {
                out.append(first..<i)
                first = i
                tokens = 0
            }
            tokens += n
        }
        if first < lengths.count {
            if tokens <= QuantizedLinear.maxRows, let last = out.popLast() {
                out.append(last.lowerBound..<lengths.count)
            } else {
                out.append(first..<lengths.count)
            }
        }
        return out
    }
}
