// Workers as the coordinator last saw them, and the campaign's progress summary (`alphaedit status`).
import Foundation

public struct WorkerInfo: Codable, Equatable, Sendable {
    public var name: String
    public var pid: Int
    public var host: String
    public var threads: Int
    public var modelChecksum: String
    public var protocolVersion: Int
    public init(name: String, pid: Int, host: String, threads: Int, modelChecksum: String, protocolVersion: Int) {
        self.name = name; self.pid = pid; self.host = host; self.threads = threads
        self.modelChecksum = modelChecksum; self.protocolVersion = protocolVersion
    }
}

public enum WorkerState: String, Codable, Sendable { case alive, gone }

public struct WorkerRecord: Sendable {
    public var info: WorkerInfo
    public var firstSeen: Double
    public var lastSeen: Double
    public var state: WorkerState
}

/// Progress of the state directory's campaign and its job queue. JSON keys are snake_case: this is
/// the contract of `alphaedit status --json`.
public struct StoreStatus: Codable, Equatable, Sendable {
    public var method: String?
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

    enum CodingKeys: String, CodingKey {
        case method, jobs
        case batchesCommitted = "batches_committed", batchesTotal = "batches_total"
        case requestsDone = "requests_done", requestsTotal = "requests_total"
        case workersAlive = "workers_alive", workersKnown = "workers_known"
        case lastBatchAt = "last_batch_at", lastBatchSeconds = "last_batch_seconds"
    }
}

extension JobStore {
    /// A worker (re)registers: alive from now on.
    public func upsertWorker(_ w: WorkerInfo, now: Double) throws {
        try write {
            try db.run("""
                INSERT INTO workers (name, pid, host, threads, model_checksum, protocol, first_seen, last_seen, state)
                VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7, 'alive')
                ON CONFLICT (name) DO UPDATE SET pid = ?2, host = ?3, threads = ?4, model_checksum = ?5, protocol = ?6,
                    last_seen = ?7, state = 'alive'
                """, [.text(w.name), .int(Int64(w.pid)), .text(w.host), .int(Int64(w.threads)), .text(w.modelChecksum),
                      .int(Int64(w.protocolVersion)), .double(now)])
        }
    }

    public func heartbeat(worker name: String, now: Double) throws {
        try write {
            let n = try db.run("UPDATE workers SET last_seen = ?, state = 'alive' WHERE name = ?", [.double(now), .text(name)])
            guard n == 1 else { throw StoreError.unknownWorker(name: name) }
        }
    }

    /// A worker left or missed its heartbeats: marked gone and its leased jobs put back, together.
    /// Returns how many jobs were put back.
    @discardableResult
    public func workerGone(_ name: String, now: Double) throws -> Int {
        try write {
            try db.run("UPDATE workers SET state = 'gone' WHERE name = ?", [.text(name)])
            return try release(whereClause: "lease_owner = ?", [.text(name)], reason: "worker \(name) is gone", now: now)
        }
    }

    public func workers() throws -> [WorkerRecord] {
        try read {
            try db.query("SELECT * FROM workers ORDER BY name").map { r in
                let stateText = try r.string("state")
                guard let state = WorkerState(rawValue: stateText) else {
                    throw StoreError.badRecord(path: path, what: "worker \(try r.string("name"))", reason: "state \(stateText)")
                }
                return WorkerRecord(
                    info: WorkerInfo(name: try r.string("name"), pid: Int(try r.int("pid")), host: try r.string("host"),
                                     threads: Int(try r.int("threads")), modelChecksum: try r.string("model_checksum"),
                                     protocolVersion: Int(try r.int("protocol"))),
                    firstSeen: try r.double("first_seen"), lastSeen: try r.double("last_seen"), state: state)
            }
        }
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
            return StoreStatus(
                method: try db.queryOne("SELECT method FROM campaigns ORDER BY id LIMIT 1")?.string("method"),
                batchesCommitted: try count("SELECT count(*) AS n FROM batches WHERE state = 'committed'"),
                batchesTotal: try count("SELECT count(*) AS n FROM batches"),
                requestsDone: try count("SELECT count(*) AS n FROM requests WHERE state = 'done'"),
                requestsTotal: try count("SELECT count(*) AS n FROM requests"),
                jobs: jobs,
                workersAlive: try count("SELECT count(*) AS n FROM workers WHERE state = 'alive' AND last_seen >= ?", [.double(now - liveness)]),
                workersKnown: try count("SELECT count(*) AS n FROM workers"),
                lastBatchAt: try last?.optionalDouble("committed_at"),
                lastBatchSeconds: try last?.optionalDouble("seconds"))
        }
    }
}
