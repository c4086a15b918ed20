// The job record of the state database: outcomes recorded once, the attempt limit, the v* payload and
// result artifact, and rows left `leased` by older versions.
import Foundation
import Shared
import XCTest

final class JobQueueTests: XCTestCase {
    var dir = ""
    override func setUp() { dir = StoreFixtures.directory() }
    override func tearDown() { try? FileManager.default.removeItem(atPath: dir) }

    func jobs(_ n: Int) -> [NewJob] { (0..<n).map { NewJob(kind: .evalShard, payload: "{\"shard\":\($0)}") } }

    func testCompleteAndFailRecordOutcomesOnce() throws {
        let s = try JobStore(directory: dir, create: true)
        XCTAssertEqual(try s.enqueue(jobs(3), now: 0), [1, 2, 3])
        XCTAssertEqual(try s.job(id: 1).state, .pending)
        let done = try s.complete(job: 1, result: "{\"ok\":1}", now: 13)
        XCTAssertEqual(done.state, .done)
        XCTAssertEqual(done.result, "{\"ok\":1}")
        XCTAssertEqual(done.attempts, 1)
        XCTAssertThrowsError(try s.complete(job: 1, result: "{}")) {
            XCTAssertEqual("\($0)", "job 1 is done: its outcome is already recorded")
        }
        XCTAssertThrowsError(try s.fail(job: 1, error: "late")) {
            XCTAssertEqual("\($0)", "job 1 is done: its outcome is already recorded")
        }
        XCTAssertEqual(try s.fail(job: 2, error: "worker w3 is gone", now: 14), .pending)
        XCTAssertEqual(try s.job(id: 2).error, "worker w3 is gone")
        XCTAssertEqual(try s.job(id: 2).attempts, 1)
        XCTAssertThrowsError(try s.job(id: 99)) { XCTAssertEqual("\($0)", "no job 99") }
        let st = try s.status(now: 14, liveness: 10)
        XCTAssertEqual(st.jobs, ["pending": 2, "leased": 0, "done": 1, "failed": 0])
    }

    /// A row in the `leased` state, as states written before the pool became the one lease authority
    /// may hold, counts as pending: it can be completed.
    func testALeasedRowOfAnOlderStateIsStillOpen() throws {
        let s = try JobStore(directory: dir, create: true)
        try s.enqueue(jobs(1), now: 0)
        let raw = try SQLiteDatabase(path: s.path, create: false)
        try raw.run("UPDATE jobs SET state = 'leased', lease_owner = 'coordinator-1', lease_expiry = 1e12 WHERE id = 1")
        let j = try s.complete(job: 1, result: "{}", now: 1)
        XCTAssertEqual(j.state, .done)
        XCTAssertNil(j.leaseOwner)
    }

    func testAJobThatFailsMaxAttemptsTimesFailsForGood() throws {
        let s = try JobStore(directory: dir, create: true, maxAttempts: 2)
        try s.enqueue(jobs(1), now: 0)
        XCTAssertEqual(try s.fail(job: 1, error: "out of memory"), .pending)
        XCTAssertEqual(try s.fail(job: 1, error: "out of memory"), .failed)
        XCTAssertEqual(try s.job(id: 1).error, "gave up after 2 attempts: out of memory")
        XCTAssertThrowsError(try s.complete(job: 1))
    }

    func testVStarJobCarriesItsPayloadAndResultArtifact() throws {
        let s = try JobStore(directory: dir, create: true)
        let c = try s.createCampaign(settings: StoreFixtures.settings(requests: 4, batchSize: 4),
                                     templates: ContextTemplates(groups: [["{}"]]), requests: StoreFixtures.requests(4))
        let p = VStarPayload(campaign: c.id, batch: 1, requests: [0, 1], weightsVersion: 0)
        try s.enqueue([try .vstar(p)], now: 0)
        let j = try XCTUnwrap(try s.jobs(kind: .vstar, campaign: c.id, batch: 1).first)
        XCTAssertEqual(try j.decodePayload(VStarPayload.self), p)
        XCTAssertEqual(j.batch, 1)
        let z = try StoreFixtures.file(dir, "z/job-1.bin", .zresults, [9, 9])
        let done = try s.complete(job: j.id, artifact: z, now: 1)
        XCTAssertEqual(done.resultArtifact?.path, "z/job-1.bin")
        XCTAssertEqual(try s.jobs(kind: .vstar, campaign: c.id, batch: 1).map(\.id), [j.id])
        XCTAssertEqual(try s.jobs(kind: .vstar, campaign: c.id, batch: 2).count, 0)
        let raw = try SQLiteDatabase(path: s.path, create: false)
        XCTAssertEqual(try raw.query("SELECT z_artifact FROM requests ORDER BY idx").map { $0["z_artifact"] },
                       [.int(done.resultArtifact?.id ?? -1), .int(done.resultArtifact?.id ?? -1), .null, .null])
    }
}
