// Memory admission of K₀ shards (WorkerPool+Memory): the rules, the memory a process reads as available,
// and a coordinator against workers that report their machines' memory (raw DEALER sockets, so each
// reports exactly the figures the test gives it).
import Foundation
import Shared
import XCTest

final class MemoryAdmissionTests: XCTestCase {
    func testAdmissionRules() {
        XCTAssertTrue(MemoryAdmission.admits(bytes: 500, running: [], budget: 100), "nothing runs: admitted even when it does not fit")
        XCTAssertTrue(MemoryAdmission.admits(bytes: 100, running: [100, 100], budget: nil), "no budget known: no limit")
        XCTAssertTrue(MemoryAdmission.admits(bytes: 100, running: [100, 100], budget: 300))
        XCTAssertFalse(MemoryAdmission.admits(bytes: 100, running: [100, 100], budget: 299))
        XCTAssertEqual(MemoryAdmission.fitting(bytes: 100, budget: 250), 2)
        XCTAssertEqual(MemoryAdmission.fitting(bytes: 100, budget: 50), 1)
        // Qwen2.5-0.5B's 5 edited layers (f 4,864): the figure the admission counts for one shard.
        XCTAssertEqual(KeyStatistics.shardBytes(layers: 5, f: 4864), 5 * 4864 * 4864 * 8 + 1024 * 4864 * 8)
        // The in-process build: threads whose partial sums fit (at least 1, at most those asked for). Measured:
        // Qwen in a 2 GB group, 1.4 GB available after its load, ran 1 of 2 threads (2 had been killed).
        XCTAssertEqual(CovarianceBuilder.threadsFitting(2, bytesEach: 1_000, available: 1_400), 1)
        XCTAssertEqual(CovarianceBuilder.threadsFitting(2, bytesEach: 1_000, available: 500), 1, "one runs even where it may not fit")
        XCTAssertEqual(CovarianceBuilder.threadsFitting(4, bytesEach: 1_000, available: 100_000), 4)
        XCTAssertEqual(CovarianceBuilder.threadsFitting(8, bytesEach: 1_000, available: 3_500), 3)
    }

    /// MemAvailable, or a control group's limit minus its usage where that is smaller (v1 and v2, at any
    /// level of the hierarchy); "max" and missing files are no limit.
    func testAvailableMemoryReadsMeminfoAndControlGroups() throws {
        let dir = try ClusterTestSupport.tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        func write(_ path: String, _ text: String) throws {
            try FileManager.default.createDirectory(atPath: (dir + path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
            try text.write(toFile: dir + path, atomically: true, encoding: .utf8)
        }
        try write("/meminfo", "MemTotal:       24000000 kB\nMemFree:         1000000 kB\nMemAvailable:   20000000 kB\n")
        try write("/none", "")
        XCTAssertEqual(ProcessStats.availableMemory(meminfo: dir + "/meminfo", groups: dir + "/none", root: dir + "/cg"), 20_000_000 * 1024)
        // v2: the job's group has 3 GB, 1 GB used; its parent says max.
        try write("/v2", "0::/slurm/job1\n")
        try write("/cg/slurm/memory.max", "max\n")
        try write("/cg/slurm/job1/memory.max", "3000000000\n")
        try write("/cg/slurm/job1/memory.current", "1000000000\n")
        XCTAssertEqual(ProcessStats.availableMemory(meminfo: dir + "/meminfo", groups: dir + "/v2", root: dir + "/cg"), 2_000_000_000)
        // v1: a group over its limit has nothing available.
        try write("/v1", "9:cpu:/x\n5:memory:/tight\n")
        try write("/cg/memory/tight/memory.limit_in_bytes", "1000\n")
        try write("/cg/memory/tight/memory.usage_in_bytes", "2000\n")
        XCTAssertEqual(ProcessStats.availableMemory(meminfo: dir + "/meminfo", groups: dir + "/v1", root: dir + "/cg"), 0)
        XCTAssertGreaterThan(ProcessStats.availableMemory(), 0, "this machine")
        XCTAssertFalse(ProcessStats.hostName().isEmpty)
    }

    /// Workers on raw DEALER sockets that said hello with the figures given; the pool and sockets.
    private struct Rig {
        let pool: WorkerPool
        let sockets: [ZMQSocket]
        let ctx: ZMQContext
    }

    private func rig(_ dir: String, _ log: CapturedLog,
                     _ specs: [(name: String, threads: Int, host: String, hostMemory: Int, own: Int?)]) throws -> Rig {
        let endpoint = "ipc://\(dir)/c.ipc", checksum = "0123456789abcdef"
        let pool = try WorkerPool(endpoint: endpoint, modelChecksum: checksum, logger: log.logger)
        let ctx = try ZMQContext()
        var sockets: [ZMQSocket] = []
        for (i, s) in specs.enumerated() {
            let d = try ZMQSocket(ctx, .dealer)
            try d.connect(endpoint)
            try d.send(try Message.hello(Hello(name: s.name, pid: Int32(100 + i), threads: s.threads, modelChecksum: checksum,
                                               host: s.host, hostMemoryBytes: s.hostMemory, memoryBytes: s.own)).frames())
            guard case .welcome = try Message(frames: try XCTUnwrap(try d.receive(timeoutMs: 10_000))) else {
                throw ClusterTestSupport.NoAnswer(what: "welcome of \(s.name)", seconds: 10)
            }
            sockets.append(d)
        }
        return Rig(pool: pool, sockets: sockets, ctx: ctx)
    }

    final class RunBox: @unchecked Sendable { var done = false; var error: Error? }

    /// Runs `jobs` K₀ shards of 100 MB on the pool, on a thread of its own.
    private func start(_ pool: WorkerPool, jobs: Int) -> RunBox {
        let box = RunBox()
        let shard = CovarianceShard(corpus: "/nonexistent", first: 0, count: 1, layers: [0, 1], batchSentences: 1, memoryBytes: 100 * mb)
        Thread {
            do { try pool.run(Array(repeating: .covariance(shard), count: jobs)) { _, _, _ in }; box.done = true } catch { box.error = error }
        }.start()
        return box
    }

    private let mb = 1_000_000

    /// A coordinator leasing 100 MB shards to workers that report memory:
    /// - "a" and "b" (2 threads each) on machine n1 with 250 and 300 MB available: 2 shards at once there;
    /// - "c" (4 threads) on n2, told 150 MB (--memory-mb) with gigabytes on its machine: 1 at a time;
    /// - "d" on n3 with 50 MB: 1, with a warning that names the figures.
    /// Every shard still runs, and as results come back the next shards go where they fit.
    func testShardsGoWhereTheyFitInMemory() throws {
        let dir = try ClusterTestSupport.tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let log = CapturedLog()
        let specs: [(name: String, threads: Int, host: String, hostMemory: Int, own: Int?)] = [
            ("a", 2, "n1", 250 * mb, nil), ("b", 2, "n1", 300 * mb, nil), ("c", 4, "n2", 8000 * mb, 150 * mb), ("d", 2, "n3", 50 * mb, nil),
        ]
        let r = try rig(dir, log, specs)
        defer { r.pool.shutdown() }
        let sockets = r.sockets, jobs = 16
        let box = start(r.pool, jobs: jobs)

        var held = [[Int]](repeating: [], count: specs.count)
        var most = [Int](repeating: 0, count: specs.count), answered = 0
        var lastBeat = 0.0
        /// Receives jobs for `seconds`, heartbeating, and records what each socket holds.
        func collect(_ seconds: Double) throws {
            let until = ProcessStats.now() + seconds
            while ProcessStats.now() < until {
                for (i, s) in sockets.enumerated() {
                    while let f = try s.receive(timeoutMs: 0) {
                        if case .job(let j) = try Message(frames: f) { held[i].append(j.id); most[i] = max(most[i], held[i].count) }
                    }
                }
                if ProcessStats.now() - lastBeat > 0.2 {
                    for s in sockets { try s.send(try Message.heartbeat.frames()) }
                    lastBeat = ProcessStats.now()
                }
                usleep(2_000)
            }
        }
        try collect(1.0)
        XCTAssertEqual(held[0].count + held[1].count, 2, "n1: 250 MB hold two 100 MB shards: \(held) \(log.all)")
        XCTAssertEqual(held[2].count, 1, "c: 150 MB of its own hold one")
        XCTAssertEqual(held[3].count, 1, "d: one, although it does not fit")
        XCTAssertTrue(log.contains("machine n1: at most 2 K0 shards at a time (a K0 shard of 2 layers takes ≈ 100 MB; 250 MB available to its 2 workers; 4 threads)"), "\(log.all)")
        XCTAssertTrue(log.contains("worker c (pid 102): at most 1 K0 shard at a time (a K0 shard of 2 layers takes ≈ 100 MB; 150 MB it may use (--memory-mb); 4 threads)"), "\(log.all)")
        XCTAssertTrue(log.contains("machine n3: a K0 shard of 2 layers takes ≈ 100 MB, more than the 50 MB available to its 1 worker: it runs one at a time there"), "\(log.all)")

        // Answer one shard at a time, oldest first; every shard runs and no limit is passed.
        let deadline = ProcessStats.now() + 30
        while !box.done, box.error == nil, ProcessStats.now() < deadline {
            if let i = held.indices.first(where: { !held[$0].isEmpty }) {
                let id = held[i].removeFirst()
                try sockets[i].send(try Message.result(JobResult(jobID: id, seconds: 0.01, output: .covariance(tokens: 1)), payload: []).frames())
                answered += 1
            }
            try collect(0.05)
            XCTAssertLessThanOrEqual(held[0].count + held[1].count, 2, "n1 over its memory: \(held)")
        }
        XCTAssertNil(box.error, "\(box.error.map { "\($0)" } ?? "")")
        XCTAssertTrue(box.done, "run finished: \(answered) answered, \(held), \(log.all)")
        XCTAssertEqual(answered, jobs)
        XCTAssertEqual(most[2], 1, "c never held two")
        XCTAssertEqual(most[3], 1, "d never held two")
        XCTAssertEqual(log.all.filter { $0.contains("machine n1: at most") }.count, 1, "said once a run")
    }
    /// Workers report their machine's memory while a build runs (`memory`, every second and with each
    /// result), and the admission follows: "a" and "b" (2 threads each) on n1, whose hello says 450 MB, run
    /// four 100 MB shards at once. Another process then takes the 100 MB a finished shard gave back: three at
    /// once, never four, until it gives them back; then four again. Before, the figures of the hello ruled
    /// the whole build. The reports here are what a worker would measure: the machine has 500 MB; the other
    /// process holds 50 MB, then 150, then 50 again; each shard a worker holds takes 100 MB.
    func testAdmissionFollowsMemoryReports() throws {
        let dir = try ClusterTestSupport.tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let log = CapturedLog()
        let r = try rig(dir, log, [("a", 2, "n1", 450 * mb, nil), ("b", 2, "n1", 450 * mb, nil)])
        defer { r.pool.shutdown() }
        let sockets = r.sockets, jobs = 14
        let box = start(r.pool, jobs: jobs)
        var held: [[Int]] = [[], []], other = 50 * mb, capacity = 4, answered = 0, overCapacity: [String] = []
        var lastBeat = 0.0
        func report(_ i: Int) throws {
            let free = max(0, 500 * mb - other - 100 * mb * (held[0].count + held[1].count)), own = 100 * mb * held[i].count
            try sockets[i].send(try Message.memory(MemoryReport(hostMemoryBytes: free + own, heldBytes: own)).frames())
        }
        /// Receives jobs, heartbeating and reporting every 0.2 s, until n1 runs `want` shards (or 5 s pass).
        func fill() throws {
            let want = min(capacity, jobs - answered), until = ProcessStats.now() + 5
            while ProcessStats.now() < until {
                for (i, s) in sockets.enumerated() {
                    while let f = try s.receive(timeoutMs: 0) {
                        guard case .job(let j) = try Message(frames: f) else { continue }
                        held[i].append(j.id)
                        if held[0].count + held[1].count > capacity { overCapacity.append("\(held) with room for \(capacity)") }
                    }
                }
                if ProcessStats.now() - lastBeat > 0.2 {
                    for i in sockets.indices { try sockets[i].send(try Message.heartbeat.frames()); try report(i) }
                    lastBeat = ProcessStats.now()
                }
                if held[0].count + held[1].count == want { break }
                usleep(2_000)
            }
            XCTAssertEqual(held[0].count + held[1].count, want, "n1 runs as many shards as fit (\(answered) answered): \(log.all)")
        }
        /// Answers the oldest shard of the worker holding most, after a report that counts its memory free
        /// (or taken by the other process), as a worker sends them.
        func answer(otherTakes: Int = 0) throws {
            let i = held[0].count >= held[1].count ? 0 : 1
            let id = held[i].removeFirst()
            other += otherTakes
            try report(i)
            try sockets[i].send(try Message.result(JobResult(jobID: id, seconds: 0.01, output: .covariance(tokens: 1)), payload: []).frames())
            answered += 1
        }
        try fill()
        XCTAssertEqual(held[0].count + held[1].count, 4, "450 MB hold four 100 MB shards")
        capacity = 3
        try answer(otherTakes: 100 * mb)   // the shard's memory goes to the other process
        for _ in 0..<4 { try fill(); try answer() }
        capacity = 4
        other -= 100 * mb   // and comes back
        for i in sockets.indices { try report(i) }
        while answered < jobs, box.error == nil {
            try fill()
            try answer()
        }
        let deadline = ProcessStats.now() + 10
        while !box.done, box.error == nil, ProcessStats.now() < deadline { usleep(10_000) }
        XCTAssertNil(box.error, "\(box.error.map { "\($0)" } ?? "")")
        XCTAssertTrue(box.done, "run finished: \(answered) answered, \(held), \(log.all)")
        XCTAssertEqual(overCapacity, [], "more shards than the reported memory holds")
    }
}
