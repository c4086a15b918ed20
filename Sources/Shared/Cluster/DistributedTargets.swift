// v* (docs/algorithm.md §3) of one batch over the cluster: the batch's requests in fixed chunks, each chunk a
// job on the committed weights. The chunking depends only on the batch (never on the worker count or
// on which chunks a previous run finished), so a re-run or a re-queued chunk computes the same inputs.
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

public enum DistributedTargets {
    /// Requests per v* job: `JobRunner.zBatch`, the chunk `Editor.targets` uses in one process.
    public static let chunkSize = JobRunner.zBatch

    /// Index ranges of the chunks of a batch of `count` requests.
    public static func chunks(count: Int, size: Int = chunkSize) -> [Range<Int>] {
        stride(from: 0, to: count, by: max(1, size)).map { $0..<min($0 + size, count) }
    }

    /// v* for `requests` (the chunks listed in `pending`, by index into `chunks(count:)`), reporting
    /// each finished chunk through `onChunk(chunk index, results)` in arrival order.
    public static func run(pool: WorkerPool, batch: Int, requests: [EditRequest], pending: [Int],
                           hyperparameters: EditHyperparameters, templates: ContextTemplates,
                           onChunk: (Int, [ZResult]) throws -> Void) throws {
        let ranges = chunks(count: requests.count)
        let works: [Work] = pending.map { c in
            .vstar(VStarChunk(batch: batch, chunk: c, requests: Array(requests[ranges[c]]),
                              hyperparameters: hyperparameters, templates: templates))
        }
        try pool.run(works) { i, result, _ in
            guard case .vstar(let zs) = result.output, zs.count == ranges[pending[i]].count,
                  zs.allSatisfy({ $0.z.count == zs[0].z.count && $0.z.allSatisfy(\.isFinite) }) else {
                throw ClusterError.badResult(job: result.jobID, reason: "v* chunk \(pending[i]) of batch \(batch): wrong kind, count or values")
            }
            try onChunk(pending[i], zs)
        }
    }
}
