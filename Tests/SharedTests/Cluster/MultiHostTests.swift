// Across hosts for real (issue 12 §2): a coordinator and two workers in three Linux network namespaces
// joined by veth links (scripts/netns.sh), over tcp with CURVE.
// - K0 statistics equal the in-process build while one worker's link is cut in the middle of a shard
//   (its lease expires, the shard re-runs on the other worker; the link restored, the worker rejoins
//   and nothing is counted twice), and while a worker with an unauthorised key and a plaintext worker
//   are refused.
// - An edit campaign gives the ΔW of the in-process run, also when the coordinator's links are cut for
//   10 s in the middle of it.
// - With 20 ms ± 5 ms delay and 1 % loss on every link, the same results: tc netem, or on a kernel
//   without that qdisc the same in user space (scripts/netem-relay.py on TUN links); skipped, saying so,
//   only where neither can be had.
// - On 4 Mbit/s links (tc tbf) a shard result takes longer than `deadAfter` to cross; it travels in
//   acknowledged pieces, so no worker is counted dead or reconnects, and the statistics are right.
// Skipped with the reason only where namespaces cannot be created (not root, no veth).
import Foundation
import Shared
import XCTest

final class MultiHostTests: XCTestCase {
    var tag = ""
    var dir = ""
    var coordinator = ""
    var worker = ""
    var model = ""
    var corpus = ""
    let script = RepoPaths.repo.appendingPathComponent("scripts/netns.sh").path

    @discardableResult
    func netns(_ args: String...) throws -> (Int32, String) { try ClusterTestSupport.run("/bin/bash", [script] + args) }

    override func setUpWithError() throws {
        coordinator = try ClusterTestSupport.executable("alphaedit")
        worker = try ClusterTestSupport.executable("alphaedit-worker")
        tag = "ae" + String(UInt32.random(in: 0...0xffff), radix: 16)
        let (rc, said) = try netns("up", tag)
        if rc == 2 { throw XCTSkip("network namespaces cannot be created here: \(said)") }
        XCTAssertEqual(rc, 0, said)
        dir = try ClusterTestSupport.tempDir()
        model = try ClusterTestSupport.model(in: dir)
        _ = try CurveTests.keys(in: dir, workers: ["w1", "w2", "stranger"], authorised: ["w1", "w2"])
    }

    override func tearDown() {
        _ = try? netns("down", tag)
        try? FileManager.default.removeItem(atPath: dir)
    }

    /// `executable args` inside namespace `host` (c, w1, w2); stderr to dir/`log`.log.
    func start(on host: String, _ executable: String, _ args: [String], log: String) throws -> Process {
        try ClusterTestSupport.start("/usr/sbin/ip", ["netns", "exec", "\(tag)-\(host)", executable] + args,
                                     stderr: dir + "/\(log).log")
    }

    /// A worker on host w1 or w2 with its own key, pinning the coordinator's.
    func startWorker(_ host: String, port: Int, key: String? = nil, log: String? = nil, extra: [String] = []) throws -> Process {
        let k = dir + "/keys/"
        let keyArgs = key == "" ? [] : ["--key", k + (key ?? host) + ".key", "--coordinator-key", k + "coordinator.pub"]
        let address = host == "w1" ? "10.77.1.1" : "10.77.2.1"
        return try start(on: host, worker, ["--connect", "tcp://\(address):\(port)", "--model", model, "--name", log ?? host,
                                            "--threads", "1"] + keyArgs + extra, log: log ?? host)
    }

    func writeConfig(port: Int, extra: String = "") throws {
        try """
        model = \(URL(fileURLWithPath: model).lastPathComponent)
        threads = 1
        workers = remote
        endpoint = tcp://0.0.0.0:\(port)
        curve_key = keys/coordinator.key
        authorized_keys = keys/authorized_keys
        layers = 0-1
        v_steps = 20
        null_space_threshold = 1000   # keep every direction: the synthetic keys are small
        corpus = corpus.jsonl
        shard_sentences = 100
        \(extra)
        """.write(toFile: dir + "/cluster.conf", atomically: true, encoding: .utf8)
    }

    /// Waits until `log` contains `text`.
    func waitFor(_ text: String, in log: String, seconds: Double = 60) -> Bool {
        let deadline = ProcessStats.now() + seconds
        while ProcessStats.now() < deadline {
            if ClusterTestSupport.read(dir + "/\(log).log").contains(text) { return true }
            usleep(5_000)
        }
        return false
    }

    func count(_ text: String, in log: String) -> Int {
        ClusterTestSupport.read(dir + "/\(log).log").components(separatedBy: text).count - 1
    }

    /// `alphaedit cov` on host c (600-sentence shards: long enough to cut a link inside one).
    func covariance(_ out: String, port: Int, sentences: Int, layers: String = "1-2", during: () throws -> Void = {}) throws -> KeyStatistics {
        try writeConfig(port: port)
        let c = try start(on: "c", coordinator, ["cov", "--config", dir + "/cluster.conf", "--sentences", "\(sentences)", "--layers", layers,
                                                 "--out", dir + "/" + out, "--shard-sentences", "600", "--log-level", "debug"], log: out)
        defer { if c.isRunning { kill(c.processIdentifier, SIGKILL) } }
        try during()
        ClusterTestSupport.wait(c, seconds: 240, "alphaedit cov \(out)")
        XCTAssertEqual(c.terminationStatus, 0, ClusterTestSupport.read(dir + "/\(out).log"))
        return try KeyStatistics.read(from: dir + "/\(out)/statistics.bin")
    }

    func testCovarianceAcrossHostsWithALinkCutAndRefusedPeers() throws {
        corpus = try ClusterTestSupport.corpus(in: dir, sentences: 7_200)
        let port = 5570
        var workers: [Process] = []
        defer { for w in workers where w.isRunning { kill(w.processIdentifier, SIGKILL) } }
        let stats = try covariance("cov", port: port, sentences: 7_200) {
            workers.append(try startWorker("w1", port: port))
            workers.append(try startWorker("w2", port: port))
            XCTAssertTrue(waitFor("worker w2", in: "cov") && waitFor("worker w1", in: "cov"), "both workers joined")
            // Refused while the build runs: an unauthorised key, and a plaintext worker.
            let stranger = try startWorker("w2", port: port, key: "stranger", log: "stranger")
            let plain = try startWorker("w2", port: port, key: "", log: "plaintext")
            ClusterTestSupport.wait(stranger, seconds: 30, "unauthorised worker")
            ClusterTestSupport.wait(plain, seconds: 30, "plaintext worker")
            XCTAssertEqual(stranger.terminationStatus, 3, ClusterTestSupport.read(dir + "/stranger.log"))
            XCTAssertEqual(plain.terminationStatus, 3, ClusterTestSupport.read(dir + "/plaintext.log"))
            // w1's link cut while it computes a shard; restored once its lease has expired.
            let started = count("covariance started", in: "w1")
            let deadline = ProcessStats.now() + 60
            while count("covariance started", in: "w1") == started, ProcessStats.now() < deadline { usleep(2_000) }
            try netns("cut", tag, "w1")
            XCTAssertTrue(waitFor("lease of job", in: "cov"), "w1's lease expired")
            // Restored at once, with shards left (12 of 600 sentences): w1 rejoins while the build runs.
            try netns("restore", tag, "w1")
        }
        let said = ClusterTestSupport.read(dir + "/cov.log")
        XCTAssertTrue(said.contains("is not in authorized_keys"), said)
        XCTAssertTrue(said.contains("the peers disagree on security") || said.contains("it closed the handshake (a plaintext peer"), said)
        XCTAssertTrue(ClusterTestSupport.read(dir + "/w1.log").contains("reconnecting"), "w1 noticed the silence")
        let joins = try NSRegularExpression(pattern: #"worker w1 \(pid \d+\) joined"#)
        XCTAssertEqual(joins.numberOfMatches(in: said, range: NSRange(said.startIndex..., in: said)), 2, "w1 joined, then rejoined: \(said)")
        let reference = try ClusterTestSupport.inProcessStatistics(model: model, corpus: corpus, range: 0..<7_200)
        let rel = try ClusterTestSupport.relativeDifference(stats, reference)
        print(String(format: "K0 across namespaces over tcp+CURVE, w1's link cut mid-shard: max rel diff vs in-process %.2e", rel))
        XCTAssertLessThanOrEqual(rel, 1e-9)
    }

    /// Facts and the in-process campaign (the reference), as in ClusterCampaignTests.
    func prepareCampaign(port: Int, config: String = "") throws -> [Int: [Float]] {
        corpus = try ClusterTestSupport.corpus(in: dir, sentences: 300)
        try writeConfig(port: port, extra: config)
        let subjects = ["France", "The river", "Paris", "the tower", "a museum", "The city", "north", "Its capital"]
        let targets = ["Rome", "Paris", "north", "river", "city", "tower", "France", "museums"]
        let facts = (0..<32).map { i in
            #"{"prompt": "\#(i % 2 == 0 ? "The capital of {} is" : "{} flows through")", "subject": "\#(subjects[i % 8]) \#(i)", "target": "\#(targets[(i * 3) % 8])"}"#
        }
        try ("[" + facts.joined(separator: ",\n") + "]").write(toFile: dir + "/facts.json", atomically: true, encoding: .utf8)
        let p = try ClusterTestSupport.start(coordinator, editArgs("inproc") + ["--cluster", "in-process"], stderr: dir + "/inproc.log")
        ClusterTestSupport.wait(p, seconds: 120, "in-process campaign")
        XCTAssertEqual(p.terminationStatus, 0, ClusterTestSupport.read(dir + "/inproc.log"))
        return try deltas("inproc")
    }

    func editArgs(_ state: String) -> [String] {
        ["edit", "--config", dir + "/cluster.conf", "--facts", dir + "/facts.json", "--batch-size", "16", "--cov-sentences", "300",
         "--state", dir + "/" + state, "--log-level", "debug"]
    }

    /// Runs the campaign on host c with workers on w1 and w2; `during` runs once it is under way.
    func distributedCampaign(_ state: String, port: Int, workerArgs: [String] = [], during: () throws -> Void = {}) throws -> [Int: [Float]] {
        let c = try start(on: "c", coordinator, editArgs(state), log: state)
        defer { if c.isRunning { kill(c.processIdentifier, SIGKILL) } }
        let workers = [try startWorker("w1", port: port, log: "\(state)-w1", extra: workerArgs),
                       try startWorker("w2", port: port, log: "\(state)-w2", extra: workerArgs)]
        defer { for w in workers where w.isRunning { kill(w.processIdentifier, SIGKILL) } }
        try during()
        ClusterTestSupport.wait(c, seconds: 240, "campaign \(state)")
        XCTAssertEqual(c.terminationStatus, 0, ClusterTestSupport.read(dir + "/\(state).log"))
        return try deltas(state)
    }

    func deltas(_ state: String) throws -> [Int: [Float]] { try ClusterTestSupport.deltas(state: dir + "/" + state) }

    func relativeDifference(_ a: [Int: [Float]], _ b: [Int: [Float]]) -> Double { ClusterTestSupport.relativeDifference(a, b) }

    func testEditCampaignAcrossHostsSurvivesTheCoordinatorsLinkCut() throws {
        let port = 5571
        let reference = try prepareCampaign(port: port)
        let clean = try distributedCampaign("clean", port: port)
        let rel = relativeDifference(clean, reference)
        print(String(format: "edit campaign across namespaces over tcp+CURVE vs in-process: max rel diff of ΔW %.2e", rel))
        XCTAssertLessThanOrEqual(rel, 1e-4)

        var cutAt = 0.0
        let cut = try distributedCampaign("cut", port: port) {
            XCTAssertTrue(waitFor("(v*) leased to", in: "cut"), "a v* job went out")
            try netns("cut", tag, "c")
            cutAt = ProcessStats.now()
            sleep(10)
            try netns("restore", tag, "c")
        }
        let said = ClusterTestSupport.read(dir + "/cut.log")
        XCTAssertTrue(said.contains("counted dead"), "the workers fell silent during the cut: \(said)")
        XCTAssertGreaterThan(cutAt, 0)
        let relCut = relativeDifference(cut, clean)
        print(String(format: "coordinator's links cut for 10 s mid-campaign: max rel diff of ΔW vs the uncut run %.2e", relCut))
        XCTAssertLessThanOrEqual(relCut, 1e-5)
        XCTAssertEqual(try EditState.load(directory: dir + "/cut").manifest.batches.count, 2)
    }

    /// Each shard result (3 layers of f = 512: 3.2 MB) needs ≈ 6.5 s to cross a 4 Mbit/s link, twice
    /// `deadAfter`. As one message it got its worker counted dead; heard from no more, the worker
    /// reconnected and its result was lost, again and again (a Qwen build over 1 Gbit/s: 473 MB, 3.8 s).
    func testShardResultsSlowerThanDeadAfterCrossASlowLink() throws {
        let (rc, said) = try netns("rate", tag, "4")
        if rc == 3 { throw XCTSkip("links not rate-limited: \(said)") }
        XCTAssertEqual(rc, 0, said)
        corpus = try ClusterTestSupport.corpus(in: dir, sentences: 1_200)
        let port = 5574
        var workers: [Process] = []
        defer { for w in workers where w.isRunning { kill(w.processIdentifier, SIGKILL) } }
        let t0 = ProcessStats.now()
        let stats = try covariance("cov-slow", port: port, sentences: 1_200, layers: "0-2") {
            workers = [try startWorker("w1", port: port, log: "slow-w1"), try startWorker("w2", port: port, log: "slow-w2")]
        }
        let seconds = ProcessStats.now() - t0
        let log = ClusterTestSupport.read(dir + "/cov-slow.log")
        XCTAssertFalse(log.contains("counted dead"), log)
        for w in ["slow-w1", "slow-w2"] { XCTAssertEqual(count("reconnecting", in: w), 0, ClusterTestSupport.read(dir + "/\(w).log")) }
        let reference = try ClusterTestSupport.inProcessStatistics(model: model, corpus: corpus, range: 0..<1_200, layers: [0, 1, 2])
        let rel = try ClusterTestSupport.relativeDifference(stats, reference)
        print(String(format: "K0 over 4 Mbit/s links (two 3.2 MB shard results): %.1f s, max rel diff vs in-process %.2e", seconds, rel))
        XCTAssertLessThanOrEqual(rel, 1e-9)
    }

    func testSameResultsUnderDelayAndLoss() throws {
        let (rc, said) = try netns("netem", tag)
        if rc == 3 { throw XCTSkip("delay and loss not emulated: \(said)") }
        XCTAssertEqual(rc, 0, said)
        print(said.trimmingCharacters(in: .whitespacesAndNewlines))
        // The delay is there: every round trip crosses two link ends of 20 ± 5 ms.
        let (pingRC, ping) = try ClusterTestSupport.run("/usr/sbin/ip", ["netns", "exec", "\(tag)-w1", "ping", "-c", "10", "-i", "0.05", "10.77.1.1"])
        XCTAssertEqual(pingRC, 0, ping)
        let rtt = ping.split(separator: "\n").first { $0.hasPrefix("rtt") }.map { String($0) } ?? ""
        let minimum = rtt.split(separator: "=").last?.split(separator: "/").first.flatMap { Double($0.trimmingCharacters(in: .whitespaces)) }
        print("ping w1 -> c: \(rtt)")
        XCTAssertGreaterThanOrEqual(minimum ?? 0, 29, ping)
        let port = 5572
        let reference = try prepareCampaign(port: port)
        let delayed = try distributedCampaign("netem", port: port)
        let rel = relativeDifference(delayed, reference)
        print(String(format: "edit campaign with 20±5 ms delay and 1 %% loss: max rel diff of ΔW vs in-process %.2e", rel))
        XCTAssertLessThanOrEqual(rel, 1e-4)
        corpus = try ClusterTestSupport.corpus(in: dir, sentences: 1_200)
        var workers: [Process] = []
        defer { for w in workers where w.isRunning { kill(w.processIdentifier, SIGKILL) } }
        let stats = try covariance("cov-netem", port: port + 1, sentences: 1_200) {
            workers = [try startWorker("w1", port: port + 1, log: "cov-w1"), try startWorker("w2", port: port + 1, log: "cov-w2")]
        }
        XCTAssertLessThanOrEqual(try ClusterTestSupport.relativeDifference(
            stats, try ClusterTestSupport.inProcessStatistics(model: model, corpus: corpus, range: 0..<1_200)), 1e-9)
        // In user space the relay counts what it dropped: the transfers above lost packets and recovered.
        let relayLog = "/tmp/netns-\(tag).relay.log"
        if FileManager.default.fileExists(atPath: relayLog) {
            sleep(2)
            let last = ClusterTestSupport.read(relayLog).split(separator: "\n").last { $0.contains("dropped") }.map { String($0) } ?? ""
            print(last)
            let dropped = last.split(separator: " ").reversed().dropFirst().first.flatMap { Int($0) }
            XCTAssertGreaterThan(dropped ?? 0, 0, last)
        }
    }

    /// 300 ms ± 50 ms each way and 10 % loss (a satellite hop on a bad day): TCP stalls for seconds at a
    /// time (retransmission timeouts back off), and with the default 3 s liveness the coordinator
    /// counted the workers dead and they reconnected, over and over, each new CURVE handshake given up
    /// half-way ("it closed the handshake"): no job finished in 240 s (one run, 2026-12-06). With
    /// `dead_after = 15` (the workers told in the welcome; `--dead-after 15` until then) the campaign
    /// finishes with the in-process ΔW and nobody is counted dead.
    func testSlowLossyLinkWithALongerDeadAfter() throws {
        let (rc, said) = try ClusterTestSupport.run("/bin/bash", [script, "netem", tag],
                                                     env: ["NETEM_DELAY_MS": "300", "NETEM_JITTER_MS": "50", "NETEM_LOSS_PCT": "10"])
        if rc == 3 { throw XCTSkip("delay and loss not emulated: \(said)") }
        XCTAssertEqual(rc, 0, said)
        let port = 5576
        let reference = try prepareCampaign(port: port, config: "dead_after = 15")
        let t0 = ProcessStats.now()
        let slow = try distributedCampaign("lossy", port: port, workerArgs: ["--dead-after", "15"])
        let rel = relativeDifference(slow, reference)
        print(String(format: "edit campaign over 300±50 ms, 10 %% loss links, dead_after 15: %.0f s, max rel diff of ΔW vs in-process %.2e",
                     ProcessStats.now() - t0, rel))
        XCTAssertLessThanOrEqual(rel, 1e-4)
        let log = ClusterTestSupport.read(dir + "/lossy.log")
        XCTAssertFalse(log.contains("counted dead"), log)
        for w in ["lossy-w1", "lossy-w2"] {
            XCTAssertTrue(ClusterTestSupport.read(dir + "/\(w).log").contains("counts a peer dead after 15.0 s"), ClusterTestSupport.read(dir + "/\(w).log"))
        }
    }
}
