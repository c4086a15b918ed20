// Worker processes the coordinator started (`workers = local N`) that end: a run does not wait for
// workers that cannot start, and a worker killed (SIGKILL, the out-of-memory killer's signal) is named
// with how it ended and counted dead at once.
import Foundation
import Shared
import XCTest

final class LocalWorkerExitTests: XCTestCase {
    func testLocalWorkersThatCannotStartFailTheRunAtOnce() throws {
        let worker = try ClusterTestSupport.executable("alphaedit-worker")
        let dir = try ClusterTestSupport.tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let model = try ClusterTestSupport.model(in: dir)
        let pool = try WorkerPool(endpoint: "ipc://\(dir)/c.ipc", modelChecksum: try ModelChecksum.of(path: model),
                                  logger: CapturedLog().logger)
        defer { pool.shutdown() }
        try pool.spawnLocal(count: 2, executable: worker, modelPath: dir + "/missing.gguf", threads: 1, logLevel: "critical")
        let t0 = ProcessStats.now()
        let shard = CovarianceShard(corpus: dir + "/c.jsonl", first: 0, count: 1, layers: [1], batchSentences: 8)
        XCTAssertThrowsError(try pool.run([.covariance(shard)]) { _, _, _ in }) { e in
            XCTAssertTrue("\(e)".contains("every worker process started here has ended (local-1 (pid "), "\(e)")
            XCTAssertEqual("\(e)".components(separatedBy: "exited with code 1").count, 3, "\(e)")
        }
        XCTAssertLessThan(ProcessStats.now() - t0, 20, "no wait for the no-worker timeout")
    }

    /// A local worker killed by SIGKILL (what the out-of-memory killer sends: measured, Qwen's K0 shards
    /// in a 2 GB control group) is named as such the moment the coordinator sees it gone and counted dead
    /// then (its leases re-queued), while the other worker finishes the run; with every worker killed,
    /// the run's error says how each ended.
    func testLocalWorkersKilledBySIGKILLAreNamedAsSuch() throws {
        let worker = try ClusterTestSupport.executable("alphaedit-worker")
        let dir = try ClusterTestSupport.tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let model = try ClusterTestSupport.model(in: dir)
        let corpus = try ClusterTestSupport.corpus(in: dir, sentences: 40)
        let log = CapturedLog()
        let pool = try WorkerPool(endpoint: "ipc://\(dir)/c.ipc", modelChecksum: try ModelChecksum.of(path: model), logger: log.logger)
        defer { pool.shutdown() }
        try pool.spawnLocal(count: 2, executable: worker, modelPath: model, threads: 1, logLevel: "critical")
        let deadline = ProcessStats.now() + 30
        while pool.aliveCount < 2, ProcessStats.now() < deadline { usleep(20_000) }
        XCTAssertEqual(pool.aliveCount, 2)
        let pids = pool.childPIDs
        kill(pids[0], SIGKILL)
        let shards = (0..<4).map { i in
            Work.covariance(CovarianceShard(corpus: corpus, first: i * 10, count: 10, layers: ClusterTestSupport.layers, batchSentences: 8))
        }
        try pool.run(shards, onResult: { _, _, _ in })
        XCTAssertTrue(log.contains("local-1 (pid \(pids[0])) was killed by signal 9 (SIGKILL: where nobody sent it, the kernel's out-of-memory killer did"),
                      log.all.joined(separator: "\n"))
        // Counted dead as soon as its process is seen gone, not after `deadAfter` of silence.
        XCTAssertTrue(log.contains("worker local-1 (pid \(pids[0])) has ended: counted dead"), log.all.joined(separator: "\n"))
        XCTAssertFalse(log.contains("worker local-1 (pid \(pids[0])) silent for"), log.all.joined(separator: "\n"))
        kill(pids[1], SIGKILL)
        XCTAssertThrowsError(try pool.run(shards, onResult: { _, _, _ in })) { e in
            XCTAssertTrue("\(e)".contains("local-2 (pid \(pids[1])) was killed by signal 9 (SIGKILL"), "\(e)")
        }
    }
}
