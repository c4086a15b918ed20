// The job queue a coordinator hands out to workers. A job is pending, leased (to one owner until its
// lease expiry), done or failed. Leasing takes the oldest pending job in one IMMEDIATE transaction, so
// two coordinators' connections can never hand one job to two owners. A lease that expires, or whose
// owner is released (a dead worker), puts the job back to pending — unless it has been taken
// `maxAttempts` times, then it fails with the reason in `error`.
import Support
import GGUF
import Model
import Editing
import Foundation

public enum JobKind: String, Codable, Sendable, CaseIterable {
    case covShard = "cov_shard", vstar, evalShard = "eval_shard"
}

public enum JobState: String, Codable, Sendable, CaseIterable { case pending, leased, done, failed }

/// The payload of a `vstar` job: v* of these requests on the model with batches 1…weightsVersion
/// applied. Its result is a `zresults` artifact holding one ZResult per request, in this order.
public struct VStarPayload: Codable, Equatable, Sendable {
    public var campaign: Int64
    public var batch: Int
    public var requests: [Int]
    public var weightsVersion: Int
    public init(campaign: Int64, batch: Int, requests: [Int], weightsVersion: Int) {
        self.campaign = campaign; self.batch = batch; self.requests = requests; self.weightsVersion = weightsVersion
    }
}

public struct NewJob: Sendable {
    public var kind: JobKind
    public var campaign: Int64?
    public var batch: Int?
    public var payload: String
    public init(kind: JobKind, campaign: Int64? = nil, batch: Int? = nil, payload: String) {
        self.kind = kind; self.campaign = campaign; self.batch = batch; self.payload = payload
    }

    public static func vstar(_ p: VStarPayload) throws -> NewJob {
        NewJob(kind: .vstar, campaign: p.campaign, batch: p.batch,
               payload: String(decoding: try JSONEncoder().encode(p), as: UTF8.self))
    }
}

public struct Job: Sendable {
    public var id: Int64
    public var kind: JobKind
    public var campaign: Int64?
    public var batch: Int?
    public var payload: String
    public var state: JobState
    public var leaseOwner: String?
    public var leaseExpiry: Double?
    public var attempts: Int
    public var resultArtifact: ArtifactFile?
    public var result: String?
    public var error: String?

    public func decodePayload<T: Decodable>(_ type: T.Type) throws -> T {
        do { return try JSONDecoder().decode(type, from: Data(payload.utf8)) } catch {
            throw StoreError.badRecord(path: "job \(id)", what: "payload", reason: "\(error)")
        }
    }
}

extension JobStore {
    @discardableResult
    public func enqueue(_ jobs: [NewJob], now: Double = Date().timeIntervalSince1970) throws -> [Int64] {
        try write {
            let s = try db.prepare("""
                INSERT INTO jobs (kind, campaign, batch, payload, state, created_at, updated_at)
                VALUES (?, ?, ?, ?, 'pending', ?, ?)
                """)
            return try jobs.map { j in
                try s.bind([.text(j.kind.rawValue), j.campaign.map { .int($0) } ?? .null, j.batch.map { .int(Int64($0)) } ?? .null,
                            .text(j.payload), .double(now), .double(now)])
                while try s.step() {}
                return db.lastInsertRowID
            }
        }
    }

    /// Takes the oldest pending job (expired leases count as pending) of one of `kinds`, for `owner`
    /// until now + seconds; nil when none is available.
    public func lease(owner: String, now: Double, seconds: Double, kinds: [JobKind] = JobKind.allCases) throws -> Job? {
        try write {
            try settleExpired(now: now)
            let marks = kinds.map { _ in "?" }.joined(separator: ", ")
            guard let row = try db.queryOne("SELECT id FROM jobs WHERE state = 'pending' AND kind IN (\(marks)) ORDER BY id LIMIT 1",
                                            kinds.map { .text($0.rawValue) }) else { return nil }
            let id = try row.int("id")
            try db.run("""
                UPDATE jobs SET state = 'leased', lease_owner = ?, lease_expiry = ?, attempts = attempts + 1, updated_at = ?
                WHERE id = ?
                """, [.text(owner), .double(now + seconds), .double(now), .int(id)])
            return try jobRow(id)
        }
    }

    /// Extends `owner`'s lease of a job (a worker still at work says so).
    public func renew(job id: Int64, owner: String, now: Double, seconds: Double) throws {
        try write {
            _ = try heldJob(id, owner)
            try db.run("UPDATE jobs SET lease_expiry = ?, updated_at = ? WHERE id = ?", [.double(now + seconds), .double(now), .int(id)])
        }
    }

    /// Records a job's result (an artifact, small JSON, or both) and marks it done. Only the lease
    /// holder may: a worker whose lease expired and was given to another is told so (.staleLease).
    /// A vstar job's artifact also becomes the z-result of its requests.
    @discardableResult
    public func complete(job id: Int64, owner: String, artifact: ArtifactFile? = nil, result: String? = nil,
                         now: Double = Date().timeIntervalSince1970) throws -> Job {
        try write {
            let j = try heldJob(id, owner)
            let a = try artifact.map { try insertArtifact($0, now: now) }
            try db.run("""
                UPDATE jobs SET state = 'done', lease_expiry = NULL, result_artifact = ?, result = ?, error = NULL, updated_at = ?
                WHERE id = ?
                """, [a.map { .int($0.id ?? 0) } ?? .null, result.map { .text($0) } ?? .null, .double(now), .int(id)])
            if j.kind == .vstar, let a {
                let p = try j.decodePayload(VStarPayload.self)
                for r in p.requests {
                    try db.run("UPDATE requests SET z_artifact = ? WHERE campaign = ? AND idx = ?",
                               [.int(a.id ?? 0), .int(p.campaign), .int(Int64(r))])
                }
            }
            return try jobRow(id)
        }
    }

    /// The lease holder reports that the job failed: pending again for another try, or failed for good
    /// after `maxAttempts`. Returns the job's new state.
    @discardableResult
    public func fail(job id: Int64, owner: String, error: String, now: Double = Date().timeIntervalSince1970) throws -> JobState {
        try write {
            let j = try heldJob(id, owner)
            let final = j.attempts >= maxAttempts
            let text = final ? "gave up after \(j.attempts) attempts: \(error)" : error
            try db.run("""
                UPDATE jobs SET state = ?, lease_owner = NULL, lease_expiry = NULL, error = ?, updated_at = ? WHERE id = ?
                """, [.text(final ? "failed" : "pending"), .text(text), .double(now), .int(id)])
            return final ? .failed : .pending
        }
    }

    /// Puts every job leased to `owner` back (a worker that died or left). Returns how many.
    @discardableResult
    public func releaseJobs(owner: String, now: Double = Date().timeIntervalSince1970) throws -> Int {
        try write { try release(whereClause: "lease_owner = ?", [.text(owner)], reason: "worker \(owner) is gone", now: now) }
    }

    /// Puts every job whose lease expired back. Returns how many.
    @discardableResult
    public func expireLeases(now: Double) throws -> Int {
        try write { try settleExpired(now: now) }
    }

    public func job(id: Int64) throws -> Job {
        try read { try jobRow(id) }
    }

    /// Jobs of a kind, optionally of one campaign and batch, in id order.
    public func jobs(kind: JobKind, campaign: Int64? = nil, batch: Int? = nil) throws -> [Job] {
        try read {
            try db.query("""
                SELECT id FROM jobs WHERE kind = ? AND (?2 IS NULL OR campaign = ?2) AND (?3 IS NULL OR batch = ?3) ORDER BY id
                """, [.text(kind.rawValue), campaign.map { .int($0) } ?? .null, batch.map { .int(Int64($0)) } ?? .null])
                .map { try jobRow(try $0.int("id")) }
        }
    }

    // MARK: inside transactions

    func settleExpired(now: Double) throws -> Int {
        try release(whereClause: "lease_expiry <= ?", [.double(now)], reason: "lease expired", now: now)
    }

    /// Leased jobs matching `whereClause` go back to pending, or to failed once out of attempts.
    func release(whereClause: String, _ args: [SQLiteValue], reason: String, now: Double) throws -> Int {
        // The reason is bound, never spliced: it carries a worker's name.
        let failed = try db.run("""
            UPDATE jobs SET state = 'failed', error = 'gave up after ' || attempts || ' attempts: ' || ? || ' (owner ' || lease_owner || ')',
                lease_owner = NULL, lease_expiry = NULL, updated_at = ?
            WHERE state = 'leased' AND attempts >= ? AND \(whereClause)
            """, [.text(reason), .double(now), .int(Int64(maxAttempts))] + args)
        let back = try db.run("""
            UPDATE jobs SET state = 'pending', error = ? || ' (owner ' || lease_owner || ')',
                lease_owner = NULL, lease_expiry = NULL, updated_at = ?
            WHERE state = 'leased' AND \(whereClause)
            """, [.text(reason), .double(now)] + args)
        return failed + back
    }

    private func heldJob(_ id: Int64, _ owner: String) throws -> Job {
        let j = try jobRow(id)
        guard j.state == .leased, j.leaseOwner == owner else {
            throw StoreError.staleLease(job: id, owner: owner, state: j.state.rawValue, holder: j.leaseOwner)
        }
        return j
    }

    func jobRow(_ id: Int64) throws -> Job {
        guard let r = try db.queryOne("SELECT * FROM jobs WHERE id = ?", [.int(id)]) else { throw StoreError.unknownJob(id: id) }
        let kindText = try r.string("kind"), stateText = try r.string("state")
        guard let kind = JobKind(rawValue: kindText), let state = JobState(rawValue: stateText) else {
            throw StoreError.badRecord(path: path, what: "job \(id)", reason: "kind \(kindText) / state \(stateText)")
        }
        return Job(id: id, kind: kind, campaign: try r.optionalInt("campaign"), batch: try r.optionalInt("batch").map { Int($0) },
                   payload: try r.string("payload"), state: state, leaseOwner: try r.optionalString("lease_owner"),
                   leaseExpiry: try r.optionalDouble("lease_expiry"), attempts: Int(try r.int("attempts")),
                   resultArtifact: try artifact(id: r.optionalInt("result_artifact")),
                   result: try r.optionalString("result"), error: try r.optionalString("error"))
    }
}
