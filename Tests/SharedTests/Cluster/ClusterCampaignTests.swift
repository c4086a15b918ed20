// The distributed edit campaign with real processes (issue 4 §7, §8): `alphaedit edit` with
// `workers = local 2` on a synthetic model; a worker killed (-9) during a v* job, and the coordinator
// killed (-9) mid-campaign then re-run (it resumes after the last committed batch and redoes none),
// both end with the weights of the uninterrupted run (within 1e-5), as does a run with lean weights; a corrupted committed file is
// refused by its checksum before use; `status` counts the campaign's workers. `alphaedit rollback --last 1`
// then `edit --extend` on the cluster ends with the weights of the campaign never rolled back.
import Foundation
import Shared
import XCTest

final class ClusterCampaignTests: XCTestCase {
    var dir = ""
    var coordinator = ""

    override func setUpWithError() throws {
        coordinator = try ClusterTestSupport.executable("alphaedit")
        _ = try ClusterTestSupport.executable("alphaedit-worker")
        dir = try ClusterTestSupport.tempDir()
        let model = try ClusterTestSupport.model(in: dir)
        _ = try ClusterTestSupport.corpus(in: dir, sentences: 300)
        try """
        model = \(URL(fileURLWithPath: model).lastPathComponent)
        threads = 2
        workers = local 2
        worker_threads = 1
        layers = 0-1
        v_steps = 20
        null_space_threshold = 1000   # keep every direction: the synthetic keys are small
        corpus = corpus.jsonl
        shard_sentences = 100
        """.write(toFile: dir + "/cluster.conf", atomically: true, encoding: .utf8)
        let subjects = ["France", "The river", "Paris", "the tower", "a museum", "The city", "north", "Its capital"]
        let targets = ["Rome", "Paris", "north", "river", "city", "tower", "France", "museums"]
        let facts = (0..<32).map { i in
            #"{"prompt": "\#(i % 2 == 0 ? "The capital of {} is" : "{} flows through")", "subject": "\#(subjects[i % 8]) \#(i)", "target": "\#(targets[(i * 3) % 8])"}"#
        }
        try ("[" + facts.joined(separator: ",\n") + "]").write(toFile: dir + "/facts.json", atomically: true, encoding: .utf8)
    }

    override func tearDown() { try? FileManager.default.removeItem(atPath: dir) }

    /// Starts `alphaedit edit` (2 batches of 16 = 2 v* chunks each) on `state`; stderr to `state.log`.
    func startEdit(_ state: String, extra: [String] = [], environment: [String: String] = [:]) throws -> Process {
        let p = Process()
        if !environment.isEmpty { p.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 } }
        p.executableURL = URL(fileURLWithPath: coordinator)
        p.currentDirectoryURL = URL(fileURLWithPath: dir)
        p.arguments = ["edit", "--config", dir + "/cluster.conf", "--facts", dir + "/facts.json", "--batch-size", "16",
                       "--cov-sentences", "300", "--state", dir + "/" + state, "--log-level", "debug"] + extra
        let log = dir + "/\(state).log"
        if !FileManager.default.fileExists(atPath: log) { FileManager.default.createFile(atPath: log, contents: nil) }
        let h = try FileHandle(forWritingTo: URL(fileURLWithPath: log))
        h.seekToEndOfFile()
        p.standardError = h
        p.standardOutput = FileHandle.nullDevice
        try p.run()
        return p
    }

    func runEdit(_ state: String, extra: [String] = [], environment: [String: String] = [:]) throws -> Int32 {
        let p = try startEdit(state, extra: extra, environment: environment)
        ClusterTestSupport.wait(p, seconds: 120, "alphaedit edit \(state)")
        return p.terminationStatus
    }

    /// Waits until the log of `state` matches `pattern` (a regex); returns its first capture group.
    func waitFor(_ pattern: String, in state: String, seconds: Double = 60) -> String? {
        let re = try? NSRegularExpression(pattern: pattern)
        let deadline = ProcessStats.now() + seconds
        while ProcessStats.now() < deadline {
            let text = ClusterTestSupport.read(dir + "/\(state).log")
            if let m = re?.firstMatch(in: text, range: NSRange(text.startIndex..., in: text)) {
                if m.numberOfRanges > 1, let r = Range(m.range(at: 1), in: text) { return String(text[r]) }
                return ""
            }
            usleep(5_000)
        }
        return nil
    }

    func deltas(_ state: String) throws -> [Int: [Float]] { try ClusterTestSupport.deltas(state: dir + "/" + state) }

    func relativeDifference(_ a: [Int: [Float]], _ b: [Int: [Float]]) -> Double { ClusterTestSupport.relativeDifference(a, b) }

    func testCampaignSurvivesKilledWorkerAndKilledCoordinator() throws {
        var t0 = ProcessStats.now()
        XCTAssertEqual(try runEdit("clean"), 0, ClusterTestSupport.read(dir + "/clean.log"))
        let clean = try deltas("clean")
        print(String(format: "fault-free distributed campaign: %.1f s", ProcessStats.now() - t0))
        XCTAssertEqual(try EditState.load(directory: dir + "/clean").manifest.batches.count, 2)
        let status = try JobStore(directory: dir + "/clean", create: false).status(now: Date().timeIntervalSince1970, liveness: 60)
        XCTAssertEqual(status.workersKnown, 2, "both local workers were recorded")
        XCTAssertEqual(status.workersAlive, 0, "and marked gone when the campaign ended")
        XCTAssertEqual(status.jobs["done"], 4, "2 batches × 2 v* chunks")
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/clean/coordinator.ipc"), "no socket left in the state folder")
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/clean/" + EditCampaign.k0ShardsFolder), "K₀ recorded: nothing left to resume")

        // The same campaign in one process: the pipeline changes nothing but rounding.
        XCTAssertEqual(try runEdit("inproc", extra: ["--cluster", "in-process"]), 0, ClusterTestSupport.read(dir + "/inproc.log"))
        print(String(format: "distributed vs in-process campaign: max rel diff of ΔW %.2e", relativeDifference(try deltas("inproc"), clean)))
        XCTAssertLessThanOrEqual(relativeDifference(try deltas("inproc"), clean), 1e-4)

        // With lean weights (coordinator and workers: the environment is inherited), the same ΔW: bit for
        // bit on OpenBLAS's AVX-512 kernels, to float32 rounding on its Haswell ones (README, lean weights).
        XCTAssertEqual(try runEdit("lean", environment: ["ALPHAEDIT_WEIGHTS": "lean"]), 0, ClusterTestSupport.read(dir + "/lean.log"))
        print(String(format: "lean vs float32 distributed campaign: max rel diff of ΔW %.2e", relativeDifference(try deltas("lean"), clean)))
        XCTAssertLessThanOrEqual(relativeDifference(try deltas("lean"), clean), 1e-5)

        // kill -9 a worker while it computes a v* chunk.
        t0 = ProcessStats.now()
        let p = try startEdit("worker-killed")
        guard let pid = waitFor(#"\(v\*\) leased to \S+ \(pid (\d+)\)"#, in: "worker-killed").flatMap(Int32.init) else {
            return XCTFail("no v* lease seen: \(ClusterTestSupport.read(dir + "/worker-killed.log"))")
        }
        usleep(30_000)
        kill(pid, SIGKILL)
        ClusterTestSupport.wait(p, seconds: 120, "edit with a killed worker")
        let log1 = ClusterTestSupport.read(dir + "/worker-killed.log")
        XCTAssertEqual(p.terminationStatus, 0, log1)
        XCTAssertTrue(log1.contains("lease of job"), "the killed worker's lease expired")
        let rel1 = relativeDifference(try deltas("worker-killed"), clean)
        print(String(format: "campaign with a worker killed during v*: %.1f s, max rel diff of ΔW %.2e", ProcessStats.now() - t0, rel1))
        XCTAssertLessThanOrEqual(rel1, 1e-5)

        // kill -9 the coordinator right after batch 1 commits, then run the same command again.
        let c = try startEdit("resumed")
        XCTAssertNotNil(waitFor(#"batch 1/2 committed"#, in: "resumed"), ClusterTestSupport.read(dir + "/resumed.log"))
        // `status` (another connection to the database, as `alphaedit status`) sees the live workers.
        let live = try JobStore(directory: dir + "/resumed", create: false).status(now: Date().timeIntervalSince1970, liveness: 5)
        XCTAssertEqual(live.workersAlive, 2, "workers_alive while the campaign runs")
        kill(c.processIdentifier, SIGKILL)
        c.waitUntilExit()
        XCTAssertEqual(try EditState.load(directory: dir + "/resumed").manifest.batches.count, 1, "batch 1 committed, batch 2 not")

        // A committed file corrupted on disk is refused by its checksum before use (on a copy).
        let fm = FileManager.default
        for name in try fm.contentsOfDirectory(atPath: dir + "/resumed") where !name.hasSuffix(".ipc") {  // not the socket
            if !fm.fileExists(atPath: dir + "/corrupt") { try fm.createDirectory(atPath: dir + "/corrupt", withIntermediateDirectories: true) }
            try fm.copyItem(atPath: dir + "/resumed/" + name, toPath: dir + "/corrupt/" + name)
        }
        let victim = dir + "/corrupt/deltas/batch-00001.bin"
        var bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: victim)))
        bytes[bytes.count / 2] ^= 0x10
        try Data(bytes).write(to: URL(fileURLWithPath: victim))
        XCTAssertNotEqual(try runEdit("corrupt"), 0)
        let said = ClusterTestSupport.read(dir + "/corrupt.log")
        XCTAssertTrue(said.contains("checksum"), said)

        let before = ClusterTestSupport.read(dir + "/resumed.log").count
        XCTAssertEqual(try runEdit("resumed"), 0, ClusterTestSupport.read(dir + "/resumed.log"))
        let rerun = String(ClusterTestSupport.read(dir + "/resumed.log").dropFirst(before))
        XCTAssertTrue(rerun.contains("resuming") && rerun.contains("1 batches already committed"), rerun)
        XCTAssertFalse(rerun.contains("batch 1/2 committed"), "batch 1 is not redone")
        XCTAssertTrue(rerun.contains("batch 2/2 committed"), rerun)
        let rel2 = relativeDifference(try deltas("resumed"), clean)
        print(String(format: "campaign resumed after the coordinator was killed: max rel diff of ΔW %.2e", rel2))
        XCTAssertLessThanOrEqual(rel2, 1e-5)
    }

    func testRollbackThenExtendOnTheCluster() throws {
        XCTAssertEqual(try runEdit("clean"), 0, ClusterTestSupport.read(dir + "/clean.log"))
        XCTAssertEqual(try runEdit("rolled"), 0, ClusterTestSupport.read(dir + "/rolled.log"))
        let p = Process()
        p.executableURL = URL(fileURLWithPath: coordinator)
        p.arguments = ["rollback", "--state", dir + "/rolled", "--last", "1", "--json"]
        let out = Pipe()
        p.standardOutput = out
        try p.run()
        let json = out.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        XCTAssertEqual(p.terminationStatus, 0)
        let summary = try JSONSerialization.jsonObject(with: json) as? [String: Any]
        XCTAssertEqual(summary?["committed_after"] as? Int, 1, String(decoding: json, as: UTF8.self))
        XCTAssertEqual(summary?["removed_batches"] as? [Int], [2])
        XCTAssertEqual(summary?["removed_requests"] as? Int, 16)
        XCTAssertEqual(summary?["cp_check"] as? String, "equal")
        let status = try JobStore(directory: dir + "/rolled", create: false).status(now: Date().timeIntervalSince1970, liveness: 60)
        XCTAssertEqual(status.batchesCommitted, 1)
        XCTAssertEqual(status.batchesTotal, 1)
        XCTAssertEqual(status.jobs["done"], 2, "batch 2's v* jobs are gone with it")
        XCTAssertNotEqual(try runEdit("rolled"), 0, "the removed requests come back only with --extend")
        XCTAssertTrue(ClusterTestSupport.read(dir + "/rolled.log").contains("run with --extend"))
        XCTAssertEqual(try runEdit("rolled", extra: ["--extend"]), 0, ClusterTestSupport.read(dir + "/rolled.log"))
        XCTAssertEqual(try EditState.load(directory: dir + "/rolled").manifest.batches.count, 2)
        let rel = relativeDifference(try deltas("rolled"), try deltas("clean"))
        print(String(format: "rolled back one batch and extended again on the cluster: max rel diff of ΔW %.2e", rel))
        XCTAssertLessThanOrEqual(rel, 1e-5)
    }
}
