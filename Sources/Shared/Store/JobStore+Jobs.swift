// The record of a campaign's jobs: each is pending until its result is committed (done) or it has
// failed `maxAttempts` times (failed). The record is what a resumed run trusts; it holds no leases.
//
// One lease authority: the coordinator's WorkerPool, in memory. It alone hands jobs to workers and
// takes them back, because it alone sees the workers' heartbeats and results; one coordinator per
// state directory (StateLock) means no other process could hold a job anyway. A job whose worker died
// is re-queued by the pool at once, and one left running when the coordinator died is simply still
// pending here. (State directories written before this rule may hold rows in the old `leased` state:
// they count as pending.)
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

    /// Records a job's result (an artifact, small JSON, or both) and marks it done. A vstar job's
    /// artifact also becomes the z-result of its requests. A job already done or failed is refused.
    @discardableResult
    public func complete(job id: Int64, artifact: ArtifactFile? = nil, result: String? = nil,
                         now: Double = Date().timeIntervalSince1970) throws -> Job {
        try write {
            let j = try openJob(id)
            let a = try artifact.map { try insertArtifact($0, now: now) }
            try db.run("""
                UPDATE jobs SET state = 'done', lease_owner = NULL, lease_expiry = NULL, result_artifact = ?, result = ?,
                    error = NULL, attempts = attempts + 1, updated_at = ?
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

    /// Records an attempt that failed: pending again for another run, or failed for good after
    /// `maxAttempts`. Returns the job's new state.
    @discardableResult
    public func fail(job id: Int64, error: String, now: Double = Date().timeIntervalSince1970) throws -> JobState {
        try write {
            let j = try openJob(id)
            let final = j.attempts + 1 >= maxAttempts
            let text = final ? "gave up after \(j.attempts + 1) attempts: \(error)" : error
            try db.run("""
                UPDATE jobs SET state = ?, lease_owner = NULL, lease_expiry = NULL, error = ?, attempts = attempts + 1,
                    updated_at = ?
                WHERE id = ?
                """, [.text(final ? "failed" : "pending"), .text(text), .double(now), .int(id)])
            return final ? .failed : .pending
        }
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

    /// A job that may still get a result: pending (or `leased` in an older state directory).
    private func openJob(_ id: Int64) throws -> Job {
        let j = try jobRow(id)
        guard j.state == .pending || j.state == .leased else { throw StoreError.jobClosed(job: id, state: j.state.rawValue) }
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
