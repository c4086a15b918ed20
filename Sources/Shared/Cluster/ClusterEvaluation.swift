// Multi-node evaluation (issue 5 §2): an EvalCampaign whose CounterFact evaluations and v* run on
// the cluster's workers. Records go out in shards of consecutive file indices (`evaluation` jobs, the
// worker reads them from the same records file); the shards merge in record order, and each record's
// figures do not depend on its shard (CounterFactEvaluator), so the merged result equals the
// single-process run. v* goes out in DistributedTargets' fixed chunks. Every batch the coordinator
// applies is written as a BatchDeltas file and committed to the pool, which brings each worker to
// that weights version before its next job.
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

public final class ClusterEvaluation: EvalBackend {
    public let pool: WorkerPool
    /// The records file, as a path the workers can read.
    public let records: String
    public let options: FactsOptions
    public let generation: GenerationSettings?
    public let generationRecords: Range<Int>?
    public let snippets: String?
    /// Where the batches' deltas files are written for the workers.
    public let directory: String
    /// Records per evaluation job.
    public var shardRecords = 10

    /// Two jobs for each worker alive: a call of this many records keeps them all busy.
    public var preferredCallRecords: Int { 2 * shardRecords * max(1, pool.aliveCount) }

    public init(pool: WorkerPool, records: String, options: FactsOptions = FactsOptions(), generation: GenerationSettings?,
                generationRecords: Range<Int>?, snippets: String?, directory: String) throws {
        self.pool = pool; self.records = records; self.options = options; self.generation = generation
        self.generationRecords = generationRecords; self.snippets = snippets; self.directory = directory
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    }

    /// Shards of at most `size` consecutive records of `first..<first + count` (v*'s chunking, shifted).
    public static func shards(first: Int, count: Int, size: Int) -> [Range<Int>] {
        DistributedTargets.chunks(count: count, size: size).map { ($0.lowerBound + first)..<($0.upperBound + first) }
    }

    public func evaluate(_ recs: [EditRequest], firstIndex: Int, progress: (Int) -> Void) throws -> EvalShard {
        let ranges = Self.shards(first: firstIndex, count: recs.count, size: shardRecords)
        let works: [Work] = ranges.map {
            .evaluation(EvaluationShard(facts: records, first: $0.lowerBound, count: $0.count, generation: generation,
                                        generationRecords: generationRecords, snippets: snippets, options: options))
        }
        var parts: [EvalShard] = []
        var done = 0
        try pool.run(works) { i, result, _ in
            guard case .evaluation(let shard) = result.output, shard.records.map(\.index) == Array(ranges[i]) else {
                throw ClusterError.badResult(job: result.jobID, reason: "evaluation of records \(ranges[i]): wrong kind or records")
            }
            parts.append(shard)
            done += shard.records.count
            progress(done)
        }
        return try EvalShard.merge(parts)
    }

    public func targets(_ batch: [EditRequest], batch index: Int, hyperparameters: EditHyperparameters,
                        templates: ContextTemplates, progress: (Int) -> Void) throws -> [ZResult] {
        let chunks = DistributedTargets.chunks(count: batch.count)
        var results = [[ZResult]?](repeating: nil, count: chunks.count)
        var done = 0
        try DistributedTargets.run(pool: pool, batch: index, requests: batch, pending: Array(chunks.indices),
                                   hyperparameters: hyperparameters, templates: templates) { c, zs in
            results[c] = zs
            done += zs.count
            progress(done)
        }
        return results.flatMap { $0 ?? [] }
    }

    public func committed(batch index: Int, deltas: BatchDeltas) throws {
        let path = directory + String(format: "/batch-%05d.bin", index)
        try deltas.write(to: path)
        try committed(batch: index, file: path)
    }

    public func committed(batch index: Int, file: String) throws {
        guard index == pool.weightsVersion + 1 else {
            throw JobError.deltasOutOfOrder(held: pool.weightsVersion, got: index)
        }
        pool.commit(version: index, deltas: file)
    }
}
