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
    /// v* requests a minute over the latest completed v* jobs (`VStarRate`), nil with too few.
    public var vstarRequestsPerMinute: Double?
    /// The v* requests not done yet (pending batches, less their done jobs) at that rate, in seconds.
    public var vstarSecondsLeft: Double?
    /// The batches `alphaedit rollback` can go back to (0: none kept): all of 0…committed (keys a batch
    /// committed before 2026-12-07 lacks are read again from the model). Nil without a campaign.
    public var rollbackTargets: [Int]?

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
        case rollbackTargets = "rollback_targets"
    }
}

/// The v* rate from the completion times of done v* jobs (the time a job was marked done) and their
/// request counts. W workers finish W jobs a round, often together, so consecutive completions say
/// little; completion i against completion i − W (`lag`, the workers alive) spans one round whether they
/// finish together or spread out. The rate is the median over the latest `window` such spans, so a span
/// that holds a stop (the coordinator killed and restarted, a batch's solve) moves it little.
public enum VStarRate {
    public static func requestsPerSecond(_ completions: [(at: Double, requests: Int)], lag: Int = 1, window: Int = 32) -> Double? {
        let w = Swift.max(1, lag)
        let done = Array(completions.sorted { $0.at < $1.at }.suffix(window + w))
        guard done.count > w else { return nil }
        var rates: [Double] = []
        for i in w..<done.count {
            let span = done[i].at - done[i - w].at
            let requests = done[(i - w + 1)...i].reduce(0) { $0 + $1.requests }
            if span > 0 { rates.append(Double(requests) / span) }
        }
        guard !rates.isEmpty else { return nil }
        rates.sort()
        let m = rates.count / 2
        return rates.count % 2 == 1 ? rates[m] : (rates[m - 1] + rates[m]) / 2
    }
}

extension StoreStatus {
    /// The rollback targets of `committed` batches that `EditRollback` still takes with these files damaged:
    /// none with the base damaged (every rollback keeps it); below the first damaged deltas (a rollback to K
    /// keeps batches 1…K); with keys or Cp damaged only 0 and `committed` (a rollback to another batch rebuilds
    /// Cp from every batch's keys and checks it against the recorded one).
    public static func rollbackTargets(_ targets: [Int], committed: Int, damaged: [ArtifactFile]) -> [Int] {
        if damaged.contains(where: { $0.path == "projector.bin" || $0.path == "statistics.bin" }) { return [] }
        var out = targets
        let deltas = damaged.filter { $0.kind == .deltas }.compactMap { Int($0.path.filter(\.isNumber)) }
        if let first = deltas.min() { out = out.filter { $0 < first } }
        if damaged.contains(where: { $0.kind == .keys || $0.kind == .cp }) { out = out.filter { $0 == 0 || $0 == committed } }
        return out
    }
}

extension JobStore {
    /// Recomputes the checksum of every file the database records: (files checked, the bad ones with
    /// their reason).
    public func verifyFiles() throws -> (checked: Int, bad: [String]) {
        let (checked, bad, _) = try verifyFilesNamingDamaged()
        return (checked, bad)
    }

    /// `verifyFiles`, with the records of the damaged files.
    public func verifyFilesNamingDamaged() throws -> (checked: Int, bad: [String], damaged: [ArtifactFile]) {
        let files = try read {
            try db.query("SELECT id, kind, path, checksum, bytes FROM artifacts ORDER BY id").compactMap { try artifact($0, idColumn: "id") }
        }
        var bad: [String] = [], damaged: [ArtifactFile] = []
        for f in files {
            do { _ = try verified(f) } catch { bad.append("\(error)"); damaged.append(f) }
        }
        return (files.count, bad, damaged)
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
            let alive = try count("SELECT count(*) AS n FROM workers WHERE state = 'alive' AND last_seen >= ?", [.double(now - liveness)])
            let rate = VStarRate.requestsPerSecond(completions, lag: alive)
            let requestsLeft = try count("SELECT count(*) AS n FROM requests WHERE state = 'pending'") - doneInPending
            // Every committed batch is a target: keys a batch committed before 2026-12-07 lacks are read again
            // from the model (EditRollback.recomputeKeys).
            let targets = Array(0...(try count("SELECT count(*) AS n FROM batches WHERE state = 'committed'")))
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
                vstarSecondsLeft: rate.map { Double(max(0, requestsLeft)) / $0 },
                rollbackTargets: settings == nil ? nil : targets)
        }
    }
}
