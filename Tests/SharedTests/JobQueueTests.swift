// The job queue of the state database: lease, renew, complete, fail, expiry, release of a dead
// worker's jobs, the attempt limit, and two connections leasing at once.
import Foundation
import Shared
import XCTest

final class JobQueueTests: XCTestCase {
    var dir = ""
    override func setUp() { dir = StoreFixtures.directory() }
    override func tearDown() { try? FileManager.default.removeItem(atPath: dir) }

    func jobs(_ n: Int) -> [NewJob] { (0..<n).map { NewJob(kind: .evalShard, payload: "{\"shard\":\($0)}") } }

    func testLeaseRenewCompleteExpireAndRelease() throws {
        let s = try JobStore(directory: dir, create: true)
        XCTAssertEqual(try s.enqueue(jobs(3), now: 0), [1, 2, 3])
        let a = try XCTUnwrap(try s.lease(owner: "w1", now: 0, seconds: 10))
        XCTAssertEqual([a.id, Int64(a.attempts)], [1, 1])
        XCTAssertEqual(a.state, .leased)
        XCTAssertEqual(a.leaseOwner, "w1")
        XCTAssertEqual(a.leaseExpiry, 10)
        XCTAssertEqual(try s.lease(owner: "w2", now: 1, seconds: 9)?.id, 2)   // expires at 10
        XCTAssertNil(try s.lease(owner: "w1", now: 1, seconds: 10, kinds: [.vstar]), "no vstar job queued")

        XCTAssertThrowsError(try s.renew(job: 1, owner: "w2", now: 5, seconds: 10)) {
            XCTAssertEqual("\($0)", "job 1 is not leased to w2 (state leased, held by w1)")
        }
        try s.renew(job: 1, owner: "w1", now: 5, seconds: 10)                   // now expires at 15
        XCTAssertEqual(try s.expireLeases(now: 12), 1)                          // job 2 only
        let back = try s.job(id: 2)
        XCTAssertEqual(back.state, .pending)
        XCTAssertNil(back.leaseOwner)
        XCTAssertEqual(back.error, "lease expired (owner w2)")
        XCTAssertThrowsError(try s.complete(job: 2, owner: "w2", result: "{}")) {
            XCTAssertEqual("\($0)", "job 2 is not leased to w2 (state pending)")
        }

        XCTAssertEqual(try s.lease(owner: "w3", now: 12, seconds: 10)?.id, 2, "the oldest pending job first")
        let done = try s.complete(job: 1, owner: "w1", result: "{\"ok\":1}", now: 13)
        XCTAssertEqual(done.state, .done)
        XCTAssertEqual(done.result, "{\"ok\":1}")
        XCTAssertEqual(try s.releaseJobs(owner: "w3", now: 14), 1)
        XCTAssertEqual(try s.job(id: 2).error, "worker w3 is gone (owner w3)")
        XCTAssertEqual(try s.lease(owner: "w4", now: 14, seconds: 10)?.id, 2)
        XCTAssertEqual(try s.job(id: 2).attempts, 3)
        XCTAssertThrowsError(try s.job(id: 99)) { XCTAssertEqual("\($0)", "no job 99") }
        let st = try s.status(now: 14, liveness: 10)
        XCTAssertEqual(st.jobs, ["pending": 1, "leased": 1, "done": 1, "failed": 0])
    }

    func testAJobTakenMaxAttemptsTimesFails() throws {
        let s = try JobStore(directory: dir, create: true, maxAttempts: 2)
        try s.enqueue(jobs(2), now: 0)
        XCTAssertEqual(try s.lease(owner: "a", now: 0, seconds: 5)?.id, 1)
        XCTAssertEqual(try s.lease(owner: "b", now: 6, seconds: 5)?.id, 1, "expired lease taken again")
        // Second expiry: out of attempts, so the next lease fails job 1 and hands out job 2.
        XCTAssertEqual(try s.lease(owner: "c", now: 12, seconds: 5)?.id, 2)
        let j = try s.job(id: 1)
        XCTAssertEqual(j.state, .failed)
        XCTAssertEqual(j.error, "gave up after 2 attempts: lease expired (owner b)")

        // A worker-reported error: retried, then failed at the limit with the worker's text.
        XCTAssertEqual(try s.fail(job: 2, owner: "c", error: "out of memory"), .pending)
        XCTAssertEqual(try s.lease(owner: "d", now: 13, seconds: 5)?.id, 2)
        XCTAssertEqual(try s.fail(job: 2, owner: "d", error: "out of memory"), .failed)
        XCTAssertEqual(try s.job(id: 2).error, "gave up after 2 attempts: out of memory")
        XCTAssertNil(try s.lease(owner: "e", now: 100, seconds: 5))
    }

    func testVStarJobCarriesItsPayloadAndResultArtifact() throws {
        let s = try JobStore(directory: dir, create: true)
        let c = try s.createCampaign(settings: StoreFixtures.settings(requests: 4, batchSize: 4),
                                     templates: ContextTemplates(groups: [["{}"]]), requests: StoreFixtures.requests(4))
        let p = VStarPayload(campaign: c.id, batch: 1, requests: [0, 1], weightsVersion: 0)
        try s.enqueue([try .vstar(p)], now: 0)
        let j = try XCTUnwrap(try s.lease(owner: "w", now: 0, seconds: 60, kinds: [.vstar]))
        XCTAssertEqual(try j.decodePayload(VStarPayload.self), p)
        XCTAssertEqual(j.batch, 1)
        let z = try StoreFixtures.file(dir, "z/job-1.bin", .zresults, [9, 9])
        let done = try s.complete(job: j.id, owner: "w", artifact: z, now: 1)
        XCTAssertEqual(done.resultArtifact?.path, "z/job-1.bin")
        XCTAssertEqual(try s.jobs(kind: .vstar, campaign: c.id, batch: 1).map(\.id), [j.id])
        XCTAssertEqual(try s.jobs(kind: .vstar, campaign: c.id, batch: 2).count, 0)
        let raw = try SQLiteDatabase(path: s.path, create: false)
        XCTAssertEqual(try raw.query("SELECT z_artifact FROM requests ORDER BY idx").map { $0["z_artifact"] },
                       [.int(done.resultArtifact?.id ?? -1), .int(done.resultArtifact?.id ?? -1), .null, .null])
    }

    /// Two connections (as two coordinator threads or processes would have) lease 300 jobs at once:
    /// every job goes to exactly one owner. Each pauses 1 ms between leases (as a coordinator does
    /// work between them); without it sqlite's busy back-off lets one connection take every job.
    func testConcurrentLeasingNeverHandsOneJobToTwoOwners() throws {
        let n = 300
        try JobStore(directory: dir, create: true).enqueue(jobs(n), now: 0)
        let stores = [try JobStore(directory: dir, create: false), try JobStore(directory: dir, create: false)]
        var taken: [[Int64]] = [[], []]
        var errors: [String] = []
        let lock = NSLock()
        DispatchQueue.concurrentPerform(iterations: 2) { k in
            var mine: [Int64] = []
            do {
                while let j = try stores[k].lease(owner: "w\(k)", now: 1, seconds: 600) {
                    XCTAssertEqual(j.leaseOwner, "w\(k)")
                    mine.append(j.id)
                    usleep(1000)
                }
            } catch {
                lock.lock(); errors.append("\(error)"); lock.unlock()
            }
            lock.lock(); taken[k] = mine; lock.unlock()
        }
        XCTAssertEqual(errors, [])
        XCTAssertTrue(Set(taken[0]).isDisjoint(with: taken[1]))
        XCTAssertEqual(Set(taken[0] + taken[1]), Set((1...Int64(n))))
        XCTAssertEqual(taken[0].count + taken[1].count, n)
        XCTAssertGreaterThan(min(taken[0].count, taken[1].count), 0, "both connections leased")
        print("concurrent leasing: \(taken[0].count) + \(taken[1].count) jobs")
        XCTAssertEqual(try stores[0].status(now: 1, liveness: 1).jobs["leased"], n)
    }
}
