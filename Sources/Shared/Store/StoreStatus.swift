// The progress summary of a state directory (`alphaedit status`), read in one snapshot.
import Support
import GGUF
import Model
import Editing
import Foundation

/// Progress of the state directory's campaign and its job queue. JSON keys are snake_case: this is
/// the contract of `alphaedit status --json`.
public struct StoreStatus: Codable, Equatable, Sendable {
    public var method: String?
    /// The method with its stages (EditStages.name), e.g. "memit+P, filter rect (0.2)".
    public var stages: String?
    public var batchesCommitted: Int
    public var batchesTotal: Int
    public var requestsDone: Int
    public var requestsTotal: Int
    /// Every JobState's count, zeros included.
    public var jobs: [String: Int]
    public var workersAlive: Int
    public var workersKnown: Int
    public var lastBatchAt: Double?
    public var lastBatchSeconds: Double?
    /// Files of the commit record whose checksum was recomputed (nil: not checked).
    public var filesChecked: Int?
    /// Those that are missing or differ from their checksum, each with the reason.
    public var filesBad: [String]?
    /// The first pending batch, and how many of its v* jobs are done of how many (nil: none, or its
    /// jobs not made yet).
    public var currentBatch: Int?
    public var currentBatchJobsDone: Int?
    public var currentBatchJobsTotal: Int?
    /// v* requests a minute over the latest completed v* jobs (`VStarRate`), nil with fewer than two.
    public var vstarRequestsPerMinute: Double?
    /// The v* requests not done yet (pending batches, less their done jobs) at that rate, in seconds.
    public var vstarSecondsLeft: Double?

    enum CodingKeys: String, CodingKey {
        case method, stages, jobs
        case batchesCommitted = "batches_committed", batchesTotal = "batches_total"
        case requestsDone = "requests_done", requestsTotal = "requests_total"
        case workersAlive = "workers_alive", workersKnown = "workers_known"
        case lastBatchAt = "last_batch_at", lastBatchSeconds = "last_batch_seconds"
        case filesChecked = "files_checked", filesBad = "files_bad"
        case currentBatch = "current_batch", currentBatchJobsDone = "current_batch_jobs_done"
        case currentBatchJobsTotal = "current_batch_jobs_total"
        case vstarRequestsPerMinute = "vstar_requests_per_minute", vstarSecondsLeft = "vstar_seconds_left"
    }
}

/// The v* rate from the completion times of done v* jobs (the time a job was marked done) and their
/// request counts: over the latest `window` gaps between consecutive completions, leaving out gaps over
/// `outlier` × their median (the coordinator was stopped, or a batch's solve and commit lay between).
/// Several workers finish jobs side by side, so the gaps shrink with them and the rate is the cluster's.
public enum VStarRate {
    public static func requestsPerSecond(_ completions: [(at: Double, requests: Int)], window: Int = 16,
                                         outlier: Double = 4) -> Double? {
        let done = completions.sorted { $0.at < $1.at }.suffix(window + 1)
        guard done.count >= 2 else { return nil }
        let pairs = zip(done.dropFirst(), done.dropLast()).map { (gap: $0.at - $1.at, requests: $0.requests) }
        let gaps = pairs.map(\.gap).sorted()
        let median = gaps[gaps.count / 2]
        let kept = pairs.filter { $0.gap <= max(median, 1e-9) * outlier }
        let seconds = kept.reduce(0) { $0 + $1.gap }, requests = kept.reduce(0) { $0 + $1.requests }
        return seconds > 0 ? Double(requests) / seconds : nil
    }
}

extension JobStore {
    /// Recomputes the checksum of every file the database records: (files checked, the bad ones with
    /// their reason).
    public func verifyFiles() throws -> (checked: Int, bad: [String]) {
        let files = try read {
            try db.query("SELECT id, kind, path, checksum, bytes FROM artifacts ORDER BY id").compactMap { try artifact($0, idColumn: "id") }
        }
        var bad: [String] = []
        for f in files {
            do { _ = try verified(f) } catch { bad.append("\(error)") }
        }
        return (files.count, bad)
    }

    /// The summary; a worker counts as alive when marked so and seen within `liveness` seconds.
    public func status(now: Double, liveness: Double) throws -> StoreStatus {
        try read {
            func count(_ sql: String, _ args: [SQLiteValue] = []) throws -> Int {
                Int(try db.queryOne(sql, args)?.int("n") ?? 0)
            }
            var jobs = Dictionary(uniqueKeysWithValues: JobState.allCases.map { ($0.rawValue, 0) })
            for r in try db.query("SELECT state, count(*) AS n FROM jobs GROUP BY state") {
                jobs[try r.string("state")] = Int(try r.int("n"))
            }
            let last = try db.queryOne("SELECT committed_at, seconds FROM batches WHERE state = 'committed' ORDER BY committed_at DESC LIMIT 1")
            let settings = try db.queryOne("SELECT settings FROM campaigns ORDER BY id LIMIT 1")
                .flatMap { try? JSONDecoder().decode(CampaignSettings.self, from: Data(try $0.string("settings").utf8)) }
            // v* progress: the done vstar jobs' completion times and sizes, the first pending batch's jobs.
            var completions: [(at: Double, requests: Int)] = [], doneInPending = 0
            let pendingBatches = Set(try db.query("SELECT idx FROM batches WHERE state = 'pending'").map { Int(try $0.int("idx")) })
            let current = pendingBatches.min()
            var currentDone = 0, currentTotal = 0
            for r in try db.query("SELECT batch, state, payload, updated_at FROM jobs WHERE kind = 'vstar'") {
                let batch = try r.optionalInt("batch").map(Int.init)
                let done = try r.string("state") == JobState.done.rawValue
                if batch == current { currentTotal += 1; if done { currentDone += 1 } }
                guard done, let p = try? JSONDecoder().decode(VStarPayload.self, from: Data(try r.string("payload").utf8)) else { continue }
                completions.append((try r.double("updated_at"), p.requests.count))
                if let batch, pendingBatches.contains(batch) { doneInPending += p.requests.count }
            }
            let rate = VStarRate.requestsPerSecond(completions)
            let requestsLeft = try count("SELECT count(*) AS n FROM requests WHERE state = 'pending'") - doneInPending
            return StoreStatus(
                method: try db.queryOne("SELECT method FROM campaigns ORDER BY id LIMIT 1")?.string("method"),
                stages: settings.map { $0.hyperparameters.effectiveStages.name(for: $0.method) },
                batchesCommitted: try count("SELECT count(*) AS n FROM batches WHERE state = 'committed'"),
                batchesTotal: try count("SELECT count(*) AS n FROM batches"),
                requestsDone: try count("SELECT count(*) AS n FROM requests WHERE state = 'done'"),
                requestsTotal: try count("SELECT count(*) AS n FROM requests"),
                jobs: jobs,
                workersAlive: try count("SELECT count(*) AS n FROM workers WHERE state = 'alive' AND last_seen >= ?", [.double(now - liveness)]),
                workersKnown: try count("SELECT count(*) AS n FROM workers"),
                lastBatchAt: try last?.optionalDouble("committed_at"),
                lastBatchSeconds: try last?.optionalDouble("seconds"), filesChecked: nil, filesBad: nil,
                currentBatch: current, currentBatchJobsDone: currentTotal > 0 ? currentDone : nil,
                currentBatchJobsTotal: currentTotal > 0 ? currentTotal : nil,
                vstarRequestsPerMinute: rate.map { $0 * 60 },
                vstarSecondsLeft: rate.map { Double(max(0, requestsLeft)) / $0 })
        }
    }
}
