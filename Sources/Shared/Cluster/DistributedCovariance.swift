// K0 statistics (docs/algorithm.md §1) over a cluster: the sentence range is cut into shards of consecutive
// sentences, each shard is a job, and the partial sums are added in shard-index order — never in
// arrival order — so the result does not depend on the number of workers, their speed or a re-run
// shard: it equals the single-process build up to float64 summation order (≤ 1e-12 relative, tested).
// Shard ends fall on multiples of the builder's batch size, so no shard splits a global batch (see
// CovarianceBuilder): every sentence's keys are the same float32 numbers on every worker.
// Shards that finish early wait until every shard before them is added: in memory within a budget, on
// disk past it; the running sum is checkpointed so a coordinator started again resumes (ShardReduction).
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

public struct CovarianceJobPlan: Sendable, Equatable {
    public var corpus: String
    public var range: Range<Int>
    public var layers: [Int]
    public var f: Int
    public var batchSentences: Int
    public var shardSentences: Int

    public init(corpus: String, range: Range<Int>, layers: [Int], f: Int,
                batchSentences: Int = CovarianceBuilder.defaultBatchSentences, shardSentences: Int) {
        self.corpus = corpus; self.range = range; self.layers = layers; self.f = f
        self.batchSentences = batchSentences; self.shardSentences = shardSentences
    }

    /// Consecutive shards of `shardSentences` sentences rounded up to whole batches, their inner ends
    /// on multiples of `batchSentences` (the first and last shards may be shorter).
    public var shards: [CovarianceShard] {
        let s = max(1, batchSentences)
        let step = max(1, (shardSentences + s - 1) / s) * s
        var out: [CovarianceShard] = []
        var lo = range.lowerBound
        while lo < range.upperBound {
            let hi = min(range.upperBound, lo / s * s + step)
            out.append(CovarianceShard(corpus: corpus, first: lo, count: hi - lo, layers: layers, batchSentences: s,
                                       memoryBytes: KeyStatistics.shardBytes(layers: layers.count, f: f)))
            lo = hi
        }
        return out
    }
}

public struct DistributedCovarianceProgress: Sendable {
    public var shardsDone: Int
    public var shardsTotal: Int
    /// Tokens of the shards this process ran.
    public var tokensDone: Int
    public var elapsed: Double
    /// Shards taken up from an earlier coordinator (ShardReduction), counted in `shardsDone`.
    public var shardsResumed = 0
    public var tokensPerSecond: Double { elapsed > 0 ? Double(tokensDone) / elapsed : 0 }
    public var eta: Double? {
        let ran = shardsDone - shardsResumed
        return ran > 0 ? elapsed / Double(ran) * Double(shardsTotal - shardsDone) : nil
    }
}

/// Timings of the coordinator's share of the work, for the scaling note (bench cluster).
public struct ReductionTimings: Sendable, Codable {
    public init() {}
    public var shards = 0
    public var payloadBytes = 0
    /// Parsing the shard artifacts (checksum + decode).
    public var decodeSeconds = 0.0
    /// Adding the partial sums (and writing a waiting shard to disk, reading it back).
    public var mergeSeconds = 0.0
    /// Shards taken up from an earlier coordinator's files (not run again).
    public var resumedShards = 0
    /// Shards that waited on disk (past the memory budget), and the most payload bytes held in memory.
    public var spilledShards = 0
    public var peakHeldBytes = 0
    /// Checkpoints of the running sum written, and the seconds they took.
    public var checkpoints = 0
    public var checkpointSeconds = 0.0

    /// Adds another pass's timings (DistributedCovariance's passes); the peak is the larger one.
    mutating func add(_ o: ReductionTimings) {
        shards += o.shards; payloadBytes += o.payloadBytes; decodeSeconds += o.decodeSeconds; mergeSeconds += o.mergeSeconds
        resumedShards += o.resumedShards; spilledShards += o.spilledShards; peakHeldBytes = max(peakHeldBytes, o.peakHeldBytes)
        checkpoints += o.checkpoints; checkpointSeconds += o.checkpointSeconds
    }
}

public enum DistributedCovariance {
    /// The statistics and the coordinator's reduction timings. `directory`: where shards that wait for
    /// an earlier one beyond `memoryBudget` bytes go, and the checkpoints a coordinator started again on
    /// the same plan resumes from (ShardReduction); the caller removes it (`ShardReduction.discard`) once
    /// it has stored the result. Without one, a private temporary folder serves and is removed here.
    ///
    /// Passes: where a shard of every layer would not fit a worker's memory or its machine's (as the
    /// workers report it, WorkerPool+Memory), the layers are built in passes of as many as fit, each pass
    /// a plan of its own over the same sentences (in `directory/layers-…`), and the parts joined. Each
    /// layer's keys and sums are the ones a single pass makes, so the result does not depend on the cut;
    /// every pass runs the forward again up to its last layer.
    public static func build(pool: WorkerPool, plan: CovarianceJobPlan, provenance: String, directory: String? = nil,
                             memoryBudget: Int = ShardReduction.defaultMemoryBudget, checkpointInterval: Double = 60,
                             progress: (DistributedCovarianceProgress) -> Void = { _ in }) throws -> (KeyStatistics, ReductionTimings) {
        try pool.awaitWorkers()
        let (perPass, fits) = pool.layersPerShard(plan.layers.count, f: plan.f)
        if !fits {
            pool.log.warning("K0 statistics: even a shard of one layer (≈ \(MemoryAdmission.size(KeyStatistics.shardBytes(layers: 1, f: plan.f)))) does not fit where the workers run, beside the \(MemoryAdmission.size(plan.layers.count * plan.f * plan.f * 8)) of statistics this coordinator will hold where it shares their machine: the build may run out of memory (the workers' reports are in the \"joined\" lines); fewer layers, fewer local workers or more memory")
        }
        guard perPass < plan.layers.count else {
            return try buildPass(pool: pool, plan: plan, provenance: provenance, directory: directory, memoryBudget: memoryBudget,
                                 checkpointInterval: checkpointInterval, progress: progress)
        }
        let passes = (plan.layers.count + perPass - 1) / perPass
        let size = (plan.layers.count + passes - 1) / passes   // as even as the count allows
        let groups = stride(from: 0, to: plan.layers.count, by: size).map { Array(plan.layers[$0..<min($0 + size, plan.layers.count)]) }
        let all = KeyStatistics.shardBytes(layers: plan.layers.count, f: plan.f)
        pool.log.notice("K0 statistics in \(groups.count) passes (layers \(groups.map { $0.map(String.init).joined(separator: ",") }.joined(separator: " | "))): a shard of all \(plan.layers.count) layers would take ≈ \(MemoryAdmission.size(all)), more than the workers' memory holds; each pass runs the forward over the \(plan.range.count) sentences again")
        var parts: [KeyStatistics] = [], timings = ReductionTimings()
        let shardsPerPass = plan.shards.count
        var tokensBefore = 0, resumedBefore = 0
        let start = ProcessStats.now()
        for (i, layers) in groups.enumerated() {
            var sub = plan
            sub.layers = layers
            let dir = directory.map { $0 + "/layers-" + layers.map(String.init).joined(separator: "-") }
            if let dir { try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true) }
            let (stats, t) = try buildPass(pool: pool, plan: sub, provenance: provenance, directory: dir, memoryBudget: memoryBudget,
                                           checkpointInterval: checkpointInterval) { p in
                var p = p
                p.tokensDone += tokensBefore
                p.shardsDone += i * shardsPerPass
                p.shardsResumed += resumedBefore
                p.shardsTotal = groups.count * shardsPerPass
                p.elapsed = ProcessStats.now() - start
                progress(p)
            }
            tokensBefore += try stats.count(layer: layers[0])
            resumedBefore += t.resumedShards
            parts.append(stats)
            timings.add(t)
        }
        return (try KeyStatistics.joined(parts, provenance: provenance), timings)
    }

    private static func buildPass(pool: WorkerPool, plan: CovarianceJobPlan, provenance: String, directory: String?,
                                  memoryBudget: Int, checkpointInterval: Double,
                                  progress: (DistributedCovarianceProgress) -> Void) throws -> (KeyStatistics, ReductionTimings) {
        let shards = plan.shards
        let own = directory == nil
        let dir = try directory ?? ShardReduction.temporaryDirectory()
        let reduction: ShardReduction
        do {
            reduction = try ShardReduction(directory: dir, plan: plan, provenance: provenance, memoryBudget: memoryBudget,
                                           checkpointInterval: checkpointInterval) { pool.log.notice("\($0)") }
        } catch {
            if own { ShardReduction.discard(directory: dir) }
            throw error
        }
        defer { if own { reduction.remove() } }
        let todo = reduction.remaining
        var tokens = 0
        var t = ReductionTimings()
        t.resumedShards = reduction.resumedShards
        let start = ProcessStats.now()
        try pool.run(todo.map { .covariance(shards[$0]) }) { j, result, payload in
            let i = todo[j]
            let t0 = ProcessStats.now()
            // Checked whole (checksum, shape, length) but not built: the sums are added from the payload.
            let stats: KeyStatistics.Summary
            do { stats = try KeyStatistics.summary(bytes: payload, path: "shard \(i) statistics") } catch {
                throw ClusterError.badResult(job: result.jobID, reason: "\(error)")
            }
            guard stats.layers == plan.layers, stats.f == plan.f else {
                throw ClusterError.badResult(job: result.jobID, reason: "layers \(stats.layers) f \(stats.f), expected \(plan.layers) f \(plan.f)")
            }
            guard case .covariance(let n) = result.output, stats.counts.allSatisfy({ $0 == n }) else {
                throw ClusterError.badResult(job: result.jobID, reason: "token counts of the statistics differ from the result's")
            }
            let t1 = ProcessStats.now()
            try reduction.add(shard: i, payload: payload)
            let t2 = ProcessStats.now()
            t.shards += 1; t.payloadBytes += payload.count
            t.decodeSeconds += t1 - t0; t.mergeSeconds += t2 - t1
            tokens += n
            progress(DistributedCovarianceProgress(shardsDone: t.resumedShards + t.shards, shardsTotal: shards.count, tokensDone: tokens,
                                                   elapsed: ProcessStats.now() - start, shardsResumed: t.resumedShards))
        }
        t.spilledShards = reduction.spilledShards
        t.peakHeldBytes = reduction.peakHeldBytes
        t.checkpoints = reduction.checkpoints
        t.checkpointSeconds = reduction.checkpointSeconds
        return (try reduction.result(), t)
    }
}
