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

    enum CodingKeys: String, CodingKey {
        case method, stages, jobs
        case batchesCommitted = "batches_committed", batchesTotal = "batches_total"
        case requestsDone = "requests_done", requestsTotal = "requests_total"
        case workersAlive = "workers_alive", workersKnown = "workers_known"
        case lastBatchAt = "last_batch_at", lastBatchSeconds = "last_batch_seconds"
        case filesChecked = "files_checked", filesBad = "files_bad"
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
                lastBatchSeconds: try last?.optionalDouble("seconds"), filesChecked: nil, filesBad: nil)
        }
    }
}
