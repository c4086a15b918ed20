// Builds the preserved-knowledge statistics K0 of docs/algorithm.md §1: every token of every sentence of a
// corpus, each sentence tokenized alone (no BOS, as the reference), through the unedited model up to
// the last edited layer — ONE forward serves all edited layers — accumulating each layer's MLP keys
// into `KeyStatistics` (float64 Σ k kᵀ and the token count).
//
// Determinism by construction: sentences go through the forward in FIXED GLOBAL BATCHES — batch b
// holds corpus sentences b·S ..< (b+1)·S (S = `batchSentences`), cut only by the ends of the range —
// and every forward runs with one BLAS thread (`BLAS.singleThreaded`). A sentence's keys thus come
// from the same float32 products (same rows, same call shape, same thread count) in the whole build,
// in any shard whose ends are multiples of S (`CovarianceJobPlan` cuts them so) and on any worker,
// and a sharded or distributed build differs from the single-process one only by the float64
// summation order of the partial sums (≤ 1e-12 relative, tested). Why not batches cut by token
// count, as before: OpenBLAS rounds a row's product differently with the row count of the call and
// its thread count (Haswell kernels; the AVX-512 ones happened not to), so a shard boundary that
// regrouped sentences changed K0 by 1e-7 relative on AVX2 machines.
import Support
import Corpus
import GGUF
import Tokenization
import Kernels
import Model
import Foundation

public enum CovarianceError: Error, Equatable, Sendable, CustomStringConvertible {
    case invalidLayers([Int], modelLayers: Int)
    case invalidBatchSentences(Int)
    case invalidWorkers(Int)
    case invalidRange(Range<Int>)

    public var description: String {
        switch self {
        case let .invalidLayers(l, n):
            return "layers \(l) must be distinct, non-empty and within the model's 0...\(n - 1)"
        case let .invalidBatchSentences(n): return "batch size \(n) sentences must be at least 1"
        case let .invalidWorkers(n): return "\(n) workers: expected 1-256"
        case let .invalidRange(r): return "sentence range \(r.lowerBound)..<\(r.upperBound) is invalid"
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
    /// Sentences per forward batch: ≈ 1,000 tokens of the T-REx corpus (42 tokens a sentence). Measured
    /// with token-cut batches (layers 3-7, 2 workers, 600 sentences): 512 / 1024 / 2048 tokens gave
    /// 2078-2536 / 2461-2633 / 2598-2618 tokens/s; larger batches only grow the activations.
    public static let defaultBatchSentences = 24

    public let model: LlamaModel
    public let tokenizer: any Tokenizer
    /// Edited layers, ascending.
    public let layers: [Int]
    /// S: batch b holds corpus sentences b·S ..< (b+1)·S (see the file comment).
    public let batchSentences: Int
    /// Forwards run in parallel, each on its own batches and partial sums, merged at the end, each
    /// with one BLAS thread. Why: on the 2-core VM, 2 workers × 1 BLAS thread ran at 2578-2652
    /// tokens/s (layers 3-7, 2000 sentences) against 1934 for 1 worker × 2 BLAS threads — the
    /// single-threaded parts (attention, SwiGLU, float64 conversion) overlap, and BLAS does not
    /// synchronise its threads on every product.
    public let workers: Int

    public init(model: LlamaModel, tokenizer: any Tokenizer, layers: [Int],
                batchSentences: Int = CovarianceBuilder.defaultBatchSentences, workers: Int = 1) throws {
        let n = model.config.layers
        guard !layers.isEmpty, Set(layers).count == layers.count, layers.allSatisfy({ (0..<n).contains($0) }) else {
            throw CovarianceError.invalidLayers(layers, modelLayers: n)
        }
        guard batchSentences >= 1 else { throw CovarianceError.invalidBatchSentences(batchSentences) }
        guard (1...256).contains(workers) else { throw CovarianceError.invalidWorkers(workers) }
        self.model = model
        self.tokenizer = tokenizer
        self.layers = layers.sorted()
        self.batchSentences = batchSentences
        self.workers = workers
    }

    /// Statistics over sentences `range` (0-based, in corpus order) of a `SentenceCorpus` file.
    public func build(corpus path: String, range: Range<Int>, provenance: String? = nil,
                      progress: ((CovarianceProgress) -> Void)? = nil) throws -> KeyStatistics {
        guard range.lowerBound >= 0, !range.isEmpty else { throw CovarianceError.invalidRange(range) }
        let sentences = try SentenceCorpus.read(path: path, range: range)
        let name = URL(fileURLWithPath: path).lastPathComponent
        return try build(sentences: sentences, firstIndex: range.lowerBound,
                         provenance: provenance ?? "corpus \(name) sentences \(range.lowerBound)..<\(range.upperBound)",
                         progress: progress)
    }

    /// Statistics over `sentences`, every token counted; `firstIndex` is the corpus index of the first
    /// one, which places the batch boundaries.
    public func build(sentences: [String], firstIndex: Int = 0, provenance: String = "",
                      progress: ((CovarianceProgress) -> Void)? = nil) throws -> KeyStatistics {
        try BLAS.singleThreaded {
            try build(sentences, firstIndex: firstIndex, provenance: provenance, progress: progress)
        }
    }

    private func build(_ sentences: [String], firstIndex: Int, provenance: String,
                       progress: ((CovarianceProgress) -> Void)?) throws -> KeyStatistics {
        let start = ProcessStats.now()
        // Tokenizing up front costs ~0.1% of the build (1.8M tokens/s measured) and gives the ETA a
        // token total; overlapping it with the forward would not pay.
        let context = model.config.context
        let ids: [[Int32]] = sentences.map { Array(tokenizer.encode($0, addSpecial: true).prefix(context)) }
        let plan = Self.batches(first: firstIndex, count: ids.count, size: batchSentences)
        let tokensTotal = ids.reduce(0) { $0 + $1.count }

        // The RoPE table grows lazily on first use; growing it before the workers start keeps their
        // forwards free of writes to shared state.
        model.ensureRoPE((ids.map(\.count).max() ?? 0) + 1)

        // Worker w takes batches w, w + W, …: a fixed assignment, so the merged sums (and their
        // float64 rounding) do not depend on thread timing. Each holds its own sums of every layer, so no
        // more run than the memory available now holds (`threadsFitting`).
        let w = min(workers, max(plan.count, 1), memoryThreads)
        let partials = try (0..<w).map { _ in Partial(try KeyStatistics(layers: layers, f: model.config.ffn, provenance: provenance)) }
        let lock = NSLock()
        var done = 0, tokensDone = 0, stop = false  // under `lock`
        DispatchQueue.concurrentPerform(iterations: w) { worker in
            let mine = partials[worker]
            var hooks = ForwardHooks()
            hooks.keyLayers = Set(layers)
            hooks.onKeys = { layer, keys in mine.add(layer: layer, keys: keys) }
            for range in stride(from: worker, to: plan.count, by: w).map({ plan[$0] }) {
                if lock.withLock({ stop }) { return }
                // Sentences without tokens (empty text) hold nothing to count.
                let seqs = ids[range].filter { !$0.isEmpty }
                if !seqs.isEmpty {
                    let batch = TokenBatch(seqs)
                    mine.rows = batch.count
                    do { _ = try model.forward(batch, hooks: hooks, upTo: layers[layers.count - 1]) } catch {
                        mine.failure = mine.failure ?? error
                    }
                    if mine.failure != nil { return lock.withLock { stop = true } }
                }
                lock.withLock {
                    done += range.count
                    tokensDone += mine.rows
                    progress?(CovarianceProgress(sentencesDone: done, sentencesTotal: sentences.count,
                                                 tokensDone: tokensDone, tokensTotal: tokensTotal,
                                                 elapsed: ProcessStats.now() - start))
                }
                mine.rows = 0
            }
        }
        if let failure = partials.lazy.compactMap(\.failure).first { throw failure }
        // Taken out of the partials, not copied: the sum is made in the first one's storage and each
        // other one is freed once added (a copy-on-write `var total = partials[0].stats` had doubled the
        // first: Qwen2.5-0.5B, 5 layers, 2 threads, `cov --cluster in-process` peaked at 5.86 GB).
        var total = partials[0].take()
        for p in partials.dropFirst() { try total.merge(p.take()) }
        return total
    }

    /// Threads of an in-process build that the memory available now holds: each thread's partial sums
    /// (`KeyStatistics.shardBytes`); at least 1, at most `workers`.
    public var memoryThreads: Int {
        Self.threadsFitting(workers, bytesEach: KeyStatistics.shardBytes(layers: layers.count, f: model.config.ffn),
                            available: Int(clamping: ProcessStats.availableMemory()))
    }

    /// A line for the log when the memory available keeps the build below its threads (nil otherwise).
    public var memoryNote: String? {
        let each = KeyStatistics.shardBytes(layers: layers.count, f: model.config.ffn)
        let available = Int(clamping: ProcessStats.availableMemory())
        let n = Self.threadsFitting(workers, bytesEach: each, available: available)
        guard n < workers else { return nil }
        return String(format: "K0 statistics on %d of %d threads: each thread's sums of %d layers take %.1f GB, %.1f GB are available",
                      n, workers, layers.count, Double(each) / 1e9, Double(available) / 1e9)
            + (n == 1 && each > available ? "; even one may not fit: build fewer layers at once (--layers) or give it more memory" : "")
    }

    public static func threadsFitting(_ threads: Int, bytesEach: Int, available: Int) -> Int {
        max(1, min(threads, available / max(1, bytesEach)))
    }

    /// The batches of sentences `first ..< first + count` as ranges of local indices (0 = sentence
    /// `first`): the global batches b·size ..< (b+1)·size, cut by the ends of the range.
    public static func batches(first: Int, count: Int, size: Int) -> [Range<Int>] {
        guard count > 0, size > 0 else { return [] }
        var out: [Range<Int>] = []
        var lo = first
        while lo < first + count {
            let hi = min(first + count, (lo / size + 1) * size)
            out.append((lo - first)..<(hi - first))
            lo = hi
        }
        return out
    }
}

/// One worker's running sums: a class, so the forward's key hook adds to them in place.
private final class Partial {
    var stats: KeyStatistics?
    /// Tokens of the batch in flight (the row count of the keys the hook receives).
    var rows = 0
    var failure: Error?

    init(_ empty: KeyStatistics) { stats = empty }

    /// The sums, given up by this partial (called once, after the build).
    func take() -> KeyStatistics {
        defer { stats = nil }
        return stats!
    }

    func add(layer: Int, keys: UnsafePointer<Float>) {
        do { try stats!.accumulate(layer: layer, keys: keys, count: rows) } catch { failure = failure ?? error }
    }
}
