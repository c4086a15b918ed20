// The coordinator's reduction of a distributed K₀ build (DistributedCovariance): bounded in memory, and
// resumable after the coordinator dies.
//
// Shards are added in shard order, never in arrival order (that keeps the sum independent of the
// workers), so a shard that finishes before an earlier one waits for it. Waiting shards used to be held
// decoded in memory (f × f float64 per layer: twice the packed payload), so behind one slow worker the
// coordinator grew by every shard the others finished: 0.95 GB a shard for Qwen's 5 layers, with nothing
// to stop it. Now a waiting shard is held as its packed payload while all those held stay within
// `memoryBudget`, and written to `directory` past it.
//
// The directory also carries the build across a coordinator's death:
//   plan.json       the plan (provenance, f, layers, shard bounds); files of another plan are removed
//   total-N.aeks    the sum of shards 0..<N, rewritten at most every `checkpointInterval` seconds
//                   (temporary file + rename; the older one removed after)
//   shard-I.aeks    shard I's statistics, finished and waiting for its turn
//   lock            one coordinator per directory (StateLock)
// A coordinator started again on the same plan takes them up and runs only the other shards. The result
// is bit for bit that of an uninterrupted build: the same additions in the same order. A shard merged
// after the last checkpoint (its file removed) or held in memory is simply run again. `remove` deletes the
// directory once the caller has stored the result.
import Support
import Editing
import Store
import Foundation

public struct ReductionPlanRecord: Codable, Equatable, Sendable {
    public var provenance: String
    public var f: Int
    public var layers: [Int]
    /// [first sentence, count] per shard.
    public var shards: [[Int]]

    public init(plan: CovarianceJobPlan, provenance: String) {
        self.provenance = provenance; f = plan.f; layers = plan.layers
        shards = plan.shards.map { [$0.first, $0.count] }
    }
}

public enum ShardReductionError: Error, Equatable, CustomStringConvertible {
    case inUse(directory: String, pid: Int32?)

    public var description: String {
        switch self {
        case let .inUse(d, pid):
            return "the K0 build folder \(d) is in use by " + (pid.map { "pid \($0)" } ?? "another process")
                + ": another coordinator builds these statistics (wait for it to finish, or give another --out or --state)"
        }
    }
}

public final class ShardReduction {
    public static let planFile = "plan.json"
    /// Payload bytes held in memory by default: an eighth of this machine's memory.
    public static var defaultMemoryBudget: Int { Int(ProcessInfo.processInfo.physicalMemory / 8) }

    public let directory: String
    public let shardCount: Int
    public let memoryBudget: Int
    public let checkpointInterval: Double
    private let record: ReductionPlanRecord
    private let log: (String) -> Void
    private var lock: StateLock?

    /// Shards 0..<next are in `total`.
    public private(set) var next = 0
    private var total: KeyStatistics
    private var held: [Int: [UInt8]] = [:]
    private var spilled = Set<Int>()
    private var lastCheckpoint: (shards: Int, at: Double, seconds: Double)

    /// Payload bytes held in memory now, and at most during this build.
    public private(set) var heldBytes = 0
    public private(set) var peakHeldBytes = 0
    /// Shards written to the directory to wait there (this process).
    public private(set) var spilledShards = 0
    /// Shards taken up from an earlier coordinator's files.
    public private(set) var resumedShards = 0
    public private(set) var checkpoints = 0
    public private(set) var checkpointSeconds = 0.0

    /// Takes the directory's lock and what an earlier build of the same plan left there. The running sum
    /// is checkpointed when it advanced and `checkpointInterval` seconds have passed, and at least 20×
    /// the last checkpoint's own time (so writing one costs ≤ 5 % of the build); 0: after every advance.
    public init(directory: String, plan: CovarianceJobPlan, provenance: String, memoryBudget: Int = ShardReduction.defaultMemoryBudget,
                checkpointInterval: Double = 60, log: @escaping (String) -> Void = { _ in }) throws {
        self.directory = directory
        self.memoryBudget = max(0, memoryBudget)
        self.checkpointInterval = checkpointInterval
        self.log = log
        record = ReductionPlanRecord(plan: plan, provenance: provenance)
        shardCount = record.shards.count
        total = try KeyStatistics(layers: plan.layers, f: plan.f, provenance: provenance)
        lastCheckpoint = (0, ProcessStats.now(), 0)
        do { lock = try StateLock(directory: directory) } catch StateLockError.inUse(_, let pid) {
            throw ShardReductionError.inUse(directory: directory, pid: pid)
        }
        try takeUp()
    }

    /// Shard indices still to compute, ascending.
    public var remaining: [Int] {
        (next..<shardCount).filter { held[$0] == nil && !spilled.contains($0) }
    }

    public var isComplete: Bool { next == shardCount }

    /// The sum of every shard, once `isComplete`.
    public func result() throws -> KeyStatistics {
        guard isComplete else { throw KeyStatisticsError.mismatched("reduction has \(next) of \(shardCount) shards") }
        return total
    }

    /// Adds shard `index`'s statistics artifact (checked by the caller: `KeyStatistics.summary`): added
    /// now if it is the next one, else kept (memory or directory) until its turn.
    public func add(shard index: Int, payload: [UInt8]) throws {
        guard index >= next, index < shardCount, held[index] == nil, !spilled.contains(index) else { return }  // a duplicate
        if index == next {
            try total.merge(serialized: payload, path: "shard \(index) statistics")
            next += 1
            try drain()
        } else if heldBytes + payload.count <= memoryBudget {
            held[index] = payload
            heldBytes += payload.count
            peakHeldBytes = max(peakHeldBytes, heldBytes)
        } else {
            try FileIO.writeAtomically(payload, to: shardPath(index))
            spilled.insert(index)
            spilledShards += 1
        }
    }

    /// Lets go of the lock and deletes the directory (after the caller stored the result).
    public func remove() {
        lock?.release()
        lock = nil
        Self.discard(directory: directory)
    }

    /// Deletes a reduction directory whose result is stored (nothing to resume any more).
    public static func discard(directory: String) {
        try? FileManager.default.removeItem(atPath: directory)
    }

    /// A new private folder under the system's temporary directory.
    public static func temporaryDirectory() throws -> String {
        let path = FileManager.default.temporaryDirectory.path + "/alphaedit-k0-\(getpid())-\(UInt32.random(in: 0 ... .max))"
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        return path
    }

    // MARK: -

    private func shardPath(_ i: Int) -> String { directory + "/shard-\(i).aeks" }
    private func totalPath(_ n: Int) -> String { directory + "/total-\(n).aeks" }

    /// Merges the waiting shards whose turn has come, then checkpoints if it is time.
    private func drain() throws {
        while next < shardCount {
            let payload: [UInt8]
            var file: String?
            if let p = held.removeValue(forKey: next) {
                heldBytes -= p.count
                payload = p
            } else if spilled.contains(next) {
                let path = shardPath(next)
                do {
                    payload = try FileIO.read(path)
                    _ = try KeyStatistics.summary(bytes: payload, path: path)
                } catch {
                    // Written by this process a while ago: the disk lost it. Removed, so that running the
                    // same command again resumes and computes this shard again.
                    try? FileManager.default.removeItem(atPath: path)
                    throw FileIOError(path: path, reason: "a waiting shard's statistics no longer read back (\(error)); removed: "
                                      + "run the same command again, it resumes from \(directory) and computes that shard again")
                }
                spilled.remove(next)
                file = path
            } else {
                break
            }
            try total.merge(serialized: payload, path: file ?? "shard \(next) statistics")
            if let file { try? FileManager.default.removeItem(atPath: file) }
            next += 1
        }
        let now = ProcessStats.now()
        if next < shardCount, next > lastCheckpoint.shards,
           now - lastCheckpoint.at >= max(checkpointInterval, checkpointInterval > 0 ? 20 * lastCheckpoint.seconds : 0) {
            try checkpoint()
        }
    }

    private func checkpoint() throws {
        let t0 = ProcessStats.now()
        try total.write(to: totalPath(next))
        if lastCheckpoint.shards > 0 { try? FileManager.default.removeItem(atPath: totalPath(lastCheckpoint.shards)) }
        let t1 = ProcessStats.now()
        lastCheckpoint = (next, t1, t1 - t0)
        checkpoints += 1
        checkpointSeconds += t1 - t0
    }

    /// Reads what an earlier build left in the directory: its plan, latest total and waiting shards.
    private func takeUp() throws {
        let fm = FileManager.default
        let planPath = directory + "/" + Self.planFile
        let names = (try? fm.contentsOfDirectory(atPath: directory)) ?? []
        let ours = names.filter { ($0.hasPrefix("total-") || $0.hasPrefix("shard-")) && ($0.hasSuffix(".aeks") || $0.hasSuffix(".aeks.tmp")) }
        let earlier = fm.contents(atPath: planPath).flatMap { try? JSONDecoder().decode(ReductionPlanRecord.self, from: $0) }
        guard earlier == record else {
            if !ours.isEmpty {
                log("K0 reduction: \(directory) holds \(ours.count) file(s) of another plan (other model, corpus, range, layers or shard size): removed")
            }
            for n in ours { try? fm.removeItem(atPath: directory + "/" + n) }
            let enc = JSONEncoder()
            enc.outputFormatting = [.prettyPrinted, .sortedKeys]
            try FileIO.writeAtomically(Array(try enc.encode(record)), to: planPath)
            return
        }
        func number(_ name: String, _ prefix: String) -> Int? {
            guard name.hasPrefix(prefix), name.hasSuffix(".aeks") else { return nil }
            return Int(name.dropFirst(prefix.count).dropLast(5))
        }
        for n in ours where n.hasSuffix(".tmp") { try? fm.removeItem(atPath: directory + "/" + n) }
        // The latest readable total; the others removed.
        for n in ours.compactMap({ number($0, "total-") }).sorted(by: >) {
            let path = totalPath(n)
            if next == 0, n > 0, n < shardCount, let t = try? KeyStatistics.read(from: path),
               t.layers == record.layers, t.f == record.f, t.provenance == record.provenance {
                total = t
                next = n
                lastCheckpoint = (n, ProcessStats.now(), 0)
            } else {
                if next == 0 { log("K0 reduction: \(path) does not read back: removed") }
                try? fm.removeItem(atPath: path)
            }
        }
        var waiting = 0
        for i in ours.compactMap({ number($0, "shard-") }).sorted() {
            let path = shardPath(i)
            guard i >= next, i < shardCount, let bytes = try? FileIO.read(path), let s = try? KeyStatistics.summary(bytes: bytes, path: path),
                  s.layers == record.layers, s.f == record.f else {
                if i >= next { log("K0 reduction: \(path) does not read back: removed, the shard runs again") }
                try? fm.removeItem(atPath: path)
                continue
            }
            spilled.insert(i)
            waiting += 1
        }
        resumedShards = next + waiting
        if resumedShards > 0 {
            log("K0 reduction: resuming from \(directory): shards 0..<\(next) summed, \(waiting) more finished; \(shardCount - resumedShards) of \(shardCount) to run")
        }
        try drain()
    }
}
