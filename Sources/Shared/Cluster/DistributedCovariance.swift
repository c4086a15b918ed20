// K0 statistics (docs/algorithm.md §1) over a cluster: the sentence range is cut into shards of consecutive
// sentences, each shard is a job, and the partial sums are added in shard-index order — never in
// arrival order — so the result does not depend on the number of workers, their speed or a re-run
// shard: it equals the single-process build up to float64 summation order (≤ 1e-12 relative, tested).
// Shard ends fall on multiples of the builder's batch size, so no shard splits a global batch (see
// CovarianceBuilder): every sentence's keys are the same float32 numbers on every worker.
// Shards that finish early wait in memory until every shard before them is added.
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
            out.append(CovarianceShard(corpus: corpus, first: lo, count: hi - lo, layers: layers, batchSentences: s))
            lo = hi
        }
        return out
    }
}

public struct DistributedCovarianceProgress: Sendable {
    public var shardsDone: Int
    public var shardsTotal: Int
    public var tokensDone: Int
    public var elapsed: Double
    public var tokensPerSecond: Double { elapsed > 0 ? Double(tokensDone) / elapsed : 0 }
    public var eta: Double? {
        shardsDone > 0 ? elapsed / Double(shardsDone) * Double(shardsTotal - shardsDone) : nil
    }
}

/// Timings of the coordinator's share of the work, for the scaling note (bench cluster).
public struct ReductionTimings: Sendable, Codable {
    public init() {}
    public var shards = 0
    public var payloadBytes = 0
    /// Parsing the shard artifacts (checksum + decode).
    public var decodeSeconds = 0.0
    /// Adding the partial sums.
    public var mergeSeconds = 0.0
}

public enum DistributedCovariance {
    /// The statistics and the coordinator's reduction timings.
    public static func build(pool: WorkerPool, plan: CovarianceJobPlan, provenance: String,
                             progress: (DistributedCovarianceProgress) -> Void = { _ in }) throws -> (KeyStatistics, ReductionTimings) {
        let shards = plan.shards
        var total = try KeyStatistics(layers: plan.layers, f: plan.f, provenance: provenance)
        var waiting: [Int: KeyStatistics] = [:]
        var next = 0, tokens = 0
        var t = ReductionTimings()
        let start = ProcessStats.now()
        try pool.run(shards.map { .covariance($0) }) { i, result, payload in
            let t0 = ProcessStats.now()
            let stats: KeyStatistics
            do { stats = try KeyStatistics.read(bytes: payload, path: "shard \(i) statistics") } catch {
                throw ClusterError.badResult(job: result.jobID, reason: "\(error)")
            }
            guard stats.layers == plan.layers, stats.f == plan.f else {
                throw ClusterError.badResult(job: result.jobID, reason: "layers \(stats.layers) f \(stats.f), expected \(plan.layers) f \(plan.f)")
            }
            guard case .covariance(let n) = result.output, try plan.layers.allSatisfy({ try stats.count(layer: $0) == n }) else {
                throw ClusterError.badResult(job: result.jobID, reason: "token counts of the statistics differ from the result's")
            }
            let t1 = ProcessStats.now()
            waiting[i] = stats
            while let s = waiting.removeValue(forKey: next) {
                try total.merge(s)
                next += 1
            }
            let t2 = ProcessStats.now()
            t.shards += 1; t.payloadBytes += payload.count
            t.decodeSeconds += t1 - t0; t.mergeSeconds += t2 - t1
            if case .covariance(let n) = result.output { tokens += n }
            progress(DistributedCovarianceProgress(shardsDone: t.shards, shardsTotal: shards.count, tokensDone: tokens,
                                                   elapsed: ProcessStats.now() - start))
        }
        return (total, t)
    }
}
