// What a worker does with a job, apart from the wire: the model loaded once, its weights version
// (the number of committed batches of deltas applied to it), and one function per kind of work.
// Runs on the worker's job threads: covariance shards up to `threads` at once, one thread each;
// any other job alone, with all threads. Deltas are applied only while no job runs.
import Support
import Kernels
import Model
import Tokenization
import Editing
import Store
import Evaluation
import Wire
import Config
import Foundation

public enum JobError: Error, Equatable, CustomStringConvertible {
    case wrongWeights(held: Int, wanted: Int)
    case deltasOutOfOrder(held: Int, got: Int)

    public var description: String {
        switch self {
        case let .wrongWeights(held, wanted): "job needs weights version \(wanted); this worker holds \(held)"
        case let .deltasOutOfOrder(held, got): "deltas for version \(got) cannot follow version \(held)"
        }
    }
}

/// Shared by the node's I/O thread and its job threads (@unchecked): jobs only read the model, and
/// `apply` changes it only while no job runs (WorkerNode holds deltas back until its slots are empty);
/// the snippet cache is under `lock`.
public final class JobRunner: @unchecked Sendable {
    public let model: LlamaModel
    public let tokenizer: BPETokenizer
    public let threads: Int
    public private(set) var weightsVersion = 0
    /// Requests per ComputeZ call: the same chunking as `Editor.targets`, so a v* result does not
    /// depend on whether it was computed here or in the coordinator's process.
    public static var zBatch: Int { 8 }

    /// Guards the snippet cache.
    private let lock = NSLock()

    public init(modelPath: String, threads: Int) throws {
        model = try LlamaModel(path: modelPath)
        tokenizer = try BPETokenizer(gguf: model.gguf)
        self.threads = threads
        BLAS.setThreads(threads)
        // The RoPE table grows lazily; concurrent shards must not grow it under each other's reads.
        model.ensureRoPE(model.config.context + 2)
    }

    /// Applies the deltas of committed batch `version` (must be the next one).
    public func apply(version: Int, deltas: BatchDeltas) throws {
        guard version == weightsVersion + 1 else { throw JobError.deltasOutOfOrder(held: weightsVersion, got: version) }
        for (l, d) in deltas.deltas.sorted(by: { $0.key < $1.key }) { try model.applyDelta(layer: l, delta: d) }
        weightsVersion = version
    }

    /// Runs one job: its output and, for covariance, the KeyStatistics artifact bytes.
    public func run(_ job: JobAssignment, progress: @escaping (String) -> Void = { _ in }) throws -> (JobOutput, [UInt8]) {
        guard job.weightsVersion == weightsVersion else {
            throw JobError.wrongWeights(held: weightsVersion, wanted: job.weightsVersion)
        }
        switch job.work {
        case .covariance(let shard):
            let stats = try covariance(shard, progress: progress)
            let tokens = try stats.count(layer: shard.layers[0])
            return (.covariance(tokens: tokens), stats.serializedReleasingSums())
        case .vstar(let chunk):
            return (.vstar(try vstar(chunk)), [])
        case .evaluation(let shard):
            return (.evaluation(try evaluation(shard)), [])
        }
    }

    public func evaluation(_ shard: EvaluationShard) throws -> EvalShard {
        let records = try FactsFile.read(path: shard.facts, offset: shard.first, limit: shard.count,
                                         options: shard.options ?? FactsOptions())
        guard records.count == shard.count else {
            throw EvalError.unreadable("\(shard.facts) has \(shard.first + records.count) records; the shard wants \(shard.first)..<\(shard.first + shard.count)")
        }
        var ev = CounterFactEvaluator(model: model, tokenizer: tokenizer, generation: shard.generation,
                                      snippets: try shard.snippets.map(snippets(path:)))
        ev.generationRecords = shard.generationRecords
        return try ev.evaluate(records, firstIndex: shard.first)
    }

    /// Attribute snippets (with their TF-IDF), read once per path.
    private var snippetCache: [String: AttributeSnippets] = [:]
    private func snippets(path: String) throws -> AttributeSnippets {
        if let s = lock.withLock({ snippetCache[path] }) { return s }
        let s = try AttributeSnippets.read(path: path)
        lock.withLock { snippetCache[path] = s }
        return s
    }

    public func covariance(_ shard: CovarianceShard, progress: @escaping (String) -> Void = { _ in }) throws -> KeyStatistics {
        // One shard per thread, each with one BLAS thread (the builder's `BLAS.singleThreaded`; measured
        // faster, see CovarianceBuilder.workers); the worker runs up to `threads` shards side by side.
        let builder = try CovarianceBuilder(model: model, tokenizer: tokenizer, layers: shard.layers,
                                            batchSentences: shard.batchSentences, workers: 1)
        let name = URL(fileURLWithPath: shard.corpus).lastPathComponent
        var last = 0.0
        return try builder.build(corpus: shard.corpus, range: shard.first..<(shard.first + shard.count),
                                 provenance: "corpus \(name) sentences \(shard.first)..<\(shard.first + shard.count)") { p in
            let now = ProcessStats.now()
            guard now - last >= 5 || p.sentencesDone == p.sentencesTotal else { return }
            last = now
            progress(String(format: "covariance shard: %d/%d sentences, %.0f tokens/s, ETA %.0f s",
                            p.sentencesDone, p.sentencesTotal, p.tokensPerSecond, p.eta ?? 0))
        }
    }

    public func vstar(_ chunk: VStarChunk) throws -> [ZResult] {
        let cz = ComputeZ(model: model, tokenizer: tokenizer, hp: chunk.hyperparameters)
        var out: [ZResult] = []
        var i = 0
        while i < chunk.requests.count {
            let part = Array(chunk.requests[i..<min(i + Self.zBatch, chunk.requests.count)])
            out += try cz.run(part, templates: chunk.templates)
            i += part.count
        }
        return out
    }
}
