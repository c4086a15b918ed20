// Distributed K0 statistics with real worker processes on a synthetic model (issue 4 §3, §5): the
// result equals the single-process build within 1e-9 relative whatever the worker count, shard size
// or finishing order — also when a worker is killed (-9) in the middle of a shard and its lease expires.
import Foundation
import Shared
import XCTest

final class ClusterCovarianceTests: XCTestCase {
    func testShardPlanCoversTheRangeOnceInOrder() {
        // Shards of `size` rounded up to whole batches of 24 sentences (CovarianceBuilder's global batches).
        for (range, size, expected) in [(0..<800, 300, [0, 312, 624]), (10..<11, 5, [10]), (5..<1005, 100, [5, 120, 240, 360, 480, 600, 720, 840, 960]),
                                         (0..<7, 1, [0])] {
            let shards = CovarianceJobPlan(corpus: "c", range: range, layers: [1], f: 4, shardSentences: size).shards
            XCTAssertEqual(shards.map(\.first), expected)
            XCTAssertEqual(shards.reduce(0) { $0 + $1.count }, range.count, "\(range) in shards of \(size)")
            XCTAssertTrue(zip(shards, shards.dropFirst()).allSatisfy { $0.first + $0.count == $1.first })
            XCTAssertTrue(shards.allSatisfy { $0.count >= 1 && $0.count <= (size + 23) / 24 * 24 && $0.batchSentences == 24 })
        }
        XCTAssertEqual(DistributedTargets.chunks(count: 20), [0..<8, 8..<16, 16..<20], "v* chunks depend only on the batch")
    }

    /// A synthetic model, an 800-sentence corpus, its single-process statistics and a pool of 2 local
    /// workers with `threads` threads each.
    struct Setup {
        let dir: String, corpus: String, range = 0..<800
        let reference: KeyStatistics
        let log = CapturedLog()
        let pool: WorkerPool

        init(threads: Int, memoryMB: Int? = nil) throws {
            let worker = try ClusterTestSupport.executable("alphaedit-worker")
            dir = try ClusterTestSupport.tempDir()
            let model = try ClusterTestSupport.model(in: dir)
            corpus = try ClusterTestSupport.corpus(in: dir, sentences: range.count)
            reference = try ClusterTestSupport.inProcessStatistics(model: model, corpus: corpus, range: range)
            pool = try WorkerPool(endpoint: "ipc://\(dir)/c.ipc", modelChecksum: try ModelChecksum.of(path: model), logger: log.logger)
            try pool.spawnLocal(count: 2, executable: worker, modelPath: model, threads: threads, logLevel: "warning", memoryMB: memoryMB)
        }

        /// The plan of the whole corpus in shards of `shard` sentences, at the test layers.
        func plan(_ shard: Int) -> CovarianceJobPlan {
            CovarianceJobPlan(corpus: corpus, range: range, layers: ClusterTestSupport.layers,
                              f: ClusterTestSupport.modelConfig.ffn, shardSentences: shard)
        }

        func close() {
            pool.shutdown()
            try? FileManager.default.removeItem(atPath: dir)
        }
    }

    func testDistributedStatisticsEqualInProcessAndSurviveAKilledWorker() throws {
        let setup = try Setup(threads: 1)
        defer { setup.close() }
        let (pool, log, reference) = (setup.pool, setup.log, setup.reference)
        let plan = setup.plan

        // Fault-free, two shard sizes (8 and 3 shards over 2 workers).
        for shard in [100, 300] {
            let t0 = ProcessStats.now()
            let (stats, timings) = try DistributedCovariance.build(pool: pool, plan: plan(shard), provenance: "test")
            let rel = try ClusterTestSupport.relativeDifference(stats, reference)
            print(String(format: "distributed K0, shards of %d: %.2f s, %d shards, max rel diff vs in-process %.2e",
                         shard, ProcessStats.now() - t0, timings.shards, rel))
            XCTAssertLessThanOrEqual(rel, 1e-9, "shards of \(shard): equal to the single-process build")
            XCTAssertEqual(timings.shards, plan(shard).shards.count)
        }

        // kill -9 the first worker that takes a shard, while it computes it.
        let killer = Thread {
            let deadline = ProcessStats.now() + 20
            while ProcessStats.now() < deadline {
                if let lease = pool.leases.first {
                    usleep(30_000)  // inside the shard: it started, it has not finished
                    kill(lease.pid, SIGKILL)
                    print("killed worker pid \(lease.pid) holding job \(lease.job)")
                    return
                }
                usleep(2_000)
            }
        }
        killer.start()
        let t0 = ProcessStats.now()
        let (stats, _) = try DistributedCovariance.build(pool: pool, plan: plan(200), provenance: "test")
        let rel = try ClusterTestSupport.relativeDifference(stats, reference)
        print(String(format: "distributed K0 with a worker killed: %.2f s, %d lease(s) expired, max rel diff %.2e",
                     ProcessStats.now() - t0, pool.expiredLeases, rel))
        XCTAssertGreaterThanOrEqual(pool.expiredLeases, 1, "the killed worker's lease expired and its shard was re-queued")
        XCTAssertTrue(log.contains("lease of job"), "the coordinator logged the expiry")
        XCTAssertLessThanOrEqual(rel, 1e-9, "result after the fault equals the fault-free result")
        XCTAssertEqual(pool.aliveCount, 1)
    }

    /// A worker stopped (SIGSTOP, as Ctrl-Z or a suspended machine would) for longer than the liveness
    /// window while it holds a shard, then continued: the coordinator counts it dead and re-queues the
    /// shard, as it must; the worker, seeing that the gap was its own, keeps its connection (no second
    /// hello) and goes on serving; the sums still equal the single-process build.
    func testAStoppedWorkerResumesWithoutReconnecting() throws {
        let setup = try Setup(threads: 1)
        defer { setup.close() }
        let (pool, log, reference) = (setup.pool, setup.log, setup.reference)
        let plan = setup.plan(100)
        let resumed = DispatchSemaphore(value: 0)
        let stopper = Thread {
            defer { resumed.signal() }
            let deadline = ProcessStats.now() + 20
            while ProcessStats.now() < deadline {
                if let lease = pool.leases.first {
                    kill(lease.pid, SIGSTOP)
                    usleep(UInt32(WireProtocol.deadAfter * 1.6 * 1e6))
                    kill(lease.pid, SIGCONT)
                    print("stopped worker pid \(lease.pid) holding job \(lease.job) for \(WireProtocol.deadAfter * 1.6) s")
                    return
                }
                usleep(2_000)
            }
        }
        stopper.start()
        let (stats, _) = try DistributedCovariance.build(pool: pool, plan: plan, provenance: "test")
        XCTAssertLessThanOrEqual(try ClusterTestSupport.relativeDifference(stats, reference), 1e-9)
        XCTAssertEqual(resumed.wait(timeout: .now() + 30), .success)
        usleep(UInt32(WireProtocol.heartbeatInterval * 4 * 1e6))  // a few heartbeats after SIGCONT
        XCTAssertTrue(log.contains("counted dead"), "the coordinator saw the silence")
        XCTAssertTrue(log.contains("is heard from again"), "and heard the same connection again")
        XCTAssertEqual(log.all.filter { $0.contains("joined:") }.count, 2, "one hello per worker: the stopped one did not reconnect")
        XCTAssertEqual(pool.aliveCount, 2)
        // And it serves: a second build over both workers.
        let (again, _) = try DistributedCovariance.build(pool: pool, plan: plan, provenance: "test")
        XCTAssertLessThanOrEqual(try ClusterTestSupport.relativeDifference(again, reference), 1e-9)
    }

    /// A worker with 2 threads holds 2 covariance shards at once (one per thread); killed while it
    /// holds both, both leases expire and both shards run again elsewhere; the sums still equal the
    /// single-process build.
    func testMultiThreadWorkersRunOneShardPerThread() throws {
        let setup = try Setup(threads: 2)
        defer { setup.close() }
        let (pool, reference) = (setup.pool, setup.reference)
        let plan = setup.plan(50)

        final class Kill: @unchecked Sendable {  // written by the killer thread, read after the build
            let lock = NSLock()
            var mostHeld = 0
            var pid: Int32?
        }
        let k = Kill()
        let killer = Thread {
            let deadline = ProcessStats.now() + 30
            while ProcessStats.now() < deadline {
                let byPid = Dictionary(grouping: pool.leases, by: \.pid)
                if let (pid, held) = byPid.max(by: { $0.value.count < $1.value.count }), held.count >= 2 {
                    kill(pid, SIGKILL)
                    k.lock.withLock { k.mostHeld = held.count; k.pid = pid }
                    print("killed worker pid \(pid) holding jobs \(held.map(\.job))")
                    return
                }
                usleep(1_000)
            }
        }
        killer.start()
        let t0 = ProcessStats.now()
        let (stats, timings) = try DistributedCovariance.build(pool: pool, plan: plan, provenance: "test")
        let rel = try ClusterTestSupport.relativeDifference(stats, reference)
        print(String(format: "2 workers × 2 threads, %d shards, one worker killed: %.2f s, %d leases expired, max rel diff %.2e",
                     timings.shards, ProcessStats.now() - t0, pool.expiredLeases, rel))
        k.lock.withLock {
            XCTAssertNotNil(k.pid, "a worker held two shards at once")
            XCTAssertEqual(k.mostHeld, 2, "no more shards than threads")
        }
        XCTAssertGreaterThanOrEqual(pool.expiredLeases, 2, "both leases of the killed worker expired")
        XCTAssertLessThanOrEqual(rel, 1e-9, "equal to the single-process build")
        XCTAssertEqual(timings.shards, plan.shards.count)
        XCTAssertEqual(pool.aliveCount, 1)
    }

    /// Workers told `--memory-mb 10` run one K₀ shard at a time although each has 2 threads (a shard of
    /// the test model's 2 layers, f 512, takes 8.4 MB), the coordinator says so once, and the statistics
    /// are the single-process ones.
    func testWorkersWithLittleMemoryRunOneShardAtATime() throws {
        XCTAssertEqual(KeyStatistics.shardBytes(layers: 2, f: 512), 8_388_608)
        let setup = try Setup(threads: 2, memoryMB: 10)
        defer { setup.close() }
        let pool = setup.pool
        final class Most: @unchecked Sendable { let lock = NSLock(); var held = 0, stop = false, pids = Set<Int32>() }
        let most = Most()
        let watcher = Thread {
            while !most.lock.withLock({ most.stop }) {
                let byPid = Dictionary(grouping: pool.leases, by: \.pid)
                most.lock.withLock {
                    most.held = max(most.held, byPid.values.map(\.count).max() ?? 0)
                    most.pids.formUnion(byPid.keys)
                }
                usleep(500)
            }
        }
        watcher.start()
        let (stats, timings) = try DistributedCovariance.build(pool: pool, plan: setup.plan(50), provenance: "test")
        most.lock.withLock { most.stop = true }
        let rel = try ClusterTestSupport.relativeDifference(stats, setup.reference)
        print("2 workers × 2 threads, --memory-mb 10: \(timings.shards) shards, max rel diff \(rel)")
        most.lock.withLock {
            XCTAssertEqual(most.held, 1, "one shard at a time on each worker")
            XCTAssertEqual(most.pids.count, 2, "both workers ran shards")
        }
        XCTAssertLessThanOrEqual(rel, 1e-9, "equal to the single-process build")
        XCTAssertEqual(setup.log.all.filter { $0.contains("at most 1 K0 shard at a time (a K0 shard of 2 layers takes ≈ 8 MB; 10 MB it may use (--memory-mb); 2 threads)") }.count,
                       2, "once for each worker: \(setup.log.all)")
    }

    /// Workers told `--memory-mb 7` hold a shard of one of the test model's 2 layers (6.3 MB) but not of
    /// both (8.4 MB): the build runs in 2 passes, one layer each, and the statistics are the
    /// single-process ones, every token counted once.
    func testLayersThatDoNotFitTogetherAreBuiltInPasses() throws {
        let setup = try Setup(threads: 1, memoryMB: 7)
        defer { setup.close() }
        let dir = setup.dir + "/k0"
        var shardsSeen: [Int] = []
        let (stats, timings) = try DistributedCovariance.build(pool: setup.pool, plan: setup.plan(200), provenance: "test", directory: dir) {
            shardsSeen.append($0.shardsDone)
            XCTAssertEqual($0.shardsTotal, 8)
        }
        let rel = try ClusterTestSupport.relativeDifference(stats, setup.reference)
        XCTAssertEqual(stats.layers, ClusterTestSupport.layers)
        XCTAssertEqual(stats.counts, setup.reference.counts)
        XCTAssertLessThanOrEqual(rel, 1e-9, "equal to the single-process build")
        XCTAssertEqual(timings.shards, 8, "4 shards a pass")
        XCTAssertEqual(shardsSeen, Array(1...8))
        XCTAssertTrue(setup.log.contains("K0 statistics in 2 passes (layers 1 | 2): a shard of all 2 layers would take ≈ 8 MB"), "\(setup.log.all)")
        XCTAssertTrue(FileManager.default.fileExists(atPath: dir + "/layers-1"), "each pass has its own reduction folder")
    }

    /// `alphaedit cov` over 2 local workers killed (-9) after a few shards, then run again with the same
    /// arguments: it takes up the checkpoint in OUT/k0-shards, runs only the other shards, and writes a
    /// statistics file byte for byte that of an uninterrupted run; the folder is gone afterwards.
    func testCovKilledMidBuildResumesToTheSameBytes() throws {
        let alphaedit = try ClusterTestSupport.executable("alphaedit")
        _ = try ClusterTestSupport.executable("alphaedit-worker")
        let dir = try ClusterTestSupport.tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let model = try ClusterTestSupport.model(in: dir)
        let corpus = try ClusterTestSupport.corpus(in: dir, sentences: 1200)
        try """
        model = \(model)
        threads = 1
        workers = local 2
        worker_threads = 1
        corpus = \(corpus)
        """.write(toFile: dir + "/cluster.conf", atomically: true, encoding: .utf8)
        func args(_ out: String) -> [String] {
            ["cov", "--config", dir + "/cluster.conf", "--layers", "1-2", "--sentences", "1200", "--shard-sentences", "48",
             "--threshold", "1000", "--checkpoint-seconds", "0", "--out", dir + "/" + out, "--json"]
        }
        let (clean, cleanOut) = try ClusterTestSupport.run(alphaedit, args("clean"))
        XCTAssertEqual(clean, 0, cleanOut)

        let first = try ClusterTestSupport.start(alphaedit, args("killed"), stderr: dir + "/killed.log")
        let shards = dir + "/killed/k0-shards"
        let deadline = ProcessStats.now() + 60
        var checkpoint: String?
        while checkpoint == nil, first.isRunning, ProcessStats.now() < deadline {
            checkpoint = (try? FileManager.default.contentsOfDirectory(atPath: shards))?
                .first { $0.hasPrefix("total-") && $0.hasSuffix(".aeks") && (Int($0.dropFirst(6).dropLast(5)) ?? 0) >= 3 }
            usleep(2_000)
        }
        kill(first.processIdentifier, SIGKILL)
        first.waitUntilExit()
        let taken = try XCTUnwrap(checkpoint, "a checkpoint of ≥ 3 shards before the end: \(ClusterTestSupport.read(dir + "/killed.log"))")
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/killed/statistics.bin"), "killed before it finished")

        let (status, out) = try ClusterTestSupport.run(alphaedit, args("killed"))
        XCTAssertEqual(status, 0, out)
        XCTAssertTrue(out.contains("K0 reduction: resuming from \(shards)"), out)
        let line = try XCTUnwrap(out.split(separator: "\n").first { $0.contains("{\"cluster\"") }, out)  // stdout's one JSON line
        let json = line[try XCTUnwrap(line.firstIndex(of: "{"))...]
        let report = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any])
        let reduction = try XCTUnwrap(report["reduction"] as? [String: Any])
        let resumed = try XCTUnwrap(reduction["resumedShards"] as? Int), ran = try XCTUnwrap(reduction["shards"] as? Int)
        print("cov killed after checkpoint \(taken), run again: \(resumed) shards taken up, \(ran) run")
        XCTAssertGreaterThanOrEqual(resumed, 3)
        XCTAssertEqual(resumed + ran, 25, "1,200 sentences in shards of 48: each shard summed once")
        XCTAssertEqual(FileManager.default.contents(atPath: dir + "/killed/statistics.bin"),
                       FileManager.default.contents(atPath: dir + "/clean/statistics.bin"), "the same bytes as the uninterrupted build")
        XCTAssertFalse(FileManager.default.fileExists(atPath: shards), "nothing left to resume once the files are written")
    }

    /// A straggler: the worker that takes the first shard runs at a few per cent of its speed (stopped
    /// 0.6 s of every 0.62 s, so it still heartbeats and is never counted dead). Once nothing is queued,
    /// its shard is leased a second time to the idle worker, whose result counts; without backups the
    /// build waits for the straggler. The sums equal the single-process build either way.
    func testAStragglersShardIsBackedUpOnAnIdleWorker() throws {
        let setup = try Setup(threads: 1)
        defer { setup.close() }
        let (pool, log, reference) = (setup.pool, setup.log, setup.reference)
        let plan = setup.plan(50)
        final class Throttle: @unchecked Sendable {
            let lock = NSLock()
            var done = false
            var pid: Int32?
        }
        for backup in [true, false] {
            pool.stragglerBackup = backup ? 2 : nil
            let before = pool.backups
            let t = Throttle()
            let throttler = Thread {
                let deadline = ProcessStats.now() + 60
                var pid: Int32?
                while pid == nil, ProcessStats.now() < deadline {
                    pid = pool.leases.first?.pid
                    if pid == nil { usleep(1_000) }
                }
                guard let pid else { return }
                t.lock.withLock { t.pid = pid }
                while !t.lock.withLock({ t.done }), ProcessStats.now() < deadline {
                    kill(pid, SIGSTOP)
                    usleep(600_000)
                    kill(pid, SIGCONT)
                    usleep(20_000)
                }
                kill(pid, SIGCONT)
            }
            throttler.start()
            let t0 = ProcessStats.now()
            let (stats, _) = try DistributedCovariance.build(pool: pool, plan: plan, provenance: "test")
            t.lock.withLock { t.done = true }
            let rel = try ClusterTestSupport.relativeDifference(stats, reference)
            print(String(format: "straggler (pid %d), backups %@: %.2f s, %d backed up, max rel diff %.2e", t.lock.withLock { t.pid ?? 0 },
                         backup ? "on" : "off", ProcessStats.now() - t0, pool.backups - before, rel))
            XCTAssertLessThanOrEqual(rel, 1e-9)
            if backup {
                XCTAssertGreaterThanOrEqual(pool.backups - before, 1, "the straggler's shard was backed up")
                XCTAssertTrue(log.contains("backed up on"), "and the log says so")
            } else {
                XCTAssertEqual(pool.backups, before, "no backup when they are off")
            }
            XCTAssertFalse(log.contains("counted dead"), "the straggler kept heartbeating")
            usleep(800_000)  // the throttler's last cycle ends
        }
        XCTAssertEqual(pool.aliveCount, 2)
    }
}
